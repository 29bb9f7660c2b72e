"""`safer-toolkit audit`: every figure finds its shortcut where one is planted, and the real
demo build — whose causes were fixed — passes.

The planted release is written by the release's own `write_dataset` from the contract rows of
`tests.support.release_rows` (fixed answers, fixed-string perturbations) with more shortcuts
planted on purpose: a refusal tool named only in harmful items' system prompts, eval questions
that are training questions with a word added, eval rows in training families, and pictures
that carry a text chunk.
"""

from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image

from safer_toolkit.builder.release.audit import AuditThresholds, audit_folder
from safer_toolkit.builder.release.audit.images import metadata
from safer_toolkit.builder.release.audit.overlap import JACCARD, NearDuplicates, shingles
from safer_toolkit.builder.release.export import write_dataset
from safer_toolkit.cli import main
from tests.support import release_rows as R

SIZES = {"sft": 120, "dpo": 480, "grpo": 60, "eval": 40}
LIMITS = AuditThresholds(min_samples=50)


def _planted_rows() -> dict[str, list[dict]]:
    rows = {config: list(made) for config, made in R.rows(SIZES).items()}
    for config in ("sft", "dpo", "grpo", "eval"):  # the label in the system prompt
        for row in rows[config]:
            if json.loads(row["protocol"])["label"] == "harmful":
                system = row["messages" if config == "sft" else "prompt"][0]["content"][0]
                system["text"] += " Decision tools: REFUSAL-GENERATOR."
    for sft, row in zip(rows["sft"], rows["eval"], strict=False):  # near-copies of training
        row["prompt"][1]["content"][1]["text"] = sft["messages"][1]["content"][1]["text"] + \
            " Thanks."
        row["source_group"] = sft["source_group"]  # ... from the same family
    for row in rows["sft"][:5]:  # the answer key inside the picture
        row["images"] = [{"bytes": R.png_with_text("safer-toolkit:scene", json.dumps(
            {"label": row["label"], "id": row["source_id"]})),
                          "path": f"{row['source_id']}.png"}]
    return rows


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("planted")
    rows = _planted_rows()
    write_dataset(out, {c: iter(r) for c, r in rows.items()}, manifest=R.manifest(),
                  build_config="seed = 0\n[audit]\nmin_samples = 50\n")
    return {"folder": out, "audit": audit_folder(out, LIMITS).to_json()}


def _figure(audit: dict, key: str) -> dict:
    return audit["figures"][key]


def test_copied_answers_and_one_opening_are_found(planted):
    audit = planted["audit"]
    duplicates = _figure(audit, "duplicate_answers")
    assert duplicates["value"] == 1.0 and duplicates["passed"] is False
    opening = _figure(audit, "top_opening")
    assert opening["value"] >= 0.5 and opening["passed"] is False
    assert _figure(audit, "distinct_1")["value"] < 0.1  # two answers' words, 120 times


def test_fixed_string_perturbations_are_separable_and_a_reordering_is_not(planted):
    audit = planted["audit"]
    for kind in ("wrong_tool", "corrupted_output", "wrong_decision"):  # fixed strings planted
        figure = _figure(audit, f"separability/{kind}")
        assert figure["value"] >= 0.9 and figure["passed"] is False, (kind, figure)
    # the same words in another order: a bag of words cannot tell them apart
    reordered = _figure(audit, "separability/order_violation")
    assert reordered["value"] == 0.5 and reordered["passed"] is True


def test_a_length_cue_is_found(planted):
    corrupted = _figure(planted["audit"], "length_cue/corrupted_output")  # always shorter
    assert corrupted["value"] == 1.0 and corrupted["passed"] is False
    assert _figure(planted["audit"], "length_cue/order_violation")["value"] == 0.5


def test_the_label_is_found_in_the_system_prompt(planted):
    figure = _figure(planted["audit"], "label_from_prompt")
    assert figure["value"] > 0.25 and figure["passed"] is False
    assert "majority" in figure["detail"]


def test_eval_near_copies_and_shared_families_are_found(planted):
    audit = planted["audit"]
    near = _figure(audit, "eval_near_duplicates")
    assert near["value"] == 1.0 and near["samples"] == SIZES["eval"] and near["passed"] is False
    overlap = _figure(audit, "eval_goal_overlap")
    assert overlap["value"] == 1.0 and overlap["passed"] is False


def test_images_carrying_our_metadata_are_found(planted):
    figure = _figure(planted["audit"], "images_with_metadata")
    assert figure["value"] == 5 and figure["passed"] is False


def test_the_audit_is_deterministic_and_lists_what_failed(planted):
    again = audit_folder(planted["folder"], LIMITS).to_json()
    assert again == planted["audit"]
    assert again["passed"] is False
    assert set(again["failed"]) >= {"duplicate_answers", "top_opening", "label_from_prompt",
                                    "eval_near_duplicates", "eval_goal_overlap",
                                    "images_with_metadata", "separability/wrong_tool"}
    assert "separability/order_violation" not in again["failed"]


