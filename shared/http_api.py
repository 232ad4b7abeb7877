"""The HTTP API as a Functions blueprint, which function_app.py registers next to its timer and queue
triggers: the `route` decorator with its access check and last-resort guard, and every JSON route. Each
route parses its request, calls the services and shapes the answer."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import time
from typing import Callable, TypeVar
from urllib.parse import quote

import azure.functions as func

from sync import config, coupling, failures
from sync.errors import (
    ConcurrencyError,
    ConfigurationError,
    NotFoundError,
    RecordError,
    SettingsError,
    SyncError,
    cut,
)
from sync.mappings import not_in_use
from sync.model import Direction, Side
from sync.notifications import Notification
from sync.runs import RUN_ID, RunKind

from . import request
from .access import ENTRA, Access, auth_mode, authorise
from .settings import Settings
from .wiring import Services

bp = func.Blueprint()
log = logging.getLogger("bcsync")

_provider: Callable[[], Services] | None = None
# the company a request names (?company=NAME or its id), for the services its handler asks for
_company: contextvars.ContextVar[str | None] = contextvars.ContextVar("company", default=None)
T = TypeVar("T")


def serve(provider: Callable[[], Services]) -> None:
    """Say where the routes get their services: function_app.py's, built once per worker process."""
    global _provider
    _provider = provider


def all_services() -> Services:
    """The services of the function app, for every company."""
    if _provider is None:
        raise RuntimeError("shared.http_api.serve() was not called: function_app.py registers this blueprint.")
    return _provider()


def services() -> Services:
    """The services of the company the request names (?company=), or of the only one; with several companies and
    none named, a 400 that names them."""
    return all_services().for_company(_company.get())


def company_named() -> str | None:
    return _company.get()


def _startup_auth_mode() -> str:
    """BCSYNC_HTTP_AUTH as the host indexes the functions; unreadable settings keep the stricter keys."""
    try:
        return auth_mode(Settings.load())
    except ConfigurationError:
        return "keys"


AUTH_MODE = _startup_auth_mode()


def route(path: str, methods: list[str], access: Access, *, blueprint: func.Blueprint = bp, problem=None):
    """An HTTP route that reads or changes. In keys mode the host enforces the key level (function
    key to read, master key to change); in entra mode every caller's app roles are checked here,
    before anything is read or written. A service's notifications (Access.SERVICE) pass both: the
    handler checks their secret. Whatever the handler raises becomes a problem here (JSON unless
    `problem` shapes it otherwise): a bad request 400 or 404, a service's trouble 502 or 503, and anything
    unforeseen a logged 500, so that no traceback reaches the host."""
    level = func.AuthLevel.ANONYMOUS if AUTH_MODE == ENTRA or access is Access.SERVICE else \
        func.AuthLevel.FUNCTION if access is Access.READ else func.AuthLevel.ADMIN
    answer = problem or problem_answer

    def decorate(handler):
        @functools.wraps(handler)
        def guarded(req: func.HttpRequest) -> func.HttpResponse:
            named = _company.set((req.params.get("company") or "").strip() or None)
            try:
                refusal = authorise(AUTH_MODE, access, req.headers, all_services().settings, os.environ)
                return answer(refusal.status, refusal.message) if refusal else handler(req)
            except SettingsError as exc:  # 503: the operator's to fix, not the caller's; each setting named
                return answer(503, exc.message, settings=exc.problems)
            except request.BadRequest as exc:
                return answer(exc.status, exc.message, exc.field)
            except NotFoundError as exc:
                return answer(404, exc.message)
            except ConcurrencyError as exc:
                return answer(409, exc.message)
            except ConfigurationError as exc:
                return answer(400, exc.message)
            except SyncError as exc:
                return answer(503 if exc.transient else 502, exc.message)
            except Exception:
                log.exception("%s %s failed", req.method, path)
                return answer(500, "bcsync failed to answer this request; what went wrong is in its log.")
            finally:
                _company.reset(named)
        return blueprint.route(route=path, methods=methods, auth_level=level)(guarded)
    return decorate


