"""The Functions entry points, called directly as the host would call them (Core Tools cannot run here).

Messages travel through Azurite; the queue trigger receives the body the way the host hands it
over: base64-decoded from the raw queue message our code sent.
"""

from __future__ import annotations

import base64
import json

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

import function_app
from shared.settings import Settings
from shared.wiring import build_services
from sync.runs import RunStatus
from tests.support import functions_of, rewind_schedules


def user_function(name):
    return getattr(function_app, name).build().get_user_function()


@pytest.fixture
def services(isolated, monkeypatch):
    services = build_services(Settings.load(environ=isolated))
    monkeypatch.setattr(function_app, "_services", services)
    return services


def deliver_all(services, limit=50):
    """Do what the host does: take raw messages, base64-decode them, call the queue trigger."""
    raw = services.storage_account.queue_client(services.settings.queue_name)
    trigger = user_function("run_job")
    delivered = 0
    for _ in range(limit):
        messages = list(raw.receive_messages(max_messages=16, visibility_timeout=30))
        if not messages:
            return delivered
        for m in messages:
            body = base64.b64decode(m.content, validate=True)  # the host refuses what is not base64
            trigger(QueueMessage(id=m.id, body=body, dequeue_count=m.dequeue_count, pop_receipt=m.pop_receipt))
            raw.delete_message(m)
            delivered += 1
    raise AssertionError("queue never emptied")


def http(method, url, body=b"", route_params=None):
    return func.HttpRequest(method, url, headers={"Content-Type": "application/json"}, params={},
                            route_params=route_params or {}, body=body)


def test_the_app_indexes_its_functions():
    functions = {f.get_function_name(): f for f in functions_of(function_app.app)}
    assert set(functions) >= {"scheduled_sync", "run_job", "start_full_sync", "run_status", "list_runs"}
    bindings = json.loads(functions["run_job"].get_function_json())["bindings"]
    assert bindings[0]["type"] == "queueTrigger" and bindings[0]["queueName"] == "%BCSYNC_QUEUE_NAME%"
    timer = json.loads(functions["scheduled_sync"].get_function_json())["bindings"][0]
    assert timer["schedule"] == "%BCSYNC_SCHEDULE%"


def test_full_sync_over_http_runs_through_the_queue_trigger(services, stack):
    stack.dataverse.seed("systemuser", [{"fullname": "Alicia Thornber", "islicensed": True,
                                         "internalemailaddress": "alicia@contoso.com"}])
    stack.business_central.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    response = user_function("start_full_sync")(http("POST", "https://bcsync.example/api/fullsync"))
    assert response.status_code == 202
    body = json.loads(response.get_body())
    assert body["status_url"] == f"https://bcsync.example/api/runs/{body['run']}"
    assert response.headers["Location"] == body["status_url"]

    assert deliver_all(services) >= 3           # mappings with nothing to synchronise finish at once
    status = user_function("run_status")(http("GET", body["status_url"], route_params={"run_id": body["run"]}))
    report = json.loads(status.get_body())
    assert report["status"] == "done"
    assert {j["job"]: j["status"] for j in report["jobs"]}["CUSTOMER:to-crm"] == "done"
    assert report["totals"]["inserted"] >= 2
    assert [a["name"] for a in stack.dataverse.rows("account")] == ["Adatum"]


def test_full_sync_of_some_mappings_and_bad_requests(services):
    response = user_function("start_full_sync")(http("POST", "https://x/api/fullsync", b'{"mappings": ["SALESPEOPLE"]}'))
    assert response.status_code == 202
    report = services.report(json.loads(response.get_body())["run"])
    assert [j.job_id for j in report.jobs] == ["SALESPEOPLE:from-crm"]
    bad = user_function("start_full_sync")(http("POST", "https://x/api/fullsync", b'{"mappings": ["NOPE"]}'))
    assert bad.status_code == 400 and "NOPE" in json.loads(bad.get_body())["error"]
    garbage = user_function("start_full_sync")(http("POST", "https://x/api/fullsync", b"{not json"))
    assert garbage.status_code == 400
    missing = user_function("run_status")(http("GET", "https://x/api/runs/nope", route_params={"run_id": "nope"}))
    assert missing.status_code == 404


def test_timer_starts_a_scheduled_run_but_not_while_one_is_going(services):
    user_function("scheduled_sync")(TimerRequest(past_due=False))
    [run] = services.runs.list_runs()
    assert run.kind.value == "scheduled" and run.trigger == "timer"
    user_function("scheduled_sync")(TimerRequest(past_due=True))
    assert len(services.runs.list_runs()) == 1   # the first one has not finished yet
    deliver_all(services)
    assert services.runs.get(run.run_id).status is RunStatus.DONE
    user_function("scheduled_sync")(TimerRequest(past_due=True))
    assert len(services.runs.list_runs()) == 1   # every mapping just ran: nothing is due
    rewind_schedules(services, 31)
    user_function("scheduled_sync")(TimerRequest(past_due=True))
    runs = services.runs.list_runs()
    assert len(runs) == 2 and runs[0].trigger == "timer (past due)"
    listed = json.loads(user_function("list_runs")(http("GET", "https://x/api/runs")).get_body())
    assert [r["run"] for r in listed["runs"]] == [r.run_id for r in runs]


def test_health_answers_200_when_every_check_passes_and_503_with_the_problems(services, stack):
    healthy = user_function("health")(http("GET", "https://bcsync.example/api/health"))
    assert healthy.status_code == 200 and json.loads(healthy.get_body())["healthy"] is True
    stack.business_central.unpublished = {"ItemCard"}
    stack.dataverse.revoke_privileges(stack.ids.integration_user_id, ["prvCreateProduct"])
    sick = user_function("health")(http("GET", "https://bcsync.example/api/health"))
    assert sick.status_code == 503
    body = json.loads(sick.get_body())
    assert body["healthy"] is False
    assert {p["check"] for p in body["problems"]} == {"Business Central page ItemCard", "Dataverse table product"}
    assert all(p["fix"] for p in body["problems"])
