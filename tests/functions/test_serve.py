"""`bcsync serve`: the function app's HTTP routes over real HTTP, against the local stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import function_app
from bcsync import host
from shared.settings import Settings
from shared.wiring import build_services
from tests.support import call


@pytest.fixture
def served(isolated, monkeypatch):
    """The host on a free port in this process, with the app wired to the test's stack; its base URL."""
    monkeypatch.setattr(function_app, "_services", build_services(Settings.load(environ=isolated)))
    with host.serving(function_app.app) as url:
        yield url


def test_json_routes_answer_over_http_with_status_headers_and_body(served):
    status, headers, body = call("GET", f"{served}/api/mappings")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert int(headers["Content-Length"]) == len(body)
    assert "CUSTOMER" in {m["name"] for m in json.loads(body)["mappings"]}

    # route parameters, a request body and a method other than GET reach the function
    status, _, body = call("PATCH", f"{served}/api/mappings/CUSTOMER", {"interval_minutes": 45})
    assert status == 200 and json.loads(body)["interval_minutes"] == 45
    status, _, body = call("GET", f"{served}/api/mappings/CUSTOMER")
    assert json.loads(body)["interval_minutes"] == 45
    status, _, body = call("GET", f"{served}/api/mappings/PAYMENT%20TERMS")   # route values arrive decoded
    assert status == 200 and json.loads(body)["name"] == "PAYMENT TERMS"

    # the app's own answers keep their status, and a 202's Location names this host
    status, _, body = call("GET", f"{served}/api/runs/nosuch")
    assert status == 404 and "There is no run nosuch" in json.loads(body)["error"]
    status, _, body = call("GET", f"{served}/api/runs?limit=1&mapping=NOPE")  # query parameters reach it
    assert status == 400 and json.loads(body)["field"] == "mapping"
    status, headers, body = call("POST", f"{served}/api/fullsync", {"mappings": ["CUSTOMER"]})
    assert status == 202 and headers["Location"] == f"{served}/api/runs/{json.loads(body)['run']}"


def test_unknown_paths_and_methods_are_not_found(served):
    assert call("GET", f"{served}/api/no-such-route")[0] == 404
    assert call("GET", f"{served}/elsewhere")[0] == 404
    assert call("PUT", f"{served}/api/mappings")[0] == 404   # a route with other methods


def test_literal_segments_win_over_parameters():
    class Fake:
        def __init__(self, name, route):
            self.name, self.route = name, route

        def is_http_function(self):
            return True

        def get_function_name(self):
            return self.name

        def get_trigger(self):
            return type("T", (), {"get_dict_repr": lambda _: {"route": self.route, "methods": ["GET"]}})()

    routes = host.http_routes([Fake("any", "errors/{id}"), Fake("retry", "errors/retry"),
                               Fake("rest", "files/{*path}")])
    assert host.find(routes, "GET", "/api/errors/retry")[0].function.name == "retry"
    assert host.find(routes, "GET", "/api/errors/x1") == (routes[1], {"id": "x1"})
    assert host.find(routes, "GET", "/api/files/a/b.png")[1] == {"path": "a/b.png"}


def test_bcsync_serve_starts_from_the_command_line(stack, isolated, tmp_path):
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": isolated}))
    command = [str(Path(sys.executable).parent / "bcsync"), "--settings", str(settings), "serve", "--port", "0",
               "--no-worker"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        try:
            line = process.stdout.readline()
            assert "function keys are not checked" in line, line
            base = line.split()[2].rstrip("/").removesuffix("/api")
            status, _, body = call("GET", f"{base}/api/mappings")
            assert status == 200 and json.loads(body)["mappings"]
        finally:
            process.terminate()
