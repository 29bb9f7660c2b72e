"""Hostile input to `safer-toolkit validate` (issue #13, cases 1, 6 and 7): memory and time stay
bounded while a file is parsed, every problem is a message naming the file, record or flag,
and the validator agrees with docs/protocol.md §2, §3 where differential testing found it did
not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from safer_toolkit.cli import main
from safer_toolkit.validation import Validator, from_stored, parse_text, to_text
from tests.support.bounded import GiB, run_bounded
from tests.support.protocols import protocol, valid_stored

GOOD = {"id": "good", "response": to_text(from_stored(valid_stored("mesh")))}
MESH = ("--library", "default", "--topology", "mesh")


def _validate(*argv: str, memory: int = GiB) -> object:
    return run_bounded([sys.executable, "-m", "safer_toolkit", "validate", *argv],
                       memory=memory, cpu_s=30, timeout_s=60)


def _rows(report: Path) -> list[dict]:
    return [json.loads(line) for line in report.read_text().splitlines()]


def _validate_report(data: Path) -> tuple[object, list[dict]]:
    """The CLI run (bounded) on `data` and its report rows; it must exit 1 without a trace."""
    report = data.with_name("r.jsonl")
    run = _validate(str(data), *MESH, "--report", str(report))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run
    return run, _rows(report)


def _parse_error(row: dict, *needles: str) -> None:
    found = row["issues"][0]
    assert found["code"] == "parse_error" and all(n in found["message"] for n in needles), row


# -- case 1: bounded memory while parsing ----------------------------------------------------

def test_deeply_nested_array_element_is_refused_while_parsing(tmp_path) -> None:
    # 200 KB of `[`: the old reader built the whole element before checking its depth and
    # grew with the square of the depth (23 GB here before the kernel killed it)
    data = tmp_path / "deep.json"
    data.write_text("[" + "[" * 100_000 + "]" * 100_000 + ", " + json.dumps(GOOD) + "]")
    run, rows = _validate_report(data)
    _parse_error(rows[0], "deep.json[0]", "nests deeper than 64")
    assert rows[1]["valid"] and rows[1]["id"] == "good"  # the next element is still read
    assert run.peak_mib < 150, run


def test_unclosed_deep_array_is_one_parse_error(tmp_path) -> None:
    data = tmp_path / "deep.json"
    data.write_text("[" * 200_000)
    run, [row] = _validate_report(data)
    _parse_error(row, "deep.json[0]", "the file ends inside the array")
    assert run.peak_mib < 150, run


def test_oversized_array_element_is_skipped_unheld(tmp_path) -> None:
    # the 8 MiB per-record cap applies to array elements as it does to JSONL lines
    data = tmp_path / "big.json"
    with data.open("w") as f:
        f.write('[{"id": "big", "response": "')
        for _ in range(24):
            f.write("x" * (1 << 20))
        f.write('"}, ' + json.dumps(GOOD) + "]")
    run, rows = _validate_report(data)
    _parse_error(rows[0], "big.json[0]", "exceeds 8388608 bytes")
    assert rows[1]["valid"]
    assert run.peak_mib < 80, run  # never the 24 MiB element, let alone its str


def test_jsonl_whose_first_line_is_an_array_is_read_as_jsonl(tmp_path, capsys) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps([GOOD]) + "\n" + json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    report = tmp_path / "r.jsonl"
    code = main(["validate", str(data), *MESH, "--report", str(report)])
    capsys.readouterr()
    rows = _rows(report)
    assert [r["valid"] for r in rows] == [False, True, True]  # every line is a record
    assert rows[0]["issues"][0] == {"code": "schema", "severity": "error",
                                    "message": "record is not a JSON object", "path": ""}
    assert code == 1


def test_broken_array_element_does_not_hide_the_next_ones(tmp_path, capsys) -> None:
    data = tmp_path / "in.json"
    data.write_text("[" + json.dumps(GOOD) + ", {broken: 1}, " + json.dumps(GOOD) + "] trailing")
    report = tmp_path / "r.jsonl"
    main(["validate", str(data), *MESH, "--report", str(report)])
    capsys.readouterr()
    rows = _rows(report)
    assert [r["valid"] for r in rows] == [True, False, True, False]
    assert "in.json[1]: not JSON" in rows[1]["issues"][0]["message"]
    assert "in.json[3]" in rows[3]["issues"][0]["message"]
    assert "text after the end of the array" in rows[3]["issues"][0]["message"]


# -- case 6: the report destination, duplicate ids -----------------------------------------

def test_report_that_is_a_folder_fails_at_once_and_leaves_nothing(tmp_path, capsys) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(GOOD) + "\n")
    folder = tmp_path / "reports"
    folder.mkdir()
    code = main(["validate", str(data), *MESH, "--report", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and "is a folder" in err and str(folder) in err
    assert list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "reports"]


def test_report_equal_to_an_input_is_refused(tmp_path, capsys) -> None:
    data = tmp_path / "in.jsonl"
    original = json.dumps(GOOD) + "\n"
    data.write_text(original)
    code = main(["validate", str(data), *MESH, "--report", str(tmp_path / "." / "in.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "also an input" in err
    assert data.read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_report_rename_failure_leaves_no_temp_file(tmp_path) -> None:
    from safer_toolkit.validation.report import AtomicWriter

    target = tmp_path / "r.jsonl"
    target.mkdir()  # a folder created after the checks: the final rename fails
    try:
        with AtomicWriter(target) as report:
            report.file.write(b"x\n")
    except OSError:
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["r.jsonl"]


@pytest.mark.parametrize("in_memory", [200_000, 100])  # counted in memory, or spilled to disk
def test_records_sharing_an_id_are_reported(tmp_path, capsys, monkeypatch, in_memory) -> None:
    from safer_toolkit.validation.report import DuplicateIds

    monkeypatch.setattr(DuplicateIds, "IN_MEMORY", in_memory)
    data = tmp_path / "in.jsonl"
    distinct = "".join(json.dumps({**GOOD, "id": f"d{i}"}) + "\n" for i in range(300))
    shared = (json.dumps(GOOD) + "\n") * 5_000
    typed = json.dumps({**GOOD, "id": 7}) + "\n" + json.dumps({**GOOD, "id": "7"}) + "\n"
    long_id = "z" * 300
    longs = (json.dumps({**GOOD, "id": long_id}) + "\n") * 2
    data.write_text(distinct + shared + typed + longs + distinct.splitlines(keepends=True)[0])
    code = main(["validate", str(data), *MESH, "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 0 and summary["valid"] == 5_305  # valid records; the ids are a warning
    found = summary["duplicate_ids"]
    assert (found["ids"], found["records"]) == (3, 5_004)  # 7 and "7" are different ids
    assert found["examples"][0] == {"id": "d0", "count": 2, "first_index": 0}
    assert found["examples"][1] == {"id": "good", "count": 5_000, "first_index": 300}
    assert found["examples"][2]["id"].startswith("z" * 200 + "… (sha256 ")
    assert "3 id(s) are shared by 5,004 records" in err and "'good' ×5,000" in err


# -- case 7: agreement with docs/protocol.md §2, §3 -----------------------------------------------

def test_tool_purpose_with_a_newline_is_protocol_invalid() -> None:
    doc = protocol("mesh")
    tool = {"name": "CUSTOM-CHECK", "stage": "reasoning", "purpose": "line one\nline two",
            "output": {"type": "object", "properties": {}, "required": [],
                       "additionalProperties": False}}
    doc["tools"] = [*doc["tools"], tool]
    result = Validator().validate({**GOOD, "protocol": doc})
    assert "protocol_invalid" in result.codes
    found = next(i for i in result.issues if i.code == "protocol_invalid")
    assert found.path.endswith("/purpose")
    tool["purpose"] = "line one, line two"
    assert Validator().validate({**GOOD, "protocol": doc}).valid


def test_lenient_reads_several_typed_calls_on_one_line() -> None:
    text = ('<thinking>\n[INTENT-RADAR]: {"intent": "harmful", "evidence": "asks for harm"} '
            '[RISK-SCORER]: {"category": "weapons_physical_harm", "severity": 3, "rationale": '
            '"r"} [SAFETY-GATE]: {"verdict": "refuse", "reason": "harm"}\n</thinking>\n'
            "<answer>\nNo.\n</answer>")
    parsed = parse_text(text, "lenient")
    assert [c.tool for c in parsed.trace.calls] == ["INTENT-RADAR", "RISK-SCORER",
                                                    "SAFETY-GATE"]
    assert all(c.typed for c in parsed.trace.calls)
    assert parsed.trace.calls[2].output == {"verdict": "refuse", "reason": "harm"}
    result = Validator(protocol("mesh"), mode="lenient").validate({"response": text})
    assert "decision_conflict" not in result.codes and "untyped_output" not in result.codes
