"""DPO perturbations: every one is caught by the validator, on many items and every topology,
with the codes it records; programmatic ones reuse the chosen side's own words (no new word, the
same length or a length drawn like it); the wrong decision is the responder's fluent answer;
choices are deterministic per (item, seed)."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter

import pytest

from safer_toolkit.builder.backends.offline import OfflineBackend
from safer_toolkit.builder.prompts import render_toolkit_instruction
from safer_toolkit.builder.release.audit.classifier import TOKEN
from safer_toolkit.builder.sources.seed import seed_corpus
from safer_toolkit.builder.stages.perturb import PERTURBATIONS, kind_order, perturb, perturb_kind
from safer_toolkit.builder.stages.respond import wrong_decision_request
from safer_toolkit.validation import (
    TOPOLOGIES,
    Call,
    Trace,
    check_text,
    decision_conflict,
    parse_text,
    resolve_protocol,
    to_text,
)
from tests.support.offline_chain import run_chain
from tests.support.protocols import CASES, OUT
from tests.support.protocols import protocol as handmade


@pytest.fixture(scope="module")
def golds():
    """(item, protocol doc, protocol, gold trace, the responder's wrong-decision text)."""
    chains = run_chain(list(seed_corpus(160, seed=3)), samples=1)
    backend = OfflineBackend()
    out = []
    for c in chains:
        request = wrong_decision_request("r", c.item, c.doc, render_toolkit_instruction(c.doc),
                                         {"temperature": 0.8, "seed": 0})
        wrong = asyncio.run(backend.complete(request)).content
        out.append((c.item, c.doc, c.protocol, parse_text(c.candidates[0].text).trace, wrong))
    return out


def _errors(text, protocol) -> list[str]:
    return sorted({i.code for i in check_text(text, protocol, "strict").issues
                   if i.severity == "error"})


def _words(text: str) -> Counter[str]:
    """The words the audit's bag-of-words probe counts."""
    return Counter(re.findall(TOKEN, text.lower()))


def test_every_perturbation_is_caught_with_the_codes_it_records(golds):
    caught: Counter[tuple[str, str]] = Counter()
    for item, doc, protocol, trace, wrong in golds:
        for kind in PERTURBATIONS:
            for variant in range(3):
                made = perturb_kind(kind, trace, protocol,
                                    random.Random(f"{item.source_id}:{variant}"),
                                    wrong_decision=wrong)
                assert made is not None, (kind, doc["topology"])
                assert made.kind == kind
                assert made.codes and made.codes == _errors(made.text, protocol)
                caught[(kind, doc["topology"])] += 1
    for kind in PERTURBATIONS:
        for topology in TOPOLOGIES:
            assert caught[(kind, topology)] >= 3, (kind, topology, caught)


def test_programmatic_perturbations_add_no_word_of_their_own(golds):
    """A rejected side is the chosen side's very words, as often each, at the same length: calls
    reordered, two tool names traded, two values traded. Only what the validator checks (the
    walk, the typed outputs) tells them apart."""
    for item, _doc, protocol, trace, _ in golds:
        chosen = to_text(trace)
        for kind in ("order_violation", "corrupted_output", "wrong_tool"):
            made = perturb_kind(kind, trace, protocol, random.Random(item.source_id))
            assert made is not None
            assert _words(made.text) == _words(chosen) and len(made.text) == len(chosen)
            if kind == "wrong_tool":  # the walk itself is broken, not only an output
                assert set(made.codes) & {"bad_start", "illegal_transition", "bad_end",
                                          "visit_limit", "missing_tool"}, made.codes


def test_wrong_decision_is_the_responders_answer_both_ways(golds):
    seen = Counter()
    for item, doc, protocol, trace, wrong in golds:
        made = perturb_kind("wrong_decision", trace, protocol,
                            random.Random(item.source_id), wrong_decision=wrong)
        assert made is not None and made.text == to_text(parse_text(wrong).trace)
        assert made.codes == ["decision_conflict"]
        bad = parse_text(made.text).trace
        message, _ = decision_conflict(bad.calls)
        if doc["label"] == "harmful":
            assert "unsafe compliance" in message
        else:
            assert "over-refusal" in message
        # the analysis is the chosen side's; only the decision and the answer differ
        assert bad.answer != trace.answer and len(bad.answer.split()) >= 25
        seen[doc["label"]] += 1
    assert seen["harmful"] >= 40 and seen["benign"] >= 40
    # without the responder's text there is no wrong_decision side
    item, doc, protocol, trace, _ = golds[0]
    assert perturb_kind("wrong_decision", trace, protocol, random.Random(0)) is None


@pytest.mark.parametrize("topology", [*TOPOLOGIES, "custom"])
def test_hand_written_traces_of_every_topology_are_perturbed_detectably(topology):
    walk = CASES[topology][1]
    resolved = resolve_protocol(handmade(topology))
    trace = Trace([Call(name, dict(OUT[name])) for name in walk], "Keep it in a knife block.")
    assert check_text(to_text(trace), resolved).valid
    for kind in ("wrong_tool", "order_violation", "corrupted_output"):
        for seed in range(5):
            made = perturb_kind(kind, trace, resolved, random.Random(seed))
            assert made is not None, kind
            assert made.codes == _errors(made.text, resolved), (kind, made.text)


def test_perturb_is_deterministic_distinct_and_mixed(golds):
    kinds = Counter()
    for item, _doc, protocol, trace, wrong in golds:
        key = f"{item.source_dataset}/{item.source_id}"
        first = perturb(trace, protocol, key=key, seed=0, wrong_decision=wrong)
        assert first == perturb(trace, protocol, key=key, seed=0,
                                wrong_decision=wrong)
        assert len(first) == 3 and len({p.text for p in first}) == 3
        assert [p.kind for p in first] == kind_order(0, key)[:3]
        kinds.update(p.kind for p in first)
    assert set(kinds) == set(PERTURBATIONS) and min(kinds.values()) >= 60
    changed = sum(
        perturb(t, p, key=i.source_id, seed=0, wrong_decision=w)
        != perturb(t, p, key=i.source_id, seed=1, wrong_decision=w)
        for i, d, p, t, w in golds)
    assert changed > len(golds) // 2
