"""`bcsync serve`: the function app's HTTP routes over real HTTP on this machine, as Core Tools' `func start`
would serve them (Core Tools cannot be installed here).

The routes are read from the app's own registered functions (each HTTP trigger's route template and methods),
so a route added to the app is served without a change here. Each request becomes the `func.HttpRequest` the
host would build and the function's `func.HttpResponse` goes back as it is. As with Core Tools, function and
master keys are not checked locally; the app's own checks (the Entra app roles of BCSYNC_HTTP_AUTH=entra) run.
Unless told otherwise it also takes the job queue's messages, as the host's queue trigger would, so that a run
started from the page or the API goes ahead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from shared.wiring import Services

from .worker import LocalWorker

log = logging.getLogger("bcsync.host")

ROOT = Path(__file__).resolve().parents[1]   # where function_app.py and host.json are
_indexed: dict[int, tuple] = {}


def functions_of(app) -> list:
    """`app.get_functions()`, which may run once per app (as the host indexes once): later calls refuse
    the names already seen."""
    if id(app) not in _indexed:
        _indexed[id(app)] = (app, app.get_functions())  # keep the app alive so its id is not reused
    return _indexed[id(app)][1]


def route_prefix(root: Path = ROOT) -> str:
    """host.json's extensions.http.routePrefix; "api" when it is not set, as in the host."""
    host = json.loads((root / "host.json").read_text())
    return host.get("extensions", {}).get("http", {}).get("routePrefix", "api").strip("/")


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern
    methods: frozenset[str]
    function: Any            # the app's FunctionBuilder product: get_user_function() is the handler
    rank: tuple              # literal segments before parameters, as the host's routing prefers them


def _segment(text: str) -> tuple[str, int]:
    """A route template segment as a pattern, with its rank: 0 literal, 1 parameter, 2 catch-all.
    `{name}`, `{name:constraint}`, `{name?}` and `{*name}` are understood; constraints are not checked."""
    found = re.fullmatch(r"\{(\*?)(\w+)(?::[^}]*)?(\??)\}", text)
    if not found:
        return re.escape(text), 0
    catch_all, name, optional = found.groups()
    return (f"(?P<{name}>.*)", 2) if catch_all else (f"(?P<{name}>[^/]+){optional}", 1)


def http_routes(functions, prefix: str = "api") -> list[Route]:
    """The HTTP-triggered ones among an app's functions, in the order a request tries them."""
    routes = []
    for f in functions:
        if not f.is_http_function():
            continue
        trigger = f.get_trigger().get_dict_repr()
        template = "/".join(s for s in (prefix, trigger.get("route") or f.get_function_name()) if s)
        parts = [_segment(s) for s in template.strip("/").split("/")]
        pattern = re.compile("^/" + "/".join(p for p, _ in parts) + "/?$")
        methods = frozenset(str(getattr(m, "value", m)).upper() for m in trigger.get("methods") or ()) or \
            frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
        routes.append(Route(pattern, methods, f, tuple(rank for _, rank in parts)))
    return sorted(routes, key=lambda r: r.rank)


def find(routes: list[Route], method: str, path: str) -> tuple[Route | None, dict]:
    for r in routes:
        found = r.pattern.match(path)
        if found and method in r.methods:
            # the host hands route values over decoded ("PAYMENT%20TERMS" is PAYMENT TERMS)
            return r, {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
    return None, {}


class _Handler(BaseHTTPRequestHandler):
    routes: list[Route] = []
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        route, route_params = find(self.routes, self.command, parts.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if route is None:
            self._answer(func.HttpResponse("", status_code=404))
            return
        url = f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}{self.path}"
        request = func.HttpRequest(self.command, url, body=body, route_params=route_params,
                                   headers={k: ", ".join(self.headers.get_all(k)) for k in self.headers.keys()},
                                   params=dict(parse_qsl(parts.query, keep_blank_values=True)))
        try:
            response = route.function.get_user_function()(request)
        except Exception:  # the host's answer to a function that raised
            log.exception("%s %s failed", self.command, parts.path)
            response = func.HttpResponse("", status_code=500)
        self._answer(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _answer(self, response: func.HttpResponse) -> None:
        body = response.get_body() or b""
        self.send_response(response.status_code)
        headers = dict(response.headers)
        if response.mimetype and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = f"{response.mimetype}; charset={response.charset or 'utf-8'}"
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except ConnectionError:  # the browser left (a reload or a new page): nothing to answer
            self.close_connection = True

    def log_message(self, format: str, *args) -> None:
        log.info("%s %s", self.address_string(), format % args)


def server(app, host: str = "127.0.0.1", port: int = 7071, prefix: str | None = None) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) for the app's routes; port 0 picks a free one."""
    routes = http_routes(functions_of(app), route_prefix() if prefix is None else prefix)
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    return httpd


@contextmanager
def serving(app, worker: Services | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The app's routes served in a background thread, and with `worker` the job queue's messages taken in
    another (as the host's queue trigger would); yields the base URL and stops both on leaving."""
    httpd = server(app, host, port)
    stop = threading.Event()
    threads = [threading.Thread(target=httpd.serve_forever, name="http", daemon=True)]
    if worker is not None:
        threads.append(threading.Thread(target=LocalWorker(worker).run_until, args=(stop.is_set,), name="worker",
                                        daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield "http://%s:%d" % httpd.server_address[:2]
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()


def add_command(s: argparse.ArgumentParser) -> None:
    """The flags of the `serve` subcommand of the bcsync CLI."""
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=7071, help="port (default 7071, as Core Tools; 0 picks a free one)")
    s.add_argument("--no-worker", action="store_true",
                   help="do not take the job queue's messages here (another `bcsync worker` does)")
    s.set_defaults(no_services=True)


def run(_, args: argparse.Namespace) -> int:
    if args.settings:  # the function app reads its settings itself, as it does under the host
        os.environ["BCSYNC_SETTINGS"] = str(Path(args.settings).resolve())
    sys.path.insert(0, str(ROOT))
    import function_app

    with serving(function_app.app, None if args.no_worker else function_app.services(), args.host, args.port) as url:
        base = f"{url}/{route_prefix()}/"
        args.out.result({"url": base, "worker": not args.no_worker},
                        f"bcsync serving {base} (function keys are not checked locally)"
                        f"{'' if args.no_worker else '; taking job messages'}. Ctrl-C stops.")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0
