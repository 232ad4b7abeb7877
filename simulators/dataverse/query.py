"""Reading rows: $select/$filter/$orderby/$top/$count, server-driven paging, annotations, rendering.

Paging is keyset-based: the `$skiptoken` carries the sort key and primary id of the last row of the
page, and the next page starts after that key in the current data. A row modified between two page
reads therefore moves within the order but is never skipped (Dataverse's paging cookie works the
same way). A page in ascending order walks the store's ordered index from the token (or from the
filter's lower bound on the first sort column) and stops when the page is full, so it costs the rows
it examines, not the table. A lookup by a list of primary ids (`In`, or `eq` terms joined by `or`)
reads those rows only. Other queries (descending order, `$count`) filter and sort the table, with
the result cached per (table, filter, order) until the table changes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from odata_query import ast

from simulators.odata import (QueryError, UnknownProperty, compile_filter, literal_value, parse_filter, parse_orderby,
                              split_select)

from . import errors
from .schema import Attr, Entity
from .store import Row, Store, sort_component
from .values import format_datetime, format_number, normalize_guid, to_wire

MAX_PAGE_SIZE = 5000
COUNT_LIMIT = 5000
CACHE_ENTRIES = 32

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
NAV_NAME = "Microsoft.Dynamics.CRM.associatednavigationproperty"
TOTAL_COUNT = "Microsoft.Dynamics.CRM.totalrecordcount"
TOTAL_COUNT_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"


# --------------------------------------------------------------------------- Prefer header

@dataclass
class Prefs:
    representation: bool = False
    maxpagesize: int | None = None
    annotations: list[str] | None = None
    continue_on_error: bool = False
    track_changes: bool = False
    applied: list[str] = field(default_factory=list)

    def wants(self, annotation: str) -> bool:
        if not self.annotations:
            return False
        for pattern in self.annotations:
            if pattern.startswith("-"):
                continue
            if pattern == "*" or pattern == annotation or (
                    pattern.endswith(".*") and annotation.startswith(pattern[:-1])):
                if not any(p[1:] == annotation for p in self.annotations if p.startswith("-")):
                    return True
        return False


def _top_level(text: str, start: int = 0):
    """(index, character, depth) of each character outside quotes, depth counting ( and [."""
    depth, quote_char = 0, None
    for i in range(start, len(text)):
        ch = text[i]
        if quote_char:
            if ch == quote_char:
                quote_char = None
            continue
        if ch in "'\"":
            quote_char = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        yield i, ch, depth


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside quotes and brackets."""
    parts, start = [], 0
    for i, ch, depth in _top_level(text):
        if ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_prefer(values: list[str]) -> Prefs:
    prefs = Prefs()
    for header in values:
        for item in split_top_level(header):
            name, _, value = item.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "return" and value.lower() == "representation":
                prefs.representation = True
            elif name == "odata.maxpagesize":
                try:
                    size = int(value)
                except ValueError:
                    continue
                if size <= MAX_PAGE_SIZE:  # "Max page size requests larger than 5,000 are ignored"
                    prefs.maxpagesize = max(1, size)
            elif name in ("odata.include-annotations", "include-annotations"):
                prefs.annotations = [p.strip() for p in value.split(",") if p.strip()]
            elif name == "odata.continue-on-error":
                prefs.continue_on_error = True
            elif name == "odata.track-changes":
                prefs.track_changes = True
    return prefs


# --------------------------------------------------------------------------- rendering rows

class Renderer:
    """Stored rows -> Web API JSON, with annotations when the client asked for them."""

    def __init__(self, store: Store):
        self.store = store

    def primary_name(self, logical_name: str, row_id: str) -> str | None:
        entity = self.store.schema.get(logical_name)
        row = self.store.get(logical_name, row_id) if entity else None
        return None if row is None else row.values.get(entity.primary_name)

    def formatted(self, entity: Entity, attr: Attr, row: Row, value):
        kind = attr.kind
        if kind in ("picklist", "state", "status"):
            return attr.options.get(value)
        if kind == "boolean":
            return attr.bool_labels[1 if value else 0]
        if attr.is_lookup:
            return self.primary_name(row.targets.get(attr.name) or attr.targets[0], value)
        if kind == "money":
            symbol, places = "", 2
            currency_id = row.values.get("transactioncurrencyid")
            currency = self.store.get("transactioncurrency", currency_id) if currency_id else None
            if currency is not None:
                symbol = currency.values.get("currencysymbol") or ""
                places = currency.values.get("currencyprecision") or 0
            text = format_number(abs(value), places)
            return f"-{symbol}{text}" if value < 0 else f"{symbol}{text}"
        if kind in ("integer", "bigint"):
            return f"{value:,}"
        if kind == "decimal":
            return format_number(value, attr.precision or 0)
        if kind == "datetime":
            return format_datetime(value)
        return None

    @staticmethod
    def nav_name(attr: Attr, target: str) -> str:
        for nav, nav_target in attr.navs.items():
            if nav_target in (target, "*"):
                return nav
        return attr.name

    def render(self, entity: Entity, row: Row, select: list[Attr] | None, prefs: Prefs | None,
               expand: list["Expansion"] | None = None) -> dict:
        out = {"@odata.etag": row.etag}
        attrs = entity.attributes.values() if select is None else with_currency(entity, select)
        annotate = prefs is not None and bool(prefs.annotations)
        values = row.values
        for attr in attrs:
            value = None if attr.unreadable else values.get(attr.name)
            wire = attr.wire_name
            if annotate and value is not None:
                if prefs.wants(FORMATTED):
                    text = self.formatted(entity, attr, row, value)
                    if text is not None:
                        out[f"{wire}@{FORMATTED}"] = text
                if attr.is_lookup:
                    target = row.targets.get(attr.name) or attr.targets[0]
                    if prefs.wants(NAV_NAME):
                        out[f"{wire}@{NAV_NAME}"] = self.nav_name(attr, target)
                    if prefs.wants(LOOKUP_NAME):
                        out[f"{wire}@{LOOKUP_NAME}"] = target
            out[wire] = to_wire(attr, value)
        out[entity.primary_id] = values[entity.primary_id]
        for item in expand or ():
            out[item.nav] = self.expanded(row, item, prefs)
        return out

    def expanded(self, row: Row, item: "Expansion", prefs: Prefs | None) -> dict | None:
        value = row.values.get(item.attr.name)
        if value is None:
            return None
        target_name = row.targets.get(item.attr.name) or item.attr.targets[0]
        if item.target not in ("*", target_name):
            return None  # a customer lookup pointing at the other table
        target = self.store.schema[target_name]
        related = self.store.get(target_name, value)
        if related is None:
            return None
        select = None
        if item.select is not None:
            select = [target.wire[n] for n in item.select if n in target.wire]
        out = {}
        if item.target == "*":
            out["@odata.type"] = f"#{target.type_name}"
        out.update(self.render(target, related, select, prefs))
        return out


@dataclass
class Expansion:
    """One single-valued navigation property in $expand, with its nested $select."""

    nav: str
    attr: Attr
    target: str                  # the table, or "*" for an owner (systemuser or team)
    select: list[str] | None


def parse_expand(entity: Entity, text: str | None, schema) -> list[Expansion] | None:
    if not text:
        return None
    out = []
    for item in split_top_level(text):
        nav, _, rest = item.partition("(")
        nav = nav.strip()
        attr = entity.navs.get(nav)
        if attr is None:
            raise errors.bad_query(
                f"Could not find a property named '{nav}' on type '{entity.type_name}'.")
        target = attr.navs[nav]
        select = None
        if rest:
            for part in split_top_level(rest.rstrip()[:-1], ";"):
                key, _, value = part.partition("=")
                key = key.strip()
                if key != "$select":
                    raise errors.bad_query(f"The query option '{key}' is not supported inside $expand by this server.")
                select = split_select(value) or []
                targets = attr.targets if target == "*" else (target,)
                known = set().union(*(schema[t].wire for t in targets))
                for name in select:
                    if name not in known:
                        raise errors.unknown_property(targets[0], name)
        out.append(Expansion(nav, attr, target, select))
    return out


def with_currency(entity: Entity, select: list[Attr]) -> list[Attr]:
    """Selecting a money column also returns the row's currency, as the service does."""
    if any(a.kind == "money" for a in select) and "transactioncurrencyid" in entity.attributes:
        currency = entity.attributes["transactioncurrencyid"]
        if currency not in select:
            return [*select, currency]
    return select


def parse_select(entity: Entity, text: str | None) -> list[Attr] | None:
    names = split_select(text)
    if names is None:
        return None
    out = []
    for name in names:
        if name == "*":
            return None
        attr = entity.wire.get(name)
        if attr is None:
            raise errors.unknown_property(entity.logical_name, name)
        if attr not in out:
            out.append(attr)
    return out


def context_url(root: str, entity: Entity, select: list[Attr] | None, single: bool = False) -> str:
    shape = "" if select is None else "(" + ",".join(a.wire_name for a in select) + ")"
    return f"{root}/$metadata#{entity.entity_set}{shape}{'/$entity' if single else ''}"


# --------------------------------------------------------------------------- $filter

DV_FUNCTION_RE = re.compile(r"Microsoft\.Dynamics\.CRM\.(\w+)\(")
ODATA_FUNCTIONS = frozenset({"contains", "endswith", "startswith"})  # the only OData functions the Web API takes


def rewrite_dataverse_functions(text: str, entity: Entity) -> str:
    """Rewrite the Dataverse query functions the SDK emits (In, NotIn, Between, On...) into plain OData."""
    out, pos = [], 0
    while True:
        match = DV_FUNCTION_RE.search(text, pos)
        if not match:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:match.start()])
        end = _closing_paren(text, match.end() - 1)
        params = {}
        for part in split_top_level(text[match.end():end]):
            key, _, value = part.partition("=")
            params[key.strip()] = value.strip()
        out.append(_function_to_odata(match.group(1), params, entity))
        pos = end + 1


