"""The run search filter: `val_acc > 0.95 and params.lr < 0.01 and tags.team = 'vision'`.

Grammar (words are case-insensitive):

    filter  := clause ("and" clause)*
    clause  := name op literal | name "like" string | name "in" "(" literal ("," literal)* ")"
    name    := [prefix "."] word | [prefix "."] `any text`
    prefix  := metrics | params | tags | attributes   (singular forms too)
    op      := = | == | != | <> | < | <= | > | >=

A name without a prefix is an attribute when it is one (id, team, name, state, project,
experiment, source) and a metric otherwise, so `val_acc > 0.95` reads as it says.
Metrics compare with the run's latest value; params compare as numbers when the
literal is a number, else as text; tags and attributes compare as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["metric", "param", "tag", "attr"]
Value = float | str

ATTRIBUTES = ("id", "team", "name", "state", "project", "experiment", "source")
PREFIXES: dict[str, Kind] = {
    "metrics": "metric", "metric": "metric",
    "params": "param", "param": "param",
    "tags": "tag", "tag": "tag",
    "attributes": "attr", "attribute": "attr", "attr": "attr", "run": "attr",
}
# A filter is bounded before it is read: each clause is a subquery, and the database refuses
# (with an error, not an answer) expressions past its depth and variable limits.
MAX_FILTER = 10_000  # characters
MAX_CLAUSES = 50
MAX_IN_VALUES = 500
COMPARISONS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op><=|>=|!=|==|<>|=|<|>|\(|\)|,)
    | (?P<name>(?:[A-Za-z_]\w*\.)?`[^`]+`|[A-Za-z_][\w./:-]*)
    )""",
    re.X,
)


class FilterError(ValueError):
    """The filter does not parse; the message says where and what would."""


@dataclass(frozen=True)
class Clause:
    kind: Kind
    key: str
    op: str  # =, !=, <, <=, >, >=, like, in
    value: Value | tuple[Value, ...]


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    at: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            at = len(text[:pos]) + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise FilterError(f"cannot read {text[at:at + 12]!r} at character {at + 1}; quote text "
                              "values ('adam') and backquote odd names (`my key`)")
        kind = m.lastgroup or ""
        out.append(_Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def _name(token: _Token) -> tuple[Kind, str]:
    text = token.text
    prefix, dot, rest = text.partition(".")
    if dot and prefix.lower() in PREFIXES and rest:
        kind, key = PREFIXES[prefix.lower()], rest
    elif text.lower() in ATTRIBUTES:
        kind, key = "attr", text.lower()
    else:
        kind, key = "metric", text
    key = key[1:-1] if key.startswith("`") and key.endswith("`") else key
    if kind == "attr":
        key = key.lower()
        if key not in ATTRIBUTES:
            raise FilterError(f"{text!r} is not a run attribute; use one of {', '.join(ATTRIBUTES)}")
    return kind, key


def _literal(token: _Token) -> Value:
    if token.kind == "number":
        return float(token.text)
    if token.kind == "string":
        return re.sub(r"\\(.)", r"\1", token.text[1:-1])
    raise FilterError(f"expected a number or a quoted text value at character {token.at + 1}, "
                      f"got {token.text!r}")


class _Reader:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.i = 0

    def next(self, what: str) -> _Token:
        if self.i >= len(self.tokens):
            raise FilterError(f"the filter ends where {what} was expected")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def done(self) -> bool:
        return self.i >= len(self.tokens)


def parse_filter(text: str | None) -> list[Clause]:
    """Clauses that must all hold; FilterError with a readable message otherwise."""
    if not text or not text.strip():
        return []
    if len(text) > MAX_FILTER:
        raise FilterError(f"the filter is {len(text)} characters; at most {MAX_FILTER}")
    reader = _Reader(text)
    clauses = [_clause(reader)]
    while not reader.done():
        tok = reader.next("'and'")
        if tok.kind != "name" or tok.text.lower() != "and":
            raise FilterError(f"expected 'and' at character {tok.at + 1}, got {tok.text!r} "
                              "(clauses join with 'and'; 'or' is not supported)")
        if len(clauses) == MAX_CLAUSES:
            raise FilterError(f"at most {MAX_CLAUSES} clauses joined with 'and'; narrow the search with fewer")
        clauses.append(_clause(reader))
    return clauses


def _clause(reader: _Reader) -> Clause:
    tok = reader.next("a name (metrics.x, params.x, tags.x or an attribute)")
    if tok.kind != "name":
        raise FilterError(f"expected a name at character {tok.at + 1}, got {tok.text!r}")
    kind, key = _name(tok)
    op_tok = reader.next(f"a comparison after {tok.text!r}")
    word = op_tok.text.lower()
    if op_tok.kind == "op" and op_tok.text in COMPARISONS:
        op = COMPARISONS[op_tok.text]
        value: Value | tuple[Value, ...] = _literal(reader.next(f"a value after {op_tok.text!r}"))
    elif op_tok.kind == "name" and word == "like":
        op, value = "like", _literal(reader.next("a quoted pattern after 'like'"))
        if not isinstance(value, str):
            raise FilterError(f"'like' takes a quoted pattern such as 'res%', at character {op_tok.at + 1}")
    elif op_tok.kind == "name" and word == "in":
        op, value = "in", _list(reader)
    else:
        raise FilterError(f"expected one of = != < <= > >= like in after {tok.text!r}, "
                          f"got {op_tok.text!r} at character {op_tok.at + 1}")
    return _checked(Clause(kind, key, op, value), tok.text)


def _list(reader: _Reader) -> tuple[Value, ...]:
    if reader.next("'(' after 'in'").text != "(":
        raise FilterError("'in' takes a list in parentheses: state in ('RUNNING', 'SUCCEEDED')")
    items = [_literal(reader.next("a value in the list"))]
    while (sep := reader.next("',' or ')'")).text == ",":
        if len(items) == MAX_IN_VALUES:
            raise FilterError(f"'in' takes at most {MAX_IN_VALUES} values, at character {sep.at + 1}")
        items.append(_literal(reader.next("a value after ','")))
    if sep.text != ")":
        raise FilterError(f"expected ',' or ')' at character {sep.at + 1}, got {sep.text!r}")
    return tuple(items)


def _checked(clause: Clause, name: str) -> Clause:
    values = clause.value if isinstance(clause.value, tuple) else (clause.value,)
    if clause.kind == "metric":
        if clause.op == "like" or any(isinstance(v, str) for v in values):
            raise FilterError(f"metric {name!r} compares with numbers, e.g. {name} > 0.9")
    elif clause.kind in ("tag", "attr"):
        if clause.op in ("<", "<=", ">", ">="):
            raise FilterError(f"{name!r} is text; compare it with =, !=, like or in")
        texts = tuple(_text(v) for v in values)
        if clause.kind == "attr" and clause.key == "state":
            texts = tuple(t.upper() for t in texts)
        return Clause(clause.kind, clause.key, clause.op, texts if clause.op == "in" else texts[0])
    elif clause.op in ("<", "<=", ">", ">=") and isinstance(clause.value, str):
        raise FilterError(f"{name!r} {clause.op} needs a number; text params compare with =, != or like")
    return clause


def _text(value: Value) -> str:
    return format(value, "g") if isinstance(value, float) else value
