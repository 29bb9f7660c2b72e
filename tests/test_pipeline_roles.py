"""Model roles: roles that name the same endpoint share one client, which bills at its prices."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from safer_toolkit.builder.cache import CallCache
from safer_toolkit.builder.config import ModelConfig, load_preset
from safer_toolkit.builder.pipeline import make_roles


def test_roles_share_a_client_only_at_the_same_prices(tmp_path):
    url = ("http://127.0.0.1:9/v1",)
    config = replace(load_preset("demo"),
                     planner=ModelConfig("p", url, price_in=1.0, price_out=2.0),
                     responders=(ModelConfig("r", url, price_in=5.0, price_out=9.0),),
                     judge=ModelConfig("j", url, price_in=1.0, price_out=2.0))
    with CallCache(tmp_path / "calls.sqlite") as cache:
        roles = make_roles(config, "openai", cache)
        try:
            prices = {name: (s.price_in, s.price_out) for name, s in roles.wire.items()}
            assert prices == {"planner+judge": (1.0, 2.0), "responder[0]": (5.0, 9.0)}
            assert len(roles.inner) == 2
        finally:
            asyncio.run(roles.aclose())
