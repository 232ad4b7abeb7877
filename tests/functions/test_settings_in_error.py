"""With settings in error the function app still loads; every function answers with the problems, once each: an
HTTP route with 503 and the settings to fix, the timer and the queue trigger with one log line, no traceback."""

from __future__ import annotations

import json
import logging

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

import function_app
from tests.support import functions_of


@pytest.fixture
def misconfigured(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no local.settings.json here
    monkeypatch.setenv("BCSYNC_PAGE_SIZE", "0")
    monkeypatch.setenv("BCSYNC_DATAVERSE_URL", "not a url")
    monkeypatch.setattr(function_app, "_services", None)


def user_function(name):
    return getattr(function_app, name).build().get_user_function()


def test_every_http_route_answers_503_naming_the_settings(misconfigured):
    routes = [f for f in functions_of(function_app.app)
              if json.loads(f.get_function_json())["bindings"][0]["type"] == "httpTrigger"]
    assert len(routes) >= 15
    for f in routes:
        answer = f.get_user_function()(func.HttpRequest("POST", "https://x/api/any", body=b"{}",
                                                        route_params={"name": "CUSTOMER", "mapping": "CUSTOMER"}))
        assert answer.status_code == 503, (f.get_function_name(), answer.get_body())
        if answer.mimetype == "text/html":  # a status page names them in a list
            page = answer.get_body().decode()
            assert "BCSYNC_PAGE_SIZE" in page and "&#x27;not a url&#x27; is not a URL" in page
            continue
        body = json.loads(answer.get_body())
        assert set(body["settings"]) == {"BCSYNC_PAGE_SIZE", "BCSYNC_DATAVERSE_URL"}
        assert "'not a url' is not a URL" in body["settings"]["BCSYNC_DATAVERSE_URL"]


def test_the_timer_and_the_queue_trigger_log_one_line(misconfigured, caplog):
    with caplog.at_level(logging.ERROR, logger="bcsync"):
        user_function("scheduled_sync")(TimerRequest(past_due=False))
        user_function("run_job")(QueueMessage(id="1", body=b'{"run": "r", "job": "j"}', dequeue_count=1))
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["no scheduled run started", "job message not done"]
    assert all(r.exc_info is None and "BCSYNC_PAGE_SIZE" in r.getMessage() for r in caplog.records)
