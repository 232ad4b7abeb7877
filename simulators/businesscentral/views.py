"""Views over the tables: API v2.0 entity sets and OData v4 page web services.

A view is an ordered list of fields. Most fields map one view property onto one table column
(`displayName` -> Customer."Name", `Shipping_Agent_Code` -> Customer."Shipping Agent Code"); some
are computed (`currencyCode` shows the LCY code when the column is blank, `paymentTermsId` is the
SystemId of the related Payment Terms row). Fields marked `exposed=False` exist for the in-process
Python API only (columns a view does not publish). Writing through a view validates each property
in the view's field order, then inserts or modifies the row through the session, which runs the
table's triggers (OnInsert / OnModify / OnDelete: a new customer gets its contact, a document line
bumps its header) inside one store transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

from . import errors
from .model import (EDM_TYPES, EMPTY_DATE_TEXT, EMPTY_GUID, UTC, Column, Table, escape_enum, format_datetime,
                    format_decimal, is_guid)
from .store import Company, Store, etag_for

MIN_DATE = dt.date(1, 1, 1)
MIN_DATETIME = dt.datetime(1, 1, 1, tzinfo=UTC)


@dataclass
class TableTriggers:
    """A table's triggers. `on_*` run before the write and may change the new record (or refuse it);
    `after_*` run after it and may write other rows (through the same session)."""

    on_insert: Callable[["Session", dict], None] | None = None
    after_insert: Callable[["Session", dict], None] | None = None
    on_modify: Callable[["Session", dict, dict], None] | None = None  # (old, new)
    after_modify: Callable[["Session", dict, dict], None] | None = None  # (old, new)
    on_delete: Callable[["Session", dict], None] | None = None
    after_delete: Callable[["Session", dict], None] | None = None


@dataclass
class Session:
    """Who writes, in which company, with a scratch pad shared by the fields of one write."""

    store: Store
    catalog: Any  # Catalog; resolves related tables by name
    company: Company | None
    user: str = EMPTY_GUID
    scratch: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # values computed for reading, keyed with the store generation

    @property
    def lcy_code(self) -> str:
        return self.company.lcy_code if self.company else ""

    def child(self) -> "Session":
        """The same user and company with a fresh scratch pad (for writes a trigger makes)."""
        return Session(self.store, self.catalog, self.company, self.user)

    def today(self) -> dt.date:
        """The work date: today by the store's clock."""
        return self.store.clock.source().astimezone(UTC).date()

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        key = (self.store.generation, *key)
        if key not in self.memo:
            if len(self.memo) > 4096:
                self.memo.clear()
            self.memo[key] = compute()
        return self.memo[key]

    def table(self, name: str) -> Table:
        return self.catalog.tables[name]

    def assign(self, table: Table, record: dict, column: str, value: Any) -> None:
        self.store.assign(table, self.company, record, column, value, self.table)

    def find(self, table_name: str, key: tuple) -> dict | None:
        return self.store.find(self.table(table_name), self.company, key)

    def get(self, table_name: str, system_id: str) -> dict | None:
        return self.store.get(self.table(table_name), self.company, system_id)

    def find_all(self, table_name: str, columns: tuple[str, ...], values: tuple) -> list[dict]:
        return self.store.find_all(self.table(table_name), self.company, columns, values)

    # -- writing rows with their table's triggers ----------------------------------------------------------

    def _triggers(self, table: Table) -> list[TableTriggers]:
        return self.catalog.triggers.get(table.name, [])

    def _latest(self, table: Table, record: dict) -> dict:
        return self.store.get(table, self.company, record["SystemId"]) or record

    def insert_row(self, table: Table, record: dict, *, modified_at: dt.datetime | None = None) -> dict:
        """Insert: number from the series when the key is blank, OnInsert, the write, then after-insert."""
        with self.store.atomic():
            if table.series is not None and len(table.key) == 1 and record[table.key[0]] == "":
                record[table.key[0]] = self.store.next_number(table, self.company)
            all_triggers = self._triggers(table)
            for triggers in all_triggers:
                if triggers.on_insert:
                    triggers.on_insert(self, record)
            table.check_key(record)
            stored = self.store.insert(table, self.company, record, self.user, modified_at=modified_at)
            if not all_triggers:
                return stored
            for triggers in all_triggers:
                if triggers.after_insert:
                    triggers.after_insert(self, stored)
            return self._latest(table, stored)

    def modify_row(self, table: Table, old: dict, record: dict, *, modified_at: dt.datetime | None = None) -> dict:
        with self.store.atomic():
            for triggers in self._triggers(table):
                if triggers.on_modify:
                    triggers.on_modify(self, old, record)
            table.check_key(record)
            stored = self.store.modify(table, self.company, record, self.user, modified_at=modified_at)
            for triggers in self._triggers(table):
                if triggers.after_modify:
                    triggers.after_modify(self, old, stored)
            return self._latest(table, stored)

    def delete_row(self, table: Table, record: dict) -> None:
        with self.store.atomic():
            for triggers in self._triggers(table):
                if triggers.on_delete:
                    triggers.on_delete(self, record)
            if self.store.get(table, self.company, record["SystemId"]) is not None:
                self.store.delete(table, self.company, record["SystemId"])
            for triggers in self._triggers(table):
                if triggers.after_delete:
                    triggers.after_delete(self, record)

    def touch(self, table: Table, record: dict) -> dict:
        """Modify without changing a field (SystemModifiedAt and the etag move on), no triggers."""
        current = self.store.get(table, self.company, record["SystemId"])
        if current is None:
            return record
        return self.store.modify(table, self.company, dict(current), self.user)


