"""OData query options evaluated over in-memory rows, shared by both simulators.

`$filter` is parsed by the odata-query package (a real OData grammar) and evaluated here against
plain dict rows; `$orderby` and `$select` are small enough to do by hand.
"""

from __future__ import annotations

import datetime as dt
from functools import cmp_to_key, lru_cache
from typing import Any, Callable

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser


class QueryError(ValueError):
    """A query option the server cannot parse or that names an unknown property."""


class UnknownProperty(QueryError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


Resolver = Callable[[dict, str], Any]
Predicate = Callable[[dict], bool]


def _default_resolver(row: dict, name: str) -> Any:
    if name not in row:
        raise UnknownProperty(name)
    return row[name]


class _Lexer(ODataLexer):
    """odata-query's lexer, except that `any` and `all` are the lambda operators only before their parenthesis:
    its own takes the start of a property such as Allow_Updating_Defaults for the operator, which the services'
    parsers do not."""

    tokens = ODataLexer.tokens

    @_(r"any(?=\s*\()")  # noqa: F821 (sly's decorator, defined in the class body)
    def ANY(self, t):
        t.value = ast.Any()
        return t

    @_(r"all(?=\s*\()")  # noqa: F821
    def ALL(self, t):
        t.value = ast.All()
        return t


@lru_cache(maxsize=64)
def parse_filter(text: str):
    """The $filter's syntax tree; cached, as a request checks and evaluates the same text several times
    (the trees are never changed)."""
    try:
        return ODataParser().parse(_Lexer().tokenize(text))
    except (ODataException, Exception) as exc:  # sly raises plain exceptions on some inputs
        raise QueryError(f"Syntax error in $filter '{text}': {exc}") from None


def compile_filter(text: str | None, *, resolver: Resolver = _default_resolver, case_insensitive: bool = True,
                   known: Callable[[str], bool] | None = None, functions: frozenset[str] | None = None) -> Predicate:
    """Turn a $filter expression into a predicate. `known` checks property names up front; `functions`
    limits the functions the service takes (None: every one evaluated here)."""
    if not text or not text.strip():
        return lambda row: True
    tree = parse_filter(text)
    if known is not None:
        for name in _identifiers(tree):
            if not known(name):
                raise UnknownProperty(name)
    if functions is not None:
        for name in _calls(tree):
            if name.lower() not in functions:
                raise QueryError(f"The function '{name}' is not supported in $filter.")
    evaluator = _Evaluator(resolver, case_insensitive)
    return lambda row: bool(evaluator.eval(tree, row))


def _nodes(node):
    """The expression and everything in it (a call's arguments, not its name)."""
    yield node
    children = node.args if isinstance(node, ast.Call) else [getattr(node, a, None)
                                                              for a in ("left", "right", "operand")]
    for child in children:
        if child is not None:
            yield from _nodes(child)


def _identifiers(node) -> list[str]:
    return [n.name for n in _nodes(node) if isinstance(n, ast.Identifier)]


def _calls(node) -> list[str]:
    return [n.func.name for n in _nodes(node) if isinstance(n, ast.Call)]


def literal_value(node) -> Any:
    if isinstance(node, ast.Null):
        return None
    if isinstance(node, ast.DateTime):
        value = dt.datetime.fromisoformat(node.val.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(node, ast.Date):
        return dt.date.fromisoformat(node.val)
    if isinstance(node, ast.GUID):
        return node.val.lower()
    if isinstance(node, ast.List):
        return [literal_value(item) for item in node.val]
    return node.py_val


def _norm(value: Any, fold: bool) -> Any:
    if isinstance(value, str) and fold:
        return value.casefold()
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _compare(op, left: Any, right: Any, fold: bool) -> bool:
    if isinstance(op, ast.In):
        return any(_compare(ast.Eq(), left, item, fold) for item in right)
    left, right = _norm(left, fold), _norm(right, fold)
    if isinstance(left, dt.datetime) and isinstance(right, dt.date) and not isinstance(right, dt.datetime):
        left = left.date()
    if isinstance(left, dt.date) and not isinstance(left, dt.datetime) and isinstance(right, dt.datetime):
        right = right.date()
    if isinstance(op, ast.Eq):
        return left == right
    if isinstance(op, ast.NotEq):
        return left != right
    if left is None or right is None:
        return False  # ordering against null is false in OData
    try:
        if isinstance(op, ast.Lt):
            return left < right
        if isinstance(op, ast.LtE):
            return left <= right
        if isinstance(op, ast.Gt):
            return left > right
        if isinstance(op, ast.GtE):
            return left >= right
    except TypeError:
        raise QueryError(f"Cannot compare {left!r} with {right!r}") from None
    raise QueryError(f"Unsupported comparison {type(op).__name__}")


class _Evaluator:
    def __init__(self, resolver: Resolver, fold: bool):
        self.resolver = resolver
        self.fold = fold
        self._sets: dict[int, frozenset | None] = {}  # per `in` list: its values normalised, when all hashable
        self._literals: dict[int, Any] = {}  # per literal: its value, converted once rather than per row

    def _in_set(self, node) -> frozenset | None:
        found = self._sets.get(id(node), False)
        if found is False:
            values = [_norm(value, self.fold) for value in literal_value(node)]
            plain = all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values)
            found = self._sets[id(node)] = frozenset(values) if plain else None
        return found

    def eval(self, node, row: dict) -> Any:
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return self.eval(node.left, row) and self.eval(node.right, row)
            return self.eval(node.left, row) or self.eval(node.right, row)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return not self.eval(node.operand, row)
            return -self.eval(node.operand, row)
        if isinstance(node, ast.Compare):
            left = self.eval(node.left, row)
            if isinstance(node.comparator, ast.In) and isinstance(node.right, ast.List):
                members = self._in_set(node.right)  # a long `in` list: one set lookup, not a scan per row
                if members is not None and isinstance(left, (str, int, float)):
                    return _norm(left, self.fold) in members
            return _compare(node.comparator, left, self.eval(node.right, row), self.fold)
        if isinstance(node, ast.Identifier):
            return self.resolver(row, node.name)
        if isinstance(node, ast.Call):
            return self.call(node.func.name.lower(), [self.eval(arg, row) for arg in node.args])
        if isinstance(node, ast._Literal):
            if id(node) not in self._literals:
                self._literals[id(node)] = literal_value(node)
            return self._literals[id(node)]
        raise QueryError(f"Unsupported expression {type(node).__name__}")

    def call(self, name: str, args: list) -> Any:
        def text(value):
            value = "" if value is None else str(value)
            return value.casefold() if self.fold else value

        if name == "contains":
            return text(args[1]) in text(args[0])
        if name == "startswith":
            return text(args[0]).startswith(text(args[1]))
        if name == "endswith":
            return text(args[0]).endswith(text(args[1]))
        if name == "tolower":
            return (args[0] or "").lower()
        if name == "toupper":
            return (args[0] or "").upper()
        if name == "trim":
            return (args[0] or "").strip()
        if name == "length":
            return len(args[0] or "")
        if name == "indexof":
            return text(args[0]).find(text(args[1]))
        if name == "substring":
            return (args[0] or "")[args[1]: (args[1] + args[2]) if len(args) > 2 else None]
        if name == "concat":
            return f"{args[0] or ''}{args[1] or ''}"
        raise QueryError(f"Unknown function '{name}'")


def parse_orderby(text: str | None) -> list[tuple[str, bool]]:
    """`name asc,createdon desc` -> [("name", False), ("createdon", True)]."""
    order = []
    for part in (text or "").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise QueryError(f"Syntax error in $orderby '{text}'")
        order.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return order


def sort_rows(rows: list[dict], order: list[tuple[str, bool]], resolver: Resolver = _default_resolver,
              fold: bool = True) -> list[dict]:
    """Sort by the $orderby keys; nulls sort first, as SQL Server does."""

    def cmp(a: dict, b: dict) -> int:
        for name, desc in order:
            left, right = _norm(resolver(a, name), fold), _norm(resolver(b, name), fold)
            if left == right:
                continue
            if left is None:
                result = -1
            elif right is None:
                result = 1
            else:
                result = -1 if left < right else 1
            return -result if desc else result
        return 0

    return sorted(rows, key=cmp_to_key(cmp))


def split_select(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]
