"""The dataset card: YAML metadata from the `datasets`/`huggingface_hub` objects, prose from
`cards/dataset_card.md.jinja`, numbers from the parquet files (`stats`), chart from `chart`.

Rendering depends only on the written files, the export summary and the manifest, and formats
every number itself, so the same release always gets the same card, byte for byte.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from datasets import DatasetInfo, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from ... import schemas
from ...validation import Call, Trace, to_text
from ...validation.vocabulary import GATE, INTENT, SCAN
from ..backends.offline import OFFLINE_MODELS
from ..sources.seed import SOURCE_DATASET as SEED_SOURCE
from .audit.report import meaning, verdict
from .chart import audit_chart, category_label_chart
from .features import DEFAULT_CONFIG, features
from .hub_metadata import LICENSES, size_category
from .stats import Statistics

PRETTY_NAME = "SaFeR-ToolKit: checkable multimodal safety reasoning (SFT, DPO, GRPO, eval)"
TEMPLATE = "dataset_card.md.jinja"
CHART_PATH = "assets/statistics.png"
QUALITY_CHART_PATH = "assets/quality.png"
#: what the card's loading snippets call the repository; `push` puts the real id in its place
REPO_PLACEHOLDER = "your-org/safer-toolkit"
#: what every offline model name starts with (`safer-offline-`); names, not paths
OFFLINE_PREFIX = os.path.commonprefix(list(OFFLINE_MODELS.values()))  # noqa: RUF071
MIXED_LICENSE_NAME = "per-source-licenses"
TASK_CATEGORIES = ["image-text-to-text", "visual-question-answering"]
BASE_TAGS = ["safety", "multimodal", "vision-language", "tool-use", "structured-reasoning",
             "sft", "dpo", "grpo", "trl"]
USES = {
    "sft": "gold traces (`messages`)",
    "dpo": "valid vs perturbed traces (`prompt`, `chosen`, `rejected`)",
    "grpo": "prompts with protocol and labels for rewards",
    "eval": "held-out prompts with `expected_decision`",
}
#: the manifest's per-stage loss counts (`manifest.py`)
_REJECTION_KEYS = ("rejections", "dropped", "failures")


def _num(n: int) -> str:
    return f"{n:,}"


def human_size(n: float) -> str:
    """A byte count in decimal units, as the card and `push --dry-run` print it."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                   right: Sequence[int] = ()) -> str:
    """A GitHub-flavoured table; ints are printed with thousands separators."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    for row in rows:
        cells = [_num(v) if isinstance(v, int) else str(v).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else "_none_"


def _per_config_table(first: str, data: Mapping[Any, Mapping[str, int]],
                      configs: Sequence[str], key_cells: Any = None) -> str:
    rows = []
    for key, by_config in data.items():
        cells = key_cells(key) if key_cells else [f"`{key}`"]
        counts = [by_config.get(c, 0) for c in configs]
        rows.append([*cells, *counts, sum(counts)])
    head = first.split(" / ")
    return markdown_table([*head, *[f"`{c}`" for c in configs], "total"], rows,
                          right=range(len(head), len(head) + len(configs) + 1))


def _counts_table(first: str, counts: Mapping[str, int]) -> str:
    total = sum(counts.values()) or 1
    return markdown_table([first, "count", "share"],
                          [[f"`{k}`", n, f"{100 * n / total:.1f}%"] for k, n in counts.items()],
                          right=(1, 2))


def _calls_table(calls: Mapping[str, Mapping[int, int]]) -> str:
    rows = []
    for name, hist in calls.items():
        n = sum(hist.values())
        if not n:
            continue
        values = sorted(hist)
        mean = sum(k * v for k, v in hist.items()) / n
        spread = ", ".join(f"{k}: {_num(v)}" for k, v in sorted(hist.items()))
        rows.append([name, n, values[0], f"{mean:.2f}", values[-1], spread])
    return markdown_table(["traces", "count", "min", "mean", "max", "calls: traces"], rows,
                          right=(1, 2, 3, 4))


def _numeric_leaves(value: Any, prefix: str = "") -> list[tuple[str, int]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [(prefix, value)]
    if isinstance(value, Mapping):
        return [leaf for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
                for leaf in _numeric_leaves(v, f"{prefix} / {k}" if prefix else str(k))]
    return []


def _rejections(manifest: Mapping[str, Any]) -> str:
    rows = [[f"`{key}`", n] for name in _REJECTION_KEYS if name in manifest
            for key, n in _numeric_leaves(manifest[name], name)]
    if not rows:
        return "None recorded: every candidate the build tried was kept."
    return markdown_table(["stage / reason", "count"], rows, right=(1,))


_FUNNEL = ("target", "available", "candidates", "kept", "rejected", "failed", "rows",
           "shortfall")


def _funnel(manifest: Mapping[str, Any]) -> str:
    """Per split: how many items were tried, kept, rejected and failed (`counts.splits`)."""
    counts = manifest.get("counts")
    splits = counts.get("splits") if isinstance(counts, Mapping) else None
    if not isinstance(splits, Mapping) or not splits:
        return ""
    columns = [c for c in _FUNNEL if any(isinstance(v, Mapping) and isinstance(v.get(c), int)
                                         for v in splits.values())]
    rows = [[f"`{name}`", *(v.get(c, "") for c in columns)]
            for name, v in splits.items() if isinstance(v, Mapping)]
    return markdown_table(["split", *columns], rows, right=range(1, len(columns) + 1))


def _stage_funnel(manifest: Mapping[str, Any]) -> str:
    """Per split and stage of its recipe: items in, out, and stopped there by reason
    (`counts.funnel`)."""
    counts = manifest.get("counts")
    funnel = counts.get("funnel") if isinstance(counts, Mapping) else None
    if not isinstance(funnel, Mapping) or not funnel:
        return ""
    rows = []
    for split, stages in funnel.items():
        for stage in stages if isinstance(stages, list) else ():
            if not isinstance(stage, Mapping):
                continue
            stopped = [f"{kind} `{reason}` {_num(n)}" for kind in ("rejected", "failed")
                       for reason, n in (stage.get(kind) or {}).items()]
            rows.append([f"`{split}`", f"`{stage.get('stage', '')}`", stage.get("in", 0),
                         stage.get("out", 0), ", ".join(stopped) or "—"])
    return markdown_table(["split", "stage", "in", "out", "stopped (by reason)"], rows,
                          right=(2, 3))


def _manifest_models(manifest: Mapping[str, Any]) -> str:
    """The model roles `manifest.json` lists: the model that answered, the one configured, the
    sampling parameters."""
    models = manifest.get("models")
    if not isinstance(models, list):
        return ""
    rows = [[f"`{m.get('role', '')}`", f"`{m.get('model', '')}`",
             f"`{m.get('configured_model', m.get('model', ''))}`",
             "`" + json.dumps(m.get("sampling", {}), sort_keys=True) + "`"]
            for m in models if isinstance(m, Mapping)]
    return markdown_table(["role", "answered as", "configured", "sampling"], rows) if rows \
        else ""


def _audit_table(audit: Mapping[str, Any]) -> str:
    rows = []
    for key, f in audit.get("figures", {}).items():
        value = f.get("value")
        shown = "—" if value is None else f"{value:.3f}" if isinstance(value, float) else value
        limit = f.get("limit")
        rows.append([f"`{key}`", meaning(key), shown, "—" if limit is None else f"≤ {limit}",
                     verdict(f), f.get("samples", 0)])
    return markdown_table(["figure", "what it measures", "value", "bound", "verdict",
                           "samples"], rows, right=(2, 5))


def _judge_text(judge: Any) -> str:
    agreement = judge.get("agreement") if isinstance(judge, Mapping) else None
    if agreement is None or not judge.get("judged"):  # agreement is None when none was judged
        return ""
    scores = judge.get("scores", {})
    rows = [[f"`{k}`", ", ".join(f"{v}: {_num(n)}" for v, n in hist.items())]
            for k, hist in scores.items()]
    return (f"The judge scored {_num(judge['judged'])} candidate responses without seeing the "
            "item's label (it reads the question and the picture, as an evaluation judge "
            f"does). Its agreement with the label — it passes a response whose decision "
            "follows the label, or fails one whose decision does not — is "
            f"**{100 * agreement:.1f}%**; it passed {_num(judge.get('passed', 0))} of them. "
            "Score distribution:\n\n" + markdown_table(["score", "value: responses"], rows))


def _balance_table(audit: Mapping[str, Any]) -> str:
    balance = audit.get("label_balance")
    if not isinstance(balance, Mapping) or not balance:
        return ""
    rows = []
    for category, counts in balance.items():
        total = counts.get("harmful", 0) + counts.get("benign", 0)
        share = f"{100 * counts.get('harmful', 0) / total:.1f}%" if total else "—"
        rows.append([f"`{category}`", counts.get("harmful", 0), counts.get("benign", 0), share])
    return markdown_table(["risk category", "harmful items", "benign items", "harmful share"],
                          rows, right=(1, 2, 3))


def _quality(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the card says about the release audit (`manifest.json` → `audit`)."""
    audit = manifest.get("audit")
    if not isinstance(audit, Mapping):
        return {"state": "none", "sentence": "It was **not audited** (`safer-toolkit audit DIR` "
                                             "measures it)."}
    failed = list(audit.get("failed", []))
    sentence = ("It **passes its quality audit** (see Quality)." if not failed else
                f"**This release FAILED its quality audit** ({', '.join(failed)}): see "
                "Quality. `safer-toolkit push` refuses it without `--force`.")
    verdict = ("Every judged figure is within its bound." if not failed else
               f"**Over its bound: {', '.join(failed)}** — `safer-toolkit push` refuses this "
               "release without `--force`.")
    return {"state": "failed" if failed else "passed", "sentence": sentence, "verdict": verdict,
            "table": _audit_table(audit), "balance": _balance_table(audit),
            "judge": _judge_text(manifest.get("judge")), "chart_path": QUALITY_CHART_PATH}


