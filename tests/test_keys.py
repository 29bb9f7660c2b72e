"""API keys (issue #13, case 5): masked before any error text is cut, so no prefix of a key a
server echoes late reaches a file; `*-api-key-env` must be a variable name, not a key."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from safer_toolkit.builder.backends.keys import key_env_problem, mask_key
from safer_toolkit.cli import main
from tests.support.build_config import write_config
from tests.support.eval_data import write_eval_dataset
from tests.support.openai_server import OpenAIServer

KEY = "sk-live-9f8e7d6c5b4a39281706-secretpart"
#: `{"error": {"message": "` is 23 characters: the key starts at 290, inside a 300 cut.
PADDING = "x" * (290 - 23)


class LateEcho(OpenAIServer):
    """Refuses every request (the model listing too) with a 401 that quotes the key it was
    sent, 290 bytes in."""

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        self.total += 1
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return web.json_response({"error": {"message": f"{PADDING}{given} is not valid"}},
                                 status=401)

    _models = _complete  # the key is refused at `GET /models` too, as real services do


def _leaks(*texts: str, folder: Path) -> list[str]:
    """Where any 6-character piece of the key shows up."""
    pieces = {KEY[i:i + 6] for i in range(len(KEY) - 5)}
    found = [f"text {n}" for n, t in enumerate(texts) if any(p in t for p in pieces)]
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [str(path) for p in pieces if p.encode() in data][:1]
    return found


def test_a_key_echoed_late_in_an_error_leaves_no_prefix_anywhere(tmp_path, monkeypatch,
                                                                  capsys) -> None:
    monkeypatch.setenv("I13_TEST_KEY", KEY)
    with LateEcho() as server:
        config = write_config(tmp_path / "build.toml", base_url=server.url, sft=2, dpo=3,
                              grpo=2, eval_=2, max_retries=0)
        text = config.read_text().replace('base_urls = [', 'api_key_env = "I13_TEST_KEY"\n'
                                                           'base_urls = [')
        config.write_text(text)
        assert main(["build", "--config", str(config), "--out", str(tmp_path / "build"),
                     "--backend", "openai", "--quiet"]) == 1
        dataset = write_eval_dataset(tmp_path / "dataset")
        assert main(["eval", "--dataset", str(dataset), "--out", str(tmp_path / "eval"),
                     "--model-base-url", server.url, "--model", "m", "--model-api-key-env",
                     "I13_TEST_KEY", "--judge-base-url", server.url, "--judge-model", "j",
                     "--judge-api-key-env", "I13_TEST_KEY", "--max-retries", "0"]) == 1
        assert server.total > 0
    captured = capsys.readouterr()
    # the preflight stops the build on the refused key, with the server's message, masked
    assert "401" in captured.err and PADDING[:50] in captured.err
    assert "http_401" in (tmp_path / "eval" / "results.jsonl").read_text()
    assert _leaks(captured.out, captured.err, folder=tmp_path) == []


def test_mask_key_masks_before_it_cuts() -> None:
    text = "y" * 290 + KEY + " rejected"
    assert mask_key(text, KEY, 300) == "y" * 290 + "***" + " reject"
    assert mask_key(text, None, 5) == "yyyyy"


@pytest.mark.parametrize(("name", "ok"), [
    ("OPENAI_API_KEY", True), ("my_key2", True), ("_X", True), ("HF_TOKEN", True),
    ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", False), ("sk-proj-abc", False),
    ("gsk_8Hq2LmN4pR7sT9vW1xY3zA5bC", False), ("Bearer abc", False), ("1KEY", False),
    ("", False), ("K" * 65, False),
])
def test_key_env_must_be_a_variable_name(name: str, ok: bool) -> None:
    assert (key_env_problem(name) is None) is ok


def test_a_key_given_as_key_env_is_refused_and_never_echoed(tmp_path, capsys) -> None:
    token = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    dataset = write_eval_dataset(tmp_path / "dataset")
    code = main(["eval", "--dataset", str(dataset), "--out", str(tmp_path / "eval"),
                 "--model-base-url", "http://127.0.0.1:9/v1", "--model", "m",
                 "--model-api-key-env", token, "--judge-base-url", "http://127.0.0.1:9/v1",
                 "--judge-model", "j"])
    err = capsys.readouterr().err
    assert code == 2 and "--model-api-key-env looks like an API key" in err
    assert token not in err and not (tmp_path / "eval").exists()
    config = write_config(tmp_path / "build.toml")
    config.write_text(config.read_text().replace(
        'base_urls = [', f'api_key_env = "{token}"\nbase_urls = [', 1))
    code = main(["build", "--config", str(config), "--out", str(tmp_path / "b"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "models.planner.api_key_env: looks like an API key" in err
    assert token not in err
