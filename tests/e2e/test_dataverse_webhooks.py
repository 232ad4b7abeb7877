"""Dataverse webhooks end to end: bcsync registers its service endpoint and steps in the Dataverse simulator, the
function app is served over HTTP, and rows changed in Sales reach its receiver as notifications.

The notifications go to the real `Services.notify`, and the tests check what it recorded (the rows notified to a
mapping, a targeted run); where bcsync's side must fail, `Services.notify` raises what the test sets."""

from __future__ import annotations

import uuid

import pytest

import function_app
from bcsync import host
from shared import http_api
from shared.dataverse import DataverseClient
from shared.wiring import Services
from sync.errors import ConfigurationError, ServiceUnavailableError
from sync.model import Direction, Side
from shared.dataverse_webhooks import update_columns
from sync.notifications import CRM_ROUTE, HookState, hookable_tables
from sync.runs import RunKind
from tests.support import execution_context, post, wait_for


@pytest.fixture
def served(env, monkeypatch):
    """The function app over HTTP with BCSYNC_WEBHOOK_URL naming it; the receiver's URL."""
    with host.serving(function_app.app) as base:
        env.configure(BCSYNC_WEBHOOK_URL=base)
        monkeypatch.setattr(function_app, "_services", env.services)
        monkeypatch.setattr(http_api, "_keyless_logged", {})
        yield f"{base}/api/{CRM_ROUTE}"


def notified(env, mapping: str = "CUSTOMER") -> dict[str, str]:
    """The Sales rows notified to `mapping` and not yet taken up: change by id."""
    return {row.record_id: row.change.value for row in env.services.state.notified(mapping, Direction.FROM_CRM)}


@pytest.fixture
def failing(monkeypatch):
    """Errors for Services.notify to raise, one per hand-over, before it does its work."""
    errors: list[Exception] = []
    notify = Services.notify

    def failing_notify(self, notifications):
        if errors:
            raise errors.pop()
        return notify(self, notifications)
    monkeypatch.setattr(Services, "notify", failing_notify)
    return errors


def steps(env) -> list[dict]:
    return env.dv.rows("sdkmessageprocessingstep")


def registered(env, url: str, tables):
    registrar = next(h.registrar for h in env.services.webhook_registrars() if h.registrar.side is Side.CRM)
    return registrar, registrar.register(tables, url, env.services.webhook_key(Side.CRM, create=True))


def test_register_is_idempotent_recreates_what_is_missing_and_remove_removes_everything(env, served):
    tables = hookable_tables(env.services.catalogs.current(), Side.CRM)
    assert "account" in tables
    registrar, hooks = registered(env, served, tables)
    assert [h.state for h in hooks] == [HookState.CREATED] * (1 + 3 * len(tables))
    endpoint = env.dv.rows("serviceendpoint")[0]
    key = env.services.webhook_key(Side.CRM)
    assert (endpoint["url"], endpoint["contract"], endpoint["authtype"]) == (served, 8, 5)
    assert endpoint["authvalue"] == f'<settings><setting name="x-bcsync-key" value="{key}" /></settings>'
    assert len(steps(env)) == 3 * len(tables)
    assert {(s["stage"], s["mode"], s["eventhandler"]) for s in steps(env)} == {(40, 1, endpoint["serviceendpointid"])}
    # updates post only when a column bcsync reads changed, where the mappings say which; else every update
    filtering = {s["name"]: s["filteringattributes"] for s in steps(env)}
    columns = update_columns(env.services.catalogs.current())
    assert filtering["bcsync: Update of systemuser"] == ",".join(columns["systemuser"])
    assert filtering["bcsync: Update of account"] is None and filtering["bcsync: Create of systemuser"] is None
    ids = sorted(s["sdkmessageprocessingstepid"] for s in steps(env))

    # twice: nothing new, nothing changed
    again = registrar.register(tables, served, key)
    assert {h.state for h in again} == {HookState.ACTIVE}
    assert sorted(s["sdkmessageprocessingstepid"] for s in steps(env)) == ids
    assert len(env.dv.rows("serviceendpoint")) == 1

    # a step deleted in Sales is made again, and only that one
    gone = next(s for s in steps(env) if s["name"] == "bcsync: Update of account")
    env.dv.delete("sdkmessageprocessingstep", gone["sdkmessageprocessingstepid"])
    again = registrar.register(tables, served, key)
    assert [(h.table, h.detail) for h in again if h.state is HookState.CREATED] == [("account", "Update")]
    assert len(steps(env)) == 3 * len(tables)

    # a step disabled in Sales, or made synchronous, is brought back in line
    changed = next(s for s in steps(env) if s["name"] == "bcsync: Create of account")
    env.dv.update("sdkmessageprocessingstep", changed["sdkmessageprocessingstepid"], {"statecode": 1, "mode": 0})
    again = registrar.register(tables, served, key)
    assert [(h.table, h.detail) for h in again if h.state is HookState.RENEWED] == [("account", "Create")]
    fixed = env.dv.get("sdkmessageprocessingstep", changed["sdkmessageprocessingstepid"])
    assert (fixed["statecode"], fixed["mode"]) == (0, 1)

    # a table no longer wanted loses its steps; what is registered reads back
    fewer = [t for t in tables if t != "contact"]
    again = registrar.register(fewer, served, key)
    assert sorted((h.table, h.detail) for h in again if h.state is HookState.REMOVED) == \
        [("contact", "Create"), ("contact", "Delete"), ("contact", "Update")]
    listed = registrar.hooks(served)
    assert listed[0].table == "" and listed[0].state is HookState.ACTIVE
    assert sorted((h.table, h.detail) for h in listed[1:]) == sorted((t, m) for t in fewer
                                                                     for m in ("Create", "Update", "Delete"))

    removed = registrar.remove(served)
    assert {h.state for h in removed} == {HookState.REMOVED} and len(removed) == 1 + 3 * len(fewer)
    assert steps(env) == [] and env.dv.rows("serviceendpoint") == []
    assert registrar.hooks(served) == [] and registrar.remove(served) == []


