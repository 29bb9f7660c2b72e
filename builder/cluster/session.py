"""Connecting to a Ray cluster and running a build's sources and items on it.

`connect(ADDRESS)` joins a running cluster (`auto`, `HOST:PORT`, `ray://HOST:PORT` through Ray
Client) or starts one on this machine (`local`). `pipeline.build` then calls the `Cluster` at
four points: `prepare` (before the sources: is the output folder the same on every node?),
`pool` (the sources' dedup pool, loaded on the cluster: `intake`), `start` (after the
preflight: the gate and the shards; the returned `process` is what the fill calls for each item)
and `stop` (the shards closed and their caches absorbed into the main cache), and puts
`figures` in the manifest's `run.cluster`.

Shared storage is a requirement, checked here: the call cache and the ledger live in
`DIR/.build/`, and a shard retried on another node must find the calls its predecessor
finished. `prepare` writes a random token into `DIR/.build/cluster-check`; a task on every
alive node reads it back (and reports its toolkit version); a node that cannot see it stops
the build before any work, naming the node. Endpoints on `localhost` are refused on a cluster
of several nodes: each node would call its own.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ... import __version__
from ..backends.budget import Budget
from ..cache import CallCache
from ..config import BuildConfig
from ..pipeline import Build, BuildError
from ..stages.dedup import ExclusionList
from ..stages.split import DedupPool
from .gate import Gate
from .intake import Intake
from .items import SHARD_CPUS, ShardSet
from .shard import SHARDS_DIR

MARKER = "cluster-check"
#: Default shards per node at most: each runs hundreds of items at once on its event loop.
SHARDS_PER_NODE = 4


class ClusterError(BuildError):
    """The cluster cannot be reached or cannot run this build."""


@ray.remote(num_cpus=0)
def _sees(path: str, token: str) -> tuple[str, bool, str]:
    """(this node, whether it reads `token` at `path`, its toolkit version)."""
    try:
        seen = Path(path).read_text().strip() == token
    except OSError:
        seen = False
    return ray.util.get_node_ip_address(), seen, __version__


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _addresses(host: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}  # int only for AF_CAN
    except OSError:
        return set()


class Cluster:
    """One build's use of a connected cluster (see the module doc)."""

    def __init__(self, address: str, shards: int | None) -> None:
        self.address = address
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.nodes = nodes
        cpus = int(sum(n.get("Resources", {}).get("CPU", 0) for n in nodes))
        self.cpus = max(1, cpus)
        most = max(1, int((self.cpus - 1) / SHARD_CPUS)) if self.cpus > 1 else 1
        if shards is not None and not 1 <= shards <= most:
            raise ClusterError(f"--ray-shards {shards}: this cluster's {self.cpus} CPU(s) hold "
                               f"1 to {most} shards (each takes {SHARD_CPUS} CPU and one CPU "
                               "stays free for source tasks)")
        self.shards = shards or max(1, min(self.cpus // 2, SHARDS_PER_NODE * len(nodes)))
        self.intake = Intake(window=2 * self.cpus)
        self.run = uuid.uuid4().hex[:12]
        self._token = secrets.token_hex(16)
        self._state: Path | None = None
        self._set: ShardSet | None = None
        self._gate: Any = None
        self._figures: dict[str, Any] = {}
        self._absorbed = 0

    # -- before the sources ---------------------------------------------------------------

    def prepare(self, state: Path, config: BuildConfig, backend: str) -> None:
        """Check that every node sees `state` as written here, and runs this toolkit; refuse
        loopback endpoints on a cluster of several nodes."""
        if backend == "openai" and len(self.nodes) > 1:
            local = sorted({u for m in config.roles().values() for u in m.base_urls
                            if _loopback(u)})
            if local:
                raise BuildError(f"{', '.join(local)}: a loopback endpoint on a cluster of "
                                 f"{len(self.nodes)} nodes would be each node's own; give "
                                 "every base URL a host name all nodes reach")
        self._state = state = Path(state).resolve()
        marker = state / MARKER
        temp = marker.with_suffix(".tmp")
        temp.write_text(self._token + "\n")
        temp.replace(marker)
        checks = [_sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(str(marker), self._token) for n in self.nodes]
        blind, versions = [], set()
        for node, seen, version in ray.get(checks):
            versions.add(version)
            if not seen:
                blind.append(node)
        if blind:
            raise BuildError(f"node(s) {', '.join(sorted(blind))} do not see {state} as this "
                             f"driver wrote it: put --out on storage every node mounts at the "
                             "same path (NFS, a cluster file system)")
        if versions != {__version__}:
            raise BuildError(f"the nodes run safer-toolkit {', '.join(sorted(versions))}, the "
                             f"driver {__version__}: install the same version everywhere")

    def pool(self, config: BuildConfig, needed: int, on_bad: Callable[[Any], None],
             exclude: ExclusionList) -> DedupPool:
        return self.intake.pool(config, needed, on_bad, exclude)

    # -- the items --------------------------------------------------------------------------

    def _placement(self, config: BuildConfig, backend: str) -> list[Any]:
        """Shards go to the nodes that run the endpoints when some do, else spread."""
        hosts: set[str] = set()
        if backend == "openai":
            for m in config.roles().values():
                for url in m.base_urls:
                    host = urlsplit(url).hostname or ""
                    hosts |= {host} | _addresses(host)
        near = [n["NodeID"] for n in self.nodes if n.get("NodeManagerAddress") in hosts
                or (len(self.nodes) == 1 and any(_loopback(f"http://{h}") for h in hosts))]
        if not near:
            return ["SPREAD"]
        return [NodeAffinitySchedulingStrategy(node, soft=True) for node in near]

    async def start(self, job: Build, cache: CallCache, backend: str,
                    checks: Mapping[str, Any]) -> Callable[..., Any]:
        """Absorb what earlier runs' shards left, freeze the main cache, start the gate and
        the shards; returns the `process` the fill calls."""
        assert self._state is not None, "prepare() first"
        self.absorb(cache)
        cache.checkpoint()
        config = job.config
        self._gate, gate_name = None, None
        if backend == "openai":
            spent = job.roles.budget
            gate_name = f"safer-toolkit-gate-{self.run}"
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                  soft=True)  # it lives and dies with the driver
            # an actor class (see the ignore on `@ray.remote` in gate.py: ray's stub misses it)
            self._gate = Gate.options(  # type: ignore[attr-defined]
                name=gate_name, scheduling_strategy=here).remote(
                Budget(spent.max_calls, spent.max_cost, spent.calls, spent.cost))
        (self._state / SHARDS_DIR).mkdir(exist_ok=True)
        started = time.monotonic()
        self._set = ShardSet.start(job, self.shards, self._placement(config, backend),
                                   run=self.run, state=self._state, token=self._token,
                                   backend=backend, checks=checks, gate_name=gate_name)
        await self._set.ready()
        self._figures["start_s"] = round(time.monotonic() - started, 3)
        return self._set.process

    async def stop(self, cache: CallCache) -> None:
        """Close the shards and absorb their caches; keep the run's figures."""
        if self._set is None:
            return
        closed = await self._set.close()
        self._figures.update(self._set.figures(closed))
        if self._gate is not None:
            gate = self._figures["gate"] = await self._gate.figures.remote()
            budget = self._set.job.roles.budget
            if budget.max_calls is not None or budget.max_cost is not None:
                # with a limit the gate admitted every request: its count is the exact spend
                budget.calls, budget.cost = gate["calls"], gate["cost_usd"]
            ray.kill(self._gate)
        self._set = None
        self.absorb(cache)

    def absorb(self, cache: CallCache) -> None:
        """Move every shard cache file into the main cache (a killed run's included)."""
        assert self._state is not None
        for path in sorted((self._state / SHARDS_DIR).glob("calls-*.sqlite")):
            try:
                self._absorbed += cache.absorb(path)
            except Exception as exc:  # still held by a dying process: the next run takes it
                logging.getLogger(__name__).warning("left %s for the next run: %s", path, exc)

    def figures(self) -> dict[str, Any]:
        """The manifest's `run.cluster`: where everything ran."""
        return {"address": self.address, "ray_version": ray.__version__,
                "nodes": len(self.nodes), "cpus": self.cpus, "shards": self.shards,
                "intake": self.intake.figures(), "calls_absorbed": self._absorbed,
                **self._figures}

    def close(self) -> None:
        ray.shutdown()


def connect(address: str, shards: int | None = None) -> Cluster:
    """Join the cluster at `address` (`auto`, `HOST:PORT`, `ray://HOST:PORT`) or start one
    here (`local`); raises `ClusterError` with Ray's own message when it cannot."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address not in ("local", "auto"):  # Ray itself retries a dead address for minutes
        where = urlsplit(address if "://" in address else f"ray://{address}")
        if where.port is None or not where.hostname:
            raise ClusterError(f"--ray {address}: expected auto, local, HOST:PORT or "
                               "ray://HOST:PORT")
        try:
            with socket.create_connection((where.hostname or "", where.port or 0), timeout=5):
                pass
        except (OSError, ValueError) as exc:
            raise ClusterError(f"cannot join the Ray cluster at {address}: nothing answers "
                               f"there ({exc})") from None
    try:
        if address == "local":
            ray.init(include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}") from None
    try:
        return Cluster(address, shards)
    except BaseException:
        ray.shutdown()
        raise
