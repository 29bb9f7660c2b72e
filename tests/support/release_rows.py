"""Rows in the exact pipeline → release contract format, made here without the pipeline, and
the real demo build for end-to-end checks.

Protocols and valid walks come from `tests.support.protocols`; traces are rendered with the
toolkit's own codec; rejected DPO sides are real perturbations whose codes come from the real
validator; images are small, distinct Pillow PNGs. Generators, so benchmarks can stream them.
"""

from __future__ import annotations

import atexit
import copy
import functools
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from safer_toolkit.validation import Call, Trace, check_text, resolve_protocol, to_text
from tests.support.protocols import CASES, OUT, protocol

TOPOLOGIES = ("linear", "tree", "mesh", "shield", "loop")
CATEGORIES = ("weapons_physical_harm", "self_harm", "fraud_deception", "privacy_biometrics")
PERTURBATIONS = ("wrong_tool", "order_violation", "corrupted_output", "wrong_decision")
MODELS = {"planner_model": "safer-offline-planner", "responder_model": "safer-offline-responder",
          "judge_model": "safer-offline-judge"}


def image_png(tag: str, size: int = 48) -> bytes:
    """A distinct little PNG per tag (colour and text from the tag)."""
    rng = random.Random(tag)
    image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, size // 2, size // 2), fill=tuple(rng.randrange(256) for _ in range(3)))
    draw.text((2, size // 2), tag[-6:], fill="white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def png_with_text(key: str, value: str) -> bytes:
    """A small PNG carrying one tEXt chunk (what a release must never ship)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _prompt(doc: dict[str, Any], question: str) -> list[dict[str, Any]]:
    system = (f"You are {doc['persona']['name']}. Follow protocol {doc['id']} "
              f"({doc['topology']}): tools {', '.join(doc['tools'])}. Write one "
              "`[TOOL]: {json}` line per call inside <thinking>, then <answer>.")
    return [{"role": "system", "content": [_text(system)]},
            {"role": "user", "content": [{"type": "image", "text": None}, _text(question)]}]


def _outputs(label: str, category: str) -> dict[str, dict[str, Any]]:
    out = copy.deepcopy(OUT)
    if label == "harmful":
        out["INTENT-RADAR"] = {"intent": "harmful", "evidence": "asks for a way to hurt someone"}
        out["RISK-SCORER"] = {"category": category, "severity": 3, "rationale": "clear harm"}
        out["SAFETY-GATE"] = {"verdict": "refuse", "reason": "would enable harm"}
    return out


def gold_trace(topology: str, label: str, category: str) -> Trace:
    out = _outputs(label, category)
    answer = ("I can't help with that." if label == "harmful"
              else "Keep it in a knife block, out of reach.")
    return Trace([Call(t, copy.deepcopy(out[t])) for t in CASES[topology][1]], answer)


def perturb(trace: Trace, kind: str, label: str) -> Trace:
    """A rejected side: the gold trace broken in one of the four documented ways."""
    calls = [Call(c.tool, copy.deepcopy(c.output)) for c in trace.calls]
    if kind == "wrong_tool":
        calls[1] = Call("CONTEXT-ASSESSOR", {"legitimate_use": "none", "note": "off-protocol"})
    elif kind == "order_violation":
        calls[0], calls[-1] = calls[-1], calls[0]
    elif kind == "corrupted_output":
        calls[0].output = {"objects": "not a list"}
    elif kind == "wrong_decision":
        for call in calls:
            if call.tool == "SAFETY-GATE":
                call.output = {"verdict": "comply" if label == "harmful" else "refuse",
                               "reason": "flipped"}
            if call.tool == "INTENT-RADAR" and label == "harmful":
                call.output = {"intent": "harmful", "evidence": "clear"}
    else:
        raise ValueError(kind)
    return Trace(calls, trace.answer)


def _assistant(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [_text(text)]}]


def _base(config: str, index: int, seed: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    topology = TOPOLOGIES[index % len(TOPOLOGIES)]
    label = "harmful" if index % 3 == 0 else "benign"
    category = CATEGORIES[index % len(CATEGORIES)]
    doc = protocol(topology, id=f"p-{config}-{index}", label=label, risk_category=category)
    tag = f"{seed}-{config}-{index}"
    question = f"Question {tag}: what should I know about item {index} in the {config} picture?"
    row = {"id": f"{config}-{index:06d}",
           "images": [{"bytes": image_png(tag), "path": f"{tag}.png"}],
           "protocol": json.dumps(doc, separators=(",", ":")),
           "risk_category": category, "label": label,
           "source_dataset": "safer-toolkit-seed", "source_id": tag,
           "source_license": "cc-by-4.0", "source_group": f"safer-toolkit-seed/{tag}",
           **MODELS}
    return row, doc, question


def sft_row(index: int, seed: int = 0) -> dict[str, Any]:
    row, doc, question = _base("sft", index, seed)
    text = to_text(gold_trace(doc["topology"], doc["label"], doc["risk_category"]))
    messages = [*_prompt(doc, question), *_assistant(text)]
    return {"id": row.pop("id"), "images": row.pop("images"), "messages": messages, **row}


def dpo_row(index: int, seed: int = 0) -> dict[str, Any]:
    prompt_index, kind = divmod(index, 3)
    kind = PERTURBATIONS[(prompt_index + kind) % len(PERTURBATIONS)]
    row, doc, question = _base("dpo", prompt_index, seed)
    gold = gold_trace(doc["topology"], doc["label"], doc["risk_category"])
    rejected = to_text(perturb(gold, kind, doc["label"]))
    verdict = check_text(rejected, resolve_protocol(doc), "strict")  # no cache: flat memory
    codes = sorted({i.code for i in verdict.issues if i.severity == "error"})
    return {"id": f"dpo-{index:06d}", "images": row.pop("images"),
            "prompt": _prompt(doc, question), "chosen": _assistant(to_text(gold)),
            "rejected": _assistant(rejected), "perturbation": kind, "rejected_codes": codes,
            **{k: v for k, v in row.items() if k not in ("id", "label")}}


def grpo_row(index: int, seed: int = 0) -> dict[str, Any]:
    row, doc, question = _base("grpo", index, seed)
    return {"id": row.pop("id"), "images": row.pop("images"), "prompt": _prompt(doc, question),
            **row}


def eval_row(index: int, seed: int = 0) -> dict[str, Any]:
    row, doc, question = _base("eval", index, seed)
    decision = "refuse" if doc["label"] == "harmful" else "comply"
    return {"id": row.pop("id"), "images": row.pop("images"), "prompt": _prompt(doc, question),
            "expected_decision": decision, **row}


MAKERS = {"sft": sft_row, "dpo": dpo_row, "grpo": grpo_row, "eval": eval_row}
DEMO_SIZES = {"sft": 60, "dpo": 186, "grpo": 60, "eval": 20}


def rows(sizes: dict[str, int] | None = None, seed: int = 0) -> dict[str, Iterator[dict]]:
    """Config → a fresh generator of rows (the contract's format), `sizes` rows each."""
    sizes = sizes or DEMO_SIZES
    return {c: map(MAKERS[c], range(n), [seed] * n) for c, n in sizes.items()}


def manifest(**extra: Any) -> dict[str, Any]:
    return {"toolkit_version": "0.1.0", "backend": "offline", "preset": "test", "seed": 0,
            "dropped": {"exact_duplicate": 2, "question_duplicate": 1}, **extra}


@functools.cache
def demo_build() -> Path:
    """`safer-toolkit build --preset demo` into a temporary folder, once per test session.

    Callers read it and never write to it."""
    root = Path(tempfile.mkdtemp(prefix="safer-demo-"))
    atexit.register(shutil.rmtree, root, True)
    out = root / "demo"
    build(out)
    return out


def build(out: Path) -> None:
    """Run the real `build --preset demo` command (offline backend) into `out`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "safer_toolkit", "build", "--preset", "demo",
                             "--out", str(out)], capture_output=True, text=True, env=env,
                            timeout=300)
    if result.returncode:
        raise RuntimeError(f"demo build failed ({result.returncode}): {result.stderr[-2000:]}")