def _wire_date(value):
    return value.isoformat() if value else "0001-01-01"


_WIRE_CONVERTERS = {
    "option": escape_enum,
    "date": _wire_date,
    "datetime": format_datetime,
    "decimal": format_decimal,
}


class Field:
    """One property of a view, backed by a table column unless a subclass computes it."""

    def __init__(self, name: str, column: str | None = None, *, type: str | None = None, read_only: bool = False,
                 exposed: bool = True, options: tuple[str, ...] = (), caption: str | None = None,
                 page_variable: bool = False):
        self.name = name
        # bound to a page variable the page computes per row (OnAfterGetRecord), not to a table field:
        # Business Central can neither filter nor sort on it
        self.page_variable = page_variable
        self.caption = caption or column or name  # the page control's caption, used in messages
        self.column_name = column
        self._type = type
        self._options = options
        self.read_only = read_only
        self.exposed = exposed
        self.column: Column | None = None

    def bind(self, table: Table) -> "Field":
        if self.column_name is not None:
            self.column = table.column(self.column_name) if self.column_name in table.by_name else None
        self.type = self._type or (self.column.type if self.column else "text")
        # `plain`: shows its column's value as it is (so it can stand for the column in keys and ordering)
        self.plain = self.column is not None and type(self).get is Field.get
        self.converter = _WIRE_CONVERTERS.get(self.type)
        return self

    @property
    def options(self) -> tuple[str, ...]:
        return self._options or (self.column.options if self.column else ())

    @property
    def edm(self) -> str:
        return EDM_TYPES[self.type]

    @property
    def privileged_writable(self) -> bool:
        """Whether the in-process API may set it although the wire may not (a stored column)."""
        return self.column is not None

    # -- reading --------------------------------------------------------------------------------------

    def get(self, session: Session, record: dict) -> Any:
        return record[self.column_name]

    def to_wire(self, value: Any) -> Any:
        return self.converter(value) if self.converter else value

    def comparable(self, value: Any) -> Any:
        """The value $filter and $orderby see: enum member names, 0001-01-01 for empty dates."""
        kind = self.type
        if kind == "option":
            return escape_enum(value)
        if kind == "date":
            return value or MIN_DATE
        if kind == "datetime":
            return value or MIN_DATETIME
        return value

    def sortable(self, value: Any) -> Any:
        """The value $orderby sorts on: like `comparable`, but an option sorts by its ordinal."""
        if self.type == "option":
            return self.options.index(value) if value in self.options else -1
        return self.comparable(value)

    # -- writing ----------------------------------------------------------------------------------------

    def from_wire(self, raw: Any) -> Any:
        """Check the JSON value against the EDM type, as the OData layer does before BC sees it."""
        kind, edm = self.type, self.edm
        if raw is None:
            raise errors.null_not_allowed(self.name, edm)
        if kind == "bool":
            if not isinstance(raw, bool):
                raise errors.literal_conversion(raw, edm)
            return raw
        if kind in ("decimal", "integer", "bigint"):
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise errors.literal_conversion(raw, edm)
            if kind != "decimal" and not float(raw).is_integer():
                raise errors.literal_conversion(raw, edm)
            return raw
        if not isinstance(raw, str):
            raise errors.literal_conversion(raw, edm)
        if kind == "guid" and not is_guid(raw):
            raise errors.literal_conversion(raw, edm)
        if kind == "date":
            try:
                dt.date.fromisoformat(raw)
            except ValueError:
                raise errors.literal_conversion(raw, edm) from None
        if kind == "datetime":
            try:
                dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise errors.literal_conversion(raw, edm) from None
        return raw

    def set(self, session: Session, view: "View", record: dict, value: Any) -> None:
        session.assign(view.table, record, self.column_name, value)


