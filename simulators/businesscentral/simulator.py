"""BusinessCentralSimulator: the in-process API, the admin endpoints and the WSGI app.

    sim = BusinessCentralSimulator(issuer)
    server = SimServer(sim.app, ssl_context=ca.server_context()).start()
    base_url = server.url + sim.root_path          # like https://api.businesscentral.dynamics.com/v2.0/<tenant>/<env>
    sim.register_application(client_id)           # BC's "Microsoft Entra applications" page
    ids = sim.seed("customers", [{"displayName": "Adatum"}])
    sim.seed("accounts", [{"number": "6610", "displayName": "Freight"}])   # G/L accounts: read-only on the wire
    sim.post_item_ledger("1000", 25)               # inventory through an item ledger entry
    posted_id = sim.post_document("salesOrders", order_id)   # = POST .../Microsoft.NAV.shipAndInvoice
    sim.apply_payment(posted_id, 100.0)           # a customer payment applied to a posted invoice
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from simulators.http import FaultKnobs, FaultMiddleware, ServiceProtection
from simulators.token import TokenIssuer, TokenValidator

from . import documents, errors, inventory, pricing
from .catalog import DEFAULT_COUNTRIES, Catalog, build_catalog
from .model import EMPTY_GUID, format_datetime
from .query import QueryCache, QueryOptions, run_query
from .service import Call, Reply, Service, new_request_id
from .store import Company, Store
from .subscriptions import Subscriptions
from .views import Session, View

AUDIENCE = "https://api.businesscentral.dynamics.com"
DEFAULT_MAX_PAGE_SIZE = 20_000


@dataclass
class BCUser:
    """A user in BC's User table: an Entra application (client id) or an Entra user (object id)."""

    user_id: str  # the User SystemId, recorded as SystemCreatedBy / SystemModifiedBy
    name: str
    client_id: str | None = None
    object_id: str | None = None


