"""The wire protocol: routing, authentication, CRUD with etags, paging, JSON `$batch`, `$metadata`,
contained collections (`salesOrders({id})/salesOrderLines`, `$expand`, deep insert), bound actions
(`salesOrders({id})/Microsoft.NAV.shipAndInvoice`) and composite page keys
(`SalesPrices(Item_No='1000',Sales_Type='Customer',...)`, named parts in any order).

Everything below the tenant/environment prefix (`/v2.0/{tenant}/{environment}`) is handled by
`Service.handle`, which works on a `Call` (method, decoded path segments, query, headers, body) so
that the inner requests of a `$batch` go through exactly the same code as top-level requests.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import quoteattr

from werkzeug.datastructures import Headers

from . import errors
from .model import escape_enum, is_guid
from .query import parse_options, run_query
from .views import PageView, Session, View

if TYPE_CHECKING:
    from .simulator import BusinessCentralSimulator

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
BATCH_LIMIT = 100
COMMITTING_ACTIONS = ("Microsoft.NAV.shipAndInvoice", "Microsoft.NAV.post")  # their AL code calls Commit()

_SEGMENT = re.compile(r"^(?P<name>[^()]+)(?:\((?P<key>.*)\))?$", re.S)


@dataclass
class Call:
    """One request below `/v2.0/{tenant}/{environment}`."""

    method: str
    segments: list[str]  # decoded path segments, e.g. ["api", "v2.0", "companies(<id>)", "customers"]
    args: dict[str, str]
    headers: Headers
    body: bytes
    base: str  # "https://host:port/v2.0/<tenant>/<environment>" as the client addressed it
    user: str  # the BC user (SystemId) that SystemModifiedBy records
    in_batch: bool = False

    def json(self) -> dict:
        try:
            value = json.loads(self.body.decode("utf-8")) if self.body and self.body.strip() else None
        except (ValueError, UnicodeDecodeError):
            raise errors.invalid_body() from None
        if not isinstance(value, dict):
            raise errors.invalid_body()
        return value

    @property
    def path(self) -> str:
        return "/".join(quote(s, safe="$'(),=@:!*+;") for s in self.segments)


@dataclass
class Reply:
    status: int
    body: Any = None  # dict -> JSON, str -> as is
    headers: dict = field(default_factory=dict)
    content_type: str = JSON_TYPE


def parse_segment(segment: str) -> tuple[str, str | None]:
    match = _SEGMENT.match(segment)
    if not match:
        raise errors.resource_not_found(segment)
    return match.group("name"), match.group("key")


def parse_key(text: str) -> tuple:
    """`'C00010'` -> ("C00010",); `No='A',Type='B'` -> ("A", "B"); a bare GUID or number as is."""
    return tuple(value for _, value in parse_key_pairs(text))


def parse_key_pairs(text: str) -> list[tuple[str | None, str]]:
    """`'C00010'` -> [(None, "C00010")]; `No='A',Starting_Date=2024-01-01` -> [("No", "A"), ("Starting_Date", ...)]."""
    values, position = [], 0
    while position < len(text):
        match = re.match(r"\s*(?:([A-Za-z_][\w]*)\s*=\s*)?", text[position:])
        name = match.group(1)
        position += match.end()
        if position < len(text) and text[position] == "'":
            end, chars = position + 1, []
            while end < len(text):
                if text[end] == "'":
                    if end + 1 < len(text) and text[end + 1] == "'":
                        chars.append("'")
                        end += 2
                        continue
                    break
                chars.append(text[end])
                end += 1
            values.append((name, "".join(chars)))
            position = end + 1
        else:
            end = text.find(",", position)
            end = len(text) if end < 0 else end
            values.append((name, text[position:end].strip()))
            position = end
        position += len(re.match(r"\s*,?", text[position:]).group(0))
    return values


def _quote_name(name: str) -> str:
    return quote("'" + name.replace("'", "''") + "'", safe="'")


class Service:
    def __init__(self, sim: "BusinessCentralSimulator"):
        self.sim = sim

    # -- entry ------------------------------------------------------------------------------------------

    def handle(self, call: Call) -> Reply:
        try:
            return self._route(call)
        except errors.BCError as exc:
            return Reply(exc.status, exc.body(), exc.headers)
        except Exception:  # a simulator bug must still look like a BC failure to the client
            log.exception("Business Central simulator failed on %s %s", call.method, call.path)
            return Reply(500, errors.BCError(500, "Internal_ServerError", "An unexpected error occurred.").body())

    def _route(self, call: Call) -> Reply:
        segments = call.segments
        if segments and segments[-1] == "" and len(segments) > 1:
            segments = segments[:-1]
        if not segments:
            raise errors.no_route(f"{call.base}/{call.path}")
        head = segments[0]
        if head == "api":
            rest = segments[1:]
            for api, views in self.sim.catalog.apis.items():
                parts = api.split("/")
                if rest[: len(parts)] == parts:
                    return self._api(call, api, views, rest[len(parts):])
            raise errors.no_route(f"{call.base}/{call.path}")
        if head.lower() == "odatav4":
            return self._odata_v4(call, segments[1:])
        raise errors.no_route(f"{call.base}/{call.path}")

    def _service_root(self, call: Call, rest: list[str], root: str, views: dict[str, View], namespace: str,
                      batch_path: list[str]) -> Reply | None:
        """What an OData service root answers itself: its service document, $metadata and $batch (None for a
        path into an entity set)."""
        if not rest:
            return Reply(200, {"@odata.context": f"{root}/$metadata",
                               "value": [{"name": name, "kind": "EntitySet", "url": name} for name in views]})
        if rest == ["$metadata"]:
            return Reply(200, self.metadata(views.values(), namespace), content_type="application/xml")
        if rest == ["$batch"]:
            return self._batch(call, batch_path)
        return None

    # -- API (api/v2.0/...) -------------------------------------------------------------------------------

    def _api(self, call: Call, api: str, views: dict[str, View], rest: list[str]) -> Reply:
        root = f"{call.base}/api/{api}"
        served = self._service_root(call, rest, root, views, "Microsoft.NAV", ["api", *api.split("/")])
        if served is not None:
            return served
        name, key = parse_segment(rest[0])
        company = None
        context_prefix = ""
        if name == "companies" and "companies" in views:
            if key is not None and len(rest) > 1:
                company = self._company_by_id(key)
                context_prefix = f"companies({company.id})/"
                rest = rest[1:]
                name, key = parse_segment(rest[0])
            else:
                return self._entity_request(call, views["companies"], key, rest[1:], Session(
                    self.sim.store, self.sim.catalog, None, call.user), f"{root}/$metadata#", f"{root}/")
        if name == "subscriptions" and company is None and api == "v2.0":
            return self.sim.subscriptions.handle(call, key, rest[1:], root)
        view = views.get(name)
        if view is None:
            raise errors.resource_not_found(name)
        if view.company_scoped and company is None:
            company = self._company_from_query(call)
        session = Session(self.sim.store, self.sim.catalog, company if view.company_scoped else None, call.user)
        return self._entity_request(call, view, key, rest[1:], session, f"{root}/$metadata#{context_prefix}",
                                    f"{root}/{context_prefix}")

    def _company_by_id(self, key: str):
        text = key.strip("'{}").lower()
        company = self.sim.store.companies.get(text)
        if company is None:
            raise errors.company_not_found(key)
        return company

    def _company_from_query(self, call: Call):
        wanted = call.args.get("company") or call.headers.get("Company")
        if not wanted:
            raise errors.BCError(400, "Internal_CompanyNotFound", "The default company cannot be found.")
        for company in self.sim.store.companies.values():
            if company.id == wanted.strip("{}").lower() or company.name == wanted:
                return company
        raise errors.company_not_found(wanted)

    # -- OData v4 page web services (ODataV4/...) ----------------------------------------------------------

    def _odata_v4(self, call: Call, rest: list[str]) -> Reply:
        root = f"{call.base}/ODataV4"
        pages = {n: v for n, v in self.sim.catalog.pages.items() if n not in self.sim.unpublished}
        served = self._service_root(call, rest, root, pages, "NAV", ["ODataV4"])
        if served is not None:
            return served
        name, key = parse_segment(rest[0])
        if name == "Company" and key is not None:
            wanted = parse_key(key)[0] if key.strip() else ""
            company = next((c for c in self.sim.store.companies.values() if c.name == wanted), None)
            if company is None:
                raise errors.company_not_found(wanted)
            rest = rest[1:]
            if not rest:
                raise errors.resource_not_found("Company")
            name, key = parse_segment(rest[0])
        else:
            company = self._company_from_query(call)
        view = pages.get(name)
        if view is None:
            raise errors.resource_not_found(name)
        prefix = f"Company({_quote_name(company.name)})/"
        session = Session(self.sim.store, self.sim.catalog, company, call.user)
        return self._entity_request(call, view, key, rest[1:], session, f"{root}/$metadata#{prefix}", f"{root}/{prefix}")

    # -- entity sets and entities ----------------------------------------------------------------------

    def _entity_request(self, call: Call, view: View, key: str | None, rest: list[str], session: Session,
                        context: str, location: str, scope: tuple[str, str] | None = None) -> Reply:
        """A collection or one entity of `view`; `scope` (property, parent id) limits it to the children
        of one parent when it is reached through a navigation (`salesOrders({id})/salesOrderLines`)."""
        method = call.method
        with self.sim.store.lock:
            if key is None:
                if rest == ["$count"] and method == "GET":
                    text = self._scoped_filter(view, call.args.get("$filter"), scope)
                    options = parse_options(view, {"$filter": text, "$schemaversion": call.args.get("$schemaversion")})
                    options.count = True
                    page = run_query(session, view, options, 1, self.sim.query_cache)
                    return Reply(200, str(page.count), content_type="text/plain")
                if rest:
                    raise errors.resource_not_found(parse_segment(rest[0])[0])
                if method == "GET":
                    return self._list(call, view, session, context, scope)
                if method == "POST":
                    if not view.insertable:
                        raise errors.method_not_allowed("POST", view.name, "EntitySet")
                    body = call.json()
                    if scope is not None:
                        name, parent = scope
                        given = body.get(name)
                        if given is not None and str(given).strip("{}").lower() != parent:
                            raise errors.dialog(f'The value for "{name}" cannot be modified.')
                        body[name] = parent
                    return self._insert(view, session, body, context, location)
                raise errors.method_not_allowed(method, view.name, "EntitySet")

            if view.kind != "page" and not is_guid(key.strip("'{}")):
                raise errors.query_syntax(f"The key value '({key})' is not a valid GUID.")
            parsed = parse_key_pairs(key) if view.kind == "page" else key.strip("'")
            record = view.find_by_key(session, parsed)
            if record is not None and scope is not None:
                name, parent = scope
                if str(view.by_name[name].get(session, record)).lower() != parent:
                    record = None
            if record is None:
                raise view.not_found(parsed)
            if rest:
                return self._below_entity(call, view, record, rest, session, context, location)
            if method == "GET":
                options = parse_options(view, {"$select": call.args.get("$select"), "$expand": call.args.get("$expand")})
                return self._entity_reply(200, view, session, record, context, location, select=options.select,
                                          expand=options.expand)
            if method == "PATCH":
                if not view.modifiable:
                    raise errors.method_not_allowed("PATCH", view.name, "Entity")
                self._check_if_match(call, view, record)
                record = view.modify(session, record, call.json())
                return self._entity_reply(200, view, session, record, context, location)
            if method == "DELETE":
                if not view.deletable:
                    raise errors.method_not_allowed("DELETE", view.name, "Entity")
                self._check_if_match(call, view, record)
                view.delete(session, record)
                return Reply(204, None, content_type="")
            raise errors.method_not_allowed(method, view.name, "Entity")

    def _below_entity(self, call: Call, view: View, record: dict, rest: list[str], session: Session,
                      context: str, location: str) -> Reply:
        """A bound action (`.../salesOrders({id})/Microsoft.NAV.shipAndInvoice`) or a contained collection."""
        name, key = parse_segment(rest[0])
        if key is None and len(rest) == 1 and "." in name:
            namespace, _, action_name = name.rpartition(".")
            action = view.actions.get(action_name) if namespace == view.namespace else None
            if action is None:
                raise errors.resource_not_found(name)
            if call.method != "POST":
                raise errors.method_not_allowed(call.method, action_name, "Action")
            with self.sim.store.atomic():
                action(session, record)
            return Reply(204, None, content_type="")
        navigation = view.navigations.get(name)
        if navigation is None:
            raise errors.resource_not_found(name)
        segment = f"{view.name}({record['SystemId']})/"
        scope = (navigation.child_field, str(navigation.parent_value(session, record)).lower())
        return self._entity_request(call, navigation.view, key, rest[1:], session, context + segment,
                                    location + segment, scope)

    def _insert(self, view: View, session: Session, body: dict, context: str, location: str) -> Reply:
        """POST, with a deep insert of contained collections (`salesOrderLines: [...]`) in one transaction."""
        nested = []
        for name, navigation in view.navigations.items():
            if name in body and navigation.deep_insert:
                items = body.pop(name)
                if not isinstance(items, list) or any(not isinstance(item, dict) for item in items):
                    raise errors.invalid_body()
                nested.append((name, navigation, items))
        with self.sim.store.atomic():
            record = view.insert(session, body)
            for _, navigation, items in nested:
                parent = navigation.parent_value(session, record)
                for item in items:
                    navigation.view.insert(session.child(), {**item, navigation.child_field: parent})
            record = self.sim.store.get(view.table, session.company, record["SystemId"]) or record
        return self._entity_reply(201, view, session, record, context, location,
                                  expand=[name for name, _, _ in nested] or None)

    @staticmethod
    def _scoped_filter(view: View, text: str | None, scope: tuple[str, str] | None) -> str | None:
        if scope is None:
            if view.list_requires and not _mentions(text, view.list_requires):
                raise errors.dialog("You must specify an Id or a Document Id to get the lines.")
            return text
        name, parent = scope
        condition = f"{name} eq {parent}" if view.by_name[name].type == "guid" else f"{name} eq '{parent}'"
        return f"({condition}) and ({text})" if text and text.strip() else condition

    def _entity_url(self, view: View, session: Session, record: dict, location: str) -> str:
        if isinstance(view, PageView):
            return f"{location}{view.name}{view.key_segment(session, record)}"
        return f"{location}{view.name}({record['SystemId']})"

    @staticmethod
    def _wire(view: View, session: Session, record: dict, select: list[str] | None,
              expand: list[str] | None) -> dict:
        out = view.wire(session, record, select)
        for name in expand or ():
            navigation = view.navigations[name]
            out[name] = [navigation.view.wire(session, child) for child in navigation.rows(session, record)]
        return out

    def _entity_reply(self, status: int, view: View, session: Session, record: dict, context: str, location: str,
                      select: list[str] | None = None, expand: list[str] | None = None) -> Reply:
        selected = f"({','.join(select)})" if select else ""
        body = {"@odata.context": f"{context}{view.name}{selected}/$entity"}
        body.update(self._wire(view, session, record, select, expand))
        headers = {"ETag": view.etag(record)}
        if status == 201:
            headers["Location"] = self._entity_url(view, session, record, location)
        return Reply(status, body, headers)

    def _list(self, call: Call, view: View, session: Session, context: str,
              scope: tuple[str, str] | None = None) -> Reply:
        options = parse_options(view, call.args)
        options.filter = self._scoped_filter(view, options.filter, scope)
        page_size, applied = self._page_size(call)
        page = run_query(session, view, options, page_size, self.sim.query_cache)
        selected = f"({','.join(options.select)})" if options.select else ""
        body: dict = {"@odata.context": f"{context}{view.name}{selected}"}
        if options.count:
            body["@odata.count"] = page.count
        body["value"] = [self._wire(view, session, record, options.select, options.expand) for record in page.records]
        if page.next_token:
            body["@odata.nextLink"] = self._next_link(call, page.next_token, page.next_top)
        headers = {"Preference-Applied": f"odata.maxpagesize={applied}"} if applied else {}
        return Reply(200, body, headers)

    def _page_size(self, call: Call) -> tuple[int, int | None]:
        limit = self.sim.max_page_size
        prefer = call.headers.get("Prefer") or ""
        for part in prefer.split(","):
            name, _, value = part.strip().partition("=")
            if name.strip().lower() == "odata.maxpagesize":
                try:
                    wanted = int(value.strip().strip('"'))
                except ValueError:
                    continue
                if wanted > 0:
                    applied = min(wanted, limit)
                    return applied, applied
        return limit, None

    def _next_link(self, call: Call, token: str, top: int | None) -> str:
        params = [(k, v) for k, v in call.args.items() if k not in ("$skip", "$skiptoken", "$top")]
        if top is not None:
            params.append(("$top", str(top)))
        params.append(("$skiptoken", token))
        query = "&".join(f"{quote(k, safe='$')}={quote(v, safe=chr(39) + '$(),:*-_.')}" for k, v in params)
        return f"{call.base}/{call.path}?{query}"

    def _check_if_match(self, call: Call, view: View, record: dict) -> None:
        header = (call.headers.get("If-Match") or "").strip()
        if not header:
            raise errors.missing_concurrency_token()
        if header == "*":
            return
        current = view.etag(record)
        candidates = [part.strip() for part in header.split(",") if part.strip()]
        bare = current[2:] if current.startswith("W/") else current
        if any(tag in (current, bare) for tag in candidates):
            return
        for tag in candidates:
            text = tag[2:] if tag.startswith("W/") else tag
            try:
                decoded = base64.b64decode(text.strip('"'), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
            if decoded.startswith("'") and decoded.endswith("'"):
                raise errors.entity_changed()
        raise errors.missing_concurrency_token()

    # -- $batch ------------------------------------------------------------------------------------------

    def _batch(self, call: Call, root: list[str]) -> Reply:
        """A JSON `$batch`; relative inner URLs are read below `root` (the API's or the page services')."""
        if call.method != "POST":
            raise errors.method_not_allowed(call.method, "$batch", "Batch")
        if call.in_batch:
            raise errors.bad_request("A batch request cannot contain another batch request.")
        body = call.json()
        requests = body.get("requests")
        if not isinstance(requests, list) or any(not isinstance(item, dict) for item in requests):
            raise errors.invalid_body()
        if len(requests) > BATCH_LIMIT:
            raise errors.batch_too_large(BATCH_LIMIT)
        snapshot = (call.headers.get("Isolation") or "").strip().lower() == "snapshot"
        store = self.sim.store
        with store.lock:
            if snapshot:
                store.begin()
            try:
                responses = []
                for item in requests:
                    responses.append(self._inner(call, root, item))
                    if snapshot and responses[-1]["status"] < 400 and _commits(item):
                        store.commit()  # posting commits (Sales-Post): what came before it stays
                        store.begin()
            except BaseException:
                if snapshot:
                    store.rollback()
                raise
            if snapshot:
                if any(r["status"] >= 400 for r in responses):
                    store.rollback()
                else:
                    store.commit()
        return Reply(200, {"responses": responses})

    def _inner(self, outer: Call, root: list[str], item: dict) -> dict:
        request_id = str(item.get("id", ""))
        method = str(item.get("method", "GET")).upper()
        url = str(item.get("url", ""))
        headers = Headers()
        if outer.headers.get("Company"):
            headers["Company"] = outer.headers["Company"]
        for name, value in (item.get("headers") or {}).items():
            headers[name] = str(value)
        raw_body = item.get("body")
        body = json.dumps(raw_body).encode() if raw_body is not None else b""
        parts = urlsplit(url)
        path = parts.path
        base_path = urlsplit(outer.base).path
        if parts.scheme or path.startswith("/"):
            if not path.startswith(base_path + "/"):
                return self._inner_reply(request_id, Reply(404, errors.no_route(url).body()))
            segments = path[len(base_path) + 1:].split("/")
        else:
            segments = [*root, *path.split("/")]
        inner = Call(method, [unquote(s) for s in segments], dict(parse_qsl(parts.query, keep_blank_values=True)),
                     headers, body, outer.base, outer.user, in_batch=True)
        # a scripted fault may hit one request of a batch, which answers for itself as the others go on
        fault = self.sim.faults.take(method, f"{base_path}/{inner.path}", inner=True)
        if fault is not None:
            retry = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return self._inner_reply(request_id, Reply(fault.status, fault.body or errors.error_body(fault.status),
                                                       retry))
        return self._inner_reply(request_id, self.handle(inner))

    @staticmethod
    def _inner_reply(request_id: str, reply: Reply) -> dict:
        headers = {k.lower(): v for k, v in reply.headers.items()}
        if reply.body is not None:
            headers["content-type"] = reply.content_type
        headers["odata-version"] = "4.0"
        out = {"id": request_id, "status": reply.status, "headers": headers}
        if reply.body is not None:
            out["body"] = reply.body
        return out

    # -- $metadata -----------------------------------------------------------------------------------------

    @staticmethod
    def metadata(views, namespace: str) -> str:
        types, enums, sets = [], {}, []
        for view in views:
            props = []
            for f in view.exposed:
                if f.type == "option":
                    enum_name = f"{view.entity_name}_{f.name}"
                    enums[enum_name] = f.options
                    edm = f"{namespace}.{enum_name}"
                else:
                    edm = f.edm
                props.append(f'<Property Name={quoteattr(f.name)} Type="{edm}" Nullable="false" />')
            for name, navigation in view.navigations.items():
                props.append(f'<NavigationProperty Name={quoteattr(name)} '
                             f'Type="Collection({namespace}.{navigation.view.entity_name})" ContainsTarget="true" />')
            keys = [f.name for f in view.key_fields] if isinstance(view, PageView) else ["id"]
            key_xml = "".join(f'<PropertyRef Name="{k}" />' for k in keys)
            types.append(f'<EntityType Name={quoteattr(view.entity_name)}><Key>{key_xml}</Key>{"".join(props)}</EntityType>')
            for action in view.actions:
                types.append(f'<Action Name={quoteattr(action)} IsBound="true"><Parameter Name="bindingParameter" '
                             f'Type="{namespace}.{view.entity_name}" /></Action>')
            sets.append(f'<EntitySet Name={quoteattr(view.name)} EntityType="{namespace}.{view.entity_name}" />')
        enum_xml = "".join(
            f'<EnumType Name={quoteattr(name)}>'
            + "".join(f'<Member Name={quoteattr(escape_enum(o))} Value="{i}" />' for i, o in enumerate(options))
            + "</EnumType>" for name, options in enums.items())
        return ('<?xml version="1.0" encoding="utf-8"?>'
                '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
                f'<Schema Namespace="{namespace}" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
                f'{enum_xml}{"".join(types)}<EntityContainer Name="default">{"".join(sets)}</EntityContainer>'
                '</Schema></edmx:DataServices></edmx:Edmx>')


def _mentions(text: str | None, names: tuple[str, ...]) -> bool:
    """Whether a $filter names one of `names` (a property, not text inside a string literal)."""
    if not text:
        return False
    unquoted = re.sub(r"'(?:[^']|'')*'", "''", text)
    return any(re.search(rf"\b{re.escape(name)}\b", unquoted) for name in names)


def new_request_id() -> str:
    return str(uuid.uuid4())


def _commits(item: dict) -> bool:
    """A request of a $batch whose AL code commits, so that `Isolation: snapshot` cannot roll it back."""
    return str(item.get("method", "")).upper() == "POST" and \
        urlsplit(str(item.get("url", ""))).path.rsplit("/", 1)[-1] in COMMITTING_ACTIONS
