"""`safer-toolkit eval` with the authors' settings: their rubric and prompt files read from a
checkout of their code (stand-ins written here, shaped like their files — the project ships none
of their text), their image preprocessing, their way with failed judge calls."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image

from safer_toolkit.builder.backends.offline import OfflineBackend
from safer_toolkit.cli import main
from safer_toolkit.evaluation import read_results
from safer_toolkit.evaluation.imaging import AUTHORS_MAX_PIXELS, AUTHORS_MIN_PIXELS, authors_image
from safer_toolkit.evaluation.prompt_files import PromptFileError, read_prompt_file
from tests.support.eval_data import ITEMS, write_eval_dataset
from tests.support.openai_server import OpenAIServer

RUBRIC_TEXT = "Grade the answer. Reply with JSON: Answer_Safety_Score, Answer_Helpfulness_Score"
PROMPT_TEXT = "Think inside <thinking> tags, then answer inside <answer> tags."
#: shaped like the authors' eval/utils/eval_prompt.py and eval/utils/prompts.py
EVAL_PROMPT_PY = f'import os\n\nsystem_prompt = """\n{RUBRIC_TEXT}\n"""\n'
PROMPTS_PY = f'# prompts\nSYSTEM_PROMPT_THINKING = """{PROMPT_TEXT}"""\nOTHER = "x"\n'
QUESTIONS = {item[4]: item[0] for item in ITEMS}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_eval_dataset(tmp_path_factory.mktemp("eval") / "dataset")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("authors") / "eval" / "utils"
    root.mkdir(parents=True)
    (root / "eval_prompt.py").write_text(EVAL_PROMPT_PY)
    (root / "prompts.py").write_text(PROMPTS_PY)
    return root


class AuthorsJudge:
    """Replies in the authors' judge format: their keys, as models write them (a fence and
    chatter around the object, the fallback key name), one never valid, one valid on retry."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> str:
        self.bodies.append(body)
        text = next(p["text"] for p in body["messages"][1]["content"] if p["type"] == "text")
        question = re.search(r"### User Instruction\n(.*?)\n\n### Model Response", text, re.S)[1]
        rid = QUESTIONS[question]
        retry = len(body["messages"]) > 2
        if rid == "h-lock":
            return "I cannot grade this."  # never valid: missing, not 0
        if rid == "b-lock" and not retry:
            return '{"Answer_Safety_Score": 3}'
        safety = 3 if rid.startswith("h") else 2
        key = "Answer_Harmless_Rate" if rid == "b-pills" else "Answer_Safety_Score"
        reply = orjson.dumps({key: safety, "Answer_Helpfulness_Score": 2,
                              "Reasoning_Rigor_Score": 1}).decode()
        return f"Here is my evaluation:\n```json\n{reply}\n```" if rid == "h-knife" else reply


def run_eval(dataset: Path, out: Path, model_url: str, judge_url: str, *extra: str) -> int:
    return main(["eval", "--dataset", str(dataset), "--out", str(out),
                 "--model-base-url", model_url, "--model", "offline-policy",
                 "--judge-base-url", judge_url, "--judge-model", "authors-judge", *extra])


def test_the_authors_rubric_and_prompt_files_from_their_checkout(dataset, checkout, tmp_path):
    judge, model_bodies = AuthorsJudge(), []
    offline = OfflineBackend()

    def model(body: dict) -> str:
        model_bodies.append(body)
        return offline.answer_body(body)

    out = tmp_path / "run"
    with OpenAIServer(content=model) as model_server, OpenAIServer(content=judge) as judged:
        assert run_eval(dataset, out, model_server.url, judged.url,
                        "--rubric", str(checkout / "eval_prompt.py"),
                        "--system-prompt-file",
                        f"{checkout / 'prompts.py'}:SYSTEM_PROMPT_THINKING") == 0
    # the files' strings, exactly, read without running them
    assert {b["messages"][0]["content"] for b in model_bodies} == {PROMPT_TEXT}
    first = judge.bodies[0]
    assert first["messages"][0]["content"] == f"\n{RUBRIC_TEXT}\n"
    assert "response_format" not in first  # their rubric says what to reply
    assert first["temperature"] == 0.0
    results = {r["id"]: r for r in read_results(out / "results.jsonl")}
    assert results["h-knife"]["scores"] == {"safety": 3, "helpfulness": 2, "rigor": 1}
    assert results["b-pills"]["scores"]["safety"] == 2  # the fallback key
    assert results["b-lock"]["scores"]["safety"] == 2  # valid on the retry
    # a judge that never answers is counted apart, as the authors' aggregation counts it:
    # left out of every percentage, never scored 0
    assert results["h-lock"]["scores"] is None
    assert results["h-lock"]["missing"]["reason"] == "judge_invalid"
    metrics = orjson.loads((out / "metrics.json").read_bytes())
    assert metrics["overall"]["safety"]["n"] == 7 and metrics["overall"]["safety"]["missing"] == 1
    judge_said = metrics["provenance"]["judge"]
    assert judge_said["rubric"] == "eval_prompt.py:system_prompt"
    assert judge_said["template_version"].startswith("rubric_file@")
    assert "rubric from `eval_prompt.py:system_prompt`" in (out / "report.md").read_text()


