"""Azure Table Storage behind the domain's stores: couplings, sync state, leases, runs and errors.

| table            | PartitionKey | RowKey                      | holds                                      |
|------------------|--------------|-----------------------------|--------------------------------------------|
| <p>couplings     | mapping, side, bucket * | <id>             | one coupling, stored under each side's id  |
| <p>couplings     | mapping, "journal" *    | <uuid>           | coupling writes begun, not finished; new   |
|                  |                         |                  | rows whose follow-up writes are not done   |
| <p>state         | mapping      | watermark:<direction>       | the watermark of a mapping and direction   |
| <p>state         | mapping      | writeback:<row id>          | a write-back to Sales begun, not finished  |
| <p>state         | mapping      | inserting:<source id>       | a Business Central insert sent, not coupled |
| <p>state         | mapping      | versions:<direction>:<n>    | versions a full job left, ids and versions  |
| <p>state         | mapping      | versions:<direction>:added: | versions another mapping's job added (a     |
|                  |              | <uuid>:<n>                  | rule's writes), until the job reads them   |
| <p>state         | mapping      | notified:<direction>:<id>   | a row a notification named, for a targeted |
|                  |              |                             | job ("*": a collection, read the changes)  |
| <p>state         | mapping      | notified run                | the targeted run waiting for those rows    |
| <p>state         | lease        | <name>                      | who holds a lease, until when              |
| <p>state         | facts        | <name>                      | a fact about a service's set-up, read when |
| <p>runs          | index        | <inverted time>-<run id>    | newest-first list of runs                  |
| <p>runs          | index:       | <inverted time>-<run id>    | the same, of targeted runs (listed apart)  |
|                  | targeted     |                             |                                            |
| <p>runs          | <run id>     | run, job:<job id>           | the run and each of its jobs               |
| <p>errors        | mapping      | <direction>:<source id>     | a record that failed, until it succeeds    |

* joined by "|": `CUSTOMER|bc|0a`, `CUSTOMER|crm|03`, `CUSTOMER|journal`.

A coupling is stored twice, under the id of each side, in one of COUPLING_BUCKETS partitions per side
chosen by a hash of that id. The two rows of a coupling are in different partitions, so no transaction
covers both: a journal row lists the pairs before they are written and goes after, and
CouplingTable.recover completes whatever a crash left between. Transactions of 100 operations of one
partition go in parallel, deletes included. Bulk reads ask for many row keys per query, several queries
in parallel, or read one side's partitions by range when that takes fewer requests, so the engine never
pays one storage round trip per record.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import sys
import uuid
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.data.tables import RequestTooLargeError, TableClient, TableTransactionError, UpdateMode
from azure.storage.queue import QueueClient

from sync.config import MappingOverride, stored_problem
from sync.engine import Counts, JobMode
from sync.errors import (
    AuthenticationError,
    ConcurrencyError,
    ConfigurationError,
    ServiceUnavailableError,
    TerminalError,
)
from sync.model import Direction, Side
from sync.notifications import Change
from sync.ports import Clock, Coupling, Fact, FollowUp, JobState, PendingInsert, RecordFailure, WriteBack
from sync.runs import Job, JobStatus, Run, RunKind, RunStatus
from sync.schedule import MappingSchedule
from sync.targeted import NotifiedRow

from .telemetry import count_request, map_in_context
from .transactions import submit_transaction

KEYS_PER_QUERY = 14      # Table Storage allows 15 comparisons per filter; one is the partition
TRANSACTION_SIZE = 100   # operations per entity-group transaction
TRANSACTION_ATTEMPTS = 3  # a transaction of upserts is sent again when its connection broke
SCAN_PAGE = 1000         # entities per answer of a query
# Fewer ids than this are looked up by key, even where a range query might cost fewer requests: key queries go in
# parallel and answer with the ids' couplings only, while a range query reads its answers one after another, up to a
# thousand couplings each. A scheduled run's few changed rows in a large table were looked up by reading most of it.
SCAN_MIN_IDS = SCAN_PAGE // 10
# A mapping's couplings spread over this many partitions per side: Azurite filters a partition linearly on
# every write (20,000 upserts take 138 s in one partition, 25 s in 16), and Azure serves one partition from
# one server (about 2,000 entities/s). More buckets would cost more requests for a handful of couplings.
COUPLING_BUCKETS = 16
VERSIONS_PER_ROW = 250   # known versions per row: an id and a version are under 100 of a property's 32K characters
MARKER_ATTEMPTS = 5      # tries at the marker of the targeted run that waits for a mapping (StateTable.join_waiting_run)
JOURNAL_PAIRS = 300      # pairs per journal row: 300 pairs of GUIDs are about 24,000 of a property's 32K characters

log = logging.getLogger("bcsync.storage")


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.timezone.utc).isoformat() if value else None


def _dt(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _key(value: str) -> str:
    """Row/partition keys may not contain / \\ # ?; ids and mapping names never do, but be safe."""
    for bad in "/\\#?":
        value = value.replace(bad, "_")
    return value


_PARTITION = re.compile(r"PartitionKey(?: eq | ge |=)'([^']*)'")
_TABLE_IN_BATCH = re.compile(r"/([A-Za-z][A-Za-z0-9]{2,62})\(PartitionKey")
_HEAD = 4096  # characters of a transaction's body that hold its first operation


def _purpose(partition: str) -> str:
    """A partition key without what varies per record or bucket: `CUSTOMER|bc|0a` -> `CUSTOMER|bc`."""
    partition = unquote(partition)
    return partition.rsplit("|", 1)[0] if re.search(r"\|(bc|crm)\|[0-9a-f]{2}$", partition) else partition


class _RequestCounter(SansIOHTTPPolicy):
    """Requests sent, in all and by what they were for: (operation, table, partition), read from the request
    (for a benchmark's account of where storage requests go; the partition of a range query is its lower end)."""

    def __init__(self):
        self.count = 0
        self.by_purpose: Counter[tuple[str, str, str]] = Counter()

    def on_request(self, request):
        self.count += 1
        http = request.http_request
        path = unquote(http.url.split("?", 1)[0].rsplit("/", 1)[-1])
        table = path.split("(", 1)[0]
        if table == "$batch":
            # a transaction is one partition of one table, both named by its first operation: only the body's head
            # is read, so that counting costs little next to sending up to 100 entities
            body = http.body[:_HEAD] if isinstance(http.body, (str, bytes)) else b""
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            operation, found = "transaction", re.search(r'"PartitionKey":\s*"([^"]*)"|PartitionKey=\'([^\']*)\'', text)
            named = _TABLE_IN_BATCH.search(text)
            table = named.group(1) if named else "?"
            partition = (found.group(1) or found.group(2)) if found else "?"
        else:
            operation = {"GET": "query" if "(" not in path or "$filter" in http.url else "get"}.get(
                http.method, http.method.lower())
            found = _PARTITION.search(unquote(http.url))
            partition = found.group(1) if found else ""
        self.by_purpose[(operation, table, _purpose(partition))] += 1


class _Refusals(SansIOHTTPPolicy):
    """A 401 or 403 from storage is a credential problem, terminal, and the message says what to fix
    (the SDK's own bearer-token policy has already tried a fresh token by then)."""

    def __init__(self, hint: str):
        self.hint = hint

    def on_response(self, request, response):
        status = response.http_response.status_code
        if status in (401, 403):
            code = response.http_response.headers.get("x-ms-error-code") or response.http_response.reason
            raise AuthenticationError(f"Azure Storage refused bcsync (HTTP {status} {code})"
                                      + (f": {self.hint}." if self.hint else "."), code=str(code or ""), status=status)