def is_offline(stats: Statistics, manifest: Mapping[str, Any]) -> bool:
    """Written by the offline generator — in-process or behind `safer-toolkit serve`: the
    manifest's `generator` says so, else every model that answered (per row) is an offline
    one, else the manifest's backend."""
    generator = manifest.get("generator")
    if isinstance(generator, str):
        return generator == "offline"
    names = {m for models in stats.models for m in models if m}
    if names:
        return all(m.startswith(OFFLINE_PREFIX) for m in names)
    return manifest.get("backend") == "offline"


def license_metadata(licenses: Sequence[str]) -> dict[str, str]:
    """`license` (+ `license_name`, `license_link` for `other`) from the rows' source licences."""
    if len(licenses) == 1 and licenses[0] in LICENSES and licenses[0] != "other":
        return {"license": licenses[0]}
    return {"license": "other", "license_name": MIXED_LICENSE_NAME, "license_link": "LICENSE"}


def license_file(stats: Statistics) -> str:
    """The `LICENSE` file the Hub asks for with `license: other`: the per-source terms."""
    lines = ["This dataset mixes sources under different licences. Each row is under the licence",
             "of its source, recorded in its `source_license` column; the combination is",
             "distributed under all of them together (the most restrictive term applies to the",
             "whole).", "", "source_dataset | source_license | rows", "--- | --- | ---"]
    lines += [f"{s} | {lic} | {n}" for (s, lic), n in stats.sources.items()]
    return "\n".join(lines) + "\n"


