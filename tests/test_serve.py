"""`safer-toolkit serve`: an OpenAI-compatible endpoint over the offline backend, and a build
through it equal to an offline build."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS
from safer_toolkit.builder.sources.seed import seed_corpus
from safer_toolkit.builder.stages.judge import judge_request, parse_judgement
from safer_toolkit.builder.stages.plan import check_plan, plan_request
from safer_toolkit.cli import main
from tests.support.build_config import write_config

FILES = ("sft/train-00000-of-00001.parquet", "dpo/train-00000-of-00001.parquet",
         "grpo/train-00000-of-00001.parquet", "eval/test-00000-of-00001.parquet")


@pytest.fixture(scope="module")
def server():
    process = subprocess.Popen([sys.executable, "-m", "safer_toolkit", "serve", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        yield f"http://127.0.0.1:{match[1]}/v1"
    finally:
        process.terminate()
        process.wait(10)


def _post(url: str, body: object) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/chat/completions", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_models_and_structured_completions(server):
    with urllib.request.urlopen(server + "/models", timeout=10) as response:
        listed = [m["id"] for m in json.loads(response.read())["data"]]
    assert listed == list(OFFLINE_MODELS.values())
    item = next(seed_corpus(1))
    status, body = _post(server, plan_request("safer-offline-planner", item, {"seed": 0}).body())
    assert status == 200 and body["model"] == "safer-offline-planner"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] > 85 and body["usage"]["completion_tokens"] > 0
    doc, rejected = check_plan(body["choices"][0]["message"]["content"],
                               {"label": item.label, "risk_category": item.risk_category})
    assert rejected is None and doc["label"] == item.label
    request = judge_request("safer-offline-judge", image=item.image, image_name=item.image_name,
                            question=item.question, response="<thinking>\n</thinking>\n<answer>"
                            "\nI can't help with that.\n</answer>", label="benign",
                            risk_category="benign")
    status, body = _post(server, request.body())
    assert status == 200
    judgement = parse_judgement(body["choices"][0]["message"]["content"])
    assert (judgement.safety, judgement.helpfulness, judgement.rigor) == (2, 0, 0)


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "not JSON"),
    ([1, 2], "JSON object"),
    ({"model": "m", "messages": "hi"}, "list of message objects"),
    ({"model": "m", "messages": [{"role": "system", "content": "x"}]}, "no user message"),
    ({"model": "m", "stream": True, "messages": []}, "streaming"),
    ({"messages": []}, "`model`"),
])
def test_bad_requests_get_a_400_with_a_reason(server, body, message):
    status, answer = _post(server, body)
    assert status == 400 and message in answer["error"]["message"]


def _digests(out: Path) -> dict[str, str]:
    return {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in FILES}


def test_a_build_through_serve_equals_an_offline_build(server, tmp_path):
    config = write_config(tmp_path / "small.toml", base_url=server, sft=8, dpo=9, grpo=6,
                          eval_=5)
    offline, served = tmp_path / "offline", tmp_path / "served"
    assert main(["build", "--config", str(config), "--out", str(offline), "--quiet"]) == 0
    assert main(["build", "--config", str(config), "--out", str(served), "--quiet",
                 "--backend", "openai"]) == 0
    assert _digests(served) == _digests(offline)
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (offline, served)]
    assert [m["backend"] for m in manifests] == ["offline", "openai"]
    assert manifests[1]["run"]["sent"] == manifests[0]["run"]["sent"] > 0
