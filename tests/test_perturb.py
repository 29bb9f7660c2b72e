"""DPO perturbations: every programmatic one is caught by the validator, on many items and every
topology, with the codes it records; choices are deterministic per (item, seed)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from safer_toolkit.builder.sources.seed import seed_corpus
from safer_toolkit.builder.stages.perturb import PERTURBATIONS, perturb, perturb_kind
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
    chains = run_chain(list(seed_corpus(160, seed=3)), samples=1)
    return [(c.item, c.doc, c.protocol, parse_text(c.candidates[0].text).trace) for c in chains]


def _errors(text, protocol) -> list[str]:
    return sorted({i.code for i in check_text(text, protocol, "strict").issues
                   if i.severity == "error"})


def test_every_perturbation_is_caught_with_the_codes_it_records(golds):
    caught: Counter[tuple[str, str]] = Counter()
    for item, doc, protocol, trace in golds:
        for kind in PERTURBATIONS:
            for variant in range(3):
                made = perturb_kind(kind, trace, protocol, doc["label"],
                                    random.Random(f"{item.source_id}:{variant}"))
                if made is None:
                    assert kind == "wrong_decision"  # only a trace without INTENT-RADAR +
                    names = {c.tool for c in trace.calls}  # SAFETY-GATE cannot show it
                    assert not {"INTENT-RADAR", "SAFETY-GATE"} <= names
                    continue
                assert made.kind == kind
                assert made.codes and made.codes == _errors(made.text, protocol)
                caught[(kind, doc["topology"])] += 1
    for kind in PERTURBATIONS:
        for topology in TOPOLOGIES:
            assert caught[(kind, topology)] >= 3, (kind, topology, caught)


def test_wrong_decision_contradicts_the_analysis_both_ways(golds):
    seen = Counter()
    for item, doc, protocol, trace in golds:
        made = perturb_kind("wrong_decision", trace, protocol, doc["label"],
                            random.Random(item.source_id))
        if made is None:
            continue
        assert "decision_conflict" in made.codes
        bad = parse_text(made.text).trace
        message, _ = decision_conflict(bad.calls)
        if doc["label"] == "harmful":
            assert "unsafe compliance" in message
            assert not bad.answer.startswith(("I can't", "I won't"))
        else:
            assert "over-refusal" in message
            assert "can't" in bad.answer or "won't" in bad.answer
        seen[doc["label"]] += 1
    assert seen["harmful"] >= 20 and seen["benign"] >= 20


@pytest.mark.parametrize("topology", [*TOPOLOGIES, "custom"])
def test_hand_written_traces_of_every_topology_are_perturbed_detectably(topology):
    walk = CASES[topology][1]
    resolved = resolve_protocol(handmade(topology))
    trace = Trace([Call(name, dict(OUT[name])) for name in walk], "Keep it in a knife block.")
    assert check_text(to_text(trace), resolved).valid
    for kind in PERTURBATIONS:
        for seed in range(5):
            made = perturb_kind(kind, trace, resolved, "benign", random.Random(seed))
            assert made is not None, kind
            assert made.codes == _errors(made.text, resolved), (kind, made.text)


def test_perturb_is_deterministic_distinct_and_mixed(golds):
    kinds = Counter()
    for item, doc, protocol, trace in golds:
        key = f"{item.source_dataset}/{item.source_id}"
        first = perturb(trace, protocol, doc["label"], key=key, seed=0)
        assert first == perturb(trace, protocol, doc["label"], key=key, seed=0)
        assert len(first) == 3 and len({p.text for p in first}) == 3
        kinds.update(p.kind for p in first)
    assert set(kinds) == set(PERTURBATIONS) and min(kinds.values()) >= 60
    changed = sum(
        perturb(t, p, d["label"], key=i.source_id, seed=0)
        != perturb(t, p, d["label"], key=i.source_id, seed=1) for i, d, p, t in golds)
    assert changed > len(golds) // 2
