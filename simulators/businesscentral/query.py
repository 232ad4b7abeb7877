"""Reading a view: $filter, $orderby, $select, $top, $skip, $count and server-driven paging.

`$filter` is parsed by the shared OData core (simulators/odata.py) and checked the way Business
Central checks it first: property names must exist, `or` may only combine conditions on one field,
`not` is refused, `in` needs `$schemaversion=2.1`, a property bound to a page variable (computed per
row, like salesInvoices.remainingAmount) can be neither filtered nor sorted on, enum literals must be
member names (`'_x0020_'`), literal types must match the property's type.

Paging is keyset based: a `$skiptoken` carries the sort key and SystemId of the last row returned,
and the next page starts strictly after that position, so rows modified between two page reads are
never skipped. The filtered, sorted list of (sort key, SystemId) is cached per query and store
generation, so reading a large table page by page sorts it once.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass

from odata_query import ast

from simulators.odata import QueryError, UnknownProperty, compile_filter, parse_filter, parse_orderby, split_select

from . import errors
from .model import escape_enum
from .views import Session, View


@dataclass
class QueryOptions:
    filter: str | None = None
    select: list[str] | None = None
    orderby: list[tuple[str, bool]] | None = None
    top: int | None = None
    skip: int | None = None
    skiptoken: str | None = None
    count: bool = False
    expand: list[str] | None = None  # contained collections to inline (`$expand=salesOrderLines`)


def _non_negative(name: str, text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise errors.query_syntax(f"Invalid value '{text}' for {name}.") from None
    if value < 0:
        raise errors.query_syntax(f"Invalid value '{text}' for {name}.")
    return value


IN_SCHEMA_VERSION = "2.1"  # the `in` operator works only when the request asks for this schema version


def parse_options(view: View, args) -> QueryOptions:
    """Read and validate the system query options of a GET (args: a mapping of query parameters)."""
    options = QueryOptions(filter=args.get("$filter"), skiptoken=args.get("$skiptoken"))
    if options.filter and args.get("$schemaversion") != IN_SCHEMA_VERSION and _uses_in(options.filter):
        raise errors.in_operator()
    select = split_select(args.get("$select"))
    if select:
        for name in select:
            if name not in view.exposed_names:
                raise errors.unknown_query_property(name, view.type_name)
        options.select = list(dict.fromkeys(select))
    expand = args.get("$expand")
    if expand:
        names = [part.strip() for part in expand.split(",") if part.strip()]
        for name in names:
            if name not in view.navigations:
                raise errors.unknown_query_property(name.split("(")[0].strip(), view.type_name)
        options.expand = list(dict.fromkeys(names))
    try:
        order = parse_orderby(args.get("$orderby"))
    except QueryError as exc:
        raise errors.query_syntax(str(exc)) from None
    for name, _ in order:
        if name not in view.exposed_names:
            raise errors.unknown_query_property(name, view.type_name)
        if view.by_name[name].page_variable:
            raise errors.page_variable(name, "$orderby")
    options.orderby = order or None
    options.top = _non_negative("$top", args.get("$top"))
    options.skip = _non_negative("$skip", args.get("$skip"))
    options.count = str(args.get("$count", "")).lower() == "true"
    return options


# -- $filter ------------------------------------------------------------------------------------------

_OPERATOR_NAMES = {ast.Eq: "Equal", ast.NotEq: "NotEqual", ast.Gt: "GreaterThan", ast.GtE: "GreaterThanOrEqual",
                   ast.Lt: "LessThan", ast.LtE: "LessThanOrEqual", ast.In: "In"}
_LITERAL_EDM = {ast.String: "Edm.String", ast.Integer: "Edm.Int32", ast.Float: "Edm.Decimal",
                ast.Boolean: "Edm.Boolean", ast.Date: "Edm.Date", ast.DateTime: "Edm.DateTimeOffset",
                ast.GUID: "Edm.Guid"}
_COMPATIBLE = {
    "Edm.String": {"Edm.String"},
    "Edm.Boolean": {"Edm.Boolean"},
    "Edm.Decimal": {"Edm.Int32", "Edm.Decimal"},
    "Edm.Int32": {"Edm.Int32", "Edm.Decimal"},
    "Edm.Int64": {"Edm.Int32", "Edm.Decimal"},
    "Edm.Guid": {"Edm.Guid"},
    "Edm.Date": {"Edm.Date"},
    "Edm.DateTimeOffset": {"Edm.DateTimeOffset"},
}


def _identifiers(node) -> set[str]:
    if isinstance(node, ast.Identifier):
        return {node.name}
    found: set[str] = set()
    if isinstance(node, ast.Call):
        for arg in node.args:
            found |= _identifiers(arg)
        return found
    for attr in ("left", "right", "operand"):
        child = getattr(node, attr, None)
        if child is not None:
            found |= _identifiers(child)
    return found


def _uses_in(text: str) -> bool:
    try:
        tree = parse_filter(text)
    except QueryError:
        return False  # a syntax error is reported when the filter is compiled

    def walk(node) -> bool:
        if isinstance(node, ast.Compare) and isinstance(node.comparator, ast.In):
            return True
        return any(walk(child) for child in (getattr(node, a, None) for a in ("left", "right", "operand")) if child)
    return walk(tree)


def _check_filter(view: View, node) -> None:
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.Or) and len(_identifiers(node)) > 1:
            raise errors.or_on_distinct_fields()
        _check_filter(view, node.left)
        _check_filter(view, node.right)
    elif isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            raise errors.not_operator()
        _check_filter(view, node.operand)
    elif isinstance(node, ast.Compare):
        left, right = node.left, node.right
        if isinstance(right, ast.Identifier) and not isinstance(left, ast.Identifier):
            left, right = right, left
        if isinstance(left, ast.Identifier) and left.name in view.exposed_names:
            f = view.by_name[left.name]
            literals = right.val if isinstance(right, ast.List) else [right]
            for literal in literals:
                if isinstance(literal, ast.Null) or type(literal) not in _LITERAL_EDM:
                    continue
                edm = _LITERAL_EDM[type(literal)]
                if edm not in _COMPATIBLE.get(f.edm, {edm}):
                    raise errors.bad_request(
                        "A binary operator with incompatible types was detected. Found operand types "
                        f"'{f.edm}' and '{edm}' for operator kind '{_OPERATOR_NAMES.get(type(node.comparator), 'Equal')}'.")
                if f.type == "option" and isinstance(literal, ast.String):
                    members = {escape_enum(option).casefold() for option in f.options}
                    if literal.val.casefold() not in members:
                        raise errors.invalid_enum_literal(literal.val)


def compile_view_filter(session: Session, view: View, text: str | None):
    if not text or not text.strip():
        return None
    try:
        tree = parse_filter(text)
    except QueryError as exc:
        raise errors.query_syntax(str(exc)) from None
    for name in _identifiers(tree):
        if name not in view.exposed_names:
            raise errors.unknown_query_property(name, view.type_name)
        if view.by_name[name].page_variable:
            raise errors.page_variable(name, "$filter")
    _check_filter(view, tree)
    try:
        predicate = compile_filter(text, resolver=lambda record, name: view.comparable(session, record, name),
                                   known=lambda name: name in view.exposed_names)
    except UnknownProperty as exc:
        raise errors.unknown_query_property(exc.name, view.type_name) from None
    except QueryError as exc:
        raise errors.query_syntax(str(exc)) from None

    def safe(record):
        try:
            return predicate(record)
        except QueryError as exc:
            raise errors.query_syntax(str(exc)) from None

    return safe


# -- ordering and keyset tokens ---------------------------------------------------------------------------

def _fold(value):
    return value.casefold() if isinstance(value, str) else value


def _cmp(a, b) -> int:
    if a == b:
        return 0
    if a is None:
        return -1
    if b is None:
        return 1
    return -1 if a < b else 1


class _Position:
    """A (sort values, SystemId) pair that compares in the query's order (for bisecting a token)."""

    __slots__ = ("values", "system_id", "desc")

    def __init__(self, values: tuple, system_id: str, desc: tuple[bool, ...]):
        self.values, self.system_id, self.desc = values, system_id, desc

    def compare(self, other: "_Position") -> int:
        for a, b, desc in zip(self.values, other.values, self.desc):
            result = _cmp(a, b)
            if result:
                return -result if desc else result
        return _cmp(self.system_id, other.system_id)

    def __lt__(self, other: "_Position") -> bool:
        return self.compare(other) < 0


