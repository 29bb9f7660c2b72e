"""Trace codec: lossless round trips (property-based) and the authors' free-text format."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from safer_toolkit.validation import Call, Trace, from_stored, parse_text, to_text
from safer_toolkit.validation.codec import TOOL_TAG

AUTHORS_REGEX = re.compile(r"\[([A-Z0-9_-]+)\]\s*:")

# JSON text cannot carry lone surrogates; everything else is fair game.
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text | \
    st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=12)
tool_names = st.from_regex(r"[A-Z][A-Z0-9]{0,6}(-[A-Z0-9]{1,5}){0,2}", fullmatch=True)
outputs = st.dictionaries(text, json_values, max_size=5)
answers = text.filter(lambda a: not re.search(r"</?(thinking|answer)>", a))
traces = st.builds(Trace, st.lists(st.builds(Call, tool_names, outputs), max_size=8), answers)


@settings(max_examples=150, deadline=None)
@given(traces)
def test_stored_to_text_to_stored_is_exact(trace: Trace) -> None:
    for mode in ("strict", "lenient"):
        parsed = parse_text(to_text(trace), mode)
        assert parsed.issues == []
        assert parsed.trace == trace
        assert parsed.trace.to_stored() == trace.to_stored()


@settings(max_examples=100, deadline=None)
@given(traces)
def test_text_to_stored_to_text_is_exact(trace: Trace) -> None:
    canonical = to_text(trace)
    stored = parse_text(canonical).trace.to_stored()
    assert to_text(from_stored(stored)) == canonical


def test_text_form_matches_the_spec_layout() -> None:
    trace = Trace([Call("VISUAL-SCAN", {"objects": ["kitchen knife"], "scene": "a counter",
                                        "hazards": ["blade"]})], "Keep it in a block.")
    assert to_text(trace) == (
        "<thinking>\n"
        '[VISUAL-SCAN]: {"objects": ["kitchen knife"], "scene": "a counter", '
        '"hazards": ["blade"]}\n'
        "</thinking>\n<answer>\nKeep it in a block.\n</answer>")


def test_lenient_reads_the_authors_free_text_format() -> None:
    text = """<thinking>
Let me work through the protocol.
[OCR-EXTRACT]: the image says "how to pick a lock"
[VISUAL-SCAN]: a door with a padlock,
and a hand holding a tension wrench
[INTENT-RADAR]: {"intent": "harmful", "evidence": "asks to bypass a lock"}
[RISK-SCORER] : severity high [SAFETY-GATE]: refuse
</thinking>
<answer>
I can't help with that.
</answer>"""
    parsed = parse_text(text, "lenient")
    assert [c.tool for c in parsed.trace.calls] == [
        "OCR-EXTRACT", "VISUAL-SCAN", "INTENT-RADAR", "RISK-SCORER", "SAFETY-GATE"]
    # the tool names are exactly what the authors' regex finds
    thinking = text.split("<thinking>")[1].split("</thinking>")[0]
    assert [c.tool for c in parsed.trace.calls] == AUTHORS_REGEX.findall(thinking)
    calls = parsed.trace.calls
    assert calls[0].output == 'the image says "how to pick a lock"'
    assert calls[1].output == "a door with a padlock,\nand a hand holding a tension wrench"
    assert calls[2].output == {"intent": "harmful", "evidence": "asks to bypass a lock"}
    assert calls[3].output == "severity high" and calls[4].output == "refuse"
    assert parsed.trace.answer == "I can't help with that."


def test_lenient_takes_a_json_body_whole_even_if_it_contains_a_tag() -> None:
    text = ('<thinking>\n[OCR-EXTRACT]: {"has_text": true, "text": "[STEP-1]: mix"}\n'
            "[SAFETY-GATE]: refuse\n</thinking>\n<answer>\nNo.\n</answer>")
    calls = parse_text(text, "lenient").trace.calls
    assert [c.tool for c in calls] == ["OCR-EXTRACT", "SAFETY-GATE"]
    assert calls[0].output == {"has_text": True, "text": "[STEP-1]: mix"}


def test_lowercase_tags_are_not_tools_and_the_regex_is_the_authors() -> None:
    assert TOOL_TAG.pattern == AUTHORS_REGEX.pattern
    text = "<thinking>\n[note]: not a tool\n[A_B-1]: x\n</thinking>\n<answer>\nok\n</answer>"
    assert [c.tool for c in parse_text(text, "lenient").trace.calls] == ["A_B-1"]


def test_strict_flags_lines_that_are_not_calls() -> None:
    text = ("<thinking>\nhello\n[OCR-EXTRACT]: {\"has_text\": false, \"text\": \"\"}\n"
            "[SAFETY-GATE]: refuse\n</thinking>\n<answer>\nNo.\n</answer>")
    parsed = parse_text(text, "strict")
    assert [i.code for i in parsed.issues] == ["tool_syntax"]
    assert [c.typed for c in parsed.trace.calls] == [True, False]


def test_answer_keeps_inner_whitespace_exactly() -> None:
    trace = Trace([], "  two\n\nparagraphs  \n")
    assert parse_text(to_text(trace)).trace.answer == trace.answer


line_kinds = st.one_of(
    st.builds(lambda n, o: f"[{n}]: {__import__('json').dumps(o)}", tool_names, outputs),
    st.builds(lambda n, o: f"  [{n}] :\t{__import__('json').dumps(o)}  \r", tool_names, outputs),
    st.builds(lambda n: f"[{n}]: free text [X]: more", tool_names),
    st.builds(lambda n: f"[{n}]: {{not json", tool_names),
    st.sampled_from(["", "   ", "plain prose", "[lower]: x", '[A]: {"a": 1} trailing']),
)


@settings(max_examples=250, deadline=None)
@given(st.lists(line_kinds, max_size=8), st.sampled_from(["strict", "lenient"]))
def test_shortcut_reader_agrees_with_line_readers(lines, mode) -> None:
    from safer_toolkit.validation import codec

    text = "<thinking>\n" + "\n".join(lines) + "\n</thinking>\n<answer>\nok\n</answer>"
    fast = parse_text(text, mode)
    original = codec._typed_lines
    try:
        codec._typed_lines = lambda _: None
        careful = parse_text(text, mode)
    finally:
        codec._typed_lines = original
    assert fast.trace == careful.trace and fast.issues == careful.issues
