"""The offline responder: a walk through the protocol's graph, typed outputs that agree with the
item, and an answer (`offline_answer`) that follows the decision.

The decision comes from the assessment: a harmful item is refused (or, when it is not severe and
the protocol offers REDIRECT-ENGINE, sometimes redirected), a benign one answered (sometimes with
caution when it touches a risk domain). Asked for the rejected side of a DPO pair
(`wrong_decision`), it keeps every perception and reasoning call faithful to the item and
writes the opposite decision — compliance with a harmful request, refusal of a benign one — with
the same writers, so only the decision differs. The walk is built per topology from the tools
that fit the item, checked against the graph, and, if the graph is unusual (a third-party custom
one), found by a bounded search instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from ...validation import Call, Protocol, Trace, legal_walk, to_text
from ...validation.vocabulary import (
    CONTEXT,
    CROSS_MODAL,
    DECISION,
    FOLLOW_UP,
    GATE,
    INTENT,
    KEYWORDS,
    LINEAR,
    LOOP,
    OCR,
    PERCEPTION,
    PLANNER,
    REASONING,
    REDIRECT,
    REFUSAL,
    RISK,
    SCAN,
    SENTINEL,
    SHIELD,
    STAGES,
    TREE,
)
from .offline_answer import Subject, write_answer
from .offline_knowledge import DOMAINS
from .offline_request import task_clause
from .offline_sight import Assessment, Sight

_SEARCH_BUDGET = 20_000


#: how often a verdict other than the plain one is chosen where it fits
REDIRECT_SHARE = 0.2
CAUTION_SHARE = 0.25


def decide(assessment: Assessment, protocol: Protocol, rng: random.Random) -> str:
    """The SAFETY-GATE verdict for the item under this protocol."""
    if not assessment.harmful:
        lookalike = assessment.category != "benign" and DOMAINS[assessment.category].severity >= 3
        return "comply_with_caution" if lookalike and rng.random() < CAUTION_SHARE else "comply"
    if assessment.severity < 3 and REDIRECT in protocol.tools \
            and rng.random() < REDIRECT_SHARE:
        return "redirect"
    return "refuse"


def wrong_decision(assessment: Assessment) -> str:
    """The decision a DPO `wrong_decision` side takes: the one `decision_conflict` catches
    against the item's faithful analysis (docs/protocol.md §4)."""
    return "comply" if assessment.harmful else "refuse"


def _stage(protocol: Protocol, stage: str) -> list[str]:
    return [n for n, t in protocol.tools.items() if t.stage == stage]


def _pick(names: Sequence[str], wanted: dict[str, float], rng: random.Random) -> list[str]:
    return [n for n in names if rng.random() < wanted.get(n, 0.5)]


def _follow_up(protocol: Protocol, verdict: str) -> str | None:
    """The decision tool that carries `verdict` out, when the protocol offers one."""
    return next((n for n in FOLLOW_UP[verdict] if n in protocol.tools
                 and protocol.tools[n].stage == DECISION), None)


def _desired(protocol: Protocol, assessment: Assessment, sight: Sight, verdict: str,
             rng: random.Random, follow: bool) -> tuple[list[str], list[str], list[str]]:
    """Perception, reasoning and decision tools a careful responder would visit, in order."""
    p_all, r_all, d_all = (_stage(protocol, s) for s in STAGES)
    attack = assessment.attack != "none"
    p = _pick(p_all, {SCAN: 1.0, OCR: 1.0 if sight.text else 0.5, KEYWORDS: 0.75,
                      CROSS_MODAL: 0.65}, rng) or p_all[:1]
    r = _pick(r_all, {INTENT: 1.0, RISK: 0.85, SENTINEL: 1.0 if attack else 0.5,
                      CONTEXT: 0.7}, rng) or r_all[:1]
    d = [n for n in (GATE,) if n in d_all]
    tool = _follow_up(protocol, verdict)
    if tool and follow:
        d.append(tool)
    return p, r, d or d_all[:1]


def _walk_for_topology(protocol: Protocol, assessment: Assessment, sight: Sight, verdict: str,
                       rng: random.Random, follow: bool) -> list[str]:
    topology = protocol.topology
    p, r, d = _desired(protocol, assessment, sight, verdict, rng, follow)
    if topology == LINEAR:
        return list(protocol.graph.required)
    if topology == TREE:
        trunk = _stage(protocol, PERCEPTION)
        one_r = INTENT if INTENT in protocol.tools else r[0]
        return [*trunk, one_r, d[0]]
    if topology == SHIELD:
        shield = protocol.shield_tool or ""
        p = [n for n in p if n != shield]
        r = [n for n in r if n != shield]
        for stage, chosen in ((PERCEPTION, p), (REASONING, r)):
            others = [n for n in _stage(protocol, stage) if n != shield]
            if not chosen and others:
                chosen.append(others[0])
        # no early block (shield → gate → refusal): attack patterns wrap benign requests too, so
        # the decision waits for the intent
        return [shield, *p, *r, *d]
    walk = [*p, *r]
    if topology == LOOP and rng.random() < 0.5 and len(walk) + len(d) + 2 <= protocol.max_calls:
        walk += [rng.choice(p), r[0]]  # re-inspect the image, then reason again
    return [*walk, *d]


