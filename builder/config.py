"""The build configuration: one TOML file (or a shipped preset) says everything a build does.

Sources, split sizes, seed, judge thresholds and the models — a planner, one or more responders
and an optional judge, each with its base URL(s), model name, the *name* of the environment
variable holding its key (never the key), sampling parameters and concurrency. Unknown keys and
wrong types are errors that name the file and the key: a typo must not silently fall back to a
default. `examples/build.toml` documents every key.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Set
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from safer_toolkit.builder.backends.keys import key_env_problem
from safer_toolkit.builder.backends.offline import OFFLINE_MODELS
from safer_toolkit.builder.backends.servers import SERVER_CHOICES
from safer_toolkit.builder.release.audit.thresholds import AuditThresholds
from safer_toolkit.builder.sources import SOURCE_KINDS, kinds_text
from safer_toolkit.builder.sources.intake import Columns, Limits
from safer_toolkit.builder.stages.constrain import MODES as CONSTRAIN_MODES
from safer_toolkit.builder.stages.judge import RUBRIC
from safer_toolkit.validation.grammar import GrammarLimits
from safer_toolkit.validation.grammar.requests import SERVER_LIMITS

PRESETS = ("demo", "paper")
SPLITS = ("sft", "dpo", "grpo", "eval")
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
MAX_SEED = 2**31 - 1
MAX_CONCURRENCY = 4096


class ConfigError(ValueError):
    """A build configuration that cannot be used; the message names the file and the key."""


#: `constrain` values of an earlier version, and what says the same now.
_RENAMED = {"auto": 'constrain = "json" (the preflight still picks the JSON form)',
            "json_schema": 'constrain = "json" with the server\'s kind in `server`',
            "json_object": 'constrain = "json" with server = "llama-cpp-python"'}
_LIMIT_KEYS = tuple(f.name for f in fields(GrammarLimits))


@dataclass(frozen=True)
class ModelConfig:
    """One model role. `api_key_env` is the name of an environment variable, or "".

    `max_tokens_cap` bounds how far a reply cut at `max_tokens` is re-asked with more room (0:
    4× the sampling `max_tokens`, 8,192 without one). `images = false` sends the role text only
    (a text-only model or server: it then sees the question, not the picture). How replies are
    constrained — `constrain`, `server`, `grammar_limits` — is declared with its help below
    (`help_of`), the one text the example config and `--help` repeat."""

    model: str
    base_urls: tuple[str, ...] = (DEFAULT_BASE_URL,)
    api_key_env: str = ""
    sampling: Mapping[str, Any] = field(default_factory=dict)
    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6
    price_in: float = 0.0
    price_out: float = 0.0
    samples: int = 1  # responders only: samples per item
    constrain: str = field(default="json", metadata={"choices": CONSTRAIN_MODES, "help": (
        "what the server is asked to enforce: grammar (the responder's requests carry its "
        "protocol's trace grammar; planner and judge JSON by their schemas), json (planner and "
        "judge JSON by their schemas; free-text traces) or none (free text; schemas in the "
        "prompt). The preflight checks the server accepts and enforces it, falls back "
        "grammar → json → none where it refuses, and validates every reply either way")})
    server: str = field(default="auto", metadata={"choices": SERVER_CHOICES, "help": (
        "the server's kind, which says how a grammar or schema is sent: auto (from the "
        "model's owned_by in GET /models, else by probing each grammar field), vllm, sglang, "
        "llama.cpp, llama-cpp-python or openai (no grammar)")})
    grammar_limits: Mapping[str, int] = field(default_factory=dict, metadata={"help": (
        "caps on the grammar a server is sent, each only shrinking what it allows (all still "
        "validates): max_string, max_items, max_answer (characters / items), max_walk_states "
        f"(default {SERVER_LIMITS.max_walk_states}); a small model rambles inside a "
        "1,000-character string until max_tokens without them")})
    max_tokens_cap: int = 0
    images: bool = True

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


def help_of(name: str) -> str:
    """A model setting's help, as declared on `ModelConfig`."""
    return next(f.metadata["help"] for f in fields(ModelConfig) if f.name == name)


