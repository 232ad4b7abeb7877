"""The database underneath every view: per-company tables of rows keyed by SystemId.

Rows change only through `Store.insert/modify/delete`, which keep the primary-key index and the
table's secondary indexes, stamp SystemCreatedAt/SystemModifiedAt from the clock in SQL `datetime`
ticks (writes may tie), bump the row version (the etag changes on every write), and journal the old row when a transaction
is open so that a `$batch` with `Isolation: snapshot` can be rolled back. `Store.atomic()` opens
such a transaction (or a nested part of one) around a write and its triggers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import random
import threading
import time
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Any, Callable

from . import errors
from .model import EMPTY_GUID, UTC, Column, NumberSeries, Table

EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))


def new_guid() -> str:
    """A random (version 4) GUID as text; faster than str(uuid.uuid4()) for bulk seeding."""
    text = "%032x" % ((random.getrandbits(128) & _VERSION_MASK) | _VERSION_4)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class SqlClock:
    """SystemModifiedAt as SQL Server's `datetime` keeps it: the real time rounded to ticks of 1/300 s (so
    milliseconds end in 0, 3 or 7). Writes within one tick share a stamp, as they do in the service: the
    stamp follows the clock, never runs ahead of it under a burst of writes."""

    def __init__(self, source: Callable[[], dt.datetime] | None = None):
        self.source = source or (lambda: dt.datetime.now(UTC))
        self._system = source is None  # the real clock: read it as integer nanoseconds (cheaper)

    def now(self) -> dt.datetime:
        if self._system:
            micros = time.time_ns() // 1000
        else:
            moment = self.source()
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            micros = (moment - EPOCH) // dt.timedelta(microseconds=1)
        ticks = (micros * 3 + 5000) // 10000
        return EPOCH + dt.timedelta(milliseconds=(ticks * 10 + 1) // 3)


@dataclass
class TableData:
    rows: dict[str, dict] = field(default_factory=dict)  # SystemId -> record
    by_key: dict[tuple, str] = field(default_factory=dict)  # primary key -> SystemId
    numbers: dict[NumberSeries, str] = field(default_factory=dict)  # number series -> last number used
    # secondary index: columns -> values -> SystemIds (a dict used as an ordered set)
    indexes: dict[tuple[str, ...], dict[tuple, dict[str, None]]] = field(default_factory=dict)
    # the rows in the order of an $orderby, built when first asked for (by the query layer)
    orders: dict[tuple, "OrderIndex"] = field(default_factory=dict)

    def index_add(self, record: dict) -> None:
        for columns, index in self.indexes.items():
            index.setdefault(tuple(record[c] for c in columns), {})[record["SystemId"]] = None
        for order in self.orders.values():
            order.add(record)

    def index_remove(self, record: dict) -> None:
        for columns, index in self.indexes.items():
            values = tuple(record[c] for c in columns)
            bucket = index.get(values)
            if bucket is not None:
                bucket.pop(record["SystemId"], None)
                if not bucket:
                    del index[values]
        for order in self.orders.values():
            order.remove(record)

    def order(self, spec: tuple, key: Callable[[dict], tuple]) -> "OrderIndex":
        """The rows sorted by `key` (then SystemId); `spec` names the ordering, `key` computes it."""
        found = self.orders.get(spec)
        if found is None:
            found = self.orders[spec] = OrderIndex(key, self.rows.values())
        return found


class OrderIndex:
    """(sort key, SystemId) of every row, sorted, and kept so by every write and undo: a page of a
    large table is found by bisecting, not by sorting the table again."""

    __slots__ = ("key", "entries", "keys")

    def __init__(self, key: Callable[[dict], tuple], rows):
        self.key = key
        self.keys: dict[str, tuple] = {record["SystemId"]: key(record) for record in rows}
        self.entries: list[tuple[tuple, str]] = sorted((k, system_id) for system_id, k in self.keys.items())

    def add(self, record: dict) -> None:
        system_id, key = record["SystemId"], self.key(record)
        self.keys[system_id] = key
        insort(self.entries, (key, system_id))

    def remove(self, record: dict) -> None:
        system_id = record["SystemId"]
        key = self.keys.pop(system_id, None)  # the key it was filed under, even if the row changed in place since
        if key is None:
            return
        position = bisect_left(self.entries, (key, system_id))
        if position < len(self.entries) and self.entries[position] == (key, system_id):
            del self.entries[position]


@dataclass
class Company:
    id: str
    name: str
    lcy_code: str
    tables: dict[str, TableData] = field(default_factory=dict)

    def data(self, table: Table) -> TableData:
        found = self.tables.get(table.name)
        if found is None:
            found = self.tables[table.name] = TableData(indexes={columns: {} for columns in table.indexes})
        return found


def etag_for(record: dict) -> str:
    """`W/"<base64>"` where the base64 decodes to `'44;<hash>1;00;'`, as BC's etags do."""
    digest = hashlib.sha256(f"{record['SystemId']}:{record['$version']}".encode()).digest()
    inner = f"'44;{base64.b64encode(digest).decode()}1;00;'"
    return 'W/"' + base64.b64encode(inner.encode()).decode() + '"'