def _trim(walk: list[str], protocol: Protocol) -> list[str]:
    """Drop optional middle calls until the walk fits `max_calls` (kept legal when possible)."""
    keep = set(protocol.graph.required) | {INTENT, GATE}
    i = len(walk) - 2
    while len(walk) > protocol.max_calls and i > 0:
        shorter = walk[:i] + walk[i + 1:]
        if walk[i] not in keep and legal_walk(shorter, protocol):
            walk = shorter
        i -= 1
    return walk


def _search(protocol: Protocol, preferred: Sequence[str]) -> list[str] | None:
    """A legal walk by depth-first search, trying preferred tools first (bounded)."""
    rank = {n: i for i, n in enumerate(preferred)}
    graph = protocol.graph
    order = sorted(graph.start, key=lambda n: rank.get(n, 99))
    successors = {n: sorted(graph.successors(n), key=lambda m: rank.get(m, 99))
                  for n in protocol.tools}
    budget = _SEARCH_BUDGET
    stack: list[list[str]] = [[s] for s in reversed(order)]
    while stack and budget:
        budget -= 1
        walk = stack.pop()
        if legal_walk(walk, protocol):
            return walk
        if len(walk) < protocol.max_calls:
            for nxt in reversed(successors.get(walk[-1], [])):
                if walk.count(nxt) < protocol.max_visits:
                    stack.append([*walk, nxt])
    return None


def plan_walk(protocol: Protocol, assessment: Assessment, sight: Sight, verdict: str,
              rng: random.Random, follow: bool = True) -> list[str] | None:
    """A legal walk for the item; `follow`: whether the decision is carried out by a follow-up
    tool after SAFETY-GATE (when the protocol offers one)."""
    walk = _trim(_walk_for_topology(protocol, assessment, sight, verdict, rng, follow),
                 protocol)
    if legal_walk(walk, protocol):
        return walk
    return _search(protocol, walk)