def json_answer(body, status: int = 200, headers: dict | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, indent=2), status_code=status, mimetype="application/json",
                             headers=headers)


def problem_answer(status: int, message: str, field: str = "", settings: dict | None = None) -> func.HttpResponse:
    """The JSON problem; with settings in error, each setting with its problem and fix."""
    return json_answer({"error": message, **({"field": field} if field else {}),
                        **({"settings": settings} if settings is not None else {})}, status)


KEY_CACHED = 60.0  # seconds a receiver goes on with the webhook key it read (a notification costs no storage read)
KEY_RECHECKED = 5.0  # ... but a key that does not match, or none stored, is read again after this long (registered?)
KEYLESS_LOGGED = 300.0  # seconds between two warnings that notifications came while no key is stored
_keyless_logged: dict[str, float] = {}  # service -> when (time.monotonic()) that was last logged


def take_notifications(service: str, side: Side, keyed: Callable[[str], T | None], refused: str,
                       read: Callable[[T], tuple[list[Notification], dict]]) -> func.HttpResponse:
    """A service's notifications, as both receivers take them. `keyed(key)` is what of the post carries bcsync's
    webhook key of `side` (None: nothing, a 401 saying `refused`); the key comes from the process's cache, read again
    at most every KEY_RECHECKED seconds when it does not match (a registration since is seen, a flood of guesses costs
    little). `read` makes the notifications of what is keyed, and what else the 202 says; the services take them.
    Trouble on bcsync's side, or no key stored, is a 503 (`not_taken`), never a 4xx."""
    services = all_services()
    try:
        key = services.webhook_key(side, max_age=KEY_CACHED)
        taken = None if key is None else keyed(key)
        if taken is None:
            fresh = services.webhook_key(side, max_age=KEY_RECHECKED)
            if fresh is not None and fresh != key:
                taken = keyed(fresh)
            key = fresh
    except Exception as exc:  # our own trouble: a 4xx would have Business Central delete its subscriptions
        return not_taken(service, exc)
    if key is None:
        return not_taken(service, None)
    if taken is None:
        return problem_answer(401, refused)
    notifications, said = read(taken)
    try:
        summary = services.notify(notifications) if notifications else {}
    except Exception as exc:
        return not_taken(service, exc)
    return json_answer({**summary, **said}, 202)


def not_taken(service: str, exc: Exception | None) -> func.HttpResponse:
    """A service's notification that bcsync could not take (`exc`; None: it keeps no webhook key): logged, and a 503,
    which both services retry (any 4xx would have Business Central delete its subscriptions). Without a key, anyone
    may be posting (this deployment never registered), so that is a warning at most every KEYLESS_LOGGED seconds."""
    if exc is None:
        now = time.monotonic()
        if now - _keyless_logged.get(service, -KEYLESS_LOGGED) >= KEYLESS_LOGGED:
            _keyless_logged[service] = now
            log.warning("%s notifications not taken: no webhook key is stored (webhooks never registered here, or the "
                        "state table of BCSYNC_TABLE_PREFIX lost them); answered 503, which %s retries. Run `bcsync "
                        "webhooks register` if they should be taken.", service, service)
        return problem_answer(503, "bcsync keeps no webhook key; try again later.")
    if isinstance(exc, SyncError):
        log.error("%s notifications not taken (%s retries): %s", service, service, exc.message)
        return problem_answer(503, exc.message)
    log.exception("%s notifications not taken (%s retries)", service, service)
    return problem_answer(503, "bcsync failed to take the notifications; what went wrong is in its log.")


@route("fullsync", ["POST"], Access.CHANGE)
def start_full_sync(req: func.HttpRequest) -> func.HttpResponse:
    """Full synchronisation of every mapping (no body, or {}), or of some: {"mappings": ["CUSTOMER"]}; a dry run,
    which writes nothing and reports what it would write: {"dry_run": true}."""
    return _start(req, RunKind.FULL)