class SystemField(Field):
    """SystemId / SystemModifiedAt / ... shown under a view's name (`id`, `lastModifiedDateTime`)."""

    def __init__(self, name: str, system: str, type: str, *, exposed: bool = True, caption: str | None = None):
        super().__init__(name, None, type=type, read_only=True, exposed=exposed, caption=caption or system)
        self.system = system

    @property
    def privileged_writable(self) -> bool:
        return self.system in ("SystemId", "SystemModifiedAt")

    def get(self, session: Session, record: dict) -> Any:
        return record[self.system]

    def set(self, session: Session, view: "View", record: dict, value: Any) -> None:
        if self.system == "SystemId":
            record["SystemId"] = Column("SystemId", "guid").normalize(value)
        elif self.system == "SystemModifiedAt":
            session.scratch["modified_at"] = Column("SystemModifiedAt", "datetime").normalize(value)


class Computed(Field):
    """A read-only value computed from the row (balanceDue, taxAreaDisplayName, ...)."""

    def __init__(self, name: str, type: str, compute: Callable[[Session, dict], Any], *, exposed: bool = True,
                 options: tuple[str, ...] = (), caption: str | None = None, page_variable: bool = False):
        super().__init__(name, None, type=type, read_only=True, exposed=exposed, options=options, caption=caption,
                         page_variable=page_variable)
        self.compute = compute

    @property
    def privileged_writable(self) -> bool:
        return False

    def get(self, session: Session, record: dict) -> Any:
        return self.compute(session, record)


class RelatedId(Field):
    """`paymentTermsId`: the SystemId of the row whose code the table column holds (empty GUID = none)."""

    def __init__(self, name: str, column: str, related_table: str, label: str):
        super().__init__(name, column, type="guid")
        self.related_table = related_table
        self.label = label

    def get(self, session: Session, record: dict) -> Any:
        code = record[self.column_name]
        if not code:
            return EMPTY_GUID
        related = session.find(self.related_table, (code,))
        return related["SystemId"] if related else EMPTY_GUID

    def set(self, session: Session, view: "View", record: dict, value: Any) -> None:
        guid = str(value).strip("{}").lower()
        if guid == EMPTY_GUID:
            session.assign(view.table, record, self.column_name, "")
            return
        related = session.get(self.related_table, guid) if is_guid(guid) else None
        if related is None:
            raise errors.dialog(f'The "{self.name}" does not match to a {self.label}.')
        session.scratch[self.name] = related
        session.assign(view.table, record, self.column_name, related[session.table(self.related_table).key[0]])


