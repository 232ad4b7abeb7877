"""Business Central API v2.0 client, and the engine's view of Business Central (Endpoint).

Records are addressed in the company given by the settings. Enum values travel XML-escaped
(a blank is `_x0020_`); the endpoint decodes them on read and encodes them on write, so the engine
sees plain text.

Writes go in JSON `$batch` requests of up to 100 inner requests without an atomicity group: each
inner request succeeds or fails on its own, so one bad row never fails the rest of its chunk. Id
lists are read with `in` filters (`$schemaversion=2.1`, which Business Central 26 understands), as
many ids per request as a URL of moderate length holds.
"""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Sequence
from urllib.parse import quote, urlencode

import requests

from sync.errors import ConcurrencyError, NotFoundError, RecordError, SyncError
from sync.facts import BC_COMPANY_NAME, running
from sync.model import BcTable, Side
from sync.ports import NewRow, Record, RowChange, WriteResult

from .http import ApiClient, odata_error, response_body
from .odata import both, chunked, consumed, follow_pages, literal, odata_datetime, parse_datetime
from .telemetry import map_in_context

API_PATH = "api/v2.0"
PAGE_PATH = "ODataV4"
MAX_PAGE_SIZE = 20000
BATCH_SIZE = 100  # inner requests per $batch: the service refuses more
URL_BUDGET = 12_000  # characters of an encoded `in` filter, so that a query URL stays well under 16 KB
IN_SCHEMA = {"$schemaversion": "2.1"}  # `in` is refused under the default schema version

ALREADY_EXISTS = frozenset({"Internal_EntityWithSameKeyExists"})
STALE_VERSION = frozenset({"Request_EntityChanged"})
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def error_of(status: int, body: Any) -> SyncError:
    """A Business Central error answer (a whole response's, or one inner answer of a `$batch`) as the domain's error."""
    return odata_error("Business Central", status, body, already_exists_codes=ALREADY_EXISTS,
                       concurrency_codes=STALE_VERSION)


def parse_error(response: requests.Response) -> SyncError:
    return error_of(response.status_code, response_body(response))


def decode_enum(value: Any) -> Any:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), value) if isinstance(value, str) else value