def _closing_paren(text: str, open_at: int) -> int:
    for i, ch, depth in _top_level(text, open_at):
        if ch in ")]" and depth == 0:
            return i
    raise errors.bad_query(f"Syntax error in $filter: unbalanced parentheses in '{text}'.")


def _function_to_odata(name: str, params: dict, entity: Entity) -> str:
    prop = params.get("PropertyName", "").strip("'")
    attr = entity.wire.get(prop) or entity.attributes.get(prop)
    if attr is None:
        raise errors.unknown_property(entity.logical_name, prop)
    prop = attr.wire_name

    def values() -> list:
        """PropertyValues=['a','b''c',1]: OData literals in brackets (JSON strings accepted too)."""
        raw = (params.get("PropertyValues") or "[]").strip()
        if not (raw.startswith("[") and raw.endswith("]")):
            raise errors.bad_query(f"Invalid PropertyValues '{raw}' for {name}.")
        out = []
        for item in split_top_level(raw[1:-1]):
            if len(item) > 1 and item[0] == item[-1] == "'":
                out.append(item[1:-1].replace("''", "'"))
            elif item[0] == '"':
                try:
                    out.append(json.loads(item))
                except ValueError:
                    raise errors.bad_query(f"Invalid PropertyValues '{raw}' for {name}.") from None
            else:
                out.append(item)
        return out

    def single() -> str:
        raw = params.get("PropertyValue", "")
        return raw[1:-1] if raw[:1] in "'\"" else raw

    if name in ("In", "NotIn"):
        items = values()
        literals = [_literal(attr, v) for v in items]
        if len(literals) > 1:
            expr = f"{prop} in ({','.join(literals)})"
        else:  # the parser reads a one-item list as parentheses
            expr = f"{prop} eq {literals[0]}" if literals else "false"
        return f"({expr})" if name == "In" else f"(not ({expr}))"
    if name in ("Between", "NotBetween"):
        low, high = values()
        expr = f"({prop} ge {_literal(attr, low)} and {prop} le {_literal(attr, high)})"
        return expr if name == "Between" else f"(not {expr})"
    if name in ("On", "OnOrAfter", "OnOrBefore"):
        op = {"On": "eq", "OnOrAfter": "ge", "OnOrBefore": "le"}[name]
        return f"({prop} {op} {single()[:10]})"
    if name in ("Equal", "NotEqual"):
        return f"({prop} {'eq' if name == 'Equal' else 'ne'} {_literal(attr, single())})"
    raise errors.bad_query(f"The function 'Microsoft.Dynamics.CRM.{name}' is not supported by this server.")


