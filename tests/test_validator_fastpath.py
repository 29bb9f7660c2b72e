"""The valid-path shortcut never disagrees with the careful checks (property-based)."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from safer_toolkit.validation import Call, Trace, library_protocol_document, resolve_protocol
from safer_toolkit.validation import validator as v
from tests.support.protocols import OUT

PROTOCOLS = {t: resolve_protocol(library_protocol_document(t))
             for t in ("linear", "tree", "mesh", "shield", "loop")}
NAMES = [*OUT, "MYSTERY-TOOL"]
corruptions = st.sampled_from([None] * 12 + ["untyped", "extra_key", "bad_enum", "severity"])


@st.composite
def traces(draw):
    topology = draw(st.sampled_from(sorted(PROTOCOLS)))
    graph = PROTOCOLS[topology].graph
    legal = draw(st.integers(0, 3)) > 0  # mostly legal walks, so both paths get exercised
    walk = [draw(st.sampled_from(graph.start))]
    for _ in range(draw(st.integers(2, 11))):
        nexts = graph.successors(walk[-1])
        if legal and walk[-1] in graph.terminal and len(walk) >= 3 and draw(st.booleans()):
            break
        if legal and nexts:
            walk.append(draw(st.sampled_from(nexts)))
        else:
            walk.append(draw(st.sampled_from(NAMES)))
    calls = []
    for name in walk:
        output = copy.deepcopy(OUT.get(name, {"x": 1}))
        kind = draw(corruptions)
        if kind == "untyped":
            output = "free text"
        elif kind == "extra_key":
            output["extra"] = True
        elif kind == "bad_enum" and "intent" in output:
            output["intent"] = "curious"
        elif kind == "severity" and name == "RISK-SCORER":
            output["severity"] = draw(st.integers(0, 3))
        if name == "INTENT-RADAR" and kind is None:
            output["intent"] = draw(st.sampled_from(["benign", "ambiguous", "harmful"]))
        if name == "SAFETY-GATE" and kind is None:
            output["verdict"] = draw(st.sampled_from(["comply", "refuse", "redirect"]))
        calls.append(Call(name, output))
    answer = draw(st.sampled_from(["An answer."] * 8 + ["  ", ""]))
    return topology, Trace(calls, answer)


@settings(max_examples=800, deadline=None)
@given(traces(), st.sampled_from(["strict", "lenient"]))
def test_shortcut_agrees_with_careful_checks(case, mode) -> None:
    topology, trace = case
    protocol = PROTOCOLS[topology]
    fast = v.check_trace(trace, protocol, mode)
    clean = v._clean(trace, protocol)
    original = v._clean
    try:
        v._clean = lambda *_: False
        careful = v.check_trace(trace, protocol, mode)
    finally:
        v._clean = original
    if clean:
        assert careful.issues == [] and fast.issues == []
    else:
        assert fast.issues == careful.issues
    assert fast.valid == careful.valid
    assert (fast.legal_prefix, fast.typed_valid, fast.typed_total) == (
        careful.legal_prefix, careful.typed_valid, careful.typed_total)