def _choices(name: str) -> tuple[str, ...]:
    return next(f.metadata["choices"] for f in fields(ModelConfig) if f.name == name)


@dataclass(frozen=True)
class BuildConfig:
    """A resolved build. `sizes["dpo"]` counts pairs; `dpo_prompts` the prompts behind them."""

    sizes: Mapping[str, int]
    seed: int = 0
    reserve: float = 0.15
    rejected_per_prompt: int = 3
    sources: tuple[Mapping[str, Any], ...] = ({"kind": "seed"},)
    thresholds: Mapping[str, int] = field(
        default_factory=lambda: {"safety": 2, "helpfulness": 2, "rigor": 2})
    plan_attempts: int = 3
    repair_attempts: int = 1
    judge_attempts: int = 2
    max_items_in_flight: int = 0  # 0: twice the total model concurrency
    exclusion: str = "default"  # benchmark exclusion list: "default" (shipped), "none" or a path
    max_draw: float = 3.0  # candidates per split at most this multiple of its prompts
    max_calls: int = 0  # requests sent at most (0: no limit)
    max_cost: float = 0.0  # dollars billed at most (0: no limit)
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
        r = _Reader(origin)
        if seed is not None:
            r.integer(seed, "seed", 0, MAX_SEED)
        if concurrency is not None:
            r.integer(concurrency, "concurrency", 1, MAX_CONCURRENCY)
        if max_calls is not None:
            r.integer(max_calls, "max_calls", 0)
        if max_cost is not None:
            r.number(max_cost, "max_cost", 0.0)
        changes: dict[str, dict[str, Any]] = {role: {} for role in self.roles()}
        per_role = [("model", "model", models or {}, r.string),
                    ("base_urls", "base_url",
                     {**({"": base_url} if base_url else {}), **(base_urls or {})},
                     lambda v, k: (r.url(v, k),)),
                    ("api_key_env", "api_key_env", api_key_envs or {}, r.key_variable),
                    ("constrain", "constrain", constrains or {}, r.constrain),
                    ("server", "server", servers or {},
                     lambda v, k: r.choice(v, k, _choices("server")))]
        for name, flag, given, check in per_role:
            for role, value in given.items():
                key = f"{role}.{flag}" if role else flag
                for target in _targets(r, role, changes, key):
                    changes[target][name] = check(value, key)
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


# -- reading -------------------------------------------------------------------------------

def _defaults(cls: type) -> dict[str, Any]:
    """A config dataclass's field defaults (factories called): each default is written once, on
    the dataclass, and the reader fills what a file leaves out from here."""
    found: dict[str, Any] = {}
    for f in fields(cls):
        if f.default is not MISSING:
            found[f.name] = f.default
        elif f.default_factory is not MISSING:
            found[f.name] = f.default_factory()
    return found


_TOP = {"seed", "reserve", "max_draw", "max_calls", "max_cost", "max_items_in_flight",
        "exclusion", "sizes", "dpo", "thresholds", "plan", "respond", "judge", "sources",
        "models", "audit"}
_MODEL_KEYS = {f.name for f in fields(ModelConfig)}


def _targets(r: _Reader, role: str, changes: Mapping[str, Any], key: str) -> list[str]:
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


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


