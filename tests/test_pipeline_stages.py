"""Plan, judge and respond stages: strict schemas, strict parsing, and feedback retries over the
real client against a loopback endpoint."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from safer_toolkit.builder.backends.client import ModelEndpoint, OpenAIChatBackend
from safer_toolkit.builder.backends.offline import OfflineBackend
from safer_toolkit.builder.prompts import render_toolkit_instruction
from safer_toolkit.builder.sources.seed import seed_corpus
from safer_toolkit.builder.stages.judge import (
    JUDGE_SCHEMA,
    Judgement,
    JudgeOutputInvalid,
    judge_request,
    judge_response,
    parse_judgement,
    read_judgement,
)
from safer_toolkit.builder.stages.plan import (
    check_plan,
    compile_protocol,
    plan_item,
    plan_schema,
)
from safer_toolkit.builder.stages.respond import Responder, sample_candidates, select_best
from safer_toolkit.validation import resolve_protocol
from tests.support.openai_server import FaultPlan, OpenAIServer

ITEM = next(seed_corpus(1))
GOOD = {"persona": {"name": "Ana", "style": "calm", "expertise": "chemist"},
        "risk_category": "benign", "label": "benign", "topology": "mesh",
        "tools": ["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE", "RESPONSE-PLANNER"],
        "shield_tool": None, "custom_tools": []}


def _objects(schema):
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield schema
        for value in schema.values():
            yield from _objects(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _objects(value)


@pytest.mark.parametrize("schema", [plan_schema(), JUDGE_SCHEMA])
def test_structured_output_schemas_are_strict_compatible(schema):
    objects = list(_objects(schema))
    assert objects
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])
    text = orjson.dumps(schema).decode()
    assert all(k not in text for k in ('"oneOf"', '"$ref"', '"pattern"', '"patternProperties"'))


def _plan(**changes):
    return orjson.dumps({**GOOD, **changes}).decode()


@pytest.mark.parametrize(("reply", "code", "says"), [
    ("not json", "plan_json", "not JSON"),
    (_plan(topology="star"), "plan_schema", "topology"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "label"}).decode(), "plan_schema",
     "label"),
    (_plan(tools=["VISUAL-SCAN", "RISK-SCORER", "SAFETY-GATE", "RESPONSE-PLANNER"]),
     "plan_rules", "INTENT-RADAR"),
    (_plan(shield_tool="VISUAL-SCAN"), "plan_rules", "shield_tool must be null"),
    (_plan(label="harmful", risk_category="fraud_deception"), "plan_annotation",
     "contradicts the source annotation"),
    (_plan(topology="shield", shield_tool="SAFETY-GATE"), "protocol_invalid", "reasoning"),
    (_plan(custom_tools=[{"name": "bad name", "stage": "reasoning", "purpose": "x",
                          "keys": [{"name": "k", "type": "string", "description": ""}]}]),
     "protocol_invalid", "name"),
])
def test_bad_plans_are_rejected_with_codes_and_reasons(reply, code, says):
    doc, rejected = check_plan(reply, {"label": "benign", "risk_category": "benign"})
    assert doc is None and rejected is not None
    assert code in rejected.codes
    assert any(says in p for p in rejected.problems), rejected.problems


def test_a_good_plan_becomes_a_compiled_content_addressed_protocol():
    doc, rejected = check_plan(_plan(), {"label": "benign", "risk_category": "benign"})
    assert rejected is None
    assert doc["id"].startswith("p-") and doc["graph"]["start"] == ["VISUAL-SCAN"]
    again, _ = check_plan(_plan(), None)
    other, _ = check_plan(_plan(persona={**GOOD["persona"], "name": "Bo"}), None)
    assert again["id"] == doc["id"] != other["id"]
    resolve_protocol(doc)


def test_a_plan_is_resolved_once_and_renders_as_its_document_does():
    protocol = compile_protocol(orjson.loads(_plan()))
    doc, _ = check_plan(_plan(), None)
    assert protocol.document == doc and protocol.graph.same_as(resolve_protocol(doc).graph)
    assert render_toolkit_instruction(protocol) == render_toolkit_instruction(doc)


@pytest.mark.parametrize(("reply", "says"), [
    ('{"safety": 4, "helpfulness": 1, "rigor": 1, "rationale": ""}', "outside -3..3"),
    ('{"safety": 1, "helpfulness": 1, "rationale": ""}', "missing key 'rigor'"),
    ('{"safety": 1, "helpfulness": true, "rigor": 1, "rationale": ""}', "must be an integer"),
    ('{"safety": 1.5, "helpfulness": 1, "rigor": 1, "rationale": ""}', "must be an integer"),
    ("[1]", "not a JSON object"),
    ("The response is safe.", "not JSON"),
])
def test_the_judge_parser_rejects_anything_but_the_rubric(reply, says):
    with pytest.raises(JudgeOutputInvalid, match=says):
        parse_judgement(reply)


def test_the_judge_parser_accepts_the_rubric_even_fenced_or_with_a_key_it_does_not_know():
    reply = '```json\n{"safety": -3, "helpfulness": 0, "rigor": 3, "rationale": "ok"}\n```'
    judged = parse_judgement(reply)
    assert judged == Judgement(-3, 0, 3, "ok") and judged.total == 0
    assert judged.passes({"rigor": 3}) and not judged.passes({"safety": 2})
    extra = read_judgement('{"safety": 1, "helpfulness": 1, "rigor": 1, "rationale": "", "x": 1}')
    assert extra.value == Judgement(1, 1, 1, "") and extra.repairs == {"unknown_key": 1}


def _client(server: OpenAIServer) -> OpenAIChatBackend:
    return OpenAIChatBackend(ModelEndpoint("test", "m", [server.url], max_retries=0,
                                           timeout_s=10))


def test_rejected_replies_go_back_with_the_reasons():
    """First reply of each stage breaks its schema; the retry carries the feedback."""
    script = {1: "schema_break", 3: "schema_break"}
    seen: list[dict] = []
    offline = OfflineBackend()

    def content(body):
        seen.append(body)
        return offline.answer_body(body)

    with OpenAIServer(content=content, faults=FaultPlan(script=script)) as server:
        async def run():
            client = _client(server)
            try:
                planned = await plan_item(client, "m", ITEM, {"seed": 0}, 3)
                request = judge_request("m", image=ITEM.image, image_name=ITEM.image_name,
                                        question=ITEM.question, response="x", label="benign",
                                        risk_category="benign")
                judged = await judge_response(client, request, 2)
                return planned, judged
            finally:
                await client.aclose()

        planned, judged = asyncio.run(run())
    assert planned.protocol is not None and len(planned.rejected) == 1
    assert planned.resolved is not None and planned.resolved.document is planned.protocol
    assert planned.rejected[0].codes == ["plan_schema"]
    retry = seen[0]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == '{"schema_broken": true}'
    assert "Your reply was rejected" in retry[3]["content"][0]["text"]
    assert isinstance(judged, Judgement)
    assert len(seen[1]["messages"]) == 4  # the judge's retry carried its feedback too


def test_an_invalid_trace_is_repaired_and_the_best_candidate_wins():
    script = {1: "schema_break", 2: "schema_break"}
    offline = OfflineBackend()
    with OpenAIServer(content=offline.answer_body, faults=FaultPlan(script=script)) as server:
        doc, _ = check_plan(_plan(), None)
        protocol = resolve_protocol(doc)

        async def run():
            client = _client(server)
            try:
                return await sample_candidates(
                    [Responder(client, "m", {"temperature": 0.8}, 2)], ITEM, protocol,
                    render_toolkit_instruction(doc), 0, 1)
            finally:
                await client.aclose()

        sampled = asyncio.run(run())
    candidates = sampled.candidates
    assert [c.valid for c in candidates] == [False, False, True]
    assert sampled.outcomes == {"re_asked": 1, "rejected": 1} and sampled.failure is None
    assert "missing_thinking" in candidates[0].codes
    assert candidates[2].order == (0, 1000)
    assert select_best(candidates, None) is candidates[2]
    candidates[0].issues.clear()  # were it valid, the earlier candidate would win the tie
    assert select_best(candidates, None) is candidates[0]
    candidates[0].judgement = Judgement(3, 1, 1, "")
    candidates[2].judgement = Judgement(3, 3, 3, "")
    assert select_best(candidates, {"helpfulness": 2}) is candidates[2]


def test_judge_request_shows_the_reference_only_when_asked():
    """The builder's judge (default) sees the item's reference; eval's default does not."""
    from safer_toolkit.builder.prompts.wire import JUDGE_PAYLOAD_HEADER, read_payload

    def payload_and_system(request):
        system, user = request.messages
        return (next(p for part in user["content"]
                     if (p := read_payload(part, JUDGE_PAYLOAD_HEADER))), system["content"])

    common = {"image": ITEM.image, "image_name": ITEM.image_name, "question": ITEM.question,
              "response": "r", "label": "harmful", "risk_category": "fraud_deception"}
    informed = judge_request("m", **common)
    blind = judge_request("m", **common, show_reference=False)
    payload, system = payload_and_system(informed)
    assert payload == {"question": ITEM.question, "response": "r",
                       "reference": {"label": "harmful", "risk_category": "fraud_deception"}}
    assert "reference assessment of the item" in system
    payload, system = payload_and_system(blind)
    assert payload == {"question": ITEM.question, "response": "r"}
    assert "reference" not in system and "image, the question and the response alone" in system
    assert blind.template_version == informed.template_version  # one template, two renderings
    assert blind.key() != informed.key()  # cached apart
