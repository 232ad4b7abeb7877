"""Dataverse webhooks (sync.notifications.Registrar): one service endpoint per receiver URL and a step per message and
table, registered through the Web API.

The service endpoint is of the webhook contract (8) and authenticates with an HTTP header (authtype 5): authvalue
holds `<settings><setting name="x-bcsync-key" value="<key>" /></settings>`, which Dataverse sends as the header
`x-bcsync-key: <key>` with every post. It is named for bcsync and the deployment (a digest of its key), so that
bcsync finds its own endpoint again at whatever URL, and never touches anyone else's. Each step runs the endpoint asynchronously after the operation commits (stage
40 Post-operation, mode 1 Asynchronous, server only, its system job deleted when it succeeds), on the message
(Create, Update, Delete) and the table's message filter. An Update step names the columns bcsync reads from the table
(`update_columns`), so an update of other columns posts nothing.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Iterable, Mapping, Sequence
from xml.sax.saxutils import quoteattr

from sync.errors import NotFoundError, SyncError
from sync.model import CrmTable, Side, TableMapping
from sync.notifications import Hook, HookState

from .dataverse import API_PATH, DataverseClient
from .odata import row_filter

KEY_HEADER = "x-bcsync-key"
MESSAGES = ("Create", "Update", "Delete")
WEBHOOK_CONTRACT, HTTP_HEADER, JSON_FORMAT = 8, 5, 2
POST_OPERATION, ASYNCHRONOUS, SERVER_ONLY = 40, 1, 0
STEP_COLUMNS = ["sdkmessageprocessingstepid", "name", "filteringattributes", "stage", "mode", "statecode",
                "_sdkmessageid_value", "_sdkmessagefilterid_value"]


ENDPOINT_NAMED = "bcsync webhook "


def endpoint_name(key: str) -> str:
    """The service endpoint's name: bcsync's, and the deployment's, whatever URL it posts to (a digest of its Sales
    key, which the deployment's state table keeps), so that an endpoint at an earlier URL is found again."""
    return f"{ENDPOINT_NAMED}{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def update_columns(mappings: Iterable[TableMapping]) -> dict[str, list[str]]:
    """Per Sales table, the columns whose update should be posted: those the enabled mappings (of every company) that
    read the table transfer or filter on. A table read by a mapping that also reads beyond its field mappings (a process such as
    sales orders, rules of its own) or whose filter cannot be parsed gets no list: every update is posted."""
    columns: dict[str, set[str] | None] = {}
    for mapping in mappings:
        table = mapping.table_on(Side.CRM)
        directions = [d for d in mapping.direction.job_directions() if d.source is Side.CRM]
        if not mapping.enabled or not isinstance(table, CrmTable) or not directions:
            continue
        name = table.logical_name
        compiled = row_filter(mapping.crm_filter)
        if mapping.process is not None or mapping.rules is not None or compiled is None or name in columns and \
                columns[name] is None:
            columns[name] = None
            continue
        read = {f.crm for d in directions for f in mapping.fields_for(d) if f.crm}
        read |= {c[1:-len("_value")] if c.startswith("_") and c.endswith("_value") else c for c in compiled[1]}
        columns[name] = columns.get(name, set()) | read
    return {name: sorted(found) for name, found in columns.items() if found}