class _Reader:
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {key}: {message}")

    def table(self, data: Any, key: str, allowed: Set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail(key, "must be a table")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.fail(key, f"unknown key(s) {', '.join(unknown)}; "
                                 f"expected {', '.join(sorted(allowed))}")
        return data

    def integer(self, value: Any, key: str, low: int, high: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, f"must be an integer, not {value!r}")
        if value < low or (high is not None and value > high):
            raise self.fail(key, f"must be between {low} and {high}" if high is not None
                            else f"must be at least {low}")
        return value

    def number(self, value: Any, key: str, low: float) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) or not \
                low <= value < math.inf:  # TOML has inf and nan
            raise self.fail(key, f"must be a number ≥ {low}, not {value!r}")
        return float(value)

    def url(self, value: Any, key: str) -> str:
        if not _is_url(value):
            raise self.fail(key, f"must be an http(s) URL, not {value!r}")
        return value

    def urls(self, value: Any, key: str) -> list[str]:
        if not isinstance(value, list) or not value or not all(map(_is_url, value)):
            raise self.fail(key, "must be a non-empty list of http(s) URLs")
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {value!r}")
        return value

    def key_variable(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, "must be the NAME of an environment variable, e.g. "
                                 "OPENAI_API_KEY")
        if value and (problem := key_env_problem(value)):
            raise self.fail(key, problem)
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {value!r}")
        return value

    def choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def constrain(self, value: Any, key: str) -> str:
        if isinstance(value, str) and value in _RENAMED:
            raise self.fail(key, f"{value!r} is no longer a mode; write {_RENAMED[value]}")
        return self.choice(value, key, _choices("constrain"))

    def grammar_limits(self, value: Any, key: str) -> dict[str, int]:
        t = self.table(value, key, set(_LIMIT_KEYS))
        return {k: self.integer(v, f"{key}.{k}", 1, 1_000_000) for k, v in t.items()}

    def model(self, data: Any, key: str, responder: bool = False) -> ModelConfig:
        allowed = (_MODEL_KEYS | {"base_url"}) - (set() if responder else {"samples"})
        t = self.table(data, key, allowed)
        d = _defaults(ModelConfig)
        if "model" not in t:
            raise self.fail(key, "needs `model` (the model name the endpoint serves)")
        urls = self.urls(t.get("base_urls", [t["base_url"]] if "base_url" in t
                               else list(d["base_urls"])), f"{key}.base_urls")
        sampling = t.get("sampling", d["sampling"])
        if not isinstance(sampling, dict):
            raise self.fail(f"{key}.sampling", "must be a table")
        env = self.key_variable(t.get("api_key_env", d["api_key_env"]), f"{key}.api_key_env")
        return ModelConfig(
            model=self.string(t["model"], f"{key}.model"), base_urls=tuple(urls),
            api_key_env=env, sampling=dict(sampling),
            concurrency=self.integer(t.get("concurrency", d["concurrency"]),
                                     f"{key}.concurrency", 1, MAX_CONCURRENCY),
            timeout_s=self.number(t.get("timeout_s", d["timeout_s"]), f"{key}.timeout_s", 0.001),
            max_retries=self.integer(t.get("max_retries", d["max_retries"]),
                                     f"{key}.max_retries", 0, 100),
            price_in=self.number(t.get("price_in", d["price_in"]), f"{key}.price_in", 0.0),
            price_out=self.number(t.get("price_out", d["price_out"]), f"{key}.price_out", 0.0),
            samples=self.integer(t.get("samples", d["samples"]), f"{key}.samples", 1, 64),
            constrain=self.constrain(t.get("constrain", d["constrain"]), f"{key}.constrain"),
            server=self.choice(t.get("server", d["server"]), f"{key}.server",
                               _choices("server")),
            grammar_limits=self.grammar_limits(t.get("grammar_limits", d["grammar_limits"]),
                                               f"{key}.grammar_limits"),
            max_tokens_cap=self.integer(t.get("max_tokens_cap", d["max_tokens_cap"]),
                                        f"{key}.max_tokens_cap", 0, 1_000_000),
            images=self.boolean(t.get("images", d["images"]), f"{key}.images"))


def parse_audit(data: Any, origin: str) -> AuditThresholds:
    """The `[audit]` table (each key a bound of `AuditThresholds`; missing keys keep their
    default); raises `ConfigError` naming `origin` and the key."""
    r = _Reader(origin)
    table = r.table(data, "audit", set(AuditThresholds.keys()))
    values: dict[str, Any] = {}
    for key, value in table.items():
        default = getattr(AuditThresholds, key)
        if isinstance(default, int):
            values[key] = r.integer(value, f"audit.{key}", 0)
        else:
            number = r.number(value, f"audit.{key}", 0.0)
            if number > 1:
                raise r.fail(f"audit.{key}", f"must be a share between 0 and 1, not {value!r}")
            values[key] = number
    return AuditThresholds(**values)


