"""`safer-toolkit eval`: score a model on the `eval` config; `safer-toolkit eval compare A B`.

    safer-toolkit eval --dataset DIR_OR_REPO [--config eval] --out OUT
        (--model-base-url URL --model NAME | --responses FILE.jsonl)
        --judge-base-url URL --judge-model NAME [--judge-sees-reference]
        [--prompt generic|toolkit] [--concurrency N]
    safer-toolkit eval compare OUT_A OUT_B

Exit status: 0 done; 1 done, but some items failed on calls (the same command retries exactly
those); 2 usage or input error. API keys are read from the environment variables named by
`--model-api-key-env` / `--judge-api-key-env` and are never written anywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

PROG = "safer-toolkit eval"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = (f"{PROG} --dataset DIR_OR_REPO --out OUT (--model-base-url URL --model NAME"
                    " | --responses FILE.jsonl) --judge-base-url URL --judge-model NAME "
                    f"[options]\n       {PROG} compare OUT_A OUT_B")
    actions = parser.add_subparsers(dest="action", title="commands", metavar="compare OUT_A OUT_B",
                                    help="side-by-side metrics of two runs (see `compare --help`)")
    compare = actions.add_parser("compare", prog=f"{PROG} compare",
                                 description="Print the metrics of two eval runs side by side, "
                                             "with the differences (B − A).")
    compare.add_argument("run_a", metavar="OUT_A", help="the first run's --out folder")
    compare.add_argument("run_b", metavar="OUT_B", help="the second run's --out folder")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset", metavar="DIR_OR_REPO",
                      help="a dataset folder from `safer-toolkit build`, or a Hub repo id")
    data.add_argument("--config", default="eval", help="dataset config (default: eval)")
    data.add_argument("--split", default="test", help="split of the config (default: test)")
    data.add_argument("--out", type=Path, metavar="OUT", help="folder for results and the cache")

    model = parser.add_argument_group("model under test")
    model.add_argument("--model-base-url", action="append", metavar="URL",
                       help="OpenAI-compatible API root, e.g. http://localhost:8000/v1 "
                            "(repeat for replicas)")
    model.add_argument("--model", metavar="NAME", help="model name the server serves")
    model.add_argument("--model-api-key-env", metavar="VAR",
                       help="environment variable holding the model server's API key")
    model.add_argument("--prompt", choices=("generic", "toolkit"), default="generic",
                       help="generic: thinking/answer prompt as the authors evaluate; toolkit: "
                            "the toolkit instruction from each row's protocol (default: generic)")
    model.add_argument("--system-prompt-file", metavar="FILE[:NAME]",
                       help="replace the generic prompt's text with this file's: a text file, "
                            "or a string constant in a Python file (the authors' "
                            "eval/utils/prompts.py:SYSTEM_PROMPT_THINKING), read, never run")
    model.add_argument("--image-resize", choices=("none", "authors"), default="none",
                       help="none: send the release's image bytes; authors: RGB JPEG "
                            "(quality 92) scaled into 338²–512² pixels, as the authors' "
                            "evaluation sends them to model and judge (default: none)")
    # the authors' inference settings (greedy, 2,048 new tokens); their repetition_penalty 1.1
    # is a vLLM extra, passed with --model-sampling where the server accepts it
    model.add_argument("--max-tokens", type=int, default=2048,
                       help="completion tokens per response (default: 2048)")
    model.add_argument("--temperature", type=float, default=0.0, help="default: 0 (greedy)")
    model.add_argument("--model-sampling", metavar="JSON",
                       help='extra request parameters, e.g. \'{"repetition_penalty": 1.1}\'')
    model.add_argument("--responses", type=Path, metavar="FILE.jsonl",
                       help='existing responses, one {"id", "response"} per line, instead of '
                            "a model endpoint")

    judge = parser.add_argument_group("judge")
    judge.add_argument("--judge-base-url", action="append", metavar="URL",
                       help="OpenAI-compatible API root of the judge (repeat for replicas)")
    judge.add_argument("--judge-model", metavar="NAME", help="judge model name")
    judge.add_argument("--judge-api-key-env", metavar="VAR",
                       help="environment variable holding the judge's API key")
    judge.add_argument("--judge-sees-reference", action="store_true",
                       help="also show the judge each item's reference label and risk category "
                            "(the builder's informed judge); by default the judge sees image, "
                            "question and response only, as the authors' evaluation judge does")
    judge.add_argument("--rubric", metavar="FILE[:NAME]",
                       help="judge with this rubric instead of the toolkit's: a text file, or "
                            "a string constant in a Python file (the authors' "
                            "eval/utils/eval_prompt.py:system_prompt from a checkout of their "
                            "code), read, never run")
    judge.add_argument("--judge-attempts", type=int, default=3,
                       help="judge replies per item before it is recorded as missing "
                            "(default: 3)")

    calls = parser.add_argument_group("calls")
    calls.add_argument("--concurrency", type=int, default=16,
                       help="requests in flight per endpoint (default: 16)")
    calls.add_argument("--timeout", type=float, default=300.0,
                       help="seconds per request (default: 300)")
    calls.add_argument("--max-retries", type=int, default=6,
                       help="retries of a failed request (default: 6)")


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def _sampling(args: argparse.Namespace) -> dict:
    import orjson

    sampling = {"temperature": args.temperature, "max_tokens": args.max_tokens}
    if args.model_sampling:
        extra = orjson.loads(args.model_sampling)
        if not isinstance(extra, dict):
            raise ValueError("--model-sampling must be a JSON object")
        sampling.update(extra)
    return sampling


def _prompt_file(flag: str, spec: str) -> tuple[str, str]:
    """(text, name) of a prompt file given to `flag`; raises ValueError naming the flag."""
    from .prompt_files import PromptFileError, read_prompt_file

    try:
        return read_prompt_file(spec)
    except PromptFileError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _rubric(spec: str | None):  # -> FileRubric | None
    from .rubric import FileRubric

    return FileRubric(*_prompt_file("--rubric", spec)) if spec else None


def _settings(args: argparse.Namespace):  # -> EvalSettings
    """The run's settings; raises ValueError with a usage message."""
    import orjson

    from ..builder.backends.client import ModelEndpoint
    from ..builder.backends.keys import key_env_problem
    from .prompts import GENERIC_SYSTEM_PROMPT, ModelPrompt
    from .runner import EvalSettings

    needed = [name for name, value in (("--dataset", args.dataset), ("--out", args.out),
                                       ("--judge-base-url", args.judge_base_url),
                                       ("--judge-model", args.judge_model)) if not value]
    if needed:
        raise ValueError(f"missing {', '.join(needed)} (or use `{PROG} compare OUT_A OUT_B`)")
    if args.responses and (args.model_base_url or args.model):
        raise ValueError("give --responses or --model-base-url/--model, not both")
    if not args.responses and not (args.model_base_url and args.model):
        raise ValueError("give --model-base-url and --model, or --responses FILE.jsonl")
    if args.max_tokens < 1:
        raise ValueError("--max-tokens must be ≥ 1")
    if args.responses and not args.responses.is_file():
        raise ValueError(f"--responses {args.responses}: no such file")
    for flag, urls in (("--model-base-url", args.model_base_url),
                       ("--judge-base-url", args.judge_base_url)):
        for url in urls or ():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{flag} must be an http:// or https:// URL such as "
                                 f"http://localhost:8000/v1, not {url!r}")
    for flag, name in (("--model-api-key-env", args.model_api_key_env),
                       ("--judge-api-key-env", args.judge_api_key_env)):
        if name is not None and (problem := key_env_problem(name)):
            raise ValueError(f"{flag} {problem}")  # the value itself is never echoed
    for flag, var in (("--model-api-key-env", args.model_api_key_env if args.model else None),
                      ("--judge-api-key-env", args.judge_api_key_env)):
        if var and not os.environ.get(var):  # stop before any call, naming the variable
            raise ValueError(f"environment variable {var} ({flag}) is not set; nothing was "
                             "sent")

    def endpoint(role: str, name: str, urls: list[str], key_env: str | None,
                 sampling: dict) -> ModelEndpoint:
        try:  # ModelEndpoint checks the call settings; the message names the flags
            return ModelEndpoint(role, name, urls, key_env, sampling,
                                 concurrency=args.concurrency, timeout_s=args.timeout,
                                 max_retries=args.max_retries)
        except ValueError as exc:
            raise ValueError(f"{exc} (set with --concurrency, --timeout, --max-retries)"
                             ) from None

    judge = endpoint("judge", args.judge_model, args.judge_base_url, args.judge_api_key_env,
                     {"temperature": 0.0})
    model = None
    if args.model:
        try:
            sampling = _sampling(args)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"--model-sampling is not JSON: {exc}") from None
        model = endpoint("model", args.model, args.model_base_url, args.model_api_key_env,
                         sampling)
    text = GENERIC_SYSTEM_PROMPT
    if args.system_prompt_file:
        text = _prompt_file("--system-prompt-file", args.system_prompt_file)[0]
    rubric = _rubric(args.rubric)
    if rubric is not None and args.judge_sees_reference:
        raise ValueError("--judge-sees-reference works with the toolkit rubric only, not with "
                         "--rubric")
    return EvalSettings(dataset=args.dataset, out=args.out, judge=judge, model=model,
                        responses=args.responses, prompt=ModelPrompt(args.prompt, text),
                        config=args.config, split=args.split,
                        judge_attempts=args.judge_attempts,
                        judge_sees_reference=args.judge_sees_reference, rubric=rubric,
                        image_resize=args.image_resize)


