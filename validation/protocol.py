"""Protocols: resolve a protocol document into tools, a compiled graph and limits.

Resolution is where a protocol is judged usable (docs/protocol.md §2, §3.1): schema, label/category,
library names, custom tool schemas (allow-listed keywords, strict-output shape, size and depth
bounds), topology needs and the graph. Every failure is an `Issue`, never an exception escaping.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema_rs
import orjson

from .. import schemas
from ..errors import ProtocolError
from .explain import explain
from .graph import (
    Graph,
    GraphError,
    check_custom_graph,
    compile_graph,
    parse_graph,
)
from .issues import Issue, issue
from .limits import (
    MAX_CUSTOM_SCHEMA_BYTES,
    MAX_CUSTOM_SCHEMA_DEPTH,
    PROTOCOL_CACHE_SIZE,
    json_depth_exceeds,
)
from .vocabulary import (
    CUSTOM_TOPOLOGY,
    LOOP,
    PROTOCOL_VERSION,
    SENTINEL,
    SHIELD,
)

DEFAULT_LIMITS = {"min_calls": 3, "max_calls": 10, "max_visits": 1}
LOOP_MAX_VISITS = 2


@dataclass(frozen=True)
class Tool:
    """A tool definition with its compiled output validator."""

    name: str
    stage: str
    purpose: str
    output: dict[str, Any]
    custom: bool = False
    validator: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = orjson.dumps(self.output, option=orjson.OPT_SORT_KEYS)
        object.__setattr__(self, "validator", _compiled(key))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "stage": self.stage, "purpose": self.purpose,
                "output": self.output}


@cache
def _compiled(schema_json: bytes) -> Any:
    return jsonschema_rs.Draft202012Validator(orjson.loads(schema_json))


def schema_validator(schema: Mapping[str, Any]) -> Any:
    """The compiled validator of an output schema, one per distinct schema (keys sorted)."""
    return _compiled(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


@dataclass(frozen=True)
class Protocol:
    """A usable protocol: tools by name (in listed order), the graph and the merged limits."""

    id: str
    topology: str
    label: str
    risk_category: str
    tools: dict[str, Tool]
    graph: Graph
    min_calls: int
    max_calls: int
    max_visits: int
    shield_tool: str | None
    document: dict[str, Any]
    output_checks: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # tool name → the compiled validator's bound `is_valid`: the hot path's dispatch table
        checks = {name: tool.validator.is_valid for name, tool in self.tools.items()}
        object.__setattr__(self, "output_checks", checks)


class ProtocolInvalid(ProtocolError, ValueError):
    """A protocol that cannot be used; `issues` carries `protocol_invalid`/`graph_invalid`."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"{i.code}: {i.message}" for i in issues))
        self.issues = issues


@cache
def library_tools(name: str = "default") -> dict[str, Tool]:
    """The named tool library (only `default`, v1, ships)."""
    if name != "default":
        raise ValueError(f"unknown tool library {name!r}; the toolkit ships 'default' (v1)")
    return {t["name"]: Tool(t["name"], t["stage"], t["purpose"], t["output"])
            for t in schemas.tool_library()["tools"]}


def protocol_document(id: str, persona: dict[str, str], risk_category: str, label: str,
                      topology: str, tools: Sequence[Any], **optional: Any) -> dict[str, Any]:
    """A protocol document in the key order every writer uses, with this toolkit's
    `protocol_version`; `optional` keys (shield_tool, graph, limits) follow in the order given,
    those that are None left out."""
    doc: dict[str, Any] = {
        "protocol_version": PROTOCOL_VERSION,
        "id": id,
        "persona": persona,
        "risk_category": risk_category,
        "label": label,
        "topology": topology,
        "tools": list(tools),
    }
    doc.update((key, value) for key, value in optional.items() if value is not None)
    return doc


def library_protocol_document(topology: str, library: str = "default") -> dict[str, Any]:
    """A protocol with every library tool under `topology` (shield screens with the sentinel)."""
    return protocol_document(f"library-{library}-{topology}",
                             {"name": "library", "style": "", "expertise": ""}, "benign",
                             "benign", topology, list(library_tools(library)),
                             shield_tool=SENTINEL if topology == SHIELD else None)


