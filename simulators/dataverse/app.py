"""The Web API v9.2 as a WSGI app: routing, authentication, the handlers, the admin endpoints.

Handlers work on a `Ctx` (method, path below the service root, query options, headers, body, caller)
and return a `Reply`, so that `$batch` can run its inner requests through the same code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from werkzeug.datastructures import Headers, MultiDict
from werkzeug.wrappers import Request, Response

from simulators.token import TokenValidator

from . import errors
from .engine import AltKeyMiss, Written, literal_value
from .errors import DataverseError
from .query import (COUNT_LIMIT, TOTAL_COUNT, TOTAL_COUNT_EXCEEDED, Prefs, context_url, decode_token, encode_token,
                    page_number_of, parse_expand, parse_order, parse_prefer, parse_select, skiptoken_value)
from .schema import Entity
from .security import ACCESS_BY_ACTION, ACCESS_BY_METHOD
from .store import Row
from .values import normalize_guid, to_json

if TYPE_CHECKING:
    from .simulator import DataverseSimulator

log = logging.getLogger(__name__)
API_PATH_RE = re.compile(r"^/api/data/v9\.\d(?P<rest>/.*)?$")
JSON_TYPE = "application/json; odata.metadata=minimal"
BULK_ACTIONS = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")
RETRIEVE_USER_PRIVILEGES = ("Microsoft.Dynamics.CRM.RetrieveUserPrivileges()",
                            "Microsoft.Dynamics.CRM.RetrieveUserPrivileges")
ROW, GONE = 0, 1  # the two parts of a delta read: rows changed first, then deletions
UNSUPPORTED_OPTIONS = {
    "$apply": "The $apply query option is not supported by this server.",
    "$search": "The $search query option is not supported.",
    "fetchXml": "FetchXML queries are not supported by this server.",
    "sql": "SQL queries are not supported by this server.",
    "savedQuery": "Saved queries are not supported by this server.",
    "userQuery": "User queries are not supported by this server.",
}


@dataclass
class Ctx:
    method: str
    path: str                 # below the service root, no leading slash, percent-decoded
    args: MultiDict
    headers: Headers
    body: bytes
    root: str                 # https://host:port/api/data/v9.2
    caller: Row
    prefs: Prefs = field(default_factory=Prefs)
    content_refs: dict | None = None   # $batch changeset: Content-ID -> (table, id)

    @property
    def caller_id(self) -> str:
        return self.caller.values["systemuserid"]

    def json(self, entity: Entity | None = None) -> Any:
        text = self.body.decode("utf-8-sig") if self.body else ""
        if not text.strip():
            return {}
        try:
            return json.loads(text)
        except ValueError as exc:
            name = entity.logical_name if entity else "unknown"
            raise errors.payload_error(name, f"Microsoft.OData.ODataException: Invalid JSON. {exc}") from None


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict = field(default_factory=dict)
    content_type: str | None = None

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def response(self) -> Response:
        resp = Response(self.payload(), status=self.status)
        resp.headers.pop("Content-Type", None)
        if self.body is not None:
            resp.headers["Content-Type"] = self.content_type or JSON_TYPE
        resp.headers["OData-Version"] = "4.0"
        resp.headers["x-ms-service-request-id"] = str(uuid.uuid4())
        for key, value in self.headers.items():
            resp.headers[key] = value
        return resp


def error_reply(exc: DataverseError) -> Reply:
    return Reply(exc.status, exc.body(), dict(exc.headers), "application/json; odata.metadata=minimal")


def split_resource(path: str) -> tuple[str, str | None, str | None]:
    """`accounts(<key>)/name` -> ("accounts", "<key>", "name"); quotes in the key may hold parentheses."""
    i, n = 0, len(path)
    while i < n and path[i] not in "(/":
        i += 1
    name, key, rest = path[:i], None, None
    if i < n and path[i] == "(":
        j, quote_open = i + 1, False
        while j < n:
            ch = path[j]
            if ch == "'":
                quote_open = not quote_open
            elif ch == ")" and not quote_open:
                break
            j += 1
        if j >= n:
            raise errors.bad_query(f"Bad Request - Error in query syntax: '{path}'.")
        key = path[i + 1:j]
        i = j + 1
    if i < n:
        if path[i] != "/":
            raise errors.segment_not_found(path[i:])
        rest = path[i + 1:] or None
    return name, key, rest


def encode_query(pairs: list[tuple[str, str]]) -> str:
    """Query options for a nextLink/deltaLink: `$` and `,` stay readable, everything else is escaped."""
    return "&".join(f"{quote(k, safe='$')}={quote(v, safe='$,()/:@')}" for k, v in pairs)


def etag_matches(header: str, row: Row) -> bool:
    for tag in (t.strip() for t in header.split(",")):
        if tag == "*" or tag == row.etag or tag.strip('"') == str(row.version) or tag == f'"{row.version}"':
            return True
    return False


class WebApi:
    def __init__(self, sim: "DataverseSimulator"):
        self.sim = sim

    # ------------------------------------------------------------------ WSGI entry

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path.startswith("/_sim/"):
            return self.sim.admin(request)(environ, start_response)
        response = self.serve(request).response()
        response.headers["x-ms-dop-hint"] = str(self.sim.dop_hint)
        return response(environ, start_response)

    def serve(self, request: Request) -> Reply:
        match = API_PATH_RE.match(request.path)
        host = request.host_url.rstrip("/")
        try:
            if not match:
                raise errors.segment_not_found(request.path.strip("/").split("/")[0] or "/")
            caller = self.authenticate(request, host)
            version = request.path.split("/")[3]
            ctx = Ctx(request.method.upper(), (match["rest"] or "/").lstrip("/"), request.args, request.headers,
                      request.get_data(), f"{host}/api/data/{version}", caller,
                      parse_prefer(request.headers.getlist("Prefer")))
            return self.dispatch(ctx)
        except DataverseError as exc:
            return error_reply(exc)
        except Exception:  # a simulator bug: answer like the service does, and say so in the log
            log.exception("Dataverse simulator failed on %s %s", request.method, request.full_path)
            return error_reply(DataverseError(500, "0x80040216", "An unexpected error occurred."))

    def authenticate(self, request: Request, audience: str) -> Row:
        sim = self.sim
        validator = TokenValidator(sim.issuer, audiences=(audience, audience + "/"))
        claims = validator.validate(request.headers.get("Authorization"))
        if claims is None:
            challenge = (f"Bearer authorization_uri={sim.issuer.base_url}/{sim.issuer.tenant_id}/oauth2/authorize, "
                         f"resource_id={audience}/")
            raise DataverseError(401, "",
                                 "The access token is missing, expired or not valid for this organization.",
                                 {"WWW-Authenticate": challenge})
        with sim.store.lock:
            caller = sim.find_caller(claims)
            if caller is None:
                raise DataverseError(403, "0x80072560", "The user is not a member of the organization.")
            if caller.values.get("isdisabled"):
                raise DataverseError(403, "0x80040225", (
                    f"The user with SystemUserId={caller.values['systemuserid']} in OrganizationContext="
                    f"{sim.organization_id} is disabled. Disabled users cannot access the system. Consider enabling "
                    f"this user. Also, users are disabled if they don't have a license or if the user account is "
                    f"disabled in Active Directory."))
            return caller

    # ------------------------------------------------------------------ routing

    def dispatch(self, ctx: Ctx) -> Reply:
        path = ctx.path.strip("/")
        method = ctx.method
        if path == "":
            return self.only(ctx, "GET") or self.service_document(ctx)
        if path == "$metadata":
            return self.only(ctx, "GET") or Reply(200, self.sim.csdl(), content_type="application/xml")
        if path == "$batch":
            from .batch import run_batch  # batch.py builds on this module
            return self.only(ctx, "POST") or run_batch(self, ctx)
        if path in ("WhoAmI", "WhoAmI()"):
            return self.only(ctx, "GET") or self.who_am_i(ctx)
        if path.startswith("EntityDefinitions"):
            if method != "GET":
                raise errors.method_not_allowed(method)
            return Reply(200, self.sim.metadata.handle(path, ctx.args, ctx.root))
        if path in ("BulkDelete", "Microsoft.Dynamics.CRM.BulkDelete"):
            return self.only(ctx, "POST") or self.bulk_delete(ctx)
        if path in ("InsertOptionValue", "Microsoft.Dynamics.CRM.InsertOptionValue"):
            return self.only(ctx, "POST") or self.insert_option_value(ctx)
        name, key, rest = split_resource(path)
        entity = self.sim.schema.by_set.get(name)
        if entity is None:
            raise errors.segment_not_found(name)
        if entity.logical_name == "systemuser" and rest in RETRIEVE_USER_PRIVILEGES:
            return self.only(ctx, "GET") or self.user_privileges(ctx, key)
        bulk = ACCESS_BY_ACTION.get((rest or "").split(".")[-1]) if key is None else None
        self.sim.security.demand(ctx.caller_id, entity, bulk or (ACCESS_BY_METHOD.get(method, "Read"),))
        if key is None:
            if rest is None:
                if method == "GET":
                    return self.list_rows(ctx, entity)
                if method == "POST":
                    return self.create(ctx, entity)
                raise errors.method_not_allowed(method)
            if rest == "$count":
                return self.only(ctx, "GET") or self.count(ctx, entity)
            if rest.startswith("Microsoft.Dynamics.CRM.") and rest.split(".")[-1] in BULK_ACTIONS:
                return self.only(ctx, "POST") or self.bulk(ctx, entity, rest.split(".")[-1])
            raise errors.segment_not_found(rest)
        with self.sim.store.lock:
            row_id = self.sim.engine.parse_key(entity, key)
        if rest is None:
            if method == "GET":
                return self.get_row(ctx, entity, row_id)
            if method == "PATCH":
                return self.patch(ctx, entity, row_id, key)
            if method == "DELETE":
                return self.delete(ctx, entity, row_id)
            raise errors.method_not_allowed(method)
        return self.property(ctx, entity, row_id, rest)

    @staticmethod
    def only(ctx: Ctx, method: str) -> Reply | None:
        if ctx.method != method:
            raise errors.method_not_allowed(ctx.method)
        return None

    def service_document(self, ctx: Ctx) -> Reply:
        sets = [{"name": e.entity_set, "kind": "EntitySet", "url": e.entity_set}
                for e in self.sim.schema.entities.values()]
        return Reply(200, {"@odata.context": f"{ctx.root}/$metadata", "value": sets})

    def user_privileges(self, ctx: Ctx, key: str | None) -> Reply:
        """RetrieveUserPrivileges, bound to a systemuser: the privileges its security roles grant."""
        with self.sim.store.lock:
            row = self._existing(self.sim.schema["systemuser"], self.sim.engine.parse_key(
                self.sim.schema["systemuser"], key or ""))
            if row is None:
                raise errors.does_not_exist("systemuser", str(key))
            user_id = row.values["systemuserid"]
            business_unit = row.values.get("businessunitid") or self.sim.root_business_unit_id
        return Reply(200, {
            "@odata.context": f"{ctx.root}/$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse",
            "RolePrivileges": self.sim.security.role_privileges(user_id, business_unit)})

    def who_am_i(self, ctx: Ctx) -> Reply:
        return Reply(200, {
            "@odata.context": f"{ctx.root}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": ctx.caller.values.get("businessunitid"),
            "UserId": ctx.caller_id,
            "OrganizationId": self.sim.organization_id,
        })

    # ------------------------------------------------------------------ reads

    def _check_options(self, ctx: Ctx) -> None:
        if "$skip" in ctx.args:
            raise errors.bad_query("Skip Clause is not supported in CRM")
        for option, message in UNSUPPORTED_OPTIONS.items():
            if option in ctx.args:
                raise errors.bad_query(message)

    def _applied(self, ctx: Ctx, page_size: int | None = None) -> dict:
        applied = []
        if page_size is not None:
            applied.append(f"odata.maxpagesize={page_size}")
        if ctx.prefs.annotations:
            applied.append(f'odata.include-annotations="{",".join(ctx.prefs.annotations)}"')
        return {"Preference-Applied": ",".join(applied)} if applied else {}

    def list_rows(self, ctx: Ctx, entity: Entity) -> Reply:
        self._check_options(ctx)
        args = ctx.args
        if "$deltatoken" in args:
            return self.delta(ctx, entity)
        select = parse_select(entity, args.get("$select"))
        expand = parse_expand(entity, args.get("$expand"), self.sim.schema)
        order = parse_order(entity, args.get("$orderby"))
        top = None
        if args.get("$top") is not None:
            try:
                top = int(args["$top"])
            except ValueError:
                raise errors.bad_query(f"Invalid value '{args['$top']}' for $top query option found.") from None
            if top < 0:
                raise errors.bad_query(f"Invalid value '{top}' for $top query option found.")
        count = (args.get("$count") or "").lower() == "true"
        token_text = args.get("$skiptoken")
        prefs = ctx.prefs
        sim = self.sim
        with sim.store.lock:
            after, remaining, tracking = None, None, None
            if token_text:
                after, remaining, tracking = decode_token(token_text, len(order))
            if prefs.track_changes and tracking is None:
                self._check_tracking(ctx, entity)
                tracking = sim.store.row_version
            if prefs.maxpagesize:
                size, remaining = prefs.maxpagesize, None
            elif top is not None or remaining is not None:
                remaining = top if remaining is None else remaining
                size = min(remaining, 5000)
            else:
                size = 5000
            walked = None if count else sim.runner.page(entity, args.get("$filter"), order, after, size)
            if walked is not None:
                keys, page, further = walked
            else:
                all_keys, rows = sim.runner.sorted_rows(entity, args.get("$filter"), order)
                start = 0 if after is None else sim.runner.start_after(all_keys, after, tuple(d for _, d in order))
                keys, page = all_keys[start:start + size], rows[start:start + size]
                further = start + len(page) < len(rows)
            left = None if remaining is None else remaining - len(page)
            more = further and (left is None or left > 0) and len(page) > 0
            body: dict = {"@odata.context": context_url(ctx.root, entity, select)}
            if prefs.annotations and prefs.wants(TOTAL_COUNT):
                body[f"@{TOTAL_COUNT}"] = min(len(rows), COUNT_LIMIT) if count else -1
                body[f"@{TOTAL_COUNT_EXCEEDED}"] = len(rows) > COUNT_LIMIT if count else False
            if count:
                body["@odata.count"] = min(len(rows), COUNT_LIMIT)
            body["value"] = [sim.renderer.render(entity, row, select, prefs, expand) for row in page]
            pairs = [(k, v) for k, v in args.items(multi=True) if k != "$skiptoken"]
            if more:
                token = encode_token(keys[len(page) - 1], left, tracking)
                pairs.append(("$skiptoken", skiptoken_value(token, page_number_of(token_text) + 1)))
                body["@odata.nextLink"] = f"{ctx.root}/{entity.entity_set}?{encode_query(pairs)}"
            elif tracking is not None:
                pairs.append(("$deltatoken", self._delta_token(tracking)))
                body["@odata.deltaLink"] = f"{ctx.root}/{entity.entity_set}?{encode_query(pairs)}"
        headers = self._applied(ctx, prefs.maxpagesize)
        if tracking is not None:
            applied = [h for h in (headers.get("Preference-Applied"), "odata.track-changes") if h]
            headers["Preference-Applied"] = ",".join(applied)
        return Reply(200, body, headers)

    # ------------------------------------------------------------------ change tracking

    def _check_tracking(self, ctx: Ctx, entity: Entity) -> None:
        if not entity.change_tracking:
            raise DataverseError(400, "0x80072491", f"Entity {entity.logical_name} isn't enabled for change tracking.")
        for option in ("$filter", "$orderby", "$expand", "$top"):
            if option in ctx.args:
                raise errors.bad_query(
                    f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.')

    def _delta_token(self, version: int) -> str:
        return f"{version}!{self.sim.engine.now().strftime('%m/%d/%Y %H:%M:%S')}"

    def _read_delta_token(self, text: str) -> int:
        match = re.fullmatch(r"(\d+)!(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d)", text.strip())
        if not match:
            raise errors.bad_query("The $deltatoken is not valid.")
        issued = dt.datetime.strptime(match.group(2), "%m/%d/%Y %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        if self.sim.engine.now() - issued > dt.timedelta(days=self.sim.change_tracking_days):
            raise DataverseError(400, "0x80044352",
                                 "Version stamp associated with the client has expired. Please perform a full sync.")
        return int(match.group(1))

    def changes(self, entity: Entity, since: int) -> tuple[list[Row], list[tuple[int, str]]]:
        """Rows created or updated after `since` (by version), then the version and id of each row
        deleted after it."""
        store = self.sim.store
        changed = sorted((row for row in store.table(entity.logical_name).rows.values() if row.version > since),
                         key=lambda row: row.version)
        deleted = [(version, rid) for name, rid, version in store.deleted
                   if name == entity.logical_name and version > since]
        return changed, deleted

    def delta(self, ctx: Ctx, entity: Entity) -> Reply:
        """A delta link's read: rows changed, then deletions, by version, paged by `odata.maxpagesize` like
        any read. A next link goes on after the last version it listed, so a row changed while the pages
        are read comes again further on; the delta link on the last page starts from the version current
        at the first page, so nothing changed meanwhile is missed."""
        self._check_tracking(ctx, entity)
        select = parse_select(entity, ctx.args.get("$select"))
        sim = self.sim
        with sim.store.lock:
            since = self._read_delta_token(ctx.args["$deltatoken"])
            phase, after, upto = self._delta_position(ctx.args.get("$skiptoken"), sim.store.row_version)
            changed, deleted = self.changes(entity, since)
            entries = [(ROW, row.version, row) for row in changed] + [(GONE, version, rid) for version, rid in deleted]
            entries = [e for e in entries if (e[0], e[1]) > (phase, after)]
            size = ctx.prefs.maxpagesize or 5000
            page, more = entries[:size], len(entries) > size
            value = [sim.renderer.render(entity, row, select, ctx.prefs) for kind, _, row in page if kind == ROW]
            value += [{"@odata.context": f"{ctx.root}/$metadata#{entity.entity_set}/$deletedEntity",
                       "id": rid, "reason": "deleted"} for kind, _, rid in page if kind == GONE]
            pairs = [(k, v) for k, v in ctx.args.items(multi=True) if k not in ("$deltatoken", "$skiptoken")]
        shape = context_url(ctx.root, entity, select)
        body = {"@odata.context": f"{shape}/$delta", "value": value}
        if more:
            last_kind, last_version, _ = page[-1]
            pairs += [("$deltatoken", ctx.args["$deltatoken"]), ("$skiptoken", f"{last_kind}!{last_version}!{upto}")]
            body["@odata.nextLink"] = f"{ctx.root}/{entity.entity_set}?{encode_query(pairs)}"
        else:
            pairs.append(("$deltatoken", self._delta_token(upto)))
            body["@odata.deltaLink"] = f"{ctx.root}/{entity.entity_set}?{encode_query(pairs)}"
        return Reply(200, body, self._applied(ctx, ctx.prefs.maxpagesize))

    @staticmethod
    def _delta_position(token: str | None, current: int) -> tuple[int, int, int]:
        """Where a paged delta read goes on: the kind and version of the last entry listed, and the
        version the read started at. No token: the first page."""
        if not token:
            return ROW, -1, current
        match = re.fullmatch(r"([01])!(\d+)!(\d+)", token)
        if not match:
            raise errors.bad_query("The $skiptoken is not valid.")
        return int(match.group(1)), int(match.group(2)), int(match.group(3))

    def count(self, ctx: Ctx, entity: Entity) -> Reply:
        with self.sim.store.lock:
            if "$deltatoken" in ctx.args:
                changed, deleted = self.changes(entity, self._read_delta_token(ctx.args["$deltatoken"]))
                return Reply(200, str(len(changed) + len(deleted)), content_type="text/plain")
            _, rows = self.sim.runner.sorted_rows(entity, ctx.args.get("$filter"), [])
            return Reply(200, str(min(len(rows), COUNT_LIMIT)), content_type="text/plain")

    def _existing(self, entity: Entity, row_id: str) -> Row | None:
        if isinstance(row_id, AltKeyMiss):
            return None
        return self.sim.store.get(entity.logical_name, row_id)

    @staticmethod
    def _missing(entity: Entity, row_id: str) -> DataverseError:
        if isinstance(row_id, AltKeyMiss):
            return DataverseError(404, "0x80040217",
                                  f"A record with the specified key values does not exist in {entity.logical_name} entity")
        return errors.does_not_exist(entity.logical_name, row_id)

    def get_row(self, ctx: Ctx, entity: Entity, row_id: str) -> Reply:
        self._check_options(ctx)
        select = parse_select(entity, ctx.args.get("$select"))
        expand = parse_expand(entity, ctx.args.get("$expand"), self.sim.schema)
        with self.sim.store.lock:
            row = self._existing(entity, row_id)
            if row is None:
                raise self._missing(entity, row_id)
            inm = ctx.headers.get("If-None-Match")
            if (inm and inm.strip().lower() != "null" and not ctx.prefs.annotations and not expand
                    and etag_matches(inm, row)):
                return Reply(304, None, {"ETag": row.etag})
            body = {"@odata.context": context_url(ctx.root, entity, select, single=True),
                    **self.sim.renderer.render(entity, row, select, ctx.prefs, expand)}
            return Reply(200, body, {"ETag": row.etag, **self._applied(ctx)})

    def property(self, ctx: Ctx, entity: Entity, row_id: str, rest: str) -> Reply:
        """`/accounts(id)/name` (GET, PUT, DELETE), `/name/$value`, `/primarycontactid/$ref` (PUT, DELETE)."""
        parts = rest.split("/")
        name, suffix = parts[0], "/".join(parts[1:]) or None
        sim = self.sim
        nav_attr = entity.navs.get(name)
        attr = entity.wire.get(name) or entity.attributes.get(name)
        if suffix == "$ref" and nav_attr is not None:
            if ctx.method == "DELETE":
                written = Written()
                written.values[nav_attr.name] = None
            elif ctx.method == "PUT":
                ref = self._json_object(ctx, entity).get("@odata.id")
                written = sim.engine.parse_wire(entity, {f"{name}@odata.bind": ref}, root=ctx.root)
            else:
                raise errors.method_not_allowed(ctx.method)
            with sim.store.transaction():
                if self._existing(entity, row_id) is None:
                    raise self._missing(entity, row_id)
                sim.engine.update(entity, row_id, written, ctx.caller_id)
            return Reply(204)
        if attr is None or (suffix not in (None, "$value")):
            raise errors.segment_not_found(rest)
        if ctx.method == "GET":
            with sim.store.lock:
                row = self._existing(entity, row_id)
                if row is None:
                    raise self._missing(entity, row_id)
                value = sim.renderer.render(entity, row, [attr], None)[attr.wire_name]
            if suffix == "$value":
                if value is None:
                    return Reply(204)
                return Reply(200, str(value), content_type="text/plain")
            return Reply(200, {"@odata.context": f"{ctx.root}/$metadata#{entity.entity_set}({row_id})/{attr.wire_name}",
                               "value": value})
        if ctx.method in ("PUT", "DELETE"):
            if attr.is_lookup:
                raise errors.method_not_allowed(ctx.method)
            value = None if ctx.method == "DELETE" else self._json_object(ctx, entity).get("value")
            with sim.store.transaction():
                if self._existing(entity, row_id) is None:
                    raise self._missing(entity, row_id)
                written = sim.engine.parse_wire(entity, {attr.name: value}, root=ctx.root)
                sim.engine.update(entity, row_id, written, ctx.caller_id)
            return Reply(204)
        raise errors.method_not_allowed(ctx.method)

    # ------------------------------------------------------------------ writes

    @staticmethod
    def _json_object(ctx: Ctx, entity: Entity) -> dict:
        body = ctx.json(entity)
        if not isinstance(body, dict):
            raise errors.payload_error(entity.logical_name, "Microsoft.OData.ODataException: The payload is not a JSON object.")
        return body

    def entity_id_url(self, ctx: Ctx, entity: Entity, row_id: str) -> str:
        return f"{ctx.root}/{entity.entity_set}({row_id})"

    def _deep_insert(self, ctx: Ctx, entity: Entity, body: dict) -> dict:
        """Nested rows on single-valued navigation properties are created first, then bound."""
        if not isinstance(body, dict):
            return body
        out = {}
        for key, value in body.items():
            attr = entity.navs.get(key)
            if attr is not None and isinstance(value, dict) and not attr.read_only:
                target_name = attr.navs[key]
                if target_name == "*":
                    raise errors.payload_error(entity.logical_name, "Deep insert of an owner is not supported.")
                target = self.sim.schema[target_name]
                child = self._create_row(ctx, target, value)
                out[f"{key}@odata.bind"] = f"/{target.entity_set}({child.values[target.primary_id]})"
            else:
                out[key] = value
        return out

    def _create_row(self, ctx: Ctx, entity: Entity, body) -> Row:
        body = self._deep_insert(ctx, entity, body)
        written = self.sim.engine.parse_wire(entity, body, root=ctx.root, content_refs=ctx.content_refs)
        return self.sim.engine.create(entity, written, ctx.caller_id)

    def create(self, ctx: Ctx, entity: Entity) -> Reply:
        self._check_write_options(ctx)
        body = ctx.json(entity)
        sim = self.sim
        with sim.store.transaction():
            row = self._create_row(ctx, entity, body)
            row_id = row.values[entity.primary_id]
            if ctx.prefs.representation:
                rendered = self._representation(ctx, entity, row)
        url = self.entity_id_url(ctx, entity, row_id)
        if ctx.prefs.representation:
            return Reply(201, rendered, {"ETag": row.etag, "Location": url, **self._applied(ctx)})
        return Reply(204, None, {"OData-EntityId": url, "Location": url})

    def _representation(self, ctx: Ctx, entity: Entity, row) -> dict:
        """The row as `Prefer: return=representation` answers it, honouring $select and $expand."""
        select = parse_select(entity, ctx.args.get("$select"))
        expand = parse_expand(entity, ctx.args.get("$expand"), self.sim.schema)
        return {"@odata.context": context_url(ctx.root, entity, select, single=True),
                **self.sim.renderer.render(entity, row, select, ctx.prefs, expand)}

    def _check_write_options(self, ctx: Ctx) -> None:
        if "$expand" in ctx.args and not ctx.prefs.representation:
            raise errors.bad_query("The $expand query option is only valid with Prefer: return=representation.")

    def patch(self, ctx: Ctx, entity: Entity, row_id: str, key: str | None = None) -> Reply:
        self._check_write_options(ctx)
        body = ctx.json(entity)
        sim = self.sim
        if_match = ctx.headers.get("If-Match")
        if_none_match = ctx.headers.get("If-None-Match")
        with sim.store.transaction():
            existing = self._existing(entity, row_id)
            if if_none_match and if_none_match.strip() == "*":
                if existing is not None:
                    raise errors.already_exists()
            elif if_match:
                if existing is None:
                    raise self._missing(entity, row_id)
                if not etag_matches(if_match, existing):
                    raise errors.version_mismatch()
            body = self._deep_insert(ctx, entity, body)
            written = sim.engine.parse_wire(entity, body, root=ctx.root, content_refs=ctx.content_refs)
            if existing is not None:
                row = sim.engine.update(entity, row_id, written, ctx.caller_id)
                created = False
            else:
                if isinstance(row_id, AltKeyMiss):
                    for name, literal in row_id.key.items():
                        attr = entity.attributes.get(name)
                        if attr is not None and attr.name not in written.values:
                            written.values[attr.name] = literal_value(attr, literal)
                else:
                    if written.row_id is not None and written.row_id != row_id:
                        raise errors.invalid_argument(
                            f"The {entity.primary_id} in the payload does not match the key in the request URI.")
                    written.row_id = row_id
                row = sim.engine.create(entity, written, ctx.caller_id)
                created = True
            new_id = row.values[entity.primary_id]
            if ctx.prefs.representation:
                rendered = self._representation(ctx, entity, row)
        url = self.entity_id_url(ctx, entity, new_id)
        if key is not None and entity.alternate_keys and (
                normalize_guid(key) is None and not key.strip().startswith(f"{entity.primary_id}=")):
            url = f"{ctx.root}/{entity.entity_set}({key})"  # an upsert by alternate key answers with the key form
        if ctx.prefs.representation:
            return Reply(201 if created else 200, rendered, {"ETag": row.etag, **self._applied(ctx)})
        return Reply(204, None, {"OData-EntityId": url})

    def delete(self, ctx: Ctx, entity: Entity, row_id: str) -> Reply:
        sim = self.sim
        with sim.store.transaction():
            existing = self._existing(entity, row_id)
            if existing is None:
                raise self._missing(entity, row_id)
            if_match = ctx.headers.get("If-Match")
            if if_match and not etag_matches(if_match, existing):
                raise errors.version_mismatch()
            sim.engine.delete(entity, existing.values[entity.primary_id], ctx.caller_id)
        return Reply(204)

    # ------------------------------------------------------------------ bulk

    def bulk(self, ctx: Ctx, entity: Entity, action: str) -> Reply:
        body = ctx.json(entity)
        targets = body.get("Targets") if isinstance(body, dict) else None
        if not isinstance(targets, list):
            raise errors.payload_error(entity.logical_name,
                                       "Microsoft.OData.ODataException: The parameter 'Targets' is missing or not a collection.")
        sim = self.sim
        engine = sim.engine
        ids = []
        with sim.store.transaction():
            for target in targets:
                if not isinstance(target, dict) or "@odata.type" not in target:
                    raise errors.payload_error(entity.logical_name, (
                        "Microsoft.OData.ODataException: An entity in 'Targets' has no '@odata.type' annotation; "
                        "the type of each target must be specified."))
                if action == "CreateMultiple":
                    row = self._create_row(ctx, entity, target)
                    ids.append(row.values[entity.primary_id])
                    continue
                written = engine.parse_wire(entity, target, root=ctx.root)
                row_id = written.row_id
                if "@odata.id" in target:
                    _, row_id = engine.resolve_reference(str(target["@odata.id"]), root=ctx.root)
                if action == "UpdateMultiple":
                    if row_id is None:
                        raise errors.invalid_argument(f"The {entity.primary_id} of every target must be provided.")
                    if isinstance(row_id, AltKeyMiss):
                        raise self._missing(entity, row_id)
                if action == "UpdateMultiple" or (row_id is not None and self._existing(entity, row_id) is not None):
                    written.row_id = None
                    engine.update(entity, row_id, written, ctx.caller_id)
                    continue
                if isinstance(row_id, AltKeyMiss):
                    if any(name in written.values for name in row_id.key):
                        # the key both in @odata.id and in the body: the service fails the create path this
                        # way (its update path takes it)
                        raise DataverseError(400, "0x80040216", "An unexpected error occurred.")
                    for name, literal in row_id.key.items():
                        written.values[name] = literal_value(entity.attributes[name], literal)
                    written.row_id = None
                elif row_id is not None:
                    written.row_id = row_id
                engine.create(entity, written, ctx.caller_id)
        if action == "CreateMultiple":
            return Reply(200, {"@odata.context": f"{ctx.root}/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse",
                               "Ids": ids})
        return Reply(204)  # UpdateMultiple; UpsertMultiple too: its UpsertMultipleResponse is not returned

    def insert_option_value(self, ctx: Ctx) -> Reply:
        """InsertOptionValue: a new option in a table's local option set (global option sets are not served)."""
        body = ctx.json()
        if not isinstance(body, dict):
            raise errors.invalid_argument("The InsertOptionValue parameters must be a JSON object.")
        if body.get("OptionSetName") and not body.get("EntityLogicalName"):
            raise errors.invalid_argument("Global option sets are not served by this simulator; name "
                                          "EntityLogicalName and AttributeLogicalName.")
        label = body.get("Label") if isinstance(body.get("Label"), dict) else {}
        labels = [item for item in label.get("LocalizedLabels") or [] if isinstance(item, dict)]
        chosen = next((item for item in labels if item.get("LanguageCode") == 1033), labels[0] if labels else {})
        new_value = self.sim.add_option(str(body.get("EntityLogicalName") or ""),
                                        str(body.get("AttributeLogicalName") or ""), chosen.get("Label"), body.get("Value"))
        return Reply(200, {"@odata.context": f"{ctx.root}/$metadata#Microsoft.Dynamics.CRM.InsertOptionValueResponse",
                           "NewOptionValue": new_value})

    def bulk_delete(self, ctx: Ctx) -> Reply:
        """BulkDelete with a QueryExpression: done at once here (the service runs it as a system job)."""
        body = ctx.json()
        queries = body.get("QuerySet") if isinstance(body, dict) else None
        if not isinstance(queries, list) or not queries:
            raise errors.invalid_argument("QuerySet is required.")
        sim = self.sim
        with sim.store.transaction():
            for query in queries:
                entity = sim.schema.get(str(query.get("EntityName", "")))
                if entity is None:
                    raise errors.invalid_argument(f"The entity '{query.get('EntityName')}' does not exist.")
                conditions = ((query.get("Criteria") or {}).get("Conditions")) or []
                doomed = [rid for rid, row in sim.store.table(entity.logical_name).rows.items()
                          if all(_condition(row, c) for c in conditions)]
                for rid in doomed:
                    if sim.store.get(entity.logical_name, rid) is not None:
                        sim.engine.delete(entity, rid, ctx.caller_id)
        return Reply(200, {"@odata.context": f"{ctx.root}/$metadata#Microsoft.Dynamics.CRM.BulkDeleteResponse",
                           "JobId": str(uuid.uuid4())})


def _condition(row: Row, condition: dict) -> bool:
    name = condition.get("AttributeName")
    operator = (condition.get("Operator") or "Equal").lower()
    values = [v.get("Value") if isinstance(v, dict) else v for v in condition.get("Values") or []]
    actual = row.values.get(name)
    norm = [str(v).lower() if isinstance(v, str) else v for v in values]
    actual = actual.lower() if isinstance(actual, str) else actual
    if operator in ("in", "equal"):
        return actual in norm
    if operator in ("notin", "notequal"):
        return actual not in norm
    if operator == "null":
        return actual is None
    if operator == "notnull":
        return actual is not None
    raise errors.invalid_argument(f"Condition operator '{condition.get('Operator')}' is not supported.")


def rows_json(rows: list[Row]) -> list[dict]:
    return [{k: to_json(v) for k, v in row.values.items()} for row in rows]
