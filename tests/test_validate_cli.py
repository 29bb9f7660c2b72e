"""`safer-toolkit validate`: the CLI contract, input formats, bad input and bounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from safer_toolkit.cli import main
from safer_toolkit.validation import from_stored, to_text
from tests.support.protocols import protocol, stored, valid_stored

GOOD = {"id": "good", "response": to_text(from_stored(valid_stored("mesh")))}
BAD = {"id": 7, **stored(["SAFETY-GATE", "VISUAL-SCAN"])}


def _write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _report(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def proto_file(tmp_path: Path) -> Path:
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps(protocol("mesh")))
    return path


def test_report_lines_in_input_order_and_exit_status(tmp_path, capsys, proto_file) -> None:
    data = _write_jsonl(tmp_path / "in.jsonl", [GOOD, "{not json", "", BAD, [1, 2], GOOD])
    report = tmp_path / "report.jsonl"
    code, out, _ = _run(capsys, str(data), "--protocol", str(proto_file), "--report",
                        str(report))
    assert code == 1
    rows = _report(report)
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4]  # the blank line is not a record
    assert [r["id"] for r in rows] == ["good", None, 7, None, "good"]
    assert [r["valid"] for r in rows] == [True, False, False, False, True]
    assert rows[1]["issues"][0]["code"] == "parse_error"
    assert "in.jsonl:2" in rows[1]["issues"][0]["message"]
    assert rows[3]["issues"] == [{"code": "schema", "severity": "error",
                                  "message": "record is not a JSON object", "path": ""}]
    assert {"bad_start", "illegal_transition", "too_few_calls"} <= {
        i["code"] for i in rows[2]["issues"]}
    for row in rows:
        assert set(row) == {"index", "id", "valid", "issues"}
        for i in row["issues"]:
            assert set(i) == {"code", "severity", "message", "path"}
    assert out.splitlines()[0] == "5 records: 2 valid, 3 invalid"
    assert "parse_error" in out


def test_json_summary_and_all_valid_exit_zero(tmp_path, capsys) -> None:
    data = _write_jsonl(tmp_path / "in.jsonl", [GOOD, GOOD])
    code, out, _ = _run(capsys, str(data), "--library", "default", "--topology", "mesh",
                        "--json")
    assert code == 0
    assert json.loads(out) == {"records": 2, "valid": 2, "invalid": 0, "errors": {},
                               "warnings": {},
                               "duplicate_ids": {"ids": 1, "records": 2, "examples": [
                                   {"id": "good", "count": 2, "first_index": 0}]}}


def test_json_array_and_parquet_inputs(tmp_path, capsys, proto_file) -> None:
    array = tmp_path / "in.json"
    array.write_text(json.dumps([GOOD, BAD, {**GOOD, "protocol": protocol("linear")}]))
    table = pa.table({"id": ["p0", "p1"],
                      "response": [GOOD["response"], GOOD["response"].replace("OCR", "XOR")],
                      "protocol": [json.dumps(protocol("mesh"))] * 2})
    pq.write_table(table, tmp_path / "in.parquet")
    stored_rows = pa.table({"calls": [json.dumps(valid_stored("mesh")["calls"])],
                            "answer": ["ok"]})
    pq.write_table(stored_rows, tmp_path / "stored.parquet")
    report = tmp_path / "r.jsonl"
    code, _, _ = _run(capsys, str(array), str(tmp_path / "in.parquet"),
                      str(tmp_path / "stored.parquet"), "--protocol", str(proto_file),
                      "--report", str(report))
    rows = _report(report)
    assert code == 1
    assert [(r["index"], r["valid"]) for r in rows] == [
        (0, True), (1, False), (2, False), (3, True), (4, False), (5, True)]
    assert rows[4]["id"] == "p1"  # an embedded protocol (a JSON string) wins over --protocol
    assert "unknown_tool" in {i["code"] for i in rows[4]["issues"]}
    assert "bad_start" in {i["code"] for i in rows[2]["issues"]}  # linear, embedded


def test_broken_json_array_reports_where_it_broke(tmp_path, capsys) -> None:
    array = tmp_path / "in.json"
    array.write_text("[" + json.dumps(GOOD) + ", {broken")
    report = tmp_path / "r.jsonl"
    code, _, _ = _run(capsys, str(array), "--library", "default", "--topology", "mesh",
                      "--report", str(report))
    rows = _report(report)
    assert code == 1 and rows[0]["valid"]
    assert rows[1]["issues"][0]["code"] == "parse_error"
    assert "in.json[1]" in rows[1]["issues"][0]["message"]


def test_lenient_mode_accepts_the_authors_format(tmp_path, capsys) -> None:
    text = ("<thinking>\n[VISUAL-SCAN]: a knife on a counter\n[INTENT-RADAR]: benign\n"
            "[SAFETY-GATE]: comply\n</thinking>\n<answer>\nSure.\n</answer>")
    data = _write_jsonl(tmp_path / "in.jsonl", [{"response": text}])
    args = (str(data), "--library", "default", "--topology", "mesh", "--json")
    code, out, _ = _run(capsys, *args)
    assert code == 1 and json.loads(out)["errors"] == {"untyped_output": 3}
    code, out, _ = _run(capsys, *args, "--lenient")
    assert code == 0 and json.loads(out)["warnings"] == {"untyped_output": 3}


@pytest.mark.parametrize("argv,needle", [
    (["missing.jsonl", "--library", "default", "--topology", "mesh"], "missing.jsonl"),
    (["in.jsonl", "--library", "default"], "--library and --topology go together"),
    (["in.jsonl", "--protocol", "nope.json"], "nope.json"),
    (["in.jsonl", "--protocol", "bad_protocol.json"], "the given protocol is invalid"),
    (["in.jsonl", "--protocol", "in.jsonl", "--topology", "mesh"], "not both"),
])
def test_usage_and_io_errors_exit_2_without_traceback(tmp_path, capsys, argv, needle) -> None:
    _write_jsonl(tmp_path / "in.jsonl", [GOOD])
    (tmp_path / "bad_protocol.json").write_text(json.dumps(protocol("mesh", label="x")))
    os.chdir(tmp_path)
    code, _, err = _run(capsys, *argv)
    assert code == 2 and needle in err and "Traceback" not in err


def test_unreadable_report_destination_is_an_io_error(tmp_path, capsys) -> None:
    data = _write_jsonl(tmp_path / "in.jsonl", [GOOD])
    code, _, err = _run(capsys, str(data), "--library", "default", "--topology", "mesh",
                        "--report", str(tmp_path / "no" / "such" / "dir" / "r.jsonl"))
    assert code == 2 and "Traceback" not in err


def test_oversized_lines_and_deep_nesting_are_bounded(tmp_path, capsys) -> None:
    from safer_toolkit.validation import Validator, records

    huge = json.dumps({"response": "x" * 50_000})
    deep = '{"response": ' + "[" * 5000 + "]" * 5000 + "}"
    data = _write_jsonl(tmp_path / "in.jsonl", [huge, GOOD, deep])
    got = list(records.read_records(data, max_record_bytes=20_000))
    assert "in.jsonl:1: " in f"{got[0].where}: " and "exceeds 20000 bytes" in got[0].message
    assert got[1] == GOOD  # the rest of the file is still read
    assert got[2].where.endswith("in.jsonl:3") and "depth limit" in got[2].message
    long_text = {"response": "<thinking>\n" + "y" * 1_000_001 + "\n</thinking>"}
    result = Validator(protocol("mesh")).validate(long_text)
    assert result.codes == ["schema"] and "limit is 1000000" in result.issues[0].message
    deep_array = tmp_path / "deep.json"
    deep_array.write_text("[" + json.dumps({"response": [[[[[[[[[[[[]]]]]]]]]]]]}) + ","
                          + deep + "]")
    got = list(records.read_records(deep_array))
    assert got[0]["response"] and "nests deeper than 64" in got[1].message


def test_report_is_written_atomically(tmp_path, capsys) -> None:
    data = _write_jsonl(tmp_path / "in.jsonl", [GOOD])
    report = tmp_path / "r.jsonl"
    report.write_text("previous report\n")
    _run(capsys, str(data), str(tmp_path / "missing.jsonl"), "--library", "default",
         "--topology", "mesh", "--report", str(report))
    assert report.read_text() == "previous report\n"  # a failed run leaves it untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".r.jsonl")] == []


def test_console_script_cold_start_imports_little(tmp_path) -> None:
    data = _write_jsonl(tmp_path / "in.jsonl", [GOOD])
    code = (f"import sys; sys.argv=['safer-toolkit','validate',{str(data)!r},"
            "'--library','default','--topology','mesh','--json'];\n"
            "from safer_toolkit.cli import main\ntry:\n    main()\nfinally:\n"
            "    heavy=[m for m in ('datasets','torch','pyarrow','polars','PIL','aiohttp',"
            "'openai','jsonschema') if m in sys.modules]\n"
            "    print('HEAVY', heavy, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert "HEAVY []" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["valid"] == 1


@pytest.mark.parametrize("form", ["jsonl", "array", "parquet"])
def test_memory_stays_flat_whatever_the_file_size(tmp_path, form) -> None:
    import tracemalloc

    from safer_toolkit.validation import Validator
    from safer_toolkit.validation.report import Summary, validate_files

    def peak(n: int) -> int:
        path = tmp_path / f"{n}.{form}"
        rows = [GOOD] * n
        if form == "jsonl":
            _write_jsonl(path, rows)
        elif form == "array":
            path.write_text(json.dumps(rows))
        else:
            pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=500)
        validator = Validator(protocol("mesh"))
        tracemalloc.start()
        summary = Summary()
        for result in validate_files([path], validator):
            summary.add(result)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert summary.valid == n
        return top

    small, large = peak(1_000), peak(10_000)
    assert large < 1.5 * small + 200_000, (small, large)


def test_report_gets_the_usual_file_mode(tmp_path, capsys) -> None:
    data = _write_jsonl(tmp_path / "in.jsonl", [GOOD])
    report = tmp_path / "r.jsonl"
    old = os.umask(0o022)
    try:
        from safer_toolkit.validation import report as report_module

        report_module._UMASK = 0o022
        _run(capsys, str(data), "--library", "default", "--topology", "mesh", "--report",
             str(report))
    finally:
        os.umask(old)
    assert report.stat().st_mode & 0o777 == 0o644
