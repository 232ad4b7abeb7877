"""Helpers for tests that drive real storage and the function app."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from bcsync.host import functions_of  # noqa: F401  (the tests' one index of the app's functions)


def call(method: str, url: str, body=None, raw: bytes | None = None, headers: dict | None = None):
    """One request over real HTTP (a JSON `body`, or `raw` bytes): (status, headers, body bytes), errors included."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers, answer.read()


def wait_for(condition, seconds: float = 10.0, what: str = "the change"):
    """Polls `condition` every 0.05 s until it gives something true, which it returns; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} did not arrive within {seconds} s"
        time.sleep(0.05)


def execution_context(**changes) -> dict:
    """The least of a Dataverse webhook's execution context bcsync's receiver reads (an Update of an account)."""
    return {"MessageName": "Update", "PrimaryEntityName": "account", "PrimaryEntityId": str(uuid.uuid4()),
            "UserId": str(uuid.uuid4()), "InitiatingUserId": str(uuid.uuid4()), "InputParameters": [], **changes}


def post(url: str, body, key: str | None) -> tuple[int, dict]:
    """A Dataverse execution context (or raw bytes) posted to bcsync's receiver with `key` in its x-bcsync-key
    header: the status and the JSON answer."""
    raw = body if isinstance(body, bytes) else None
    status, _, answer = call("POST", url, None if raw is not None else body, raw=raw,
                             headers={"x-bcsync-key": key} if key is not None else None)
    return status, json.loads(answer)


def rewind_schedules(services, minutes: float) -> None:
    """Make every mapping's last run look `minutes` older, as if that much time had passed."""
    for mapping, schedule in services.state.schedules().items():
        if schedule.last_run_at is not None:
            services.state.save_schedule(mapping, dataclasses.replace(
                schedule, last_run_at=schedule.last_run_at - dt.timedelta(minutes=minutes)))


class FunctionsHost:
    """Routes HTTP requests to the app's functions the way the Functions host does: by method and
    route template (`api/` prefix, `{name}` parameters), enforcing each function's key level.

    Core Tools cannot run here, so this stands in for the host's routing and key checks; the function
    bodies, bindings and auth levels are the app's own. `keys` play the host's function and master keys.
    """

    FUNCTION_KEY, MASTER_KEY = "function-key", "master-key"

    def __init__(self, app):
        self.routes = []
        for f in functions_of(app):
            if f.is_http_function():
                trigger = f.get_trigger().get_dict_repr()
                pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", trigger["route"])
                self.routes.append((re.compile(f"^/api/{pattern}$"), {str(getattr(m, "value", m)) for m in trigger["methods"]},
                                    str(getattr(trigger["authLevel"], "name", trigger["authLevel"])), f))

    def function_for(self, method: str, path: str):
        for pattern, methods, level, f in self.routes:
            found = pattern.match(path)
            if found and method.upper() in methods:
                return f, level, found.groupdict()
        return None, None, {}

    def request(self, method: str, url: str, body=None, *, key: str | None = None, headers=None, params=None):
        parts = urlsplit(url)
        f, level, route_params = self.function_for(method, parts.path)
        if f is None:
            return func.HttpResponse("", status_code=404)
        given = {"FUNCTION": {self.FUNCTION_KEY, self.MASTER_KEY}, "ADMIN": {self.MASTER_KEY}}.get(level)
        if given is not None and key not in given:
            return func.HttpResponse("", status_code=401)  # the host answers before the function runs
        data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        request = func.HttpRequest(method.upper(), f"https://bcsync.example{parts.path}", body=data,
                                   headers={"Content-Type": "application/json", **(headers or {})},
                                   params={**dict(parse_qsl(parts.query)), **(params or {})},
                                   route_params=route_params)
        return f.get_user_function()(request)