def _literal(attr: Attr, value) -> str:
    if value is None:
        return "null"
    if attr.kind in ("integer", "bigint", "picklist", "state", "status", "decimal", "money"):
        return str(value)
    if attr.kind == "boolean":
        return "true" if str(value).lower() in ("true", "1") else "false"
    if attr.kind in ("uniqueidentifier", "lookup", "owner", "customer"):
        return normalize_guid(str(value)) or f"'{value}'"
    if attr.kind == "datetime":
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def prepare_filter(entity: Entity, text: str | None) -> str | None:
    if not text or not text.strip():
        return None
    if "Microsoft.Dynamics.CRM." in text:
        text = rewrite_dataverse_functions(text, entity)
    return text


def compile_row_filter(entity: Entity, text: str | None):
    text = prepare_filter(entity, text)
    if text is None:
        return None
    wire = entity.wire

    def resolve(row: Row, name: str):
        return row.values.get(wire[name].name)

    try:
        return compile_filter(text, resolver=resolve, known=lambda name: name in wire, functions=ODATA_FUNCTIONS)
    except UnknownProperty as exc:
        raise errors.unknown_property(entity.logical_name, exc.name) from None
    except QueryError as exc:
        raise errors.bad_query(str(exc)) from None


# --------------------------------------------------------------------------- ordering and keyset tokens

