"""Evaluation rules: `val_acc >= 0.95 and val_acc >= champion.val_acc - 0.002`.

Parsed with Python's `ast` (which only parses) and walked by hand: numbers,
metric names, `champion.<metric>`, + - * /, unary minus, the six comparisons,
`and`, `or` and parentheses. Anything else is refused when the model is
declared; nothing is ever handed to eval().

A comparison that reads `champion.*` holds vacuously while there is no
champion (the first version to reach the gated alias), and says so.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

CHAMPION = "champion"
_COMPARE: dict[type, tuple[str, Callable[[float, float], bool]]] = {
    ast.Lt: ("<", operator.lt), ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge), ast.Eq: ("==", operator.eq), ast.NotEq: ("!=", operator.ne),
}
_ARITH: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
MAX_RULE = 2000
MAX_DEPTH = 32  # operators inside operators: the checker and the evaluator recurse this deep


class RuleError(ValueError):
    """A rule that cannot be accepted; the message says what is wrong and what is allowed."""


class _Missing(Exception):
    def __init__(self, name: str, champion: bool):
        self.name, self.champion = name, champion


@dataclass(frozen=True)
class Rule:
    text: str
    tree: ast.expr

    @property
    def metrics(self) -> set[str]:
        """Metric names the candidate must have logged."""
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and n.id != CHAMPION}


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str


def _check(node: ast.AST) -> None:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And | ast.Or):
        for v in node.values:
            _check_condition(v)
        return
    _check_condition(node)


def _check_condition(node: ast.AST) -> None:
    if isinstance(node, ast.BoolOp):
        _check(node)
    elif isinstance(node, ast.Compare):
        if not all(type(op) in _COMPARE for op in node.ops):
            raise RuleError("comparisons are <, <=, >, >=, == and !=")
        for part in (node.left, *node.comparators):
            _check_value(part)
    else:
        raise RuleError(f"{ast.unparse(node)!r} is not a comparison; write e.g. val_acc >= 0.95, "
                        "joined with 'and' / 'or'")


def _check_value(node: ast.AST) -> None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(
            node.value, bool):
        return
    if isinstance(node, ast.Name):
        if node.id == CHAMPION:
            raise RuleError("name a metric of the champion, e.g. champion.val_acc")
        return
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == CHAMPION:
            return
        raise RuleError(f"{ast.unparse(node)!r}: only champion.<metric> may use a dot")
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        _check_value(node.left)
        _check_value(node.right)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check_value(node.operand)
        return
    raise RuleError(f"{ast.unparse(node)!r} is not allowed; use numbers, metric names, "
                    "champion.<metric>, + - * / and parentheses")


def parse(text: str) -> Rule:
    """The rule, checked; RuleError says what is wrong."""
    if not text.strip():
        raise RuleError("the rule is empty; write e.g. val_acc >= 0.95")
    if len(text) > MAX_RULE:
        raise RuleError(f"at most {MAX_RULE} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise RuleError(f"cannot parse {text!r}: {exc.msg} at column {exc.offset}") from None
    except (RecursionError, MemoryError):
        raise RuleError(f"nested too deeply to read; at most {MAX_DEPTH} levels of operators") from None
    if _depth(tree) > MAX_DEPTH:
        raise RuleError(f"nested more than {MAX_DEPTH} levels of operators (a + b + c ... counts one level per "
                        "+); split it into fewer terms or comparisons joined with 'and'")
    _check(tree)
    return Rule(text.strip(), tree)


def _depth(tree: ast.AST) -> int:
    """How deep the tree nests, found without recursion (so a hostile rule cannot exhaust the stack)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _value(node: ast.expr, metrics: dict[str, float], champion: dict[str, float] | None) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in metrics or metrics[node.id] is None:
            raise _Missing(node.id, champion=False)
        return float(metrics[node.id])
    if isinstance(node, ast.Attribute):
        if champion is None or node.attr not in champion or champion[node.attr] is None:
            raise _Missing(node.attr, champion=True)
        return float(champion[node.attr])
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, metrics, champion), _value(node.right, metrics, champion)
        if isinstance(node.op, ast.Div) and right == 0:
            return math.nan
        return _ARITH[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        return -_value(node.operand, metrics, champion)
    raise RuleError(f"unexpected {ast.unparse(node)!r}")  # parse() let nothing else through


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _compare(node: ast.Compare, metrics: dict[str, float], champion: dict[str, float] | None,
             notes: list[str]) -> bool:
    try:
        values = [_value(p, metrics, champion) for p in (node.left, *node.comparators)]
    except _Missing as miss:
        if miss.champion and champion is None:
            notes.append(f"{ast.unparse(node)}: no champion yet, holds")
            return True
        whose = "the champion" if miss.champion else "the evaluation"
        notes.append(f"{ast.unparse(node)}: {whose} logged no {miss.name}, fails")
        return False
    ok = all(_COMPARE[type(op)][1](a, b)
             for op, a, b in zip(node.ops, values[:-1], values[1:], strict=True))
    shown = " ".join([_fmt(values[0]), *(f"{_COMPARE[type(op)][0]} {_fmt(v)}"
                                         for op, v in zip(node.ops, values[1:], strict=True))])
    notes.append(f"{ast.unparse(node)}: {shown}, {'holds' if ok else 'fails'}")
    return ok


def _condition(node: ast.expr, metrics: dict[str, float], champion: dict[str, float] | None,
               notes: list[str]) -> bool:
    if isinstance(node, ast.BoolOp):
        results = [_condition(v, metrics, champion, notes) for v in node.values]  # all, for the reason
        return all(results) if isinstance(node.op, ast.And) else any(results)
    assert isinstance(node, ast.Compare)
    return _compare(node, metrics, champion, notes)


def evaluate(rule: Rule, metrics: dict[str, float], champion: dict[str, float] | None) -> Verdict:
    """Whether `metrics` pass the rule against the champion's; the reason lists every comparison."""
    notes: list[str] = []
    passed = _condition(rule.tree, metrics, champion, notes)
    return Verdict(passed, "; ".join(notes))
