"""The responder/policy system prompt rendered from a protocol, and its exact inverse.

The instruction names the persona, every tool with its typed keys, the compiled transitions and
the limits. It deliberately omits the protocol's `label` and `risk_category`: those are what the
trace has to work out, and a policy trained or evaluated on this prompt must not be told them.

`parse_toolkit_instruction` reads the rendered text back into a protocol document (without
label/category), which is how the offline backend follows a protocol from the request alone.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ...validation import (
    Protocol,
    library_tools,
    protocol_document,
    resolve_protocol,
)
from .templates import template

_LIBRARY_ONLY = ("benign", "benign")  # placeholder label/category for a parsed document
_TOOL_LINE = re.compile(
    r"- (?P<name>[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*) \[(?P<stage>perception|reasoning|decision)\]"
    r"(?P<custom> \(custom\))?: (?P<rest>.*)")
_EDGE_LINE = re.compile(r"- (?P<src>[A-Z0-9-]+) → (?P<dst>.+)")
_LIMITS = re.compile(r"Limits: (\d+) to (\d+) calls; each tool at most (\d+) time\(s\)\.")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def signature(schema: dict[str, Any]) -> str:
    """A compact, readable type signature of an output schema (`{"k": string, ...}`)."""
    if "enum" in schema:
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(signature({**schema, "type": k}) for k in kind)
    if kind == "object":
        inner = ", ".join(f"{json.dumps(k)}: {signature(v)}"
                          for k, v in schema.get("properties", {}).items())
        return "{" + inner + "}"
    if kind == "array":
        return f"[{signature(schema.get('items', {}))}]"
    if kind == "integer" and "minimum" in schema and "maximum" in schema:
        return f"integer {schema['minimum']}–{schema['maximum']}"
    words: dict[str | None, str] = {"boolean": "true|false", "null": "null"}
    return words.get(kind, kind or "any")


def _tool_line(entry: Any) -> str:
    if isinstance(entry, str):
        tool = library_tools()[entry]
        return (f"- {tool.name} [{tool.stage}]: {tool.purpose} "
                f"Keys: {signature(tool.output)}")
    schema = json.dumps(entry["output"], ensure_ascii=False, separators=(",", ":"))
    return (f"- {entry['name']} [{entry['stage']}] (custom): {_one_line(entry['purpose'])} "
            f"Output schema: {schema}")


def render_toolkit_instruction(protocol: Protocol | dict[str, Any]) -> str:
    """The system prompt a responder or policy sees for a protocol: resolved already, or a
    (valid) protocol document, resolved here."""
    if not isinstance(protocol, Protocol):
        protocol = resolve_protocol(protocol)
    protocol_doc = protocol.document
    graph = protocol.graph
    successors: dict[str, list[str]] = {}
    for a, b in graph.edges:
        successors.setdefault(a, []).append(b)
    names = list(protocol.tools)
    edges = "\n".join(f"- {n} → {', '.join(successors[n])}" for n in names if n in successors)
    persona = protocol_doc["persona"]
    shield_line = (f"\nScreening tool: {protocol.shield_tool} (always the first call)"
                   if protocol.shield_tool else "")
    required_line = (f" Visit every one of: {', '.join(graph.required)}."
                     if graph.required else "")
    return template("toolkit_instruction").render(
        persona_name=_one_line(persona["name"]) or "a careful assistant",
        persona_expertise=_one_line(persona["expertise"]) or "general safety",
        persona_style=_one_line(persona["style"]) or "clear and direct",
        topology=protocol.topology, shield_line=shield_line,
        tools="\n".join(_tool_line(e) for e in protocol_doc["tools"]),
        starts=", ".join(graph.start), edges=edges, terminals=", ".join(graph.terminal),
        min_calls=protocol.min_calls, max_calls=protocol.max_calls,
        max_visits=protocol.max_visits, required_line=required_line)


def _after(lines: list[str], prefix: str) -> str | None:
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix):]
    return None


def parse_toolkit_instruction(text: str) -> dict[str, Any] | None:
    """The protocol document a rendered instruction describes, or None when `text` is not one.

    Label and category are not in the instruction; the returned document carries `benign`
    placeholders for them so that it resolves.
    """
    lines = text.splitlines()
    topology = _after(lines, "Topology: ")
    if topology is None or "Allowed transitions:" not in lines:
        return None
    first = lines[0].removeprefix("You are ").rstrip(".")
    name, _, expertise = first.partition(" — ")
    style = _after(lines, "Your style: ") or ""
    tools: list[Any] = []
    edges: list[list[str]] = []
    section = None
    for line in lines:
        if line in ("Tools:", "Allowed transitions:"):
            section = line
            continue
        if section == "Tools:" and (m := _TOOL_LINE.fullmatch(line)):
            if m["custom"]:
                purpose, _, schema = m["rest"].rpartition(" Output schema: ")
                tools.append({"name": m["name"], "stage": m["stage"], "purpose": purpose,
                              "output": json.loads(schema)})
            else:
                tools.append(m["name"])
        elif section == "Allowed transitions:" and (m := _EDGE_LINE.fullmatch(line)):
            edges.extend([m["src"], dst] for dst in m["dst"].split(", "))
    limits = next((m for line in lines if (m := _LIMITS.fullmatch(line.split(" Visit")[0]))),
                  None)
    shield = _after(lines, "Screening tool: ")
    return protocol_document(
        "parsed-instruction", {"name": name, "style": style, "expertise": expertise},
        _LIBRARY_ONLY[0], _LIBRARY_ONLY[1], topology, tools,
        graph={"start": (_after(lines, "Start with: ") or "").split(", "),
               "edges": edges, "terminal": (_after(lines, "End with: ") or "").split(", ")},
        shield_tool=shield.split(" ")[0] if shield else None,
        limits={"min_calls": int(limits[1]), "max_calls": int(limits[2]),
                "max_visits": int(limits[3])} if limits else None)
