"""The dataset card: metadata `datasets` and the Hub accept, numbers that match the files."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard
from PIL import Image

from safer_toolkit.builder.release.export import write_dataset
from safer_toolkit.builder.release.features import SPLITS, features
from safer_toolkit.builder.release.hub_metadata import (
    LICENSES,
    TASK_CATEGORIES,
    size_categories,
    size_category,
)
from tests.support import release_rows as R


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("card")
    write_dataset(out, R.rows(), manifest=R.manifest(), build_config="seed = 0\n")
    return out


@pytest.fixture(scope="module", params=["rows", "demo"])
def any_release(request, release) -> Path:
    """The release of rows made here, and the real `build --preset demo`."""
    return release if request.param == "rows" else R.demo_build()


def _card(out: Path) -> DatasetCard:
    return DatasetCard.load(out / "README.md")


def _table_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first markdown table after `heading`."""
    after = text.split(heading, 1)[1]
    lines = [ln for ln in after.split("\n\n", 2)[1].splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def test_yaml_passes_datasets_own_metadata_parsing(any_release):
    release = any_release
    data = _card(release).data
    configs = MetadataConfigs.from_dataset_card_data(data)
    assert set(configs) == set(SPLITS)
    assert configs.get_default_config_name() == "sft"
    for name, split in SPLITS.items():
        (files,) = configs[name]["data_files"]
        assert files["split"] == split
        assert sorted(release.glob(files["path"])) == sorted((release / name).glob("*.parquet"))
    infos = DatasetInfosDict.from_dataset_card_data(data)
    for name, split in SPLITS.items():
        info = infos[name]
        assert info.features == features(name)
        assert info.splits[split].num_examples == R.DEMO_SIZES[name]
        on_disk = sum(p.stat().st_size for p in (release / name).glob("*.parquet"))
        assert info.download_size == on_disk
        assert info.splits[split].num_bytes == info.dataset_size > 0


def test_yaml_values_are_on_the_hub_allow_lists(any_release):
    data = _card(any_release).data
    assert data.license in LICENSES and data.license == "cc-by-4.0"
    assert data.task_categories == ["image-text-to-text", "visual-question-answering"]
    assert set(data.task_categories) <= TASK_CATEGORIES
    total = sum(R.DEMO_SIZES.values())
    assert data.size_categories == [size_category(total)] == ["n<1K"]
    assert set(data.size_categories) <= set(size_categories())
    assert data.language == ["en"]
    assert data.source_datasets == ["original"]
    assert data.pretty_name and "synthetic" in data.tags


@pytest.mark.parametrize(("rows", "bucket"), [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"),
                                              (31_600, "10K<n<100K"), (10**6, "1M<n<10M")])
def test_size_category_buckets(rows, bucket):
    assert size_category(rows) == bucket


def test_statistics_in_the_body_match_the_parquet_files(release):
    text = (release / "README.md").read_text()
    dpo = pq.read_table(sorted((release / "dpo").glob("*.parquet"))[0]).to_pylist()
    perturbations = Counter(r["perturbation"] for r in dpo)
    table = _table_rows(text, "**DPO perturbation mix**")
    assert {row[0].strip("`"): int(row[1]) for row in table} == dict(perturbations)
    codes = Counter(c for r in dpo for c in r["rejected_codes"])
    table = _table_rows(text, "**Validator codes on the rejected sides**")
    assert {row[0].strip("`"): int(row[1]) for row in table} == dict(codes)
    table = _table_rows(text, "**Risk category × label**")
    assert sum(int(row[-1]) for row in table) == sum(R.DEMO_SIZES.values())
    harmful_sft = sum(int(row[2]) for row in table if row[1] == "`harmful`")
    assert harmful_sft == sum(1 for i in range(60) if R.sft_row(i)["label"] == "harmful")
    # `dpo` has no label column: its rows count under their protocol's label
    assert "label" not in dpo[0]
    by_protocol = Counter((r["risk_category"], json.loads(r["protocol"])["label"]) for r in dpo)
    in_table = {(row[0].strip("`"), row[1].strip("`")): int(row[3]) for row in table}
    assert {k: n for k, n in in_table.items() if n} == dict(by_protocol)
    assert {row[1] for row in table} == {"`harmful`", "`benign`"}
    table = _table_rows(text, "**Topology mix**")
    assert {row[0].strip("`") for row in table} == set(R.TOPOLOGIES)
    table = _table_rows(text, "**Tool calls per trace**")
    assert [row[0] for row in table] == ["sft", "dpo chosen", "dpo rejected"]
    assert table[0][1] == "60"
    table = _table_rows(text, "**Rejected during the build**")
    assert ["`dropped / exact_duplicate`", "2"] in table
    assert "0 shared images and 0 shared questions" in text


def test_body_has_every_section_and_snippet(release):
    text = (release / "README.md").read_text()
    for heading in ("## How it was built", "## The protocol in brief",
                    "## Loading and training (TRL)", "## Statistics",
                    "## Provenance: offline or model-built", "## Licence",
                    "## Benchmark contamination", "## Limitations", "## Citation"):
        assert heading in text
    for config, split in SPLITS.items():
        assert f'load_dataset(REPO, "{config}", split="{split}")' in text
    assert "arXiv:2603.02635" in text and "backend: offline" in text
    assert "from safer_toolkit.training_reference.rewards import protocol_reward" in text
    assert "![Rows per risk category and label, all configs](assets/statistics.png)" in text
    assert "{{" not in text and "{%" not in text


def test_chart_is_a_png_with_a_bar_per_category(release):
    with Image.open(io.BytesIO((release / "assets" / "statistics.png").read_bytes())) as chart:
        assert chart.format == "PNG"
        four_categories = chart.height
    from safer_toolkit.builder.release.chart import category_label_chart

    more = category_label_chart({(f"c{i}", "harmful"): i + 1 for i in range(8)}, "t")
    with Image.open(io.BytesIO(more)) as chart:
        assert chart.height > four_categories
    assert category_label_chart({("a", "benign"): 1}, "t") == \
        category_label_chart({("a", "benign"): 1}, "t")


def _mixed_rows(models: dict[str, str] | None = None):
    rows = R.rows({"sft": 6, "grpo": 3})
    sft, grpo = list(rows["sft"]), list(rows["grpo"])
    for row in sft[:2]:
        row["source_dataset"], row["source_license"] = "PKU-Alignment/BeaverTails-V", \
            "cc-by-nc-4.0"
    for row in [*sft, *grpo]:
        row.update(models or {})
    return {"sft": iter(sft), "grpo": iter(grpo)}


MODEL_ROWS = {"planner_model": "Qwen/Qwen2.5-VL-72B-Instruct",
              "responder_model": "Qwen/Qwen2.5-VL-7B-Instruct", "judge_model": "gpt-4o-mini"}


def test_a_build_through_serve_is_called_what_answered_not_what_was_configured(tmp_path):
    """Rows and manifest name the offline models that answered over HTTP: the card says the
    offline generator wrote it, not "language models"."""
    write_dataset(tmp_path, _mixed_rows(), manifest=R.manifest(backend="openai"))
    text = (tmp_path / "README.md").read_text()
    assert "language models" not in text
    assert "answered as the toolkit's offline generator" in text and "backend: openai" in text


def test_mixed_source_licences_give_other_with_a_licence_file(tmp_path):
    write_dataset(tmp_path, _mixed_rows(MODEL_ROWS), manifest=R.manifest(backend="openai"))
    data = _card(tmp_path).data
    assert data.license == "other"
    assert data.license_name == "per-source-licenses" and data.license_link == "LICENSE"
    assert data.source_datasets == ["extended|PKU-Alignment/BeaverTails-V", "original"]
    licence = (tmp_path / "LICENSE").read_text()
    assert re.search(r"PKU-Alignment/BeaverTails-V \| cc-by-nc-4\.0 \| 2", licence)
    assert re.search(r"safer-toolkit-seed \| cc-by-4\.0 \| 7", licence)
    text = (tmp_path / "README.md").read_text()
    assert "built by **language models**" in text and "synthetic" not in data.tags
    assert set(MetadataConfigs.from_dataset_card_data(data)) == {"sft", "grpo"}
    loaded = datasets.load_dataset(str(tmp_path), "grpo", split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert loaded.num_rows == 3
