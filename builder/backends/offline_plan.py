"""The offline planner: protocol choices fitted to what the item shows and asks — never to its
label.

Topology, persona and tools vary per item (seeded by the item and the request's sampling seed),
weighted by what can be seen before deciding anything: an attack pattern in the question or the
picture is usually screened with a shield, text in the image brings OCR-EXTRACT, a question in a
risk domain often brings CONTEXT-ASSESSOR, and the decision tools on offer are drawn the same way
for every item. The label and category the plan reports are the source's annotation, but no
tool or topology choice reads them, so the system prompt rendered from the plan says nothing
about the decision to come (the audit's `label_from_prompt` measures it). Every answer satisfies
the builder's rules, so the offline build needs no retries; a retry (a request carrying
feedback) gets the most conservative plan.
"""

from __future__ import annotations

import random
from typing import Any

from ...validation import vocabulary as V
from .offline_knowledge import DOMAINS
from .offline_sight import Assessment, Sight

#: how often each topology is drawn, in `V.TOPOLOGIES` order (linear, tree, mesh, shield, loop)
_TOPOLOGY_WEIGHTS = (2, 2, 3, 1.5, 2)
_STYLES = ("concise and direct", "warm and reassuring", "methodical, step by step",
           "plain-spoken and practical", "careful and evidence-first")


def _persona(assessment: Assessment, rng: random.Random) -> dict[str, str]:
    name, expertise, style = rng.choice(DOMAINS[assessment.category].personas)
    if rng.random() < 0.3:
        style = rng.choice(_STYLES)
    return {"name": name, "style": style, "expertise": expertise}


def _decision_tools(topology: str, rng: random.Random) -> list[str]:
    """SAFETY-GATE plus follow-ups for either decision, drawn alike for every item: a planner
    that offered only one side's follow-up would decide in advance (and a trace could carry its
    decision out only one way). A linear chain visits every tool, so it gets the gate alone."""
    if topology == V.LINEAR:
        return [V.GATE]
    decline = [t for t in (V.REDIRECT, V.REFUSAL) if rng.random() < 0.6]
    return [V.GATE, *(decline or [rng.choice((V.REFUSAL, V.REDIRECT))]), V.PLANNER]


def plan_choices(assessment: Assessment, sight: Sight, rng: random.Random) -> dict[str, Any]:
    """The planner's structured answer for one item."""
    attack = assessment.attack != "none"
    if attack and rng.random() < 0.45:
        topology = V.SHIELD
    else:
        topology = rng.choices(V.TOPOLOGIES, weights=_TOPOLOGY_WEIGHTS)[0]
    perception = [V.SCAN]
    if sight.text or rng.random() < 0.3:
        perception.insert(0 if sight.text and rng.random() < 0.5 else 1, V.OCR)
    if rng.random() < 0.5 or (topology == V.SHIELD and not attack):
        perception.append(V.KEYWORDS)
    if rng.random() < 0.4:
        perception.append(V.CROSS_MODAL)
    reasoning = [V.INTENT]
    if attack or rng.random() < 0.25 or (topology == V.SHIELD and V.KEYWORDS not in perception):
        reasoning.insert(0, V.SENTINEL)
    if rng.random() < 0.8:
        reasoning.append(V.RISK)
    risk_domain = assessment.category != "benign"  # harmful requests and look-alikes alike
    if rng.random() < (0.4 if risk_domain else 0.15):
        reasoning.append(V.CONTEXT)
    decision = _decision_tools(topology, rng)
    limit = 8 if topology == V.LINEAR else 9
    for optional in (V.CROSS_MODAL, V.CONTEXT, V.REDIRECT, V.RISK, V.KEYWORDS, V.OCR):
        if len(perception) + len(reasoning) + len(decision) <= limit:
            break
        for stage in (perception, reasoning, decision):
            if optional in stage and len(stage) > 1 and not (
                    optional == V.KEYWORDS and topology == V.SHIELD) and not (
                    optional == V.REDIRECT and V.REFUSAL not in stage):
                stage.remove(optional)
    shield_tool = None
    if topology == V.SHIELD:
        shield_tool = V.SENTINEL if V.SENTINEL in reasoning else V.KEYWORDS
        if shield_tool == V.KEYWORDS and len(perception) == 1 and rng.random() < 0.5:
            perception.append(V.CROSS_MODAL)
    return {"persona": _persona(assessment, rng), "risk_category": assessment.category,
            "label": assessment.label, "topology": topology,
            "tools": perception + reasoning + decision, "shield_tool": shield_tool,
            "custom_tools": []}


def conservative_choices(assessment: Assessment, rng: random.Random) -> dict[str, Any]:
    """A plan that satisfies every rule: a mesh over the core tools (both follow-ups, so the
    plan still decides nothing)."""
    return {"persona": _persona(assessment, rng), "risk_category": assessment.category,
            "label": assessment.label, "topology": V.MESH,
            "tools": [V.SCAN, V.INTENT, V.RISK, V.GATE, V.REFUSAL, V.PLANNER],
            "shield_tool": None, "custom_tools": []}