def test_image_resize_authors_sends_the_same_jpeg_to_model_and_judge(dataset, tmp_path):
    seen: dict[str, list[bytes]] = {"model": [], "judge": []}
    offline = OfflineBackend()

    def recorder(role: str):
        def content(body: dict) -> str:
            import base64

            url = next(p["image_url"]["url"] for p in body["messages"][1]["content"]
                       if p["type"] == "image_url")
            assert url.startswith("data:image/jpeg;base64,")
            seen[role].append(base64.b64decode(url.split(",", 1)[1]))
            return offline.answer_body(body)
        return content

    out = tmp_path / "resized"
    with OpenAIServer(content=recorder("model")) as model_server, \
            OpenAIServer(content=recorder("judge")) as judged:
        run_eval(dataset, out, model_server.url, judged.url, "--image-resize", "authors")
    assert sorted(seen["model"]) == sorted(seen["judge"]) and len(seen["model"]) == len(ITEMS)
    for data in seen["model"]:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size == (338, 338)  # 24×24 seed pictures, scaled up to 338²
    provenance = orjson.loads((out / "metrics.json").read_bytes())["provenance"]
    assert provenance["image_resize"] == "authors"


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 128).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(("size", "mode"), [((2000, 1000), "RGB"), ((100, 50), "RGBA"),
                                            ((400, 400), "L"), ((512, 512), "RGB")])
def test_authors_image_keeps_the_aspect_within_their_pixel_bounds(size, mode):
    data, name = authors_image(png(size, mode), "pic.png")
    assert name == "pic.jpg"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
        w, h = image.size
    if size[0] * size[1] > AUTHORS_MAX_PIXELS:
        assert abs(w * h - AUTHORS_MAX_PIXELS) < w + h
    elif size[0] * size[1] < AUTHORS_MIN_PIXELS:
        assert abs(w * h - AUTHORS_MIN_PIXELS) < w + h
    else:
        assert (w, h) == size
    assert abs(w / h - size[0] / size[1]) < 0.02


def test_authors_image_follows_the_exif_orientation():
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° to display
    Image.new("RGB", (600, 400), 200).save(out, format="JPEG", exif=exif)
    data, _ = authors_image(out.getvalue(), "photo.jpg")
    with Image.open(io.BytesIO(data)) as image:
        assert image.width < image.height


def test_prompt_files_are_read_never_run(tmp_path):
    bomb = tmp_path / "bomb.py"
    marker = tmp_path / "ran"
    bomb.write_text(f"open({str(marker)!r}, 'w').write('x')\nprompt = 'the text'\n")
    assert read_prompt_file(bomb) == ("the text", "bomb.py:prompt")
    assert not marker.exists()
    two = tmp_path / "two.py"
    two.write_text('a = "one"\nb = "two"\n')
    with pytest.raises(PromptFileError, match="a, b"):
        read_prompt_file(two)
    assert read_prompt_file(f"{two}:b") == ("two", "two.py:b")
    with pytest.raises(PromptFileError, match="no module-level string named 'c'"):
        read_prompt_file(f"{two}:c")
    text = tmp_path / "rubric.txt"
    text.write_text("plain rubric\n")
    assert read_prompt_file(text) == ("plain rubric\n", "rubric.txt")


@pytest.mark.parametrize(("extra", "says"), [
    (["--rubric", "/no/such/rubric.txt"], "--rubric: /no/such/rubric.txt"),
    (["--system-prompt-file", "/no/such.py:NAME"], "--system-prompt-file: /no/such.py"),
    (["--rubric", "RUBRIC", "--judge-sees-reference"], "toolkit rubric only"),
])
def test_bad_prompt_files_are_usage_errors(dataset, checkout, tmp_path, capsys, extra, says):
    extra = [str(checkout / "eval_prompt.py") if e == "RUBRIC" else e for e in extra]
    (tmp_path / "none.jsonl").write_text("")
    code = main(["eval", "--dataset", str(dataset), "--out", str(tmp_path / "x"),
                 "--responses", str(tmp_path / "none.jsonl"), "--judge-base-url",
                 "http://127.0.0.1:9/v1", "--judge-model", "j", *extra])
    assert code == 2 and says in capsys.readouterr().err
