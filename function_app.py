"""Azure Functions entry points (Python v2 programming model). Each one parses its trigger, calls
the services and shapes the answer; the work itself lives in sync/ (domain) and shared/ (adapters)."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.telemetry import set_log_levels
from shared.wiring import Services, build_services, start_telemetry
from sync import coupling, failures
from sync.errors import ConcurrencyError, ConfigurationError, RecordError, SyncError
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


def _json(body, status: int = 200, headers: dict | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, indent=2), status_code=status, mimetype="application/json",
                             headers=headers)


def _problem(status: int, message: str) -> func.HttpResponse:
    return _json({"error": message}, status)


@app.timer_trigger(schedule="%BCSYNC_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def scheduled_sync(timer: func.TimerRequest) -> None:
    run = services().start_scheduled_run(trigger="timer" + (" (past due)" if timer.past_due else ""))
    if run is None:
        log.info("previous scheduled run still going; no new run started")


@app.queue_trigger(arg_name="msg", queue_name="%BCSYNC_QUEUE_NAME%", connection="AzureWebJobsStorage")
def run_job(msg: func.QueueMessage) -> None:
    services().handle_message(msg.get_body().decode("utf-8"))


@app.route(route="fullsync", methods=["POST"])
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


@app.route(route="runs/{run_id}", methods=["GET"])
def run_status(req: func.HttpRequest) -> func.HttpResponse:
    report = services().report(req.route_params.get("run_id"))
    if report is None:
        return _problem(404, f"There is no run {req.route_params.get('run_id')}.")
    return _json(report.to_dict())


@app.route(route="runs", methods=["GET"])
def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    """The job log: the latest runs (?limit=20) with every job's counts and timings (?mapping= filters)."""
    try:
        limit = max(1, min(200, int(req.params.get("limit", "20"))))
    except ValueError:
        return _problem(400, "limit must be a number.")
    reports = services().job_log(limit=limit, mapping=req.params.get("mapping") or None)
    return _json({"runs": [report.to_dict() for report in reports]})


@app.route(route="mappings", methods=["GET"])
def list_mappings(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"mappings": services().mappings()})


@app.route(route="mappings/{name}", methods=["GET", "PATCH"])
def mapping(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name", "")
    try:
        if req.method == "GET":
            found = next((m for m in services().mappings() if m["name"] == name), None)
            return _json(found) if found else _problem(404, f"There is no table mapping named {name}.")
        try:
            changes = req.get_json()
        except ValueError:
            return _problem(400, "The body must be a JSON object of settings to change.")
        if not isinstance(changes, dict):
            return _problem(400, "The body must be a JSON object of settings to change.")
        return _json(services().set_mapping(name, changes))
    except ConfigurationError as exc:
        return _problem(400, exc.message)


@app.route(route="mappings/{name}/overrides", methods=["DELETE"])
def reset_mapping(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return _json(services().reset_mapping(req.route_params.get("name", "")))
    except ConfigurationError as exc:
        return _problem(404, exc.message)


@app.route(route="errors", methods=["GET"])
def list_errors(req: func.HttpRequest) -> func.HttpResponse:
    skipped = {"true": True, "false": False}.get((req.params.get("skipped") or "").lower())
    found = services().failures(req.params.get("mapping"), req.params.get("direction"), skipped)
    return _json({"errors": [failures.to_dict(f) for f in found]})


@app.route(route="errors/retry", methods=["POST"])
def retry_errors(req: func.HttpRequest) -> func.HttpResponse:
    try:
        body = req.get_json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not (body.get("source_id") or body.get("all") or body.get("skipped")):
        return _problem(400, 'Say which records: {"source_id": ...}, {"all": true} or {"skipped": true}, '
                             'optionally with "mapping" and "direction".')
    done = services().retry_failures(mapping=body.get("mapping"), direction=body.get("direction"),
                                     source_id=body.get("source_id"), skipped=True if body.get("skipped") else None)
    return _json({"retried": [failures.to_dict(f) for f in done]})


@app.route(route="couplings/{mapping}", methods=["GET", "POST", "DELETE"])
def couplings(req: func.HttpRequest) -> func.HttpResponse:
    mapping = req.route_params.get("mapping", "")
    try:
        if req.method == "GET":
            found = services().list_couplings(mapping, req.params.get("search"), int(req.params.get("limit", "100")))
            return _json({"couplings": [coupling.to_dict(c) for c in found]})
        if req.method == "POST":
            try:
                body = req.get_json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or not body.get("bc_id") or not body.get("crm_id"):
                return _problem(400, 'The body must be {"bc_id": ..., "crm_id": ...}.')
            return _json(coupling.to_dict(services().couple(mapping, body["bc_id"], body["crm_id"])), 201)
        bc_id, crm_id = req.params.get("bc"), req.params.get("crm")
        if bool(bc_id) == bool(crm_id):
            return _problem(400, "Give ?bc=<id> or ?crm=<id>.")
        side, record_id = (Side.BC, bc_id) if bc_id else (Side.CRM, crm_id)
        return _json(coupling.to_dict(services().uncouple(mapping, side, record_id)))
    except ConfigurationError as exc:
        return _problem(404 if "not coupled" in exc.message or "no table mapping" in exc.message else 400, exc.message)
    except ValueError:
        return _problem(400, "limit must be a number.")


@app.route(route="match/{mapping}", methods=["POST"])
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


@app.route(route="orders/create", methods=["POST"])
def create_orders(req: func.HttpRequest) -> func.HttpResponse:
    """Create submitted Sales orders in Business Central now: {"orders": ["<salesorderid>", ...]}."""
    try:
        body = req.get_json()
    except ValueError:
        body = None
    ids = body.get("orders") if isinstance(body, dict) else None
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


@app.route(route="items/availability", methods=["GET"])
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
