"""A small, safe expression language for baseline rules.

Rules are data; their conditions are Python-like expressions over the observation (`data`), the asset,
the rule's `params` and the knowledge tables (`k`). Only the node types and functions below exist: no
imports, no attribute access beyond dict keys and a few string/dict methods, no loops beyond
comprehensions. Expressions are parsed once at profile load so a typo fails `baseline validate`.
"""

from __future__ import annotations

import ast
import datetime as dt
import operator
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any


class ExprError(Exception):
    pass


class Namespace(dict):
    """A dict whose keys can also be read as attributes in expressions (`data.versions`)."""


def _version_tuple(v: Any) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\-_p]", str(v)) if p != "")


def _version_lt(a: Any, b: Any) -> bool:
    """Numeric-aware version comparison: '3.6.2' < '3.6.10'."""
    ta, tb = _version_tuple(a), _version_tuple(b)
    try:
        return ta < tb
    except TypeError:
        return str(a) < str(b)


def _days_until(iso: str | None, now: str | None = None) -> float | None:
    if not iso:
        return None
    t = dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    n = dt.datetime.fromisoformat(now.replace("Z", "+00:00")) if now else dt.datetime.now(dt.UTC)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    if n.tzinfo is None:
        n = n.replace(tzinfo=dt.UTC)
    return (t - n).total_seconds() / 86400


def _hours_since(iso: str | None, now: str | None = None) -> float | None:
    d = _days_until(iso, now)
    return None if d is None else -d * 24


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "any": any, "all": all, "sorted": sorted, "set": set, "list": list, "min": min, "max": max,
    "int": int, "str": str, "float": float, "bool": bool, "abs": abs, "sum": sum,
    "intersect": lambda a, b: sorted(set(a or ()) & set(b or ())),
    "version_lt": _version_lt,
    "matches": lambda pattern, s: bool(re.search(pattern, str(s or ""))),
    "days_until": _days_until,
    "hours_since": _hours_since,
    "lower": lambda s: str(s).lower(),
}
_METHODS = {"get", "startswith", "endswith", "lower", "upper", "split", "strip", "keys", "values", "items", "count"}
def _safe_mul(a: Any, b: Any) -> Any:
    """Multiplication, refusing to build huge strings or lists from a rule expression."""
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > 10000:
            raise ExprError("sequence repetition too large")
    if isinstance(a, int) and isinstance(b, int) and max(abs(a), abs(b)) > 10**12:
        raise ExprError("number too large")
    return operator.mul(a, b)


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: _safe_mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
           ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.BinOp, ast.Compare,
            ast.Name, ast.Load, ast.Store, ast.Attribute, ast.Subscript, ast.Slice, ast.Constant, ast.List,
            ast.Tuple, ast.Set, ast.Dict, ast.Call, ast.IfExp, ast.ListComp, ast.SetComp, ast.GeneratorExp,
            ast.comprehension, *_BINOPS, *_CMPOPS)