def _source(r: _Reader, spec: dict[str, Any], key: str, base: Path | None) -> dict[str, Any]:
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
    r = _Reader(origin)
    d = _defaults(BuildConfig)
    top = r.table(dict(data), "(top level)", _TOP)
    sizes_t = r.table(top.get("sizes"), "sizes", set(SPLITS))
    missing = [s for s in SPLITS if s not in sizes_t]
    if missing:
        raise r.fail("sizes", f"missing {', '.join(missing)}")
    sizes = {s: r.integer(sizes_t[s], f"sizes.{s}", 0) for s in SPLITS}
    dpo = r.table(top.get("dpo"), "dpo", {"rejected_per_prompt"})
    per_prompt = r.integer(dpo.get("rejected_per_prompt", d["rejected_per_prompt"]),
                           "dpo.rejected_per_prompt", 1, 4)
    if sizes["dpo"] % per_prompt:
        raise r.fail("sizes.dpo", f"{sizes['dpo']} pairs is not a multiple of "
                                  f"dpo.rejected_per_prompt ({per_prompt})")
    thresholds_t = r.table(top.get("thresholds"), "thresholds", set(RUBRIC))
    thresholds = dict(d["thresholds"])
    for k, v in thresholds_t.items():
        thresholds[k] = r.integer(v, f"thresholds.{k}", *RUBRIC[k])  # the judge's own bounds
    plan = r.table(top.get("plan"), "plan", {"max_attempts"})
    respond = r.table(top.get("respond"), "respond", {"repair_attempts"})
    judge = r.table(top.get("judge"), "judge", {"enabled", "max_attempts"})
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
    judge_enabled = judge.get("enabled", "judge" in models)
    if not isinstance(judge_enabled, bool):
        raise r.fail("judge.enabled", "must be true or false")
    if judge_enabled and "judge" not in models:
        raise r.fail("models.judge", "judge.enabled is true but no [models.judge] is given")
    reserve = r.number(top.get("reserve", d["reserve"]), "reserve", 0.0)
    max_draw = r.number(top.get("max_draw", d["max_draw"]), "max_draw", 1.0)
    exclusion = r.string(top.get("exclusion", d["exclusion"]), "exclusion")
    if exclusion not in ("default", "none"):
        path = Path(exclusion)
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise r.fail("exclusion", f"no exclusion list at {path} (use \"default\", "
                                      "\"none\" or the path of a list file)")
        exclusion = str(path)
    return BuildConfig(
        sizes=sizes, seed=r.integer(top.get("seed", d["seed"]), "seed", 0, MAX_SEED),
        reserve=reserve, rejected_per_prompt=per_prompt, sources=tuple(sources),
        thresholds=thresholds,
        plan_attempts=r.integer(plan.get("max_attempts", d["plan_attempts"]),
                                "plan.max_attempts", 1, 20),
        repair_attempts=r.integer(respond.get("repair_attempts", d["repair_attempts"]),
                                  "respond.repair_attempts", 0, 10),
        judge_attempts=r.integer(judge.get("max_attempts", d["judge_attempts"]),
                                 "judge.max_attempts", 1, 20),
        max_items_in_flight=r.integer(top.get("max_items_in_flight", d["max_items_in_flight"]),
                                      "max_items_in_flight", 0, 1_000_000),
        exclusion=exclusion, max_draw=max_draw,
        max_calls=r.integer(top.get("max_calls", d["max_calls"]), "max_calls", 0),
        max_cost=r.number(top.get("max_cost", d["max_cost"]), "max_cost", 0.0),
        planner=r.model(models["planner"], "models.planner"),
        responders=tuple(r.model(m, f"models.responders[{i}]", responder=True)
                         for i, m in enumerate(responders)),
        judge=r.model(models["judge"], "models.judge") if judge_enabled else None,
        audit=parse_audit(top.get("audit"), origin))


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's table; raises `ConfigError` naming the file when it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


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