def _pct(value: float | None) -> str:
    """A percentage for the summary line; "n/a" when nothing could be scored."""
    return "n/a" if value is None else f"{value}%"


def _compare(args: argparse.Namespace) -> int:
    from .compare import CompareError, compare_runs

    try:
        table = compare_runs(Path(args.run_a), Path(args.run_b))
    except CompareError as exc:
        return _fail(f"compare: {exc}")
    try:
        print(table, flush=True)
    except BrokenPipeError:  # `… | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "compare":
        return _compare(args)
    from .runner import evaluate

    try:
        settings = _settings(args)
        summary = evaluate(settings)
    except ValueError as exc:  # bad settings, DatasetError, a bad --system-prompt-file
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{getattr(exc, 'filename', None) or ''} {exc.strerror or exc}".strip())
    overall = summary.metrics["overall"]
    problems = summary.metrics["problems"]
    for kind, found in problems.items():
        if found:
            print(f"{kind.replace('_', ' ')}: {len(found)} (first: {found[0]})", file=sys.stderr)
    sent = {role: calls["sent"] for role, calls in summary.run["calls"].items()}
    print(f"{overall['items']} items, {overall['missing_items']} missing, "
          f"{overall['truncated_rate']['count']} truncated; "
          f"safety {_pct(overall['safety']['pct_top'])} / helpfulness "
          f"{_pct(overall['helpfulness']['pct_top'])} / rigor "
          f"{_pct(overall['rigor']['pct_top'])} at 3; strict protocol valid "
          f"{_pct(overall['protocol_valid_strict']['pct'])}; requests sent {sent}; written to "
          f"{settings.out}")
    if summary.retryable:
        print(f"{summary.retryable} item(s) failed on calls; run the same command again to "
              "retry them (finished calls are cached)", file=sys.stderr)
        return 1
    return 0
