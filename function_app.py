"""Azure Functions entry points (Python v2 programming model): the timer and queue triggers here, the HTTP
API in the blueprint of shared/http_api.py. Each one parses its trigger, calls the services and shapes the
answer; the work itself lives in sync/ (domain) and shared/ (adapters)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import bc_receiver, console, dataverse_receiver, http_api
from shared.http_api import (  # noqa: F401 (re-exported: callers and tests reach the routes as function_app.<name>)
    change_mapping,
    couple,
    create_orders,
    create_records,
    health,
    item_availability,
    list_couplings,
    list_errors,
    list_mappings,
    list_runs,
    mapping,
    match,
    register_webhooks,
    remove_webhooks,
    reset_mapping,
    retry_errors,
    run_status,
    start_full_sync,
    start_sync,
    synchronise_records,
    uncouple,
    webhook_status,
)
from shared.bc_receiver import business_central_notifications  # noqa: F401 (re-exported as the routes above)
from shared.dataverse_receiver import dataverse_notifications  # noqa: F401 (re-exported as the routes above)
from shared.telemetry import set_log_levels
from shared.wiring import Services, build_services, start_telemetry
from sync.errors import SettingsError, SyncError

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


http_api.serve(services)
app.register_blueprint(http_api.bp)
app.register_blueprint(console.bp)
app.register_blueprint(bc_receiver.bp)
app.register_blueprint(dataverse_receiver.bp)


@app.timer_trigger(schedule="%BCSYNC_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def scheduled_sync(timer: func.TimerRequest) -> None:
    """A tick. It does not raise: the host never runs a failed tick again, the next tick does the same work (the
    recovery of stranded jobs included), so a failure is logged with its reason rather than as a traceback."""
    past_due = getattr(timer, "past_due", False) is True  # nothing but a true flag says the tick is late
    try:
        started = services().start_scheduled_runs(trigger="timer" + (" (past due)" if past_due else ""))
    except SyncError as exc:
        started = {"": exc}
    for company, run in started.items():
        whose = f" for company {company}" if company else ""
        if isinstance(run, SyncError):
            log.error("no scheduled run started%s%s: %s The next tick tries again.", whose,
                      " (a service is unavailable)" if run.transient else "", run.message)
        elif run is None:
            log.info("previous scheduled run still going; no new run started%s", whose)
    _renew_webhooks()


def _renew_webhooks() -> None:
    """Webhook subscriptions expiring within a day renewed, the ones gone created again (once registered, at most
    hourly: Services.renew_webhooks); what goes wrong is logged, and the next tick tries again."""
    try:
        renewed = services().renew_webhooks()
    except SettingsError:
        return  # the scheduled run's start has said which settings to fix
    except SyncError as exc:
        log.error("webhooks not renewed%s: %s The next tick tries again.",
                  " (a service is unavailable)" if exc.transient else "", exc.message)
        return
    except Exception:  # the scheduled runs have started; nothing here may stop the timer's function
        log.exception("webhooks not renewed; the next tick tries again")
        return
    failed = [hook for hook in (renewed or {}).get("hooks", []) if hook["state"] == "failed"]
    for hook in failed:
        log.error("webhook of %s not registered: %s", " ".join(filter(None, (
            hook.get("company"), "Business Central" if hook["side"] == "bc" else "Dataverse", hook["table"]))),
            hook["detail"])


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
