"""A small, safe expression language for baseline rules.

Rules are data; their conditions are Python-like expressions over the observation (`data`), the asset,
the rule's `params` and the knowledge tables (`k`). Only the node types and functions below exist: no
imports, no attribute access beyond dict keys and a few string/dict methods, no loops beyond
comprehensions. Expressions are parsed once at profile load so a typo fails `baseline validate`.

A site profile is input from another department, so an expression is also bounded in what it may cost
(docs/baselines.md#limits): refused at load when it nests too deep, calls an unknown function or holds a
regular expression that backtracks catastrophically; every evaluation runs under one step budget that also
counts the items and characters it builds or scans; a regular-expression match has a time limit.
"""

from __future__ import annotations

import ast
import datetime as dt
import operator
import re
from collections.abc import Callable, Collection
from functools import lru_cache
from re import _constants as sre_c  # the stdlib's own regex parser and opcodes: a pattern's tree, to refuse
from re import _parser as sre_parse  # nested repeats at load
from typing import Any

import regex  # matching with a timeout, which the stdlib's re has not

MAX_EXPR_CHARS = 2000        # an expression's text
MAX_EXPR_DEPTH = 40          # nesting of its parsed tree (the built-in rules reach 18)
EVAL_BUDGET = 200_000        # steps per evaluation: 1 per node visited, +1 per item or character built or scanned
MAX_INT_BITS = 128           # a product beyond this is refused (ports, days and byte counts are far below)
MAX_FORMAT_WIDTH = 100       # field width or precision in '%' formatting
MAX_REGEX_CHARS = 1000       # a regular expression's text
MAX_REGEX_REPEAT = 16        # a repeat bounded at most this many times may hold a repeat or an alternation
MAX_REGEX_SIZE = 10_000      # items in a regular expression with its bounded repeats written out
REGEX_TIMEOUT = 0.5          # seconds per regular-expression match


class ExprError(Exception):
    pass


class ExprRefused(ExprError):
    """The expression itself is at fault: over its budget or a size limit, or a dangerous regular expression.
    Never one observation's fault, so evaluation stops (exit 2) rather than call the rule not assessed."""


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


def check_regex(pattern: Any) -> None:
    """Refuse a pattern that can backtrack exponentially: a repeat (unbounded, or more than MAX_REGEX_REPEAT
    times) around a part that itself repeats a variable number of times or alternates, as in (a+)+ or (a|aa)*.
    A possessive repeat or an atomic group never backtracks into itself and is allowed. Refuse one that is
    huge once its bounded repeats are written out, too. Matching is time-limited as well: this catches at
    load what it can, REGEX_TIMEOUT the rest."""
    if not isinstance(pattern, str):
        raise ExprRefused(f"a regular expression must be a string, not {type(pattern).__name__}")
    _checked_regex(pattern)


@lru_cache(maxsize=512)
def _checked_regex(pattern: str) -> None:
    shown = f"{pattern[:40]!r}"
    if len(pattern) > MAX_REGEX_CHARS:
        raise ExprRefused(f"regular expression longer than {MAX_REGEX_CHARS} characters")
    try:
        _, size = _regex_walk(sre_parse.parse(pattern), shown)
    except (re.error, OverflowError) as e:
        raise ExprRefused(f"invalid regular expression {shown}: {e}") from None
    except RecursionError:
        raise ExprRefused(f"regular expression {shown} nests too deep") from None
    if size > MAX_REGEX_SIZE:
        # the regex module writes bounded repeats out in full: (?:(?:a{100}){100}){100} takes gigabytes
        raise ExprRefused(f"regular expression {shown} stands for more than {MAX_REGEX_SIZE} items once its "
                          "repeats are counted")
    try:
        regex.compile(pattern)
    except (regex.error, OverflowError) as e:
        raise ExprRefused(f"invalid regular expression {shown}: {e}") from None


