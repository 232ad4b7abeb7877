"""Serving a simulator: a WSGI app on loopback over TLS, with fault knobs in front of it."""

from __future__ import annotations

import json
import ssl
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
    """One injected failure: answer `status` instead of serving, `times` times."""

    status: int
    times: int = 1
    retry_after: int | None = None
    body: dict | None = None
    path_contains: str = ""
    methods: tuple[str, ...] = ()


@dataclass
class FaultKnobs:
    """What a test or `make run` can turn on: latency, scripted failures, a request log.

    Faults are scripted rather than random so that a test asserts exact behaviour.
    """

    latency_ms: int = 0
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, status: int, times: int = 1, retry_after: int | None = None, body: dict | None = None,
             path_contains: str = "", methods: tuple[str, ...] = ()) -> None:
        with self._lock:
            self.faults.append(Fault(status, times, retry_after, body, path_contains, tuple(m.upper() for m in methods)))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.latency_ms = 0

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests.append((method, path))
            for fault in self.faults:
                if fault.path_contains and fault.path_contains not in path:
                    continue
                if fault.methods and method not in fault.methods:
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def configure(self, spec: dict) -> None:
        """Apply the JSON shape the admin endpoint accepts: {"latency_ms": .., "fail": [{..Fault..}]}."""
        if "latency_ms" in spec:
            self.latency_ms = int(spec["latency_ms"])
        for item in spec.get("fail", []):
            self.fail(**item)


class FaultMiddleware:
    """Sits in front of a simulator app; admin paths (/_sim/...) are never faulted."""

    def __init__(self, app: Callable, knobs: FaultKnobs, error_body: Callable[[int], dict]):
        self.app = app
        self.knobs = knobs
        self.error_body = error_body

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sim/"):
            return self.app(environ, start_response)
        if self.knobs.latency_ms:
            time.sleep(self.knobs.latency_ms / 1000)
        fault = self.knobs.take(environ.get("REQUEST_METHOD", "GET"), path)
        if fault is None:
            return self.app(environ, start_response)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        resp = json_response(fault.body or self.error_body(fault.status), fault.status, headers)
        return resp(environ, start_response)


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