@cache
def _meta(name: str) -> Any:
    return jsonschema_rs.Draft202012Validator(schemas.load(name))


def _schema_issues(doc: Any, schema_name: str, code: str, prefix: str) -> list[Issue]:
    if _meta(schema_name).is_valid(doc):
        return []
    reasons = explain(schemas.load(schema_name), doc)
    return [issue(code, message, prefix + path) for path, message in reasons]


def _custom_schema_problems(output: dict[str, Any]) -> list[tuple[str, str]]:
    """Strict-output shape and bounds of a custom output schema, as (path, message)."""
    problems: list[tuple[str, str]] = []
    size = len(orjson.dumps(output))
    if size > MAX_CUSTOM_SCHEMA_BYTES:
        problems.append(("", f"output schema is {size} bytes as JSON; the limit is "
                             f"{MAX_CUSTOM_SCHEMA_BYTES}"))
    todo: list[tuple[dict[str, Any], str, int]] = [(output, "", 1)]
    while todo:
        node, path, level = todo.pop()
        if level > MAX_CUSTOM_SCHEMA_DEPTH:
            problems.append((path, f"output schema nests deeper than {MAX_CUSTOM_SCHEMA_DEPTH} "
                                   "levels"))
            continue
        types = node.get("type")
        if types == "object" or (isinstance(types, list) and "object" in types):
            props = node.get("properties", {})
            if node.get("additionalProperties") is not False:
                problems.append((path, "an object schema must set additionalProperties: false"))
            if sorted(node.get("required", [])) != sorted(props):
                problems.append((path, "an object schema must list every property in required"))
            todo.extend((sub, f"{path}/properties/{key}", level + 1)
                        for key, sub in props.items())
        if isinstance(node.get("items"), dict):
            todo.append((node["items"], f"{path}/items", level + 1))
    return problems


def _resolve_tools(entries: Sequence[Any], library: Mapping[str, Tool]) -> tuple[list[Tool],
                                                                                 list[Issue]]:
    tools: list[Tool] = []
    problems: list[Issue] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        path = f"/protocol/tools/{i}"
        if isinstance(entry, str):
            tool = library.get(entry)
            if tool is None:
                problems.append(issue("protocol_invalid",
                                      f"{entry!r} is not a tool of the library", path))
                continue
        else:
            if json_depth_exceeds(entry, MAX_CUSTOM_SCHEMA_DEPTH * 2 + 4):
                problems.append(issue("protocol_invalid", "custom tool nests too deeply", path))
                continue
            found = _schema_issues(entry, "tool.schema.json", "protocol_invalid", path)
            if not found:
                found = [issue("protocol_invalid", msg, f"{path}/output{sub}")
                         for sub, msg in _custom_schema_problems(entry["output"])]
            if not found:
                try:
                    schema_validator(entry["output"])
                except Exception as exc:  # jsonschema-rs refuses a schema it cannot compile
                    found = [issue("protocol_invalid", f"output schema does not compile: {exc}",
                                   f"{path}/output")]
            if found:
                problems.extend(found)
                continue
            tool = Tool(entry["name"], entry["stage"], entry["purpose"], entry["output"], True)
        if tool.name in seen:
            problems.append(issue("protocol_invalid", f"tool {tool.name} is listed twice", path))
            continue
        seen.add(tool.name)
        tools.append(tool)
    return tools, problems