def test_a_refused_registration_is_reported_with_the_reason(env, served):
    env.dv.revoke_privileges(env.stack.ids.integration_user_id, ["prvCreateServiceEndpoint"])
    registrar, hooks = registered(env, served, ["account"])
    assert [(h.table, h.state) for h in hooks] == [("", HookState.FAILED)]
    assert "prvCreateServiceEndpoint" in hooks[0].detail
    assert env.dv.rows("serviceendpoint") == [] and steps(env) == []


def test_rows_changed_in_sales_reach_the_receiver_as_notifications(env, served):
    registered(env, served, ["account"])
    user = env.stack.ids.user_systemuser_id
    account = env.dv.create("account", {"name": "Posted"}, as_user=user)
    wait_for(lambda: notified(env) == {account: "created"}, what="the creation")
    env.dv.update("account", account, {"telephone1": "555-0100"}, as_user=user)
    wait_for(lambda: notified(env) == {account: "updated"}, what="the update")
    env.dv.delete("account", account)
    wait_for(lambda: notified(env) == {account: "deleted"}, what="the deletion")
    wait_for(lambda: {job.status for job in env.dv.webhooks.jobs} == {"succeeded"}, what="2xx answers")
    assert any(report.run.kind is RunKind.NOTIFIED for report in env.services.job_log())


def test_bcsyncs_own_changes_are_dropped(env, served):
    registered(env, served, ["account"])
    webhooks = env.dv.webhooks
    webhooks.auto = False
    try:
        env.dv.create("account", {"name": "Written by bcsync"}, as_user=env.stack.ids.integration_user_id)
        assert webhooks.deliver() == 1
    finally:
        webhooks.auto = True
    assert webhooks.jobs[-1].status == "succeeded" and notified(env) == {}


def test_the_receiver_refuses_a_wrong_key_and_a_malformed_context(env, served):
    key = env.services.webhook_key(Side.CRM, create=True)
    assert post(served, execution_context(), None)[0] == 401
    assert post(served, execution_context(), key[:-1] + ("x" if key[-1] != "x" else "y"))[0] == 401
    assert notified(env) == {}

    status, answer = post(served, b"{not json", key)
    assert (status, answer["field"]) == (400, "body") and "not JSON" in answer["error"]
    for field, value in (("MessageName", None), ("PrimaryEntityName", 7), ("PrimaryEntityId", "not-a-guid")):
        status, answer = post(served, execution_context(**{field: value}), key)
        assert (status, answer["field"]) == (400, field) and field in answer["error"]
    assert post(served, execution_context(MessageName="Assign"), key) == (202, {"ignored": "message Assign"})
    assert notified(env) == {}

    row = str(uuid.uuid4())
    status, answer = post(served, execution_context(PrimaryEntityId=row.upper()), key)
    assert (status, answer["notifications"]) == (202, 1)
    assert notified(env) == {row: "updated"}


