"""The build configuration: one TOML file (or a shipped preset) says everything a build does.

Sources, split sizes, seed, judge thresholds and the models — a planner, one or more responders
and an optional judge, each with its base URL(s), model name, the *name* of the environment
variable holding its key (never the key), sampling parameters and concurrency. Unknown keys and
wrong types are errors that name the file and the key: a typo must not silently fall back to a
default. `examples/build.toml` documents every key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import ConfigError
from ..settings import Reader, defaults, read_toml, setting
from ..validation.grammar import GrammarLimits
from ..validation.grammar.requests import SERVER_LIMITS
from .backends.client import ModelEndpoint
from .backends.keys import key_env_problem
from .backends.offline import OFFLINE_MODELS
from .backends.servers import SERVER_CHOICES
from .release.audit.thresholds import AuditThresholds
from .sources import SOURCE_KINDS, kinds_text
from .sources.intake import Columns, Limits
from .stages.constrain import MODES as CONSTRAIN_MODES
from .stages.judge import RUBRIC

PRESETS = ("demo", "paper")
SPLITS = ("sft", "dpo", "grpo", "eval")
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
MAX_SEED = 2**31 - 1
MAX_CONCURRENCY = 4096


#: `constrain` values of an earlier version, and what says the same now.
_RENAMED = {"auto": 'constrain = "json" (the preflight still picks the JSON form)',
            "json_schema": 'constrain = "json" with the server\'s kind in `server`',
            "json_object": 'constrain = "json" with server = "llama-cpp-python"'}
_LIMIT_KEYS = tuple(f.name for f in fields(GrammarLimits))


# -- how a model setting is read where its type alone does not say (`setting(read=...)`) -----

def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _url(r: Reader, value: Any, key: str) -> str:
    if not _is_url(value):
        raise r.fail(key, f"must be an http(s) URL, not {value!r}")
    return value


def _urls(r: Reader, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(map(_is_url, value)):
        raise r.fail(key, "must be a non-empty list of http(s) URLs")
    return tuple(value)


def _key_variable(r: Reader, value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise r.fail(key, "must be the NAME of an environment variable, e.g. OPENAI_API_KEY")
    if value and (problem := key_env_problem(value)):
        raise r.fail(key, problem)
    return value


def _constrain(r: Reader, value: Any, key: str) -> str:
    if isinstance(value, str) and value in _RENAMED:
        raise r.fail(key, f"{value!r} is no longer a mode; write {_RENAMED[value]}")
    return r.choice(value, key, CONSTRAIN_MODES)


def _grammar_limits(r: Reader, value: Any, key: str) -> dict[str, int]:
    t = r.table(value, key, set(_LIMIT_KEYS))
    return {k: r.integer(v, f"{key}.{k}", 1, 1_000_000) for k, v in t.items()}


#: `ModelEndpoint`'s own defaults: a setting the two share is defaulted there, once.
_ENDPOINT = defaults(ModelEndpoint)
#: Settings each role keeps for itself where roles share a client (module `roles`).
_PER_ROLE = ("sampling", "price_in", "price_out")


@dataclass(frozen=True)
class ModelConfig:
    """One model role: each setting declared once below with its default, bounds and help
    (`help_of`, the one text the example config and `--help` repeat). Settings it shares with
    `ModelEndpoint` take their defaults from there, and `endpoint()` builds the client's."""

    model: str = setting(help="the model name the endpoint serves")
    base_urls: tuple[str, ...] = setting((DEFAULT_BASE_URL,), read=_urls, help=(
        "API roots of replicas of one deployment (`base_url` for one)"))
    api_key_env: str = setting("", read=_key_variable, help=(
        "the NAME of the environment variable holding the key (\"\": a keyless server)"))
    sampling: Mapping[str, Any] = setting(factory=dict,
                                          help="request parameters sent with every call")
    concurrency: int = setting(_ENDPOINT["concurrency"], low=1, high=MAX_CONCURRENCY,
                               help="requests on the wire at most")
    timeout_s: float = setting(_ENDPOINT["timeout_s"], low=0.001, help="seconds per attempt")
    max_retries: int = setting(_ENDPOINT["max_retries"], low=0, high=100,
                               help="attempts after the first")
    price_in: float = setting(_ENDPOINT["price_in"], low=0.0,
                              help="dollars per million input tokens")
    price_out: float = setting(_ENDPOINT["price_out"], low=0.0,
                               help="dollars per million output tokens")
    samples: int = setting(1, low=1, high=64, help="responders only: samples per item")
    constrain: str = setting("json", choices=CONSTRAIN_MODES, read=_constrain, help=(
        "what the server is asked to enforce: grammar (the responder's requests carry its "
        "protocol's trace grammar; planner and judge JSON by their schemas), json (planner and "
        "judge JSON by their schemas; free-text traces) or none (free text; schemas in the "
        "prompt). The preflight checks the server accepts and enforces it, falls back "
        "grammar → json → none where it refuses, and validates every reply either way"))
    server: str = setting("auto", choices=SERVER_CHOICES, help=(
        "the server's kind, which says how a grammar or schema is sent: auto (from the "
        "model's owned_by in GET /models, else by probing each grammar field), vllm, sglang, "
        "llama.cpp, llama-cpp-python or openai (no grammar)"))
    grammar_limits: Mapping[str, int] = setting(factory=dict, read=_grammar_limits, help=(
        "caps on the grammar a server is sent, each only shrinking what it allows (all still "
        "validates): max_string, max_items, max_answer (characters / items), max_walk_states "
        f"(default {SERVER_LIMITS.max_walk_states}); a small model rambles inside a "
        "1,000-character string until max_tokens without them"))
    max_tokens_cap: int = setting(0, low=0, high=1_000_000, help=(
        "how far a reply cut at max_tokens is re-asked with more room (0: 4× the sampling "
        "max_tokens, 8,192 without one)"))
    images: bool = setting(True, help=(
        "false sends the role text only (a text-only model or server: it then sees the "
        "question, not the picture)"))

    def endpoint(self, role: str, **settings: Any) -> ModelEndpoint:
        """The client's endpoint for this role: each `ModelEndpoint` setting taken from here by
        name (`settings` override), except what stays per role on a shared client
        (`_PER_ROLE`: each role samples and bills at its own settings)."""
        shared = {name: getattr(self, name) for name in _ENDPOINT_SETTINGS}
        shared.update(base_urls=list(self.base_urls), api_key_env=self.api_key_env or None)
        return ModelEndpoint(role=role, **{**shared, **settings})

    def grammar(self) -> GrammarLimits:
        """The limits the role's grammars are compiled under (`grammar_limits` over the
        server default)."""
        return replace(SERVER_LIMITS, **self.grammar_limits)

    def to_toml(self, responder: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["base_urls"] = list(self.base_urls)
        data["sampling"] = dict(self.sampling)
        data["grammar_limits"] = dict(self.grammar_limits)
        if not responder:
            del data["samples"]
        return data


_MODEL_FIELDS = {f.name: f for f in fields(ModelConfig)}
_ENDPOINT_SETTINGS = tuple(f.name for f in fields(ModelEndpoint)
                           if f.name in _MODEL_FIELDS and f.name not in _PER_ROLE)


def help_of(name: str) -> str:
    """A model setting's help, as declared on `ModelConfig`."""
    return _MODEL_FIELDS[name].metadata["help"]


@dataclass(frozen=True)
class BuildConfig:
    """A resolved build. `sizes["dpo"]` counts pairs; `dpo_prompts` the prompts behind them."""

    sizes: Mapping[str, int]
    seed: int = setting(0, low=0, high=MAX_SEED)
    reserve: float = setting(0.15, low=0.0,
                             help="extra candidates drawn per split, as a share of its prompts")
    rejected_per_prompt: int = setting(3, low=1, high=4, key="dpo.rejected_per_prompt")
    sources: tuple[Mapping[str, Any], ...] = ({"kind": "seed"},)
    thresholds: Mapping[str, int] = field(
        default_factory=lambda: {"safety": 2, "helpfulness": 2, "rigor": 2})
    plan_attempts: int = setting(3, low=1, high=20, key="plan.max_attempts")
    repair_attempts: int = setting(1, low=0, high=10, key="respond.repair_attempts")
    judge_attempts: int = setting(2, low=1, high=20, key="judge.max_attempts")
    max_items_in_flight: int = setting(0, low=0, high=1_000_000,
                                       help="0: twice the total model concurrency")
    exclusion: str = setting("default", help=(
        'benchmark exclusion list: "default" (shipped), "none" or a path'))
    max_draw: float = setting(3.0, low=1.0,
                              help="candidates per split at most this multiple of its prompts")
    max_calls: int = setting(0, low=0, help="requests sent at most (0: no limit)")
    max_cost: float = setting(0.0, low=0.0, help="dollars billed at most (0: no limit)")
    planner: ModelConfig = ModelConfig(OFFLINE_MODELS["planner"])
    responders: tuple[ModelConfig, ...] = (ModelConfig(OFFLINE_MODELS["responder"]),)
    judge: ModelConfig | None = ModelConfig(OFFLINE_MODELS["judge"])
    audit: AuditThresholds = field(default_factory=AuditThresholds)  # bounds of `[audit]`

    @property
    def dpo_prompts(self) -> int:
        return self.sizes["dpo"] // self.rejected_per_prompt

    def prompt_counts(self) -> dict[str, int]:
        """Prompts each split needs (DPO pairs divided by rejected sides per prompt)."""
        return {s: self.dpo_prompts if s == "dpo" else self.sizes[s] for s in SPLITS}

    def roles(self) -> dict[str, ModelConfig]:
        """Every model role by name: `planner`, `responder[i]`, `judge`."""
        named = {"planner": self.planner}
        named.update((f"responder[{i}]", r) for i, r in enumerate(self.responders))
        if self.judge is not None:
            named["judge"] = self.judge
        return named

    def key_variables(self) -> dict[str, str]:
        """role → the environment variable its key is read from (roles that name one)."""
        return {role: m.api_key_env for role, m in self.roles().items() if m.api_key_env}

    def with_overrides(self, *, seed: int | None = None, base_url: str | None = None,
                       concurrency: int | None = None,
                       models: Mapping[str, str] | None = None,
                       base_urls: Mapping[str, str] | None = None,
                       api_key_envs: Mapping[str, str] | None = None,
                       constrains: Mapping[str, str] | None = None,
                       servers: Mapping[str, str] | None = None,
                       max_calls: int | None = None, max_cost: float | None = None,
                       origin: str = "overrides") -> BuildConfig:
        """The command line applied, each value checked as the file's own keys are
        (`ConfigError` naming `origin` and the key): `--seed`, `--concurrency`, `--max-calls`,
        `--max-cost`, and per role (`ROLE=VALUE`; `planner`, `responder` for every responder,
        `responder[i]`, `judge`, or "" for every role) `--model`, `--base-url`,
        `--api-key-env`, `--constrain` and `--server`. `base_url` is `--base-url` for every
        role."""
        r = Reader(origin)
        for name, number in (("seed", seed), ("max_calls", max_calls), ("max_cost", max_cost)):
            if number is not None:
                r.value(BuildConfig, name, number, name)
        if concurrency is not None:
            r.value(ModelConfig, "concurrency", concurrency, "concurrency")
        changes: dict[str, dict[str, Any]] = {role: {} for role in self.roles()}
        per_role = [("model", "model", models or {}),
                    ("base_urls", "base_url",
                     {**({"": base_url} if base_url else {}), **(base_urls or {})}),
                    ("api_key_env", "api_key_env", api_key_envs or {}),
                    ("constrain", "constrain", constrains or {}),
                    ("server", "server", servers or {})]
        for name, flag, given in per_role:
            for role, value in given.items():
                key = f"{role}.{flag}" if role else flag
                for target in _targets(r, role, changes, key):
                    changes[target][name] = (_url(r, value, key),) if name == "base_urls" \
                        else r.value(ModelConfig, name, value, key)
        if concurrency is not None:
            for change in changes.values():
                change["concurrency"] = concurrency

        def model(role: str, m: ModelConfig) -> ModelConfig:
            return replace(m, **changes[role])

        return replace(self, seed=self.seed if seed is None else seed,
                       max_calls=self.max_calls if max_calls is None else max_calls,
                       max_cost=self.max_cost if max_cost is None else max_cost,
                       planner=model("planner", self.planner),
                       responders=tuple(model(f"responder[{i}]", m)
                                        for i, m in enumerate(self.responders)),
                       judge=None if self.judge is None else model("judge", self.judge))

    def to_toml(self) -> str:
        """The resolved configuration as TOML (copied into the dataset as `build.toml`)."""
        data: dict[str, Any] = {
            "seed": self.seed, "reserve": self.reserve, "max_draw": self.max_draw,
            "max_calls": self.max_calls, "max_cost": self.max_cost,
            "max_items_in_flight": self.max_items_in_flight, "exclusion": self.exclusion,
            "sizes": dict(self.sizes), "dpo": {"rejected_per_prompt": self.rejected_per_prompt},
            "thresholds": dict(self.thresholds),
            "plan": {"max_attempts": self.plan_attempts},
            "respond": {"repair_attempts": self.repair_attempts},
            "judge": {"enabled": self.judge is not None, "max_attempts": self.judge_attempts},
            "sources": [dict(s) for s in self.sources],
            "audit": self.audit.to_json(),
            "models": {"planner": self.planner.to_toml(),
                       "responders": [r.to_toml(responder=True) for r in self.responders]},
        }
        if self.judge is not None:
            data["models"]["judge"] = self.judge.to_toml()
        return tomli_w.dumps(data)


# -- reading ----------------------------------------------------------------------------

#: BuildConfig's fields read by hand below (each a table or array of its own kind); every other
#: field is a `setting` the generic reader reads under its TOML key.
_BY_HAND = ("sizes", "sources", "thresholds", "planner", "responders", "judge")


def _targets(r: Reader, role: str, changes: Mapping[str, Any], key: str) -> list[str]:
    """The roles a command-line `ROLE=` names (`""` every role, `responder` every responder)."""
    if role == "":
        return list(changes)
    if role == "responder":
        return [name for name in changes if name.startswith("responder[")]
    if role.startswith("responders["):
        role = role.removeprefix("responders[").join(("responder[", ""))
    if role not in changes:
        raise r.fail(key, f"unknown role {role!r}; expected planner, responder, responder[N] "
                          f"or judge (this build has {', '.join(changes)})")
    return [role]


def _model(r: Reader, data: Any, key: str, responder: bool = False) -> ModelConfig:
    """A `[models.ROLE]` table (`base_url` is one of `base_urls`; `samples` responders only)."""
    if isinstance(data, dict) and "base_url" in data:
        data = {"base_urls": [data["base_url"]],
                **{k: v for k, v in data.items() if k != "base_url"}}
    skip = () if responder else ("samples",)
    return ModelConfig(**r.values(ModelConfig, data, key, skip=skip))


def _source(r: Reader, spec: dict[str, Any], key: str, base: Path | None) -> dict[str, Any]:
    """One source table: a known kind with what it needs; local paths made absolute."""
    kind = spec["kind"]
    if kind not in SOURCE_KINDS:
        raise r.fail(f"{key}.kind", f"unknown kind {kind!r}; expected {kinds_text()}")
    known = SOURCE_KINDS[kind]
    if known.allowed is not None:
        r.table(spec, key, known.allowed | {"kind"})
    if kind == "seed":
        for name in ("count", "seed"):
            if name in spec:
                r.integer(spec[name], f"{key}.{name}", 0)
    missing = sorted(known.needs - set(spec))
    if missing:
        raise r.fail(key, f"a {kind} source needs {', '.join(missing)}")
    if kind == "local":
        path = Path(r.string(spec["path"], f"{key}.path"))
        if base is not None and not path.is_absolute():
            spec["path"] = str(base / path)
    if "columns" in spec:
        r.table(spec["columns"], f"{key}.columns", {f.name for f in fields(Columns)})
    limits = r.table(spec.get("limits"), f"{key}.limits", {f.name for f in fields(Limits)})
    for name, value in limits.items():
        r.integer(value, f"{key}.limits.{name}", 1)
    return spec


def parse_config(data: Mapping[str, Any], origin: str, base: Path | None = None) -> BuildConfig:
    """A `BuildConfig` from parsed TOML; raises `ConfigError` naming `origin` and the key.

    Relative paths (the exclusion list, local sources) are resolved against `base`.
    """
    r = Reader(origin)
    d = defaults(BuildConfig)
    top = dict(data)
    values = r.values(BuildConfig, top, skip=_BY_HAND,
                      extra=("sizes", "thresholds", "sources", "models", "judge.enabled"))
    sizes_t = r.table(top.get("sizes"), "sizes", set(SPLITS))
    missing = [s for s in SPLITS if s not in sizes_t]
    if missing:
        raise r.fail("sizes", f"missing {', '.join(missing)}")
    sizes = {s: r.integer(sizes_t[s], f"sizes.{s}", 0) for s in SPLITS}
    per_prompt = values.get("rejected_per_prompt", d["rejected_per_prompt"])
    if sizes["dpo"] % per_prompt:
        raise r.fail("sizes.dpo", f"{sizes['dpo']} pairs is not a multiple of "
                                  f"dpo.rejected_per_prompt ({per_prompt})")
    thresholds_t = r.table(top.get("thresholds"), "thresholds", set(RUBRIC))
    thresholds = dict(d["thresholds"])
    for k, v in thresholds_t.items():
        thresholds[k] = r.integer(v, f"thresholds.{k}", *RUBRIC[k])  # the judge's own bounds
    sources = top.get("sources", [dict(s) for s in d["sources"]])
    if not isinstance(sources, list) or not sources or not all(
            isinstance(s, dict) and isinstance(s.get("kind"), str) for s in sources):
        raise r.fail("sources", "must be a non-empty array of tables, each with a `kind`")
    sources = [_source(r, dict(s), f"sources[{i}]", base) for i, s in enumerate(sources)]
    models = r.table(top.get("models"), "models", {"planner", "responders", "judge"})
    if "planner" not in models or "responders" not in models:
        raise r.fail("models", "needs [models.planner] and at least one [[models.responders]]")
    responders = models["responders"]
    if not isinstance(responders, list) or not responders:
        raise r.fail("models.responders", "must be an array of tables ([[models.responders]])")
    judge_enabled = r.boolean(top.get("judge", {}).get("enabled", "judge" in models),
                              "judge.enabled")
    if judge_enabled and "judge" not in models:
        raise r.fail("models.judge", "judge.enabled is true but no [models.judge] is given")
    exclusion = values.get("exclusion", d["exclusion"])
    if exclusion not in ("default", "none"):
        path = Path(exclusion)
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise r.fail("exclusion", f"no exclusion list at {path} (use \"default\", "
                                      "\"none\" or the path of a list file)")
        values["exclusion"] = str(path)
    return BuildConfig(
        sizes=sizes, sources=tuple(sources), thresholds=thresholds, **values,
        planner=_model(r, models["planner"], "models.planner"),
        responders=tuple(_model(r, m, f"models.responders[{i}]", responder=True)
                         for i, m in enumerate(responders)),
        judge=_model(r, models["judge"], "models.judge") if judge_enabled else None)


def load_config(path: str | Path) -> BuildConfig:
    """Read a build TOML file; raises `ConfigError` with the file name on any problem."""
    path = Path(path)
    return parse_config(read_toml(path), str(path), path.parent)


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return resources.files("safer_toolkit.builder").joinpath(f"presets/{name}.toml") \
        .read_text(encoding="utf-8")


def load_preset(name: str) -> BuildConfig:
    """A shipped preset (`demo`, `paper`)."""
    return parse_config(tomllib.loads(preset_text(name)), f"preset {name}")