class BusinessCentralSimulator:
    def __init__(self, issuer: TokenIssuer, tenant_id: str | None = None, environment: str = "production",
                 company_name: str = "CRONUS USA, Inc.", lcy_code: str = "USD",
                 clock: Callable[[], dt.datetime] | None = None):
        self.issuer = issuer
        self.tenant_id = (tenant_id or issuer.tenant_id).lower()
        self.environment = environment
        self.validator = TokenValidator(issuer, audiences=(AUDIENCE,))
        self.catalog: Catalog = build_catalog()
        self.store = Store(clock)
        self.clock_offset = dt.timedelta(0)  # how far tests moved the subscriptions' time on (advance)
        self.subscriptions = Subscriptions(self)
        self.query_cache = QueryCache()
        self.faults = FaultKnobs(protection=ServiceProtection(errors.LIMITS))
        self.max_page_size = DEFAULT_MAX_PAGE_SIZE
        self.unpublished: set[str] = set()  # page web services an administrator unpublished (404 as if unknown)
        self.applications: dict[str, BCUser] = {}
        self.users: dict[str, BCUser] = {}
        self.service = Service(self)
        self.company_id = str(uuid.uuid4())
        self.company_name = company_name
        self.lcy_code = lcy_code
        self._default_company = (self.company_id, company_name, lcy_code)
        self.app = FaultMiddleware(self._wsgi, self.faults, errors.error_body, errors.protection_refusal)
        self.reset()

    @property
    def root_path(self) -> str:
        return f"/v2.0/{self.tenant_id}/{self.environment}"

    def now(self) -> dt.datetime:
        """The time webhook subscriptions go by: the store's clock, moved on by `advance`."""
        moment = self.store.clock.source()
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)) + self.clock_offset

    def advance(self, delta: dt.timedelta) -> None:
        """Move the subscriptions' time on (expiry, coalescing, retries); row stamps keep the store's clock."""
        with self.subscriptions.lock:
            self.clock_offset += delta
            self.subscriptions.wake.notify_all()

    # -- environment set-up --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty every company's tables, drop extra companies and scripted faults; keep registrations."""
        with self.store.lock:
            self.store.companies.clear()
            self.store.environment.tables.clear()
            self.query_cache.clear()
            self.faults.clear()
            self.unpublished.clear()
            self.subscriptions.clear()
            self.clock_offset = dt.timedelta(0)
            company_id, name, lcy = self._default_company
            self.add_company(name, lcy_code=lcy, company_id=company_id)

    def add_company(self, name: str, *, lcy_code: str = "USD", company_id: str | None = None,
                    display_name: str | None = None) -> str:
        """Another company in the environment (with the default Country/Region codes); returns its id."""
        with self.store.lock:
            company_id = (company_id or str(uuid.uuid4())).lower()
            company = Company(company_id, name, lcy_code)
            self.store.companies[company_id] = company
            table = self.catalog.tables["Company"]
            record = table.new_record()
            record.update({"SystemId": company_id, "Name": name, "Display Name": display_name or name})
            self.store.insert(table, None, record, EMPTY_GUID)
            countries = self.catalog.view("countriesRegions")
            session = Session(self.store, self.catalog, company)
            for code, country in DEFAULT_COUNTRIES:
                countries.insert(session, {"code": code, "displayName": country}, wire=False)
            information = self.catalog.tables["Company Information"]
            session.insert_row(information, {**information.new_record(), "Name": display_name or name})
            pricing.create_setup(session)
            return company_id

    def register_application(self, client_id: str, description: str = "") -> str:
        """An enabled entry on the "Microsoft Entra applications" page; returns the app's BC user id."""
        client_id = client_id.lower()
        if client_id not in self.applications:
            self.applications[client_id] = BCUser(str(uuid.uuid4()), description or client_id, client_id=client_id)
        return self.applications[client_id].user_id

    def register_user(self, object_id: str, name: str) -> str:
        """A BC user for an Entra user (delegated tokens); returns the BC user id."""
        object_id = object_id.lower()
        if object_id not in self.users:
            self.users[object_id] = BCUser(str(uuid.uuid4()), name, object_id=object_id)
        return self.users[object_id].user_id

    def user_id_for(self, client_or_object_id: str) -> str | None:
        """The BC user id (what systemModifiedBy shows) of a registered application or user."""
        key = client_or_object_id.lower()
        found = self.applications.get(key) or self.users.get(key)
        return found.user_id if found else None

    # -- in-process data API ---------------------------------------------------------------------------------

    def _session(self, view: View, company_id: str | None) -> Session:
        company = None
        if view.company_scoped:
            company = self.store.companies.get((company_id or self.company_id).lower())
            if company is None:
                raise KeyError(f"unknown company {company_id!r}")
        return Session(self.store, self.catalog, company)

    def _record(self, view: View, session: Session, id_: str) -> dict | None:
        return self.store.get(view.table, session.company, str(id_))

    def _existing(self, view: View, session: Session, id_: str) -> dict:
        """The record, else the service's not-found error."""
        record = self._record(view, session, id_)
        if record is None:
            raise view.not_found(id_)
        return record

    def seed(self, entity_set: str, rows: list[dict], *, company_id: str | None = None) -> list[str]:
        """Insert rows given with the view's field names (hidden fields such as the customer's
        shippingAgentCode, and id / lastModifiedDateTime, allowed; also into a seedable read-only entity
        set such as `accounts`). Validates like the service does."""
        view = self.catalog.view(entity_set)
        ids = []
        with self.store.lock:
            for values in rows:
                session = self._session(view, company_id)
                ids.append(view.insert(session, dict(values), wire=False)["SystemId"])
        return ids

    def create(self, entity_set: str, values: dict, *, company_id: str | None = None) -> str:
        return self.seed(entity_set, [values], company_id=company_id)[0]

    def update(self, entity_set: str, id_: str, values: dict, *, company_id: str | None = None) -> dict:
        view = self.catalog.view(entity_set)
        with self.store.lock:
            session = self._session(view, company_id)
            record = self._existing(view, session, id_)
            return view.python(session, view.modify(session, record, dict(values), wire=False))

    def delete(self, entity_set: str, id_: str, *, company_id: str | None = None) -> None:
        view = self.catalog.view(entity_set)
        with self.store.lock:
            session = self._session(view, company_id)
            record = self._existing(view, session, id_)
            view.delete(session, record, wire=False)

    def get(self, entity_set: str, id_: str, *, company_id: str | None = None) -> dict | None:
        """The row as the view shows it (plain enum text, aware datetimes), plus hidden fields; a copy."""
        view = self.catalog.view(entity_set)
        with self.store.lock:
            session = self._session(view, company_id)
            record = self._record(view, session, id_)
            return view.python(session, record) if record is not None else None

    def rows(self, entity_set: str, *, company_id: str | None = None) -> list[dict]:
        """Every row of the view in its default (primary key) order."""
        view = self.catalog.view(entity_set)
        with self.store.lock:
            session = self._session(view, company_id)
            page = run_query(session, view, QueryOptions(), 1 << 62, self.query_cache)
            return [view.python(session, record) for record in page.records]

    def _company_session(self, company_id: str | None) -> Session:
        company = self.store.companies.get((company_id or self.company_id).lower())
        if company is None:
            raise KeyError(f"unknown company {company_id!r}")
        return Session(self.store, self.catalog, company)

    def post_item_ledger(self, item_number: str, quantity: float, *, company_id: str | None = None,
                         entry_type: str | None = None, document_number: str = "") -> float:
        """Add an item ledger entry for the item (Positive/Negative Adjmt. by the sign unless `entry_type`
        says otherwise); the item itself does not change. Returns the item's new inventory."""
        with self.store.lock:
            session = self._company_session(company_id)
            entry = inventory.post_item_ledger(session, item_number, float(quantity), entry_type=entry_type,
                                               document_no=document_number)
            return inventory.inventory_of(session, entry["Item No."])

    def act(self, entity_set: str, id_: str, action: str, *, company_id: str | None = None) -> dict | None:
        """Run a bound action of a document (release, reopen, shipAndInvoice, post) as a user would."""
        view = self.catalog.view(entity_set)
        if action not in view.actions:
            raise KeyError(f"{entity_set!r} has no action {action!r}")
        with self.store.lock:
            session = self._session(view, company_id)
            record = self._record(view, session, id_)
            if record is None:
                raise view.not_found(id_)
            with self.store.atomic():
                return view.actions[action](session, record)

    def post_document(self, entity_set: str, id_: str, *, company_id: str | None = None) -> str | None:
        """Post a sales order (ship and invoice) or a draft sales invoice, as the bound actions do;
        returns the id of the posted invoice (None when an order only shipped)."""
        actions = {"salesOrders": "shipAndInvoice", "salesInvoices": "post"}
        if entity_set not in actions:
            raise KeyError(f"{entity_set!r} cannot be posted")
        posted = self.act(entity_set, id_, actions[entity_set], company_id=company_id)
        return posted["SystemId"] if posted else None

    def apply_payment(self, invoice_id: str, amount: float, *, company_id: str | None = None) -> dict:
        """Apply a customer payment to a posted sales invoice's ledger entry: remainingAmount drops; when the
        entry closes the status becomes Paid and only then does the invoice's lastModifiedDateTime move (a
        partial payment leaves the invoice row untouched). Returns the invoice as `get` shows it."""
        view = self.catalog.view("salesInvoices")
        with self.store.lock:
            session = self._session(view, company_id)
            record = self._record(view, session, invoice_id)
            if record is None:
                raise view.not_found(invoice_id)
            return view.python(session, documents.apply_payment(session, record, float(amount)))

    # -- WSGI ----------------------------------------------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        if request.path.startswith("/_sim/"):
            response = self._admin(request)
        else:
            response = self._serve(request, environ)
        return response(environ, start_response)

    def _serve(self, request: Request, environ) -> Response:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        raw_path = raw.split("?", 1)[0] if raw.startswith("/") else ""
        segments = [unquote(s) for s in raw_path.split("/")[1:]] if raw_path else request.path.split("/")[1:]
        host = request.host_url.rstrip("/")
        if len(segments) < 3 or segments[0] != "v2.0":
            return self._reply(Reply(404, errors.no_route(request.url).body()))
        if len(segments) >= 3 and segments[2] in ("api", "ODataV4") and segments[1] not in ("api", "ODataV4"):
            tenant, environment, rest = None, segments[1], segments[2:]  # the tenant-less "common" endpoint
            prefix = f"/v2.0/{environment}"
        else:
            tenant, environment, rest = segments[1], segments[2], segments[3:]
            prefix = f"/v2.0/{tenant}/{environment}"

        user = self._authenticate(request, tenant)
        if user is None:
            reply = Reply(401, errors.invalid_credentials().body(), {
                "WWW-Authenticate": f'Bearer authorization_uri="{self.issuer.base_url}/{self.tenant_id}/oauth2/authorize", '
                                    f'resource_id="{AUDIENCE}"'})
            return self._reply(reply)
        if environment.lower() != self.environment.lower():
            return self._reply(Reply(404, errors.no_route(request.url).body()))
        call = Call(request.method.upper(), rest, dict(request.args.items()), request.headers,
                    request.get_data(), host + prefix, user.user_id)
        return self._reply(self.service.handle(call))

    def _authenticate(self, request: Request, tenant: str | None) -> BCUser | None:
        claims = self.validator.validate(request.headers.get("Authorization"))
        if claims is None:
            return None
        if str(claims.get("tid", "")).lower() != self.tenant_id:
            return None
        if tenant is not None and tenant.lower() != self.tenant_id and "." not in tenant:
            return None
        object_id = str(claims.get("oid", "")).lower()
        if object_id in self.users:
            return self.users[object_id]
        if "scp" not in claims:  # an app-only token: the app must be registered in BC
            return self.applications.get(str(claims.get("appid") or claims.get("azp") or "").lower())
        return None

    @staticmethod
    def _reply(reply: Reply) -> Response:
        if isinstance(reply.body, (dict, list)):
            data = json.dumps(reply.body, ensure_ascii=False)
        else:
            data = reply.body or ""
        response = Response(data, status=reply.status)
        if reply.content_type:
            response.headers["Content-Type"] = reply.content_type
        elif reply.status == 204:
            response.headers.pop("Content-Type", None)
        response.headers["OData-Version"] = "4.0"
        response.headers["request-id"] = new_request_id()
        for key, value in reply.headers.items():
            response.headers[key] = value
        return response

    # -- admin endpoints (no auth, never faulted) -------------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        try:
            return self._admin_route(request)
        except errors.BCError as exc:
            return self._plain_json(exc.body(), exc.status)
        except KeyError as exc:
            return self._plain_json({"error": str(exc)}, 404)
        except (ValueError, TypeError) as exc:
            return self._plain_json({"error": str(exc)}, 400)

    def _admin_route(self, request: Request) -> Response:
        path = request.path[len("/_sim/"):].strip("/")
        body = request.get_json(silent=True) if request.method == "POST" else None
        body = body or {}
        if path == "reset" and request.method == "POST":
            self.reset()
            return self._plain_json({"ok": True})
        if path == "info":
            return self._plain_json({"tenant_id": self.tenant_id, "environment": self.environment,
                                     "root_path": self.root_path, "company_id": self.company_id,
                                     "company_name": self.company_name, "lcy_code": self.lcy_code,
                                     "max_page_size": self.max_page_size})
        if path == "seed" and request.method == "POST":
            return self._plain_json({"ids": self.seed(body["entity"], body.get("rows", []),
                                                      company_id=body.get("company_id"))})
        if path == "update" and request.method == "POST":
            row = self.update(body["entity"], body["id"], body.get("values", {}), company_id=body.get("company_id"))
            return self._plain_json(_jsonable(row))
        if path == "delete" and request.method == "POST":
            self.delete(body["entity"], body["id"], company_id=body.get("company_id"))
            return self._plain_json({"ok": True})
        if path.startswith("rows/") and request.method == "GET":
            rows = self.rows(path[len("rows/"):], company_id=request.args.get("company_id"))
            return self._plain_json({"value": [_jsonable(r) for r in rows]})
        if path == "inventory" and request.method == "POST":
            found = self.post_item_ledger(body["item"], body["quantity"], company_id=body.get("company_id"),
                                          entry_type=body.get("entry_type"))
            return self._plain_json({"inventory": found})
        if path == "payment" and request.method == "POST":
            row = self.apply_payment(body["invoice"], body["amount"], company_id=body.get("company_id"))
            return self._plain_json(_jsonable(row))
        if path == "post" and request.method == "POST":
            posted = self.post_document(body["entity"], body["id"], company_id=body.get("company_id"))
            return self._plain_json({"posted_invoice_id": posted})
        if path == "faults" and request.method == "POST":
            if body.get("clear"):
                self.faults.clear()
            self.faults.configure(body)
            return self._plain_json({"ok": True})
        if path == "applications" and request.method == "POST":
            return self._plain_json({"user_id": self.register_application(body["client_id"], body.get("description", ""))})
        if path == "users" and request.method == "POST":
            return self._plain_json({"user_id": self.register_user(body["object_id"], body.get("name", ""))})
        if path == "subscriptions" and request.method == "POST":
            period = body.get("retry_period_seconds")
            self.subscriptions.configure(delay=body.get("delay"), retry_interval=body.get("retry_interval"),
                                         retry_period=dt.timedelta(seconds=period) if period is not None else None,
                                         collection_after=body.get("collection_after"))
            if body.get("advance_seconds"):
                self.advance(dt.timedelta(seconds=float(body["advance_seconds"])))
            return self._plain_json({"delivered": self.subscriptions.deliver_due()} if body.get("deliver") else
                                    {"ok": True})
        if path == "settings" and request.method == "POST":
            if "max_page_size" in body:
                self.max_page_size = int(body["max_page_size"])
            if "unpublished" in body:
                self.unpublished = set(body["unpublished"])
            return self._plain_json({"ok": True})
        return self._plain_json({"error": f"unknown admin endpoint {request.method} /_sim/{path}"}, 404)

    @staticmethod
    def _plain_json(body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")


def _jsonable(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime):
            out[key] = format_datetime(value)
        elif isinstance(value, dt.date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out
