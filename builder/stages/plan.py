"""Plan: the planner chooses a protocol's parts; the builder assembles and checks the document.

The planner answers strict structured output (`PLAN_SCHEMA`: every object closed, every property
required) with its *choices* — persona, risk category, label, topology, library tools, optional
flat custom tools, shield tool. It never writes edges: the builder compiles the graph
(`resolve_protocol`), so a kept protocol is well-formed by construction. Constrained decoding is
not validation: the reply is read by the shared JSON extractor (fences, chatter, near-JSON, tool
names up to case, unknown keys dropped — each repair counted) and re-checked here (schema,
builder rules, the source's annotation, the protocol resolver); a rejected reply goes back with
the reasons, a bounded number of times (`PlanStage` in the shared loop, `stages.ask`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import jsonschema_rs
import orjson

from ... import schemas
from ...validation import (
    Protocol,
    ProtocolInvalid,
    library_tools,
    protocol_document,
    resolve_protocol,
)
from ...validation.protocol import DEFAULT_LIMITS
from ...validation.vocabulary import (
    GATE,
    INTENT,
    LINEAR,
    SHIELD,
    STAGES,
    TOPOLOGIES,
)
from ..backends.base import ChatBackend, ChatRequest
from ..prompts import render_planner_system, template
from ..prompts.planner import MAX_CUSTOM_TOOLS, MAX_TOOLS, MIN_TOOLS
from ..prompts.wire import PLAN_FORMAT_NAME, PLAN_PAYLOAD_HEADER, payload_part
from ..sources.base import SourceItem
from .ask import Asker, Exchange, Reading
from .content import description_parts, image_content
from .extract import NotDecodable, extract_json

RETRY_INSTRUCTION = "Reply again with the corrected JSON object only."
REQUIRED_TOOLS = (INTENT, GATE)
MAX_CALLS = DEFAULT_LIMITS["max_calls"]  # what a planned protocol allows (no `limits`)
_STR = {"type": "string", "maxLength": 1000}
#: Custom tool key types → their strict output schema.
KEY_TYPES: dict[str, dict[str, Any]] = {
    "string": _STR,
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer", "minimum": 0, "maximum": 100},
    "string_list": {"type": "array", "items": _STR, "maxItems": 16},
}


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(properties),
            "properties": properties}


@cache
def plan_schema() -> dict[str, Any]:
    """The planner's structured-output schema (strict-compatible on OpenAI and vLLM)."""
    names = list(library_tools())
    custom_key = _closed({"name": {"type": "string", "maxLength": 64},
                          "type": {"type": "string", "enum": list(KEY_TYPES)},
                          "description": {"type": "string", "maxLength": 300}})
    custom_tool = _closed({
        "name": {"type": "string", "maxLength": 64},
        "stage": {"type": "string", "enum": list(STAGES)},
        "purpose": {"type": "string", "maxLength": 300},
        "keys": {"type": "array", "items": custom_key, "minItems": 1, "maxItems": 8},
    })
    return _closed({
        "persona": _closed({"name": {"type": "string", "maxLength": 200},
                            "style": {"type": "string", "maxLength": 1000},
                            "expertise": {"type": "string", "maxLength": 1000}}),
        "risk_category": {"type": "string", "enum": list(schemas.risk_categories())},
        "label": {"type": "string", "enum": ["harmful", "benign"]},
        "topology": {"type": "string", "enum": list(TOPOLOGIES)},
        "tools": {"type": "array", "items": {"type": "string", "enum": names},
                  "minItems": 3, "maxItems": len(names)},
        "shield_tool": {"type": ["string", "null"], "enum": [*names, None]},
        "custom_tools": {"type": "array", "items": custom_tool, "maxItems": MAX_CUSTOM_TOOLS},
    })


def plan_format() -> dict[str, Any]:
    return {"type": "json_schema",
            "json_schema": {"name": PLAN_FORMAT_NAME, "schema": plan_schema(), "strict": True}}


@cache
def _plan_validator() -> Any:
    return jsonschema_rs.Draft202012Validator(plan_schema())


def annotation(item: SourceItem) -> dict[str, Any] | None:
    """The source's own label/category, the planner's hint and the builder's reference."""
    if item.label is None and item.risk_category is None:
        return None
    return {"label": item.label, "risk_category": item.risk_category}


def plan_request(model: str, item: SourceItem, sampling: Mapping[str, Any]) -> ChatRequest:
    """The first planner call for `item`."""
    payload = {"question": item.question, "source_annotation": annotation(item)}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": render_planner_system(MAX_CALLS)},
        {"role": "user", "content": [image_content(item.image, item.image_name),
                                     payload_part(PLAN_PAYLOAD_HEADER, payload),
                                     *description_parts(item.description)]},
    ]
    return ChatRequest(model, messages, dict(sampling), plan_format(),
                       template("planner").version)


def _custom_tool(spec: dict[str, Any]) -> dict[str, Any]:
    return {"name": spec["name"], "stage": spec["stage"], "purpose": spec["purpose"],
            "output": _closed({k["name"]: KEY_TYPES[k["type"]] for k in spec["keys"]})}