def test_a_transient_failure_answers_503_and_dataverse_posts_again(env, served, failing):
    registered(env, served, ["account"])
    webhooks = env.dv.webhooks
    webhooks.auto, webhooks.retry_seconds = False, 0.0
    try:
        failing.append(ServiceUnavailableError("Table Storage is down"))
        account = env.dv.create("account", {"name": "Later"}, as_user=env.stack.ids.user_systemuser_id)
        assert webhooks.deliver() == 2  # 503, then accepted
    finally:
        webhooks.auto, webhooks.retry_seconds = True, 1.0
    job = webhooks.jobs[-1]
    assert job.status == "succeeded" and job.errors[0].startswith("503")
    assert notified(env) == {account: "created"}


def test_any_failure_on_bcsyncs_side_is_a_503_and_a_missing_key_too(env, served, failing, caplog):
    assert post(served, execution_context(), "anything")[0] == 503  # no key stored: bcsync's to fix, Dataverse retries
    assert "no webhook key is stored" in caplog.text
    key = env.services.webhook_key(Side.CRM, create=True)
    assert post(served, execution_context(), env.services.webhook_key(Side.BC, create=True))[0] == 401  # the other service's
    for failure in (ConfigurationError("Table Storage refused"), RuntimeError("a bug")):
        failing.append(failure)
        status, answer = post(served, execution_context(), key)
        assert status == 503, failure
    assert notified(env) == {}


def test_a_failing_whoami_hands_the_notification_over(env, served, monkeypatch):
    key = env.services.webhook_key(Side.CRM, create=True)
    monkeypatch.setattr(env.services.engine.crm, "_whoami", None)  # not asked yet in this process

    def whoami(self):
        raise ServiceUnavailableError("Dataverse: WhoAmI timed out")
    monkeypatch.setattr(DataverseClient, "whoami", whoami)
    row = str(uuid.uuid4())
    assert post(served, execution_context(PrimaryEntityId=row), key)[0] == 202
    assert notified(env) == {row: "updated"}


def endpoint_of(env, description: str) -> dict:
    return next(e for e in env.dv.rows("serviceendpoint") if e["description"] == description)


def test_the_timer_recreates_what_is_missing_and_enables_steps_again_and_register_brings_the_rest_in_line(env, served):
    env.services.register_webhooks()
    endpoint = env.dv.rows("serviceendpoint")[0]
    env.dv.update("serviceendpoint", endpoint["serviceendpointid"], {"description": "edited by hand"})
    synchronous = next(s for s in steps(env) if s["name"] == "bcsync: Create of account")
    env.dv.update("sdkmessageprocessingstep", synchronous["sdkmessageprocessingstepid"], {"mode": 0})
    disabled = next(s for s in steps(env) if s["name"] == "bcsync: Delete of account")
    env.dv.update("sdkmessageprocessingstep", disabled["sdkmessageprocessingstepid"], {"statecode": 1, "statuscode": 2})
    columns = next(s for s in steps(env) if s["name"] == "bcsync: Update of contact")
    env.dv.update("sdkmessageprocessingstep", columns["sdkmessageprocessingstepid"], {"filteringattributes": "fax"})
    gone = next(s for s in steps(env) if s["name"] == "bcsync: Update of account")
    env.dv.delete("sdkmessageprocessingstep", gone["sdkmessageprocessingstepid"])
    status = env.services.webhook_status()["hooks"]
    assert sorted((h["table"], h["detail"], h["state"]) for h in status if h["state"] != "active") == [
        ("account", "Create", "stale"), ("account", "Delete", "stale"), ("account", "Update", "missing"),
        ("contact", "Update", "stale")]

    renewed = env.services.renew_webhooks()
    assert sorted((h["table"], h["detail"], h["state"]) for h in renewed["hooks"]
                  if h["side"] == "crm" and h["state"] != "active") == [
        ("account", "Create", "renewed"), ("account", "Delete", "renewed"), ("account", "Update", "created")]
    step = env.dv.get("sdkmessageprocessingstep", synchronous["sdkmessageprocessingstepid"])
    assert step["mode"] == 1  # a synchronous step would have users' saves wait on the receiver
    step = env.dv.get("sdkmessageprocessingstep", disabled["sdkmessageprocessingstepid"])
    assert (step["statecode"], step["statuscode"]) == (0, 1)
    assert endpoint_of(env, "edited by hand")  # the rest is not written by the timer
    assert env.dv.get("sdkmessageprocessingstep", columns["sdkmessageprocessingstepid"])["filteringattributes"] == "fax"

    env.services.register_webhooks()
    assert [e["description"] for e in env.dv.rows("serviceendpoint")] == [
        "bcsync: changes in Sales start targeted jobs"]
    assert env.dv.get("sdkmessageprocessingstep", columns["sdkmessageprocessingstepid"])["filteringattributes"] != "fax"
    assert {h["state"] for h in env.services.webhook_status()["hooks"] if h["side"] == "crm"} == {"active"}


