"""The protocol as a grammar: constrained decoding so that even small models write valid traces.

    from . import compile_grammar
    grammar = compile_grammar(protocol_doc)          # or a resolved Protocol
    grammar.text("ebnf")    # xgrammar: vLLM `structured_outputs.grammar`, SGLang `ebnf`
    grammar.text("gbnf")    # llama.cpp / llama-cpp-python `grammar`

One compiler over the validator's own protocol, graph and limits: every text the grammar
accepts validates strictly, and the canonical text of every strictly valid trace is accepted.
"""

from .options import GrammarError, GrammarLimits
from .rules import DIALECTS, Dialect
from .trace import TraceGrammar, compile_grammar, grammar_for

__all__ = [
    "DIALECTS",
    "Dialect",
    "GrammarError",
    "GrammarLimits",
    "TraceGrammar",
    "compile_grammar",
    "grammar_for",
]
