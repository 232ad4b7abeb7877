"""The Dataverse simulator's webhooks: service endpoints, SDK messages, message filters and steps through the Web API,
and the execution contexts posted over real HTTP after a write commits."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.simulators.test_dataverse_simulator import (APP_USER, batch_body, dv, entity_id, env,  # noqa: F401
                                                       error_code, http_part)


class Receiver:
    """An HTTP server on loopback that records every post and answers with the statuses it is given (then 200)."""

    def __init__(self):
        self.posts: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": json.loads(body)})
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/hook"


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.server.shutdown()


@pytest.fixture
def hooks(env, dv):
    """Deliveries in the test's thread only, and at once (the next test's reset restores the knobs)."""
    webhooks = env.sim.webhooks
    webhooks.auto, webhooks.delay_seconds, webhooks.retry_seconds = False, 0.0, 0.0
    return webhooks


def ids_of(dv, entity_set: str, key: str, filter_: str) -> list[str]:
    answer = dv.get(f"{entity_set}?$select={key}&$filter={filter_}")
    assert answer.status_code == 200, answer.text
    return [row[key] for row in answer.json()["value"]]


def register(dv, url: str, message: str, table: str, *, authtype=5,
             authvalue='<settings><setting name="x-test-key" value="s3cret" /></settings>', **step) -> tuple[str, str]:
    """An endpoint and an asynchronous post-operation step for `message` on `table`; (endpoint id, step id)."""
    created = dv.post("serviceendpoints", {"name": "test hook", "url": url, "contract": 8, "authtype": authtype,
                                           "authvalue": authvalue, "messageformat": 2})
    assert created.status_code == 204, created.text
    endpoint = entity_id(created)
    message_id = ids_of(dv, "sdkmessages", "sdkmessageid", f"name eq '{message}'")[0]
    filter_id = ids_of(dv, "sdkmessagefilters", "sdkmessagefilterid",
                       f"primaryobjecttypecode eq '{table}' and _sdkmessageid_value eq {message_id}")[0]
    created = dv.post("sdkmessageprocessingsteps", {
        "name": f"{message} of {table}", "stage": 40, "mode": 1, "rank": 1, "supporteddeployment": 0,
        "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint})",
        "sdkmessageid@odata.bind": f"/sdkmessages({message_id})",
        "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})", **step})
    assert created.status_code == 204, created.text
    return endpoint, entity_id(created)


def test_messages_filters_endpoints_and_steps_are_tables_of_the_web_api(dv):
    assert sorted(ids_of(dv, "sdkmessages", "name", "name eq 'Create' or name eq 'Update' or name eq 'Delete'")) == \
        ["Create", "Delete", "Update"]
    assert len(ids_of(dv, "sdkmessagefilters", "sdkmessagefilterid", "primaryobjecttypecode eq 'account'")) == 3
    endpoint, step = register(dv, "https://example.invalid/hook", "Update", "account",
                              filteringattributes="name,telephone1")
    read = dv.get(f"serviceendpoints({endpoint})?$select=name,url,contract,authtype,authvalue").json()
    assert (read["url"], read["contract"], read["authtype"]) == ("https://example.invalid/hook", 8, 5)
    assert read["authvalue"] is None  # written, never read back
    found = dv.get(f"sdkmessageprocessingsteps?$select=name,stage,mode,filteringattributes,statecode"
                   f"&$filter=_eventhandler_value eq {endpoint}").json()["value"]
    assert [(s["sdkmessageprocessingstepid"], s["stage"], s["mode"], s["filteringattributes"], s["statecode"])
            for s in found] == [(step, 40, 1, "name,telephone1", 0)]
    assert dv.delete(f"sdkmessageprocessingsteps({step})").status_code == 204
    assert dv.delete(f"serviceendpoints({endpoint})").status_code == 204
    assert ids_of(dv, "serviceendpoints", "serviceendpointid", f"serviceendpointid eq {endpoint}") == []


def test_a_bad_bind_is_refused_as_the_service_refuses_it(dv):
    account = entity_id(dv.post("accounts", {"name": "Not a message"}))
    wrong_set = dv.post("sdkmessageprocessingsteps", {"name": "x", "stage": 40,
                                                      "sdkmessageid@odata.bind": f"/accounts({account})"})
    assert wrong_set.status_code == 400 and "not valid for the navigation property" in wrong_set.json()["error"]["message"]
    missing = dv.post("sdkmessageprocessingsteps", {
        "name": "x", "stage": 40, "sdkmessageid@odata.bind": "/sdkmessages(00000000-0000-0000-0000-00000000beef)"})
    assert missing.status_code == 404 and error_code(missing) == "0x80040217"


def test_create_update_and_delete_post_the_execution_context_after_the_commit(dv, hooks, receiver):
    register(dv, receiver.url, "Create", "account")
    _, update_step = register(dv, receiver.url, "Update", "account", filteringattributes="telephone1")
    register(dv, receiver.url, "Delete", "account")
    account = entity_id(dv.post("accounts", {"name": "Contoso", "telephone1": "555-0100"}))
    assert receiver.posts == []  # asynchronous: nothing until the job runs
    assert hooks.deliver() == 1
    post = receiver.posts[-1]
    context, headers = post["body"], post["headers"]
    assert (context["MessageName"], context["PrimaryEntityName"], context["PrimaryEntityId"]) == \
        ("Create", "account", account)
    assert (context["UserId"], context["InitiatingUserId"], context["Stage"], context["Mode"], context["Depth"]) == \
        (APP_USER, APP_USER, 40, 1, 1)
    target = context["InputParameters"][0]
    assert target["key"] == "Target" and target["value"]["LogicalName"] == "account"
    assert {"key": "name", "value": "Contoso"} in target["value"]["Attributes"]
    assert context["OutputParameters"] == [{"key": "id", "value": account}]
    assert context["OrganizationId"] == dv.env.sim.organization_id and context["PostEntityImages"] == []
    assert (headers["x-test-key"], headers["x-ms-dynamics-entity-name"], headers["x-ms-dynamics-request-name"],
            headers["x-request-id"]) == ("s3cret", "account", "Create", context["RequestId"])
    assert headers["x-ms-correlation-request-id"] == context["CorrelationId"]

    # an update naming none of the step's filtering attributes posts nothing; one naming it posts
    dv.patch(f"accounts({account})", {"name": "Contoso Ltd"})
    assert hooks.deliver() == 0
    dv.patch(f"accounts({account})", {"telephone1": "555-0199"})
    assert hooks.deliver() == 1
    context = receiver.posts[-1]["body"]
    assert (context["MessageName"], context["OwningExtension"]["Id"]) == ("Update", update_step)

    dv.delete(f"accounts({account})")
    assert hooks.deliver() == 1
    context = receiver.posts[-1]["body"]
    assert context["MessageName"] == "Delete"
    assert context["InputParameters"][0]["value"]["Id"] == account
    assert context["InputParameters"][0]["value"]["__type"].startswith("EntityReference:")


def test_bulk_writes_post_one_context_per_row_and_a_rollback_posts_none(dv, hooks, receiver):
    register(dv, receiver.url, "Create", "contact", authtype=4, authvalue="the-code")
    answer = dv.post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": f"Bulk {i}"} for i in range(3)]})
    assert answer.status_code == 200, answer.text
    assert hooks.deliver() == 3
    assert sorted(p["body"]["PrimaryEntityId"] for p in receiver.posts) == sorted(answer.json()["Ids"])
    assert all(parse_qs(urlsplit(p["path"]).query) == {"code": ["the-code"]} for p in receiver.posts)

    refused = dv.post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "Fine"},
        {"@odata.type": "Microsoft.Dynamics.CRM.contact", "nosuchcolumn": 1}]})
    assert refused.status_code == 400
    assert hooks.deliver() == 0
    later = entity_id(dv.post("contacts", {"lastname": "Committed"}))  # the rolled-back row stays untold after it
    assert hooks.deliver() == 1 and receiver.posts[-1]["body"]["PrimaryEntityId"] == later


def test_update_multiple_and_a_batch_post_per_row(env, dv, hooks, receiver):
    register(dv, receiver.url, "Update", "account")
    ids = env.sim.seed("account", [{"name": f"Row {i}"} for i in range(4)])
    assert hooks.deliver() == 0  # creates: no Create step
    answer = dv.post("accounts/Microsoft.Dynamics.CRM.UpdateMultiple", {"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": i, "telephone1": "555"} for i in ids[:2]]})
    assert answer.status_code == 204, answer.text
    changeset = batch_body("cs", [http_part(f"PATCH {env.api}/accounts({i}) HTTP/1.1", {"telephone1": "556"},
                                            content_id=str(n)) for n, i in enumerate(ids[2:])])
    answer = dv.post("$batch", data=batch_body("b", ["Content-Type: multipart/mixed; boundary=cs\r\n\r\n" + changeset]),
                     headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert answer.status_code == 200, answer.text
    assert hooks.deliver() == 4
    assert sorted(p["body"]["PrimaryEntityId"] for p in receiver.posts) == sorted(ids)
    assert {p["body"]["MessageName"] for p in receiver.posts} == {"Update"}


def test_a_failed_post_is_retried_then_its_system_job_fails(dv, hooks, receiver):
    register(dv, receiver.url, "Create", "account")
    receiver.statuses = [503, 500, 502]
    dv.post("accounts", {"name": "Unlucky"})
    assert hooks.deliver() == 3  # retried at once (retry_seconds 0), three attempts in all
    job = hooks.jobs[-1]
    assert (job.status, job.attempts, len(job.errors)) == ("failed", 3, 3)
    receiver.statuses = [503]
    dv.post("accounts", {"name": "Lucky second time"})
    assert hooks.deliver() == 2 and hooks.jobs[-1].status == "succeeded"


def test_the_background_delivery_posts_without_being_asked(env, dv, receiver):
    register(dv, receiver.url, "Create", "account")
    dv.post("accounts", {"name": "On its own"})
    deadline = time.monotonic() + 10
    while not receiver.posts and time.monotonic() < deadline:
        time.sleep(0.02)
    assert receiver.posts and receiver.posts[0]["body"]["MessageName"] == "Create"


def test_the_admin_route_sets_how_long_the_asynchronous_service_waits_before_posting(dv, hooks, receiver):
    register(dv, receiver.url, "Create", "account")
    admin = f"{dv.env.dv_url}/_sim/webhooks"
    answer = dv.env.session.post(admin, json={"delay_seconds": 30})
    assert answer.json() == {"delay_seconds": 30.0, "retry_seconds": 0.0}
    dv.post("accounts", {"name": "Later"})
    assert hooks.deliver() == 0 and receiver.posts == []  # not due for half a minute
    assert dv.env.session.post(admin, json={"delay_seconds": 0}).json()["delay_seconds"] == 0.0
    dv.post("accounts", {"name": "Now"})
    assert hooks.deliver() == 1 and len(receiver.posts) == 1
    assert dv.env.session.post(admin, json={"delay_seconds": "soon"}).status_code == 400


def test_a_webhook_posts_to_port_80_or_443_only(env, dv, monkeypatch):
    monkeypatch.setattr(env.sim.engine, "any_webhook_port", False)  # as in Dataverse (the local stack allows any)
    endpoint = {"name": "hook", "contract": 8, "authtype": 5, "authvalue": "<settings/>", "messageformat": 2}
    refused = dv.post("serviceendpoints", {**endpoint, "url": "https://bcsync.example:8443/api/hook"})
    assert refused.status_code == 400 and "port 80" in refused.json()["error"]["message"]
    for url in ("https://bcsync.example/api/hook", "http://bcsync.example:80/api/hook"):
        created = dv.post("serviceendpoints", {**endpoint, "url": url})
        assert created.status_code == 204, created.text
    moved = dv.patch(f"serviceendpoints({entity_id(created)})", {"url": "http://127.0.0.1:7071/api/hook"})
    assert moved.status_code == 400


def test_a_context_can_be_posted_twice_and_the_latest_first(env, dv, hooks, receiver):
    register(dv, receiver.url, "Create", "account")
    hooks.duplicate, hooks.newest_first = True, True
    first = entity_id(dv.post("accounts", {"name": "First"}))
    second = entity_id(dv.post("accounts", {"name": "Second"}))
    assert hooks.deliver(at_most=1) == 1 and hooks.deliver() == 3
    assert [p["body"]["PrimaryEntityId"] for p in receiver.posts] == [second, second, first, first]
    env.sim.reset()
    assert (env.sim.webhooks.duplicate, env.sim.webhooks.newest_first, env.sim.webhooks.auto) == (False, False, True)
