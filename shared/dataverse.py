"""Dataverse Web API v9.2 client, and the engine's view of Dataverse (CrmEndpoint).

Lookups are read as `_<attribute>_value` and written with `<navigation>@odata.bind`; the endpoint
hides that, so the engine sees every lookup under its attribute name as a plain id.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import json
import re
import threading
import urllib.parse
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import quote

import requests

from sync.errors import (AlreadyExistsError, AuthenticationError, ConcurrencyError, ConfigurationError, RecordError,
                         ServiceUnavailableError, SyncError)
from sync.model import CrmTable, OptionSet, Side
from sync.ports import CLAIM_TAKEN, ChangeFeed, FeedPage, NewRow, Record, RowChange, WriteResult

from .http import ApiClient, odata_error, response_body
from .odata import (both, chunked, consumed, follow_pages, odata_datetime, parse_datetime, row_filter,
                    run_concurrently)

log = logging.getLogger("bcsync.dataverse")

API_PATH = "/api/data/v9.2"
MAX_PAGE_SIZE = 5000
# Rows per CreateMultiple / UpdateMultiple. The service sets no fixed cap, but on a standard table one bulk
# request is one transaction, rolled back whole on any error and bounded by message size and time limits;
# Microsoft suggests starting near 1,000 small rows when no plug-ins run. Sales runs plug-ins on its
# tables, a rolled-back chunk is split to find its bad row, and the chunk's versions are read back in one
# `In` query: half that keeps all three cheap.
BULK_CHUNK = 500
# A `Microsoft.Dynamics.CRM.In` query lists at most this many values and this many URL characters: a GUID
# takes 45 once quoted and encoded, so a full query stays near 23 KB, under the Web API's 32 KB URL limit.
IN_VALUES_PER_QUERY = 500
IN_QUERY_CHARS = 24_000

# An update of at most this many rows goes as one `$batch` of PATCH requests: one request in all, where
# UpdateMultiple costs two (the action answers without the rows, so their versions are read back), and each
# row's version is checked (If-Match), which the action cannot do. Beyond it UpdateMultiple's single
# operation on the server beats as many separate updates, and its read-back is one query per chunk.
PATCH_BATCH_MAX = 100
BATCH_MAX = 1000  # requests in one `$batch`: the service refuses more
_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)

ALREADY_EXISTS = frozenset({"0x80040237", "0x80060892", "0x80048cf3", "0x80043b06"})
STALE_VERSION = frozenset({"0x80060882"})
READ_ONLY = frozenset({"0x8004022e"})  # CannotUpdateBecauseItIsReadOnly: a closed order, quote or invoice
NOT_TRACKED = "0x80072491"             # ChangeTrackingNotEnabledForEntity
EXPIRED_VERSION_STAMP = "0x80044352"   # the delta token is older than ExpireChangeTrackingInDays


# Business Central integration solution: the tables whose rows belong to a company (bcbi_companyid, a lookup to
# bcbi_company), which Business Central filters on and stamps when several companies share the environment
COMPANY_TABLES = frozenset({"account", "contact", "invoice", "quote", "salesorder", "opportunity", "product",
                            "productpricelevel", "pricelevel"})
COMPANY_SET = "bcbi_companies"
COMPANY_BIND = "bcbi_CompanyId@odata.bind"
COMPANY_VALUE = "_bcbi_companyid_value"
# tables whose rows of no company only the home company sees: Sales keeps an active quote read-only, so no company
# can claim it, and every company would make a Business Central quote of its own from it
HOME_ONLY = frozenset({"quote"})
NO_ROW = "00000000-0000-0000-0000-000000000000"  # an id no row has
# rows read with no company whose versions an endpoint keeps for their claim: several pages' worth, as a page's
# claim follows its own reads
UNCLAIMED_KEPT = 4 * MAX_PAGE_SIZE


@dataclass(frozen=True)
class CompanyRow:
    """Which Business Central company this endpoint writes for: its rows carry that company's bcbi_company row,
    found by the company's id in Business Central (bcbi_externalid) or created as Business Central does when its
    connection is set up. `name` gives the company's name, asked only to create the row."""

    external_id: str
    name: Callable[[], str]
    home: bool = True  # sees the Sales quotes of no company (BCSYNC_BC_COMPANY_ID's company, else the first listed)