def _regex_walk(items: Any, shown: str) -> tuple[bool, int]:
    """(can these pattern items match in more than one way - a variable repeat or an alternation -, their size
    with every bounded repeat written out)."""
    choice, size = False, 0
    for op, av in items:
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
            low, high, sub = av
            inner, n = _regex_walk(sub, shown)
            unbounded = high is sre_c.MAXREPEAT
            if op is not sre_c.POSSESSIVE_REPEAT:      # a possessive repeat never backtracks into itself
                if inner and (unbounded or high > MAX_REGEX_REPEAT):
                    raise ExprRefused(f"regular expression {shown} repeats a part that itself repeats or "
                                      "alternates (catastrophic backtracking); use a possessive repeat (a++) or "
                                      "an atomic group (?>...)")
                choice = choice or inner or low != high
            size += n * (max(low, 1) if unbounded else max(high, 1))
        elif op is sre_c.BRANCH:
            for sub in av[1]:
                size += _regex_walk(sub, shown)[1]
            choice = True
        elif op in (sre_c.SUBPATTERN, sre_c.ASSERT, sre_c.ASSERT_NOT, sre_c.ATOMIC_GROUP):
            inner, n = _regex_walk(av if op is sre_c.ATOMIC_GROUP else av[-1], shown)
            # no backtracking into an atomic group: no choice seen from outside
            choice = choice or (inner and op is not sre_c.ATOMIC_GROUP)
            size += n
        elif op is sre_c.GROUPREF_EXISTS:
            for sub in av[1:]:
                if sub is not None:
                    inner, n = _regex_walk(sub, shown)
                    choice, size = choice or inner, size + n
        else:
            size += 1
    return choice, size


def _matches(pattern: Any, s: Any) -> bool:
    check_regex(pattern)
    try:
        return regex.search(pattern, str(s or ""), timeout=REGEX_TIMEOUT) is not None
    except TimeoutError:
        raise ExprRefused(f"regular expression {pattern[:40]!r} ran longer than {REGEX_TIMEOUT} s") from None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "any": any, "all": all, "sorted": sorted, "set": set, "list": list, "min": min, "max": max,
    "int": int, "str": str, "float": float, "bool": bool, "abs": abs, "sum": lambda items: sum(items),
    "intersect": lambda a, b: sorted(set(a or ()) & set(b or ())),
    "version_lt": _version_lt,
    "matches": _matches,
    "days_until": _days_until,
    "hours_since": _hours_since,
    "lower": lambda s: str(s).lower(),
}
_METHODS = {"get", "startswith", "endswith", "lower", "upper", "split", "strip", "keys", "values", "items", "count"}
_CHEAP_METHODS = {"get", "keys", "values", "items"}      # O(1) whatever the size of the dict

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
           ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.BinOp, ast.Compare,
            ast.Name, ast.Load, ast.Store, ast.Attribute, ast.Subscript, ast.Slice, ast.Constant, ast.List,
            ast.Tuple, ast.Set, ast.Dict, ast.Call, ast.IfExp, ast.ListComp, ast.SetComp, ast.GeneratorExp,
            ast.comprehension, *_BINOPS, *_CMPOPS)
# a '%' conversion: its field width and precision, either of which may be '*' (taken from the arguments)
_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