def _encode_value(value):
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    return value


def _decode_value(value):
    if isinstance(value, dict):
        if "$dt" in value:
            return dt.datetime.fromisoformat(value["$dt"])
        if "$d" in value:
            return dt.date.fromisoformat(value["$d"])
    return value


def encode_token(order: list[str], position: _Position) -> str:
    payload = json.dumps([order, [_encode_value(v) for v in position.values], position.system_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str, order: list[str], desc: tuple[bool, ...]) -> _Position:
    try:
        padded = token + "=" * (-len(token) % 4)
        names, values, system_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if names != order or len(values) != len(order):
            raise ValueError("token belongs to another ordering")
        return _Position(tuple(_decode_value(v) for v in values), system_id, desc)
    except Exception:
        raise errors.bad_request(f"The skip token value '{token}' is not valid.") from None


@dataclass
class _Sorted:
    positions: list[_Position]
    system_ids: list[str]


class QueryCache:
    """Filtered and sorted SystemIds per (view, company, $filter, $orderby, store generation)."""

    def __init__(self, size: int = 32):
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, key):
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key, value) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


@dataclass
class Page:
    records: list[dict]
    count: int | None  # rows matching the filter, counted only when asked ($count)
    next_token: str | None
    next_top: int | None
    examined: int = 0  # rows the query looked at: its cost, whatever the machine's speed