@route("sync", ["POST"], Access.CHANGE)
def start_sync(req: func.HttpRequest) -> func.HttpResponse:
    """A scheduled (incremental) run now, as `bcsync sync` starts it: every mapping, or {"mappings": [...]};
    {"dry_run": true} as for a full synchronisation."""
    return _start(req, RunKind.SCHEDULED)


def _start(req: func.HttpRequest, kind: RunKind) -> func.HttpResponse:
    body = request.body(req.get_body(), '{"mappings": ["CUSTOMER"], "dry_run": true}', ("mappings", "dry_run"),
                        required=False)
    run = services().start_run(kind, trigger="http", mappings=request.mappings(body, "mappings"),
                               dry=bool(request.flag(body, "dry_run")))
    return _started(req, run)


def _started(req: func.HttpRequest, run) -> func.HttpResponse:
    whose = f"?company={quote(run.company)}" if run.company else ""
    status_url = req.url.split("/api/", 1)[0] + f"/api/runs/{run.run_id}{whose}"
    return json_answer({"run": run.run_id, **({"company": run.company} if run.company else {}), "status": run.status.value,
                  "status_url": status_url}, 202, headers={"Location": status_url})


@route("runs/{run_id}", ["GET"], Access.READ)
def run_status(req: func.HttpRequest) -> func.HttpResponse:
    run_id = req.route_params.get("run_id", "")
    report = services().report(run_id) if RUN_ID.fullmatch(run_id) else None
    if report is None:
        raise request.BadRequest(f"There is no run {cut(run_id)}; GET /api/runs lists them.", status=404)
    return json_answer(report.to_dict())


@route("runs", ["GET"], Access.READ)
def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    """The job log: the latest runs (?limit=20) with every job's counts and timings (?mapping= filters)."""
    limit = request.number(req.params, "limit", 20, 1, 200)
    reports = services().job_log(limit=limit, mapping=request.named_mapping(req.params))
    return json_answer({"runs": [report.to_dict() for report in reports]})


@route("mappings", ["GET"], Access.READ)
def list_mappings(req: func.HttpRequest) -> func.HttpResponse:
    return json_answer({"mappings": services().mappings()})


def mapping_in_use(name: str) -> dict:
    """A table mapping of the catalogue in use, as listed; a built-in one of the other unit mode, ownership model
    or pricing experience is not found, and the answer names the setting that decides (it was a 500)."""
    found = next((m for m in services().mappings() if m["name"] == name), None)
    if found is None:
        raise request.BadRequest(not_in_use(name), field="name", status=404)
    return found


@route("mappings/{name}", ["GET"], Access.READ)
def mapping(req: func.HttpRequest) -> func.HttpResponse:
    return json_answer(mapping_in_use(request.mapping(req.route_params.get("name", ""), field="name")))


@route("mappings/{name}", ["PATCH"], Access.CHANGE)
def change_mapping(req: func.HttpRequest) -> func.HttpResponse:
    name = request.mapping(req.route_params.get("name", ""), field="name")
    changes = request.body(req.get_body(), '{"interval_minutes": 30}', config.SETTABLE)
    return json_answer(services().set_mapping(name, changes))


@route("mappings/{name}/overrides", ["DELETE"], Access.CHANGE)
def reset_mapping(req: func.HttpRequest) -> func.HttpResponse:
    return json_answer(services().reset_mapping(request.mapping(req.route_params.get("name", ""), field="name")))


ONE_WAY = (Direction.TO_CRM.value, Direction.FROM_CRM.value)


@route("errors", ["GET"], Access.READ)
def list_errors(req: func.HttpRequest) -> func.HttpResponse:
    found = services().failures(request.named_mapping(req.params),
                                request.choice(req.params, "direction", ONE_WAY),
                                request.flag(req.params, "skipped"))
    return json_answer({"errors": [failures.to_dict(f) for f in found]})


