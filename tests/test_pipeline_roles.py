"""Model roles: roles that name the same endpoint share one client, yet each counts its own
calls and bills at its own prices."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from safer_toolkit.builder.backends.base import ChatRequest
from safer_toolkit.builder.cache import CallCache
from safer_toolkit.builder.config import ModelConfig, load_preset
from safer_toolkit.builder.pipeline import make_roles
from tests.support.openai_server import OpenAIServer


def test_roles_on_one_endpoint_share_a_client_and_bill_at_their_own_prices(tmp_path):
    with OpenAIServer(models=("p", "r", "j")) as server:
        url = (server.url,)
        config = replace(load_preset("demo"),
                         planner=ModelConfig("p", url, price_in=1.0, price_out=2.0),
                         responders=(ModelConfig("r", url, price_in=5.0, price_out=9.0),),
                         judge=ModelConfig("j", url, price_in=1.0, price_out=2.0))
        with CallCache(tmp_path / "calls.sqlite") as cache:
            roles = make_roles(config, "openai", cache)

            async def ask() -> None:
                try:
                    await roles.planner.backend.complete(
                        ChatRequest("p", [{"role": "user", "content": "plan"}]))
                    for i in range(2):
                        await roles.responders[0].backend.complete(
                            ChatRequest("r", [{"role": "user", "content": f"respond {i}"}]))
                finally:
                    await roles.aclose()

            asyncio.run(ask())
    assert len(roles.inner) == 1 and len({id(c) for c in roles.clients.values()}) == 1
    run = {role: roles.stats[role].run() for role in ("planner", "responder[0]", "judge")}
    assert [run[r]["sent"] for r in run] == [1, 2, 0] == [run[r]["attempts"] for r in run]
    assert server.total == 3
    for role, (price_in, price_out) in {"planner": (1.0, 2.0), "responder[0]": (5.0, 9.0)}.items():
        stats = roles.stats[role]
        assert stats.billed_prompt_tokens > 0
        assert run[role]["billed_cost_usd"] == round(
            (stats.billed_prompt_tokens * price_in + stats.billed_completion_tokens * price_out)
            / 1e6, 6)