def _sorted(session: Session, view: View, options: QueryOptions, order: list[tuple[str, bool]],
            cache: QueryCache) -> _Sorted:
    company_id = session.company.id if (session.company and view.company_scoped) else ""
    key = (view.kind, view.name, company_id, options.filter or "", tuple(order), session.store.generation)
    found = cache.get(key)
    if found is not None:
        return found
    predicate = compile_view_filter(session, view, options.filter)
    records = session.store.rows(view.table, session.company)
    if predicate is not None:
        records = [r for r in records if predicate(r)]
    names = [name for name, _ in order]
    desc = tuple(d for _, d in order)
    keyed = [(tuple(_fold(view.sortable(session, r, n)) for n in names), r["SystemId"]) for r in records]
    keyed.sort(key=lambda item: item[1])
    for index in range(len(names) - 1, -1, -1):
        keyed.sort(key=lambda item, i=index: (0, "") if item[0][i] is None else (1, item[0][i]), reverse=desc[index])
    result = _Sorted([_Position(values, sid, desc) for values, sid in keyed], [sid for _, sid in keyed])
    cache.put(key, result)
    return result


# -- indexed reads ---------------------------------------------------------------------------------------
#
# When every field of the ordering shows a stored value (a plain column or a system field), the rows come
# from the table's order index (store.OrderIndex): a page starts where the skip token bisects and walks
# forward, testing the filter, until it is full; so it costs O(page), not O(table). A filter that pins
# the SystemId or a code key to a list of values (`id in (...)`, `number eq '...'`, an `or` of `eq` on one
# of them) reads just those rows through the store's key and indexes: O(values). A filter `x ge <time>`
# on the ordering's first (ascending) field starts the walk at that time. Other orderings (on computed
# fields) sort the filtered rows once per query and store generation, cached.

