"""In-memory rows, one dict per table, behind one re-entrant lock.

Rows are copy-on-write: a write puts a new `Row` in place of the old one and never mutates a stored
row, so a reader holding a row (a cached query result, a page being serialised) sees a consistent
version. Every change bumps the table's `version`, which invalidates cached query results.

Ordered indexes (`ordered_keys`) keep every row's sort key in one ascending order per column list, updated on
each write, so that a page of a large table costs the rows it walks, not a sort of the table.

`transaction()` records an undo log so that a bulk action or a `$batch` changeset can be rolled back
as a whole when one of its operations fails.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple

from .schema import Schema


class Row:
    """One stored row: column values plus, for polymorphic lookups, the table each points into."""

    __slots__ = ("values", "targets")

    def __init__(self, values: dict, targets: dict | None = None):
        self.values = values
        self.targets = targets or {}

    @property
    def version(self) -> int:
        return self.values["versionnumber"]

    @property
    def etag(self) -> str:
        return f'W/"{self.values["versionnumber"]}"'


def sort_component(value) -> tuple:
    """A value as one component of a sort key: nulls first, text compared case-insensitively."""
    if value is None:
        return (0,)
    if isinstance(value, str):
        return (1, value.casefold())
    return (1, value)


class Event(NamedTuple):
    """A message that ran on a row (Create, Update, Delete): what the event pipeline's post-operation steps see."""

    message: str
    table: str
    row_id: str
    target: dict           # the columns the request named, in stored form (empty for a delete)
    targets: dict          # lookup column -> table it points into
    caller: str | None     # the systemuser who made the request
    version: int | None    # the row's version after the write (None for a delete)


class Table:
    def __init__(self, logical_name: str):
        self.logical_name = logical_name
        self.rows: dict[str, Row] = {}
        self.version = 0