@route("errors/retry", ["POST"], Access.CHANGE)
def retry_errors(req: func.HttpRequest) -> func.HttpResponse:
    which = '{"source_id": "<id>"}, {"all": true} or {"skipped": true}, optionally with "mapping" and "direction"'
    body = request.body(req.get_body(), which, ("source_id", "all", "skipped", "mapping", "direction"))
    source_id, everything, skipped = request.text(body, "source_id"), request.flag(body, "all"), \
        request.flag(body, "skipped")
    chosen, direction = request.named_mapping(body), request.choice(body, "direction", ONE_WAY)
    if not (source_id or everything or skipped):
        raise request.BadRequest(f"Say which records: {which}.", field="source_id")
    done = services().retry_failures(mapping=chosen, direction=direction,
                                     source_id=source_id, skipped=True if skipped else None)
    return json_answer({"retried": [failures.to_dict(f) for f in done]})


@route("couplings/{mapping}", ["GET"], Access.READ)
def list_couplings(req: func.HttpRequest) -> func.HttpResponse:
    found = services().list_couplings(request.mapping(req.route_params.get("mapping", "")),
                                      request.text(req.params, "search"),
                                      request.number(req.params, "limit", 100, 1, 1000))
    return json_answer({"couplings": [coupling.to_dict(c) for c in found]})


@route("couplings/{mapping}", ["POST"], Access.CHANGE)
def couple(req: func.HttpRequest) -> func.HttpResponse:
    example = '{"bc_id": "<Business Central id>", "crm_id": "<Sales id>"}'
    body = request.body(req.get_body(), example, ("bc_id", "crm_id"))
    ids = [request.text(body, key, required=True, hint=f"send {example}", limit=100) for key in ("bc_id", "crm_id")]
    pair = services().couple(request.mapping(req.route_params.get("mapping", "")), *ids)
    return json_answer(coupling.to_dict(pair), 201)


@route("couplings/{mapping}", ["DELETE"], Access.CHANGE)
def uncouple(req: func.HttpRequest) -> func.HttpResponse:
    name = request.mapping(req.route_params.get("mapping", ""))
    bc_id, crm_id = (request.text(req.params, key, limit=100) for key in ("bc", "crm"))
    if bool(bc_id) == bool(crm_id):
        raise request.BadRequest("Give ?bc=<id> or ?crm=<id> (one of the two).", field="bc")
    side, record_id = (Side.BC, bc_id) if bc_id else (Side.CRM, crm_id)
    return json_answer(coupling.to_dict(services().uncouple(name, side, record_id)))


@route("match/{mapping}", ["POST"], Access.CHANGE)
def match(req: func.HttpRequest) -> func.HttpResponse:
    """Match-based coupling; the body may change the criteria first:
    {"match": {"email": {"priority": 0}}, "create_new_if_no_match": false, "sync_after_coupling": true}."""
    name = request.mapping(req.route_params.get("mapping", ""))
    body = request.body(req.get_body(), '{"match": ["email"]}', config.SETTABLE, required=False)
    if body:
        services().set_mapping(name, body)
    return _started(req, services().start_run(RunKind.COUPLE, trigger="http", mappings=[name]))


RECORDS = 'name the records: {"ids": ["<source id>", ...]} or {"filter": "<OData $filter on the source table>"}'


def _records_answer(req: func.HttpRequest, keys: tuple[str, ...], act) -> func.HttpResponse:
    """A per-record action's answer: what became of each record (200 when all are synchronised, else 422)."""
    name = request.mapping(req.route_params.get("mapping", ""))
    body = request.body(req.get_body(), '{"ids": ["<source id>"]}', ("ids", "filter") + keys)
    ids, where = request.texts(body, "ids", hint=RECORDS, limit=100), request.text(body, "filter")
    if bool(ids) == bool(where):
        raise request.BadRequest(f"The body must {RECORDS} (one of the two).", field="ids")
    done = act(name, body, ids, where)
    return json_answer({"records": [r.to_dict() for r in done]}, 200 if all(r.ok for r in done) else 422)