def parse_order(entity: Entity, text: str | None) -> list[tuple[Attr, bool]]:
    try:
        order = parse_orderby(text)
    except QueryError as exc:
        raise errors.bad_query(str(exc)) from None
    out = []
    for name, desc in order:
        attr = entity.wire.get(name)
        if attr is None:
            raise errors.unknown_property(entity.logical_name, name)
        out.append((attr, desc))
    return out


def _cmp(a, b) -> int:
    return -1 if a < b else (1 if a > b else 0)


def compare_keys(left: tuple, right: tuple, descs: tuple[bool, ...]) -> int:
    for i, desc in enumerate(descs):
        c = _cmp(left[i], right[i])
        if c:
            return -c if desc else c
    return _cmp(left[-1], right[-1])  # the primary id breaks ties, ascending


def encode_token(key: tuple, remaining: int | None, tracking: int | None = None) -> str:
    def enc(component):
        if component[0] == 0:
            return None
        value = component[1]
        if isinstance(value, bool):
            return ["b", value]
        if isinstance(value, dt.datetime):
            return ["t", value.isoformat()]
        if isinstance(value, dt.date):
            return ["d", value.isoformat()]
        if isinstance(value, (int, float)):
            return ["n", value]
        return ["s", value]

    payload = {"k": [enc(c) for c in key[:-1]], "id": key[-1], "r": remaining}
    if tracking is not None:
        payload["ct"] = tracking
    raw = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return raw


def decode_token(text: str, count: int) -> tuple[tuple, int | None, int | None]:
    match = re.search(r'pagingcookie="([^"]*)"', text)
    raw = unquote(match.group(1)) if match else text
    try:
        payload = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        comps = []
        for item in payload["k"]:
            if item is None:
                comps.append((0,))
            elif item[0] == "t":
                comps.append((1, dt.datetime.fromisoformat(item[1])))
            elif item[0] == "d":
                comps.append((1, dt.date.fromisoformat(item[1])))
            else:
                comps.append((1, item[1]))
        if len(comps) != count:
            raise ValueError("token does not match the query")
        return (*comps, payload["id"]), payload.get("r"), payload.get("ct")
    except Exception:
        raise errors.bad_query("The $skiptoken is not valid for this query.") from None