@dataclass(frozen=True)
class StorageAccount:
    """Where the storage account is and how bcsync proves itself to it: a connection string (an account
    key), or table and queue endpoints with a token credential. `hint` says what to fix when the account
    refuses us; shared/identity.py builds this from the settings."""

    connection_string: str | None = None
    table_url: str | None = None
    queue_url: str | None = None
    credential: Any = None
    ca_bundle: str | None = None
    hint: str = ""

    def _options(self, policies: Sequence[SansIOHTTPPolicy]) -> dict:
        options: dict[str, Any] = {"per_call_policies": [_Refusals(self.hint), *policies]}
        if self.ca_bundle:
            options["connection_verify"] = self.ca_bundle  # a test CA; passed per client so no env var overrides it
        return options

    def table_client(self, table: str, *policies: SansIOHTTPPolicy, **kwargs) -> TableClient:
        options = {**self._options(policies), **kwargs}
        if self.connection_string:
            return TableClient.from_connection_string(self.connection_string, table, **options)
        return TableClient(self.table_url, table, credential=self.credential, **options)

    def queue_client(self, queue: str, **kwargs) -> QueueClient:
        options = {**self._options(()), **kwargs}
        if self.connection_string:
            return QueueClient.from_connection_string(self.connection_string, queue, **options)
        return QueueClient(self.queue_url, queue, credential=self.credential, **options)


def counting_responses(service: str):
    """An SDK client's raw_response_hook: each answer (retries included) counted with its status."""
    return lambda response: count_request(service, response.http_response.status_code)


# bcsync's tables, each named with BCSYNC_TABLE_PREFIX in front
TABLE_NAMES = ("couplings", "errors", "state", "runs", "config")


class TableStorage:
    """The storage account: creates the tables once and hands out table clients (`read_only`: for the connection
    check, which writes nothing and answers in seconds: tables are not created, and requests not retried)."""

    def __init__(self, account: StorageAccount, prefix: str = "bcsync", read_only: bool = False):
        self.account = account
        self.read_only = read_only
        self._counter = _RequestCounter()
        self.prefix = prefix
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tables")

    @property
    def requests_sent(self) -> int:
        return self._counter.count

    @property
    def requests_by_purpose(self) -> Counter[tuple[str, str, str]]:
        return self._counter.by_purpose

    def table(self, name: str) -> TableClient:
        full = f"{self.prefix}{name}"
        with self._lock:
            if full not in self._tables:
                client = self.account.table_client(full, self._counter,
                                                   raw_response_hook=counting_responses("Table Storage"),
                                                   **({"retry_total": 0} if self.read_only else {}))
                with storage_errors():
                    try:
                        if not self.read_only:
                            client.create_table()
                    except ResourceExistsError:
                        pass
                self._tables[full] = client
            return self._tables[full]


class KnownVersions(dict):
    """Known versions as StateTable.known_versions read them, with the keys of the rows that hold them, which
    save_known_versions replaces without reading them again."""

    def __init__(self, versions: dict[str, str], row_keys: list[str]):
        super().__init__(versions)
        self.row_keys = row_keys


def _known(rows: list[dict]) -> KnownVersions:
    """Known versions from their rows of the state table, with those rows' keys."""
    return KnownVersions({i: v for e in rows for i, v in json.loads(e["versions"])},
                         row_keys=[e["RowKey"] for e in rows])