@lru_cache(maxsize=4096)
def compile_expr(text: str) -> ast.Expression:
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        if not isinstance(e, SyntaxError):
            raise ExprError(f"cannot parse {text[:40]!r}") from None
        raise ExprError(f"syntax error in {text!r}: {e.msg}") from None
    if _depth(tree) > MAX_EXPR_DEPTH:
        raise ExprRefused(f"expression nests deeper than {MAX_EXPR_DEPTH} levels: {text[:40]!r}")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExprError(f"{type(node).__name__} is not allowed in rule expressions: {text!r}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (str, int, float, type(None))):
            raise ExprError(f"{type(node.value).__name__} constants are not allowed: {text[:60]!r}")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExprError(f"private attribute in {text!r}")
        if isinstance(node, ast.comprehension) and (len(node.ifs) > 3 or node.is_async):
            raise ExprError(f"comprehension too complex in {text!r}")
        if isinstance(node, ast.Call):
            _check_call(node, text)
    _fold_constants(tree)
    return tree


def _depth(tree: ast.AST) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((c, d + 1) for c in ast.iter_child_nodes(node))
    return deepest


def _check_call(node: ast.Call, text: str) -> None:
    """Only the listed functions and methods exist: say so at load rather than on the first observation."""
    f = node.func
    if isinstance(f, ast.Name) and f.id not in FUNCTIONS:
        raise ExprError(f"unknown function {f.id!r} in {text!r}")
    if not isinstance(f, (ast.Name, ast.Attribute)) or (isinstance(f, ast.Attribute) and f.attr not in _METHODS):
        raise ExprError(f"only listed functions can be called: {text[:60]!r}")
    if isinstance(f, ast.Name) and f.id == "matches" and node.args and isinstance(node.args[0], ast.Constant):
        check_regex(node.args[0].value)


def _reads_names(node: ast.AST, callees: set[int]) -> bool:
    return any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in callees
               for n in ast.walk(node))


def regex_params(text: str) -> list[str]:
    """The params a `matches(...)` in this expression takes its pattern from: `params.NAME`, or a name a
    comprehension binds over `params.NAME`. The profile's loader checks their values, known at load."""
    tree = compile_expr(text)
    bound = {node.target.id: name for node in ast.walk(tree)
             if isinstance(node, ast.comprehension) and isinstance(node.target, ast.Name)
             and (name := _param_name(node.iter))}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "matches" and node.args:
            arg = node.args[0]
            name = _param_name(arg) or (bound.get(arg.id) if isinstance(arg, ast.Name) else None)
            if name:
                out.append(name)
    return out


def _param_name(node: ast.AST) -> str | None:
    if not (isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.value, ast.Name)
            and node.value.id == "params"):
        return None
    if isinstance(node, ast.Attribute):
        return node.attr
    key = node.slice
    return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None


def _fold_constants(tree: ast.Expression) -> None:
    """Evaluate, once at load and under one budget, each largest part that reads no name: a part such as
    "'%0999999999d' % 1" is refused by `baseline validate`, not on the first observation. Other errors
    (1/0) are left to evaluation, which reports them as before."""
    ev = _Eval({})
    callees = {id(c.func) for c in ast.walk(tree) if isinstance(c, ast.Call)}     # function names read no data
    todo: list[ast.AST] = [tree.body]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.expr) and not isinstance(node, (ast.Constant, ast.Name)) and not _reads_names(node, callees):
            try:
                ev.visit(node)
            except ExprRefused:
                raise
            except (ExprError, KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, AttributeError,
                    OverflowError):
                pass
            continue
        todo.extend(ast.iter_child_nodes(node))


def evaluate(text: str, names: dict[str, Any]) -> Any:
    tree = compile_expr(text)
    try:
        return _Eval(names).visit(tree.body)
    except ExprRefused as e:
        raise ExprRefused(f"{e}: {text[:60]!r}") from None
    except ExprError:
        raise
    except (KeyError, IndexError) as e:
        raise ExprError(f"missing field {e} in {text!r}") from None
    except MemoryError:
        raise ExprRefused(f"out of memory: {text[:60]!r}") from None
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError, RecursionError) as e:
        raise ExprError(f"{type(e).__name__} in {text!r}: {e}") from None


def _size(value: Any) -> int:
    """Items or characters in a value, one level deep: what an operation on it walks."""
    return len(value) if isinstance(value, Collection) else 0


def _weight(value: Any, limit: int) -> int:
    """Items and characters in a value, all levels deep (what str() of it would write), counted up to limit:
    a list holding one list ten thousand times is small to build and huge to print or sort."""
    total, stack = 0, [value]
    while stack and total <= limit:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v) + 1
        elif isinstance(v, dict):
            total += 1 + len(v)
            stack += v.keys()
            stack += v.values()
        elif isinstance(v, Collection):
            total += 1 + len(v)
            stack += v
        elif isinstance(v, int):
            total += 1 + v.bit_length() // 3            # its decimal digits
        else:
            total += 1
    return total