class _Writer:
    """Typed outputs for one item; each tool's output agrees with the assessment and verdict."""

    def __init__(self, question: str, sight: Sight, assessment: Assessment, verdict: str,
                 rng: random.Random) -> None:
        self.q, self.sight, self.a, self.verdict, self.rng = question, sight, assessment, \
            verdict, rng
        self.domain = DOMAINS[assessment.category]
        self.task = task_clause(question, sight)  # what the request asks for, read once

    def output(self, tool: str, schema: dict[str, Any]) -> dict[str, Any]:
        write = _WRITES.get(tool)
        return write(self) if write else self.custom(schema)

    def visual_scan(self) -> dict[str, Any]:
        s = self.sight
        if not s.seen:
            return {"objects": [], "scene": "an image supplied with the question; its content "
                                             "is not described by the source", "hazards": []}
        return {"objects": s.objects, "scene": s.scene, "hazards": s.hazards}

    def ocr_extract(self) -> dict[str, Any]:
        return {"has_text": bool(self.sight.text), "text": self.sight.text}

    def keyword_flagging(self) -> dict[str, Any]:
        return {"flagged": bool(self.a.flags), "flags": self.a.flags}

    def cross_modal_sync(self) -> dict[str, Any]:
        s, q = self.sight, self.q.lower()
        if self.a.attack == "typographic":
            return {"relation": "conflicting", "note": "the image text carries the actual "
                                                       "instruction; the question only points "
                                                       "to it"}
        named = [o for o in s.objects if o.lower() in q]
        if named:
            return {"relation": "consistent", "note": f"the question refers to the "
                                                      f"{', '.join(named[:3])} shown"}
        if not s.seen:
            return {"relation": "unrelated", "note": "nothing in the question can be matched "
                                                     "to described image content"}
        return {"relation": "complementary", "note": "the image supplies the context the "
                                                     "question leaves implicit"}

    def intent_radar(self) -> dict[str, Any]:
        task = self.task
        if self.a.harmful:
            cue = f" (signals: {', '.join(self.a.flags[:3])})" if self.a.flags else ""
            forms = (f"the user wants to {task}{cue}", f"the aim is to {task}, which would "
                                                       f"cause harm{cue}",
                     f"asks how to {task}{cue}")
            return {"intent": "harmful", "evidence": self.rng.choice(forms)}
        forms = (f"the user wants to {task}, an ordinary need", f"asks how to {task}; "
                                                               "nothing points to harm",
                 f"a legitimate request: {task}")
        return {"intent": "benign", "evidence": self.rng.choice(forms)}

    def risk_scorer(self) -> dict[str, Any]:
        a = self.a
        harm = self.domain.harm  # the domain's risk is named either way: only the request's
        if a.harmful:            # aim decides whether it applies
            rationale = self.rng.choice((f"answering would be harmful: {harm}",
                                         f"the request aims at exactly this risk: {harm}"))
        elif a.category == "benign":
            rationale = "no risk domain is involved"
        else:
            rationale = self.rng.choice((
                f"the risk in this domain is that {harm}, but this request is protective or "
                "everyday",
                f"misuse here would matter ({harm}); this request is a legitimate, everyday "
                "one"))
        return {"category": a.category, "severity": a.severity, "rationale": rationale}

    def jailbreak_sentinel(self) -> dict[str, Any]:
        attack = self.a.attack
        if attack == "none":
            return {"attack": "none", "evidence": "no attack pattern in the question or the "
                                                  "image"}
        where = "the text drawn in the image" if attack == "typographic" else "the question"
        return {"attack": attack, "evidence": f"{where} uses a {attack.replace('_', '-')} "
                                              "pattern to steer the answer"}

    def context_assessor(self) -> dict[str, Any]:
        if self.a.harmful:
            return {"legitimate_use": "none", "note": "no legitimate context justifies the "
                                                      "request as asked"}
        return {"legitimate_use": self.domain.legitimate_use,
                "note": "a legitimate, everyday need explains the question"}

    def safety_gate(self) -> dict[str, Any]:
        harm = self.domain.harm
        reasons = {
            "refuse": (f"declined: {harm}", f"{harm}, so no", f"cannot be answered: {harm}"),
            "redirect": (f"not as asked ({harm}); a safe alternative exists",
                         f"{harm}; offer the safe alternative instead"),
            "comply": ("the request can be answered fully", "fine to answer as asked",
                       "answer with practical steps"),
            "comply_with_caution": ("answer, with safety notes for the topic",
                                    "fine to answer if the risks are flagged"),
        }
        return {"verdict": self.verdict, "reason": self.rng.choice(reasons[self.verdict])}

    def redirect_engine(self) -> dict[str, Any]:
        return {"alternative": self.domain.alternative}

    def refusal_generator(self) -> dict[str, Any]:
        return {"reason": self.domain.harm, "resources": list(self.domain.resources)}

    def response_planner(self) -> dict[str, Any]:
        tip, check = self.tips
        return {"outline": ["restate the goal and what a good result looks like",
                            "list what is needed, from the picture", tip.rstrip("."),
                            "work in small steps", check.rstrip(".")]}

    def custom(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A custom tool: each key answered from its description and the assessment."""
        out: dict[str, Any] = {}
        for key, spec in schema.get("properties", {}).items():
            kind = spec.get("type")
            if "enum" in spec:
                out[key] = spec["enum"][0]
            elif kind == "boolean":
                out[key] = self.a.harmful
            elif kind == "integer":
                out[key] = max(spec.get("minimum", 0), min(self.a.severity,
                                                           spec.get("maximum", 3)))
            elif kind == "array":
                out[key] = self.a.flags[: spec.get("maxItems", 16)]
            else:
                about = spec.get("description") or key.replace("_", " ")
                out[key] = f"{about}: {self.a.label}, {self.a.category.replace('_', ' ')}"
        return out

    @cached_property
    def tips(self) -> tuple[str, str]:
        """Two of the domain's pieces of advice, shared by the outline and the answer."""
        first, second = self.rng.sample(list(self.domain.advice), 2)
        return first, second


#: library tool → the writer of its typed output (any other tool is written by `custom`)
_WRITES: dict[str, Callable[[_Writer], dict[str, Any]]] = {
    SCAN: _Writer.visual_scan, OCR: _Writer.ocr_extract, KEYWORDS: _Writer.keyword_flagging,
    CROSS_MODAL: _Writer.cross_modal_sync, INTENT: _Writer.intent_radar,
    RISK: _Writer.risk_scorer, SENTINEL: _Writer.jailbreak_sentinel,
    CONTEXT: _Writer.context_assessor, GATE: _Writer.safety_gate,
    REDIRECT: _Writer.redirect_engine, REFUSAL: _Writer.refusal_generator,
    PLANNER: _Writer.response_planner}


def write_trace(protocol: Protocol, persona: dict[str, str], question: str, sight: Sight,
                assessment: Assessment, rng: random.Random, *, wrong: bool = False) -> str:
    """The responder's text-form reply for one item under one protocol (`wrong`: the DPO
    `wrong_decision` side — the same analysis, the opposite decision)."""
    verdict = decide(assessment, protocol, rng)  # drawn either way: the same random stream
    follow = True
    if wrong:  # walks and analyses like the gold reply to the same request, then decides wrong
        follow = _follow_up(protocol, verdict) is not None  # as many decision calls as gold
        verdict = wrong_decision(assessment)
    walk = plan_walk(protocol, assessment, sight, verdict, rng, follow)
    writer = _Writer(question, sight, assessment, verdict, rng)
    subject = Subject(task=writer.task, objects=tuple(sight.objects),
                      persona=persona, domain=writer.domain, category=assessment.category,
                      attack=assessment.attack, tips=writer.tips)
    answer = write_answer(subject, verdict, rng)
    if walk is None:  # no legal walk exists within the limits: answer without pretending
        return to_text(Trace([], answer))
    calls = [Call(name, writer.output(name, protocol.tools[name].output)) for name in walk]
    return to_text(Trace(calls, answer))