class CurrencyCode(Field):
    """`currencyCode`: the LCY code when the column is blank; setting the LCY code blanks the column, and
    a currencyId given in the same request must name the same currency."""

    def __init__(self, name: str, column: str, id_field: str, **kwargs):
        super().__init__(name, column, type="code", **kwargs)
        self.id_field = id_field

    def get(self, session: Session, record: dict) -> Any:
        return record[self.column_name] or session.lcy_code

    def set(self, session: Session, view: "View", record: dict, value: Any) -> None:
        code = str(value or "").strip().upper()[:10]
        if code == session.lcy_code.upper():
            code = ""
        chosen = session.scratch.get(self.id_field)
        if chosen is not None:
            if chosen["Code"] != code:
                raise errors.dialog("The currency values do not match to a specific Currency.")
            return
        if code and session.find("Currency", (code,)) is None:
            raise errors.dialog(f'The "{self.name}" does not match to a Currency.')
        session.assign(view.table, record, self.column_name, code)


class RelatedCode(Field):
    """`baseUnitOfMeasureCode`: the code column that `<x>Id` also sets; when both are given they must
    name the same row. An unknown code fails the column's table relation."""

    def __init__(self, name: str, column: str, id_field: str, mismatch: str, **kwargs):
        super().__init__(name, column, **kwargs)
        self.id_field = id_field
        self.mismatch = mismatch

    def set(self, session: Session, view: "View", record: dict, value: Any) -> None:
        chosen = session.scratch.get(self.id_field)
        if chosen is not None:
            related = session.table(self.column.relation)
            if chosen[related.key[0]] != self.column.normalize(value):
                raise errors.dialog(self.mismatch)
            return
        session.assign(view.table, record, self.column_name, value)


@dataclass
class Navigation:
    """A contained collection (`salesOrders({id})/salesOrderLines`): the child view, the child property
    that points at the parent and how to read the children of one parent (for `$expand`)."""

    view: "View"
    child_field: str
    rows: Callable[[Session, dict], list[dict]]
    deep_insert: bool = True

    def parent_value(self, session: Session, parent: dict) -> Any:
        return parent["SystemId"]


