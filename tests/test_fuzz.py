"""Property and fuzz tests of what reads untrusted input (issue #13): the codec, the record
readers, the validator and `serve`'s request handling. Whatever the input, they answer with a
result or a named problem — never an exception — and agree with a reference where one exists.

Each property has a fixed example budget and no deadline, so the file runs in seconds in CI;
failing examples are kept in `.hypothesis/` and replayed first on the next run. For a deeper
search, raise the budget: `FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py`.
"""

from __future__ import annotations

import json
import os

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safer_toolkit.builder.backends.offline import OfflineBackend
from safer_toolkit.builder.backends.serve import handle
from safer_toolkit.validation import CODES, Call, Trace, Validator, parse_text, to_text
from safer_toolkit.validation import records as records_module
from safer_toolkit.validation.codec import TOOL_TAG
from safer_toolkit.validation.records import ParseFailure, RecordSourceError, read_records
from tests.support.protocols import protocol

_BUDGET = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=_BUDGET, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FEW = settings(FUZZ, max_examples=max(1, _BUDGET // 3))  # the slow generators

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
#: JSON as orjson reads it back: integers within 64 bits, finite floats
scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text
           | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=16)
tool_names = st.from_regex(r"[A-Z][A-Z0-9]{0,6}(-[A-Z0-9]{1,5}){0,2}", fullmatch=True)
outputs = st.dictionaries(text, json_values, max_size=4)
#: text built from the pieces the readers look for, so the fuzzing reaches their branches
pieces = st.sampled_from(["<thinking>", "</thinking>", "<answer>", "</answer>", "\n", " ", "{",
                          "}", "[", "]", ":", '"', "\\", "[SAFETY-GATE]: ", "[VISUAL-SCAN]:",
                          '{"verdict": "refuse", "reason": "r"}', "[lower]: ", "\u2028", "\r"])
tricky_text = st.lists(pieces | text, max_size=40).map("".join)


# -- codec -----------------------------------------------------------------------------------

@FUZZ
@given(tricky_text, st.sampled_from(["strict", "lenient"]))
def test_parse_text_never_raises_and_reports_only_known_codes(value: str, mode: str) -> None:
    parsed = parse_text(value, mode)  # type: ignore[arg-type]
    assert {i.code for i in parsed.issues} <= set(CODES)
    for call in parsed.trace.calls:
        assert TOOL_TAG.fullmatch(f"[{call.tool}]:")
        assert isinstance(call.output, dict | str)


@FEW
@given(st.lists(st.tuples(tool_names, outputs), min_size=1, max_size=6))
def test_lenient_reads_typed_calls_sharing_a_line_as_typed(calls) -> None:
    bodies = [json.dumps(o, ensure_ascii=False) for _, o in calls]
    if any(TOOL_TAG.search(b) or "\n" in b or "<" in b for b in bodies):
        return  # a body that spells a call tag or a block tag is another property
    line = " ".join(f"[{name}]: {body}" for (name, _), body in zip(calls, bodies, strict=True))
    parsed = parse_text(f"<thinking>\n{line}\n</thinking>\n<answer>\nok\n</answer>", "lenient")
    assert [(c.tool, c.output) for c in parsed.trace.calls] == [(n, o) for n, o in calls]


@FEW
@given(st.lists(st.builds(Call, tool_names, outputs), max_size=6), text)
def test_both_modes_read_the_canonical_text_back_exactly(calls, answer) -> None:
    if any(tag in answer for tag in ("<thinking>", "</thinking>", "<answer>", "</answer>")):
        return
    trace = Trace(calls, answer)
    for mode in ("strict", "lenient"):
        parsed = parse_text(to_text(trace), mode)  # type: ignore[arg-type]
        assert parsed.trace == trace and parsed.issues == []


# -- validator -------------------------------------------------------------------------------

record_fields = st.fixed_dictionaries({}, optional={
    "id": json_values, "response": tricky_text | json_values,
    "calls": st.lists(st.fixed_dictionaries({"tool": tool_names | json_values,
                                             "output": outputs | json_values}), max_size=4)
    | json_values,
    "answer": text | json_values, "protocol": json_values | st.just(protocol("mesh")),
    "messages": json_values})


@FUZZ
@given(record_fields | json_values, st.sampled_from(["strict", "lenient"]))
def test_validator_never_raises_on_any_record(record, mode: str) -> None:
    result = Validator(protocol("tree"), mode=mode).validate(record, 3)  # type: ignore[arg-type]
    assert result.index == 3 and {i.code for i in result.issues} <= set(CODES)
    assert result.valid == (not any(i.severity == "error" for i in result.issues))
    assert all(len(i.message) <= 500 for i in result.issues)


# -- record readers ----------------------------------------------------------------------------

@FUZZ
@given(st.lists(json_values, max_size=12), st.integers(1, 64), st.sampled_from([",", ", ", ",\n"]))
def test_json_array_reader_agrees_with_orjson_at_any_chunk_size(
        tmp_path_factory, monkeypatch, values, chunk, separator) -> None:
    monkeypatch.setattr(records_module, "_CHUNK", chunk)
    path = tmp_path_factory.mktemp("array") / "in.json"
    path.write_bytes(b"[" + separator.encode().join(orjson.dumps(v) for v in values) + b"]\n")
    assert list(read_records(path)) == orjson.loads(path.read_bytes())


def _nested(depth: int, leaf: object) -> object:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 70), scalars), max_size=6), st.integers(1, 64))
def test_json_array_reader_reads_up_to_64_levels_and_refuses_deeper(
        tmp_path_factory, monkeypatch, shapes, chunk) -> None:
    monkeypatch.setattr(records_module, "_CHUNK", chunk)
    values = [_nested(depth, leaf) for depth, leaf in shapes]
    path = tmp_path_factory.mktemp("deep") / "in.json"
    path.write_bytes(orjson.dumps(values))
    got = list(read_records(path))
    assert len(got) == len(values)
    for (depth, _), value, read in zip(shapes, values, got, strict=True):
        if depth <= 64:
            assert read == value
        else:
            assert isinstance(read, ParseFailure) and "nests deeper than 64" in read.message