def test_the_timer_removes_nothing_and_an_explicit_registration_removes_what_is_no_longer_wanted(env, served):
    registrar, _ = registered(env, served, ["account", "contact"])
    key = env.services.webhook_key(Side.CRM)
    assert {h.state for h in registrar.register(["account"], served, key, renewing=True)} == {HookState.ACTIVE}
    assert len(steps(env)) == 6
    assert [h.table for h in registrar.register(["account"], served, key) if h.state is HookState.REMOVED] == [
        "contact"] * 3
    assert len(steps(env)) == 3


def test_an_endpoint_at_an_earlier_url_is_moved_and_remove_finds_it(env, served):
    env.services.register_webhooks()
    [earlier] = env.dv.rows("serviceendpoint")
    assert earlier["url"] == served
    moved = served.replace("127.0.0.1", "localhost")
    env.configure(BCSYNC_WEBHOOK_URL=moved.removesuffix(f"/api/{CRM_ROUTE}"))
    status = [h for h in env.services.webhook_status()["hooks"] if h["side"] == "crm" and h["detail"] ==
              "service endpoint"]
    assert [h["state"] for h in status] == ["active"]  # the URL registered last is the one shown
    registrar = next(h.registrar for h in env.services.webhook_registrars() if h.registrar.side is Side.CRM)
    assert [h.state for h in registrar.hooks(moved, env.services.webhook_key(Side.CRM))][0] is HookState.STALE
    env.services.register_webhooks()
    [endpoint] = env.dv.rows("serviceendpoint")  # one endpoint, posting to the new URL: never two posts per change
    assert (endpoint["serviceendpointid"], endpoint["url"]) == (earlier["serviceendpointid"], moved)
    # one left at an earlier URL (as registered before endpoints were named for the deployment) is removed
    env.dv.create("serviceendpoint", {k: earlier[k] for k in ("contract", "authtype", "authvalue", "messageformat")} |
                  {"name": earlier["name"], "url": served, "description": "earlier"})
    env.services.register_webhooks()
    assert [e["url"] for e in env.dv.rows("serviceendpoint")] == [moved]
    env.dv.create("serviceendpoint", {k: earlier[k] for k in ("contract", "authtype", "authvalue", "messageformat")} |
                  {"name": earlier["name"], "url": served, "description": "earlier"})
    env.services.remove_webhooks()
    assert env.dv.rows("serviceendpoint") == [] and steps(env) == []


def test_a_second_endpoint_from_a_raced_registration_is_removed_with_its_steps(env, served):
    registrar, _ = registered(env, served, ["account"])
    first = env.dv.rows("serviceendpoint")[0]
    env.dv.create("serviceendpoint", {k: first[k] for k in (
        "name", "url", "contract", "authtype", "authvalue", "messageformat")} | {"description": "the twin"})
    registrar.register(["account"], served, env.services.webhook_key(Side.CRM))
    [kept] = env.dv.rows("serviceendpoint")  # one is kept (the oldest), the other removed with its steps
    assert {s["eventhandler"] for s in steps(env)} == {kept["serviceendpointid"]} and len(steps(env)) == 3