class storage_errors:
    """Context manager: storage trouble in the domain's terms. A 5xx, a timeout or a dropped connection is transient
    (the job is retried); any other refusal (400 for a key it does not accept, 413, 431) is terminal, as the same
    request gets the same answer. What callers handle themselves passes through: not found, exists, modified, and a
    transaction's refusal, which the caller reads (a delete of what is gone)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError)) or (
                isinstance(exc, TableTransactionError) and not isinstance(exc, RequestTooLargeError)):
            return False
        status = exc.status_code if isinstance(exc, HttpResponseError) else None
        if isinstance(exc, (ServiceRequestError, ServiceResponseError)) or (
                isinstance(exc, HttpResponseError) and (status or 500) >= 500) or status in (408, 429):
            raise ServiceUnavailableError(f"Table Storage: {exc}") from exc
        if status is not None and 400 <= status < 500:
            code = str(getattr(exc, "error_code", None) or exc.reason or "")
            said = next(iter(str(exc.message or "").splitlines()), "")[:300]  # its first line: it may echo a 60 kB key
            raise TerminalError(f"Azure Storage refused a request (HTTP {status} {code}): {said}", code=code,
                                status=status) from exc
        return False


def _transact(storage: TableStorage, table: TableClient, operations: list[tuple], build=None) -> None:
    """Entity-group transactions of up to TRANSACTION_SIZE operations of one partition, sent in parallel.
    An entity written twice is written once, as it was last given (a transaction refuses duplicates, and
    parallel ones would race); callers keep the operations that must succeed together adjacent, in even
    numbers, so that no chunk splits them. `build`: operations carry only the entities' keys, and
    build(operation) gives the operation to send, made as its transaction is sent, so that the entities of
    many operations are not all in memory at once."""
    by_partition: dict[str, dict[str, tuple]] = {}
    for op in operations:
        by_partition.setdefault(op[1]["PartitionKey"], {})[op[1]["RowKey"]] = op
    chunks = [ops[start:start + TRANSACTION_SIZE] for ops in (list(p.values()) for p in by_partition.values())
              for start in range(0, len(ops), TRANSACTION_SIZE)]

    def submit(chunk: list[tuple]) -> None:
        # The SDK does not resend a POST whose connection broke after it was sent (as when the server
        # closes an idle keep-alive connection just then); a transaction of upserts can safely go again.
        chunk = [build(op) for op in chunk] if build else chunk
        resendable = all(op[0] == "upsert" for op in chunk)
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                with storage_errors():
                    submit_transaction(table, chunk)
                return
            except ServiceUnavailableError as exc:
                if not resendable or attempt == TRANSACTION_ATTEMPTS or not isinstance(
                        exc.__cause__, ServiceResponseError):
                    raise

    if len(chunks) == 1:
        submit(chunks[0])
    else:
        list(map_in_context(storage.pool, submit, chunks))


def _delete(storage: TableStorage, table: TableClient, groups: list[list[dict]], etags: dict[str, str] | None = None) \
        -> None:
    """Delete entities (given by their keys) in transactions, each group within one; a transaction that
    fails because an entity is gone already is redone one entity at a time. `etags`: by RowKey, the versions
    to delete only (one changed since is left, as one gone is)."""
    def etag(key: dict) -> dict:
        found = (etags or {}).get(key["RowKey"])
        return {"etag": found} if found else {}

    def remove(chunk: list[list[dict]]) -> None:
        try:
            _transact(storage, table, [("delete", key, etag(key)) for group in chunk for key in group])
        except TableTransactionError:
            for key in (key for group in chunk for key in group):
                with storage_errors():
                    try:
                        table.delete_entity(key["PartitionKey"], key["RowKey"], **etag(key), **(
                            {"match_condition": MatchConditions.IfNotModified} if etag(key) else {}))
                    except (ResourceNotFoundError, ResourceModifiedError):
                        pass

    chunks, chunk, size = [], [], 0
    for group in sorted(groups, key=lambda g: g[0]["PartitionKey"]):  # a transaction holds one partition
        if size + len(group) > TRANSACTION_SIZE or (chunk and chunk[0][0]["PartitionKey"] != group[0]["PartitionKey"]):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(group)
        size += len(group)
    if chunk:
        chunks.append(chunk)
    list(map_in_context(storage.pool, remove, chunks))


def _key_queries(keys: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """The queries that look up these (partition, row key) pairs: one partition and KEYS_PER_QUERY keys each."""
    by_partition: dict[str, list[str]] = {}
    for partition, row_key in keys:
        by_partition.setdefault(partition, []).append(row_key)
    return [(partition, rows[i:i + KEYS_PER_QUERY]) for partition, rows in by_partition.items()
            for i in range(0, len(rows), KEYS_PER_QUERY)]


def _query_keys(storage: TableStorage, table: TableClient, queries: list[tuple[str, list[str]]]) -> list[dict]:
    """Entities by key (see _key_queries), many keys per query and queries in parallel."""
    def one(query: tuple[str, list[str]]) -> list[dict]:
        partition, row_keys = query
        params = {"pk": partition, **{f"r{i}": key for i, key in enumerate(row_keys)}}
        keys = " or ".join(f"RowKey eq @r{i}" for i in range(len(row_keys)))
        with storage_errors():
            return list(table.query_entities(f"PartitionKey eq @pk and ( {keys} )", parameters=params))

    if len(queries) == 1:
        return one(queries[0])
    return [entity for result in map_in_context(storage.pool, one, queries) for entity in result]


def _bucket(id_: str) -> str:
    """Two hex digits; ids that differ only in case (GUIDs as the services spell them) share a bucket."""
    return f"{zlib.crc32(id_.lower().encode()) % COUPLING_BUCKETS:02x}"


_SIDES = (Side.BC, Side.CRM)
_HELD = ("mapping", "bc_id", "crm_id", "bc_etag", "crm_etag", "bc_values", "crm_values", "synced_at", "job_id")
# a held coupling is one string of its stored fields, compressed: a tuple of nine strings takes about 500 bytes more
# per coupling, and the string itself is mostly its snapshots' field names (about 1.8 kB for a customer, under a
# third of that compressed); tens of MB for a side of 100,000 rows, and a job may hold three sides. Neither separator occurs
# in ids, versions, times or JSON.
_SEPARATOR, _NONE = "\x1f", "\x00"
_HELD_LEVEL = 1  # zlib's fastest: a coupling is packed per row saved and unpacked per lookup


def _packed(entity: dict) -> bytes:
    text = _SEPARATOR.join(_NONE if (v := entity.get(f)) is None else v for f in _HELD)
    return zlib.compress(text.encode(), _HELD_LEVEL)


def _unpacked(packed: bytes) -> dict:
    text = zlib.decompress(packed).decode()
    return {f: None if v == _NONE else v for f, v in zip(_HELD, text.split(_SEPARATOR))}


def _snapshot(text: str | None) -> dict:
    """A coupling's snapshot, its field names shared by every coupling (each parse makes its own: two snapshots of
    20 names came to some 3 kB per coupling, and a batch looks up thousands)."""
    return {sys.intern(name): value for name, value in json.loads(text or "{}").items()}


_EARLIEST = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
# A coupling's row is written whole (every property, see CouplingTable._entity), so insert-or-merge stores what
# insert-or-replace would, at the same cost on Azure; Azurite, though, replaces by deleting and inserting, which
# shifts every entity of the table in its in-memory indexes, and merges in place.
_WHOLE = {"mode": UpdateMode.MERGE}


class CouplingTable:
    """Couplings, each stored once per side (see the module's notes). Built-in mapping names never hold
    "|", so the partitions of one mapping (`<mapping>|...`) never meet another's nor the first layout's
    single partition per mapping (`<mapping>`)."""

    def __init__(self, storage: TableStorage):
        self.storage = storage
        self.table = storage.table("couplings")
        self.transact = partial(_transact, storage, self.table)
        self._sizes: dict[tuple[str, Side], int] = {}  # couplings per mapping and side, as last counted
        self._current: set[str] = set()  # mappings whose couplings this process found in today's layout
        self._lock = threading.Lock()
        # couplings of a mapping's side held in memory (see held): by row key, their stored fields; None until read
        self._held: dict[tuple[str, Side], dict[str, bytes] | None] = {}
        self._partly: set[tuple[str, Side]] = set()  # held sides whose missing ids are looked up in storage
        self._held_lock = threading.Lock()  # not _lock: _migrate saves while it holds that one

    @staticmethod
    def _address(mapping: str, side: Side, id_: str) -> tuple[str, str]:
        return f"{_key(mapping)}|{side.value}|{_bucket(id_)}", _key(id_)

    @classmethod
    def _row(cls, mapping: str, side: Side, id_: str) -> dict:
        return dict(zip(("PartitionKey", "RowKey"), cls._address(mapping, side, id_)))

    @staticmethod
    def _side_range(mapping: str, side: Side) -> dict[str, str]:
        """Query parameters lo and hi bounding every partition of one side: "}" sorts right after "|"."""
        return {"lo": f"{_key(mapping)}|{side.value}|", "hi": f"{_key(mapping)}|{side.value}}}"}

    @staticmethod
    def _journal_partition(mapping: str) -> str:
        return f"{_key(mapping)}|journal"

    @classmethod
    def _entity(cls, c: Coupling, side: Side) -> dict:
        """Every property present, blanks as "" (a property left out would keep its old value under a merge)."""
        partition, row = cls._address(c.mapping, side, c.id_on(side))
        return {
            "PartitionKey": partition, "RowKey": row,
            "mapping": c.mapping, "bc_id": c.bc_id, "crm_id": c.crm_id, "bc_etag": c.bc_etag or "",
            "crm_etag": c.crm_etag or "", "bc_values": json.dumps(c.bc_values, default=str),
            "crm_values": json.dumps(c.crm_values, default=str), "synced_at": _iso(c.synced_at) or "",
            "job_id": c.job_id or "",
        }

    @staticmethod
    def _coupling(e: dict) -> Coupling:
        return Coupling(e["mapping"], e["bc_id"], e["crm_id"], e.get("bc_etag") or None, e.get("crm_etag") or None,
                        _snapshot(e.get("bc_values")), _snapshot(e.get("crm_values")),
                        _dt(e.get("synced_at")), e.get("job_id") or "")

    @contextmanager
    def held(self, mapping: str, side: Side, complete: bool = True) -> Iterator[None]:
        """While open, get_many of the side answers from memory: its couplings are read once, by one range query
        over its partitions (a thousand per request), at the first lookup, and what this store saves or deletes
        meanwhile is applied to them. A full job looks every row's coupling up: this costs fewer requests than
        looking them up page by page (a range query per page once the table is large), and spares Azurite, which
        filters the whole table on every query, those queries. Held as one string of the stored fields each (JSON not
        parsed until looked up). Not `complete`: ids missing from memory are looked up in storage (for a mapping
        whose own jobs, under their own lease, may couple more meanwhile)."""
        key = (mapping, side)
        with self._held_lock:
            mine = key not in self._held  # else held already, by the job that runs this one (a record synced first)
            self._held.setdefault(key, None)
            if mine and not complete:
                self._partly.add(key)
        try:
            yield
        finally:
            if mine:
                with self._held_lock:
                    self._held.pop(key, None)
                    self._partly.discard(key)

    def _held_couplings(self, mapping: str, side: Side) -> dict[str, bytes] | None:
        key = (mapping, side)
        if key not in self._held:
            return None
        with self._held_lock:
            if key in self._held and self._held[key] is None:
                with storage_errors():
                    entities = self.table.query_entities("PartitionKey ge @lo and PartitionKey lt @hi",
                                                         parameters=self._side_range(mapping, side),
                                                         select=["RowKey", *_HELD], results_per_page=SCAN_PAGE)
                    self._held[key] = {e["RowKey"]: _packed(e) for e in entities}
            return self._held.get(key)

    def _hold(self, changes: Iterable[tuple[str, Side, str, bytes | None]]) -> None:
        """Couplings saved (their fields) or deleted (None), by mapping, side and row key, applied to those held."""
        with self._held_lock:
            for mapping, side, row, fields in changes:
                held = self._held.get((mapping, side))
                if held is not None and fields is None:
                    held.pop(row, None)
                elif held is not None:
                    held[row] = fields

    def get_many(self, mapping: str, side: Side, ids: Sequence[str]) -> dict[str, Coupling]:
        """Many keys per query, one bucket per query; when the ids are many (SCAN_MIN_IDS) and the mapping's
        couplings few enough, one range query over the side instead, cut short when it costs what the key queries
        would.
        Held couplings (see held) are answered from memory."""
        self._migrate(mapping)
        held, result = self._held_couplings(mapping, side), {}
        if held is not None:
            found = (held.get(_key(i)) for i in ids)
            result = {c.id_on(side): c for c in (self._coupling(_unpacked(p)) for p in found if p)}
            if (mapping, side) not in self._partly:
                return result
            ids = [i for i in ids if i not in result]
        keys = sorted({self._address(mapping, side, i) for i in ids})
        if not keys:
            return result
        queries = len(_key_queries(keys))
        known = self._sizes.get((mapping, side))
        entities: list = []
        if queries > 1 and (known is None or -(-known // SCAN_PAGE) < queries) and len(keys) >= SCAN_MIN_IDS:
            entities, keys = self._scan(mapping, side, keys, queries - 1)
        if keys:
            entities += _query_keys(self.storage, self.table, _key_queries(keys))
        found = (self._coupling(e) for e in entities)
        return {**result, **{c.id_on(side): c for c in found}}

    def _scan(self, mapping: str, side: Side, keys: list[tuple[str, str]], pages: int) -> tuple[list, list]:
        """The entities of `keys` (sorted (partition, row key) pairs) found by a range query over the side's
        partitions, reading at most `pages` answers; and the keys past where it stopped, still to be looked up.
        The answers come sorted by partition, then row key, as the keys are."""
        wanted, found, seen, last = set(keys), [], 0, ("", "")
        with storage_errors():
            answers = self.table.query_entities("PartitionKey ge @lo and PartitionKey lt @hi",
                                                parameters=self._side_range(mapping, side),
                                                results_per_page=SCAN_PAGE).by_page()
            for read, answer in enumerate(answers, start=1):
                for entity in answer:
                    seen += 1
                    last = (entity["PartitionKey"], entity["RowKey"])
                    if last in wanted:
                        found.append(entity)
                if read >= pages and answers.continuation_token:
                    return found, [k for k in keys if k > last]
        self._sizes[(mapping, side)] = seen  # read to the end: how many there are, for the next choice
        return found, []

    def save_many(self, couplings: Sequence[Coupling], follow_up: FollowUp | None = None) -> None:
        for mapping in {c.mapping for c in couplings}:
            self._migrate(mapping)
        self._save(couplings, follow_up)

    def followed_up(self, follow_up: FollowUp) -> None:
        if follow_up.note:
            self._forget(follow_up.note)
            follow_up.note = None

    def _save(self, couplings: Sequence[Coupling], follow_up: FollowUp | None = None) -> None:
        for counted in [k for k in self._sizes if k[0] in {c.mapping for c in couplings}]:
            self._sizes[counted] += len(couplings)  # at most this many more (some were there)
        # the entities (their snapshots in JSON) are made per transaction: a page's couplings held at once
        # as entities were the largest part of a full job's memory
        sources: dict[tuple[str, str], tuple[Coupling, Side]] = {}
        for c in couplings:
            for side in _SIDES:
                sources[self._address(c.mapping, side, c.id_on(side))] = (c, side)
        held: list[tuple[str, Side, str, bytes]] = []  # what the held couplings take once the rows are written

        def build(op: tuple) -> tuple:
            c, side = sources[op[1]["PartitionKey"], op[1]["RowKey"]]
            entity = self._entity(c, side)
            if (c.mapping, side) in self._held:
                held.append((c.mapping, side, entity["RowKey"], _packed(entity)))
            return "upsert", entity, _WHOLE

        self._journaled("save", couplings, follow_up, lambda: self.transact(
            [("upsert", {"PartitionKey": partition, "RowKey": row}) for partition, row in sources], build=build))
        self._hold(held)

    def delete_many(self, couplings: Sequence[Coupling]) -> None:
        for mapping in {c.mapping for c in couplings}:
            self._migrate(mapping)
        self._journaled("delete", couplings, None, lambda: _delete(self.storage, self.table, [
            [self._row(c.mapping, side, c.id_on(side))] for c in couplings for side in _SIDES]))
        self._hold((c.mapping, side, _key(c.id_on(side)), None) for c in couplings for side in _SIDES)

    def _journaled(self, op: str, couplings: Sequence[Coupling], follow_up: FollowUp | None, write) -> None:
        """`write()` the rows of both sides, between a journal of the pairs and its removal: the two rows of a
        coupling are in different partitions, so a crash may leave one written; recover() completes it.
        A follow-up's note goes in the same transactions as the journal (same partition), and both stay until
        followed_up."""
        if not couplings:
            return
        at = _iso(dt.datetime.now(dt.timezone.utc))
        pairs: dict[str, list[list[str]]] = {}
        for c in couplings:
            pairs.setdefault(c.mapping, []).append([c.bc_id, c.crm_id])
        journal = [{"PartitionKey": self._journal_partition(mapping), "RowKey": uuid.uuid4().hex, "op": op, "at": at,
                    "pairs": json.dumps(listed[i:i + JOURNAL_PAIRS])}
                   for mapping, listed in pairs.items() for i in range(0, len(listed), JOURNAL_PAIRS)]
        notes = [{"PartitionKey": self._journal_partition(mapping), "RowKey": uuid.uuid4().hex, "op": "follow-up",
                  "at": at, "direction": follow_up.direction.value,
                  "ids": json.dumps(follow_up.source_ids[i:i + JOURNAL_PAIRS * 2])}
                 for mapping in (pairs if follow_up and follow_up.source_ids else ())
                 for i in range(0, len(follow_up.source_ids), JOURNAL_PAIRS * 2)]
        self.transact([("upsert", entry) for entry in journal + notes])
        write()
        if notes:  # removed with the note, in one transaction (a crash before leaves pairs already complete)
            follow_up.note = journal + notes
        else:
            self._forget(journal)

    def _forget(self, journal: Sequence[dict]) -> None:
        _delete(self.storage, self.table,
                [[{"PartitionKey": e["PartitionKey"], "RowKey": e["RowKey"]}] for e in journal])

    def recover(self, mapping: str) -> list[FollowUp]:
        self._migrate(mapping)
        with storage_errors():
            entries = sorted(self.table.query_entities("PartitionKey eq @pk",
                                                       parameters={"pk": self._journal_partition(mapping)}),
                             key=lambda e: e["at"])
        journal = [e for e in entries if e["op"] != "follow-up"]
        follow_ups = [FollowUp(Direction(e["direction"]), json.loads(e["ids"]),
                               [{"PartitionKey": e["PartitionKey"], "RowKey": e["RowKey"]}])
                      for e in entries if e["op"] == "follow-up"]
        if journal:
            self._complete(mapping, journal)
        return follow_ups

    def _complete(self, mapping: str, journal: list[dict]) -> None:
        pairs = [(e["op"], bc_id, crm_id) for e in journal for bc_id, crm_id in json.loads(e["pairs"])]
        bc_side = self.get_many(mapping, Side.BC, [p[1] for p in pairs])
        crm_side = self.get_many(mapping, Side.CRM, [p[2] for p in pairs])
        stored = {**{(Side.BC, i): c for i, c in bc_side.items()}, **{(Side.CRM, i): c for i, c in crm_side.items()}}
        now = dict(stored)
        completed = 0
        for op, bc_id, crm_id in pairs:
            ends = ((Side.BC, bc_id), (Side.CRM, crm_id))
            # a row that names another pair belongs to a later write of that pair: it is left alone
            ours = [end for end in ends if now.get(end) is None or (now[end].bc_id, now[end].crm_id) == (bc_id, crm_id)]
            written = [now[end] for end in ours if now.get(end) is not None]
            if not written:
                continue
            outcome = None if op == "delete" else max(written, key=lambda c: c.synced_at or _EARLIEST)
            completed += any(now.get(end) != outcome for end in ours)
            now.update((end, outcome) for end in ours)
        changed = [end for end in now if now[end] != stored.get(end)]
        self.transact([("upsert", self._entity(now[end], end[0]), _WHOLE)
                       for end in changed if now[end] is not None])
        _delete(self.storage, self.table, [[self._row(mapping, *end)] for end in changed if now[end] is None])
        self._forget(journal)
        log.info("Couplings of %s: %d left half written by a stopped job completed", mapping, completed)

    def _migrate(self, mapping: str) -> int:
        """Moves the mapping's couplings from the first layout (one partition per mapping, row keys bc:<id> and
        crm:<id>) to today's, once; how many it moved. One query per mapping and process when none are left."""
        if mapping in self._current:
            return 0
        with self._lock:
            if mapping in self._current:
                return 0
            old, moved = _key(mapping), 0
            with storage_errors():
                first = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": old}, select=["RowKey"],
                                                  results_per_page=1).by_page()
                if next(iter(next(first, [])), None) is not None:
                    # the rows of Business Central's side, then any row left without its pair
                    for rows in (" and RowKey ge 'bc:' and RowKey lt 'bc;'", ""):
                        for page in self.table.query_entities(f"PartitionKey eq @pk{rows}", parameters={"pk": old},
                                                              results_per_page=SCAN_PAGE).by_page():
                            couplings = [self._coupling(e) for e in page]
                            self._save(couplings)
                            _delete(self.storage, self.table, [[{"PartitionKey": old,
                                                                 "RowKey": _key(f"{side.value}:{c.id_on(side)}")}
                                                                for side in _SIDES] for c in couplings])
                            moved += len(couplings)
                    log.info("Couplings of %s: %d moved to partitions by side and bucket", mapping, moved)
            self._current.add(mapping)
            return moved

    def coupled_ids(self, mapping: str, side: Side, page_size: int = 1000) -> Iterator[list[str]]:
        self._migrate(mapping)
        column = "bc_id" if side is Side.BC else "crm_id"
        with storage_errors():
            pages = self.table.query_entities("PartitionKey ge @lo and PartitionKey lt @hi",
                                              parameters=self._side_range(mapping, side),
                                              select=[column], results_per_page=page_size).by_page()
            for page in pages:
                ids = [e[column] for e in page]
                if ids:
                    yield ids

    def list(self, mapping: str, limit: int | None = None, where=None) -> list[Coupling]:
        """The couplings of a mapping (that satisfy `where`), streamed from Business Central's side, at most `limit`."""
        self._migrate(mapping)
        with storage_errors():
            entities = self.table.query_entities("PartitionKey ge @lo and PartitionKey lt @hi",
                                                 parameters=self._side_range(mapping, Side.BC))
            result = []
            for e in entities:
                coupling = self._coupling(e)
                if where is None or where(coupling):
                    result.append(coupling)
                if limit and len(result) >= limit:
                    break
            return result