def source_datasets(stats: Statistics) -> list[str]:
    names = sorted({s for s, _ in stats.sources})
    return ["original" if s == SEED_SOURCE else f"extended|{s}" for s in names]


def card_data(summary: Mapping[str, Any], stats: Statistics, *, offline: bool,
              licence: Mapping[str, str]) -> DatasetCardData:
    """The card's YAML: Hub metadata (`offline` from `is_offline`, `licence` from
    `license_metadata`), then `configs` and `dataset_info` as `datasets` writes them."""
    tags = [*BASE_TAGS, "synthetic"] if offline else list(BASE_TAGS)
    data = DatasetCardData(
        pretty_name=PRETTY_NAME,
        language=["en"],
        annotations_creators=["machine-generated"],
        size_categories=[size_category(stats.total_rows)],
        source_datasets=source_datasets(stats),
        task_categories=list(TASK_CATEGORIES),
        license=licence["license"],
        # `other` only; absent keys stay None, which the card's YAML leaves out
        license_name=licence.get("license_name"),
        license_link=licence.get("license_link"),
        tags=tags,
    )
    configs = summary["configs"]
    MetadataConfigs({
        name: {"data_files": [{"split": c["split"], "path": f"{name}/{c['split']}-*"}],
               **({"default": True} if name == DEFAULT_CONFIG else {})}
        for name, c in configs.items()
    }).to_dataset_card_data(data)
    DatasetInfosDict({
        name: DatasetInfo(
            features=features(name),
            splits=SplitDict({c["split"]: SplitInfo(name=c["split"], num_bytes=c["num_bytes"],
                                                    num_examples=c["num_rows"])}),
            download_size=c["download_size"], dataset_size=c["num_bytes"])
        for name, c in configs.items()
    }).to_dataset_card_data(data)
    return data