def skiptoken_value(token: str, page_number: int) -> str:
    """The token in the shape Dataverse uses: a paging cookie element."""
    return f'<cookie pagenumber="{page_number}" pagingcookie="{quote(token, safe="")}" istracking="False" />'


def page_number_of(text: str | None) -> int:
    match = re.search(r'pagenumber="(\d+)"', text or "")
    return int(match.group(1)) if match else 1


class QueryRunner:
    """Answers a query from the store: a page walked along an ordered index, rows looked up by id, or
    (for what neither serves) the table filtered and sorted, cached until the table changes."""

    def __init__(self, store: Store):
        self.store = store
        self.examined = 0  # rows looked at by all queries: what a request costs, for tests to bound
        self._filters: OrderedDict = OrderedDict()  # (table, $filter) -> (parsed tree, predicate)

    def compiled(self, entity: Entity, filter_text: str | None):
        key = (entity.logical_name, filter_text or "")
        hit = self._filters.get(key)
        if hit is None:
            predicate = compile_row_filter(entity, filter_text)
            tree = None if predicate is None else parse_filter(prepare_filter(entity, filter_text))
            hit = self._filters[key] = (tree, predicate)
            while len(self._filters) > CACHE_ENTRIES:
                self._filters.popitem(last=False)
        else:
            self._filters.move_to_end(key)
        return hit

    def page(self, entity: Entity, filter_text: str | None, order: list[tuple[Attr, bool]], after: tuple | None,
             size: int) -> tuple[list[tuple], list[Row], bool] | None:
        """Up to `size` matching rows after the key `after`, with their keys and whether more follow, walked
        along the table's ordered index. None when the index does not serve the query (a descending order, a
        lookup by ids, values that do not sort): `sorted_rows` answers it then."""
        if any(desc for _, desc in order):
            return None
        tree, predicate = self.compiled(entity, filter_text)
        if tree is not None and _lookup(entity, tree) is not None:
            return None
        keys = self.store.ordered_keys(entity.logical_name, tuple(a.name for a, _ in order))
        if keys is None:
            return None
        try:
            start = 0 if after is None else bisect_right(keys, after)
        except TypeError:
            raise errors.bad_query("The $skiptoken is not valid for this query.") from None
        low = _lower_bound(tree, order[0][0]) if tree is not None and order else None
        if low is not None:
            try:
                start = max(start, bisect_left(keys, (sort_component(low),)))
            except TypeError:
                pass  # a literal of another type: the filter decides row by row
        rows = self.store.table(entity.logical_name).rows
        out_keys, out_rows = [], []
        i = start
        try:
            while i < len(keys) and len(out_rows) <= size:
                key = keys[i]
                i += 1
                self.examined += 1
                row = rows[key[-1]]
                if predicate is None or predicate(row):
                    out_keys.append(key)
                    out_rows.append(row)
        except QueryError as exc:
            raise errors.bad_query(str(exc)) from None
        return out_keys[:size], out_rows[:size], len(out_rows) > size

    def sorted_rows(self, entity: Entity, filter_text: str | None, order: list[tuple[Attr, bool]]):
        store = self.store
        table = store.table(entity.logical_name)
        cache_key = (entity.logical_name, filter_text or "", tuple((a.name, d) for a, d in order))
        hit = store.query_cache.get(cache_key)
        if hit is not None and hit[0] == table.version:
            store.query_cache.move_to_end(cache_key)
            return hit[1], hit[2]
        tree, predicate = self.compiled(entity, filter_text)
        found = self.candidates(entity, tree, table) if tree is not None else None
        if found is None:
            candidates = table.rows.values()
        else:
            candidates, exact = found
            if exact:
                predicate = None
        self.examined += len(candidates)
        try:
            matched = [row for row in candidates if predicate is None or predicate(row)]
        except QueryError as exc:
            raise errors.bad_query(str(exc)) from None
        pk = entity.primary_id
        names = [a.name for a, _ in order]
        items = [(tuple(sort_component(row.values.get(n)) for n in names) + (row.values[pk],), row) for row in matched]
        items.sort(key=lambda item: item[0][-1])
        for i in reversed(range(len(order))):
            try:
                items.sort(key=lambda item, i=i: item[0][i], reverse=order[i][1])
            except TypeError:
                raise errors.bad_query(f"Cannot order by '{order[i][0].wire_name}'.") from None
        keys = [k for k, _ in items]
        rows = [r for _, r in items]
        store.query_cache[cache_key] = (table.version, keys, rows)
        while len(store.query_cache) > CACHE_ENTRIES:
            store.query_cache.popitem(last=False)
        return keys, rows

    @staticmethod
    def candidates(entity: Entity, tree, table) -> tuple[list[Row], bool] | None:
        """A cheap superset of the matching rows when the filter requires `col in (v1, v2, ...)` or
        `col eq v1 or col eq v2 ...`, and whether it is exactly the matches (a lookup by primary id alone).

        Clients look rows up by id in chunks; evaluating that expression against every row of a large
        table is slow, so such a conjunct is answered from the primary key (or one pass with a set) and the
        rest of the filter then runs on the candidates only.
        """
        found = _lookup(entity, tree)
        if found is None:
            return None
        attr, wanted, exact = found
        if attr.name == entity.primary_id:
            return [table.rows[v] for v in wanted if isinstance(v, str) and v in table.rows], exact
        name = attr.name
        return [row for row in table.rows.values() if _key_value(row.values.get(name)) in wanted], False

    @staticmethod
    def start_after(keys: list[tuple], token: tuple, descs: tuple[bool, ...]) -> int:
        """Index of the first key strictly after `token` in the sort order (binary search)."""
        lo, hi = 0, len(keys)
        while lo < hi:
            mid = (lo + hi) // 2
            if compare_keys(keys[mid], token, descs) <= 0:
                lo = mid + 1
            else:
                hi = mid
        return lo


