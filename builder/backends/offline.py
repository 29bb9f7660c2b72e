"""The offline backend: a deterministic planner, responder and judge that need no model.

It answers every chat-completions request from the request alone — which role is asked (the
response-format name, or a toolkit instruction as the system prompt), the question, the
source's description of the picture and the annotation the request carries (it has no vision:
the image bytes only seed its randomness). So `safer-toolkit serve` exposing it over HTTP gives
byte-for-byte the answers an in-process build gets, and a build is reproducible on a fresh
machine.

It is a real generator of valid, varied data, not a test double — and it is labelled as what it
is in every manifest (`"backend": "offline"` and a note saying what that means). Roles are a
dispatch table (`ROLES`), so other callers (the evaluation's model under test, say) can add
theirs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

import orjson

from ...errors import EndpointError
from ...validation import (
    Protocol,
    ProtocolInvalid,
    library_protocol_document,
    resolve_protocol,
)
from ...validation.vocabulary import MESH
from ..prompts.instruction import parse_toolkit_instruction
from ..prompts.wire import (
    DESCRIPTION_HEADER,
    HEADERS,
    HINT_HEADER,
    JUDGE_FORMAT_NAME,
    JUDGE_PAYLOAD_HEADER,
    PLAN_FORMAT_NAME,
    PLAN_PAYLOAD_HEADER,
    SEMANTIC_FORMAT_NAME,
    SEMANTIC_PAYLOAD_HEADER,
    WRONG_DECISION_HEADER,
    read_payload,
)
from .base import ChatRequest, ChatResult
from .offline_judge import infer_label, judge_scores, semantic_scores
from .offline_plan import conservative_choices, plan_choices
from .offline_sight import Sight, assess, rng_for, sight_of
from .offline_trace import write_trace

OFFLINE_MODELS = {"planner": "safer-offline-planner", "responder": "safer-offline-responder",
                  "judge": "safer-offline-judge"}
#: Rough token accounting (the offline backend has no tokenizer): 4 characters a token.
_CHARS_PER_TOKEN = 4
_IMAGE_TOKENS = 85
_MAX_IMAGE_BYTES = 32 * 1024 * 1024
#: Resolved responder protocols kept, by system prompt.
PROTOCOLS_KEPT = 256


class OfflineRequestError(EndpointError, ValueError):
    """The request cannot be answered (malformed messages); `serve` turns it into a 400."""


@dataclass
class Conversation:
    """The parts of a chat request the offline roles read."""

    system: str
    texts: list[dict[str, Any]]  # the first user turn's text parts
    image: bytes | None
    feedback: bool  # the conversation continues after a rejected reply
    response_format: Mapping[str, Any] | None
    sampling: Mapping[str, Any] = field(default_factory=dict)

    @property
    def format_name(self) -> str | None:
        fmt = self.response_format or {}
        if fmt.get("type") != "json_schema":
            return None
        name = (fmt.get("json_schema") or {}).get("name")
        return name if isinstance(name, str) else None

    @property
    def image_sha(self) -> str:
        return hashlib.sha256(self.image or b"").hexdigest()

    def variant(self, role: str, question: str) -> Any:
        """The random stream of one answer: fixed by the item and the sampling seed.

        At temperature 0 every seed gives the same answer, as a greedy model would.
        """
        temperature = self.sampling.get("temperature", 1.0)
        seed = self.sampling.get("seed", 0) if temperature else 0
        return rng_for(role, question, self.image_sha, seed, temperature)

    def payload(self, header: str) -> dict[str, Any] | None:
        return next((p for part in self.texts if (p := read_payload(part, header))), None)

    def question(self) -> str:
        """The first plain text part (not a labelled payload)."""
        for part in self.texts:
            text = part.get("text", "")
            if not any(text.startswith(h + "\n") for h in HEADERS):
                return text
        return ""

    def sight(self) -> Sight:
        """What the picture shows, as the source's description in the request says."""
        return sight_of(self.payload(DESCRIPTION_HEADER))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content
                         if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _image_of(part: Mapping[str, Any]) -> bytes | None:
    url = (part.get("image_url") or {}).get("url", "")
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        return None
    encoded = url.split(",", 1)[1]
    if len(encoded) > _MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise OfflineRequestError("image larger than the offline backend accepts")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise OfflineRequestError("image data URL is not valid base64") from None


#: where a text-only request (`stages.content.text_only`: parts joined by blank lines) has its
#: labelled payloads: each one starts a block of its own
_BLOCKS = re.compile(r"\n\n(?=(?:" + "|".join(map(re.escape, HEADERS)) + r")\n)")


