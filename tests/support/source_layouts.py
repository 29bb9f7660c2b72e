"""Tiny datasets written in the exact published layouts of SPA-VL, BeaverTails-V and MIS.

Parquet files carry a `datasets` Image column (struct of bytes/path plus the `huggingface`
schema metadata), and each folder has the README `configs:` block that the Hub repositories use,
so `datasets.load_dataset(folder, name=..., split=...)` reads them exactly as it reads the Hub.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from PIL import Image


def png(colour: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def noise_png(seed: int, size: int = 32) -> bytes:
    """A grey-noise PNG that no other seed's picture is a perceptual duplicate of."""
    rng = random.Random(seed)
    image = Image.new("L", (size, size))
    image.putdata([rng.randrange(256) for _ in range(size * size)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def _write_parquet(path: Path, columns: dict[str, list], features: dict) -> None:
    from datasets import Dataset, Features

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=Features(features)).to_parquet(str(path))


def _readme(root: Path, configs: dict[str, dict[str, str]], license: str) -> None:
    lines = ["---", f"license: {license}", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {path}" for split, path in splits.items()]
    (root / "README.md").write_text("\n".join([*lines, "---", "# fixture", ""]), encoding="utf-8")


def spa_vl(root: Path, rows: dict[str, list[dict]]) -> Path:
    """`rows` by split: train -> data/train-*, harm/help -> test/*, validation -> validation/*."""
    from datasets import Image as HFImage
    from datasets import Value

    base = {"image": HFImage(), "question": Value("string"), "chosen": Value("string"),
            "rejected": Value("string"), "class1": Value("string"), "class2": Value("string"),
            "class3": Value("string")}
    files = {"train": "data/train-00000-of-00001.parquet",
             "harm": "test/harm-00000-of-00001.parquet",
             "help": "test/help-00000-of-00001.parquet",
             "validation": "validation/validation-00000-of-00001.parquet"}
    for split, records in rows.items():
        features = dict(base, image_name=Value("string")) if split == "train" else dict(base)
        columns = {k: [r.get(k) for r in records] for k in features}
        _write_parquet(root / files[split], columns, features)
    configs = {"default": {"train": "data/train-*"}}
    if "harm" in rows or "help" in rows:
        configs["test"] = {s: f"test/{s}-*" for s in ("harm", "help") if s in rows}
    if "validation" in rows:
        configs["validation"] = {"validation": "validation/validation-*"}
    _readme(root, configs, "cc-by-4.0")
    return root


def beavertails_v(root: Path, rows: dict[str, dict[str, list[dict]]]) -> Path:
    """`rows` by category then split (train / evaluation): data/<category>/<split>.parquet."""
    from datasets import Image as HFImage
    from datasets import Value

    features = {"question": Value("string"), "image": HFImage(), "category": Value("string"),
                "image_severity": Value("int64"), "response": Value("string"),
                "is_response_safe": Value("string")}
    configs = {}
    for category, splits in rows.items():
        configs[category] = {}
        for split, records in splits.items():
            columns = {k: [r.get(k) for r in records] for k in features}
            _write_parquet(root / "data" / category / f"{split}.parquet", columns, features)
            configs[category][split] = f"data/{category}/{split}.parquet"
    _readme(root, configs, "cc-by-nc-4.0")
    return root


def mis(root: Path, records: list[dict], images: dict[str, bytes]) -> Path:
    """mis_train.json (a JSON array) beside the extracted images (paths relative to `root`)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "mis_train.json").write_text(json.dumps(records), encoding="utf-8")
    (root / "README.md").write_text("---\nlicense: apache-2.0\n---\n# fixture\n", encoding="utf-8")
    return root
