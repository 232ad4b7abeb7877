"""Azure Functions entry points (Python v2 programming model). Each one parses its trigger, calls
the services and shapes the answer; the work itself lives in sync/ (domain) and shared/ (adapters)."""

from __future__ import annotations

import functools
import json
import logging
import os

import azure.functions as func

from shared.access import ENTRA, Access, auth_mode, authorise
from shared.settings import Settings
from shared.telemetry import set_log_levels
from shared.wiring import Services, build_services, start_telemetry
from sync import coupling, failures
from sync.errors import ConcurrencyError, ConfigurationError, RecordError, SettingsError, SyncError
from sync.model import Side
from sync.runs import RunKind

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("bcsync")

# Once per worker process, when the worker loads this module: before any invocation.
set_log_levels()
start_telemetry()

_services: Services | None = None


def services() -> Services:
    """Built once per worker process and reused by every invocation."""
    global _services
    if _services is None:
        _services = build_services()
    return _services


def _startup_auth_mode() -> str:
    """BCSYNC_HTTP_AUTH as the host indexes the functions; unreadable settings keep the stricter keys."""
    try:
        return auth_mode(Settings.load())
    except ConfigurationError:
        return "keys"


AUTH_MODE = _startup_auth_mode()


def route(path: str, methods: list[str], access: Access):
    """An HTTP route that reads or changes. In keys mode the host enforces the key level (function
    key to read, master key to change); in entra mode every caller's app roles are checked here,
    before anything is read or written."""
    level = func.AuthLevel.ANONYMOUS if AUTH_MODE == ENTRA else \
        func.AuthLevel.FUNCTION if access is Access.READ else func.AuthLevel.ADMIN

    def decorate(handler):
        @functools.wraps(handler)
        def guarded(req: func.HttpRequest) -> func.HttpResponse:
            try:
                refusal = authorise(AUTH_MODE, access, req.headers, services().settings, os.environ)
                if refusal:
                    return _problem(refusal.status, refusal.message)
                return handler(req)
            except SettingsError as exc:
                return _settings_problem(exc)
        return app.route(route=path, methods=methods, auth_level=level)(guarded)
    return decorate


def _json(body, status: int = 200, headers: dict | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, indent=2), status_code=status, mimetype="application/json",
                             headers=headers)


def _problem(status: int, message: str) -> func.HttpResponse:
    return _json({"error": message}, status)


def _settings_problem(exc: SettingsError) -> func.HttpResponse:
    """503: the function app is up but cannot serve until these settings are fixed (not a fault of the request,
    nor an unexplained 500); the answer names each setting with its problem and fix."""
    return _json({"error": exc.message, "settings": exc.problems}, 503)


def _json_object(req: func.HttpRequest) -> dict | None:
    """The body as a JSON object, or None when it is not one (the route says what it wants)."""
    try:
        body = req.get_json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@app.timer_trigger(schedule="%BCSYNC_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def scheduled_sync(timer: func.TimerRequest) -> None:
    """A tick. It does not raise: the host never runs a failed tick again, the next tick does the same work (the
    recovery of stranded jobs included), so a failure is logged with its reason rather than as a traceback."""
    past_due = getattr(timer, "past_due", False) is True  # nothing but a true flag says the tick is late
    try:
        run = services().start_scheduled_run(trigger="timer" + (" (past due)" if past_due else ""))
    except SyncError as exc:
        log.error("no scheduled run started%s: %s The next tick tries again.",
                  " (a service is unavailable)" if exc.transient else "", exc.message)
        return
    if run is None:
        log.info("previous scheduled run still going; no new run started")


@app.queue_trigger(arg_name="msg", queue_name="%BCSYNC_QUEUE_NAME%", connection="AzureWebJobsStorage")
def run_job(msg: func.QueueMessage) -> None:
    """One job message. One that can never work is reported and copied to the poison queue by handle_message,
    and this returns, so that the host deletes it: raising would only have the host deliver it four times more,
    with a traceback each time, before it moved it to the same queue. A transient error is raised, for the host
    to deliver the message again later. With settings in error the message is taken and the settings logged in
    one line: the timer re-sends a queued job whose message never arrived once they are fixed."""
    try:
        services().handle_message(msg.get_body())
    except SettingsError as exc:
        log.error("job message not done: %s", exc.message)


@route("fullsync", ["POST"], Access.CHANGE)
def start_full_sync(req: func.HttpRequest) -> func.HttpResponse:
    try:
        body = req.get_json() if req.get_body() else {}
    except ValueError:
        return _problem(400, "The body must be JSON, e.g. {\"mappings\": [\"CUSTOMER\"]}, or empty.")
    mappings = body.get("mappings") if isinstance(body, dict) else None
    try:
        run = services().start_run(RunKind.FULL, trigger="http", mappings=mappings)
    except ConfigurationError as exc:
        return _problem(400, exc.message)
    except SyncError as exc:  # the review could not read a service
        return _problem(503 if exc.transient else 502, exc.message)
    status_url = req.url.split("/api/", 1)[0] + f"/api/runs/{run.run_id}"
    return _json({"run": run.run_id, "status": run.status.value, "status_url": status_url}, 202,
                 headers={"Location": status_url})


@route("runs/{run_id}", ["GET"], Access.READ)
def run_status(req: func.HttpRequest) -> func.HttpResponse:
    report = services().report(req.route_params.get("run_id"))
    if report is None:
        return _problem(404, f"There is no run {req.route_params.get('run_id')}.")
    return _json(report.to_dict())


@route("runs", ["GET"], Access.READ)
def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    """The job log: the latest runs (?limit=20) with every job's counts and timings (?mapping= filters)."""
    try:
        limit = max(1, min(200, int(req.params.get("limit", "20"))))
    except ValueError:
        return _problem(400, "limit must be a number.")
    reports = services().job_log(limit=limit, mapping=req.params.get("mapping") or None)
    return _json({"runs": [report.to_dict() for report in reports]})


@route("mappings", ["GET"], Access.READ)
def list_mappings(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"mappings": services().mappings()})