class _Eval:
    def __init__(self, names: dict[str, Any]) -> None:
        self.scopes: list[dict[str, Any]] = [names]
        self.left = EVAL_BUDGET

    def charge(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise ExprRefused(f"over the evaluation budget of {EVAL_BUDGET} steps")

    def built(self, value: Any) -> Any:
        """A value the expression made: its items or characters count against the budget."""
        self.charge(_size(value))
        return value

    def visit(self, node: ast.AST) -> Any:
        self.charge(1)
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
        a, b = self.visit(n.left), self.visit(n.right)
        if isinstance(n.op, ast.Mult):
            self._check_product(a, b)
        elif isinstance(n.op, ast.Mod) and isinstance(a, (str, bytes)):     # bytes: from a YAML !!binary param
            self._check_format(a if isinstance(a, str) else a.decode("latin-1"), b)
        return self.built(_BINOPS[type(n.op)](a, b))

    def _check_product(self, a: Any, b: Any) -> None:
        """Refused before it is built: a repeated string or list over the budget, or a product over MAX_INT_BITS."""
        for seq, times in ((a, b), (b, a)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int):
                self.charge(len(seq) * max(times, 0))
        if (isinstance(a, int) and isinstance(b, int)
                and a.bit_length() + b.bit_length() > MAX_INT_BITS):
            raise ExprRefused(f"a product of more than {MAX_INT_BITS} bits")

    def _check_format(self, fmt: str, args: Any) -> None:
        """'%' formatting writes its field widths and its arguments: both are bounded before it runs."""
        for spec in _FORMAT_SPEC.finditer(fmt):
            for width in spec.groups():
                if width == "*" or (width and (len(width) > 3 or int(width) > MAX_FORMAT_WIDTH)):
                    raise ExprRefused(f"a '%' field width or precision over {MAX_FORMAT_WIDTH} "
                                      f"(or '*') in {fmt[:40]!r}")
        self.charge(_weight(args, self.left))

    def v_Compare(self, n: ast.Compare) -> Any:
        left = self.visit(n.left)
        for op, comp in zip(n.ops, n.comparators, strict=True):
            right = self.visit(comp)
            # what the comparison walks: a membership test in a dict or set only hashes the left side
            hashed = isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (dict, set, frozenset))
            self.charge(_size(left) + (0 if hashed else _size(right)))
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
            return self.built(
                base[slice(*(None if x is None else self.visit(x) for x in (s.lower, s.upper, s.step)))])
        return base[self.visit(n.slice)]

    def v_Call(self, n: ast.Call) -> Any:
        if n.keywords:
            raise ExprError("keyword arguments are not allowed")
        fn = self.visit(n.func)
        name = getattr(fn, "__name__", "")
        if not (fn in FUNCTIONS.values() or name in _METHODS):
            raise ExprError("only listed functions can be called")
        args = [self.visit(a) for a in n.args]
        # what the call walks: a function its arguments, all levels deep (str, sorted, max ...); a method the
        # string or list it is called on
        if fn is not len:
            for a in args:
                self.charge(_weight(a, self.left))
        if name in _METHODS and name not in _CHEAP_METHODS:
            self.charge(_size(getattr(fn, "__self__", None)))
        return self.built(fn(*args))

    def _comp(self, n: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> list[Any]:
        if len(n.generators) != 1:
            raise ExprError("one 'for' per comprehension")
        gen = n.generators[0]
        out = []
        for item in self.visit(gen.iter):
            self.charge(1)
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
        return self.built(self._comp(n))

    def v_GeneratorExp(self, n: ast.GeneratorExp) -> Any:
        return self.built(self._comp(n))

    def v_SetComp(self, n: ast.SetComp) -> Any:
        return self.built(set(self._comp(n)))


def _bind(target: ast.AST, value: Any, scope: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        scope[target.id] = value
    elif isinstance(target, ast.Tuple):
        for t, v in zip(target.elts, value, strict=True):
            _bind(t, v, scope)
    else:
        raise ExprError("comprehension targets must be names")
