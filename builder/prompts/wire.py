"""The shapes both ends of a call agree on: response-format names and labelled JSON payloads.

The stages write them and the offline backend reads them back, so they live here, beside the
prompts, rather than in either.
"""

from __future__ import annotations

from typing import Any

import orjson

PLAN_FORMAT_NAME = "safer_toolkit_plan"
JUDGE_FORMAT_NAME = "safer_toolkit_judge"
PLAN_PAYLOAD_HEADER = "Item to plan (JSON):"
JUDGE_PAYLOAD_HEADER = "Item to judge (JSON):"
#: the GRPO semantic judge (`training_reference.judge`): four 1–10 scores for one completion
SEMANTIC_FORMAT_NAME = "safer_toolkit_semantic"
SEMANTIC_PAYLOAD_HEADER = "Completion to grade (JSON):"
#: The responder's privileged reference (planner label and category); never in dataset rows.
HINT_HEADER = "Reference assessment from the dataset planner (JSON):"
#: The source's own account of what the picture shows (`SourceItem.description`), sent beside
#: the image to the planner, the responders and the judge; never in dataset rows or images.
DESCRIPTION_HEADER = "What the source says the image shows (JSON):"
#: The DPO `wrong_decision` request: the decision the rejected side must take.
WRONG_DECISION_HEADER = "Write the rejected side of a preference pair (JSON):"
HEADERS = (PLAN_PAYLOAD_HEADER, JUDGE_PAYLOAD_HEADER, HINT_HEADER, DESCRIPTION_HEADER,
           WRONG_DECISION_HEADER)


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def payload_part(header: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A text part: a header line, then one JSON object (exactly recoverable by the receiver)."""
    return text_part(f"{header}\n{orjson.dumps(payload).decode()}")


def read_payload(part: Any, header: str) -> dict[str, Any] | None:
    """The JSON object of a `payload_part` with this header, else None."""
    if not isinstance(part, dict) or part.get("type") != "text":
        return None
    text = part.get("text")
    if not isinstance(text, str) or not text.startswith(header + "\n"):
        return None
    try:
        value = orjson.loads(text[len(header) + 1:])
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
