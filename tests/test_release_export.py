"""The export: loadable configs, bounded row groups and shards, byte-identical, atomic, strict."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from safer_toolkit.builder.release.export import ExportError, write_dataset
from safer_toolkit.builder.release.features import SPLITS, checked_turn, features, row_problems
from tests.support import release_rows as R


def _export(out: Path, **kwargs) -> dict:
    return write_dataset(out, R.rows(), manifest=R.manifest(), build_config="seed = 0\n",
                         **kwargs)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("release")
    return out, _export(out)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("config", list(SPLITS))
def test_every_config_loads_with_its_features_and_count(release, config, tmp_path):
    out, summary = release
    loaded = datasets.load_dataset(str(out), config, cache_dir=str(tmp_path / "cache"))
    split = SPLITS[config]
    assert list(loaded) == [split]
    assert loaded[split].features == features(config)
    assert loaded[split].num_rows == R.DEMO_SIZES[config] == summary["configs"][config]["num_rows"]
    first = loaded[split][0]
    expected = R.MAKERS[config](0)
    assert first["id"] == expected["id"]
    assert first["images"][0].size == (48, 48)


def test_images_keep_their_original_bytes_and_name(release, tmp_path):
    out, _ = release
    sft = datasets.load_dataset(str(out), "sft", split="train", cache_dir=str(tmp_path / "c"))
    raw = sft.cast_column("images", datasets.List(datasets.Image(decode=False)))
    for index in (0, 17, 59):
        original = R.sft_row(index)["images"][0]
        assert raw[index]["images"][0] == original  # same bytes, same file name


def test_layout_schemas_manifest_and_build_config(release):
    out, summary = release
    names = set(_files(out))
    for config, split in SPLITS.items():
        assert f"{config}/{split}-00000-of-00001.parquet" in names
    assert {"README.md", "manifest.json", "build.toml", "assets/statistics.png",
            "schemas/tool_library_v1.json", "schemas/taxonomy_v1.json",
            "schemas/protocol.schema.json", "easyr1/train.jsonl"} <= names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"] == "offline"  # the pipeline's manifest, kept
    assert manifest["release"]["configs"]["dpo"]["num_rows"] == 186
    assert set(manifest["release"]["sha256"]) == {f for c in summary["configs"].values()
                                                  for f in c["files"]}
    assert (out / "build.toml").read_text() == "seed = 0\n"
    assert not (out / ".release-tmp").exists()


def test_two_exports_of_the_same_rows_are_byte_identical(release, tmp_path):
    out, _ = release
    again = tmp_path / "again"
    _export(again)
    first, second = _files(out), _files(again)
    assert first.keys() == second.keys()
    different = [name for name in first if first[name] != second[name]]
    assert different == []


def test_row_groups_and_shards_are_bounded_by_bytes(tmp_path):
    limit = 20_000
    summary = _export(tmp_path, row_group_bytes=limit, row_group_rows=1_000, shard_bytes=60_000)
    dpo = summary["configs"]["dpo"]
    assert len(dpo["files"]) > 2
    total = len(dpo["files"])
    for index, name in enumerate(dpo["files"]):
        assert name == f"dpo/train-{index:05d}-of-{total:05d}.parquet"
        meta = pq.ParquetFile(tmp_path / name).metadata
        assert meta.num_row_groups > 1
        for group in range(meta.num_row_groups):
            assert 0 < meta.row_group(group).total_byte_size <= limit
    loaded = datasets.load_dataset(str(tmp_path), "dpo", split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert loaded["id"] == [f"dpo-{i:06d}" for i in range(186)]  # every row, in order


def test_a_new_export_replaces_stale_shards_and_spares_build_state(tmp_path):
    state = tmp_path / ".build" / "state.json"
    state.parent.mkdir()
    state.write_text("{}")
    _export(tmp_path, shard_bytes=60_000)
    assert len(list((tmp_path / "dpo").glob("*.parquet"))) > 1
    _export(tmp_path)
    assert sorted(p.name for p in (tmp_path / "dpo").iterdir()) == \
        ["train-00000-of-00001.parquet"]
    assert state.read_text() == "{}"


def _broken(config: str, index: int, breaker) -> dict:
    makers = R.rows()

    def rows_with_break():
        for i, row in enumerate(makers[config]):
            yield breaker(copy.deepcopy(row)) if i == index else row

    return {**makers, config: rows_with_break()}


def _drop_call(row):
    text = row["messages"][2]["content"][0]["text"]
    lines = text.split("\n")
    row["messages"][2]["content"][0]["text"] = "\n".join(lines[:1] + lines[2:])
    return row


def _valid_rejected(row):
    row["rejected"] = copy.deepcopy(row["chosen"])
    return row


CASES = {
    "missing column": ("grpo", lambda r: {k: v for k, v in r.items() if k != "label"},
                       "missing column(s) label"),
    "extra column": ("eval", lambda r: {**r, "answer": "x"}, "unexpected column(s) answer"),
    "label in a dpo row": ("dpo", lambda r: {**r, "label": "harmful"},
                           "unexpected column(s) label"),
    "path with a folder": ("sft", lambda r: {**r, "images": [{**r["images"][0],
                                                             "path": "../x.png"}]},
                           "bare file name"),
    "placeholders": ("grpo", lambda r: {**r, "images": r["images"] * 2},
                     "1 image placeholder(s) for 2 image(s)"),
    "invalid sft trace": ("sft", _drop_call, "fails strict validation"),
    "valid rejected side": ("dpo", _valid_rejected, "a rejected side must fail"),
    "codes not reported": ("dpo", lambda r: {**r, "rejected_codes": ["visit_limit"]},
                           "are not reported by the validator"),
    "unknown perturbation": ("dpo", lambda r: {**r, "perturbation": "typo"},
                             "is not one of"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_row_fails_the_export_naming_it_and_keeps_the_old_release(release, tmp_path,
                                                                         case):
    out = tmp_path / "out"
    _export(out)
    before = _files(out)
    config, breaker, message = CASES[case]
    with pytest.raises(ExportError) as info:
        write_dataset(out, _broken(config, 5, breaker), manifest=R.manifest(),
                      build_config="seed = 0\n")
    assert f"{config} row 5 " in str(info.value)
    assert message in str(info.value)
    assert _files(out) == before
    assert not (out / ".release-tmp").exists()


def test_a_row_larger_than_a_row_group_fails_the_export_naming_it(tmp_path):
    def padded(row):
        row["images"] = [{**row["images"][0], "bytes": row["images"][0]["bytes"] + b"\0" * 30_000}]
        return row

    with pytest.raises(ExportError, match=r"^sft row 5 \(id 'sft-000005'\): the row is \d+ "
                                          r"bytes; a row group holds at most 20000$"):
        write_dataset(tmp_path, _broken("sft", 5, padded), manifest=R.manifest(),
                      row_group_bytes=20_000)
    assert not (tmp_path / ".release-tmp").exists()


def test_an_image_or_question_shared_between_configs_is_refused(tmp_path):
    rows = R.rows()
    leaked = R.eval_row(3)
    leaked["images"] = R.sft_row(7)["images"]
    rows["eval"] = iter([R.eval_row(0), leaked])
    with pytest.raises(ExportError, match=r"eval row 1 .*image is already in config `sft`"):
        write_dataset(tmp_path, rows, manifest=R.manifest())
    rows = R.rows()
    question = copy.deepcopy(R.grpo_row(2))
    question["prompt"][1]["content"][1]["text"] = \
        R.sft_row(4)["messages"][1]["content"][1]["text"].upper() + " !"
    rows["grpo"] = iter([question])
    with pytest.raises(ExportError, match=r"grpo row 0 .*question is already in config `sft`"):
        write_dataset(tmp_path, rows, manifest=R.manifest())


def test_unknown_config_is_refused(tmp_path):
    with pytest.raises(ExportError, match="unknown config"):
        write_dataset(tmp_path, {"train": iter([])}, manifest={})


def test_checked_turn_reads_each_role_of_a_checked_row():
    """The export reads a row's turns only after `row_problems` passed it: each one is there."""
    row = R.sft_row(0)
    assert row_problems("sft", row) == []
    question = checked_turn(row["messages"], "user")
    trace = checked_turn(row["messages"])
    assert question and "<thinking>" in trace and "<answer>" in trace
    assert checked_turn(row["messages"], "system") != question