class Store:
    """All companies' tables plus the tables shared by the environment (Company)."""

    def __init__(self, clock: Callable[[], dt.datetime] | None = None):
        self.lock = threading.RLock()
        self.clock = SqlClock(clock)
        self.environment = Company(EMPTY_GUID, "", "")  # holds tables that are not per company
        self.companies: dict[str, Company] = {}
        self.generation = 0  # bumped on every change; query caches key on it
        self._version = 0
        self._journal: list[tuple] | None = None
        self.listeners: list[Callable[[str, Company, Table, dict | None, dict | None], None]] = []

    # -- companies ------------------------------------------------------------------------------------

    def company(self, company_id: str) -> Company:
        return self.companies[company_id]

    def container(self, table: Table, company: Company | None) -> TableData:
        return (company if table.company_scoped else self.environment).data(table)

    # -- reads ------------------------------------------------------------------------------------------

    def get(self, table: Table, company: Company | None, system_id: str) -> dict | None:
        return self.container(table, company).rows.get(system_id.lower())

    def find(self, table: Table, company: Company | None, key: tuple) -> dict | None:
        data = self.container(table, company)
        system_id = data.by_key.get(key)
        return data.rows.get(system_id) if system_id else None

    def rows(self, table: Table, company: Company | None) -> list[dict]:
        return list(self.container(table, company).rows.values())

    def find_all(self, table: Table, company: Company | None, columns: tuple[str, ...], values: tuple) -> list[dict]:
        """Rows whose `columns` hold `values` (through the table's index on them, else by scanning)."""
        data = self.container(table, company)
        index = data.indexes.get(columns)
        if index is None:
            return [r for r in data.rows.values() if tuple(r[c] for c in columns) == values]
        return [data.rows[system_id] for system_id in index.get(values, ())]

    # -- field assignment (what Validate does at table level) --------------------------------------------

    def assign(self, table: Table, company: Company | None, record: dict, column: str, value: Any,
               resolve: Callable[[str], Table]) -> None:
        """Set `record[column]`: type conversion and length, the field's own check, table relation."""
        col: Column = table.column(column)
        value = col.normalize(value)
        if col.check is not None and value:
            col.check(value)
        if col.relation and value not in ("", None):
            related = resolve(col.relation)
            if self.find(related, company, (value,)) is None:
                raise errors.table_relation(col.name, table.name, value, related.name)
        record[column] = value

    # -- writes -------------------------------------------------------------------------------------------

    def _stamp(self, record: dict) -> None:
        self._version += 1
        record["$version"] = self._version
        record.pop("$etag", None)

    def _log(self, entry: tuple) -> None:
        if self._journal is not None:
            self._journal.append(entry)

    def _notify(self, change: str, company: Company | None, table: Table, old: dict | None, new: dict | None) -> None:
        for listener in list(self.listeners):
            listener(change, company, table, old, new)

    def next_number(self, table: Table, company: Company | None, series: NumberSeries | None = None) -> str:
        """Next number from the table's series (or another series numbering it), skipping numbers taken."""
        with self.lock:
            return self._next_number(table, company, series or table.series)

    def _next_number(self, table: Table, company: Company | None, series: NumberSeries) -> str:
        data = self.container(table, company)
        last = data.numbers.get(series)
        self._log(("series", table, company, series, last))
        number = series.after(last)
        while (number,) in data.by_key:
            number = series.after(number)
        data.numbers[series] = number
        return number

    def insert(self, table: Table, company: Company | None, record: dict, user: str,
               modified_at: dt.datetime | None = None) -> dict:
        with self.lock:
            return self._insert(table, company, record, user, modified_at)

    def _insert(self, table: Table, company: Company | None, record: dict, user: str,
                modified_at: dt.datetime | None) -> dict:
        data = self.container(table, company)
        key = table.key_of(record)
        if key in data.by_key:
            raise errors.record_exists(table.name, table.key_fields(key))
        record = dict(record)
        system_id = (record.get("SystemId") or EMPTY_GUID).lower()
        if system_id == EMPTY_GUID:
            system_id = new_guid()
        if system_id in data.rows:
            raise errors.record_exists(table.name, [("SystemId", system_id)])
        now = self.clock.now()
        record.update({"SystemId": system_id, "SystemCreatedAt": now, "SystemCreatedBy": user,
                       "SystemModifiedAt": modified_at or now, "SystemModifiedBy": user})
        self._stamp(record)
        data.rows[system_id] = record
        data.by_key[key] = system_id
        data.index_add(record)
        self.generation += 1
        self._log(("row", table, company, system_id, None))
        self._notify("created", company, table, None, record)
        return record

    def modify(self, table: Table, company: Company | None, record: dict, user: str,
               modified_at: dt.datetime | None = None) -> dict:
        """Write a changed copy of an existing row (renaming it when its primary key changed)."""
        with self.lock:
            return self._modify(table, company, record, user, modified_at)

    def _modify(self, table: Table, company: Company | None, record: dict, user: str,
                modified_at: dt.datetime | None) -> dict:
        data = self.container(table, company)
        system_id = record["SystemId"]
        old = data.rows.get(system_id)
        if old is None:
            raise errors.record_not_found(table.name, table.key_fields(table.key_of(record)))
        old_key, new_key = table.key_of(old), table.key_of(record)
        if new_key != old_key and new_key in data.by_key:
            raise errors.record_exists(table.name, table.key_fields(new_key))
        record = dict(record)
        record["SystemModifiedAt"] = modified_at or self.clock.now()
        record["SystemModifiedBy"] = user
        self._stamp(record)
        if new_key != old_key:
            del data.by_key[old_key]
            data.by_key[new_key] = system_id
        data.index_remove(old)
        data.rows[system_id] = record
        data.index_add(record)
        self.generation += 1
        self._log(("row", table, company, system_id, old))
        self._notify("updated", company, table, old, record)
        return record

    def delete(self, table: Table, company: Company | None, system_id: str) -> dict:
        with self.lock:
            return self._delete(table, company, system_id)

    def _delete(self, table: Table, company: Company | None, system_id: str) -> dict:
        data = self.container(table, company)
        old = data.rows.pop(system_id)
        del data.by_key[table.key_of(old)]
        data.index_remove(old)
        self.generation += 1
        self._log(("row", table, company, system_id, old))
        self._notify("deleted", company, table, old, None)
        return old

    # -- transactions ----------------------------------------------------------------------------------

    def begin(self) -> None:
        self._journal = []

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        journal, self._journal = self._journal or [], None
        self._undo(journal)

    def atomic(self) -> "_Atomic":
        """All writes inside succeed together or are undone together (nests inside a `$batch` snapshot)."""
        return _Atomic(self)

    def _undo(self, journal: list[tuple]) -> None:
        for entry in reversed(journal):
            if entry[0] == "series":
                _, table, company, series, last = entry
                numbers = self.container(table, company).numbers
                if last is None:
                    numbers.pop(series, None)
                else:
                    numbers[series] = last
                continue
            _, table, company, system_id, old = entry
            data = self.container(table, company)
            current = data.rows.pop(system_id, None)
            if current is not None:
                data.by_key.pop(table.key_of(current), None)
                data.index_remove(current)
            if old is not None:
                data.rows[system_id] = old
                data.by_key[table.key_of(old)] = system_id
                data.index_add(old)
        self.generation += 1


class _Atomic:
    """`with store.atomic():` — holds the store lock; on an exception undoes the writes made inside."""

    __slots__ = ("store", "outer", "mark")

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self) -> None:
        store = self.store
        store.lock.acquire()
        self.outer = store._journal is not None
        if not self.outer:
            store._journal = []
        self.mark = len(store._journal)

    def __exit__(self, kind, error, traceback) -> None:
        store = self.store
        try:
            if kind is not None:
                undo = store._journal[self.mark:]
                del store._journal[self.mark:]
                if not self.outer:
                    store._journal = None
                store._undo(undo)
            elif not self.outer:
                store._journal = None
        finally:
            store.lock.release()