def read_conversation(messages: Any, response_format: Any = None,
                      sampling: Mapping[str, Any] | None = None) -> Conversation:
    """Decode wire messages; raises `OfflineRequestError` when they are not a chat."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise OfflineRequestError("`messages` must be a list of message objects")
    system = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "system")
    user = next((m for m in messages if m.get("role") == "user"), None)
    if user is None:
        raise OfflineRequestError("the request has no user message")
    content = user.get("content")
    parts = content if isinstance(content, list) else [
        {"type": "text", "text": block} for block in _BLOCKS.split(_text_of(content))]
    parts = [p for p in parts if isinstance(p, dict)]
    image = next((img for p in parts if p.get("type") == "image_url"
                  and (img := _image_of(p)) is not None), None)
    return Conversation(system=system,
                        texts=[p for p in parts if p.get("type") == "text"
                               and isinstance(p.get("text"), str)],
                        image=image,
                        feedback=any(m.get("role") == "assistant" for m in messages),
                        response_format=response_format if isinstance(response_format, dict)
                        else None, sampling=sampling or {})


def _plan(conv: Conversation) -> str:
    payload = conv.payload(PLAN_PAYLOAD_HEADER) or {}
    question = str(payload.get("question", "")) or conv.question()
    annotation = payload.get("source_annotation")
    sight = conv.sight()
    assessment = assess(question, sight, annotation if isinstance(annotation, dict) else None)
    rng = conv.variant("plan", question)
    choices = conservative_choices(assessment, rng) if conv.feedback \
        else plan_choices(assessment, sight, rng)
    return orjson.dumps(choices).decode()


def _judge(conv: Conversation) -> str:
    payload = conv.payload(JUDGE_PAYLOAD_HEADER) or {}
    reference = payload.get("reference")
    given = reference.get("label") if isinstance(reference, dict) else None
    told = given in ("harmful", "benign")
    # a judge without the reference (the builder's and eval's default) reads the label itself
    label = str(given) if told else infer_label(str(payload.get("question", "")), conv.sight())
    return orjson.dumps(judge_scores(label, str(payload.get("response", "")), told)).decode()


def _grade(conv: Conversation) -> str:
    """The GRPO semantic judge (`training_reference.judge`): it sees image, question and
    completion, never a reference label."""
    payload = conv.payload(SEMANTIC_PAYLOAD_HEADER) or {}
    label = infer_label(str(payload.get("question", "")), conv.sight())
    return orjson.dumps(semantic_scores(label, str(payload.get("response", "")))).decode()


@cache
def _library_mesh() -> Protocol:
    """What a responder follows when its system prompt is not a toolkit instruction."""
    return resolve_protocol(library_protocol_document(MESH))


@lru_cache(maxsize=PROTOCOLS_KEPT)
def _protocol_of(system: str) -> Protocol:
    """The protocol a system prompt describes (parsed and resolved once per distinct prompt: an
    item's samples and repairs share theirs), else the library as a mesh."""
    try:
        doc = parse_toolkit_instruction(system) if system else None
    except (ValueError, RecursionError) as exc:  # e.g. a custom output schema that is not JSON
        raise OfflineRequestError(f"the system prompt's toolkit instruction is malformed: "
                                  f"{type(exc).__name__}: {str(exc)[:200]}") from None
    try:
        return resolve_protocol(doc) if doc else _library_mesh()
    except ProtocolInvalid:
        return _library_mesh()


def _respond(conv: Conversation) -> str:
    protocol = _protocol_of(conv.system)
    question = conv.question()
    hint = {k: v for k, v in (conv.payload(HINT_HEADER) or {}).items() if isinstance(v, str)}
    sight = conv.sight()
    assessment = assess(question, sight, hint)
    wrong = conv.payload(WRONG_DECISION_HEADER) is not None
    return write_trace(protocol, protocol.document["persona"], question, sight, assessment,
                       conv.variant("respond", question), wrong=wrong)


Role = Callable[[Conversation], str]
#: (role, matches, answer) tried in order; the last one always matches. The role names the
#: offline model that answers (`OFFLINE_MODELS`), whatever model the request asked for.
ROLES: list[tuple[str, Callable[[Conversation], bool], Role]] = [
    ("planner", lambda c: c.format_name == PLAN_FORMAT_NAME, _plan),
    ("judge", lambda c: c.format_name == JUDGE_FORMAT_NAME, _judge),
    ("judge", lambda c: c.format_name == SEMANTIC_FORMAT_NAME, _grade),
    ("responder", lambda c: True, _respond),
]


def _tokens(text: str) -> int:
    return max(1, len(text) // _CHARS_PER_TOKEN)


class OfflineBackend:
    """`ChatBackend` that writes every answer itself (see the module docstring)."""

    def reply(self, messages: Any, response_format: Any = None,
              sampling: Mapping[str, Any] | None = None) -> tuple[str, str]:
        """(content, the offline model that answered) for one request (raises
        `OfflineRequestError` on a malformed one)."""
        conv = read_conversation(messages, response_format, sampling)
        role, answer = next((role, answer) for role, matches, answer in ROLES if matches(conv))
        return answer(conv), OFFLINE_MODELS.get(role, role)

    def answer(self, messages: Any, response_format: Any = None,
               sampling: Mapping[str, Any] | None = None) -> str:
        """The content for one request (raises `OfflineRequestError` on a malformed one)."""
        return self.reply(messages, response_format, sampling)[0]

    def reply_body(self, body: Mapping[str, Any]) -> tuple[str, str]:
        """(content, answering model) for a wire request body (what `serve` calls)."""
        sampling = {k: v for k, v in body.items()
                    if k not in ("model", "messages", "response_format", "stream")}
        return self.reply(body.get("messages"), body.get("response_format"), sampling)

    def answer_body(self, body: Mapping[str, Any]) -> str:
        """The content for a wire request body (what test servers call)."""
        return self.reply_body(body)[0]

    def usage(self, messages: Any, content: str) -> tuple[int, int]:
        """(prompt, completion) token estimates."""
        prompt = 0
        for m in messages if isinstance(messages, list) else []:
            parts = m.get("content") if isinstance(m, dict) else None
            prompt += _tokens(_text_of(parts))
            if isinstance(parts, list):
                prompt += _IMAGE_TOKENS * sum(isinstance(p, dict) and p.get("type") == "image_url"
                                              for p in parts)
        return prompt, _tokens(content)

    async def complete(self, request: ChatRequest) -> ChatResult:
        content, model = self.reply(request.messages, request.response_format, request.sampling)
        prompt, completion = self.usage(request.messages, content)
        return ChatResult(content, "stop", prompt, completion, model)

    async def aclose(self) -> None:
        return None


_SHARED = OfflineBackend()


def answer_body(body: Mapping[str, Any]) -> str:
    """`OfflineBackend().answer_body` as a plain function (a server's pluggable content)."""
    return _SHARED.answer_body(body)