def _lookup(entity: Entity, tree) -> tuple[Attr, set, bool] | None:
    """The conjunct that lists the values one column must have: (column, the values, whether it is the
    primary id and the whole filter)."""
    conjuncts = _conjuncts(tree)
    for conjunct in conjuncts:
        terms = _eq_terms(conjunct)
        if not terms or len({name for name, _ in terms}) != 1:
            continue
        attr = entity.wire.get(terms[0][0])
        if attr is None:
            return None
        wanted = {_key_value(value) for _, value in terms}
        return attr, wanted, len(conjuncts) == 1 and attr.name == entity.primary_id
    return None


def _lower_bound(tree, attr: Attr):
    """The least value of `attr` the filter admits, from a conjunct `attr ge|gt|eq <literal>`; None if none."""
    for conjunct in _conjuncts(tree):
        if (isinstance(conjunct, ast.Compare) and isinstance(conjunct.comparator, (ast.GtE, ast.Gt, ast.Eq))
                and isinstance(conjunct.left, ast.Identifier) and not conjunct.left.namespace
                and conjunct.left.name == attr.wire_name and isinstance(conjunct.right, ast._Literal)
                and not isinstance(conjunct.right, (ast.List, ast.Null))):
            return literal_value(conjunct.right)
    return None


def _conjuncts(node) -> list:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _eq_terms(node) -> list[tuple[str, object]] | None:
    """`a eq 1 or a eq 2` and `a in (1, 2)` -> [("a", 1), ("a", 2)]; None for any other shape."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        left, right = _eq_terms(node.left), _eq_terms(node.right)
        return None if left is None or right is None else left + right
    if (isinstance(node, ast.Compare) and isinstance(node.comparator, (ast.Eq, ast.In))
            and isinstance(node.left, ast.Identifier) and not node.left.namespace):
        literals = node.right.val if isinstance(node.comparator, ast.In) else [node.right]
        values = [_term_value(literal) for literal in literals]
        if all(value is not None for value in values):
            return [(node.left.name, value) for value in values]
    return None


def _term_value(literal):
    if isinstance(literal, ast.GUID):
        return literal.val.lower()
    if isinstance(literal, (ast.String, ast.Integer, ast.Boolean)):
        return literal.py_val
    return None


def _key_value(value):
    return value.casefold() if isinstance(value, str) else value
