"""Build configuration: presets, the documented example, overrides and precise errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from safer_toolkit.builder.config import (
    BuildConfig,
    ConfigError,
    ModelConfig,
    load_config,
    load_preset,
    parse_config,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "build.toml"


def test_presets_have_the_published_and_demo_sizes():
    paper = load_preset("paper")
    assert dict(paper.sizes) == {"sft": 6000, "dpo": 18600, "grpo": 6000, "eval": 1000}
    assert paper.prompt_counts() == {"sft": 6000, "dpo": 6200, "grpo": 6000, "eval": 1000}
    demo = load_preset("demo")
    assert demo.prompt_counts() == {"sft": 60, "dpo": 62, "grpo": 60, "eval": 20}
    assert demo.sizes["dpo"] == 186 and demo.judge is not None
    assert demo.planner.model == "safer-offline-planner"


def test_the_example_config_parses_and_round_trips():
    config = load_config(EXAMPLE)
    assert [r.model for r in config.responders] == ["Qwen/Qwen2.5-VL-72B-Instruct",
                                                    "gpt-4o-mini"]
    assert config.responders[0].base_urls == ("http://127.0.0.1:8000/v1",
                                              "http://127.0.0.1:8001/v1")
    assert config.judge is not None and config.judge.api_key_env == "OPENAI_API_KEY"
    assert config.responders[1].price_out == 0.60
    again = parse_config(tomllib.loads(config.to_toml()), "round trip")
    assert again == config


def test_overrides_apply_to_every_role():
    config = load_preset("demo").with_overrides(seed=7, base_url="http://h:1/v1",
                                                concurrency=3)
    roles = [config.planner, *config.responders, config.judge]
    assert config.seed == 7
    assert all(r.base_urls == ("http://h:1/v1",) and r.concurrency == 3 for r in roles)


BASE = """
[sizes]
sft = 3
dpo = 3
grpo = 3
eval = 3
[models.planner]
model = "p"
[[models.responders]]
model = "r"
"""


@pytest.mark.parametrize(("extra", "key", "message"), [
    ("colour = 1\n", "(top level)", "unknown key(s) colour"),
    ("seed = 'x'\n", "seed", "must be an integer"),
    ("reserve = -1\n", "reserve", "must be a number"),
    ("[dpo]\nrejected_per_prompt = 2\n", "sizes.dpo", "not a multiple"),
    ("[thresholds]\nsafety = 9\n", "thresholds.safety", "between -3 and 3"),
    ("[judge]\nenabled = true\n", "models.judge", "no [models.judge]"),
    ("[models.judge]\nmodel = 'j'\napi_key_env = 'sk-abc123'\n", "models.judge.api_key_env",
     "NAME of an environment variable"),
    ("[models.judge]\nmodel = 'j'\nbase_urls = ['ftp://x']\n", "models.judge.base_urls",
     "http(s) URLs"),
    ("[models.judge]\nmodel = 'j'\nsamples = 2\n", "models.judge", "unknown key(s) samples"),
    ("[models.judge]\nmodel = 'j'\nimages = 'no'\n", "models.judge.images",
     "must be true or false"),
    ("exclusion = 'missing.txt'\n", "exclusion", "no exclusion list"),
    ("[[sources]]\nkind = 'ftp'\n", "sources[0].kind", "expected seed, local or hub"),
    ("[[sources]]\nkind = 'seed'\ncolour = 1\n", "sources[0]", "unknown key(s) colour"),
    ("[[sources]]\nkind = 'hub'\n", "sources[0]", "a hub source needs layout"),
    ("[[sources]]\nkind = 'hub'\nlayout = 'mis'\ncolumns = {colour = 'c'}\n",
     "sources[0].columns", "expected id, image, label, question, risk_category"),
])
def test_errors_name_the_file_and_the_key(tmp_path, extra, key, message):
    path = tmp_path / "b.toml"
    head, _, tail = extra.partition("[")
    path.write_text(head + BASE + (("[" + tail) if tail else ""))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert message in str(caught.value)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sizes\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    missing = tmp_path / "m.toml"
    missing.write_text(BASE.replace("eval = 3\n", ""))
    with pytest.raises(ConfigError, match="sizes: missing eval"):
        load_config(missing)


def test_a_config_without_a_judge_has_none(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(BASE)
    config = load_config(path)
    assert config.judge is None and config.responders[0].samples == 1
    assert config.responders[0].base_urls == ("http://127.0.0.1:8000/v1",)


def test_what_a_file_leaves_out_is_the_dataclass_default():
    config = parse_config(tomllib.loads(BASE), "base")
    assert config == BuildConfig(sizes={"sft": 3, "dpo": 3, "grpo": 3, "eval": 3},
                                 planner=ModelConfig("p"), responders=(ModelConfig("r"),),
                                 judge=None)


@pytest.mark.parametrize(("overrides", "key", "message"), [
    ({"seed": -1}, "seed", "between 0 and 2147483647"),
    ({"seed": 2**31}, "seed", "between 0 and 2147483647"),
    ({"concurrency": 0}, "concurrency", "between 1 and 4096"),
    ({"base_url": "ftp://h/v1"}, "base_url", "http(s) URL"),
    ({"models": {"critic": "m"}}, "critic.model", "unknown role 'critic'"),
    ({"models": {"responder[3]": "m"}}, "responder[3].model", "unknown role"),
    ({"api_key_envs": {"judge": "sk-123"}}, "judge.api_key_env", "NAME of an environment"),
    ({"base_urls": {"planner": "localhost:8000"}}, "planner.base_url", "http(s) URL"),
    ({"max_calls": -1}, "max_calls", "at least 0"),
])
def test_overrides_are_checked_as_the_file_keys_are(overrides, key, message):
    with pytest.raises(ConfigError) as caught:
        load_preset("demo").with_overrides(**overrides, origin="command line")
    assert str(caught.value).startswith(f"command line: {key}: ")
    assert message in str(caught.value)


def test_roles_are_overridden_one_by_one_or_all_at_once():
    config = load_preset("demo").with_overrides(
        models={"": "qwen3-8b", "judge": "gpt-5-mini"},
        base_urls={"": "http://h:1/v1", "judge": "https://api.openai.com/v1"},
        api_key_envs={"judge": "OPENAI_API_KEY"}, max_calls=50, max_cost=1.5)
    assert config.planner.model == config.responders[0].model == "qwen3-8b"
    assert config.judge.model == "gpt-5-mini" and config.judge.api_key_env == "OPENAI_API_KEY"
    assert config.responders[0].base_urls == ("http://h:1/v1",)
    assert config.judge.base_urls == ("https://api.openai.com/v1",)
    assert config.key_variables() == {"judge": "OPENAI_API_KEY"}
    assert (config.max_calls, config.max_cost) == (50, 1.5)
    again = parse_config(tomllib.loads(config.to_toml()), "round trip")
    assert again == config


@pytest.mark.parametrize(("line", "message"), [
    ('constrain = "regex"', r"models\.planner\.constrain: must be one of grammar, json, none, "
                            "not 'regex'"),
    ('constrain = "json_object"', r"'json_object' is no longer a mode; write constrain = "
                                  r'"json" with server = "llama-cpp-python"'),
    ('server = "ollama"', r"models\.planner\.server: must be one of auto, vllm, sglang, "
                          r"llama\.cpp, llama-cpp-python, openai, not 'ollama'"),
    ("grammar_limits = { max_strings = 4 }", r"models\.planner\.grammar_limits: unknown "
                                             r"key\(s\) max_strings; expected max_answer"),
    ("grammar_limits = { max_string = 0 }", r"models\.planner\.grammar_limits\.max_string: "
                                            "must be between 1 and"),
])
def test_constraint_settings_are_checked(line, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(tomllib.loads(BASE.replace('model = "p"', f'model = "p"\n{line}')), "b")


def test_constraint_settings_and_the_token_cap_are_read_and_round_trip():
    good = BASE.replace('model = "p"', 'model = "p"\nconstrain = "grammar"\nserver = "vllm"\n'
                        'grammar_limits = { max_string = 60 }\nmax_tokens_cap = 4096')
    config = parse_config(tomllib.loads(good), "b")
    planner = config.planner
    assert (planner.constrain, planner.server, planner.max_tokens_cap) == ("grammar", "vllm",
                                                                          4096)
    limits = planner.grammar()  # the role's caps over the server default
    assert (limits.max_string, limits.max_items, limits.max_walk_states) == (60, None, 600)
    assert config.responders[0].constrain == "json"  # the default: JSON by schema only
    assert parse_config(tomllib.loads(config.to_toml()), "round trip") == config


def test_constraint_flags_set_one_role_or_every_role():
    config = load_preset("demo").with_overrides(
        constrains={"": "none", "responder": "grammar"}, servers={"": "llama-cpp-python"},
        origin="command line")
    assert [m.constrain for m in config.roles().values()] == ["none", "grammar", "none"]
    assert {m.server for m in config.roles().values()} == {"llama-cpp-python"}
    with pytest.raises(ConfigError, match=r"command line: judge\.constrain: must be one of"):
        load_preset("demo").with_overrides(constrains={"judge": "xml"},
                                           origin="command line")