class View:
    """An entity set (API page) or a published page: named, ordered fields over one table. A `seedable`
    view is read-only on the wire but its rows are kept on BC pages the API does not write (the chart of
    accounts), so the in-process API may insert, modify and delete them."""

    kind = "api"

    def __init__(self, name: str, table: Table, fields: list[Field], *, entity_name: str, namespace: str = "Microsoft.NAV",
                 before_insert: Callable[[Session, dict, dict], None] | None = None,
                 before_modify: Callable[[Session, dict, dict, dict], None] | None = None,
                 insertable: bool = True, modifiable: bool = True, deletable: bool = True, seedable: bool = False,
                 on_delete: Callable[[Session, dict], None] | None = None,
                 list_requires: tuple[str, ...] = (), order: list[str] | None = None,
                 seed_defaults: dict[str, Any] | None = None):
        self.name = name
        self.table = table
        # what a record made by a user in the client gets from the template the user picks (the posting groups
        # of a customer): the in-process API fills them in when not given; a request over the wire does not
        self.seed_defaults = seed_defaults or {}
        self.fields = [f.bind(table) for f in fields]
        self.by_name = {f.name: f for f in self.fields}
        self.entity_name = entity_name
        self.type_name = f"{namespace}.{entity_name}"
        self.namespace = namespace
        self.before_insert = before_insert
        self.before_modify = before_modify
        self.insertable, self.modifiable, self.deletable = insertable, modifiable, deletable
        self.seedable = seedable
        self.on_delete = on_delete  # the page's OnDeleteRecord (may refuse)
        self.list_requires = list_requires  # a top-level list must filter on one of these (document lines)
        self.navigations: dict[str, Navigation] = {}
        self.actions: dict[str, Callable[[Session, dict], Any]] = {}  # bound actions, POST .../Microsoft.NAV.<name>
        self.exposed = [f for f in self.fields if f.exposed]
        self.exposed_names = {f.name for f in self.exposed}
        self.default_order = order or self._default_order()
        self._plans: dict[tuple[str, ...] | None, list[tuple]] = {}

    @property
    def company_scoped(self) -> bool:
        return self.table.company_scoped

    def _default_order(self) -> list[str]:
        """The table's primary key as view fields (BC reads in primary-key order)."""
        names = []
        for key_column in self.table.key:
            match = next((f.name for f in self.exposed if f.column_name == key_column and f.plain), None)
            if match is None:
                return []
            names.append(match)
        return names

    def field(self, name: str) -> Field | None:
        return self.by_name.get(name)

    # -- reading --------------------------------------------------------------------------------------

    def etag(self, record: dict) -> str:
        tag = record.get("$etag")
        if tag is None:
            tag = record["$etag"] = etag_for(record)
        return tag

    def wire(self, session: Session, record: dict, select: list[str] | None = None) -> dict:
        out = {"@odata.etag": self.etag(record)}
        for name, column, f, convert in self._wire_plan(select):
            value = record[column] if column is not None else f.get(session, record)
            out[name] = convert(value) if convert else value
        return out

    def _wire_plan(self, select: list[str] | None) -> list[tuple]:
        """Per $select, what to show and how: worked out once, as a page of 20,000 rows asks 20,000 times."""
        key = None if select is None else tuple(select)
        plan = self._plans.get(key)
        if plan is None:
            fields = self.exposed if select is None else [self.by_name[name] for name in select]
            plan = self._plans[key] = [(f.name, f.column_name if f.plain else None, f, f.converter) for f in fields]
        return plan

    def python(self, session: Session, record: dict) -> dict:
        out = {f.name: f.get(session, record) for f in self.fields}
        out["@odata.etag"] = self.etag(record)
        return out

    def comparable(self, session: Session, record: dict, name: str) -> Any:
        f = self.by_name[name]
        return f.comparable(f.get(session, record))

    def sortable(self, session: Session, record: dict, name: str) -> Any:
        f = self.by_name[name]
        return f.sortable(f.get(session, record))

    def find_by_key(self, session: Session, key: Any) -> dict | None:
        """The row a key segment names: the SystemId for API entity sets."""
        text = str(key).strip("{}").lower()
        return session.store.get(self.table, session.company, text) if is_guid(text) else None

    def not_found(self, key: Any) -> errors.BCError:
        return errors.record_not_found(self.table.name, [("Id", str(key).strip("{}").lower())])

    # -- writing ----------------------------------------------------------------------------------------

    def _check_names(self, values: dict, wire: bool) -> dict:
        accepted = {}
        for name, value in values.items():
            if wire and name.startswith("@odata."):
                continue
            f = self.by_name.get(name)
            if f is None or (wire and not f.exposed):
                raise errors.unknown_body_property(name, self.type_name)
            if f.read_only and (wire or not f.privileged_writable):
                raise errors.read_only_property(f.caption)
            accepted[name] = f.from_wire(value) if wire else value
        return accepted

    def _apply(self, session: Session, record: dict, values: dict) -> None:
        for f in self.fields:
            if f.name in values:
                f.set(session, self, record, values[f.name])

    def insert(self, session: Session, values: dict, *, wire: bool = True) -> dict:
        if not self.insertable and (wire or not self.seedable):
            raise errors.method_not_allowed("POST", self.name, "EntitySet")
        values = self._check_names(values if wire else {**self.seed_defaults, **values}, wire)
        record = self.table.new_record()
        with session.store.atomic():
            self._apply(session, record, values)
            if self.before_insert is not None:
                self.before_insert(session, record, values)
            return session.insert_row(self.table, record, modified_at=session.scratch.get("modified_at"))

    def modify(self, session: Session, current: dict, values: dict, *, wire: bool = True) -> dict:
        if not self.modifiable and (wire or not self.seedable):
            raise errors.method_not_allowed("PATCH", self.name, "Entity")
        values = self._check_names(values, wire)
        for f in self.fields:  # a SystemId never changes
            if isinstance(f, SystemField) and f.system == "SystemId":
                values.pop(f.name, None)
        record = dict(current)
        with session.store.atomic():
            self._apply(session, record, values)
            if self.before_modify is not None:
                self.before_modify(session, current, record, values)
            return session.modify_row(self.table, current, record, modified_at=session.scratch.get("modified_at"))

    def delete(self, session: Session, current: dict, *, wire: bool = True) -> None:
        if not self.deletable and (wire or not self.seedable):
            raise errors.method_not_allowed("DELETE", self.name, "Entity")
        with session.store.atomic():
            if self.on_delete is not None:
                self.on_delete(session, current)
            session.delete_row(self.table, current)