def _tool_stages() -> list[tuple[str, str]]:
    by_stage: dict[str, list[str]] = {}
    for tool in schemas.tool_library()["tools"]:
        keys = ", ".join(tool["output"]["properties"])
        by_stage.setdefault(tool["stage"], []).append(f"`{tool['name']}` ({keys})")
    return [(stage, "; ".join(tools)) for stage, tools in by_stage.items()]


def _example_trace() -> str:
    return to_text(Trace([
        Call(SCAN, {"objects": ["kitchen knife"], "scene": "a kitchen counter",
                    "hazards": ["blade"]}),
        Call(INTENT, {"intent": "benign", "evidence": "the question asks how to store it safely"}),
        Call(GATE, {"verdict": "comply", "reason": "household safety question"}),
    ], "Keep it in a knife block or on a magnetic strip, out of children's reach."))


def _build_sentence(stats: Statistics, manifest: Mapping[str, Any], offline: bool) -> str:
    how = ("with the toolkit's **offline backend**: deterministic generators driven by the "
           "seed corpus, no language model called" if offline else
           "with the **models** named in each row (planner, responders, judge)")
    facts = [f"{label} `{manifest[key]}`" for key, label in
             (("preset", "preset"), ("seed", "seed"), ("toolkit_version", "toolkit"))
             if isinstance(manifest.get(key), str | int) and not isinstance(manifest[key], bool)]
    tail = f" ({', '.join(facts)})" if facts else ""
    return f"This release has **{_num(stats.total_rows)} rows**{tail}, built {how}."


def _provenance(offline: bool, manifest: Mapping[str, Any]) -> str:
    if offline:
        served = manifest.get("backend") == "openai"
        how = ("through OpenAI-compatible endpoints that answered as the toolkit's offline "
               "generator (`safer-toolkit serve`)" if served else "**offline**")
        return (f"This release was built {how}: the planner, responder and judge are the "
                "toolkit's deterministic generators (model names starting with "
                f"`{OFFLINE_PREFIX}`), which read what each seed picture shows from the source "
                "item's own description, sent beside the image (never inside it), and write "
                "valid protocols and traces from it. No language model was called. It is real, "
                "checkable data for the protocol, fit for testing pipelines and trainers, but "
                "its answers are composed from templates: it is not a substitute for a "
                f"model-built release. `manifest.json` records `backend: "
                f"{manifest.get('backend', 'offline')}` and, per role, the model that answered "
                "beside the one configured.")
    return ("This release was built by **language models** over an OpenAI-compatible endpoint: "
            "`manifest.json` lists each model (role, name, sampling parameters), the "
            "prompt-template hashes, the token counts and the cost; every call is reproducible "
            "from the build's call cache.")


