"""Local loaders: JSONL, parquet and image folders, with bad records and path escapes."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from safer_toolkit.builder.sources.intake import (
    BadRecord,
    Columns,
    Limits,
    RecordError,
    SourceError,
    image_extension,
)
from safer_toolkit.builder.sources.local import (
    load_image_folder,
    load_jsonl,
    load_local,
    load_parquet,
)
from tests.support.source_layouts import jpeg, png

NAMES = {"source_dataset": "my-set", "source_license": "cc-by-4.0"}


def huge_header_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds almost no data (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "set"
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.png").write_bytes(png((200, 10, 10)))
    (root / "img" / "b.jpg").write_bytes(jpeg((10, 200, 10)))
    (root / "img" / "bomb.png").write_bytes(huge_header_png(100_000, 100_000))
    (root / "img" / "big.png").write_bytes(png((1, 2, 3), (1200, 1000)))
    (tmp_path / "secret.png").write_bytes(png((0, 0, 0)))
    os.symlink(tmp_path / "secret.png", root / "img" / "link-out.png")
    os.symlink(root / "img" / "a.png", root / "img" / "link-in.png")
    return root


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
                    encoding="utf-8")
    return path


def collect(loader, *args, **kwargs):
    bad: list[BadRecord] = []
    items = list(loader(*args, on_bad=bad.append, **{**NAMES, **kwargs}))
    return items, bad


def test_jsonl_good_records_keep_original_bytes_and_mapping(folder: Path):
    path = write_jsonl(folder / "data.jsonl", [
        {"uid": "x1", "prompt": "How do I sharpen a knife?", "img": "img/a.png",
         "cat": "weapons_physical_harm", "lab": "benign"},
        {"uid": "x2", "prompt": "What is this?", "img": "img/b.jpg", "cat": "knives",
         "lab": "unsafe"},
    ])
    columns = Columns(question="prompt", image="img", id="uid", risk_category="cat", label="lab")
    items, bad = collect(load_jsonl, path, columns=columns,
                         category_map={"knives": "weapons_physical_harm"},
                         label_map={"unsafe": "harmful"})
    assert bad == []
    assert [i.source_id for i in items] == ["x1", "x2"]
    assert items[0].image == (folder / "img" / "a.png").read_bytes()
    assert items[1].image == (folder / "img" / "b.jpg").read_bytes()
    assert [i.image_name for i in items] == ["a.png", "b.jpg"]
    assert [(i.risk_category, i.label) for i in items] == [
        ("weapons_physical_harm", "benign"), ("weapons_physical_harm", "harmful")]
    assert items[0].source_dataset == "my-set" and items[0].source_license == "cc-by-4.0"
    assert items[0].meta == {"file": "data.jsonl", "line": 1}


def test_an_image_file_without_extension_is_named_with_its_format(folder: Path):
    (folder / "img" / "photo").write_bytes(jpeg((10, 10, 200)))
    (folder / "img" / "dotted.").write_bytes(png((10, 10, 200)))
    path = write_jsonl(folder / "data.jsonl", [
        {"question": "What is shown?", "image": "img/photo"},
        {"question": "What is shown here?", "image": "img/dotted."},
    ])
    items, bad = collect(load_jsonl, path)
    assert bad == []
    assert items[0].image == (folder / "img" / "photo").read_bytes()
    assert [i.image_name for i in items] == ["photo.jpg", "dotted_.png"]


def test_jsonl_bad_records_reported_with_line_and_skipped(folder: Path):
    good = {"question": "What is shown?", "image": "img/a.png"}
    path = write_jsonl(folder / "data.jsonl", [
        good,                                                      # 1 ok
        "{not json",                                               # 2
        "[1, 2]",                                                  # 3
        {"image": "img/a.png"},                                    # 4 no question
        {"question": "q", "image": "img/missing.png"},             # 5
        {"question": "q", "image": "../secret.png"},               # 6 escapes
        {"question": "q", "image": str(folder.parent / "secret.png")},  # 7 absolute
        {"question": "q", "image": "img/link-out.png"},            # 8 symlink out
        {"question": "q", "image": "img/bomb.png"},                # 9 pixel bomb
        {"question": "q", "image": "img/big.png"},                 # 10 over max_pixels
        {"question": "q", "image": "img/link-in.png", "risk_category": "nonsense"},  # 11
        {"question": "q", "image": "img/a.png", "risk_category": "benign", "label": "harmful"},
        "",                                                        # 13 blank: skipped silently
        {"question": "q" * 50, "image": "img\\..\\..\\secret.png"},  # 14 windows-style escape
        good,                                                      # 15 ok after all that
    ])
    items, bad = collect(load_jsonl, path, limits=Limits(max_pixels=1_000_000),
                         columns=Columns(risk_category="risk_category", label="label"))
    assert [i.meta["line"] for i in items] == [1, 15]
    where = {b.where: b.reason for b in bad}
    assert set(where) == {f"line {n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14)}
    assert all(b.file == str(path) for b in bad)
    assert "not an object" in where["line 3"]
    assert "question" in where["line 4"]
    assert "not found" in where["line 5"]
    assert "leaves the image folder" in where["line 6"]
    assert "absolute" in where["line 7"]
    assert "out of the image folder" in where["line 8"]
    assert "too large" in where["line 9"] or "exceeds" in where["line 9"]
    assert "1200x1000" in where["line 10"]
    assert "unknown risk_category" in where["line 11"]
    assert "harmful" in where["line 12"]
    assert "leaves the image folder" in where["line 14"]
    assert str(bad[0]).startswith(f"{path}:line 2: ")


def test_jsonl_overlong_line_and_size_cap(folder: Path):
    path = folder / "data.jsonl"
    path.write_text(json.dumps({"question": "x" * 5000, "image": "img/a.png"}) + "\n"
                    + json.dumps({"question": "ok", "image": "img/a.png"}) + "\n"
                    + json.dumps({"question": "ok", "image": "img/big.png"}) + "\n")
    items, bad = collect(load_jsonl, path,
                         limits=Limits(max_line_bytes=1000, max_image_bytes=2000))
    assert [i.question for i in items] == ["ok"]
    assert [b.where for b in bad] == ["line 1", "line 3"]
    assert "over 1000 bytes" in bad[0].reason and "exceeds 2000" in bad[1].reason


def test_missing_file_is_a_source_error(tmp_path: Path):
    with pytest.raises(SourceError, match=r"missing\.jsonl"):
        list(load_jsonl(tmp_path / "missing.jsonl", **NAMES))
    with pytest.raises(SourceError, match="expected a folder"):
        load_local(tmp_path / "x.csv", **NAMES)


def test_parquet_with_image_structs_binary_and_paths(folder: Path):
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({
        "question": ["one", "two", None, "four", "five"],
        "image": pa.array([{"bytes": png((1, 1, 1)), "path": "orig/one.png"},
                           {"bytes": None, "path": "img/b.jpg"},
                           {"bytes": png((3, 3, 3)), "path": None},
                           {"bytes": b"garbage", "path": "x.png"},
                           {"bytes": None, "path": "../secret.png"}], type=image_type),
        "id": ["r0", "r1", "r2", "r3", "r4"],
    })
    path = folder / "data.parquet"
    pq.write_table(table, path, row_group_size=2)
    items, bad = collect(load_parquet, path, columns=Columns(id="id"))
    assert [i.source_id for i in items] == ["r0", "r1"]
    assert items[0].image_name == "one.png" and items[1].image_name == "b.jpg"
    assert items[1].image == (folder / "img" / "b.jpg").read_bytes()
    assert [b.where for b in bad] == ["row 2", "row 3", "row 4"]
    assert "question" in bad[0].reason and "not a readable image" in bad[1].reason
    assert "leaves the image folder" in bad[2].reason


def test_parquet_missing_column_and_not_parquet(folder: Path):
    path = folder / "data.parquet"
    pq.write_table(pa.table({"text": ["q"], "image": [b"x"]}), path)
    with pytest.raises(SourceError, match=r"missing column.*question"):
        list(load_parquet(path, **NAMES))
    (folder / "fake.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SourceError, match="not a readable parquet"):
        list(load_parquet(folder / "fake.parquet", **NAMES))


def test_image_folder_with_metadata_jsonl(folder: Path):
    write_jsonl(folder / "metadata.jsonl", [
        {"file_name": "img/a.png", "question": "Is this red?", "category": "benign"},
        {"file_name": "img/link-out.png", "question": "Escape?"},
        {"file_name": "img/b.jpg", "question": "Is this green?"},
    ])
    items, bad = collect(load_image_folder, folder,
                         columns=Columns(image="file_name", risk_category="category"))
    assert [i.question for i in items] == ["Is this red?", "Is this green?"]
    assert items[0].risk_category == "benign" and items[1].risk_category is None
    assert [i.source_id for i in items] == ["metadata-1", "metadata-3"]
    assert [b.where for b in bad] == ["line 2"]
    via_dispatch = list(load_local(folder, on_bad=lambda b: None, **NAMES))
    assert [i.image for i in via_dispatch] == [i.image for i in items]


def test_image_folder_needs_metadata(tmp_path: Path):
    with pytest.raises(SourceError, match=r"metadata\.jsonl"):
        list(load_image_folder(tmp_path, **NAMES))


def test_pixel_check_reads_only_the_header():
    # 144 M pixels claimed by a ~60-byte file: decoding would need ~430 MB; the header says enough
    bomb = huge_header_png(12_000, 12_000)
    with pytest.warns(Image.DecompressionBombWarning), Image.open(io.BytesIO(bomb)) as image:
        assert image.size == (12_000, 12_000)
    with pytest.raises(RecordError, match="12000x12000 pixels exceeds 40000000"):
        image_extension(bomb, Limits())
    with pytest.raises(RecordError, match="too large"):
        image_extension(huge_header_png(60_000, 60_000), Limits())
    assert image_extension(png((1, 1, 1)), Limits()) == "png"