class PageView(View):
    """A page published as an OData v4 web service: keyed by the table's primary key, e.g.
    `CustomerCard('C00010')`; property names are the page's control names (`Shipping_Agent_Code`).
    `key` names the key fields when the real page's table has a longer key than the simulator's: the
    orders' table is keyed by No. alone, BC's Sales Header by (Document Type, No.), so `SalesOrder` is
    keyed `(Document_Type='Order',No='101001')` with Document_Type computed; a key naming another value
    for a computed field finds nothing."""

    kind = "page"

    def __init__(self, name: str, table: Table, fields: list[Field], *, key: tuple[str, ...] = (), **kwargs):
        kwargs.setdefault("namespace", "NAV")
        super().__init__(name, table, fields, entity_name=name, **kwargs)
        self.key_fields = [self.by_name[name] for name in key] or [
            next(f for f in self.fields if f.column_name == column and f.plain) for column in table.key]

    def key_values(self, key: Any) -> tuple | None:
        """The key fields' values in key order from a parsed key segment: a tuple of positional values,
        or (name, value) pairs as `Item_No='1000',Starting_Date=2024-01-01` gives them (any order)."""
        if isinstance(key, list):
            if all(name is None for name, _ in key):
                key = tuple(value for _, value in key)
            else:
                given = {name: value for name, value in key}
                if None in given or set(given) != {f.name for f in self.key_fields}:
                    return None
                key = tuple(given[f.name] for f in self.key_fields)
        values = key if isinstance(key, tuple) else (key,)
        return values if len(values) == len(self.key_fields) else None

    def find_by_key(self, session: Session, key: Any) -> dict | None:
        values = self.key_values(key)
        if values is None:
            return None
        stored, computed = {}, []
        for f, value in zip(self.key_fields, values):
            if not f.plain:
                computed.append((f, value))
                continue
            try:
                stored[f.column_name] = f.column.normalize(value)
            except (errors.BCError, ValueError):
                return None
        record = session.store.find(self.table, session.company, tuple(stored[column] for column in self.table.key))
        if record is not None and any(f.comparable(f.get(session, record)) != value for f, value in computed):
            return None
        return record

    def not_found(self, key: Any) -> errors.BCError:
        values = self.key_values(key) or (key if isinstance(key, tuple) else (key,))
        return errors.record_not_found(self.table.name, [(f.column_name or f.caption, v)
                                                         for f, v in zip(self.key_fields, values)])

    @staticmethod
    def key_literal(f: Field, value: Any) -> str:
        """A key value as the URL shows it: strings (and enum member names) quoted, dates and numbers bare."""
        if f.type == "date":
            return value.isoformat() if value else EMPTY_DATE_TEXT
        if f.type == "bool":
            return "true" if value else "false"
        if f.type in ("decimal", "integer", "bigint"):
            return str(format_decimal(value))
        if f.type == "guid":
            return str(value)
        return "'" + str(f.to_wire(value)).replace("'", "''") + "'"

    def key_segment(self, session: Session, record: dict) -> str:
        literals = [self.key_literal(f, f.get(session, record)) for f in self.key_fields]
        if len(literals) == 1:
            return f"({literals[0]})"
        return "(" + ",".join(f"{f.name}={q}" for f, q in zip(self.key_fields, literals)) + ")"