class _Desc:
    """A sort key part that sorts in reverse (a descending $orderby field)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __lt__(self, other: "_Desc") -> bool:
        return other.value < self.value

    def __eq__(self, other) -> bool:
        return isinstance(other, _Desc) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def _part(value, desc: bool):
    """One field's place in a sort key: blanks (None) first ascending, last descending, as `_Position` has it."""
    part = (0,) if value is None else (1, value)
    return _Desc(part) if desc else part


def _stored(f) -> str | None:
    """The record key a view field shows as it is, or None when the field is computed."""
    if f.plain:
        return f.column_name
    return getattr(f, "system", None)


def _order_index(session: Session, view: View, order: list[tuple[str, bool]]):
    fields = [view.by_name[name] for name, _ in order]
    columns = [_stored(f) for f in fields]
    if any(column is None for column in columns):
        return None
    spec = tuple((column, f.type, f.options, desc) for column, f, (_, desc) in zip(columns, fields, order))
    steps = [(column, f.sortable, desc) for column, f, (_, desc) in zip(columns, fields, order)]

    def key(record: dict) -> tuple:
        return tuple(_part(_fold(sortable(record[column])), desc) for column, sortable, desc in steps)

    return session.store.container(view.table, session.company).order(spec, key)


def _conjuncts(node) -> list:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _pinned(node) -> tuple[str, list] | None:
    """(field, literals) when the condition is `field eq v`, `field in (...)` or an `or` of `eq` on one field."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        left, right = _pinned(node.left), _pinned(node.right)
        if left and right and left[0] == right[0]:
            return left[0], left[1] + right[1]
        return None
    if isinstance(node, ast.Compare) and isinstance(node.left, ast.Identifier):
        if isinstance(node.comparator, ast.Eq):
            return node.left.name, [node.right]
        if isinstance(node.comparator, ast.In) and isinstance(node.right, ast.List):
            return node.left.name, list(node.right.val)
    return None


def _lookup(session: Session, view: View, name: str, literals: list) -> list[dict] | None:
    """The rows a pinned field can hold (a superset of the matches; the filter still decides), or None
    when no key or index serves that field."""
    f = view.by_name.get(name)
    column = _stored(f) if f is not None else None
    store, table, company = session.store, view.table, session.company
    if column == "SystemId":
        values = [lit.val.lower() for lit in literals if isinstance(lit, (ast.GUID, ast.String))]
        return [r for r in (store.get(table, company, v) for v in dict.fromkeys(values)) if r is not None]
    if column is None or f.type != "code" or not all(isinstance(lit, ast.String) for lit in literals):
        return None
    values = dict.fromkeys(lit.val.strip().upper() for lit in literals)  # codes are stored upper case
    if table.key == (column,):
        return [r for r in (store.find(table, company, (v,)) for v in values) if r is not None]
    if (column,) in table.indexes:
        return [r for v in values for r in store.find_all(table, company, (column,), (v,))]
    return None


def _narrowed(session: Session, view: View, tree) -> list[dict] | None:
    best = None
    for node in _conjuncts(tree):
        pinned = _pinned(node)
        rows = _lookup(session, view, *pinned) if pinned else None
        if rows is not None and (best is None or len(rows) < len(best)):
            best = rows
    return best


def _lower_bound(view: View, tree, order: list[tuple[str, bool]]):
    """The first sort key part a `field ge|gt <literal>` on the ordering's first ascending field allows."""
    if not order or order[0][1]:
        return None
    first = view.by_name[order[0][0]]
    if first.type not in ("datetime", "code", "text", "integer", "decimal") or _stored(first) is None:
        return None
    bound = None
    for node in _conjuncts(tree):
        if (isinstance(node, ast.Compare) and isinstance(node.comparator, (ast.Gt, ast.GtE))
                and isinstance(node.left, ast.Identifier) and node.left.name == first.name):
            literal = node.right
            if first.type == "datetime" and isinstance(literal, ast.DateTime):
                value = dt.datetime.fromisoformat(literal.val.replace("Z", "+00:00"))
                bound = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
            elif first.type in ("code", "text") and isinstance(literal, ast.String):
                bound = literal.val.casefold()
            elif first.type in ("integer", "decimal") and isinstance(literal, (ast.Integer, ast.Float)):
                bound = literal.py_val
    return None if bound is None else ((_part(bound, False),),)