@lru_cache(maxsize=4096)
def compile_expr(text: str) -> ast.Expression:
    if len(text) > 2000:
        raise ExprError("expression longer than 2000 characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        if not isinstance(e, SyntaxError):
            raise ExprError(f"cannot parse {text[:40]!r}") from None
        raise ExprError(f"syntax error in {text!r}: {e.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExprError(f"{type(node).__name__} is not allowed in rule expressions: {text!r}")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExprError(f"private attribute in {text!r}")
        if isinstance(node, ast.comprehension) and (len(node.ifs) > 3 or node.is_async):
            raise ExprError(f"comprehension too complex in {text!r}")
    return tree


def evaluate(text: str, names: dict[str, Any]) -> Any:
    tree = compile_expr(text)
    try:
        return _Eval(names).visit(tree.body)
    except ExprError:
        raise
    except (KeyError, IndexError) as e:
        raise ExprError(f"missing field {e} in {text!r}") from None
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError, RecursionError,
            MemoryError) as e:
        raise ExprError(f"{type(e).__name__} in {text!r}: {e}") from None


class _Eval:
    def __init__(self, names: dict[str, Any]) -> None:
        self.scopes: list[dict[str, Any]] = [names]

    def visit(self, node: ast.AST) -> Any:
        return getattr(self, "v_" + type(node).__name__)(node)

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in FUNCTIONS:
            return FUNCTIONS[name]
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        raise ExprError(f"unknown name {name!r}")

    def v_Name(self, n: ast.Name) -> Any:
        return self.lookup(n.id)

    def v_Constant(self, n: ast.Constant) -> Any:
        return n.value

    def v_List(self, n: ast.List) -> Any:
        return [self.visit(e) for e in n.elts]

    def v_Tuple(self, n: ast.Tuple) -> Any:
        return tuple(self.visit(e) for e in n.elts)

    def v_Set(self, n: ast.Set) -> Any:
        return {self.visit(e) for e in n.elts}

    def v_Dict(self, n: ast.Dict) -> Any:
        return {self.visit(k): self.visit(v) for k, v in zip(n.keys, n.values, strict=True)}

    def v_BoolOp(self, n: ast.BoolOp) -> Any:
        if isinstance(n.op, ast.And):
            result: Any = True
            for v in n.values:
                result = self.visit(v)
                if not result:
                    return result
            return result
        result = False
        for v in n.values:
            result = self.visit(v)
            if result:
                return result
        return result

    def v_UnaryOp(self, n: ast.UnaryOp) -> Any:
        v = self.visit(n.operand)
        return (not v) if isinstance(n.op, ast.Not) else -v

    def v_BinOp(self, n: ast.BinOp) -> Any:
        return _BINOPS[type(n.op)](self.visit(n.left), self.visit(n.right))

    def v_Compare(self, n: ast.Compare) -> Any:
        left = self.visit(n.left)
        for op, comp in zip(n.ops, n.comparators, strict=True):
            right = self.visit(comp)
            if left is None or right is None:
                if not isinstance(op, (ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In, ast.NotIn)):
                    return False  # an absent value satisfies no ordering threshold
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True

    def v_IfExp(self, n: ast.IfExp) -> Any:
        return self.visit(n.body) if self.visit(n.test) else self.visit(n.orelse)

    def v_Attribute(self, n: ast.Attribute) -> Any:
        base = self.visit(n.value)
        if isinstance(base, dict):
            if n.attr in base:
                return base[n.attr]
            if n.attr in _METHODS:
                return getattr(base, n.attr)
            raise ExprError(f"missing field {n.attr!r}")
        if n.attr in _METHODS and isinstance(base, (str, list)):
            return getattr(base, n.attr)
        raise ExprError(f"cannot read .{n.attr} of {type(base).__name__}")

    def v_Subscript(self, n: ast.Subscript) -> Any:
        base = self.visit(n.value)
        if isinstance(n.slice, ast.Slice):
            s = n.slice
            return base[slice(*(None if x is None else self.visit(x) for x in (s.lower, s.upper, s.step)))]
        return base[self.visit(n.slice)]

    def v_Call(self, n: ast.Call) -> Any:
        if n.keywords:
            raise ExprError("keyword arguments are not allowed")
        fn = self.visit(n.func)
        if not (fn in FUNCTIONS.values() or getattr(fn, "__name__", "") in _METHODS):
            raise ExprError("only listed functions can be called")
        return fn(*(self.visit(a) for a in n.args))

    def _comp(self, n: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> list[Any]:
        if len(n.generators) != 1:
            raise ExprError("one 'for' per comprehension")
        gen = n.generators[0]
        out = []
        for item in self.visit(gen.iter):
            scope: dict[str, Any] = {}
            _bind(gen.target, item, scope)
            self.scopes.append(scope)
            try:
                if all(self.visit(c) for c in gen.ifs):
                    out.append(self.visit(n.elt))
            finally:
                self.scopes.pop()
        return out

    def v_ListComp(self, n: ast.ListComp) -> Any:
        return self._comp(n)

    def v_GeneratorExp(self, n: ast.GeneratorExp) -> Any:
        return self._comp(n)

    def v_SetComp(self, n: ast.SetComp) -> Any:
        return set(self._comp(n))


def _bind(target: ast.AST, value: Any, scope: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        scope[target.id] = value
    elif isinstance(target, ast.Tuple):
        for t, v in zip(target.elts, value, strict=True):
            _bind(t, v, scope)
    else:
        raise ExprError("comprehension targets must be names")
