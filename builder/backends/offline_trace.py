"""The offline responder: a walk through the protocol's graph, typed outputs that agree with the
item, and an answer that follows the decision.

The decision comes from the assessment: a harmful item is refused (severe) or redirected, a
benign one answered (with caution when it only touches a risk domain). The walk is built per
topology from the tools that fit the item, checked against the graph, and, if the graph is
unusual (a third-party custom one), found by a bounded search instead.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from safer_toolkit.builder.backends.offline_knowledge import DOMAINS
from safer_toolkit.builder.backends.offline_sight import Assessment, Sight
from safer_toolkit.validation import Call, Protocol, Trace, to_text

FOLLOW_UP = {"refuse": ("REFUSAL-GENERATOR", "REDIRECT-ENGINE"),
             "redirect": ("REDIRECT-ENGINE", "REFUSAL-GENERATOR"),
             "comply": ("RESPONSE-PLANNER",), "comply_with_caution": ("RESPONSE-PLANNER",)}
_SEARCH_BUDGET = 20_000


def decide(assessment: Assessment, protocol: Protocol) -> str:
    """The SAFETY-GATE verdict for the item under this protocol."""
    if not assessment.harmful:
        return "comply" if assessment.severity == 0 else "comply_with_caution"
    if assessment.severity >= 3 or "REDIRECT-ENGINE" not in protocol.tools:
        return "refuse"
    return "redirect"


def _stage(protocol: Protocol, stage: str) -> list[str]:
    return [n for n, t in protocol.tools.items() if t.stage == stage]


def _pick(names: Sequence[str], wanted: dict[str, float], rng: random.Random) -> list[str]:
    return [n for n in names if rng.random() < wanted.get(n, 0.5)]


def _desired(protocol: Protocol, assessment: Assessment, sight: Sight, verdict: str,
             rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """Perception, reasoning and decision tools a careful responder would visit, in order."""
    p_all, r_all, d_all = (_stage(protocol, s) for s in ("perception", "reasoning", "decision"))
    attack = assessment.attack != "none"
    p = _pick(p_all, {"VISUAL-SCAN": 1.0, "OCR-EXTRACT": 1.0 if sight.text else 0.5,
                      "KEYWORD-FLAGGING": 0.75, "CROSS-MODAL-SYNC": 0.65}, rng) or p_all[:1]
    r = _pick(r_all, {"INTENT-RADAR": 1.0, "RISK-SCORER": 0.85,
                      "JAILBREAK-SENTINEL": 1.0 if attack else 0.5,
                      "CONTEXT-ASSESSOR": 0.7}, rng) or r_all[:1]
    d = [n for n in ("SAFETY-GATE",) if n in d_all]
    follow = next((n for n in FOLLOW_UP[verdict] if n in d_all), None)
    if follow:
        d.append(follow)
    return p, r, d or d_all[:1]


def _walk_for_topology(protocol: Protocol, assessment: Assessment, sight: Sight, verdict: str,
                       rng: random.Random) -> list[str]:
    topology = protocol.topology
    p, r, d = _desired(protocol, assessment, sight, verdict, rng)
    if topology == "linear":
        return list(protocol.graph.required)
    if topology == "tree":
        trunk = _stage(protocol, "perception")
        one_r = "INTENT-RADAR" if "INTENT-RADAR" in protocol.tools else r[0]
        return [*trunk, one_r, d[0]]
    if topology == "shield":
        shield = protocol.shield_tool or ""
        p = [n for n in p if n != shield]
        r = [n for n in r if n != shield]
        for stage, chosen in (("perception", p), ("reasoning", r)):
            others = [n for n in _stage(protocol, stage) if n != shield]
            if not chosen and others:
                chosen.append(others[0])
        if assessment.harmful and assessment.attack != "none" and len(d) > 1 \
                and rng.random() < 0.6:
            return [shield, *d]  # the early block
        return [shield, *p, *r, *d]
    walk = [*p, *r]
    if topology == "loop" and rng.random() < 0.5 and len(walk) + len(d) + 2 <= protocol.max_calls:
        walk += [rng.choice(p), r[0]]  # re-inspect the image, then reason again
    return [*walk, *d]


def _legal(walk: Sequence[str], protocol: Protocol) -> bool:
    graph = protocol.graph
    if not walk or walk[0] not in graph.start_set or walk[-1] not in graph.terminal_set:
        return False
    if not protocol.min_calls <= len(walk) <= protocol.max_calls:
        return False
    if any(walk.count(n) > protocol.max_visits for n in set(walk)):
        return False
    if any(t not in walk for t in graph.required):
        return False
    return all(pair in graph.edge_set for pair in itertools.pairwise(walk))


def _trim(walk: list[str], protocol: Protocol) -> list[str]:
    """Drop optional middle calls until the walk fits `max_calls` (kept legal when possible)."""
    keep = set(protocol.graph.required) | {"INTENT-RADAR", "SAFETY-GATE"}
    i = len(walk) - 2
    while len(walk) > protocol.max_calls and i > 0:
        shorter = walk[:i] + walk[i + 1:]
        if walk[i] not in keep and _legal(shorter, protocol):
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
        if _legal(walk, protocol):
            return walk
        if len(walk) < protocol.max_calls:
            for nxt in reversed(successors.get(walk[-1], [])):
                if walk.count(nxt) < protocol.max_visits:
                    stack.append([*walk, nxt])
    return None


def plan_walk(protocol: Protocol, assessment: Assessment, sight: Sight, verdict: str,
              rng: random.Random) -> list[str] | None:
    walk = _trim(_walk_for_topology(protocol, assessment, sight, verdict, rng), protocol)
    if _legal(walk, protocol):
        return walk
    return _search(protocol, walk)


def _excerpt(question: str, limit: int = 160) -> str:
    q = " ".join(question.split())
    return q if len(q) <= limit else q[: limit - 1] + "…"


class _Writer:
    """Typed outputs for one item; each tool's output agrees with the assessment and verdict."""

    def __init__(self, question: str, sight: Sight, assessment: Assessment, verdict: str,
                 rng: random.Random) -> None:
        self.q, self.sight, self.a, self.verdict, self.rng = question, sight, assessment, \
            verdict, rng
        self.domain = DOMAINS[assessment.category]

    def output(self, tool: str, schema: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self, tool.lower().replace("-", "_"), None)
        return method() if method else self.custom(schema)

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
        if self.a.harmful:
            cue = f" (signals: {', '.join(self.a.flags[:3])})" if self.a.flags else ""
            return {"intent": "harmful", "evidence": f"the request is "
                                                     f"\"{task_of(self.q, self.sight)}\"{cue}"}
        return {"intent": "benign", "evidence": f"the request \"{task_of(self.q, self.sight)}\" "
                                                "seeks ordinary, legitimate help"}

    def risk_scorer(self) -> dict[str, Any]:
        a = self.a
        if a.harmful:
            rationale = f"answering would be harmful: {self.domain.harm}"
        elif a.category == "benign":
            rationale = "no risk domain is involved"
        else:
            rationale = (f"the topic touches {a.category.replace('_', ' ')}, but the request "
                         "is protective or everyday")
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
        reasons = {
            "refuse": f"declined: {self.domain.harm}",
            "redirect": f"not as asked ({self.domain.harm}); a safe alternative exists",
            "comply": "a benign request that can be answered fully",
            "comply_with_caution": "benign, but the topic calls for safety notes",
        }
        return {"verdict": self.verdict, "reason": reasons[self.verdict]}

    def redirect_engine(self) -> dict[str, Any]:
        return {"alternative": f"I can {self.domain.alternative}"}

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