@route("mappings/{name}", ["GET"], Access.READ)
def mapping(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name", "")
    found = next((m for m in services().mappings() if m["name"] == name), None)
    return _json(found) if found else _problem(404, f"There is no table mapping named {name}.")


@route("mappings/{name}", ["PATCH"], Access.CHANGE)
def change_mapping(req: func.HttpRequest) -> func.HttpResponse:
    changes = _json_object(req)
    if changes is None:
        return _problem(400, "The body must be a JSON object of settings to change.")
    try:
        return _json(services().set_mapping(req.route_params.get("name", ""), changes))
    except ConfigurationError as exc:
        return _problem(400, exc.message)


@route("mappings/{name}/overrides", ["DELETE"], Access.CHANGE)
def reset_mapping(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return _json(services().reset_mapping(req.route_params.get("name", "")))
    except ConfigurationError as exc:
        return _problem(404, exc.message)


@route("errors", ["GET"], Access.READ)
def list_errors(req: func.HttpRequest) -> func.HttpResponse:
    skipped = {"true": True, "false": False}.get((req.params.get("skipped") or "").lower())
    found = services().failures(req.params.get("mapping"), req.params.get("direction"), skipped)
    return _json({"errors": [failures.to_dict(f) for f in found]})


@route("errors/retry", ["POST"], Access.CHANGE)
def retry_errors(req: func.HttpRequest) -> func.HttpResponse:
    body = _json_object(req)
    if body is None or not (body.get("source_id") or body.get("all") or body.get("skipped")):
        return _problem(400, 'Say which records: {"source_id": ...}, {"all": true} or {"skipped": true}, '
                             'optionally with "mapping" and "direction".')
    done = services().retry_failures(mapping=body.get("mapping"), direction=body.get("direction"),
                                     source_id=body.get("source_id"), skipped=True if body.get("skipped") else None)
    return _json({"retried": [failures.to_dict(f) for f in done]})


def _coupling_problem(exc: ConfigurationError) -> func.HttpResponse:
    return _problem(404 if "not coupled" in exc.message or "no table mapping" in exc.message else 400, exc.message)


@route("couplings/{mapping}", ["GET"], Access.READ)
def list_couplings(req: func.HttpRequest) -> func.HttpResponse:
    try:
        limit = int(req.params.get("limit", "100"))
    except ValueError:
        return _problem(400, "limit must be a number.")
    try:
        found = services().list_couplings(req.route_params.get("mapping", ""), req.params.get("search"), limit)
    except ConfigurationError as exc:
        return _coupling_problem(exc)
    return _json({"couplings": [coupling.to_dict(c) for c in found]})


@route("couplings/{mapping}", ["POST"], Access.CHANGE)
def couple(req: func.HttpRequest) -> func.HttpResponse:
    body = _json_object(req)
    if body is None or not body.get("bc_id") or not body.get("crm_id"):
        return _problem(400, 'The body must be {"bc_id": ..., "crm_id": ...}.')
    try:
        pair = services().couple(req.route_params.get("mapping", ""), body["bc_id"], body["crm_id"])
    except ConfigurationError as exc:
        return _coupling_problem(exc)
    return _json(coupling.to_dict(pair), 201)


@route("couplings/{mapping}", ["DELETE"], Access.CHANGE)
def uncouple(req: func.HttpRequest) -> func.HttpResponse:
    bc_id, crm_id = req.params.get("bc"), req.params.get("crm")
    if bool(bc_id) == bool(crm_id):
        return _problem(400, "Give ?bc=<id> or ?crm=<id>.")
    side, record_id = (Side.BC, bc_id) if bc_id else (Side.CRM, crm_id)
    try:
        return _json(coupling.to_dict(services().uncouple(req.route_params.get("mapping", ""), side, record_id)))
    except ConfigurationError as exc:
        return _coupling_problem(exc)


@route("match/{mapping}", ["POST"], Access.CHANGE)
def match(req: func.HttpRequest) -> func.HttpResponse:
    """Match-based coupling; the body may change the criteria first:
    {"match": {"email": {"priority": 0}}, "create_new_if_no_match": false, "sync_after_coupling": true}."""
    mapping = req.route_params.get("mapping", "")
    try:
        body = req.get_json() if req.get_body() else {}
    except ValueError:
        return _problem(400, "The body must be JSON or empty.")
    try:
        if body:
            services().set_mapping(mapping, body)
        run = services().start_run(RunKind.COUPLE, trigger="http", mappings=[mapping])
    except ConfigurationError as exc:
        return _problem(400, exc.message)
    status_url = req.url.split("/api/", 1)[0] + f"/api/runs/{run.run_id}"
    return _json({"run": run.run_id, "status": run.status.value, "status_url": status_url}, 202,
                 headers={"Location": status_url})


def _records_answer(req: func.HttpRequest, act) -> func.HttpResponse:
    """A per-record action's answer: what became of each record (200 when all are synchronised, else 422)."""
    body = _json_object(req)
    ids, where = (body.get("ids"), body.get("filter")) if body is not None else (None, None)
    if (ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) and i for i in ids))) \
            or (where is not None and not isinstance(where, str)) or bool(ids) == bool(where):
        return _problem(400, 'The body must name the records: {"ids": ["<source id>", ...]} or {"filter": "<OData '
                             '$filter on the source table>"}.')
    try:
        done = act(body, ids, where)
    except ConfigurationError as exc:
        return _problem(404 if "no table mapping" in exc.message else 400, exc.message)
    except ConcurrencyError as exc:
        return _problem(409, exc.message)
    except SyncError as exc:
        return _problem(503 if exc.transient else 502, exc.message)
    return _json({"records": [r.to_dict() for r in done]}, 200 if all(r.ok for r in done) else 422)


