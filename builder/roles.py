"""The build's model roles — planner, responders, judge — each a cached backend with its limits.

Roles that name the same endpoint (base URLs, key variable, timeout, retries) share one client: a
deployment serves so many requests at a time whichever role sends them, so its in-flight bound
is the largest concurrency among them. Each role still counts its own calls, retries, tokens and
cost, at its own prices (`OpenAIChatBackend.view`), so the manifest attributes every figure to
the role that made the call. Every call goes through the content-addressed cache; a reply cut at
`max_tokens` is cached as a cut reply, so a rerun replays the same re-ask without paying again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .backends.base import ChatBackend, ChatRequest
from .backends.budget import Budget
from .backends.client import OpenAIChatBackend
from .backends.offline import OfflineBackend
from .backends.stats import CallStats
from .cache import CachedBackend, CallCache
from .config import BuildConfig, ModelConfig
from .preflight import RoleCheck, RoleProbe
from .sources.base import SourceItem
from .stages.ask import Asker
from .stages.content import image_content, text_only
from .stages.judge import JUDGE_FORMAT
from .stages.plan import plan_format
from .stages.respond import Responder

BACKENDS = ("offline", "openai")
OFFLINE_ITEMS_IN_FLIGHT = 32


@dataclass
class Roles:
    """The cached backend of every model role, what it runs with, and what to close."""

    planner: Asker
    responders: list[Responder]
    judge: Asker | None
    stats: dict[str, CallStats]
    clients: dict[str, OpenAIChatBackend]  # role → its (possibly shared) client; openai only
    inner: list[ChatBackend]
    concurrency: int
    budget: Budget

    def apply(self, checks: dict[str, RoleCheck]) -> None:
        """Run each role with the constraint its preflight settled: a JSON role's form, a
        responder's trace grammar (or none)."""
        if "planner" in checks:
            self.planner = replace(self.planner, constrain=checks["planner"].form)
        if self.judge is not None and "judge" in checks:
            self.judge = replace(self.judge, constrain=checks["judge"].form)
        self.responders = [replace(r, grammar=checks[r.role].grammar) if r.role in checks else r
                           for r in self.responders]

    def counting(self) -> Roles:
        """The same clients, cache and limits, counting into fresh `stats`: a Ray shard counts
        each item apart, so an item retried after its worker died is counted once."""
        stats = {role: CallStats(price_in=s.price_in, price_out=s.price_out)
                 for role, s in self.stats.items()}

        def counted(role: str, backend: Any) -> CachedBackend:
            inner = self.clients[role].view(stats[role]) if role in self.clients else \
                backend.inner
            return CachedBackend(inner, backend.cache, stats=stats[role],
                                 keep_truncated=backend.keep_truncated)

        return replace(
            self, stats=stats,
            planner=replace(self.planner, backend=counted("planner", self.planner.backend)),
            responders=[replace(r, backend=counted(r.role, r.backend)) for r in self.responders],
            judge=self.judge and replace(self.judge, backend=counted("judge", self.judge.backend)))

    async def aclose(self) -> None:
        for backend in self.inner:
            await backend.aclose()


def _endpoint_key(m: ModelConfig) -> tuple[Any, ...]:
    """Roles alike in all of this share one client (each bills at its own prices)."""
    return (m.base_urls, m.api_key_env, m.timeout_s, m.max_retries)


def make_roles(config: BuildConfig, backend: str, cache: CallCache,
               budget: Budget | None = None,
               slots: Callable[[str, int], Any] | None = None) -> Roles:
    """One cached backend per role; roles on one endpoint share its client (module doc).
    `slots(endpoint, bound)` gives a client its wire slots (default: its own `bound`; a Ray
    shard passes the cluster's gate, shared by every shard)."""
    named = config.roles()
    budget = budget or Budget(config.max_calls or None, config.max_cost or None)
    free = backend == "offline"  # nothing is billed: configured prices do not apply
    stats = {role: CallStats(price_in=0.0 if free else m.price_in,
                             price_out=0.0 if free else m.price_out)
             for role, m in named.items()}
    inner: dict[str, ChatBackend] = {}
    clients: dict[str, OpenAIChatBackend] = {}
    concurrency = 0
    if backend == "offline":
        offline = OfflineBackend()
        inner = dict.fromkeys(named, offline)
        concurrency = OFFLINE_ITEMS_IN_FLIGHT
        unique: list[ChatBackend] = [offline]
    else:
        groups: dict[tuple[Any, ...], list[str]] = {}
        for role, m in named.items():
            groups.setdefault(_endpoint_key(m), []).append(role)
        for members in groups.values():
            first = named[members[0]]
            bound = max(named[r].concurrency for r in members)
            concurrency += bound
            name = "+".join(members)
            client = OpenAIChatBackend(first.endpoint(name, concurrency=bound), budget=budget,
                                       slots=slots(name, bound) if slots is not None else None)
            for role in members:
                clients[role] = client
                inner[role] = client.view(stats[role])
        unique = list({id(c): c for c in clients.values()}.values())
    cached = {role: CachedBackend(inner[role], cache, stats=stats[role], keep_truncated=True)
              for role in named}

    def asker(role: str) -> Asker:
        m = named[role]
        return Asker(cached[role], m.max_tokens_cap, role=role, images=m.images)

    responders = [Responder(cached[f"responder[{i}]"], r.model, r.sampling, r.samples,
                            r.max_tokens_cap, f"responder[{i}]", r.images)
                  for i, r in enumerate(config.responders)]
    return Roles(asker("planner"), responders, asker("judge") if "judge" in named else None,
                 stats, clients, unique, concurrency, budget)


#: What every probe asks: plain words. A server that enforces a JSON response format answers
#: with a JSON object anyway; one that ignores the format lets the model answer as asked.
PROBE_SYSTEM = "Reply in plain words, in one sentence: not in JSON, no braces."
PROBE_QUESTION = "What does the picture show?"


def probes(config: BuildConfig, roles: Roles, item: SourceItem) -> list[RoleProbe]:
    """Each role's preflight probe, with the first item's image: the JSON roles' under their
    response format (`plan_format`, `JUDGE_FORMAT`), the responders' with none."""
    formats = {"planner": plan_format(), "judge": JUDGE_FORMAT}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": PROBE_SYSTEM},
        {"role": "user", "content": [image_content(item.image, item.image_name),
                                     {"type": "text", "text": PROBE_QUESTION}]}]
    found = []
    for role, m in config.roles().items():
        probe = ChatRequest(m.model, messages, {**m.sampling, "seed": config.seed},
                            formats.get(role), "preflight")
        found.append(RoleProbe(role, m, roles.clients[role],
                               probe if m.images else text_only(probe)))
    return found
