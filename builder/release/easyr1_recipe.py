"""What makes the EasyR1 export run on the authors' fork: the command, and a chat template.

The fork is the authors' (github.com/Duebassx/SaFeR_ToolKit, checked at commit e85a64c): its
reward manager hands the reward the prompt and the image, which upstream EasyR1
(hiyouga/EasyR1) does not — there a judge-based reward sees no query and its semantic term
never varies. The export ships, beside the records (`easyr1.py`):

- `run_grpo.sh`: the authors' GRPO settings (their `examples/safer_toolkit.sh`) with the paths
  this export needs, each one absolute: run from the fork's checkout, with `MODEL_PATH` set.
  `RECIPE` lists the overrides; `safer-toolkit check-export easyr1 DIR` prints them with DIR's
  paths filled in and checks a user's own command line against the export.
- `chat_template.jinja`: Qwen2.5-VL's chat template, except that a first user turn that opens
  with text, a blank line and then an image (how EasyR1 lays out `problem`) has that text lifted
  into the system turn. The GRPO prompts then render exactly as the SFT/DPO rows do (system:
  the instruction; user: image, question) instead of behind Qwen's default system prompt. For
  another model family leave `data.override_chat_template` unset: the instruction then leads
  the user turn.
"""

from __future__ import annotations

from pathlib import Path

FORK = "https://github.com/Duebassx/SaFeR_ToolKit"
FORK_COMMIT = "e85a64c"
RUN_SCRIPT_FILE = "run_grpo.sh"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
#: pixels per image in the recipe: ≤ 1,280 visual tokens, so the instruction (≈ 1,200 tokens),
#: the image and the question fit `max_prompt_length` (EasyR1 silently drops longer prompts)
MAX_PIXELS = 1280 * 28 * 28
MAX_PROMPT_LENGTH = 4096

#: `KEY=VALUE` overrides of the fork's `examples/config.yaml`, as its `examples/safer_toolkit.sh`
#: passes them; `{dir}`, `{model}` and `{reward}` are filled with absolute paths.
RECIPE: tuple[tuple[str, str], ...] = (
    ("data.train_files", "{dir}/train.jsonl"),
    ("data.val_files", "{dir}/val.jsonl"),
    ("data.image_dir", "{dir}"),
    ("data.prompt_key", "problem"),
    ("data.answer_key", "answer"),
    ("data.image_key", "images"),
    ("data.format_prompt", "null"),
    ("data.override_chat_template", "{dir}/" + CHAT_TEMPLATE_FILE),
    ("data.max_prompt_length", str(MAX_PROMPT_LENGTH)),
    ("data.max_response_length", "2048"),
    ("data.max_pixels", str(MAX_PIXELS)),
    ("data.rollout_batch_size", "256"),
    ("data.val_batch_size", "128"),
    ("worker.actor.model.model_path", "{model}"),
    ("worker.actor.global_batch_size", "32"),
    ("worker.actor.optim.lr", "1.0e-6"),
    ("worker.rollout.n", "4"),
    ("worker.rollout.temperature", "1.0"),
    ("worker.rollout.tensor_parallel_size", "1"),
    ("worker.rollout.gpu_memory_utilization", "0.7"),
    ("worker.reward.reward_function", "{reward}:compute_score"),
    ("trainer.total_epochs", "2"),
)


REWARD_MODULE = "safer_toolkit.training_reference.easyr1_reward"


def reward_file() -> str:
    """The absolute path of the shipped EasyR1 reward (as installed here)."""
    import importlib.util

    spec = importlib.util.find_spec(REWARD_MODULE)
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).resolve())


def overrides(easyr1_dir: str, model: str, reward: str) -> list[str]:
    """The recipe's `KEY=VALUE` arguments with these paths filled in."""
    return [f"{key}={value.format(dir=easyr1_dir, model=model, reward=reward)}"
            for key, value in RECIPE]


RUN_SCRIPT = """\
#!/usr/bin/env bash
# GRPO on this release with the authors' EasyR1 fork ({fork}, checked at {commit}).
# Run it from the fork's checkout, in an environment where `pip install safer-toolkit` is done
# (the reward file is the toolkit's), e.g.
#     MODEL_PATH=/abs/path/to/your/dpo/checkpoint bash /abs/path/to/release/easyr1/{script}
# Optional: VLLM_BASE_URL / VLLM_MODEL_NAME / VLLM_API_KEY name the semantic judge, as for the
# authors' reward (without one the semantic term is left out); N_GPUS (default 8); any further
# KEY=VALUE arguments are passed on to verl.trainer.main.
# Every path below is absolute: the fork resolves relative ones against the directory it is
# launched from. `safer-toolkit check-export easyr1 DIR [KEY=VALUE ...]` checks a command line.
# Written by safer-toolkit; the same file in every release.
set -euo pipefail
: "${{MODEL_PATH:?set MODEL_PATH to the policy to train (your DPO checkpoint, say)}}"
EASYR1_DIR="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
REWARD_FILE="${{REWARD_FILE:-$(python3 -c "{locate}")}}"
if [[ ! -f examples/config.yaml ]]; then
    echo "run this from the authors' EasyR1 fork checkout ({fork})" >&2
    exit 2
fi
python3 -m verl.trainer.main \\
    config=examples/config.yaml \\
{overrides} \\
    trainer.n_gpus_per_node="${{N_GPUS:-8}}" \\
    "$@"
"""


def run_script() -> str:
    """The text of `run_grpo.sh` (the same bytes for every release)."""
    lines = "".join(f'    "{arg}" \\\n' for arg in
                    overrides("${EASYR1_DIR}", "${MODEL_PATH}", "${REWARD_FILE}"))
    return RUN_SCRIPT.format(fork=FORK, commit=FORK_COMMIT, script=RUN_SCRIPT_FILE,
                             locate=f"import {REWARD_MODULE} as m; print(m.__file__)",
                             overrides=lines.rstrip(" \\\n"))


#: Qwen2.5-VL's template (as TRL and the model ship it) with the instruction lifted out of a
#: first user turn laid out as EasyR1 lays out `problem` (see the module docstring).
CHAT_TEMPLATE = (
    "{% macro parts(content, counts) %}"
    "{% for part in content %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "{% set counts.image = counts.image + 1 %}"
    "{% if add_vision_id %}Picture {{ counts.image }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "{% set counts.video = counts.video + 1 %}"
    "{% if add_vision_id %}Video {{ counts.video }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endmacro %}"
    "{% set counts = namespace(image=0, video=0) %}"
    "{% set first = messages[0] %}"
    "{% set lift = first['role'] == 'user' and first['content'] is not string"
    " and first['content'] | length > 1 and first['content'][0]['type'] == 'text'"
    " and first['content'][0]['text'].endswith('\\n\\n')"
    " and first['content'][1]['type'] == 'image' %}"
    "{% for message in messages %}"
    "{% if loop.first and lift %}"
    "<|im_start|>system\n{{ message['content'][0]['text'][:-2] }}<|im_end|>\n"
    "<|im_start|>user\n{{ parts(message['content'][1:], counts) }}<|im_end|>\n"
    "{% else %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{{ parts(message['content'], counts) }}{% endif %}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_recipe(dest: Path) -> None:
    """Write `run_grpo.sh` and `chat_template.jinja` into the export folder `dest`."""
    (dest / RUN_SCRIPT_FILE).write_text(run_script(), encoding="utf-8", newline="\n")
    (dest / CHAT_TEMPLATE_FILE).write_text(CHAT_TEMPLATE, encoding="utf-8", newline="\n")
