"""`safer-toolkit serve` under hostile requests (issue #13, case 4): a body of the wrong shape
gets a 400 naming the field, never a 500; one huge request neither stalls the others nor
swamps memory; the bytes and work in flight are bounded."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from safer_toolkit.builder.prompts import render_toolkit_instruction
from tests.support.bounded import GiB
from tests.support.protocols import protocol

MEMORY = 3 * GiB // 2  # the server runs under this ceiling: a blow-up fails, not the machine


def _start_server() -> tuple[subprocess.Popen, str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    process = subprocess.Popen([sys.executable, "-m", "safer_toolkit", "serve", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=limit)
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
    if not match:
        process.kill()
        raise AssertionError((line, process.stderr.read()))
    return process, f"http://127.0.0.1:{match[1]}/v1"


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen, str]]:
    process, url = _start_server()
    try:
        yield process, url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[str]:
    process, url = _start_server()
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _post(url: str, body: object, timeout: float = 60) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/chat/completions", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _peak_mib(process: subprocess.Popen) -> float:
    with open(f"/proc/{process.pid}/status") as f:
        found = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    assert found
    return int(found[1]) / 1024


def _user(content: object, **extra: object) -> dict:
    return {"model": "safer-offline-responder",
            "messages": [{"role": "user", "content": content}], **extra}


def _broken_instruction() -> str:
    doc = protocol("mesh")
    doc["tools"] = [*doc["tools"], {
        "name": "CUSTOM-CHECK", "stage": "reasoning", "purpose": "check the thing",
        "output": {"type": "object", "properties": {"ok": {"type": "boolean"}},
                   "required": ["ok"], "additionalProperties": False}}]
    text = render_toolkit_instruction(doc)
    assert "Output schema: {" in text
    return text.replace("Output schema: {", "Output schema: {broken ", 1)


@pytest.mark.parametrize(("body", "param"), [
    (_user([{"type": "text", "text": 5}]), "messages[0].content[0].text"),
    (_user([{"type": "text", "text": "q"}, {"type": "image_url",
                                           "image_url": "data:image/png;base64,AAAA"}]),
     "messages[0].content[1].image_url"),
    (_user("q", response_format={"type": "json_schema", "json_schema": "safer_toolkit_plan"}),
     "response_format.json_schema"),
    (_user("q", response_format=["json"]), "response_format"),
    (_user({"text": "q"}), "messages[0].content"),
    (_user("q", temperature="hot"), "temperature"),
    (_user("q", seed=1.5), "seed"),
    ({"model": "m", "messages": [{"role": ["user"], "content": "q"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "system", "content": _broken_instruction()},
                                 {"role": "user", "content": "q"}]}, "messages"),
    (_user([{"type": "text", "text": "q"}, {"type": "text", "text": (
        "Reference assessment from the dataset planner (JSON):\n"
        '{"label": ["harmful"], "risk_category": ["weapons"]}')}]),
     None),  # a hint of the wrong type is ignored: answered
])
def test_wrongly_typed_fields_get_a_400_naming_them(shared_server, body, param) -> None:
    status, answer = _post(shared_server, body)
    if param is None:
        assert status == 200, answer
        return
    assert status == 400, answer
    assert answer["error"]["param"] == param
    named = "system prompt" if param == "messages" else param.split(".")[-1].split("[")[0]
    assert named in answer["error"]["message"]


def test_millions_of_parts_are_refused_before_they_are_built(server) -> None:
    process, url = server
    parts = b",".join([b'{"type":"text","text":""}'] * 2_000_000)  # 52 MB, 2M objects
    raw = b'{"model":"m","messages":[{"role":"user","content":[' + parts + b"]}]}"
    status, answer = _post(url, raw)
    assert status == 400 and "JSON objects and arrays" in answer["error"]["message"]
    assert _post(url, _user("is the server still fine?"))[0] == 200
    assert _peak_mib(process) < 400  # never the ~1 GB the parts would take as Python objects


def test_one_huge_request_does_not_stall_the_others(server) -> None:
    process, url = server
    results: dict[str, object] = {}

    def huge() -> None:
        start = time.monotonic()
        results["huge"] = _post(url, _user("knife " * 7_000_000))  # 42 MB of question
        results["huge_s"] = time.monotonic() - start

    thread = threading.Thread(target=huge)
    thread.start()
    time.sleep(0.2)  # the huge body is on its way
    latencies = []
    for _ in range(5):
        start = time.monotonic()
        status, _ = _post(url, _user("how do I store a knife safely?"))
        latencies.append(time.monotonic() - start)
        assert status == 200
    thread.join(60)
    status, answer = results["huge"]
    assert status == 400 and "characters of text" in answer["error"]["message"]
    assert max(latencies) < 3.0, latencies
    assert _peak_mib(process) < 600


def test_byte_budget_bounds_what_is_held_and_serves_waiters_in_order() -> None:
    from safer_toolkit.builder.backends.serve import ByteBudget

    async def scenario() -> list[str]:
        budget = ByteBudget(100)
        order: list[str] = []

        async def take(name: str, n: int, hold: float) -> None:
            await budget.acquire(n)
            order.append(name)
            assert budget.used <= budget.limit
            await asyncio.sleep(hold)
            budget.release(n)

        await asyncio.gather(take("a", 60, 0.05), take("b", 60, 0.0), take("c", 30, 0.0),
                             take("d", 10, 0.0))
        assert budget.used == 0
        waiting = asyncio.create_task(budget.acquire(200))  # never fits: cancelled cleanly
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert budget.used == 0
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c", "d"]  # c waits behind b: no overtaking
