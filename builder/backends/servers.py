"""Which kind of server is behind an endpoint: it decides how a grammar or a JSON Schema is sent.

Every server spells constrained decoding its own way (`validation.grammar.requests`): vLLM takes
a grammar as `structured_outputs.grammar` (EBNF), SGLang as `ebnf`, llama.cpp and
llama-cpp-python as `grammar` (GBNF); llama-cpp-python wants a JSON Schema as `json_object` +
`schema`, the others as `json_schema`; OpenAI takes no grammar. A server that does not know a
field ignores it, so the kind must be known, not guessed. In this order:

1. the role's `server` setting (anything but `auto`);
2. the `owned_by` of the role's model in `GET /models`, for the values these servers are known
   to use for themselves (`OWNED_BY`: vLLM `vllm`, SGLang `sglang`, llama.cpp `llamacpp`,
   llama-cpp-python `me`) — a proxy in front of them (LiteLLM, say) may say otherwise;
   `api.openai.com` is OpenAI whatever it says;
3. otherwise, for a role that asks for a grammar, the preflight's probe: each grammar field in
   `PROBE_ORDER` is tried until the server enforces one (`preflight`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...validation.grammar.requests import SERVERS

AUTO = "auto"
#: The `server` setting's values: `auto` (detect), or a kind `grammar.requests` knows.
SERVER_CHOICES = (AUTO, *SERVERS)
#: `owned_by` values a server kind uses for its own models in `GET /models`.
OWNED_BY: Mapping[str, str] = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp",
                               "me": "llama-cpp-python"}
#: Grammar fields tried, in this order, on a server of unknown kind (llama-cpp-python takes
#: llama.cpp's `grammar` field).
PROBE_ORDER = ("vllm", "llama.cpp", "sglang")
OPENAI_HOSTS = ("https://api.openai.com/",)


def detect(model: str, base_urls: Sequence[str],
           listed: Mapping[str, Mapping[str, str] | None]) -> tuple[str | None, str]:
    """(server kind, how it was found) from the endpoints' model listings; (None, "") when they
    do not say. The first replica that names a known kind decides."""
    for url in base_urls:
        if url.startswith(OPENAI_HOSTS):
            return "openai", "base URL"
        owner = (listed.get(url) or {}).get(model, "")
        if owner in OWNED_BY:
            return OWNED_BY[owner], f"owned_by {owner!r}"
    return None, ""