def test_the_demo_build_passes_its_audit():
    """The shipped demo preset, built for real: every judged figure within its bound, the
    figures written to the manifest and the card, the probes near chance even when judged on
    the demo's few pairs."""
    out = R.demo_build()
    manifest = json.loads((out / "manifest.json").read_text())
    audit = manifest["audit"]
    assert audit["passed"] is True and audit["failed"] == []
    assert audit == audit_folder(out, AuditThresholds()).to_json()
    figures = audit["figures"]
    assert figures["images_with_metadata"]["value"] == 0
    assert figures["eval_goal_overlap"]["value"] == 0 and figures["eval_near_duplicates"][
        "value"] == 0
    assert figures["duplicate_answers"]["value"] <= 0.05
    small = audit_folder(out, AuditThresholds(min_samples=30)).to_json()["figures"]
    for kind in ("wrong_tool", "order_violation", "corrupted_output", "wrong_decision"):
        assert small[f"separability/{kind}"]["value"] <= 0.65, (kind, small)
    card = (out / "README.md").read_text()
    assert "## Quality" in card and "passes its quality audit" in card
    assert "| `separability/wrong_decision` |" in card and (out / "assets/quality.png").is_file()
    assert manifest["judge"]["sees_label"] is False and manifest["judge"]["agreement"] >= 0.9


def test_cli_reads_the_bounds_from_the_folder_and_exits_by_the_verdict(planted, capsys):
    folder = planted["folder"]
    assert main(["audit", str(folder), "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["thresholds"]["min_samples"] == 50  # from the folder's build.toml
    assert printed["failed"] == planted["audit"]["failed"]
    assert main(["audit", str(R.demo_build())]) == 0
    table = capsys.readouterr().out
    assert "audit PASSED" in table and "separability/wrong_tool" in table


def test_cli_usage_errors_are_one_line_and_exit_2(tmp_path, planted, capsys):
    assert main(["audit", str(tmp_path / "missing")]) == 2
    assert main(["audit", str(tmp_path)]) == 2  # no configs
    bad = tmp_path / "bad.toml"
    bad.write_text("[audit]\nseparability = 3\n")
    assert main(["audit", str(planted["folder"]), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "audit.separability: must be a number between 0 and 1, not 3" in err
    assert "Traceback" not in err


def test_near_duplicate_index_equals_all_pairs():
    rng = random.Random(5)
    words = [f"w{i}" for i in range(40)]
    questions = [" ".join(rng.choices(words, k=rng.randint(2, 14))) for _ in range(400)]
    questions += [q + " extra" for q in questions[:60]]  # near-copies
    owners = {q: {"a" if i % 2 else "b"} for i, q in enumerate(dict.fromkeys(questions))}
    index = NearDuplicates(owners)
    for question, owner in owners.items():
        s = shingles(question)
        brute = any(o != owner and s and len(s & shingles(q)) / len(s | shingles(q)) >= JACCARD
                    for q, o in owners.items())
        assert index.near_other(question, {"a", "b"} - owner) == brute, question


def test_image_metadata_is_read_from_the_chunks_only():
    plain, exif, jpeg = io.BytesIO(), io.BytesIO(), io.BytesIO()
    Image.new("RGB", (8, 8)).save(plain, "PNG")
    image = Image.new("RGB", (8, 8))
    tags = image.getexif()
    tags[0x010E] = "safer-toolkit"  # ImageDescription
    image.save(exif, "PNG", exif=tags)
    image.save(jpeg, "JPEG", comment=b"hello")
    assert metadata(plain.getvalue()) == []
    assert any(b"safer-toolkit" in entry for entry in metadata(exif.getvalue()))
    assert metadata(jpeg.getvalue()) == [b"\xfe:hello"]
    assert metadata(R.png_with_text("k", "v"))[0].startswith(b"tEXt:k")
    assert metadata(b"not an image") == []


def test_a_failed_release_says_so_in_its_card_and_names_the_figures(tmp_path):
    write_dataset(tmp_path, {c: iter(r) for c, r in _planted_rows().items()},
                  manifest=R.manifest(), audit=LIMITS)
    card = (tmp_path / "README.md").read_text()
    failed = json.loads((tmp_path / "manifest.json").read_text())["audit"]["failed"]
    assert "images_with_metadata" in failed and "duplicate_answers" in failed
    assert "**This release FAILED its quality audit**" in card.split("## Quality")[0]
    quality = card.split("## Quality")[1].split("\n## ")[0]
    assert f"**Over its bound: {', '.join(failed)}**" in quality
    assert "| `images_with_metadata` |" in quality and "| **FAIL** |" in quality
