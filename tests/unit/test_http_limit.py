"""The ApiClient's concurrency limit: never more requests in flight than the service allows, halved on a
429, grown back by successes, and held to the parallelism Dataverse recommends."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared.http import ApiClient, ConcurrencyLimit
from sync.errors import RecordError


def answer(status: int, headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response._content = b"{}"
    return response


class FakeSession:
    """Answers from a script (default 200), holding each request `hold` seconds, and records how many
    requests were in flight at once."""

    def __init__(self, hold: float = 0.01, script: list[requests.Response] | None = None):
        self.hold = hold
        self.script = list(script or [])
        self.in_flight = self.peak = self.sent = 0
        self._lock = threading.Lock()

    def request(self, method, url, **kwargs):
        with self._lock:
            self.in_flight += 1
            self.sent += 1
            self.peak = max(self.peak, self.in_flight)
            reply = self.script.pop(0) if self.script else answer(200)
        time.sleep(self.hold)
        with self._lock:
            self.in_flight -= 1
        return reply


def client(session: FakeSession, limit: ConcurrencyLimit) -> ApiClient:
    return ApiClient("Test", "https://service.example", lambda force=False: "token", session=session,
                     parse_error=lambda r: RecordError(f"HTTP {r.status_code}", status=r.status_code), limit=limit,
                     sleep=lambda seconds: None)


def test_many_threads_never_have_more_requests_in_flight_than_the_limit():
    session = FakeSession(hold=0.02)
    api = client(session, ConcurrencyLimit(5))
    with ThreadPoolExecutor(max_workers=40) as pool:
        list(pool.map(lambda i: api.get_json(f"rows/{i}"), range(200)))
    assert session.peak == 5
    assert session.sent == api.requests_sent == 200
    assert api.limit.in_flight == 0


def test_a_429_halves_the_window_and_a_run_of_successes_grows_it_back_by_one():
    limit = ConcurrencyLimit(8, grow_after=3)
    throttled = answer(429, {"Retry-After": "0"})
    limit.acquire()
    limit.release(throttled)
    assert limit.window == 4
    limit.acquire()
    limit.release(throttled)
    assert limit.window == 2
    for expected in (2, 2, 3, 3, 3, 4):
        limit.acquire()
        limit.release(answer(200))
        assert limit.window == expected
    for _ in range(50):
        limit.acquire()
        limit.release(answer(204))
    assert limit.window == 8                       # never past the service's limit
    for _ in range(5):
        limit.acquire()
        limit.release(throttled)
    assert limit.window == 1                       # never below one


def test_a_retried_429_shrinks_the_window_of_every_thread_of_the_client():
    session = FakeSession(hold=0.01, script=[answer(429, {"Retry-After": "0"})])
    api = client(session, ConcurrencyLimit(6, grow_after=1000))
    assert api.get_json("rows") == {}              # retried after the 429
    assert session.sent == 2 and api.limit.window == 3
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda i: api.get_json(f"rows/{i}"), range(60)))
    assert session.peak == 3


def test_the_dop_hint_lowers_the_window_and_caps_its_growth():
    limit = ConcurrencyLimit(52, hint_header="x-ms-dop-hint", grow_after=1)
    limit.acquire()
    limit.release(answer(200, {"x-ms-dop-hint": "8"}))
    assert (limit.ceiling, limit.window) == (8, 8)
    for _ in range(20):
        limit.acquire()
        limit.release(answer(200))
    assert limit.window == 8
    limit.acquire()
    limit.release(answer(200, {"x-ms-dop-hint": "100"}))     # more than the service allows: its limit holds
    for _ in range(60):
        limit.acquire()
        limit.release(answer(200))
    assert limit.window == 52
    limit.acquire()
    limit.release(answer(200, {"x-ms-dop-hint": "many"}))    # unreadable: ignored
    assert limit.window == 52


def test_the_dop_hint_holds_requests_in_flight_through_the_client():
    session = FakeSession(hold=0.02, script=[answer(200, {"x-ms-dop-hint": "4"})])
    api = client(session, ConcurrencyLimit(52, hint_header="x-ms-dop-hint"))
    api.get_json("first")
    with ThreadPoolExecutor(max_workers=30) as pool:
        list(pool.map(lambda i: api.get_json(f"rows/{i}"), range(120)))
    assert session.peak == 4


def test_a_request_that_got_no_answer_frees_its_slot():
    class Failing(FakeSession):
        def request(self, method, url, **kwargs):
            raise requests.exceptions.ReadTimeout("slow")

    api = client(Failing(), ConcurrencyLimit(2))
    with pytest.raises(Exception):
        api.request("POST", "rows", json={})
    assert api.limit.in_flight == 0 and api.limit.window == 2


def test_a_limit_is_at_least_one():
    with pytest.raises(ValueError):
        ConcurrencyLimit(0)


def test_a_page_s_text_keeps_bytes_that_do_not_decode_as_replacement_characters_as_its_json_would():
    reply = answer(200)
    reply._content = '{"value": [{"name": "Café '.encode() + b"\xff" + b'"}]}'
    api = client(FakeSession(hold=0, script=[reply]), ConcurrencyLimit(5))
    assert api.get_text("rows") == '{"value": [{"name": "Café \ufffd"}]}'