def compile_protocol(choices: Mapping[str, Any]) -> Protocol:
    """The resolved protocol for a planner's (schema-valid) choices; its `document` carries the
    content-hash id and the compiled graph, so that every row holds a self-describing protocol.

    Raises `ProtocolInvalid` when the choices do not form a usable protocol.
    """
    doc = protocol_document(
        "", dict(choices["persona"]), choices["risk_category"], choices["label"],
        choices["topology"],
        [*choices["tools"], *(_custom_tool(c) for c in choices["custom_tools"])],
        shield_tool=choices["shield_tool"] if choices["topology"] == SHIELD else None)
    content = {k: v for k, v in doc.items() if k != "id"}  # the id hashes the rest
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    doc["id"] = f"p-{digest[:20]}"
    protocol = resolve_protocol({**doc})
    doc["graph"] = protocol.graph.to_json()
    return replace(protocol, document=doc)


def build_protocol(choices: Mapping[str, Any]) -> dict[str, Any]:
    """The protocol document of `compile_protocol(choices)`."""
    return compile_protocol(choices).document


def _rule_problems(choices: Mapping[str, Any], reference: Mapping[str, Any] | None) -> list[str]:
    problems: list[str] = []
    tools = list(choices["tools"])
    custom = [c["name"] for c in choices["custom_tools"]]
    missing = [t for t in REQUIRED_TOOLS if t not in tools]
    if missing:
        problems.append(f"tools must include {' and '.join(missing)}")
    count = len(tools) + len(custom)
    if not MIN_TOOLS <= count <= MAX_TOOLS:
        problems.append(f"{count} tools listed; use {MIN_TOOLS} to {MAX_TOOLS}")
    topology, shield = choices["topology"], choices["shield_tool"]
    if topology == SHIELD and shield is None:
        problems.append("topology shield needs shield_tool")
    if topology != SHIELD and shield is not None:
        problems.append(f"shield_tool must be null for topology {topology}")
    if topology == LINEAR and count > MAX_CALLS:
        problems.append(f"linear visits every tool, but {count} tools exceed {MAX_CALLS} calls")
    if reference:
        for key in ("label", "risk_category"):
            if reference.get(key) is not None and choices[key] != reference[key]:
                problems.append(f"{key} {choices[key]!r} contradicts the source annotation "
                                f"{reference[key]!r}")
    return problems


@dataclass
class PlanAttempt:
    """One rejected planner reply: stable codes for the manifest, messages for feedback."""

    codes: list[str]
    problems: list[str]


def read_plan(content: str, reference: Mapping[str, Any] | None) -> Reading[Protocol]:
    """What a planner reply means: the resolved protocol, or why it was rejected."""
    try:
        extracted = extract_json(content, plan_schema())
    except NotDecodable as exc:
        return Reading(None, ["plan_json"], [f"the reply cannot be read: {exc}"])
    choices, repairs = extracted.value, extracted.repairs
    errors = [f"{'/'.join(map(str, e.instance_path)) or 'reply'}: {e.message}"
              for e in _plan_validator().iter_errors(choices)]
    if errors:
        return Reading(None, ["plan_schema"], errors, repairs)
    problems = _rule_problems(choices, reference)
    if problems:
        codes = ["plan_annotation" if "source annotation" in p else "plan_rules"
                 for p in problems]
        return Reading(None, sorted(set(codes)), problems, repairs)
    try:
        return Reading(compile_protocol(choices), repairs=repairs)
    except ProtocolInvalid as exc:
        return Reading(None, sorted({i.code for i in exc.issues}),
                       [f"{i.code}: {i.message}" for i in exc.issues], repairs)


def check_plan(content: str, reference: Mapping[str, Any] | None
               ) -> tuple[dict[str, Any] | None, PlanAttempt | None]:
    """(protocol document, None) for a usable reply, else (None, why it was rejected)."""
    reading = read_plan(content, reference)
    if reading.ok:
        assert reading.value is not None
        return reading.value.document, None
    return None, PlanAttempt(reading.codes, reading.problems)


@dataclass(frozen=True)
class PlanStage:
    """The planner role: a plan request for an item, and its reader."""

    model: str
    sampling: Mapping[str, Any]
    name: str = "plan"
    instruction: str = RETRY_INSTRUCTION

    def request(self, item: SourceItem) -> ChatRequest:
        return plan_request(self.model, item, self.sampling)

    def parse(self, item: SourceItem, text: str) -> Reading[Protocol]:
        return read_plan(text, annotation(item))


@dataclass
class PlanOutcome:
    """The kept protocol (None when every attempt was rejected) and the rejected attempts.

    `protocol` is the document the rows carry; `resolved` the same protocol resolved once, for
    the stages that follow (instruction, validation, perturbation); `outcome` the exchange's
    yield (`stages.ask.OUTCOMES`).
    """

    rejected: list[PlanAttempt] = field(default_factory=list)
    resolved: Protocol | None = None
    outcome: str = "rejected"
    model: str = ""  # the model the endpoint answered as (for the rows' provenance)

    @property
    def protocol(self) -> dict[str, Any] | None:
        return self.resolved.document if self.resolved is not None else None


async def plan_item(backend: ChatBackend | Asker, model: str, item: SourceItem,
                    sampling: Mapping[str, Any], max_attempts: int) -> PlanOutcome:
    """Ask for a plan, feeding the reasons back after each rejected reply.

    `CallFailed` propagates: the item failed, and a rerun will try the same call again.
    """
    asker = backend if isinstance(backend, Asker) else Asker(backend, role="planner")
    exchange: Exchange[Protocol] = Exchange.of(asker, PlanStage(model, sampling), item)
    reading = await exchange.converse(max_attempts)
    outcome = PlanOutcome([PlanAttempt(r.codes, r.problems)
                           for r in exchange.readings if not r.ok], outcome=exchange.outcome)
    if reading.ok:
        assert reading.value is not None
        outcome.resolved, outcome.model = reading.value, reading.model
    return outcome