class Store:
    FIRST_VERSION = 1000000

    def __init__(self, schema: Schema):
        self.schema = schema
        self.lock = threading.RLock()
        self.tables: dict[str, Table] = {name: Table(name) for name in schema.entities}
        self.row_version = self.FIRST_VERSION
        self._undo: list | None = None
        self.query_cache: OrderedDict = OrderedDict()
        # change tracking: (table, id, version of the delete), in delete order
        self.deleted: list[tuple[str, str, int]] = []
        # unique indexes, built on first use: (table, columns) -> {normalised values: row id}
        self.indexes: dict[tuple[str, tuple[str, ...]], dict[tuple, str]] = {}
        # auto-number sequences: (table, column) -> last number handed out (gaps on rollback, as in Dataverse)
        self.sequences: dict[tuple[str, str], int] = {}
        # ordered indexes, built on first use: (table, sort columns) -> sorted keys (components..., primary id)
        self.orders: dict[tuple[str, tuple[str, ...]], list[tuple]] = {}
        # the messages run in the open transaction, handed to `on_commit` when it commits and dropped on rollback
        self.events: list[Event] = []
        self.on_commit: Callable[[list[Event]], None] | None = None

    def clear(self) -> None:
        with self.lock:
            self.tables = {name: Table(name) for name in self.schema.entities}
            self.row_version = self.FIRST_VERSION
            self.query_cache.clear()
            self.deleted = []
            self.indexes = {}
            self.sequences = {}
            self.orders = {}
            self.events = []

    def next_version(self) -> int:
        self.row_version += 1
        return self.row_version

    def table(self, logical_name: str) -> Table:
        return self.tables[logical_name]

    def get(self, logical_name: str, row_id: str) -> Row | None:
        return self.tables[logical_name].rows.get(row_id)

    def put(self, logical_name: str, row_id: str, row: Row) -> None:
        table = self.tables[logical_name]
        old = table.rows.get(row_id)
        if self._undo is not None:
            self._undo.append((logical_name, row_id, old))
        table.rows[row_id] = row
        table.version += 1
        self._reindex(logical_name, row_id, old, row)

    def remove(self, logical_name: str, row_id: str) -> None:
        table = self.tables[logical_name]
        old = table.rows.pop(row_id, None)
        if old is not None:
            if self._undo is not None:
                self._undo.append((None, None, len(self.deleted)))
                self._undo.append((logical_name, row_id, old))
            self.deleted.append((logical_name, row_id, self.next_version()))
            table.version += 1
            self._reindex(logical_name, row_id, old, None)

    def note(self, event: Event) -> None:
        """A message ran on a row; told to `on_commit` once its transaction commits."""
        self.events.append(event)
        if self._undo is None:
            self._committed()

    def _committed(self) -> None:
        events, self.events = self.events, []
        if events and self.on_commit is not None:
            self.on_commit(events)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing: undo every put/remove made inside when the block raises. The messages run inside are
        told to `on_commit` after it commits (never for a rollback)."""
        with self.lock:
            if self._undo is not None:  # nested: the outer transaction decides
                yield
                return
            self._undo = []
            events_before = len(self.events)
            try:
                yield
            except BaseException:
                del self.events[events_before:]
                for logical_name, row_id, old in reversed(self._undo):
                    if logical_name is None:  # the delete log as it was before a remove
                        del self.deleted[old:]
                        continue
                    table = self.tables[logical_name]
                    current = table.rows.get(row_id)
                    if old is None:
                        table.rows.pop(row_id, None)
                    else:
                        table.rows[row_id] = old
                    table.version += 1
                    self._reindex(logical_name, row_id, current, old)
                raise
            finally:
                self._undo = None
            self._committed()

    # ------------------------------------------------------------------ unique indexes

    @staticmethod
    def index_key(values: dict, columns: tuple[str, ...]) -> tuple | None:
        """Normalised key of a row for a column set; None when a column is empty (not indexed)."""
        key = []
        for column in columns:
            value = values.get(column)
            if value is None:
                return None
            key.append(value.casefold() if isinstance(value, str) else value)
        return tuple(key)

    def find_unique(self, logical_name: str, columns: tuple[str, ...], values: dict) -> str | None:
        """The id of the row whose `columns` equal those in `values` (case-insensitive), if any."""
        key = self.index_key(values, columns)
        if key is None:
            return None
        index = self.indexes.get((logical_name, columns))
        if index is None:
            index = self.indexes[(logical_name, columns)] = {}
            for row_id, row in self.tables[logical_name].rows.items():
                row_key = self.index_key(row.values, columns)
                if row_key is not None:
                    index.setdefault(row_key, row_id)
        return index.get(key)

    # ------------------------------------------------------------------ ordered indexes

    def order_key(self, logical_name: str, values: dict, columns: tuple[str, ...]) -> tuple:
        return tuple(sort_component(values.get(c)) for c in columns) + (values[self.schema[logical_name].primary_id],)

    def ordered_keys(self, logical_name: str, columns: tuple[str, ...]) -> list[tuple] | None:
        """Every row's key in ascending order of `columns`, then the primary id; None when the values do not sort."""
        index = self.orders.get((logical_name, columns))
        if index is None:
            try:
                index = sorted(self.order_key(logical_name, row.values, columns)
                               for row in self.tables[logical_name].rows.values())
            except TypeError:
                return None
            self.orders[(logical_name, columns)] = index
        return index

    def _reorder(self, logical_name: str, old: Row | None, new: Row | None) -> None:
        for (name, columns), keys in list(self.orders.items()):
            if name != logical_name:
                continue
            try:
                if old is not None:
                    old_key = self.order_key(name, old.values, columns)
                    at = bisect_left(keys, old_key)
                    if at < len(keys) and keys[at] == old_key:
                        del keys[at]
                if new is not None:
                    insort(keys, self.order_key(name, new.values, columns))
            except TypeError:  # a value that does not sort with the others: the index is given up
                del self.orders[(name, columns)]

    def _reindex(self, logical_name: str, row_id: str, old: Row | None, new: Row | None) -> None:
        if old is not new:
            self._reorder(logical_name, old, new)
        for (name, columns), index in self.indexes.items():
            if name != logical_name:
                continue
            if old is not None:
                old_key = self.index_key(old.values, columns)
                if old_key is not None and index.get(old_key) == row_id:
                    del index[old_key]
            if new is not None:
                new_key = self.index_key(new.values, columns)
                if new_key is not None:
                    index.setdefault(new_key, row_id)
