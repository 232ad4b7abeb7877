"""Business Central API v2.0 client, and the engine's view of Business Central (Endpoint).

Records are addressed in the company given by the settings. Enum values travel XML-escaped
(a blank is `_x0020_`); the endpoint decodes them on read and encodes them on write, so the engine
sees plain text.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Iterator, Sequence
from urllib.parse import quote

import requests

from sync.errors import ConcurrencyError, NotFoundError, SyncError
from sync.model import BcTable, Side
from sync.ports import NewRow, Record, RowChange, WriteResult

from .http import ApiClient, ServiceError, classify
from .odata import (
    PartialWrite,
    any_of,
    both,
    chunked,
    follow_pages,
    literal,
    odata_datetime,
    parse_datetime,
    write_each,
)

API_PATH = "api/v2.0"
IDS_PER_QUERY = 40
MAX_PAGE_SIZE = 20000

ALREADY_EXISTS = frozenset({"Internal_EntityWithSameKeyExists"})
STALE_VERSION = frozenset({"Request_EntityChanged"})
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_error(response: requests.Response) -> SyncError:
    try:
        error = response.json().get("error", {})
        parsed = ServiceError(response.status_code, str(error.get("code", "")), str(error.get("message", "")).strip())
    except ValueError:
        parsed = ServiceError(response.status_code, "", response.text[:300])
    return classify("Business Central", parsed, already_exists_codes=ALREADY_EXISTS, concurrency_codes=STALE_VERSION)


def decode_enum(value: Any) -> Any:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), value) if isinstance(value, str) else value


def encode_enum(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return "".join(c if c.isalnum() or c == "_" else f"_x{ord(c):04X}_" for c in value)


class BusinessCentralClient:
    """API v2.0 entity sets (`api/v2.0/companies(<id>)/<set>`) and published page web services
    (`ODataV4/Company('<name>')/<service>`) of one company."""

    HEADERS = {"Accept": "application/json"}

    def __init__(self, api: ApiClient, company_id: str):
        self.api = api
        self.company_id = company_id
        self._company_name: str | None = None

    def company_name(self) -> str:
        if self._company_name is None:
            body = self.api.get_json(f"{API_PATH}/companies({self.company_id})", headers=self.HEADERS)
            self._company_name = body["name"]
        return self._company_name

    def collection(self, table: BcTable) -> str:
        if table.is_page:
            return f"ODataV4/Company('{quote(self.company_name().replace(chr(39), chr(39) * 2), safe='')}')/{table.entity_set}"
        return f"{API_PATH}/companies({self.company_id})/{table.entity_set}"

    def item(self, table: BcTable, address: str) -> str:
        """A row's URL: by id for API entity sets, by its key for page services."""
        return f"{self.collection(table)}({address})"

    def pages(self, table: BcTable, *, select: Sequence[str] = (), filter: str = "", orderby: str = "",
              top: int | None = None, page_size: int = 500) -> Iterator[list[dict]]:
        params: dict[str, str] = {}
        if select:
            params["$select"] = ",".join(select)
        if filter:
            params["$filter"] = filter
        if orderby:
            params["$orderby"] = orderby
        if top:
            params["$top"] = str(top)
        headers = {**self.HEADERS, "Prefer": f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"}
        return follow_pages(self.api, self.collection(table), params, headers)

    def create(self, table: BcTable, body: dict) -> dict:
        headers = {**self.HEADERS, "Content-Type": "application/json"}
        return self.api.request("POST", self.collection(table), json=body, headers=headers).json()

    def update(self, table: BcTable, address: str, body: dict, etag: str | None) -> dict:
        headers = {**self.HEADERS, "Content-Type": "application/json", "If-Match": etag or "*"}
        return self.api.request("PATCH", self.item(table, address), json=body, headers=headers).json()

    def companies(self) -> list[dict]:
        return self.api.get_json(f"{API_PATH}/companies", headers=self.HEADERS).get("value", [])


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

    def _select(self, table: BcTable, fields: Sequence[str]) -> list[str]:
        names = [table.id_field, *filter(None, [table.modified_field]), *table.page_keys, *self._own(table, fields)]
        if table.companion and len(self._own(table, fields)) < len(fields):
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
        if table.companion and len(self._own(table, fields)) < len(fields):
            self._merge_companion(table, rows, fields)
        return [self._record(table, row, fields) for row in rows]

    def _companion_table(self, table: BcTable) -> BcTable:
        c = table.companion
        return BcTable.page(c.service, f"{table.caption} page", (*(k for k, _ in c.fixed_keys), c.key[1]),
                            enum_fields=c.enum_fields)

    def _merge_companion(self, table: BcTable, rows: list[dict], fields: Sequence[str]) -> None:
        """Fill the fields API v2.0 lacks from the companion page, one query per chunk of rows."""
        c = table.companion
        wanted = [c.fields[f] for f in fields if f in c.fields]
        page = self._companion_table(table)
        keys = [row.get(c.key[0]) for row in rows if row.get(c.key[0])]
        found: dict[Any, dict] = {}
        for chunk in chunked(list(dict.fromkeys(keys)), IDS_PER_QUERY):
            for page_rows in self.client.pages(page, select=[c.key[1], *wanted], filter=any_of(c.key[1], chunk),
                                               page_size=MAX_PAGE_SIZE):
                found.update({r.get(c.key[1]): r for r in page_rows})
        for row in rows:
            extra = found.get(row.get(c.key[0]), {})
            for ours, theirs in c.fields.items():
                row[ours] = extra.get(theirs)

    # -- reads ----------------------------------------------------------------------------------

    def read_changed(self, table: BcTable, fields: Sequence[str], *, since: dt.datetime | None, where: str = "",
                     page_size: int = 500, not_modified_by: str | None = None) -> Iterator[list[Record]]:
        # API v2.0 does not say who changed a row; the engine recognises our own writes by version.
        if since is not None and not table.modified_field:
            raise ValueError(f"{table.entity_set} has no modification time to read changes by")
        changed = f"{table.modified_field} ge {odata_datetime(since, millis=True)}" if since else ""
        order = f"{table.modified_field} asc" if table.modified_field else ""
        for rows in self.client.pages(table, select=self._select(table, fields), filter=both(where, changed),
                                      orderby=order, page_size=page_size):
            yield self._rows_to_records(table, rows, fields)

    def read_ids(self, table: BcTable, fields: Sequence[str], ids: Sequence[str]) -> list[Record]:
        return self.read_matching(table, fields, table.id_field, ids)

    def read_matching(self, table: BcTable, fields: Sequence[str], field: str, values: Sequence[Any],
                      where: str = "") -> list[Record]:
        if table.companion and field in table.companion.fields:
            return self._read_matching_on_companion(table, fields, field, values, where)
        found = []
        for chunk in chunked(list(dict.fromkeys(values)), IDS_PER_QUERY):
            if field in table.enum_fields:
                chunk = [encode_enum(v) for v in chunk]
            for rows in self.client.pages(table, select=self._select(table, fields),
                                          filter=both(where, any_of(field, chunk)), page_size=MAX_PAGE_SIZE):
                found += self._rows_to_records(table, rows, fields)
        return found

    def _read_matching_on_companion(self, table: BcTable, fields: Sequence[str], field: str, values: Sequence[Any],
                                    where: str) -> list[Record]:
        """Rows whose companion page field has one of the values: the page finds their keys, the API the rows."""
        c = table.companion
        page, name = self._companion_table(table), c.fields[field]
        keys: list[Any] = []
        for chunk in chunked(list(dict.fromkeys(values)), IDS_PER_QUERY):
            for rows in self.client.pages(page, select=[c.key[1]], filter=any_of(name, chunk), page_size=MAX_PAGE_SIZE):
                keys += [row[c.key[1]] for row in rows]
        return self.read_matching(table, fields, c.key[0], keys, where) if keys else []

    def last_key(self, table: BcTable, field: str, prefix: str) -> str | None:
        rows = next(self.client.pages(table, select=[table.id_field, field], top=1, orderby=f"{field} desc",
                                      filter=f"startswith({field},{literal(prefix)})"), [])
        return rows[0].get(field) if rows else None

    # -- writes ---------------------------------------------------------------------------------

    def insert(self, table: BcTable, rows: Sequence[NewRow], fields: Sequence[str]) -> list[WriteResult]:
        def create(new: NewRow) -> Record:
            own, extra = self._split(table, new.values)
            row = self.client.create(table, self._body(table, own))
            return self._finish_write(table, row, extra, fields)

        return write_each(rows, create, self.write_concurrency)

    def update(self, table: BcTable, changes: Sequence[RowChange], fields: Sequence[str]) -> list[WriteResult]:
        def patch(change: RowChange) -> Record:
            own, extra = self._split(table, change.values)
            if own or not extra:
                row = self.client.update(table, self._address(table, change.id), self._body(table, own), change.etag)
            else:
                row = self._reread(table, change.id, fields)
                if change.etag and row.get("@odata.etag") != change.etag:
                    raise ConcurrencyError(f"Business Central: {table.caption} {change.id} changed since it was read")
            return self._finish_write(table, row, extra, fields)

        return write_each(changes, patch, self.write_concurrency)

    def _split(self, table: BcTable, values: dict) -> tuple[dict, dict]:
        extra_names = table.companion.fields if table.companion else {}
        return ({k: v for k, v in values.items() if k not in extra_names},
                {extra_names[k]: v for k, v in values.items() if k in extra_names})

    def _finish_write(self, table: BcTable, row: dict, extra: dict, fields: Sequence[str]) -> Record:
        """After the API write, the companion page's fields; then the row as it now stands. When the
        page write fails, the API write still stands: the row is reported written, with the error."""
        if extra:
            page, c = self._companion_table(table), table.companion
            key = page_key(page, {**dict(c.fixed_keys), c.key[1]: row[c.key[0]]})
            try:
                self.client.update(page, key, self._body(page, extra), "*")
            except SyncError as exc:
                raise PartialWrite(self._record(table, row, self._own(table, fields)), exc) from None
            row = self._reread(table, row[table.id_field], fields)
        else:
            row = dict(row)
            if table.companion and len(self._own(table, fields)) < len(fields):
                self._merge_companion(table, [row], fields)
        return self._record(table, row, fields)

    def _reread(self, table: BcTable, row_id: str, fields: Sequence[str]) -> dict:
        rows = next(self.client.pages(table, select=self._select(table, fields),
                                      filter=any_of(table.id_field, [row_id]), page_size=1), [])
        if not rows:
            raise NotFoundError(f"Business Central: {table.caption} {row_id} disappeared while being written")
        if table.companion and len(self._own(table, fields)) < len(fields):
            self._merge_companion(table, rows, fields)
        return rows[0]

    def _address(self, table: BcTable, row_id: str) -> str:
        if not table.is_page:
            return row_id
        if row_id not in self._keys:
            self._record(table, self._reread(table, row_id, []), [])  # reading a row learns its key
        return self._keys[row_id]
