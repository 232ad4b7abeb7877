"""`DataverseSimulator`: the in-process API, the initial organisation, the admin endpoints."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Callable

from werkzeug.wrappers import Request, Response

from simulators.http import FaultKnobs, FaultMiddleware, ServiceProtection, json_response
from simulators.token import TokenIssuer

from . import errors
from .app import WebApi, rows_json
from .engine import SYSTEM_COLUMNS, Engine
from .errors import LIMITS, DataverseError, error_body, protection_refusal
from .metadata import MetadataService, csdl, insert_option_value
from .query import QueryRunner, Renderer
from .schema import REGISTRATION_TABLES, Schema, default_schema
from .security import Security
from .store import Row, Store
from .values import normalize_guid
from .webhooks import Webhooks

DOP_HINT = 4


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class DataverseSimulator:
    """A Dataverse organisation in memory, served as Web API v9.2.

    sim = DataverseSimulator(issuer)
    server = SimServer(sim.app, ssl_context=ca.server_context()).start()
    sim.seed("systemuser", [{"applicationid": client_id, "lastname": "Integration"}])
    """

    def __init__(self, issuer: TokenIssuer, clock: Callable[[], dt.datetime] | None = None,
                 schema: Schema | None = None, organization_id: str | None = None, any_webhook_port: bool = False):
        self.issuer = issuer
        self.clock = clock or _utc_now
        self.schema = schema or default_schema()
        self.organization_id = organization_id or str(uuid.uuid4())
        self.store = Store(self.schema)
        self.engine = Engine(self.schema, self.store, lambda: self.clock())
        self.engine.any_webhook_port = any_webhook_port  # kept across resets: a property of the deployment
        self.runner = QueryRunner(self.store)
        self.renderer = Renderer(self.store)
        self.metadata = MetadataService(self.schema)
        self.security = Security(self.schema)
        self._csdl: str | None = None
        self.faults = FaultKnobs(protection=ServiceProtection(LIMITS))
        self.change_tracking_days = 7  # Organization.ExpireChangeTrackingInDays
        # x-ms-dop-hint on every answer: the degree of parallelism the service recommends for this
        # environment (it varies with the servers allotted; Microsoft's bulk samples report 4)
        self.dop_hint = DOP_HINT
        self.web = WebApi(self)
        self.webhooks = Webhooks(self)  # what the asynchronous service posts for registered steps
        self.store.on_commit = self.webhooks.committed
        self.app = FaultMiddleware(self.web, self.faults, error_body, protection_refusal)
        # the organisation's own rows keep their ids across resets
        self.root_business_unit_id = str(uuid.uuid4())
        self.default_team_id = str(uuid.uuid4())
        self.base_currency_id = str(uuid.uuid4())
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Back to a fresh organisation: the organization row, root business unit, its default team, the base
        currency (USD), the option sets as the tables ship them, the messages Create, Update and Delete with a
        filter for each table, and no steps nor webhook jobs."""
        with self.store.lock:
            self.store.clear()
            self.webhooks.clear()
            self.security.clear()
            self.schema.restore_options()
            engine = self.engine
            engine.root_business_unit_id = self.root_business_unit_id
            engine.default_team_id = self.default_team_id
            engine.base_currency_id = self.base_currency_id
            name = f"org{self.organization_id.split('-')[0]}"
            self.create("transactioncurrency", {
                "transactioncurrencyid": self.base_currency_id, "isocurrencycode": "USD",
                "currencyname": "US Dollar", "currencysymbol": "$", "currencyprecision": 2, "exchangerate": 1.0,
                "currencytype": 0})
            self.create("organization", {"organizationid": self.organization_id, "name": name,
                                         "basecurrencyid": self.base_currency_id})
            self.create("businessunit", {"businessunitid": self.root_business_unit_id, "name": name,
                                         "transactioncurrencyid": self.base_currency_id})
            self._put_system("businessunit", self.root_business_unit_id, {"parentbusinessunitid": None})
            self.create("team", {"teamid": self.default_team_id, "name": name,
                                 "businessunitid": self.root_business_unit_id, "teamtype": 0})
            self._put_system("team", self.default_team_id, {"isdefault": True})
            self._seed_messages()

    def _seed_messages(self) -> None:
        """The SDK messages steps are registered on, and one filter per message and table it serves (the tables
        that register steps serve none here)."""
        tables = [name for name in self.schema.entities if name not in REGISTRATION_TABLES]
        for message in ("Create", "Update", "Delete"):
            message_id = self.create("sdkmessage", {"name": message, "categoryname": message})
            self.seed("sdkmessagefilter", [{"sdkmessageid": message_id, "primaryobjecttypecode": table,
                                            "secondaryobjecttypecode": "none"} for table in tables])

    def _put_system(self, entity: str, row_id: str, values: dict) -> None:
        row = self.store.get(entity, row_id)
        self.store.put(entity, row_id, Row({**row.values, **values}, dict(row.targets)))

    def _entity(self, entity: str):
        found = self.schema.get(entity) or self.schema.by_set.get(entity)
        if found is None:
            raise errors.invalid_argument(f"Unknown table '{entity}'.")
        return found

    def _user(self, as_user: str | None) -> str | None:
        if as_user is None:
            return None
        user_id = normalize_guid(as_user)
        if user_id is None or self.store.get("systemuser", user_id) is None:
            raise errors.does_not_exist("systemuser", str(as_user))
        return user_id

    # ------------------------------------------------------------------ in-process API

    def seed(self, entity: str, rows: list[dict], as_user: str | None = None) -> list[str]:
        """Insert rows given in attribute form (lookups as GUIDs under the column name). All or nothing."""
        table = self._entity(entity)
        ids = []
        with self.store.transaction():
            caller = self._user(as_user)
            for values in rows:
                written = self.engine.parse_python(table, values)
                row = self.engine.create(table, written, caller, web=False)
                ids.append(row.values[table.primary_id])
        return ids

    def create(self, entity: str, values: dict, as_user: str | None = None) -> str:
        return self.seed(entity, [values], as_user)[0]

    def update(self, entity: str, id_: str, values: dict, as_user: str | None = None) -> None:
        table = self._entity(entity)
        with self.store.transaction():
            written = self.engine.parse_python(table, values)
            row_id = normalize_guid(id_) or str(id_)
            self.engine.update(table, row_id, written, self._user(as_user), web=False)

    def revise_quote(self, quote_id: str, as_user: str | None = None) -> str:
        """What ReviseQuote does: an Active or Closed (lost, canceled) quote is closed as Revised, and a new Draft
        of it, with the same quote number and the next revision number, gets a copy of its columns and lines.
        Returns the new quote's id."""
        with self.store.transaction():
            caller = self._user(as_user)
            old = self.store.get("quote", normalize_guid(quote_id) or str(quote_id))
            if old is None:
                raise errors.does_not_exist("quote", str(quote_id))
            if old.values.get("statecode") not in (1, 3) or old.values.get("statuscode") == 7:
                raise errors.invalid_argument("Only an active or closed quote that is not revised yet can be revised.")
            copied = {k: v for k, v in old.values.items()
                      if k not in SYSTEM_COLUMNS and k not in ("quoteid", "statecode", "statuscode", "closedon")}
            self.engine.system_update("quote", old.values["quoteid"], {"statecode": 3, "statuscode": 7},
                                      caller=caller)
            new = self.engine.system_create("quote", {**copied, "revisionnumber": (old.values.get("revisionnumber")
                                                                                  or 0) + 1},
                                            dict(old.targets), caller)
            new_id = new.values["quoteid"]
            for line in [r for r in self.engine.rows("quotedetail") if r.values.get("quoteid") == old.values["quoteid"]]:
                values = {k: v for k, v in line.values.items() if k not in SYSTEM_COLUMNS and k != "quotedetailid"}
                self.engine.system_create("quotedetail", {**values, "quoteid": new_id}, dict(line.targets), caller)
            return new_id

    def delete(self, entity: str, id_: str) -> None:
        table = self._entity(entity)
        with self.store.transaction():
            self.engine.delete(table, normalize_guid(id_) or str(id_), None, web=False)

    def get(self, entity: str, id_: str) -> dict | None:
        table = self._entity(entity)
        with self.store.lock:
            row = self.store.get(table.logical_name, normalize_guid(id_) or str(id_))
            return None if row is None else dict(row.values)

    def rows(self, entity: str) -> list[dict]:
        table = self._entity(entity)
        with self.store.lock:
            return [dict(row.values) for row in self.store.table(table.logical_name).rows.values()]

    def add_option(self, entity: str, attribute: str, label: str, value: int | None = None) -> int:
        """What InsertOptionValue does: a new option in `entity.attribute` (a picklist); returns its value, the
        next free one from 100000000 unless `value` is given. Options added are dropped by `reset()`."""
        with self.store.lock:
            return insert_option_value(self.schema, entity, attribute, label, value)

    def revoke_privileges(self, user_id: str, names: list[str]) -> None:
        """Take privileges (prvWriteAccount ...) from the user's security role; `reset()` gives them back."""
        self.security.revoke(user_id, names)

    def add_alternate_key(self, entity: str, columns: list[str]) -> None:
        """Define an alternate key, so `/accounts(accountnumber='A1')` addresses a row (none exist by default)."""
        table = self._entity(entity)
        for column in columns:
            if column not in table.attributes:
                raise errors.invalid_argument(f"'{table.logical_name}' has no column '{column}'.")
        table.alternate_keys.append(tuple(columns))

    def find_caller(self, claims: dict) -> Row | None:
        """The systemuser a token stands for: an application user by app id, else a user by object id."""
        users = self.store.table("systemuser").rows.values()
        app_only = "scp" not in claims and "roles" not in claims or claims.get("idtyp") == "app"
        app_id = str(claims.get("appid") or claims.get("azp") or "").lower()
        object_id = str(claims.get("oid") or "").lower()
        if app_only and app_id:
            for row in users:
                if str(row.values.get("applicationid") or "").lower() == app_id:
                    return row
        if object_id:
            for row in users:
                if str(row.values.get("azureactivedirectoryobjectid") or "").lower() == object_id:
                    return row
        return None

    def csdl(self) -> str:
        if self._csdl is None:
            self._csdl = csdl(self.schema)
        return self._csdl

    # ------------------------------------------------------------------ admin endpoints (no auth, never faulted)

    def admin(self, request: Request) -> Response:
        path = request.path[len("/_sim/"):].strip("/")
        try:
            body = json.loads(request.get_data(as_text=True) or "null") if request.method == "POST" else None
            if path == "reset" and request.method == "POST":
                self.reset()
                return json_response(self.info())
            if path == "info":
                return json_response(self.info())
            if path == "seed" and request.method == "POST":
                return json_response({"ids": self.seed(body["entity"], body.get("rows") or [], body.get("as_user"))})
            if path == "update" and request.method == "POST":
                self.update(body["entity"], body["id"], body.get("values") or {}, body.get("as_user"))
                return json_response({"ok": True})
            if path == "option" and request.method == "POST":
                return json_response({"value": self.add_option(body["entity"], body["attribute"], body["label"],
                                                               body.get("value"))})
            if path == "delete" and request.method == "POST":
                self.delete(body["entity"], body["id"])
                return json_response({"ok": True})
            if path.startswith("rows/") and request.method == "GET":
                table = self._entity(path[len("rows/"):])
                with self.store.lock:
                    rows = list(self.store.table(table.logical_name).rows.values())
                return json_response({"value": rows_json(rows)})
            if path == "privileges" and request.method == "POST":
                self.revoke_privileges(body["user"], body.get("revoke") or [])
                return json_response({"ok": True})
            if path == "faults" and request.method == "POST":
                if body.get("clear"):
                    self.faults.clear()
                    self.dop_hint = DOP_HINT
                self.dop_hint = int(body.get("dop_hint", self.dop_hint))
                self.faults.configure(body)
                return json_response({"ok": True})
            if path == "webhooks" and request.method == "POST":
                # how long the asynchronous service takes to post a committed change, and to retry a failed post
                with self.webhooks._due:
                    for knob in ("delay_seconds", "retry_seconds"):
                        if knob in body:
                            setattr(self.webhooks, knob, float(body[knob]))
                return json_response({"delay_seconds": self.webhooks.delay_seconds,
                                      "retry_seconds": self.webhooks.retry_seconds})
            return json_response({"error": {"code": "0x80060888", "message": f"No admin endpoint '{path}'."}}, 404)
        except DataverseError as exc:
            return json_response(exc.body(), exc.status)
        except (KeyError, TypeError, ValueError) as exc:
            return json_response({"error": {"code": "0x80040203", "message": f"Bad admin request: {exc!r}"}}, 400)

    def info(self) -> dict:
        return {"organization_id": self.organization_id, "base_currency_id": self.base_currency_id,
                "root_business_unit_id": self.root_business_unit_id, "default_team_id": self.default_team_id}