class DataverseWebhooks:
    """bcsync's webhooks in one Dataverse organisation, by the receiver URL they post to."""

    side = Side.CRM

    def __init__(self, client: DataverseClient, columns: Mapping[str, Sequence[str]] | None = None):
        self.client = client
        self.columns = columns or {}  # Update steps' filtering attributes, by table (update_columns)

    # -- reading ---------------------------------------------------------------------------------

    def _rows(self, entity_set: str, select: Sequence[str], filter: str) -> list[dict]:
        return [row for page in self.client.pages(entity_set, select=select, filter=filter, page_size=5000)
                for row in page]

    def _endpoints(self, url: str, key: str | None) -> list[dict]:
        """The service endpoints of this deployment (named for `key`, at whatever URL) and bcsync's at `url`: one,
        unless two registrations raced or the URL moved (those at `url` first, then oldest first, in an order every
        worker agrees on)."""
        named = [f"url eq '{url.replace(chr(39), chr(39) * 2)}'"] + ([f"name eq '{endpoint_name(key)}'"] if key else [])
        found = [e for e in self._rows("serviceendpoints", ["serviceendpointid", "name", "url", "createdon"],
                                       " or ".join(named))
                 if str(e.get("name") or "").startswith(ENDPOINT_NAMED)]
        return sorted(found, key=lambda e: (e.get("url") != url, str(e.get("createdon") or ""), e["serviceendpointid"]))

    def _steps(self, endpoint_id: str) -> list[dict]:
        return self._rows("sdkmessageprocessingsteps", STEP_COLUMNS, f"_eventhandler_value eq {endpoint_id}")

    @cached_property
    def _messages(self) -> dict[str, str]:
        """Message name -> sdkmessageid, asked once per registrar (each call of the facade makes one)."""
        rows = self._rows("sdkmessages", ["sdkmessageid", "name"],
                          " or ".join(f"name eq '{message}'" for message in MESSAGES))
        return {row["name"]: row["sdkmessageid"] for row in rows}

    def _filters(self, messages: Mapping[str, str], tables: Sequence[str], steps: Sequence[dict]) \
            -> dict[str, tuple[str, str]]:
        """sdkmessagefilterid -> (message name, table) for the messages on these tables and the filters of these
        steps (read in one request)."""
        ids = sorted({str(s["_sdkmessagefilterid_value"]) for s in steps if s.get("_sdkmessagefilterid_value")})
        listed = [f"primaryobjecttypecode eq '{table}'" for table in tables] + [f"sdkmessagefilterid eq {i}" for i in ids]
        if not listed:
            return {}
        names = {message_id.lower(): name for name, message_id in messages.items()}
        rows = self._rows("sdkmessagefilters", ["sdkmessagefilterid", "primaryobjecttypecode", "_sdkmessageid_value"],
                          " or ".join(listed))
        return {row["sdkmessagefilterid"].lower(): (names[str(row["_sdkmessageid_value"]).lower()],
                                                    row["primaryobjecttypecode"])
                for row in rows if str(row.get("_sdkmessageid_value") or "").lower() in names}

    def _registered(self, endpoint_id: str, tables: Sequence[str] = ()) \
            -> tuple[list[dict], dict[str, str], dict[tuple[str, str], str], dict[tuple[str, str], dict]]:
        """The endpoint's steps; the messages' ids; the filter of each (message, table) for `tables` and the steps'
        tables; each step by its (message, table)."""
        steps = self._steps(endpoint_id)
        messages = self._messages
        filters = self._filters(messages, sorted(set(tables)), steps)
        named = {filters[str(step["_sdkmessagefilterid_value"]).lower()]: step for step in steps
                 if str(step.get("_sdkmessagefilterid_value") or "").lower() in filters}
        return steps, messages, {pair: filter_id for filter_id, pair in filters.items()}, named

    def hooks(self, url: str, key: str | None = None, tables: Sequence[str] = ()) -> list[Hook]:
        """The endpoint and its steps; stale: an endpoint at another URL, a step that differs from what bcsync
        registers (disabled in Sales, switched to synchronous, other columns); then each message of `tables` with
        no step, missing."""
        endpoint = next(iter(self._endpoints(url, key)), None)
        named = self._registered(endpoint["serviceendpointid"])[3] if endpoint is not None else {}
        found = [self._endpoint_hook(endpoint, HookState.ACTIVE if endpoint.get("url") == url else HookState.STALE)
                 ] if endpoint is not None else []
        found += [Hook(Side.CRM, table, step["sdkmessageprocessingstepid"],
                       HookState.STALE if self._differs(step, message, table) else HookState.ACTIVE, detail=message)
                  for (message, table), step in sorted(named.items(), key=lambda item: (item[0][1], item[0][0]))]
        return found + [Hook(Side.CRM, table, "", HookState.MISSING, detail=message)
                        for table in tables for message in MESSAGES if (message, table) not in named]

    def _wanted(self, message: str, table: str) -> dict:
        """A step's settings as bcsync registers them."""
        columns = ",".join(self.columns.get(table, ())) if message == "Update" else ""
        return {"stage": POST_OPERATION, "mode": ASYNCHRONOUS, "statecode": 0, "filteringattributes": columns or None}

    def _differs(self, step: dict, message: str, table: str, only: Sequence[str] = ()) -> dict:
        """What of `step` differs from bcsync's settings (of the columns `only`, when given)."""
        return {k: v for k, v in self._wanted(message, table).items()
                if (not only or k in only) and (step.get(k) if step.get(k) != "" else None) != v}

    @staticmethod
    def _endpoint_hook(endpoint: dict, state: HookState) -> Hook:
        return Hook(Side.CRM, "", endpoint["serviceendpointid"], state, detail="service endpoint")

    # -- registering -----------------------------------------------------------------------------

    def register(self, tables: Sequence[str], url: str, key: str, renewing: bool = False) -> list[Hook]:
        """The endpoint created, or brought to this URL and key (the key cannot be read back, so it is written on
        every registration); a step per message and table created where missing, brought in line where it differs;
        the endpoint's steps for tables no longer wanted removed; a second endpoint (two registrations that raced, or
        one at an earlier URL) removed with its steps. The timer's `renewing` only creates the missing steps and
        enables again a step disabled or made synchronous (which would have users' saves wait on the receiver); it
        writes nothing else and removes nothing."""
        body = {"name": endpoint_name(key), "url": url, "contract": WEBHOOK_CONTRACT, "authtype": HTTP_HEADER,
                "authvalue": f"<settings><setting name={quoteattr(KEY_HEADER)} value={quoteattr(key)} /></settings>",
                "messageformat": JSON_FORMAT, "description": "bcsync: changes in Sales start targeted jobs"}
        endpoint, *extras = self._endpoints(url, key) or [None]
        try:
            if endpoint is None:
                endpoint = self.client.create("serviceendpoints", body)
                hooks = [self._endpoint_hook(endpoint, HookState.CREATED)]
            else:
                if not renewing:
                    self._patch("serviceendpoints", endpoint["serviceendpointid"], body)
                hooks = [self._endpoint_hook(endpoint, HookState.ACTIVE)]
                if not renewing:
                    hooks += [hook for extra in extras for hook in self._remove_endpoint(extra)]
        except SyncError as exc:  # refused (a privilege missing): no step can be registered without it
            if exc.transient:
                raise
            return [Hook(Side.CRM, "", endpoint["serviceendpointid"] if endpoint else "", HookState.FAILED,
                         detail=f"service endpoint: {exc.message}")]
        endpoint_id = endpoint["serviceendpointid"]
        wanted = list(dict.fromkeys(tables))
        steps, messages, by_pair, existing = self._registered(endpoint_id, wanted)
        for table in wanted:
            for message in MESSAGES:
                hooks.append(self._ensure(endpoint_id, message, table, messages, by_pair, existing.get((message, table)),
                                          renewing))
        if renewing:
            return hooks
        for (message, table), step in existing.items():
            if table not in wanted:
                hooks.append(self._remove_step(step, message, table))
        for step in steps:  # this endpoint's steps that serve no filter bcsync knows: not bcsync's shape
            if step not in existing.values():
                hooks.append(self._remove_step(step, "", ""))
        return hooks

    def _ensure(self, endpoint_id: str, message: str, table: str, messages: Mapping[str, str],
                by_pair: Mapping[tuple[str, str], str], step: dict | None, renewing: bool = False) -> Hook:
        filter_id = by_pair.get((message, table))
        if filter_id is None or message not in messages:
            return Hook(Side.CRM, table, "", HookState.FAILED,
                        detail=f"{message}: Dataverse has no {message} message for the table {table}")
        wanted = self._wanted(message, table)
        try:
            if step is None:
                created = self.client.create("sdkmessageprocessingsteps", {
                    "name": f"bcsync: {message} of {table}", "rank": 1, "supporteddeployment": SERVER_ONLY,
                    "asyncautodelete": True, **{k: v for k, v in wanted.items() if k != "statecode"},
                    "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
                    "sdkmessageid@odata.bind": f"/sdkmessages({messages[message]})",
                    "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})"})
                return Hook(Side.CRM, table, created["sdkmessageprocessingstepid"], HookState.CREATED, detail=message)
            changed = self._differs(step, message, table, ("stage", "mode", "statecode") if renewing else ())
            if changed:
                if "statecode" in changed:
                    changed["statuscode"] = 1  # Enabled, the status that goes with the state
                self._patch("sdkmessageprocessingsteps", step["sdkmessageprocessingstepid"], changed)
                return Hook(Side.CRM, table, step["sdkmessageprocessingstepid"], HookState.RENEWED, detail=message)
            return Hook(Side.CRM, table, step["sdkmessageprocessingstepid"], HookState.ACTIVE, detail=message)
        except SyncError as exc:
            if exc.transient:
                raise
            return Hook(Side.CRM, table, step["sdkmessageprocessingstepid"] if step else "", HookState.FAILED,
                        detail=f"{message}: {exc.message}")

    def _patch(self, entity_set: str, row_id: str, body: dict) -> None:
        self.client.api.request("PATCH", f"{API_PATH}/{entity_set}({row_id})", json=body, idempotent=True,
                                headers={**self.client.HEADERS, "Content-Type": "application/json",
                                         "If-Match": "*"})

    def _delete(self, entity_set: str, row_id: str) -> None:
        """Gone already counts as deleted."""
        try:
            self.client.api.request("DELETE", f"{API_PATH}/{entity_set}({row_id})", idempotent=True,
                                    headers=self.client.HEADERS)
        except NotFoundError:
            pass

    def _remove_step(self, step: dict, message: str, table: str) -> Hook:
        self._delete("sdkmessageprocessingsteps", step["sdkmessageprocessingstepid"])
        return Hook(Side.CRM, table, step["sdkmessageprocessingstepid"], HookState.REMOVED, detail=message)

    # -- removing --------------------------------------------------------------------------------

    def remove(self, url: str, key: str | None = None) -> list[Hook]:
        return [hook for endpoint in self._endpoints(url, key) for hook in self._remove_endpoint(endpoint)]

    def _remove_endpoint(self, endpoint: dict) -> list[Hook]:
        """The endpoint's steps, then the endpoint (a step without its endpoint would fail at every change)."""
        steps, _, _, named = self._registered(endpoint["serviceendpointid"])
        pairs = {step["sdkmessageprocessingstepid"]: pair for pair, step in named.items()}
        gone = [self._remove_step(step, *pairs.get(step["sdkmessageprocessingstepid"], ("", ""))) for step in steps]
        self._delete("serviceendpoints", endpoint["serviceendpointid"])
        return gone + [self._endpoint_hook(endpoint, HookState.REMOVED)]
