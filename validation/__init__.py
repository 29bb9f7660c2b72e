"""Check traces against the SaFeR-ToolKit protocol: schemas, graphs, limits and decisions.

    from . import Validator
    result = Validator(protocol_doc).validate({"response": text})
    result.valid, [i.code for i in result.issues]
"""

from .codec import Call, ParsedText, Trace, from_stored, parse_text, to_text
from .graph import Graph, GraphError, compile_graph, legal_walk
from .issues import CODES, Issue, RecordResult
from .protocol import (
    Protocol,
    ProtocolInvalid,
    Tool,
    library_protocol_document,
    library_tools,
    protocol_document,
    resolve_protocol,
)
from .validator import (
    Validator,
    Verdict,
    check_text,
    check_trace,
    decision_conflict,
    stated_verdict,
    turn_text,
)
from .vocabulary import PROTOCOL_VERSION, TOPOLOGIES, VERDICTS

__all__ = [
    "CODES",
    "PROTOCOL_VERSION",
    "TOPOLOGIES",
    "VERDICTS",
    "Call",
    "Graph",
    "GraphError",
    "Issue",
    "ParsedText",
    "Protocol",
    "ProtocolInvalid",
    "RecordResult",
    "Tool",
    "Trace",
    "Validator",
    "Verdict",
    "check_text",
    "check_trace",
    "compile_graph",
    "decision_conflict",
    "from_stored",
    "legal_walk",
    "library_protocol_document",
    "library_tools",
    "parse_text",
    "protocol_document",
    "resolve_protocol",
    "stated_verdict",
    "to_text",
    "turn_text",
]
