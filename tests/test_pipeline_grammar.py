"""Builds with `constrain = "grammar"` through the loopback server as each kind of real server
behaves: one that enforces the trace grammar (in its own field, found from `owned_by` or by
probing), one that ignores it, one that refuses it. The preflight says which, the grammar rides
on the responder's requests (and so in their cache keys) only where it is enforced, and every
reply is validated whatever the server did."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS, OfflineBackend
from safer_toolkit.builder.config import load_config
from safer_toolkit.builder.pipeline import BuildResult, build
from safer_toolkit.builder.prompts.wire import WRONG_DECISION_HEADER
from safer_toolkit.cli import main
from tests.support.build_config import write_config
from tests.support.openai_server import FaultPlan, OpenAIServer

FILES = ("sft/train-00000-of-00001.parquet", "dpo/train-00000-of-00001.parquet",
         "grpo/train-00000-of-00001.parquet", "eval/test-00000-of-00001.parquet")
SMALL = {"sft": 3, "dpo": 3, "grpo": 2, "eval_": 2}
SERVED = tuple(OFFLINE_MODELS.values())


def digests(out: Path) -> dict[str, str]:
    return {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in FILES}


@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> dict[str, str]:
    """The rows of the same build by the offline backend (no server, no grammar)."""
    tmp = tmp_path_factory.mktemp("offline")
    asyncio.run(build(load_config(write_config(tmp / "b.toml", **SMALL)), tmp / "out",
                      progress=False))
    return digests(tmp / "out")


def grammar_build(tmp_path: Path, constrain: str = "grammar", server: str | None = None,
                  **behaviour: Any) -> tuple[BuildResult, OpenAIServer]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    with OpenAIServer(content=OfflineBackend().answer_body, models=SERVED,
                      **behaviour) as running:
        config = load_config(write_config(tmp_path / "b.toml", base_url=running.url,
                                          constrain=constrain, **SMALL))
        if server is not None:
            config = config.with_overrides(servers={"": server})
        result = asyncio.run(build(config, tmp_path / "out", backend="openai",
                                   progress=False))
    return result, running


def constraint(result: BuildResult, role: str = "responder[0]") -> dict[str, Any]:
    return next(m["constrain"] for m in result.manifest["models"] if m["role"] == role)


def sent_requests(out: Path) -> list[dict[str, Any]]:
    """What every cached call asked (the request descriptions the cache keeps)."""
    with sqlite3.connect(out / ".build" / "calls.sqlite") as db:
        return [json.loads(r) for (r,) in db.execute("SELECT request FROM calls")]


def responder_requests(out: Path) -> list[dict[str, Any]]:
    return [r for r in sent_requests(out) if r["model"] == OFFLINE_MODELS["responder"]
            and r["template_version"] != "preflight"]


def test_an_enforcing_server_gets_the_trace_grammar_and_the_rows_stay_the_same(tmp_path,
                                                                               offline):
    result, server = grammar_build(tmp_path, grammar="enforce", imitate="llama.cpp",
                                   owned_by="me")
    assert result.shortfall == {} and digests(tmp_path / "out") == offline
    assert constraint(result) == {"mode": "grammar", "server": "llama-cpp-python",
                                  "found_by": "owned_by 'me'",
                                  "sent": "trace grammar in `grammar` (GBNF)", "enforced": True}
    # the JSON roles in llama-cpp-python's own way: json_object + schema, no refused probe
    assert constraint(result, "planner")["sent"] == "response_format json_object + schema"
    assert result.manifest["run"]["preflight"]["sent"] == 3
    asked = responder_requests(tmp_path / "out")
    assert len(asked) == result.manifest["calls"]["responder[0]"]["calls"] > 0
    # a DPO wrong-decision side goes free: the grammar admits only the decision the label allows
    wrong = [r for r in asked if WRONG_DECISION_HEADER in json.dumps(r)]
    traced = [r for r in asked if r not in wrong]
    assert wrong and traced and all("extra" not in r for r in wrong)
    assert all(set(r["extra"]) == {"grammar"} and len(r["extra"]["grammar"]["sha256"]) == 64
               for r in traced)  # the grammar is keyed, by its hash
    # every offline trace is one the grammar admits: the server enforced, the model complied
    assert server.grammar_counts["accepted"] == len(traced)
    assert server.grammar_counts["generated"] == 1  # the probe: a trace where words were asked
    assert "note: responder[0]: the server enforces the trace grammar in `grammar` (GBNF)" \
        in result.summary
    row = next(line for line in result.summary.splitlines() if line.startswith("responder[0]")
               and "trace grammar" in line)
    assert "llama-cpp-python" in row and row.rstrip().endswith("yes")
    again, server_again = grammar_build(tmp_path, grammar="enforce", imitate="llama.cpp",
                                        owned_by="me")
    assert again.run["sent"] == again.run["preflight"]["sent"] == server_again.total == 0


def test_a_server_of_unknown_kind_is_probed_field_by_field(tmp_path, offline):
    result, server = grammar_build(tmp_path, grammar="enforce", imitate="sglang")
    assert digests(tmp_path / "out") == offline
    assert constraint(result) == {"mode": "grammar", "server": "sglang", "found_by": "probe",
                                  "sent": "trace grammar in `ebnf` (EBNF)", "enforced": True}
    # vLLM's and llama.cpp's fields were ignored (the plain words came back), then SGLang's
    assert result.manifest["run"]["preflight"]["sent"] == 3 + 2
    traced = [r for r in responder_requests(tmp_path / "out")
              if WRONG_DECISION_HEADER not in json.dumps(r)]
    assert traced and all(set(r["extra"]) == {"ebnf"} for r in traced)
    assert server.grammar_counts["accepted"] == len(traced)


def test_a_server_that_ignores_the_grammar_is_reported_and_not_sent_it(tmp_path, offline):
    result, _server = grammar_build(tmp_path, grammar="ignore", imitate="vllm", owned_by="vllm")
    assert digests(tmp_path / "out") == offline
    assert constraint(result) == {"mode": "grammar", "server": "vllm",
                                  "found_by": "owned_by 'vllm'", "sent": "free text",
                                  "enforced": False}
    assert ("the server takes the trace grammar in `structured_outputs.grammar` (EBNF) but does "
            "not enforce it (the reply began 'The picture shows") in result.summary
    assert "not trusted, nor sent; falling back to `json`" in result.summary
    assert all("extra" not in r for r in responder_requests(tmp_path / "out"))


@pytest.mark.parametrize(("mode", "imitate", "owned_by", "says"), [
    ("reject_400", "vllm", "vllm", "(http_400: Invalid grammar: grammar-constrained decoding"),
    ("reject_500", "llama.cpp", "me", "(http_500: from_string: error parsing grammar file"),
])
def test_a_server_that_refuses_the_grammar_falls_back_to_json(tmp_path, offline, mode,
                                                              imitate, owned_by, says):
    result, server = grammar_build(tmp_path, grammar=mode, imitate=imitate, owned_by=owned_by)
    assert result.shortfall == {} and digests(tmp_path / "out") == offline
    found = constraint(result)
    assert (found["sent"], found["enforced"]) == ("free text", False)
    assert says in result.summary and "falling back to `json`" in result.summary
    assert server.grammar_counts == {"refused": 1}  # refused once, never retried as a fault
    assert all(c["retries"] == {} for c in result.manifest["run"]["calls"].values())
    assert all("extra" not in r for r in responder_requests(tmp_path / "out"))


def test_a_server_declared_openai_is_not_sent_a_grammar(tmp_path):
    result, server = grammar_build(tmp_path, grammar="enforce", server="openai")
    found = constraint(result)
    assert found == {"mode": "grammar", "server": "openai", "found_by": "config",
                     "sent": "free text", "enforced": False}
    assert "an openai server takes no grammar; falling back to `json`" in result.summary
    assert result.manifest["run"]["preflight"]["sent"] == 3 and server.grammar_counts == {}


def test_without_the_grammar_mode_requests_and_keys_are_unchanged(tmp_path):
    plain, _ = grammar_build(tmp_path / "json", constrain="json", grammar="enforce")
    grammar, _ = grammar_build(tmp_path / "grammar", grammar="enforce")
    asked = {name: {r["template_version"] + json.dumps(r["messages"], sort_keys=True): r
                    for r in responder_requests(tmp_path / name / "out")}
             for name in ("json", "grammar")}
    assert asked["json"].keys() == asked["grammar"].keys()  # the same questions …
    assert all("extra" not in r for r in asked["json"].values())  # … without a grammar
    assert all("grammar" in r["extra"] for r in asked["grammar"].values()  # … and with one
               if WRONG_DECISION_HEADER not in json.dumps(r))  # (wrong-decision sides: free)
    assert constraint(plain) == {"mode": "json", "server": None, "found_by": None,
                                 "sent": "free text", "enforced": None}
    assert constraint(grammar)["enforced"] is True


def test_an_enforcing_server_is_still_checked_reply_by_reply(tmp_path):
    """A server that passed the probe and then sends junk (a body that breaks the format) has
    every reply validated and re-asked as always: the grammar is never the check."""
    result, server = grammar_build(tmp_path, grammar="enforce", owned_by="llamacpp",
                                   faults=FaultPlan(rates={"schema_break": 0.25}, seed=2))
    assert constraint(result)["enforced"] is True and server.fault_counts["schema_break"] > 0
    manifest = result.manifest
    assert manifest["rejections"]["respond"].get("missing_thinking", 0) > 0, manifest
    assert manifest["yield"]["respond"]["rejected"] > 0 and result.rows > 0


def test_the_command_line_sets_the_mode_and_the_server_kind(tmp_path, capsys):
    with OpenAIServer(content=OfflineBackend().answer_body, models=SERVED, grammar="enforce",
                      imitate="vllm") as server:
        config = write_config(tmp_path / "b.toml", base_url=server.url, **SMALL)
        status = main(["build", "--config", str(config), "--out", str(tmp_path / "out"),
                       "--backend", "openai", "--quiet", "--constrain", "none",
                       "--constrain", "responder=grammar", "--server", "responder=vllm"])
    assert status == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    found = {m["role"]: m["constrain"] for m in manifest["models"]}
    assert found["responder[0]"]["sent"] == "trace grammar in `structured_outputs.grammar` (EBNF)"
    assert found["responder[0]"]["found_by"] == "config"
    assert found["planner"]["sent"] == found["judge"]["sent"] == "schema in the prompt"
    out = capsys.readouterr().out
    assert "constraint" in out and "structured_outputs.grammar" in out
