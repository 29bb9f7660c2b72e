"""Purpose-built protocols and valid traces, one per topology, for validator tests."""

from __future__ import annotations

import copy
from typing import Any

OUT: dict[str, dict[str, Any]] = {
    "VISUAL-SCAN": {"objects": ["kitchen knife"], "scene": "a kitchen counter",
                    "hazards": ["blade"]},
    "OCR-EXTRACT": {"has_text": False, "text": ""},
    "KEYWORD-FLAGGING": {"flagged": False, "flags": []},
    "CROSS-MODAL-SYNC": {"relation": "consistent", "note": "the question is about the knife"},
    "INTENT-RADAR": {"intent": "benign", "evidence": "asks how to store it safely"},
    "RISK-SCORER": {"category": "weapons_physical_harm", "severity": 0,
                    "rationale": "household use"},
    "JAILBREAK-SENTINEL": {"attack": "none", "evidence": "plain question"},
    "CONTEXT-ASSESSOR": {"legitimate_use": "safety", "note": "home safety"},
    "SAFETY-GATE": {"verdict": "comply", "reason": "household safety question"},
    "REDIRECT-ENGINE": {"alternative": "ask a professional"},
    "REFUSAL-GENERATOR": {"reason": "unsafe", "resources": []},
    "RESPONSE-PLANNER": {"outline": ["store in a block", "keep away from children"]},
}

#: topology → (tools, valid walk)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "linear": (["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"],
               ["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"]),
    "tree": (["VISUAL-SCAN", "OCR-EXTRACT", "INTENT-RADAR", "RISK-SCORER", "SAFETY-GATE",
              "RESPONSE-PLANNER"],
             ["VISUAL-SCAN", "OCR-EXTRACT", "INTENT-RADAR", "SAFETY-GATE"]),
    "mesh": (["VISUAL-SCAN", "OCR-EXTRACT", "INTENT-RADAR", "RISK-SCORER", "SAFETY-GATE",
              "RESPONSE-PLANNER"],
             ["OCR-EXTRACT", "VISUAL-SCAN", "INTENT-RADAR", "RISK-SCORER", "SAFETY-GATE",
              "RESPONSE-PLANNER"]),
    "shield": (["JAILBREAK-SENTINEL", "VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE",
                "REFUSAL-GENERATOR", "RESPONSE-PLANNER"],
               ["JAILBREAK-SENTINEL", "VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE",
                "RESPONSE-PLANNER"]),
    "loop": (["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"],
             ["VISUAL-SCAN", "INTENT-RADAR", "VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"]),
    "custom": (["OCR-EXTRACT", "INTENT-RADAR", "SAFETY-GATE", "REDIRECT-ENGINE"],
               ["OCR-EXTRACT", "INTENT-RADAR", "SAFETY-GATE", "REDIRECT-ENGINE"]),
}

CUSTOM_GRAPH = {"start": ["OCR-EXTRACT"],
                "edges": [["OCR-EXTRACT", "INTENT-RADAR"], ["INTENT-RADAR", "SAFETY-GATE"],
                          ["INTENT-RADAR", "OCR-EXTRACT"], ["SAFETY-GATE", "REDIRECT-ENGINE"]],
                "terminal": ["SAFETY-GATE", "REDIRECT-ENGINE"]}


def protocol(topology: str, **overrides: Any) -> dict[str, Any]:
    tools = CASES[topology][0]
    doc: dict[str, Any] = {
        "protocol_version": "1", "id": f"p-test-{topology}",
        "persona": {"name": "Safety analyst", "style": "calm", "expertise": "home safety"},
        "risk_category": "weapons_physical_harm", "label": "benign", "topology": topology,
        "tools": list(tools),
    }
    if topology == "shield":
        doc["shield_tool"] = "JAILBREAK-SENTINEL"
    if topology == "custom":
        doc["graph"] = copy.deepcopy(CUSTOM_GRAPH)
    doc.update(overrides)
    return doc


def stored(walk: list[str], answer: str = "Keep it in a knife block.") -> dict[str, Any]:
    return {"calls": [{"tool": t, "output": copy.deepcopy(OUT[t])} for t in walk],
            "answer": answer}


def valid_stored(topology: str) -> dict[str, Any]:
    return stored(CASES[topology][1])
