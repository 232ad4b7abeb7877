"""Serving a simulator: a WSGI app on loopback over TLS, with the service's protection limits and
fault knobs in front of it."""

from __future__ import annotations

import base64
import collections
import json
import math
import random
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from werkzeug.wrappers import Response


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    resp = Response(json.dumps(body, default=str), status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


@dataclass
class Fault:
    """One injected failure: answer `status` instead of serving, `times` times; with `served_first`, the request
    is served first and its answer replaced by the fault (a gateway timing out while the service finished)."""

    status: int
    times: int = 1
    retry_after: int | None = None
    body: dict | None = None
    path_contains: str = ""
    methods: tuple[str, ...] = ()
    served_first: bool = False
    # serve the request, then break the connection instead of answering: the client cannot tell whether
    # the request was applied (a lost answer); `status` is then not used
    lose_answer: bool = False
    after: int = 0  # let this many matching requests through first (a fault in the middle of a run)


# what a random fault does (see RandomFaults)
RANDOM_FAULT_KINDS = ("throttled", "unavailable", "stall", "cut before", "cut after")


@dataclass
class RandomFaults:
    """A share (`rate`) of requests failed at random, each with one of `kinds` (RANDOM_FAULT_KINDS): a 429 with
    Retry-After, a 503, a stall of `stall_seconds` (longer than the client waits) after which the connection drops
    unserved, the connection cut before the request is served, or after it is served (the client never hears)."""

    rate: float
    stall_seconds: float = 30.0
    retry_after: int = 1
    seed: int | None = None
    kinds: tuple[str, ...] = RANDOM_FAULT_KINDS
    injected: collections.Counter = field(default_factory=collections.Counter)

    def __post_init__(self):
        if set(self.kinds) - set(RANDOM_FAULT_KINDS):
            raise ValueError(f"random fault kinds are among {', '.join(RANDOM_FAULT_KINDS)}")
        self.kinds = tuple(self.kinds)
        self._random = random.Random(self.seed)

    def pick(self) -> str | None:
        if self._random.random() >= self.rate:
            return None
        kind = self._random.choice(self.kinds)
        self.injected[kind] += 1
        return kind


class AnswerLost(ConnectionAbortedError):
    """Raised while answering a request whose answer a fault loses on purpose."""


@dataclass(frozen=True)
class Limits:
    """A service's protection limits, per user: requests in a sliding window, requests in progress at
    once (with a queue in front, or none: refused at once), and for Dataverse the execution time the
    user's requests may take in the window. The defaults of each simulator are the documented ones."""

    requests: int = 6000
    window_seconds: float = 300.0
    concurrent: int | None = None
    queue: int = 0
    queue_timeout_seconds: float = 480.0
    execution_seconds: float | None = None


@dataclass(frozen=True)
class Refusal:
    """Why protection refused a request: `reason` is one of "requests", "concurrent", "execution",
    "queue timeout"; the simulator turns it into its service's answer."""

    reason: str
    retry_after: int | None


class _UserUsage:
    def __init__(self):
        self.times: collections.deque[float] = collections.deque()
        self.durations: collections.deque[tuple[float, float]] = collections.deque()
        self.active = 0
        self.waiting = 0


class ServiceProtection:
    """Enforces `Limits` per user (the token's object id), as both services do: over the window's
    request count or execution time the answer is 429 with the seconds until enough of the window has
    passed; over the concurrency, a request waits in the queue or, when the queue is full, is refused."""

    def __init__(self, limits: Limits):
        self.default = limits
        self.limits = limits
        self._users: dict[str, _UserUsage] = {}
        self._lock = threading.Condition()
        self.refused = 0

    def reset(self, limits: Limits | None = None) -> None:
        with self._lock:
            self.limits = limits or self.default
            self._users.clear()
            self.refused = 0

    def admit(self, user: str) -> Refusal | None:
        limits, now = self.limits, time.monotonic()
        with self._lock:
            usage = self._users.setdefault(user, _UserUsage())
            start = now - limits.window_seconds
            while usage.times and usage.times[0] <= start:
                usage.times.popleft()
            while usage.durations and usage.durations[0][0] <= start:
                usage.durations.popleft()
            if len(usage.times) >= limits.requests:
                return self._refuse("requests", usage.times[0] + limits.window_seconds - now)
            if limits.execution_seconds is not None and sum(d for _, d in usage.durations) >= limits.execution_seconds:
                return self._refuse("execution", usage.durations[0][0] + limits.window_seconds - now)
            if limits.concurrent is not None and usage.active >= limits.concurrent:
                if usage.waiting >= limits.queue:
                    return self._refuse("concurrent", 1)
                usage.waiting += 1
                deadline = now + limits.queue_timeout_seconds
                while usage.active >= limits.concurrent:
                    if not self._lock.wait(timeout=max(0.0, deadline - time.monotonic())):
                        usage.waiting -= 1
                        return self._refuse("queue timeout", None)
                usage.waiting -= 1
            usage.times.append(now)
            usage.active += 1
        return None

    def release(self, user: str, started: float) -> None:
        with self._lock:
            usage = self._users[user]
            usage.active -= 1
            usage.durations.append((started, time.monotonic() - started))
            self._lock.notify_all()

    def _refuse(self, reason: str, seconds: float | None) -> Refusal:
        self.refused += 1
        return Refusal(reason, None if seconds is None else max(1, math.ceil(seconds)))


def caller(environ) -> str:
    """Who a request counts against: the bearer token's object id (not verified here; the service
    refuses a bad token after admission, as the real ones count every request)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    try:
        payload = authorization.split(" ", 1)[1].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("oid") or claims.get("appid") or "anonymous")
    except (IndexError, ValueError):
        return "anonymous"


@dataclass
class FaultKnobs:
    """What a test or `make run` can turn on: latency, scripted failures, a request log, and the
    protection limits (the service's documented ones unless a test lowers them).

    Faults are scripted so that a test asserts exact behaviour; `random` (the soak's) fails a share of requests
    at random instead, after the scripted ones.
    """

    latency_ms: int = 0
    faults: list[Fault] = field(default_factory=list)
    random: RandomFaults | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)
    counts: collections.Counter = field(default_factory=collections.Counter)
    protection: ServiceProtection = field(default_factory=lambda: ServiceProtection(Limits()))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, status: int, times: int = 1, retry_after: int | None = None, body: dict | None = None,
             path_contains: str = "", methods: tuple[str, ...] = (), lose_answer: bool = False,
             after: int = 0, served_first: bool = False) -> None:
        with self._lock:
            self.faults.append(Fault(status, times, retry_after, body, path_contains, tuple(m.upper() for m in methods),
                                     served_first, lose_answer, after))

    def lose_answers(self, times: int = 1, path_contains: str = "", methods: tuple[str, ...] = (),
                     after: int = 0) -> None:
        """The next `times` matching requests are served, but their answers never reach the client."""
        self.fail(200, times, path_contains=path_contains, methods=methods, lose_answer=True, after=after)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.counts.clear()
            self.latency_ms = 0
            self.random = None
        self.protection.reset()

    def count(self, method: str, path: str) -> None:
        """Every request that reached the service, refused ones included, by kind (what `make bench` reads)."""
        kind = "batch" if path.endswith("$batch") else "read" if method in ("GET", "HEAD") else "write"
        with self._lock:
            self.counts[kind] += 1

    def take(self, method: str, path: str, inner: bool = False) -> Fault | None:
        """The scripted fault for this request, if any. `inner`: a request inside a `$batch` (not logged
        as a request of its own, and never one whose answer is lost: the `$batch` has the answer)."""
        with self._lock:
            if not inner:
                self.requests.append((method, path))
            for fault in self.faults:
                if fault.path_contains and fault.path_contains not in path:
                    continue
                if fault.methods and method not in fault.methods:
                    continue
                if inner and fault.lose_answer:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def take_random(self) -> str | None:
        """The kind of random fault for this request, if any."""
        with self._lock:
            return self.random.pick() if self.random else None

    def configure(self, spec: dict) -> None:
        """Apply the JSON shape the admin endpoint accepts:
        {"latency_ms": .., "fail": [{..Fault..}], "limits": {..Limits..}, "random": {..RandomFaults..} or null}."""
        if "latency_ms" in spec:
            self.latency_ms = int(spec["latency_ms"])
        if "random" in spec:
            self.random = RandomFaults(**spec["random"]) if spec["random"] else None
        for item in spec.get("fail", []):
            self.fail(**item)
        if "limits" in spec:
            self.protection.reset(Limits(**{**self.protection.default.__dict__, **spec["limits"]}))


class FaultMiddleware:
    """Sits in front of a simulator app: the service's protection limits first, then latency and
    scripted or random faults. Admin paths (/_sim/...) are never limited, faulted or counted; `/_sim/requests`
    answers the counts of the others, `/_sim/faulted` the random faults injected by kind. `refusal` turns a
    protection refusal into the service's own answer."""

    def __init__(self, app: Callable, knobs: FaultKnobs, error_body: Callable[[int], dict],
                 refusal: Callable[[Refusal], Response]):
        self.app = app
        self.knobs = knobs
        self.error_body = error_body
        self.refusal = refusal

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/_sim/requests":
            counts = {kind: self.knobs.counts[kind] for kind in ("read", "write", "batch")}
            return json_response({**counts, "throttled": self.knobs.protection.refused})(environ, start_response)
        if path == "/_sim/faulted":
            injected = dict(self.knobs.random.injected) if self.knobs.random else {}
            return json_response(injected)(environ, start_response)
        if path.startswith("/_sim/"):
            return self.app(environ, start_response)
        self.knobs.count(environ.get("REQUEST_METHOD", "GET"), path)
        user, started = caller(environ), time.monotonic()
        refused = self.knobs.protection.admit(user)
        if refused is not None:
            return self.refusal(refused)(environ, start_response)
        body = None
        try:
            # the body is produced here, so that a request counts as in progress until it is answered
            body = self._serve(environ, start_response, path)
            return body if isinstance(body, _LostAnswer) else list(body)
        finally:
            if hasattr(body, "close"):
                body.close()
            self.knobs.protection.release(user, started)

    def _serve(self, environ, start_response, path):
        if self.knobs.latency_ms:
            time.sleep(self.knobs.latency_ms / 1000)
        fault = self.knobs.take(environ.get("REQUEST_METHOD", "GET"), path)
        if fault is None:
            return self._serve_or_fail_at_random(environ, start_response)
        if fault.served_first:
            served = self.app(environ, lambda status, headers, exc_info=None: lambda data: None)
            try:
                list(served)
            finally:
                if hasattr(served, "close"):
                    served.close()
        if fault.lose_answer:
            return self._lose_answer(environ, start_response, served=True)
        return self._fail(environ, start_response, fault.status, fault.retry_after, fault.body)

    def _serve_or_fail_at_random(self, environ, start_response):
        kind = self.knobs.take_random()
        if kind is None:
            return self.app(environ, start_response)
        if kind == "throttled":
            return self._fail(environ, start_response, 429, self.knobs.random.retry_after)
        if kind == "unavailable":
            return self._fail(environ, start_response, 503)
        if kind == "stall":
            time.sleep(self.knobs.random.stall_seconds)
        return self._lose_answer(environ, start_response, served=kind == "cut after")

    def _fail(self, environ, start_response, status: int, retry_after: int | None = None, body: dict | None = None):
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return json_response(body or self.error_body(status), status, headers)(environ, start_response)

    def _lose_answer(self, environ, start_response, served: bool):
        if served:
            applied = self.app(environ, lambda status, headers, exc_info=None: None)
            for _ in applied:  # the request is applied in full ...
                pass
            if hasattr(applied, "close"):
                applied.close()
        # ... (or not at all) and the answer breaks off after its first byte: the server closes the connection
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "65536")])
        return _LostAnswer()