@route("records/{mapping}/create", ["POST"], Access.CHANGE)
def create_records(req: func.HttpRequest) -> func.HttpResponse:
    """Create records that are not coupled in Sales or Business Central now:
    {"in": "sales" | "bc", "ids": [...]} or {"in": ..., "filter": "..."} (ids and filter on the other side)."""
    def act(name, body, ids, where):
        target = {"sales": Side.CRM, "bc": Side.BC}[request.choice(body, "in", ("sales", "bc"), required=True)]
        return services().create_records(name, target, ids, where)
    return _records_answer(req, ("in",), act)


@route("records/{mapping}/sync", ["POST"], Access.CHANGE)
def synchronise_records(req: func.HttpRequest) -> func.HttpResponse:
    """Synchronise coupled records now: {"ids": [...]} or {"filter": "..."}, on the source side of
    "direction" ("to-crm" or "from-crm"; default the mapping's first)."""
    def act(name, body, ids, where):
        direction = request.choice(body, "direction", ONE_WAY)
        return services().synchronise_records(name, direction, ids, where)
    return _records_answer(req, ("direction",), act)


@route("orders/create", ["POST"], Access.CHANGE)
def create_orders(req: func.HttpRequest) -> func.HttpResponse:
    """Create submitted Sales orders in Business Central now: {"orders": ["<salesorderid>", ...]}."""
    example = '{"orders": ["<salesorderid>", ...]}'
    ids = request.texts(request.body(req.get_body(), example, ("orders",)), "orders", hint=f"send {example}",
                        limit=100)
    if ids is None:
        raise request.BadRequest(f"orders is missing; send {example}.", field="orders")
    results = services().create_sales_orders(ids)
    return json_answer({"orders": [r.to_dict() for r in results]},
                 200 if all(r.ok for r in results) else 422)


@route("health", ["GET"], Access.READ)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """The connection check: 200 when every check passes, else 503 with the problems and their fixes."""
    report = services().check()
    return json_answer(report.to_dict(), 200 if report.ok else 503)


@route("items/availability", ["GET"], Access.READ)
def item_availability(req: func.HttpRequest) -> func.HttpResponse:
    """Business Central inventory of a Sales product: ?product=<productid or product number>."""
    product = request.text({"product": (req.params.get("product") or "").strip()}, "product", required=True,
                           limit=100, hint="give ?product=<the product's id or product number>")
    try:
        return json_answer(services().item_availability(product))
    except RecordError as exc:
        return problem_answer(404, exc.message)


@route("webhooks", ["POST"], Access.CHANGE)
def register_webhooks(req: func.HttpRequest) -> func.HttpResponse:
    """Register the webhooks of every company at both services (idempotent: renews and recreates what it must)."""
    return _webhooks(all_services().register_webhooks())


@route("webhooks", ["GET"], Access.READ)
def webhook_status(req: func.HttpRequest) -> func.HttpResponse:
    """What is registered for this function app's receivers, and what is missing."""
    return _webhooks(all_services().webhook_status())


@route("webhooks", ["DELETE"], Access.CHANGE)
def remove_webhooks(req: func.HttpRequest) -> func.HttpResponse:
    """Remove every webhook registered for this function app's receivers."""
    return _webhooks(all_services().remove_webhooks())


def _webhooks(report: dict) -> func.HttpResponse:
    """200 when every hook is as wanted; else, as other routes that act on many things, 503 when a service was
    unavailable (try again later) and 422 when something was refused (the others were still registered)."""
    return json_answer(report, 200 if report["ok"] else 503 if report["unavailable"] else 422)