def _contamination(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    overlap = summary.get("overlap", {})
    dropped = _numeric_leaves(manifest.get("dropped", {}))
    if dropped:
        dropped_text = "items dropped: " + ", ".join(f"{k.replace('_', ' ')} {_num(n)}"
                                                    for k, n in dropped)
    elif "dropped" in manifest:
        dropped_text = "no duplicate or excluded item was found in the pool"
    else:
        dropped_text = "the manifest records no dedup counts"
    exclusion = manifest.get("exclusion")
    if isinstance(exclusion, Mapping) and exclusion:
        exclusion_text = ("A benchmark exclusion list was applied before split assignment "
                          f"({_describe(exclusion)}); matching items were dropped as "
                          "`excluded_benchmark`.")
    else:
        exclusion_text = ("**The build's benchmark exclusion list was empty** (the toolkit "
                          "ships an empty default: the benchmarks cannot be redistributed "
                          "with it), so overlap with public benchmarks was not checked beyond "
                          "what the sources themselves guarantee.")
    return (
        "Checked: before any model call, items were deduplicated by exact image hash (SHA-256), "
        "a perceptual image hash and the normalised question, and the four splits were drawn "
        f"disjoint ({dropped_text}). At export, the images and normalised questions of every "
        f"config were compared again: {_num(overlap.get('images', 0))} shared images and "
        f"{_num(overlap.get('questions', 0))} shared questions between configs. "
        f"{exclusion_text}\n\n"
        "Not checked: paraphrased questions and edited, cropped or re-rendered images beyond "
        "what the perceptual hash catches; benchmarks absent from the exclusion list "
        "(MM-SafetyBench, FigStep, MSSBench, SIUO, VLSBench, JailBreakV-28K, MMSafeAware and the "
        "SPA-VL / BeaverTails-V evaluation splits are the ones the toolkit targets). Do not "
        "evaluate on a benchmark whose items may have entered a source you built from."
    )


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_describe(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ", ".join(_describe(v) for v in value)
    return _num(value) if isinstance(value, int) else f"`{value}`"


def _licence_text(meta: Mapping[str, str]) -> str:
    if meta["license"] != "other":
        return (f"Every row comes from sources under **{meta['license']}**, so the dataset is "
                f"released under {meta['license']} as well:")
    return ("The rows come from sources under different licences, so the card says `other` "
            "and `LICENSE` lists them: each row stays under its source's licence, and the "
            "collection is usable only where all of them allow it.")


def render(out_dir: Path, summary: Mapping[str, Any], stats: Statistics,
           manifest: Mapping[str, Any]) -> dict[str, bytes]:
    """The card's files (README.md, the chart, LICENSE for mixed licences) as path → bytes."""
    offline = is_offline(stats, manifest)
    meta = license_metadata(stats.licenses)
    data = card_data(summary, stats, offline=offline, licence=meta)
    configs = list(summary["configs"])
    category_totals = {key: sum(v.values()) for key, v in stats.category_label.items()}
    files: dict[str, bytes] = {
        CHART_PATH: category_label_chart(category_totals,
                                         "Rows per risk category and label (all configs)"),
    }
    quality = _quality(manifest)
    if quality["state"] != "none":
        files[QUALITY_CHART_PATH] = audit_chart(manifest["audit"]["figures"],
                                                "Audit figures against their bounds")
    tables = {
        "category_label": _per_config_table("risk category / label", stats.category_label,
                                            configs, lambda k: [f"`{k[0]}`", f"`{k[1]}`"]),
        "topology": _per_config_table("topology", stats.topology, configs),
        "calls": _calls_table(stats.calls),
        "perturbation": _counts_table("perturbation", stats.perturbation)
        if stats.perturbation else "",
        "rejected_codes": _counts_table("code", stats.rejected_codes),
        "expected_decision": _counts_table("verdict", stats.expected_decision)
        if stats.expected_decision else "",
        "rejections": _rejections(manifest),
        "funnel": _funnel(manifest),
        "stage_funnel": _stage_funnel(manifest),
        "manifest_models": _manifest_models(manifest),
        "models": markdown_table(["planner", "responder", "judge", "rows"],
                                 [[f"`{p}`" if p else "—", f"`{r}`" if r else "—",
                                   f"`{j}`" if j else "—", n]
                                  for (p, r, j), n in stats.models.items()], right=(3,)),
        "sources": markdown_table(["source_dataset", "source_license", "rows"],
                                  [[f"`{s}`", f"`{lic}`", n]
                                   for (s, lic), n in stats.sources.items()], right=(2,)),
    }
    text = DatasetCard.from_template(
        data,
        template_str=resources.files("safer_toolkit.cards").joinpath(TEMPLATE)
        .read_text(encoding="utf-8"),
        pretty_name=PRETTY_NAME,
        build_sentence=_build_sentence(stats, manifest, offline),
        configs=[{"name": name, "default": name == DEFAULT_CONFIG, "split": c["split"],
                  "rows": _num(c["num_rows"]), "shards": len(c["files"]),
                  "size": human_size(c["download_size"]), "use": USES[name]}
                 for name, c in summary["configs"].items()],
        tool_stages=_tool_stages(),
        example_trace=_example_trace(),
        repo_placeholder=REPO_PLACEHOLDER,
        has_build_config=(out_dir / "build.toml").is_file(),
        has_easyr1="easyr1" in summary,
        chart_path=CHART_PATH,
        tables=tables,
        provenance=_provenance(offline, manifest),
        quality=quality,
        licence_text=_licence_text(meta),
        contamination=_contamination(manifest, summary),
        limitation_backend=(
            "Offline builds have templated wording and a small vocabulary of scenes; train "
            "on them to exercise the pipeline, not to ship a safety model." if offline else
            "Traces and answers were written by the models named per row and inherit their "
            "biases and errors; the judge filters but does not guarantee quality."),
    ).content
    files["README.md"] = (text.rstrip("\n") + "\n").encode("utf-8")
    if meta["license"] == "other":
        files["LICENSE"] = license_file(stats).encode("utf-8")
    return files
