"""Business Central API v2.0 client, and the engine's view of Business Central (Endpoint).

Records are addressed in the company given by the settings. Enum values travel XML-escaped
(a blank is `_x0020_`); the endpoint decodes them on read and encodes them on write, so the engine
sees plain text.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Iterator, Sequence

import requests

from sync.errors import SyncError
from sync.model import BcTable, Side
from sync.ports import NewRow, Record, RowChange, WriteResult

from .http import ApiClient, ServiceError, classify
from .odata import any_of, both, chunked, follow_pages, literal, odata_datetime, parse_datetime, write_each

API_PATH = "api/v2.0"
IDS_PER_QUERY = 40
MAX_PAGE_SIZE = 20000

ALREADY_EXISTS = frozenset({"Internal_EntityWithSameKeyExists"})
STALE_VERSION = frozenset({"Request_EntityChanged"})
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


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
    HEADERS = {"Accept": "application/json"}

    def __init__(self, api: ApiClient, company_id: str):
        self.api = api
        self.company_id = company_id

    def _path(self, entity_set: str, row_id: str | None = None) -> str:
        path = f"{API_PATH}/companies({self.company_id})/{entity_set}"
        return f"{path}({row_id})" if row_id else path

    def pages(self, entity_set: str, *, select: Sequence[str] = (), filter: str = "", orderby: str = "",
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
        return follow_pages(self.api, self._path(entity_set), params, headers)

    def create(self, entity_set: str, body: dict) -> dict:
        headers = {**self.HEADERS, "Content-Type": "application/json"}
        return self.api.request("POST", self._path(entity_set), json=body, headers=headers).json()

    def update(self, entity_set: str, row_id: str, body: dict, etag: str | None) -> dict:
        headers = {**self.HEADERS, "Content-Type": "application/json", "If-Match": etag or "*"}
        return self.api.request("PATCH", self._path(entity_set, row_id), json=body, headers=headers).json()

    def companies(self) -> list[dict]:
        return self.api.get_json(f"{API_PATH}/companies", headers=self.HEADERS).get("value", [])


class BusinessCentralEndpoint:
    """Endpoint over API v2.0 entity sets."""

    side = Side.BC

    def __init__(self, client: BusinessCentralClient, write_concurrency: int = 1):
        self.client = client
        self.write_concurrency = write_concurrency

    @staticmethod
    def _select(table: BcTable, fields: Sequence[str]) -> list[str]:
        return list(dict.fromkeys(["id", table.modified_field, *fields]))

    @staticmethod
    def _record(table: BcTable, row: dict, fields: Sequence[str]) -> Record:
        values = {f: decode_enum(row.get(f)) if f in table.enum_fields else row.get(f) for f in fields}
        return Record(row["id"], values, row.get("@odata.etag"), parse_datetime(row.get(table.modified_field)))

    @staticmethod
    def _body(table: BcTable, values: dict[str, Any]) -> dict:
        return {k: encode_enum(v) if k in table.enum_fields else v for k, v in values.items()}

    def read_changed(self, table: BcTable, fields: Sequence[str], *, since: dt.datetime | None, where: str = "",
                     page_size: int = 500, not_modified_by: str | None = None) -> Iterator[list[Record]]:
        # API v2.0 does not say who changed a row; the engine recognises our own writes by version.
        changed = f"{table.modified_field} ge {odata_datetime(since, millis=True)}" if since else ""
        for rows in self.client.pages(table.entity_set, select=self._select(table, fields), filter=both(where, changed),
                                      orderby=f"{table.modified_field} asc", page_size=page_size):
            yield [self._record(table, row, fields) for row in rows]

    def read_ids(self, table: BcTable, fields: Sequence[str], ids: Sequence[str]) -> list[Record]:
        return self.read_matching(table, fields, "id", ids)

    def read_matching(self, table: BcTable, fields: Sequence[str], field: str, values: Sequence[Any]) -> list[Record]:
        found = []
        for chunk in chunked(list(dict.fromkeys(values)), IDS_PER_QUERY):
            if field in table.enum_fields:
                chunk = [encode_enum(v) for v in chunk]
            for rows in self.client.pages(table.entity_set, select=self._select(table, fields),
                                          filter=any_of(field, chunk), page_size=MAX_PAGE_SIZE):
                found += [self._record(table, row, fields) for row in rows]
        return found

    def last_key(self, table: BcTable, field: str, prefix: str) -> str | None:
        rows = next(self.client.pages(table.entity_set, select=["id", field], top=1, orderby=f"{field} desc",
                                      filter=f"startswith({field},{literal(prefix)})"), [])
        return rows[0].get(field) if rows else None

    def insert(self, table: BcTable, rows: Sequence[NewRow], fields: Sequence[str]) -> list[WriteResult]:
        return write_each(rows, lambda new: self._record(
            table, self.client.create(table.entity_set, self._body(table, new.values)), fields), self.write_concurrency)

    def update(self, table: BcTable, changes: Sequence[RowChange], fields: Sequence[str]) -> list[WriteResult]:
        return write_each(changes, lambda change: self._record(
            table, self.client.update(table.entity_set, change.id, self._body(table, change.values), change.etag), fields),
            self.write_concurrency)