class _LostAnswer:
    """A response body that breaks off: one byte, then the connection is dropped."""

    def __iter__(self):
        yield b"{"
        raise AnswerLost("the answer to this request is lost on purpose (an injected fault)")


def _quiet_about_lost_answers(error_log: Callable) -> Callable:
    """cheroot reports an answer that broke off; one broken off on purpose is no error."""
    def log(msg: str = "", level: int = 20, traceback: bool = False) -> None:
        if not isinstance(sys.exc_info()[1], AnswerLost):
            error_log(msg, level, traceback)
    return log


class _ContextAdapter(BuiltinSSLAdapter):
    """cheroot's TLS adapter, fed an SSLContext instead of certificate files."""

    def __init__(self, context: ssl.SSLContext):
        self.certificate = self.private_key = self.certificate_chain = self.ciphers = None
        self.private_key_password = None
        self._server_env = {}
        self.context = context


class SimServer:
    """Runs one WSGI app on 127.0.0.1 in a background thread, TLS when given a context.

    cheroot rather than werkzeug's development server: it keeps HTTP/1.1 connections alive, as
    the real services do, so a client is not charged a TLS handshake per request.
    """

    def __init__(self, app: Callable, port: int = 0, ssl_context: ssl.SSLContext | None = None, threads: int = 16):
        self._server = wsgi.Server(("127.0.0.1", port), app, numthreads=threads, server_name="bcsync-simulator")
        self._server.error_log = _quiet_about_lost_answers(self._server.error_log)
        if ssl_context is not None:
            self._server.ssl_adapter = _ContextAdapter(ssl_context)
        self._server.prepare()
        self.port = self._server.bind_addr[1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve, name=f"sim-{self.port}", daemon=True)

    def start(self) -> "SimServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stop()
