"""The one config reader: a TOML table into a dataclass declared with `setting`, and one
wording for every problem (`ORIGIN: KEY: what was expected`) in build, training and audit
configs alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from safer_toolkit.builder.config import load_config
from safer_toolkit.builder.release.audit.cli import thresholds
from safer_toolkit.errors import ConfigError
from safer_toolkit.settings import Reader, setting
from safer_toolkit.training_reference.config import load_stage_config
from safer_toolkit.training_reference.sft import SFTStageConfig


@dataclass
class Inner:
    rank: int = setting(8, low=1, high=64, help="adapter rank")


@dataclass
class Outer:
    name: str = setting(help="what it is called")
    share: float = setting(0.5, low=0.0, high=1.0)
    tries: int = setting(2, low=0, key="retry.tries")
    mode: str = setting("a", choices=("a", "b"))
    tags: list[str] | str = "x"
    inner: Inner = field(default_factory=Inner)


def test_a_table_is_read_by_its_declarations_with_defaults_for_what_it_leaves_out():
    got = Reader("t").dataclass(Outer, {"name": "n", "share": 1, "retry": {"tries": 5},
                                        "inner": {"rank": 3}})
    assert got == Outer(name="n", share=1.0, tries=5, inner=Inner(rank=3))
    assert isinstance(got.share, float)


@pytest.mark.parametrize(("table", "message"), [
    ({}, "t: (top level): needs `name` (what it is called)"),
    ({"name": "n", "colour": 1}, "t: (top level): unknown key(s) colour; expected inner, mode, "
                                 "name, retry, share, tags"),
    ({"name": 3}, "t: name: must be a string, not 3"),
    ({"name": "n", "share": 2}, "t: share: must be a number between 0 and 1, not 2"),
    ({"name": "n", "share": float("nan")}, "t: share: must be a number between 0 and 1, not nan"),
    ({"name": "n", "retry": {"tries": -1}}, "t: retry.tries: must be at least 0"),
    ({"name": "n", "retry": {"trys": 1}}, "t: retry: unknown key(s) trys; expected tries"),
    ({"name": "n", "mode": "c"}, "t: mode: must be one of a, b, not 'c'"),
    ({"name": "n", "tags": 3}, "t: tags: must be an array or a string, not 3"),
    ({"name": "n", "inner": 3}, "t: inner: must be a table"),
    ({"name": "n", "inner": {"rank": True}}, "t: inner.rank: must be an integer, not True"),
    ({"name": "n", "inner": {"rank": 65}}, "t: inner.rank: must be between 1 and 64"),
])
def test_every_problem_names_the_origin_and_the_key_path(table, message):
    with pytest.raises(ConfigError) as caught:
        Reader("t").dataclass(Outer, table)
    assert str(caught.value) == message


def test_build_training_and_audit_configs_word_a_wrong_type_the_same_way(tmp_path: Path):
    build = tmp_path / "build.toml"
    build.write_text("seed = 'x'\n")  # read before anything else the file lacks
    train = tmp_path / "train.toml"
    train.write_text('[sft]\nmodel = "m"\ndataset = "d"\nseed = "x"\n')
    audit = tmp_path / "audit.toml"
    audit.write_text('[audit]\nmin_samples = "x"\n')
    messages = []
    for read in (lambda: load_config(build), lambda: thresholds(audit),
                 lambda: load_stage_config(SFTStageConfig, train, "sft")):
        with pytest.raises(ConfigError) as caught:
            read()
        messages.append(str(caught.value))
    assert messages == [f"{build}: seed: must be an integer, not 'x'",
                        f"{audit}: audit.min_samples: must be an integer, not 'x'",
                        f"{train}: sft.seed: must be an integer, not 'x'"]