def _selected(link: str) -> set[str]:
    """The columns a delta link reads."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    return {name for value in query.get("$select", []) for name in value.split(",")}


def error_of(status: int, body: Any) -> SyncError:
    """A Dataverse error answer (a whole response's, or one part of a `$batch`) as the domain's error."""
    return odata_error("Dataverse", status, body, already_exists_codes=ALREADY_EXISTS, concurrency_codes=STALE_VERSION)


def parse_error(response: requests.Response) -> SyncError:
    return error_of(response.status_code, response_body(response))


def _batch_body(boundary: str, requests_: Sequence[Inner]) -> bytes:
    """A multipart/mixed `$batch` of independent requests (no changeset: each succeeds or fails alone)."""
    lines: list[str] = []
    for request in requests_:
        lines += [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary", "",
                  f"{request.method} {request.url} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        if request.body is not None:
            lines += ["Content-Type: application/json; type=entry", "", json.dumps(request.body)]
        else:
            lines += [""]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("utf-8")


def _batch_answers(response: requests.Response) -> list[tuple[int, Any]]:
    """The (status, body) of each part of a `$batch` answer, in order."""
    match = _BOUNDARY.search(response.headers.get("Content-Type", ""))
    if match is None:
        raise ServiceUnavailableError(f"Dataverse answered a $batch without a multipart body: {response.text[:300]}")
    answers = []
    for part in response.text.replace("\r\n", "\n").split(f"--{match.group(1)}")[1:]:
        # the part's own headers, a blank line, the status line and the answer's headers, a blank line, the body
        _, _, inner = part.partition("\n\n")
        status_line, _, rest = inner.partition("\n")
        if not status_line.startswith("HTTP/"):
            continue  # the closing `--` after the last part
        body_text = rest.partition("\n\n")[2].strip()
        try:
            body: Any = json.loads(body_text) if body_text else None
        except ValueError:
            body = body_text
        answers.append((int(status_line.split(" ")[1]), body))
    return answers


@dataclass(frozen=True)
class Inner:
    """One request of a `$batch`: method, absolute URL, headers, JSON body."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict | None = None


# the entity set an owner of each type is bound to, and the team type that may own rows
OWNER_SETS = {"systemuser": "systemusers", "team": "teams"}
OWNER_TEAM = 0


class DataverseClient:
    """Thin Web API calls; everything else (paging, errors, retries) is the ApiClient's."""

    HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}

    def __init__(self, api: ApiClient):
        self.api = api

    def whoami(self) -> dict:
        return self.api.get_json(f"{API_PATH}/WhoAmI", headers=self.HEADERS)

    def pages(self, entity_set: str, *, select: Sequence[str], filter: str = "", orderby: str = "",
              page_size: int = 500, lookup_types: bool = False, top: int | None = None) -> Iterator[list[dict]]:
        params = {"$select": ",".join(select)}
        if filter:
            params["$filter"] = filter
        if orderby:
            params["$orderby"] = orderby
        if top is not None:
            params["$top"] = str(top)
        headers = self.read_headers(None if top is not None else page_size, lookup_types)
        return follow_pages(self.api, f"{API_PATH}/{entity_set}", params, headers)

    def read_headers(self, page_size: int | None, lookup_types: bool) -> dict[str, str]:
        # the service ignores $top when a page size is preferred: one or the other (no page size with $top)
        prefs = [f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"] if page_size else []
        if lookup_types:  # which table a lookup to several tables points at
            prefs.append('odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"')
        return {**self.HEADERS, **({"Prefer": ",".join(prefs)} if prefs else {})}

    def read(self, entity_set: str, *, select: Sequence[str], filter: str, lookup_types: bool) -> Inner:
        """A query for a `$batch`, in the largest pages (the answer's next link is followed with the same
        headers)."""
        url = self.api.url(f"{API_PATH}/{entity_set}") + "?" + urllib.parse.urlencode(
            {"$select": ",".join(select), "$filter": filter}, safe=",$")
        return Inner("GET", url, self.read_headers(MAX_PAGE_SIZE, lookup_types))

    def bulk(self, entity_set: str, action: str, targets: list[dict], *, idempotent: bool) -> dict:
        """CreateMultiple / UpdateMultiple: all targets or none (a standard table rolls back on any error)."""
        response = self.api.request("POST", f"{API_PATH}/{entity_set}/Microsoft.Dynamics.CRM.{action}",
                                    json={"Targets": targets}, idempotent=idempotent,
                                    headers={**self.HEADERS, "Content-Type": "application/json"})
        return response.json() if response.content else {}

    def create(self, entity_set: str, body: dict) -> dict:
        """One row, answered as stored."""
        return self.api.request("POST", f"{API_PATH}/{entity_set}", json=body, idempotent=False, headers={
            **self.HEADERS, "Content-Type": "application/json", "Prefer": "return=representation"}).json()

    def patch(self, entity_set: str, row_id: str, body: dict, *, etag: str | None, select: Sequence[str],
              lookup_types: bool = False) -> Inner:
        """An update for a `$batch`: applied only to the version `etag` (any version when None; never a
        create, as a PATCH without If-Match would be), answered with the row as stored, its version included."""
        prefer = "return=representation"
        if lookup_types:
            prefer += ',odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'
        url = self.api.url(f"{API_PATH}/{entity_set}({row_id})") + "?" + urllib.parse.urlencode(
            {"$select": ",".join(select)}, safe=",$")
        return Inner("PATCH", url, {"If-Match": etag or "*", "Prefer": prefer}, body)

    def delete(self, entity_set: str, row_id: str) -> Inner:
        """A deletion for a `$batch`, whatever the row's version (sent twice, the second answers 404)."""
        return Inner("DELETE", self.api.url(f"{API_PATH}/{entity_set}({row_id})"), {"If-Match": "*"})

    def batch(self, requests_: Sequence[Inner]) -> list[tuple[int, Any]]:
        """One `$batch` of independent requests with `odata.continue-on-error`, so that a failing request does
        not stop those after it: the (status, body) of every request, in order. Only requests that may be
        sent twice (reads, and updates with If-Match) go here: a lost answer is asked again. (An update the
        lost attempt applied then answers 412, its version having moved: that row fails as a conflict and
        is seen again next run, where Sales already holds the values.) An answer that cannot be read
        raises ServiceUnavailableError: the job stops and is retried."""
        boundary = f"batch_{uuid.uuid4()}"
        response = self.api.request("POST", f"{API_PATH}/$batch", data=_batch_body(boundary, requests_),
                                    idempotent=True,
                                    headers={**self.HEADERS, "Prefer": "odata.continue-on-error",
                                             "Content-Type": f'multipart/mixed; boundary="{boundary}"'})
        answers = _batch_answers(response)
        if len(answers) != len(requests_):
            raise ServiceUnavailableError(
                f"Dataverse answered {len(answers)} of the {len(requests_)} requests of a $batch.")
        return answers

    def delta(self, entity_set: str, select: Sequence[str], link: str | None, *, page_size: int,
              lookup_types: bool = False) -> Iterator[tuple[list[dict], list[str], str, bool]]:
        """Change tracking, a page at a time: the rows created or changed and the ids deleted since `link`,
        and the link to go on from (the next page's, or on the last page the delta link for next time).
        Without a link, tracking starts and every row of the table comes as changed."""
        prefer = f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"
        if lookup_types:
            prefer += ',odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'
        if link is None:
            url, params = f"{API_PATH}/{entity_set}", {"$select": ",".join(select)}
            prefer = "odata.track-changes," + prefer
        else:
            url, params = link, None
        headers = {**self.HEADERS, "Prefer": prefer}
        while url:
            body = self.api.get_json(url, params=params, headers=headers)
            rows, deleted = [], []
            for row in body.pop("value", []):  # popped: the caller may drop the rows while this waits
                if str(row.get("@odata.context", "")).endswith("$deletedEntity") or row.get("reason") == "deleted":
                    deleted.append(row["id"])
                else:
                    rows.append(row)
            url, params = body.get("@odata.nextLink"), None
            onward = url or body.get("@odata.deltaLink")
            if not onward:
                raise SyncError(f"Dataverse answered a change-tracking read of {entity_set} without a delta link.")
            # kept without the organisation's address, so a link outlives a change of BCSYNC_DATAVERSE_URL
            yield rows, deleted, onward[onward.find(API_PATH):] if API_PATH in onward else onward, not url

    def picklist_options(self, logical_name: str, attribute: str) -> dict[int, str]:
        path = (f"{API_PATH}/EntityDefinitions(LogicalName='{logical_name}')/Attributes(LogicalName='{attribute}')"
                f"/Microsoft.Dynamics.CRM.PicklistAttributeMetadata")
        body = self.api.get_json(path, params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
                                 headers=self.HEADERS)
        options = {}
        for option in (body.get("OptionSet") or {}).get("Options", []):
            label = (option.get("Label") or {}).get("UserLocalizedLabel") or {}
            if not label.get("Label"):
                localized = (option.get("Label") or {}).get("LocalizedLabels") or [{}]
                label = localized[0]
            options[int(option["Value"])] = label.get("Label", "")
        return options


class DataverseEndpoint:
    """CrmEndpoint over the Web API."""

    side = Side.CRM

    def __init__(self, client: DataverseClient, write_concurrency: int = 1, company: CompanyRow | None = None):
        self.client = client
        self.write_concurrency = write_concurrency
        self._whoami: dict | None = None  # bcsync's application user and its business unit, asked once
        self.company = company            # several companies: this endpoint's company filters and stamps rows
        self._company_id: str | None = None  # its bcbi_company row, looked up once
        self._company_absent = False          # looked up in this job and missing: reads filter on no company
        self._company_lock = threading.Lock()
        # rows read with no company, and their versions, which a coupling claims (the latest UNCLAIMED_KEPT)
        self._unclaimed: OrderedDict[str, str | None] = OrderedDict()
        self._unclaimed_lock = threading.Lock()

    # -- the company ------------------------------------------------------------------------------

    def company_row_id(self, create: bool = True) -> str | None:
        """The bcbi_company row of this endpoint's company; a write creates it when Business Central never made it
        (a read, a dry run's too, creates nothing: no row can belong to a company row that does not exist). Two
        workers that create it at once both go on with the older row, so rows never split between two."""
        with self._company_lock:
            if self._company_id is None and (create or not self._company_absent):
                found = self._company_rows()
                if not found and create:
                    self.client.create(COMPANY_SET, {"bcbi_externalid": self.company.external_id,
                                                     "bcbi_name": self.company.name()[:30]})
                    found = self._company_rows()
                self._company_id = found[0]["bcbi_companyid"].lower() if found else None
                self._company_absent = not found
            return self._company_id

    def job_started(self) -> None:
        """A company row found missing is looked for again once per job (another worker may have made it), not
        at every read."""
        with self._company_lock:
            self._company_absent = False

    def _company_rows(self) -> list[dict]:
        return next(self.client.pages(COMPANY_SET, select=["bcbi_companyid"], top=1,
                                      orderby="createdon asc,bcbi_companyid asc",
                                      filter=f"bcbi_externalid eq '{self.company.external_id}'"), [])

    def claim(self, table: CrmTable, ids: Sequence[str]) -> dict[str, SyncError]:
        """Rows of no company that this company has coupled become its rows, as Business Central stamps an account
        it created a customer from: the other companies no longer see them. Each is written only on the version
        read (If-Match), so that two companies never both take a row: one another company took meanwhile answers
        CLAIM_TAKEN, for its coupling to go. Answers the rows it could not claim, by id, with why; a row Dataverse
        keeps read-only (a closed invoice or quote, a submitted order) is logged and keeps no company, as its next
        writable write stamps it."""
        versions: list[tuple[str, str | None]] = []
        if self._owned(table):
            with self._unclaimed_lock:  # concurrent writes read their rows back in threads of their own
                versions = [(i, self._unclaimed[i.lower()]) for i in ids if i.lower() in self._unclaimed]
        return self._claim_chunks(table, versions)

    def claim_coupled(self, table: CrmTable, ids: Sequence[str]) -> dict[str, SyncError]:
        """Claim those of these coupled rows that have no company, whether read lately or not (their company and
        version are read first); answered as `claim`."""
        if not self._owned(table):
            return {}
        return self._claim_chunks(table, [(i, version) for i, (company, version) in
                                          self._companies_of(table, ids).items() if not company])

    def _claim_chunks(self, table: CrmTable, versions: Sequence[tuple[str, str | None]]) -> dict[str, SyncError]:
        problems: dict[str, SyncError] = {}
        for chunk in chunked(versions, PATCH_BATCH_MAX):  # a `$batch` takes at most BATCH_MAX requests
            problems.update(self._claim_versions(table, chunk, again=True))
        return problems

    def _claim_versions(self, table: CrmTable, versions: Sequence[tuple[str, str | None]],
                        again: bool) -> dict[str, SyncError]:
        changes = [RowChange(i, etag, {}) for i, etag in versions]
        problems: dict[str, SyncError] = {}
        moved: list[str] = []
        for change, result in zip(changes, self._patch_batch(table, changes, [])):
            with self._unclaimed_lock:
                self._unclaimed.pop(change.id.lower(), None)
            if isinstance(result.error, ConcurrencyError):
                moved.append(change.id)  # changed since it was read: by whom, its company tells
            elif result.error is not None and not self._read_only(table, change.id, result.error):
                problems[change.id] = result.error if result.error.transient else self._unclaimable(
                    table, change.id, result.error.message, code=result.error.code)
        if not moved:
            return problems
        try:
            mine, now = self.company_row_id(), self._companies_of(table, moved)
        except SyncError as exc:  # no row's fault: every such row's, as `_patch_batch` answers it
            return {**problems, **{row_id: exc for row_id in moved}}
        retry = []
        for row_id in moved:
            company, version = now.get(row_id.lower(), ("", None))
            if company == mine or row_id.lower() not in now:
                continue  # written for this company meanwhile (stamped), or deleted: its coupling's job tells
            if company:
                problems[row_id] = self._unclaimable(table, row_id, "another company took it meanwhile; it is "
                                                     "that company's now", code=CLAIM_TAKEN)
            elif again:
                retry.append((row_id, version))  # changed by someone, and still no company's: on the new version
            else:
                problems[row_id] = self._unclaimable(table, row_id, "it changed while being claimed",
                                                     code="ConcurrencyVersionMismatch")
        return {**problems, **(self._claim_versions(table, retry, again=False) if retry else {})}

    def _unclaimable(self, table: CrmTable, row_id: str, why: str, code: str) -> RecordError:
        return RecordError(f"Dataverse: the {table.logical_name} {row_id} cannot be made a row of the company "
                           f"{self.company.external_id} (bcbi_companyid): {why}", field="bcbi_companyid", code=code)

    def _companies_of(self, table: CrmTable, ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """The rows' company row ids ("" for none) and versions, by lower-case row id (a row gone is absent)."""
        return {row[table.primary_id].lower(): (str(row.get(COMPANY_VALUE) or "").lower(), row.get("@odata.etag"))
                for listed in in_filters(table.primary_id, list(dict.fromkeys(ids)))
                for rows in self.client.pages(table.entity_set, select=[table.primary_id, COMPANY_VALUE],
                                              filter=listed, page_size=MAX_PAGE_SIZE)
                for row in rows}

    @staticmethod
    def _read_only(table: CrmTable, row_id: str, error: SyncError) -> bool:
        """A row whose company cannot change now: logged, as the row is not at fault."""
        if error.code not in READ_ONLY:
            return False
        log.warning("the %s %s keeps its company, as Dataverse keeps it read-only: %s", table.logical_name, row_id,
                    error.message)
        return True

    def release(self, table: CrmTable, ids: Sequence[str]) -> None:
        """Uncoupled rows belong to no company again, as Business Central resets the company id when it uncouples;
        a row of another company is left to it."""
        mine = self.company_row_id(create=False) if self._owned(table) and ids else None
        if mine is None:
            return
        ours = [i for i, (company, _) in self._companies_of(table, ids).items() if company == mine]
        for chunk in chunked(ours, PATCH_BATCH_MAX):
            patches = [self.client.patch(table.entity_set, i, {COMPANY_BIND: None}, etag=None,
                                         select=[table.primary_id]) for i in chunk]
            for row_id, (status, body) in zip(chunk, self.client.batch(patches)):
                if status < 400:
                    self._unclaim(row_id, (body or {}).get("@odata.etag") if isinstance(body, dict) else None)
                    continue
                error = error_of(status, body)
                if error.transient:
                    raise error
                # the coupling is gone already; a row Dataverse keeps read-only (a submitted order) keeps its company
                log.warning("the %s %s keeps its company: %s", table.logical_name, row_id, error.message)

    def _unclaim(self, row_id: str, version: str | None) -> None:
        """Note a row read with no company, at the version read, for a coupling to claim; the oldest notes go
        beyond UNCLAIMED_KEPT (a page's claim follows its reads, and a row left out is claimed when read again)."""
        with self._unclaimed_lock:  # concurrent writes read their rows back in threads of their own
            self._unclaimed.pop(row_id.lower(), None)
            self._unclaimed[row_id.lower()] = version
            while len(self._unclaimed) > UNCLAIMED_KEPT:
                self._unclaimed.popitem(last=False)

    def _owned(self, table: CrmTable) -> bool:
        return self.company is not None and table.logical_name in COMPANY_TABLES

    def _company_filter(self, table: CrmTable) -> str:
        """Business Central's filter on a company's tables: this company's rows and the rows of no company."""
        if not self._owned(table):
            return ""
        mine = self.company_row_id(create=False)
        if table.logical_name in HOME_ONLY and not self.company.home:
            return f"{COMPANY_VALUE} eq {mine or NO_ROW}"  # its own only (none before its company row exists)
        return f"{COMPANY_VALUE} eq {mine} or {COMPANY_VALUE} eq null" if mine else f"{COMPANY_VALUE} eq null"

    # -- shapes ---------------------------------------------------------------------------------

    @staticmethod
    def _wire_name(table: CrmTable, name: str) -> str:
        return f"_{name}_value" if name in table.lookups else name

    def _select(self, table: CrmTable, fields: Sequence[str]) -> list[str]:
        typed = {lookup.type_field: name for name, lookup in table.lookups.items() if lookup.type_field}
        names = [table.primary_id, "modifiedon", "_modifiedby_value"] + ([COMPANY_VALUE] if self._owned(table) else [])
        names += [self._wire_name(table, typed.get(f, f)) for f in fields]
        return list(dict.fromkeys(names))

    @staticmethod
    def _typed(table: CrmTable, fields: Sequence[str]) -> bool:
        return any(lookup.type_field in fields for lookup in table.lookups.values() if lookup.type_field)

    def _record(self, table: CrmTable, row: dict, fields: Sequence[str]) -> Record:
        values = {f: row.get(self._wire_name(table, f)) for f in fields}
        for name, lookup in table.lookups.items():
            if lookup.type_field and lookup.type_field in fields:
                values[lookup.type_field] = row.get(f"_{name}_value@Microsoft.Dynamics.CRM.lookuplogicalname")
        if COMPANY_VALUE in row and self._owned(table):
            if row[COMPANY_VALUE]:
                with self._unclaimed_lock:
                    self._unclaimed.pop(row[table.primary_id].lower(), None)
            else:
                self._unclaim(row[table.primary_id], row.get("@odata.etag"))
        return Record(row[table.primary_id], values, row.get("@odata.etag"), parse_datetime(row.get("modifiedon")),
                      row.get("_modifiedby_value"))

    def _body(self, table: CrmTable, values: dict[str, Any]) -> dict:
        """The row's values as the Web API takes them; a lookup to several tables (an owner) is bound to the table
        its type field names, which is not written itself. A company's row gets the company as Business Central
        stamps it on every write, except with a change of state (a submitted order takes no other column)."""
        type_fields = {lookup.type_field for lookup in table.lookups.values() if lookup.type_field}
        body = {}
        for name, value in values.items():
            if name in type_fields:
                continue
            lookup = table.lookups.get(name)
            if lookup is None:
                body[name] = value
            else:
                kind = values.get(lookup.type_field) if lookup.type_field else None
                entity_set = OWNER_SETS.get(kind, lookup.entity_set)
                body[f"{lookup.navigation}@odata.bind"] = None if value is None else f"/{entity_set}({value})"
        if self._owned(table) and "statecode" not in values:
            body[COMPANY_BIND] = f"/{COMPANY_SET}({self.company_row_id()})"
        return body

    # -- reads ----------------------------------------------------------------------------------

    def read_changed(self, table: CrmTable, fields: Sequence[str], *, since: dt.datetime | None, where: str = "",
                     page_size: int = 500, not_modified_by: str | None = None,
                     limit: int | None = None) -> Iterator[list[Record]]:
        changed = f"modifiedon ge {odata_datetime(since)}" if since else ""
        others = f"_modifiedby_value ne {not_modified_by}" if not_modified_by else ""
        for rows in self.client.pages(table.entity_set, select=self._select(table, fields),
                                      filter=both(where, self._company_filter(table), changed, others),
                                      orderby=f"modifiedon asc,{table.primary_id} asc", page_size=page_size,
                                      lookup_types=self._typed(table, fields), top=limit):
            yield consumed(rows, lambda row: self._record(table, row, fields))

    def read_ids(self, table: CrmTable, fields: Sequence[str], ids: Sequence[str]) -> list[Record]:
        return self.read_matching(table, fields, table.primary_id, ids)

    def changes(self, table: CrmTable, fields: Sequence[str], cursor: str | None, *, where: str = "",
                page_size: int = 500, not_modified_by: str | None = None) -> ChangeFeed | None:
        compiled = row_filter(both(where, self._company_filter(table)))
        # without a filter we can apply, the feed only tells deletions: it reads no columns
        select = self._select(table, fields) + sorted(compiled[1]) if compiled else [table.primary_id]
        select = list(dict.fromkeys(select))
        typed = bool(compiled) and self._typed(table, fields)
        if cursor is not None and not set(select) <= _selected(cursor):
            cursor = None  # made for other columns (the mapping changed): its rows would lack values
        try:
            pages = self.client.delta(table.entity_set, select, cursor, page_size=page_size, lookup_types=typed)
            first = next(pages)
        except SyncError as exc:
            if exc.code == NOT_TRACKED:
                return None
            if cursor is None or not (exc.code == EXPIRED_VERSION_STAMP or isinstance(exc, RecordError)):
                raise
            # the delta link is older than the organisation keeps changes, or no longer valid: start over
            cursor = None
            pages = self.client.delta(table.entity_set, select, None, page_size=page_size, lookup_types=typed)
            first = next(pages)
        complete = cursor is not None

        def feed() -> Iterator[FeedPage]:
            others = (not_modified_by or "").lower()
            for rows, deleted, onward, last in itertools.chain([first], pages):
                present = [] if complete else [row[table.primary_id] for row in rows]
                kept = [row for row in rows if compiled is not None and compiled[0](row)
                        and not (others and str(row.get("_modifiedby_value") or "").lower() == others)]
                rows.clear()
                yield FeedPage(consumed(kept, lambda row: self._record(table, row, fields)), deleted, onward, last,
                               present)

        return ChangeFeed(feed(), complete, filtered=compiled is not None)

    def read_matching(self, table: CrmTable, fields: Sequence[str], field: str, values: Sequence[Any],
                      where: str = "") -> list[Record]:
        # the query functions name a column by its logical name (a lookup's too, not `_<name>_value`)
        if field != table.primary_id:  # a match by value sees the company's rows only; an id is an id
            where = both(where, self._company_filter(table))
        return self._read_matching(table, fields, field, values, where)

    def read_visible(self, table: CrmTable, fields: Sequence[str], ids: Sequence[str], where: str = "") -> list[Record]:
        return self._read_matching(table, fields, table.primary_id, ids, both(where, self._company_filter(table)))

    def _read_matching(self, table: CrmTable, fields: Sequence[str], field: str, values: Sequence[Any],
                       where: str) -> list[Record]:
        filters = [both(where, listed) for listed in in_filters(field, list(dict.fromkeys(values)))]
        select, typed = self._select(table, fields), self._typed(table, fields)
        if len(filters) == 1:
            return [self._record(table, row, fields) for rows in self.client.pages(
                table.entity_set, select=select, filter=filters[0], page_size=MAX_PAGE_SIZE, lookup_types=typed)
                for row in rows]
        # more values than one URL holds: the queries go in one `$batch` (a request, not one per query)
        found = []
        for chunk in chunked(filters, BATCH_MAX):
            reads = [self.client.read(table.entity_set, select=select, filter=f, lookup_types=typed) for f in chunk]
            for read, (status, body) in zip(reads, self.client.batch(reads)):
                if status >= 400:
                    raise error_of(status, body)
                rows = list(body.get("value", []))
                if body.get("@odata.nextLink"):
                    rows += [row for page in follow_pages(self.client.api, body["@odata.nextLink"], None,
                                                          read.headers) for row in page]
                found += [self._record(table, row, fields) for row in rows]
        return found

    def last_key(self, table: CrmTable, field: str, prefix: str) -> str | None:
        raise NotImplementedError("Dataverse rows are not numbered by bcsync")

    # -- writes ---------------------------------------------------------------------------------

    def insert(self, table: CrmTable, rows: Sequence[NewRow], fields: Sequence[str]) -> list[WriteResult]:
        """CreateMultiple with the ids bcsync proposes, so that a repeated request (after a lost answer) fails as
        a duplicate key instead of creating the rows twice."""
        return self._write_bulk(table, fields, "CreateMultiple", [(new.id, self._target(table, new.values, new.id))
                                                                 for new in rows])

    def update(self, table: CrmTable, changes: Sequence[RowChange], fields: Sequence[str]) -> list[WriteResult]:
        """Up to PATCH_BATCH_MAX rows: one `$batch` of PATCH requests, each applied only to the version the
        change was planned on (`change.etag`): a row changed in Sales since it was read is not written, and
        answers with a ConcurrencyError of its own. More rows: UpdateMultiple, whose Web API action takes the
        targets only: unlike a PATCH with If-Match, it cannot be made to check each row's version (the SDK's
        ConcurrencyBehavior has no Web API counterpart), so such a change is overwritten there."""
        if len(changes) <= PATCH_BATCH_MAX:
            return self._patch_batch(table, changes, fields)
        return self._write_bulk(table, fields, "UpdateMultiple", [(change.id, self._target(table, change.values,
                                                                                           change.id))
                                                                 for change in changes])

    def _patch_batch(self, table: CrmTable, changes: Sequence[RowChange], fields: Sequence[str]) -> list[WriteResult]:
        """The changes in one `$batch`, each row answered with its own outcome; an error that is no row's
        (throttled beyond patience, the service down) is every row's, as `write_each` answers it."""
        if not changes:
            return []
        select, typed = self._select(table, fields), self._typed(table, fields)
        patches = [self.client.patch(table.entity_set, change.id, self._body(table, change.values), etag=change.etag,
                                     select=select, lookup_types=typed) for change in changes]
        try:
            answers = self.client.batch(patches)
        except SyncError as exc:
            return [WriteResult(error=exc) for _ in changes]
        results = []
        for change, (status, body) in zip(changes, answers):
            if status >= 400:
                results.append(WriteResult(error=error_of(status, body)))
            elif isinstance(body, dict) and table.primary_id in body:
                results.append(WriteResult(self._record(table, body, fields)))
            else:
                results.append(WriteResult(error=RecordError(
                    f"Dataverse: the {table.logical_name} {change.id} was written but not answered with its values.")))
        return results

    def delete_rows(self, table: CrmTable, ids: Sequence[str]) -> list[SyncError | None]:
        """Up to PATCH_BATCH_MAX rows in one `$batch`: per row, None when it is gone (deleted now or before),
        else the error."""
        if not ids:
            return []
        try:
            answers = self.client.batch([self.client.delete(table.entity_set, i) for i in ids])
        except SyncError as exc:
            return [exc for _ in ids]
        return [None if status < 400 or status == 404 else error_of(status, body) for status, body in answers]

    def _target(self, table: CrmTable, values: dict[str, Any], row_id: str | None) -> dict:
        target = {**self._body(table, values), "@odata.type": f"Microsoft.Dynamics.CRM.{table.logical_name}"}
        if row_id:
            target[table.primary_id] = row_id
        return target

    def _write_bulk(self, table: CrmTable, fields: Sequence[str], action: str,
                    items: list[tuple[str | None, dict]]) -> list[WriteResult]:
        """The chunks' bulk requests, then the written rows' versions read back for all chunks at once (the
        actions answer without them)."""
        chunks = [list(chunk) for chunk in chunked(items, BULK_CHUNK)]
        answers = run_concurrently(chunks, lambda chunk: self._write_chunk(table, fields, action, chunk),
                                   self.write_concurrency)
        outcomes = [outcome for answer in answers for outcome in answer]
        try:
            found = {r.id.lower(): r for r in self.read_ids(table, fields, [i for i, e in outcomes if e is None])}
        except SyncError as exc:
            return [WriteResult(error=error or exc) for _, error in outcomes]
        return [WriteResult(error=error) if error is not None else WriteResult(found[i.lower()])
                if i.lower() in found else WriteResult(error=RecordError(
                    f"Dataverse: the {table.logical_name} {i} was written but cannot be read back."))
                for i, error in outcomes]

    def _write_chunk(self, table: CrmTable, fields: Sequence[str], action: str,
                     items: list[tuple[str | None, dict]]) -> list[tuple[str, SyncError | None]]:
        """One bulk request: each row's id, and its error if it was not written. A chunk that fails for one of
        its rows is split in halves until the bad row is alone: its error becomes that row's, the others are
        written. An error that is no row's (throttled beyond patience, the service down, access denied) is
        every row's result, as `write_each` answers it: the engine records what was written, then stops."""
        ids = [row_id for row_id, _ in items]
        try:
            answer = self.client.bulk(table.entity_set, action, [target for _, target in items],
                                      idempotent=all(ids))
        except SyncError as exc:
            return self._chunk_failed(table, fields, action, items, exc)
        written = [str(i) for i in answer.get("Ids") or ids] if action == "CreateMultiple" else ids
        return [(i, None) for i in written]

    def _chunk_failed(self, table: CrmTable, fields: Sequence[str], action: str, items: list[tuple[str | None, dict]],
                      error: SyncError) -> list[tuple[str, SyncError | None]]:
        ids = [row_id for row_id, _ in items]
        if isinstance(error, AlreadyExistsError) and action == "CreateMultiple" and all(ids):
            # a repeat of a create whose answer was lost, or rows an earlier run created: those that exist
            # are the engine's to couple and update, the others are created now
            try:
                existing = {r.id.lower() for r in self.read_ids(table, fields, ids)}
            except SyncError as exc:
                return [(row_id, exc) for row_id in ids]
            if existing:
                rest = [item for item in items if item[0].lower() not in existing]
                created = iter(self._write_chunk(table, fields, action, rest) if rest else [])
                return [(row_id, error) if row_id.lower() in existing else next(created) for row_id, _ in items]
        row_specific = not error.transient or isinstance(error, ConcurrencyError)
        if len(items) == 1 or not row_specific or isinstance(error, AuthenticationError):
            return [(row_id, error) for row_id in ids]
        half = len(items) // 2
        return (self._write_chunk(table, fields, action, items[:half])
                + self._write_chunk(table, fields, action, items[half:]))

    # -- Dataverse only -------------------------------------------------------------------------

    def _me(self) -> dict:
        if self._whoami is None:
            self._whoami = self.client.whoami()
        return self._whoami

    def integration_user_id(self) -> str:
        return self._me()["UserId"].lower()

    def default_owning_team_id(self) -> str:
        """The default team of the business unit bcsync's application user belongs to (the business unit coupled
        to the company): the owner of the rows bcsync creates in the team ownership model."""
        unit = self._me()["BusinessUnitId"]
        teams = next(self.client.pages("teams", select=["teamid"], top=1, filter=(
            f"_businessunitid_value eq {unit} and isdefault eq true and teamtype eq {OWNER_TEAM}")), [])
        if not teams:
            raise ConfigurationError(f"The business unit {unit} of bcsync's application user in Dataverse has no "
                                     f"default owner team, which owns the rows bcsync creates in the team ownership "
                                     f"model; move the application user to a business unit with one, or set "
                                     f"BCSYNC_OWNERSHIP_MODEL to person.")
        return teams[0]["teamid"].lower()

    def option_labels(self, option_set: OptionSet) -> dict[int, str]:
        return self.client.picklist_options(option_set.table.logical_name, option_set.attribute)


def in_filters(field: str, values: Sequence[Any]) -> Iterator[str]:
    """`Microsoft.Dynamics.CRM.In` filters listing `values` (as strings, the function's parameter type),
    each short enough for one URL."""
    listed: list[str] = []
    size = 0
    for value in values:
        text = "'" + str(value).replace("'", "''") + "'"
        length = len(quote(text, safe="")) + 3  # and the encoded comma
        if listed and (len(listed) >= IN_VALUES_PER_QUERY or size + length > IN_QUERY_CHARS):
            yield _in_filter(field, listed)
            listed, size = [], 0
        listed.append(text)
        size += length
    if listed:
        yield _in_filter(field, listed)


def _in_filter(field: str, listed: list[str]) -> str:
    return f"Microsoft.Dynamics.CRM.In(PropertyName='{field}',PropertyValues=[{','.join(listed)}])"