@FUZZ
@given(st.binary(max_size=300) | tricky_text.map(lambda t: ("[" + t).encode()),
       st.integers(1, 64), st.sampled_from(["in.json", "in.jsonl"]))
def test_record_readers_never_raise_on_any_bytes(
        tmp_path_factory, monkeypatch, data: bytes, chunk: int, name: str) -> None:
    monkeypatch.setattr(records_module, "_CHUNK", chunk)
    path = tmp_path_factory.mktemp("bytes") / name
    path.write_bytes(data)
    try:
        for record in read_records(path, max_record_bytes=128):
            if isinstance(record, ParseFailure):
                assert record.where.startswith(str(path)) and record.message
    except RecordSourceError as exc:  # documented: the file as a whole is unreadable (exit 2)
        assert str(path) in str(exc)


# -- serve -----------------------------------------------------------------------------------

_BACKEND = OfflineBackend()
parts = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "other"])
                               | json_values},
                              optional={"text": text | json_values,
                                        "image_url": st.fixed_dictionaries(
                                            {"url": st.just("data:image/png;base64,AAAA")
                                             | json_values}) | json_values})
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "bogus"]) | json_values},
    optional={"content": text | st.lists(parts, max_size=4) | json_values})
bodies = st.fixed_dictionaries({}, optional={
    "model": st.just("safer-offline-responder") | json_values,
    "messages": st.lists(messages, max_size=4) | json_values,
    "response_format": st.fixed_dictionaries(
        {"type": st.sampled_from(["json_schema", "json_object", "text"]) | json_values},
        optional={"json_schema": st.fixed_dictionaries(
            {"name": st.sampled_from(["safer_toolkit_plan", "safer_toolkit_judge"])
             | json_values}) | json_values}) | json_values,
    "temperature": json_values, "seed": json_values, "n": json_values, "stream": json_values,
    "stop": json_values})


@FUZZ
@given(bodies | json_values)
def test_serve_answers_any_json_body_with_200_or_a_400_naming_the_field(body) -> None:
    status, payload = handle(orjson.dumps(body), _BACKEND.reply_body, _BACKEND)
    answer = orjson.loads(payload)
    assert status in (200, 400), answer
    if status == 400:
        assert answer["error"]["message"] and "param" in answer["error"]
    else:
        assert isinstance(answer["choices"][0]["message"]["content"], str)


@FUZZ
@given(st.binary(max_size=200))
def test_serve_answers_any_bytes_with_a_status(data: bytes) -> None:
    status, payload = handle(data, _BACKEND.reply_body, _BACKEND)
    assert status in (200, 400) and orjson.loads(payload)