def run_query(session: Session, view: View, options: QueryOptions, page_size: int, cache: QueryCache) -> Page:
    order = list(options.orderby or [(name, False) for name in view.default_order])
    names = [name for name, _ in order]
    desc = tuple(d for _, d in order)
    predicate = compile_view_filter(session, view, options.filter)
    index = _order_index(session, view, order)
    if index is None:
        return _page_of_sorted(session, view, options, page_size, _sorted(session, view, options, order, cache))
    tree = parse_filter(options.filter) if predicate is not None else None
    pinned = _narrowed(session, view, tree) if tree is not None else None
    if pinned is not None:
        rows = [r for r in pinned if predicate(r)]
        keyed = sorted((index.key(r), r["SystemId"]) for r in rows)
        page = _page_of_sorted(session, view, options, page_size,
                               _Sorted([_Position(tuple(_plain(k) for k in key), sid, desc) for key, sid in keyed],
                                       [sid for _, sid in keyed]))
        page.examined = len(pinned)
        return page
    entries, table_rows = index.entries, session.store.container(view.table, session.company).rows
    if options.skiptoken:
        after = decode_token(options.skiptoken, names, desc)
        start = bisect_right(entries, (tuple(_part(v, d) for v, d in zip(after.values, desc)), after.system_id))
    else:
        bound = _lower_bound(view, tree, order) if tree is not None else None
        start = bisect_left(entries, bound) if bound is not None else 0
    size = page_size if options.top is None else min(page_size, options.top)
    skip = 0 if options.skiptoken else (options.skip or 0)
    chosen: list[tuple[tuple, str]] = []
    more = False
    position = start
    for position in range(start, len(entries)):
        entry = entries[position]
        record = table_rows[entry[1]]
        if predicate is not None and not predicate(record):
            continue
        if skip:
            skip -= 1
            continue
        if len(chosen) == size:
            more = True
            break
        chosen.append(entry)
    more = more and (options.top is None or options.top > size)
    token = None
    if more and chosen:
        key, sid = chosen[-1]
        token = encode_token(names, _Position(tuple(_plain(k) for k in key), sid, desc))
    examined = position - start + 1 if start < len(entries) else 0
    count = None
    if options.count:
        count = sum(1 for r in table_rows.values() if predicate is None or predicate(r))
        examined += len(table_rows)
    next_top = (options.top - size) if (token and options.top is not None) else None
    return Page([table_rows[sid] for _, sid in chosen], count, token, next_top, examined)


def _plain(part):
    """A sort key part's value back (for a skip token)."""
    part = part.value if isinstance(part, _Desc) else part
    return None if len(part) == 1 else part[1]


def _page_of_sorted(session: Session, view: View, options: QueryOptions, page_size: int, result: _Sorted) -> Page:
    order = list(options.orderby or [(name, False) for name in view.default_order])
    names = [name for name, _ in order]
    if options.skiptoken:
        after = decode_token(options.skiptoken, names, tuple(d for _, d in order))
        start = bisect_right(result.positions, after)
    else:
        start = options.skip or 0
    size = page_size if options.top is None else min(page_size, options.top)
    chosen = result.positions[start:start + size]
    table_rows = session.store.container(view.table, session.company).rows
    records = [table_rows[p.system_id] for p in chosen]
    more = start + size < len(result.positions) and (options.top is None or options.top > size)
    token = encode_token(names, chosen[-1]) if (more and chosen) else None
    next_top = (options.top - size) if (token and options.top is not None) else None
    return Page(records, len(result.positions), token, next_top, len(result.positions))