def _graph(doc: dict[str, Any], tools: list[Tool]) -> tuple[Graph | None, list[Issue]]:
    topology = doc["topology"]
    given = doc.get("graph")
    if given is not None or topology == CUSTOM_TOPOLOGY:
        if given is None:
            return None, [issue("protocol_invalid", "a custom protocol needs a graph",
                                "/protocol")]
        found = _schema_issues(given, "graph.schema.json", "graph_invalid", "/protocol/graph")
        if found:
            return None, found
        given_graph = parse_graph(given)
    if topology == CUSTOM_TOPOLOGY:
        problems = check_custom_graph(given_graph, tools)
        if problems:
            return None, [issue("graph_invalid", p, "/protocol/graph") for p in problems]
        return given_graph, []
    try:
        compiled = compile_graph(tools, topology, doc.get("shield_tool"))
    except GraphError as exc:
        return None, [issue("protocol_invalid", str(exc), "/protocol")]
    if given is not None and not given_graph.same_as(compiled):
        extra = len(given_graph.edge_set - compiled.edge_set)
        missing = len(compiled.edge_set - given_graph.edge_set)
        return None, [issue("graph_invalid",
                            f"graph does not match the compiled {topology} graph "
                            f"({extra} extra, {missing} missing edges; starts or terminals "
                            "may differ too)", "/protocol/graph")]
    return compiled, []


def resolve_protocol(doc: Any, library: str = "default") -> Protocol:
    """Judge and compile a protocol document; raises `ProtocolInvalid` with every problem."""
    if not isinstance(doc, dict):
        raise ProtocolInvalid([issue("protocol_invalid", "protocol is not a JSON object",
                                     "/protocol")])
    body = {k: v for k, v in doc.items() if k != "graph"}
    problems = _schema_issues(body, "protocol.schema.json", "protocol_invalid", "/protocol")
    if problems:
        raise ProtocolInvalid(problems)
    if doc["label"] == "harmful" and doc["risk_category"] == "benign":
        problems.append(issue("protocol_invalid", "a harmful protocol cannot have category "
                                                  "benign", "/protocol/risk_category"))
    limits = dict(DEFAULT_LIMITS)
    if doc["topology"] == LOOP:
        limits["max_visits"] = LOOP_MAX_VISITS
    limits.update(doc.get("limits", {}))
    if limits["min_calls"] > limits["max_calls"]:
        problems.append(issue("protocol_invalid", f"min_calls {limits['min_calls']} exceeds "
                                                  f"max_calls {limits['max_calls']}",
                              "/protocol/limits"))
    tools, found = _resolve_tools(doc["tools"], library_tools(library))
    problems.extend(found)
    if found:  # the graph of a partial tool set would only add noise
        raise ProtocolInvalid(problems)
    graph, found = _graph(doc, tools)
    problems.extend(found)
    if problems or graph is None:
        raise ProtocolInvalid(problems)
    shield = doc.get("shield_tool") if doc["topology"] == SHIELD else None
    return Protocol(doc["id"], doc["topology"], doc["label"], doc["risk_category"],
                    {t.name: t for t in tools}, graph, limits["min_calls"], limits["max_calls"],
                    limits["max_visits"], shield, doc)


class ProtocolCache:
    """Resolved protocols keyed by their canonical JSON: records often share a protocol."""

    def __init__(self, library: str = "default", size: int = PROTOCOL_CACHE_SIZE) -> None:
        self._library = library
        self._size = size
        self._entries: OrderedDict[bytes | str, Protocol | ProtocolInvalid] = OrderedDict()

    def get(self, doc: Any) -> Protocol:
        """The resolved protocol; raises `ProtocolInvalid` (also cached) when unusable."""
        if isinstance(doc, str):
            key: bytes | str = doc
        else:
            try:
                key = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            except (TypeError, orjson.JSONEncodeError):
                raise ProtocolInvalid([issue("protocol_invalid", "protocol is not JSON data",
                                             "/protocol")]) from None
        found = self._entries.get(key)
        if found is None:
            found = self._resolve(doc)
            self._entries[key] = found
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        if isinstance(found, ProtocolInvalid):
            raise found
        return found

    def _resolve(self, doc: Any) -> Protocol | ProtocolInvalid:
        if isinstance(doc, str):
            try:
                doc = orjson.loads(doc)
            except orjson.JSONDecodeError as exc:
                return ProtocolInvalid([issue("protocol_invalid",
                                              f"protocol string is not JSON: {exc}",
                                              "/protocol")])
        try:
            return resolve_protocol(doc, self._library)
        except ProtocolInvalid as exc:
            return exc