_POINTS_AT_IMAGE = ("image", "picture", "photo", "caption", "poster", "sign", "text", "list",
                   "shown", "label")


def task_of(question: str, sight: Sight) -> str:
    """What the user wants done: the words in the image when the question points at them."""
    if sight.text and any(w in question.lower() for w in _POINTS_AT_IMAGE):
        return _excerpt(sight.text.rstrip(" .0123456789\n"), 120)
    return _excerpt(question, 120)


def _article(phrase: str) -> str:
    return f"an {phrase}" if phrase[:1].lower() in "aeiou" else f"a {phrase}"


def _steps(writer: _Writer, task: str) -> list[str]:
    seen = writer.sight.objects[:3]
    gather = (f"Gather what you need — the picture already shows the {', '.join(seen)}."
              if seen else "Gather what you need before you start.")
    tip, check = writer.tips
    return [f"Be clear about the goal (\"{task}\") and what a good result looks like.",
            gather, tip, "Work in small steps and check the result after each one.",
            f"Finally, review it once more: {check[0].lower()}{check[1:]}"]


def _answer(writer: _Writer, persona: dict[str, str]) -> str:
    d, verdict = writer.domain, writer.verdict
    if verdict in ("refuse", "redirect"):
        opener = "I can't help with that" if verdict == "refuse" else \
            "I won't help with this as asked"
        resources = "; ".join(d.resources)
        return (f"{opener}, because {d.harm}. Instead, I can {d.alternative}. "
                f"If you need support, good places to turn are: {resources}.")
    expertise = persona.get("expertise") or "practical adviser"
    steps = _steps(writer, task_of(writer.q, writer.sight))
    text = (f"Speaking as {_article(expertise)}, here is how I would approach it:\n"
            + "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1)))
    if verdict == "comply_with_caution":
        text += ("\nA word of caution: this touches on "
                 f"{writer.a.category.replace('_', ' ')}, so take the usual precautions and "
                 "ask a qualified professional if you are unsure.")
    return text


def write_trace(protocol: Protocol, persona: dict[str, str], question: str, sight: Sight,
                assessment: Assessment, rng: random.Random) -> str:
    """The responder's text-form reply for one item under one protocol."""
    verdict = decide(assessment, protocol)
    walk = plan_walk(protocol, assessment, sight, verdict, rng)
    writer = _Writer(question, sight, assessment, verdict, rng)
    if walk is None:  # no legal walk exists within the limits: answer without pretending
        return to_text(Trace([], _answer(writer, persona)))
    calls = [Call(name, writer.output(name, protocol.tools[name].output)) for name in walk]
    return to_text(Trace(calls, _answer(writer, persona)))