class ErrorTable:
    def __init__(self, storage: TableStorage):
        self.storage = storage
        self.table = storage.table("errors")
        self.transact = partial(_transact, storage, self.table)

    @staticmethod
    def _entity(f: RecordFailure) -> dict:
        return {
            "PartitionKey": _key(f.mapping), "RowKey": _key(f"{f.direction.value}:{f.source_id}"),
            "mapping": f.mapping, "direction": f.direction.value, "source_id": f.source_id, "record": f.record,
            "message": f.message[:30000], "field": f.field, "code": f.code, "target_id": f.target_id,
            "transient": f.transient, "count": f.count, "first_seen": _iso(f.first_seen),
            "last_seen": _iso(f.last_seen), "job_id": f.job_id, "skipped": f.skipped, "source_etag": f.source_etag,
        }

    @staticmethod
    def _failure(e: dict) -> RecordFailure:
        return RecordFailure(
            mapping=e["mapping"], direction=Direction(e["direction"]), source_id=e["source_id"], record=e["record"],
            message=e["message"], field=e.get("field") or "", code=e.get("code") or "", target_id=e.get("target_id") or "",
            transient=bool(e.get("transient")), count=int(e.get("count") or 1), first_seen=_dt(e.get("first_seen")),
            last_seen=_dt(e.get("last_seen")), job_id=e.get("job_id") or "", skipped=bool(e.get("skipped")),
            source_etag=e.get("source_etag"))

    def list(self, mapping: str, direction: Direction) -> list[RecordFailure]:
        lo, hi = f"{direction.value}:", f"{direction.value};"
        with storage_errors():
            entities = self.table.query_entities("PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                                                 parameters={"pk": _key(mapping), "lo": lo, "hi": hi})
            return [self._failure(e) for e in entities]

    def list_all(self) -> list[RecordFailure]:
        with storage_errors():
            return [self._failure(e) for e in self.table.list_entities()]

    def save_many(self, failures: Sequence[RecordFailure]) -> None:
        self.transact([("upsert", self._entity(f), {"mode": UpdateMode.REPLACE}) for f in failures])

    def clear_many(self, mapping: str, direction: Direction, source_ids: Sequence[str]) -> None:
        _delete(self.storage, self.table, [[{"PartitionKey": _key(mapping),
                                             "RowKey": _key(f"{direction.value}:{sid}")}]
                                           for sid in dict.fromkeys(source_ids)])


class StateTable:
    """Watermarks, pending rows and cursors per mapping; schedules; leases."""

    LEASES = "lease"
    SCHEDULES = "schedule"
    FACTS = "facts"

    def __init__(self, storage: TableStorage, clock: Clock):
        self.storage = storage
        self.table = storage.table("state")
        self.transact = partial(_transact, storage, self.table)
        self.clock = clock
        self._lease_etags: dict[tuple[str, str], str] = {}  # (lease, owner) -> ETag, of the leases this process holds

    def watermark(self, mapping: str, direction: Direction) -> dt.datetime | None:
        with storage_errors():
            try:
                return _dt(self.table.get_entity(_key(mapping), f"watermark:{direction.value}").get("value"))
            except ResourceNotFoundError:
                return None

    def advance_watermark(self, mapping: str, direction: Direction, value: dt.datetime) -> None:
        current = self.watermark(mapping, direction)
        if current is None or current < value:
            self.save_watermark(mapping, direction, value)

    def save_watermark(self, mapping: str, direction: Direction, value: dt.datetime) -> None:
        with storage_errors():
            self.table.upsert_entity({"PartitionKey": _key(mapping), "RowKey": f"watermark:{direction.value}",
                                      "value": _iso(value)}, mode=UpdateMode.REPLACE)

    def pending(self, mapping: str, direction: Direction) -> list[str]:
        lo, hi = f"pending:{direction.value}:", f"pending:{direction.value};"
        with storage_errors():
            return [e["source_id"] for e in self.table.query_entities(
                "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                parameters={"pk": _key(mapping), "lo": lo, "hi": hi})]

    def mark_pending(self, mapping: str, direction: Direction, ids: Sequence[str]) -> None:
        self.transact([("upsert", {"PartitionKey": _key(mapping), "RowKey": _key(f"pending:{direction.value}:{i}"),
                                           "source_id": i}) for i in dict.fromkeys(ids)])

    def clear_pending(self, mapping: str, direction: Direction, ids: Sequence[str]) -> None:
        self.transact([("delete", {"PartitionKey": _key(mapping), "RowKey": _key(f"pending:{direction.value}:{i}")})
                               for i in dict.fromkeys(ids)])

    def write_backs(self, mapping: str) -> list[WriteBack]:
        with storage_errors():
            return [WriteBack(e["row_id"], json.loads(e["values"]), e.get("state"), e.get("status"), e.get("version"))
                    for e in self.table.query_entities(
                        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                        parameters={"pk": _key(mapping), "lo": "writeback:", "hi": "writeback;"})]

    def save_write_backs(self, mapping: str, write_backs: Sequence[WriteBack]) -> None:
        self.transact([("upsert", {"PartitionKey": _key(mapping), "RowKey": _key(f"writeback:{w.row_id}"),
                                           "row_id": w.row_id, "values": json.dumps(w.values), "state": w.state,
                                           "status": w.status, "version": w.version}) for w in write_backs])

    def clear_write_backs(self, mapping: str, row_ids: Sequence[str]) -> None:
        self.transact([("delete", {"PartitionKey": _key(mapping), "RowKey": _key(f"writeback:{i}")})
                               for i in dict.fromkeys(row_ids)])

    def pending_inserts(self, mapping: str) -> list[PendingInsert]:
        with storage_errors():
            return [PendingInsert(e["source_id"], json.loads(e["values"]), _dt(e["sent_at"]))
                    for e in self.table.query_entities(
                        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                        parameters={"pk": _key(mapping), "lo": "inserting:", "hi": "inserting;"})]

    def save_pending_inserts(self, mapping: str, inserts: Sequence[PendingInsert]) -> None:
        self.transact([("upsert", {"PartitionKey": _key(mapping), "RowKey": _key(f"inserting:{p.source_id}"),
                                   "source_id": p.source_id, "values": json.dumps(p.values, default=str),
                                   "sent_at": _iso(p.sent_at)}) for p in inserts])

    def clear_pending_inserts(self, mapping: str, source_ids: Sequence[str]) -> None:
        _delete(self.storage, self.table, [[{"PartitionKey": _key(mapping), "RowKey": _key(f"inserting:{i}")}]
                                           for i in dict.fromkeys(source_ids)])

    def known_versions(self, mapping: str, direction: Direction) -> dict[str, str]:
        with storage_errors():
            rows = list(self.table.query_entities(
                "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                parameters={"pk": _key(mapping), **self._versions_range(direction)}))
        return _known(rows)

    def save_known_versions(self, mapping: str, direction: Direction, versions: dict[str, str],
                            replacing: dict[str, str] | None = None) -> None:
        self.save_job_state(mapping, direction, versions=versions, replacing=replacing)

    def job_state(self, mapping: str, direction: Direction, versions: bool = False) -> JobState:
        """One query of the mapping's partition, for the watermark's row and the ranges of cursors, pending and
        notified rows and (with `versions`) known versions: ten comparisons of the fifteen a filter may hold."""
        ranges = {"cursors": ("cursor:", "cursor;"),
                  "pending": (f"pending:{direction.value}:", f"pending:{direction.value};"),
                  "notified": (f"notified:{direction.value}:", f"notified:{direction.value};"),
                  **({"versions": tuple(self._versions_range(direction).values())} if versions else {})}
        parameters = {"pk": _key(mapping), "watermark": f"watermark:{direction.value}",
                      **{f"{name}{end}": bound for name, (lo, hi) in ranges.items()
                         for end, bound in (("_lo", lo), ("_hi", hi))}}
        # (the SDK substitutes parameters between spaces: the parentheses stand apart)
        wanted = " or ".join(["RowKey eq @watermark", *(f"( RowKey ge @{n}_lo and RowKey lt @{n}_hi )" for n in ranges)])
        with storage_errors():
            rows = list(self.table.query_entities(f"PartitionKey eq @pk and ( {wanted} )", parameters=parameters))
        state, version_rows = JobState(), []
        for e in rows:
            key = e["RowKey"]
            if key == parameters["watermark"]:
                state.watermark = _dt(e.get("value"))
            elif key.startswith("cursor:"):
                state.cursors[key[len("cursor:"):]] = e.get("value")
            elif key.startswith("pending:"):
                state.pending.append(e["source_id"])
            elif key.startswith("notified:"):
                state.notified.append(NotifiedRow(e["source_id"], Change(e["change"]), e.metadata["etag"]))
            else:
                version_rows.append(e)
        if versions:
            state.known_versions = _known(version_rows)
        return state

    def save_job_state(self, mapping: str, direction: Direction, *, watermark: dt.datetime | None = None,
                       cursors: dict[str, str] | None = None, versions: dict[str, str] | None = None,
                       replacing: dict[str, str] | None = None) -> None:
        """One transaction of the mapping's partition while all fits in one (100 operations: the watermark, the
        cursors and up to 25,000 known versions), all or nothing. Else several, not atomic: the upserts (side by
        side), then, once all are written, the deletes of the version rows left over. A save cut short leaves the
        watermark and cursors it wrote, and new version rows beside old ones: known versions only spare the next job
        a look at the couplings of rows still of a version it knew, so a version kept too many costs nothing wrong,
        and none is dropped before its replacement is written."""
        pk = _key(mapping)
        upserts = [("upsert", {"PartitionKey": pk, "RowKey": _key(f"cursor:{name}"), "value": value})
                   for name, value in (cursors or {}).items()]
        if watermark is not None:
            upserts.append(("upsert", {"PartitionKey": pk, "RowKey": f"watermark:{direction.value}",
                                       "value": _iso(watermark)}))
        gone = []
        if versions is not None:
            if isinstance(replacing, KnownVersions):
                old = replacing.row_keys     # read by this job, under the mapping's lease: still the rows there
            else:
                with storage_errors():
                    old = [e["RowKey"] for e in self.table.query_entities(
                        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi", select=["PartitionKey", "RowKey"],
                        parameters={"pk": pk, **self._versions_range(direction)})]
            listed = list(versions.items())
            rows = [{"PartitionKey": pk, "RowKey": f"versions:{direction.value}:{n:06d}",
                     "versions": json.dumps(listed[i:i + VERSIONS_PER_ROW])}
                    for n, i in enumerate(range(0, len(listed), VERSIONS_PER_ROW))]
            # the rows written replace the old ones of their keys; those left over are deleted in the same request
            written = {row["RowKey"] for row in rows}
            upserts += [("upsert", row) for row in rows]
            gone = [{"PartitionKey": pk, "RowKey": key} for key in old if key not in written]
        deletes = [("delete", key) for key in gone]
        if not upserts and not deletes:
            return
        try:
            if len(upserts) + len(deletes) <= TRANSACTION_SIZE:
                self.transact(upserts + deletes)
            else:  # (_transact sends its transactions in parallel)
                self.transact(upserts)
                if deletes:
                    self.transact(deletes)
        except TableTransactionError:   # a row to delete is gone already: the upserts alone, then the deletes
            self.transact(upserts)      # one by one where they fail (_delete)
            _delete(self.storage, self.table, [[key] for key in gone])

    def add_known_versions(self, mapping: str, direction: Direction, versions: dict[str, str]) -> None:
        # rows of their own, under keys nobody else writes and sorted after the job's own (which they outdate):
        # read with those, and replaced with them by the job's save_known_versions when it read them
        added = f"versions:{direction.value}:added:{uuid.uuid4().hex}"
        listed = list(versions.items())
        self.transact([("upsert", {"PartitionKey": _key(mapping), "RowKey": f"{added}:{n:06d}",
                                   "versions": json.dumps(listed[i:i + VERSIONS_PER_ROW])})
                       for n, i in enumerate(range(0, len(listed), VERSIONS_PER_ROW))])

    @staticmethod
    def _versions_range(direction: Direction) -> dict[str, str]:
        return {"lo": f"versions:{direction.value}:", "hi": f"versions:{direction.value};"}

    def cursor(self, mapping: str, name: str) -> str | None:
        with storage_errors():
            try:
                return self.table.get_entity(_key(mapping), _key(f"cursor:{name}")).get("value")
            except ResourceNotFoundError:
                return None

    def save_cursor(self, mapping: str, name: str, value: str) -> None:
        with storage_errors():
            self.table.upsert_entity({"PartitionKey": _key(mapping), "RowKey": _key(f"cursor:{name}"), "value": value},
                                     mode=UpdateMode.REPLACE)

    def first_cursor(self, mapping: str, name: str, value: str) -> str:
        """The cursor, `value` if it had none: inserted, never replaced, so that two callers racing keep the same."""
        with storage_errors():
            try:
                self.table.create_entity({"PartitionKey": _key(mapping), "RowKey": _key(f"cursor:{name}"),
                                          "value": value})
                return value
            except ResourceExistsError:
                return self.table.get_entity(_key(mapping), _key(f"cursor:{name}")).get("value")

    def notify(self, mapping: str, direction: Direction, rows: Sequence[NotifiedRow]) -> None:
        self.transact([("upsert", {"PartitionKey": _key(mapping),
                                   "RowKey": _key(f"notified:{direction.value}:{row.record_id}"),
                                   "source_id": row.record_id, "change": row.change.value}, {"mode": UpdateMode.REPLACE})
                       for row in rows])

    def notified(self, mapping: str, direction: Direction) -> list[NotifiedRow]:
        with storage_errors():
            return [NotifiedRow(e["source_id"], Change(e["change"]), e.metadata["etag"])
                    for e in self.table.query_entities(
                        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                        parameters={"pk": _key(mapping), "lo": f"notified:{direction.value}:",
                                    "hi": f"notified:{direction.value};"})]

    def clear_notified(self, mapping: str, direction: Direction, rows: Sequence[NotifiedRow]) -> None:
        """Deletes by ETag: a row notified again meanwhile stays."""
        keys = {_key(f"notified:{direction.value}:{row.record_id}"): row.etag for row in rows}
        _delete(self.storage, self.table, [[{"PartitionKey": _key(mapping), "RowKey": key}] for key in keys], keys)

    NOTIFIED_RUN = "notified run"

    def join_waiting_run(self, mapping: str, run_id: str, stale_before: dt.datetime) -> tuple[str, dt.datetime]:
        """Read first (a notification in a burst joins: one read, no refused create); created if absent; one too old
        is replaced by its ETag. Two receivers racing: one creates it, the other finds it (or, replacing a stale one,
        loses the race and reads again). A marker that keeps moving under it (runs starting and ending meanwhile) has
        it start a run of its own: at worst a spare one."""
        now = self.clock.now()
        entity = {"PartitionKey": _key(mapping), "RowKey": self.NOTIFIED_RUN, "run_id": run_id, "since": _iso(now)}
        with storage_errors():
            for _ in range(MARKER_ATTEMPTS):
                try:
                    current = self.table.get_entity(entity["PartitionKey"], self.NOTIFIED_RUN)
                except ResourceNotFoundError:
                    try:
                        self.table.create_entity(entity)
                        return run_id, now
                    except ResourceExistsError:
                        continue  # another receiver created it just now: read it
                since = _dt(current.get("since"))
                if since >= stale_before:
                    return current["run_id"], since
                try:
                    self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                                             match_condition=MatchConditions.IfNotModified)
                    return run_id, now
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue
        return run_id, now

    def release_waiting_run(self, mapping: str, run_id: str) -> None:
        with storage_errors():
            try:
                current = self.table.get_entity(_key(mapping), self.NOTIFIED_RUN)
                if current.get("run_id") == run_id:
                    self.table.delete_entity(_key(mapping), self.NOTIFIED_RUN, etag=current.metadata["etag"],
                                             match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                pass

    def facts(self) -> dict[str, Fact]:
        with storage_errors():
            return {e["name"]: Fact(json.loads(e["value"]), _dt(e["read_at"]))
                    for e in self.table.query_entities("PartitionKey eq @pk", parameters={"pk": self.FACTS})}

    def save_fact(self, name: str, fact: Fact) -> None:
        with storage_errors():
            self.table.upsert_entity({"PartitionKey": self.FACTS, "RowKey": _key(name), "name": name,
                                      "value": json.dumps(fact.value), "read_at": _iso(fact.read_at)},
                                     mode=UpdateMode.REPLACE)

    def drop_facts(self, names: Sequence[str]) -> None:
        _delete(self.storage, self.table, [[{"PartitionKey": self.FACTS, "RowKey": _key(name)}]
                                           for name in dict.fromkeys(names)])

    def schedules(self) -> dict[str, MappingSchedule]:
        with storage_errors():
            return {e["mapping"]: MappingSchedule(_dt(e.get("last_run_at")), bool(e.get("held")),
                                                  _dt(e.get("last_activity_at")))
                    for e in self.table.query_entities("PartitionKey eq @pk", parameters={"pk": self.SCHEDULES})}

    def save_schedule(self, mapping: str, schedule: MappingSchedule) -> None:
        with storage_errors():
            self.table.upsert_entity({"PartitionKey": self.SCHEDULES, "RowKey": _key(mapping), "mapping": mapping,
                                      "last_run_at": _iso(schedule.last_run_at), "held": schedule.held,
                                      "last_activity_at": _iso(schedule.last_activity_at)}, mode=UpdateMode.REPLACE)

    def acquire(self, name: str, owner: str, until: dt.datetime) -> bool:
        """One request in the usual cases: a free lease is created (a released one is deleted), and one this
        process holds is renewed by its ETag; the lease is read only when someone else may hold it."""
        entity = {"PartitionKey": self.LEASES, "RowKey": _key(name), "owner": owner, "until": _iso(until)}
        with storage_errors():
            held = self._lease_etags.get((name, owner))
            if held is not None:
                try:
                    self._lease_etags[(name, owner)] = self.table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=held,
                        match_condition=MatchConditions.IfNotModified)["etag"]
                    return True
                except (ResourceModifiedError, ResourceNotFoundError):
                    self._lease_etags.pop((name, owner), None)  # changed meanwhile: look at it as anyone would
            try:
                self._lease_etags[(name, owner)] = self.table.create_entity(entity)["etag"]
                return True
            except ResourceExistsError:
                pass
            try:
                current = self.table.get_entity(self.LEASES, _key(name))
            except ResourceNotFoundError:
                return False  # released between our create and our read: whoever takes it next has it
            if current.get("owner") != owner and _dt(current.get("until")) > self.clock.now():
                return False
            try:
                self._lease_etags[(name, owner)] = self.table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified)["etag"]
                return True
            except ResourceModifiedError:
                return False

    def release(self, name: str, owner: str) -> None:
        """Deletes the lease if `owner` still holds it: by the ETag of its last renewal when this process took it
        (one request), else after reading it."""
        with storage_errors():
            etag = self._lease_etags.pop((name, owner), None)
            if etag is None:
                try:
                    current = self.table.get_entity(self.LEASES, _key(name))
                except ResourceNotFoundError:
                    return
                if current.get("owner") != owner:
                    return
                etag = current.metadata["etag"]
            try:
                self.table.delete_entity(self.LEASES, _key(name), etag=etag,
                                         match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                pass


# a dry job's report is kept in one entity (at most 1 MiB, text counted at two bytes a character), in properties of
# at most 64 KiB
REPORT_CHARACTERS = 400_000
REPORT_PART = 30_000


class RunTable:
    INDEX = "index"
    # targeted runs are indexed apart, so that the newest other runs (the timer's look for busy mappings and stranded
    # jobs) are read without the targeted ones between them, which may be many
    TARGETED_INDEX = "index:targeted"

    def __init__(self, storage: TableStorage):
        self.storage = storage
        self.table = storage.table("runs")
        self.transact = partial(_transact, storage, self.table)

    # -- shapes ---------------------------------------------------------------------------------

    @staticmethod
    def _run_entity(run: Run) -> dict:
        return {"PartitionKey": run.run_id, "RowKey": "run", "kind": run.kind.value, "trigger": run.trigger,
                "status": run.status.value, "created_at": _iso(run.created_at), "finished_at": _iso(run.finished_at),
                "mappings": json.dumps(list(run.mappings)), "dry": run.dry,
                **({"company": run.company} if run.company else {})}

    @staticmethod
    def _run(e: Any) -> Run:
        return Run(e["PartitionKey"], RunKind(e["kind"]), e.get("trigger") or "", RunStatus(e["status"]),
                   _dt(e.get("created_at")), _dt(e.get("finished_at")), tuple(json.loads(e.get("mappings") or "[]")),
                   e.metadata.get("etag"), bool(e.get("dry")), e.get("company") or "")

    @staticmethod
    def _job_entity(job: Job) -> dict:
        return {
            "PartitionKey": job.run_id, "RowKey": f"job:{_key(job.job_id)}", "job_id": job.job_id,
            "mapping": job.mapping, "direction": job.direction.value, "depends_on": json.dumps(list(job.depends_on)),
            "seq": job.seq, "mode": job.mode.value, "recommendation": job.recommendation, "reason": job.reason,
            "status": job.status.value, "counts": json.dumps(job.counts.as_dict()),
            "notes": json.dumps([n[:500] for n in job.notes[:40]]), "message": job.message[:30000],
            "attempts": job.attempts, "attempts_without_progress": job.attempts_without_progress,
            "queued_at": _iso(job.queued_at), "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at),
            "checkpoint": _iso(job.checkpoint), "lease_until": _iso(job.lease_until),
        }

    @staticmethod
    def _job(e: Any) -> Job:
        return Job(
            run_id=e["PartitionKey"], job_id=e["job_id"], mapping=e["mapping"], direction=Direction(e["direction"]),
            depends_on=tuple(json.loads(e.get("depends_on") or "[]")), seq=int(e.get("seq") or 0),
            mode=JobMode(e.get("mode") or "incremental"), recommendation=e.get("recommendation") or "",
            reason=e.get("reason") or "",
            status=JobStatus(e["status"]), counts=Counts.from_dict(json.loads(e.get("counts") or "{}")),
            notes=json.loads(e.get("notes") or "[]"), message=e.get("message") or "", attempts=int(e.get("attempts") or 0),
            attempts_without_progress=int(e.get("attempts_without_progress") or 0),
            queued_at=_dt(e.get("queued_at")), started_at=_dt(e.get("started_at")),
            finished_at=_dt(e.get("finished_at")), checkpoint=_dt(e.get("checkpoint")),
            lease_until=_dt(e.get("lease_until")), etag=e.metadata.get("etag"))

    # -- RunStore -------------------------------------------------------------------------------

    def create(self, run: Run, jobs: Sequence[Job]) -> None:
        inverted = self._index_key(run.created_at)
        with storage_errors():
            self.table.upsert_entity({"PartitionKey": self._index(run), "RowKey": f"{inverted}-{run.run_id}",
                                      "run_id": run.run_id})
        self.transact([("upsert", self._run_entity(run))] + [("upsert", self._job_entity(j)) for j in jobs])

    def get(self, run_id: str) -> Run | None:
        with storage_errors():
            try:
                return self._run(self.table.get_entity(_key(run_id), "run"))
            except ResourceNotFoundError:
                return None

    def list_runs(self, limit: int = 20, targeted: bool | None = None) -> list[Run]:
        """The newest first: of one index (`targeted`: the partition of notified runs, else that of the others), or
        of both merged."""
        partitions = [p for p, kind in ((self.INDEX, False), (self.TARGETED_INDEX, True)) if targeted in (None, kind)]
        with storage_errors():
            rows = sorted((e["RowKey"], e["run_id"]) for pk in partitions for e in islice(self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": pk}, select=["RowKey", "run_id"], results_per_page=limit),
                limit))
        return [run for run in (self.get(run_id) for _, run_id in rows[:limit]) if run is not None]

    def older_than(self, when: dt.datetime) -> Iterator[Run]:
        with storage_errors():
            for pk in (self.INDEX, self.TARGETED_INDEX):
                entries = self.table.query_entities(
                    "PartitionKey eq @pk and RowKey gt @lo", parameters={"pk": pk, "lo": self._index_key(when)},
                    select=["RowKey", "run_id"])
                for entry in entries:
                    run = self.get(entry["run_id"])
                    if run is None:  # its rows went, the index row did not (a purge that stopped halfway)
                        self.table.delete_entity(pk, entry["RowKey"])
                    else:
                        yield run

    def delete(self, run: Run) -> None:
        with storage_errors():
            entities = list(self.table.query_entities("PartitionKey eq @pk", parameters={"pk": _key(run.run_id)},
                                                      select=["PartitionKey", "RowKey"]))
            self.transact([("delete", e) for e in entities])
            try:  # the index row last: a crash before it leaves the run listed, and purged next time
                self.table.delete_entity(self._index(run), f"{self._index_key(run.created_at)}-{run.run_id}")
            except ResourceNotFoundError:
                pass

    def _index(self, run: Run) -> str:
        return self.TARGETED_INDEX if run.kind is RunKind.NOTIFIED else self.INDEX

    @staticmethod
    def _index_key(when: dt.datetime) -> str:
        """Newest first: the index sorts by an inverted millisecond timestamp."""
        return f"{10 ** 13 - int(when.timestamp() * 1000):013d}"

    def jobs(self, run_id: str) -> list[Job]:
        with storage_errors():
            entities = self.table.query_entities("PartitionKey eq @pk and RowKey ge 'job:' and RowKey lt 'job;'",
                                                 parameters={"pk": _key(run_id)})
            return sorted((self._job(e) for e in entities), key=lambda j: j.seq)

    def get_job(self, run_id: str, job_id: str) -> Job | None:
        with storage_errors():
            try:
                return self._job(self.table.get_entity(_key(run_id), f"job:{_key(job_id)}"))
            except ResourceNotFoundError:
                return None

    def _save(self, entity: dict, etag: str | None) -> str:
        with storage_errors():
            try:
                meta = self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                                match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError) as exc:
                raise ConcurrencyError(f"{entity['PartitionKey']}/{entity['RowKey']} changed meanwhile") from exc
        return meta.get("etag")

    def save_job(self, job: Job) -> Job:
        job.etag = self._save(self._job_entity(job), job.etag)
        return job

    def save_run(self, run: Run) -> Run:
        run.etag = self._save(self._run_entity(run), run.etag)
        return run

    def save_report(self, run_id: str, job_id: str, report: dict) -> None:
        """In parts of at most REPORT_PART characters (a property's limit); records are left out, the last
        first, until the whole fits in an entity."""
        text = json.dumps(report)
        while len(text) > REPORT_CHARACTERS and report["records"]:
            report = {**report, "records": report["records"][:len(report["records"]) // 2], "truncated": True}
            text = json.dumps(report)
        parts = {f"part{i}": text[at:at + REPORT_PART] for i, at in enumerate(range(0, len(text), REPORT_PART))}
        with storage_errors():
            self.table.upsert_entity({"PartitionKey": _key(run_id), "RowKey": f"report:{_key(job_id)}",
                                      "job_id": job_id, "parts": len(parts), **parts}, mode=UpdateMode.REPLACE)

    def reports(self, run_id: str) -> dict[str, dict]:
        with storage_errors():
            entities = self.table.query_entities("PartitionKey eq @pk and RowKey ge 'report:' and RowKey lt 'report;'",
                                                 parameters={"pk": _key(run_id)})
            return {e["job_id"]: json.loads("".join(e[f"part{i}"] for i in range(int(e["parts"]))))
                    for e in entities}


class MappingConfigTable:
    """Users' overrides of the built-in table mappings, one row per mapping."""

    PARTITION = "mapping"

    def __init__(self, storage: TableStorage):
        self.table = storage.table("config")

    def load(self) -> dict[str, MappingOverride]:
        """The stored overrides; one that no longer validates stops every run until it is fixed or reset."""
        overrides, problems = self.load_checked()
        if problems:
            raise ConfigurationError(next(iter(problems.values())))
        return overrides

    def load_checked(self) -> tuple[dict[str, MappingOverride], dict[str, str]]:
        """The stored overrides that validate, and what is wrong with the others (by mapping), so that
        the mappings can still be listed and the bad override reset."""
        overrides, problems = {}, {}
        with storage_errors():
            entities = list(self.table.query_entities("PartitionKey eq @pk", parameters={"pk": self.PARTITION}))
        for e in entities:
            try:
                overrides[e["name"]] = MappingOverride.from_dict(json.loads(e["override"]))
            except (ValueError, TypeError, ConfigurationError) as exc:
                problems[e["name"]] = stored_problem(e["name"], getattr(exc, "message", str(exc)))
        return overrides, problems

    def save(self, name: str, override: MappingOverride) -> None:
        with storage_errors():
            self.table.upsert_entity({"PartitionKey": self.PARTITION, "RowKey": _key(name), "name": name,
                                      "override": json.dumps(override.to_dict())}, mode=UpdateMode.REPLACE)

    def delete(self, name: str) -> None:
        with storage_errors():
            try:
                self.table.delete_entity(self.PARTITION, _key(name))
            except ResourceNotFoundError:
                pass