@route("records/{mapping}/create", ["POST"], Access.CHANGE)
def create_records(req: func.HttpRequest) -> func.HttpResponse:
    """Create records that are not coupled in Sales or Business Central now:
    {"in": "sales" | "bc", "ids": [...]} or {"in": ..., "filter": "..."} (ids and filter on the other side)."""
    target = {"sales": Side.CRM, "bc": Side.BC}.get(str((_json_object(req) or {}).get("in")))
    if target is None:
        return _problem(400, 'Say where to create them: {"in": "sales"} or {"in": "bc"}.')
    return _records_answer(req, lambda body, ids, where: services().create_records(
        req.route_params.get("mapping", ""), target, ids, where))


@route("records/{mapping}/sync", ["POST"], Access.CHANGE)
def synchronise_records(req: func.HttpRequest) -> func.HttpResponse:
    """Synchronise coupled records now: {"ids": [...]} or {"filter": "..."}, on the source side of
    "direction" ("to-crm" or "from-crm"; default the mapping's first)."""
    def act(body, ids, where):
        direction = body.get("direction")
        if direction not in (None, "to-crm", "from-crm"):
            raise ConfigurationError('"direction" is "to-crm" or "from-crm".')
        return services().synchronise_records(req.route_params.get("mapping", ""), direction, ids, where)
    return _records_answer(req, act)


@route("orders/create", ["POST"], Access.CHANGE)
def create_orders(req: func.HttpRequest) -> func.HttpResponse:
    """Create submitted Sales orders in Business Central now: {"orders": ["<salesorderid>", ...]}."""
    body = _json_object(req)
    ids = body.get("orders") if body is not None else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        return _problem(400, 'The body must be {"orders": ["<salesorderid>", ...]}.')
    try:
        results = services().create_sales_orders(ids)
    except ConcurrencyError as exc:
        return _problem(409, exc.message)
    except SyncError as exc:
        return _problem(503 if exc.transient else 502, exc.message)
    return _json({"orders": [r.to_dict() for r in results]},
                 200 if all(r.ok for r in results) else 422)


@route("health", ["GET"], Access.READ)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """The connection check: 200 when every check passes, else 503 with the problems and their fixes."""
    report = services().check()
    return _json(report.to_dict(), 200 if report.ok else 503)


@route("items/availability", ["GET"], Access.READ)
def item_availability(req: func.HttpRequest) -> func.HttpResponse:
    """Business Central inventory of a Sales product: ?product=<productid or product number>."""
    product = (req.params.get("product") or "").strip()
    if not product:
        return _problem(400, "Give ?product=<the product's id or product number>.")
    try:
        return _json(services().item_availability(product))
    except RecordError as exc:
        return _problem(404, exc.message)
    except SyncError as exc:
        return _problem(503 if exc.transient else 502, exc.message)