def encode_enum(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return "".join(c if c.isalnum() or c == "_" else f"_x{ord(c):04X}_" for c in value)


@dataclass(frozen=True)
class Inner:
    """One request of a `$batch`: its method, its path as `collection()` and `item()` give it (under
    `api/v2.0` or `ODataV4`; one `$batch` holds requests under one of them), its body and headers."""

    method: str
    path: str
    body: dict | None = None
    headers: dict[str, str] | None = None


class BusinessCentralClient:
    """API v2.0 entity sets (`api/v2.0/companies(<id>)/<set>`) and published page web services
    (`ODataV4/Company('<name>')/<service>`) of one company."""

    HEADERS = {"Accept": "application/json"}

    def __init__(self, api: ApiClient, company_id: str):
        self.api = api
        self.company_id = company_id
        self._company_name: str | None = None

    def company_name(self) -> str:
        """Addresses the company's pages: kept across runs while a job runs (sync.facts), else for the process."""
        facts = running()
        if facts is not None:
            return facts.get(BC_COMPANY_NAME, self.read_company_name)
        if self._company_name is None:
            self._company_name = self.read_company_name()
        return self._company_name

    def read_company_name(self) -> str:
        return self.api.get_json(f"{API_PATH}/companies({self.company_id})", headers=self.HEADERS)["name"]

    def collection(self, table: BcTable) -> str:
        if table.is_page:
            name = quote(self.company_name().replace(chr(39), chr(39) * 2), safe='')
            return f"{PAGE_PATH}/Company('{name}')/{table.entity_set}"
        return f"{API_PATH}/companies({self.company_id})/{table.entity_set}"

    def item(self, table: BcTable, address: str) -> str:
        """A row's URL: by id for API entity sets, by its key for page services."""
        return f"{self.collection(table)}({quote(address, safe=chr(39) + '(),=:@')})"

    def pages(self, table: BcTable, *, select: Sequence[str] = (), filter: str = "", orderby: str = "",
              top: int | None = None, page_size: int = 500, schema: dict[str, str] | None = None
              ) -> Iterator[list[dict]]:
        headers = {**self.HEADERS, "Prefer": f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"}
        return follow_pages(self.api, self.collection(table), _params(select, filter, orderby, top, schema), headers)

    # requests for a `$batch`, built here so that every request bcsync makes is shaped in this class

    def create(self, table: BcTable, body: dict) -> Inner:
        return Inner("POST", self.collection(table), body)

    def update(self, table: BcTable, address: str, body: dict, etag: str | None) -> Inner:
        return Inner("PATCH", self.item(table, address), body, {"If-Match": etag or "*"})

    def delete(self, table: BcTable, address: str) -> Inner:
        return Inner("DELETE", self.item(table, address), None, {"If-Match": "*"})

    def action(self, table: BcTable, address: str, name: str) -> Inner:
        """A page's [ServiceEnabled] procedure, bound to one row: `SalesOrder(...)/NAV.Release`."""
        return Inner("POST", f"{self.item(table, address)}/NAV.{name}", None)

    def read(self, table: BcTable, *, select: Sequence[str], filter: str,
             schema: dict[str, str] | None = None) -> Inner:
        query = urlencode(_params(select, filter, "", None, schema))
        prefer = {"Prefer": f"odata.maxpagesize={MAX_PAGE_SIZE}"}
        return Inner("GET", f"{self.collection(table)}?{query}", headers=prefer)

    def batch(self, requests_: Sequence[Inner]) -> list[dict | SyncError]:
        """Send requests of one root (API or page services) as JSON `$batch`es of at most BATCH_SIZE, in order.

        No atomicity group and no `Isolation: snapshot`: every inner request succeeds or fails on its own
        and has its own answer. Each item of the result is the inner answer (a dict with status, headers
        and body) or, for all requests of a `$batch` that failed as a whole, the SyncError it raised.
        """
        answers: list = []
        for chunk in chunked(list(requests_), BATCH_SIZE):
            try:
                answers += self._batch(chunk)
            except SyncError as exc:
                answers += [exc] * len(chunk)
        return answers

    def _batch(self, chunk: Sequence[Inner]) -> list[dict]:
        root = PAGE_PATH if chunk[0].path.startswith(PAGE_PATH + "/") else API_PATH
        body = {"requests": [_inner_json(str(n), root, r) for n, r in enumerate(chunk)]}
        # reads, If-Match updates and deletes may be sent again after a lost answer; creates may not (see insert)
        idempotent = all(r.method in ("GET", "PATCH", "DELETE") for r in chunk)
        headers = {**self.HEADERS, "Content-Type": "application/json"}
        response = self.api.request("POST", f"{root}/$batch", json=body, headers=headers, idempotent=idempotent)
        by_id = {str(a.get("id")): a for a in response.json().get("responses", [])}
        missing = {"status": 500, "body": {"error": {"code": "", "message": "no answer in the $batch response"}}}
        return [by_id.get(str(n), missing) for n in range(len(chunk))]

    def companies(self) -> list[dict]:
        return self.api.get_json(f"{API_PATH}/companies", headers=self.HEADERS).get("value", [])

    # webhook subscriptions: the environment's (`api/v2.0/subscriptions`), each naming its company in `resource`

    def resource(self, entity_set: str) -> str:
        """What a subscription to one of this company's entity sets names."""
        return f"/{API_PATH}/companies({self.company_id})/{entity_set}"

    def subscriptions(self) -> list[dict]:
        return self.api.get_json(f"{API_PATH}/subscriptions", headers=self.HEADERS).get("value", [])

    def subscribe(self, entity_set: str, url: str, client_state: str) -> dict:
        """Business Central first POSTs the validation handshake to `url`; the subscription only if it was answered."""
        body = {"notificationUrl": url, "resource": self.resource(entity_set), "clientState": client_state}
        return self.api.request("POST", f"{API_PATH}/subscriptions", json=body, headers=self.HEADERS).json()

    def renew_subscription(self, subscription: dict, url: str, client_state: str) -> dict:
        """A new expiry three days on (after the handshake again), with this URL and client state."""
        body = {"notificationUrl": url, "resource": subscription["resource"], "clientState": client_state}
        headers = {**self.HEADERS, "If-Match": subscription.get("@odata.etag") or "*"}
        return self.api.request("PATCH", _subscription(subscription), json=body, headers=headers).json()

    def unsubscribe(self, subscription: dict) -> None:
        self.api.request("DELETE", _subscription(subscription), headers={**self.HEADERS, "If-Match": "*"})


def _subscription(subscription: dict) -> str:
    key = str(subscription["subscriptionId"]).replace("'", "''")
    return f"{API_PATH}/subscriptions('{quote(key, safe=chr(39))}')"


def _params(select: Sequence[str], filter: str, orderby: str, top: int | None,
           schema: dict[str, str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if select:
        params["$select"] = ",".join(select)
    if filter:
        params["$filter"] = filter
    if orderby:
        params["$orderby"] = orderby
    if top:
        params["$top"] = str(top)
    params.update(schema or {})
    return params


def _inner_json(request_id: str, root: str, request: Inner) -> dict:
    item: dict[str, Any] = {"id": request_id, "method": request.method, "url": request.path[len(root) + 1:],
                            "headers": {**BusinessCentralClient.HEADERS, **(request.headers or {})}}
    if request.body is not None:
        item["body"] = request.body
        item["headers"]["Content-Type"] = "application/json"
    return item


def answer_row(answer: dict | SyncError, sent: dict | None = None) -> dict:
    """The row an inner answer of a `$batch` carries, or its error raised as the domain's error. A data
    error that names no field but quotes a value `sent` has names the field that value was sent in."""
    if isinstance(answer, SyncError):
        raise answer
    status, body = int(answer.get("status", 500)), answer.get("body")
    if status >= 400:
        error = error_of(status, body)
        if isinstance(error, RecordError) and not error.field and sent:
            error.field = next((name for name, value in sent.items() if isinstance(value, str) and value
                                and (f'"{value}"' in error.message or f"'{value}'" in error.message)), "")
        raise error
    return body if isinstance(body, dict) else {}


def in_filters(field: str, values: Sequence[Any], where: str = "") -> Iterator[str]:
    """`field in (...)` filters (with `where` and-ed), each as many values as URL_BUDGET holds."""
    def condition(literals: list[str]) -> str:
        # a one-value list is plain `eq`, which every OData parser takes
        return both(where, f"{field} eq {literals[0]}" if len(literals) == 1 else f"{field} in ({','.join(literals)})")

    chunk: list[str] = []
    size = 0
    for value in dict.fromkeys(values):
        text = literal(value)
        cost = len(quote(text, safe="")) + 3
        if chunk and size + cost > URL_BUDGET:
            yield condition(chunk)
            chunk, size = [], 0
        chunk.append(text)
        size += cost
    if chunk:
        yield condition(chunk)


def page_key(table: BcTable, row: dict) -> str:
    """`'R0010'` or `Item_No='1000',Sales_Type='Customer_x0020_Price_x0020_Group',...` for a page row."""
    def lit(name: str) -> str:
        value = row.get(name)
        if isinstance(value, str) and name in table.enum_fields:
            value = encode_enum(value)
        if isinstance(value, str) and _DATE.match(value):
            return value
        return literal(value if value is not None else "")

    if len(table.page_keys) == 1:
        return lit(table.page_keys[0])
    return ",".join(f"{name}={lit(name)}" for name in table.page_keys)


class BusinessCentralEndpoint:
    """Endpoint over API v2.0 entity sets and page web services, with companion pages merged in."""

    side = Side.BC

    def __init__(self, client: BusinessCentralClient, write_concurrency: int = 1):
        self.client = client
        self.write_concurrency = write_concurrency
        self._keys: dict[str, str] = {}  # page row id -> key, learnt on read, needed to address a write

    # -- shapes ---------------------------------------------------------------------------------

    @staticmethod
    def _own(table: BcTable, fields: Sequence[str]) -> list[str]:
        extra = table.companion.fields if table.companion else {}
        return [f for f in fields if f not in extra]

    @classmethod
    def _needs_companion(cls, table: BcTable, fields: Sequence[str]) -> bool:
        return table.companion is not None and len(cls._own(table, fields)) < len(fields)

    def _select(self, table: BcTable, fields: Sequence[str]) -> list[str]:
        names = [table.id_field, *filter(None, [table.modified_field]), *table.page_keys, *self._own(table, fields)]
        if self._needs_companion(table, fields):
            names.append(table.companion.key[0])
        return list(dict.fromkeys(names))

    def _record(self, table: BcTable, row: dict, fields: Sequence[str]) -> Record:
        values = {f: decode_enum(row.get(f)) if f in table.enum_fields else row.get(f) for f in fields}
        if table.is_page:
            self._remember_key(row[table.id_field], page_key(table, row))
        modified = parse_datetime(row.get(table.modified_field)) if table.modified_field else None
        return Record(row[table.id_field], values, row.get("@odata.etag"), modified)

    def _remember_key(self, row_id: str, key: str) -> None:
        if len(self._keys) > 20_000:
            self._keys.clear()
        self._keys[row_id] = key

    @staticmethod
    def _body(table: BcTable, values: dict[str, Any]) -> dict:
        return {k: encode_enum(v) if k in table.enum_fields else v for k, v in values.items()}

    def _rows_to_records(self, table: BcTable, rows: list[dict], fields: Sequence[str]) -> list[Record]:
        if self._needs_companion(table, fields):
            self._merge_companion(table, rows, fields)
        return consumed(rows, lambda row: self._record(table, row, fields))

    def _companion_table(self, table: BcTable) -> BcTable:
        c = table.companion
        return BcTable.page(c.service, f"{table.caption} page", (*(k for k, _ in c.fixed_keys), c.key[1]),
                            enum_fields=c.enum_fields)

    def _merge_companion(self, table: BcTable, rows: list[dict], fields: Sequence[str]) -> None:
        """Fill the fields API v2.0 lacks from the companion page: one read per page of rows, joined by key."""
        c = table.companion
        wanted = [c.fields[f] for f in fields if f in c.fields]
        keys = [row.get(c.key[0]) for row in rows if row.get(c.key[0])]
        found = {r.get(c.key[1]): r for r in self._query(self._companion_table(table), [c.key[1], *wanted],
                                                         c.key[1], keys)}
        for row in rows:
            self._joined(table, row, found.get(row.get(c.key[0]), {}))

    @staticmethod
    def _joined(table: BcTable, row: dict, page_row: dict) -> dict:
        """`row` with the companion fields' values of its page row."""
        for ours, theirs in table.companion.fields.items():
            row[ours] = page_row.get(theirs)
        return row

    def _query(self, table: BcTable, select: Sequence[str], field: str, values: Sequence[Any],
               where: str = "") -> list[dict]:
        """The rows whose `field` has one of `values`: one `in` query when the values fit in one URL, else
        a `$batch` of such queries (each inner answer followed to its last page)."""
        filters = list(in_filters(field, values, where))
        if not filters:
            return []
        if len(filters) == 1:
            return [row for rows in self.client.pages(table, select=select, filter=filters[0],
                                                      page_size=MAX_PAGE_SIZE, schema=IN_SCHEMA) for row in rows]
        reads = [self.client.read(table, select=select, filter=f, schema=IN_SCHEMA) for f in filters]
        found: list[dict] = []
        for answer in self.client.batch(reads):
            body = answer_row(answer)
            found += body.get("value", [])
            if body.get("@odata.nextLink"):
                headers = {**self.client.HEADERS, "Prefer": f"odata.maxpagesize={MAX_PAGE_SIZE}"}
                for rows in follow_pages(self.client.api, body["@odata.nextLink"], None, headers):
                    found += rows
        return found

    # -- reads ----------------------------------------------------------------------------------

    def read_changed(self, table: BcTable, fields: Sequence[str], *, since: dt.datetime | None, where: str = "",
                     page_size: int = 500, not_modified_by: str | None = None,
                     limit: int | None = None) -> Iterator[list[Record]]:
        # API v2.0 does not say who changed a row; the engine recognises our own writes by version.
        if since is not None and not table.modified_field:
            raise ValueError(f"{table.entity_set} has no modification time to read changes by")
        changed = f"{table.modified_field} ge {odata_datetime(since, millis=True)}" if since else ""
        order = f"{table.modified_field} asc" if table.modified_field else ""
        for rows in self.client.pages(table, select=self._select(table, fields), filter=both(where, changed),
                                      orderby=order, page_size=limit or page_size, top=limit):
            yield self._rows_to_records(table, rows, fields)

    def read_ids(self, table: BcTable, fields: Sequence[str], ids: Sequence[str], where: str = "") -> list[Record]:
        return self.read_matching(table, fields, table.id_field, ids, where)

    read_visible = read_ids  # the company is in the URL: every row read is the company's

    def read_matching(self, table: BcTable, fields: Sequence[str], field: str, values: Sequence[Any],
                      where: str = "") -> list[Record]:
        if table.companion and field in table.companion.fields:
            return self._read_matching_on_companion(table, fields, field, values, where)
        if field in table.enum_fields:
            values = [encode_enum(v) for v in values]
        rows = self._query(table, self._select(table, fields), field, values, where)
        return self._rows_to_records(table, rows, fields)

    def _read_matching_on_companion(self, table: BcTable, fields: Sequence[str], field: str, values: Sequence[Any],
                                    where: str) -> list[Record]:
        """Rows whose companion page field has one of the values: the page finds their keys, the API the rows."""
        c = table.companion
        page, name = self._companion_table(table), c.fields[field]
        keys = [row[c.key[1]] for row in self._query(page, [c.key[1]], name, values)]
        return self.read_matching(table, fields, c.key[0], keys, where) if keys else []

    def last_key(self, table: BcTable, field: str, prefix: str) -> str | None:
        rows = next(self.client.pages(table, select=[table.id_field, field], top=1, orderby=f"{field} desc",
                                      filter=f"startswith({field},{literal(prefix)})"), [])
        return rows[0].get(field) if rows else None

    # -- writes ---------------------------------------------------------------------------------
    #
    # A lost answer to a `$batch` of creates: the ApiClient does not repeat a non-idempotent request
    # whose answer was lost, so every row of that `$batch` ends as WriteOutcomeUnknown (transient);
    # the engine records what the other chunks wrote and stops the job, to resume it later from
    # before this page. The repeat does not create those rows again: rows with match criteria are
    # found by match-based coupling, which runs before any insert; rows without any are found by the
    # values recorded before they were sent (the engine's pending inserts, sync.engine._guard_inserts).

    def insert(self, table: BcTable, rows: Sequence[NewRow], fields: Sequence[str]) -> list[WriteResult]:
        splits = [self._split(table, new.values) for new in rows]
        creates = [self.client.create(table, self._body(table, own)) for own, _ in splits]
        return self._finish(table, self._send(creates), creates, [extra for _, extra in splits], fields)

    def update(self, table: BcTable, changes: Sequence[RowChange], fields: Sequence[str]) -> list[WriteResult]:
        splits = [self._split(table, change.values) for change in changes]
        patched = [i for i, (own, extra) in enumerate(splits) if own or not extra]
        alone = sorted(set(range(len(changes))) - set(patched))
        try:
            self._learn_keys(table, [changes[i].id for i in patched])
            # companion fields alone: the page write needs no API write, but the version must still be the one read
            current = self._rows_by_id(table, [changes[i].id for i in alone], fields)
        except SyncError as exc:  # nothing written yet
            return [WriteResult(error=exc) for _ in changes]
        answers: list[dict | SyncError] = [{}] * len(changes)
        writes: list[Inner | None] = [None] * len(changes)
        for i in patched:
            writes[i] = self.client.update(table, self._keys.get(changes[i].id, changes[i].id),
                                           self._body(table, splits[i][0]), changes[i].etag)
        for i, answer in zip(patched, self._send([writes[i] for i in patched])):
            answers[i] = answer
        for i in alone:
            row, change = current.get(changes[i].id), changes[i]
            if row is None:
                answers[i] = NotFoundError(f"Business Central: {table.caption} {change.id} does not exist")
            elif change.etag and row.get("@odata.etag") != change.etag:
                answers[i] = ConcurrencyError(
                    f"Business Central: {table.caption} {change.id} changed since it was read")
            else:
                answers[i] = {"status": 200, "body": row}
        return self._finish(table, answers, writes, [extra for _, extra in splits], fields)

    def delete_rows(self, table: BcTable, ids: Sequence[str]) -> list[SyncError | None]:
        return [self._failure(answer, gone=True) for answer in self._send(
            [self.client.delete(table, self._keys.get(i, i)) for i in ids])]

    def run_action(self, table: BcTable, rows: Sequence[Record], action: str) -> list[SyncError | None]:
        """A [ServiceEnabled] procedure of the table's companion page (bcsync's extension) on each row, which
        carries the row's key field (an order's number): per row, None when it ran, else the error."""
        page, c = self._companion_table(table), table.companion
        calls = [self.client.action(page, page_key(page, {**dict(c.fixed_keys), c.key[1]: row.values[c.key[0]]}),
                                    action) for row in rows]
        return [self._failure(answer) for answer in self._send(calls)]

    @staticmethod
    def _failure(answer: dict | SyncError, gone: bool = False) -> SyncError | None:
        """The error of an answer with no row to keep; a row not found is none when it was to be `gone`."""
        try:
            answer_row(answer)
        except SyncError as exc:
            return None if gone and isinstance(exc, NotFoundError) else exc
        return None

    def _split(self, table: BcTable, values: dict) -> tuple[dict, dict]:
        extra_names = table.companion.fields if table.companion else {}
        return ({k: v for k, v in values.items() if k not in extra_names},
                {extra_names[k]: v for k, v in values.items() if k in extra_names})

    def _send(self, requests_: Sequence[Inner]) -> list[dict | SyncError]:
        """`$batch`es of up to BATCH_SIZE requests, up to `write_concurrency` of them in flight; answers in order."""
        chunks = list(chunked(list(requests_), BATCH_SIZE))
        if self.write_concurrency <= 1 or len(chunks) <= 1:
            return [a for chunk in chunks for a in self.client.batch(chunk)]
        with ThreadPoolExecutor(max_workers=min(self.write_concurrency, len(chunks)), thread_name_prefix="bc") as pool:
            return [a for answers in map_in_context(pool, self.client.batch, chunks) for a in answers]

    def _finish(self, table: BcTable, answers: Sequence[dict | SyncError], sent: Sequence[Inner | None],
                extras: Sequence[dict], fields: Sequence[str]) -> list[WriteResult]:
        """After the API writes, the companion page's fields (batched as well). A row is answered as the API
        and the page answered its writes: the companion fields it did not write are not read again, as no
        one needs them after a write (the engine keeps the values it planned, and the version). A row the
        page wrote changed version with it, so only its API version is read back, once for all of them.
        When the page write fails, the API write still stands: the row is reported written, with the error."""
        results: list[WriteResult | None] = [None] * len(answers)
        rows: dict[int, dict] = {}
        for i, answer in enumerate(answers):
            try:
                rows[i] = dict(answer_row(answer, sent[i].body if sent[i] else None))
            except SyncError as exc:
                results[i] = WriteResult(error=exc)
        own = self._own(table, fields)
        paged = [i for i in rows if extras[i]]
        if paged:
            self._write_companion(table, rows, paged, extras, fields, results)
        for i, row in rows.items():
            results[i] = WriteResult(self._record(table, row, fields if extras[i] else own))
        return results

    def _write_companion(self, table: BcTable, rows: dict[int, dict], paged: list[int], extras: Sequence[dict],
                         fields: Sequence[str], results: list[WriteResult | None]) -> None:
        """The page writes of the rows `paged`, then their API versions read back: `rows` is left with the
        rows written whole (page values joined in from the page's answers), `results` with the others."""
        page, c = self._companion_table(table), table.companion
        writes = [self.client.update(page, page_key(page, {**dict(c.fixed_keys), c.key[1]: rows[i][c.key[0]]}),
                                     self._body(page, extras[i]), None) for i in paged]
        written: dict[int, dict] = {}
        for i, write, answer in zip(paged, writes, self._send(writes)):
            try:
                written[i] = answer_row(answer, write.body)
            except SyncError as exc:
                results[i] = self._in_part(table, rows.pop(i), fields, exc)
        try:
            current = self._rows_by_id(table, [rows[i][table.id_field] for i in written], self._own(table, fields))
        except SyncError as exc:
            for i in written:
                results[i] = self._in_part(table, rows.pop(i), fields, exc)
            return
        for i, page_row in written.items():
            row = current.get(rows[i][table.id_field])
            if row is None:
                del rows[i]
                results[i] = WriteResult(error=NotFoundError(
                    f"Business Central: {table.caption} disappeared while being written"))
            else:
                rows[i] = self._joined(table, row, page_row)

    def _in_part(self, table: BcTable, row: dict, fields: Sequence[str], error: SyncError) -> WriteResult:
        """A row the API wrote whose companion fields were not written or not read back: kept (coupled)
        with what the API answered, and the error, so that the rest is retried."""
        return WriteResult(self._record(table, row, self._own(table, fields)), error)

    def _rows_by_id(self, table: BcTable, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict]:
        if not ids:
            return {}
        rows = self._query(table, self._select(table, fields), table.id_field, ids)
        if self._needs_companion(table, fields):
            self._merge_companion(table, rows, fields)
        return {row[table.id_field]: row for row in rows}

    def _learn_keys(self, table: BcTable, ids: Sequence[str]) -> None:
        """Page rows are addressed by their key: read the keys not yet known, all in one go."""
        if not table.is_page:
            return
        for row in self._rows_by_id(table, [i for i in ids if i not in self._keys], []).values():
            self._record(table, row, [])
