"""HTTP plumbing shared by the Dataverse and Business Central clients.

One `ApiClient` per service: it adds the bearer token, retries what is safe to retry, honours
Retry-After, and turns every failure into the domain's error hierarchy through the service's own
error parser. Retry safety follows the request, not the status alone: a request that never reached
the server is always retried; a 429 or 503 means the server did not process it; a 5xx or a lost
answer is only retried when the request is idempotent (GET, PATCH/DELETE with If-Match, a POST that
carries its own id), so a create is never blindly repeated.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from sync.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConcurrencyError,
    NotFoundError,
    RecordError,
    ServiceUnavailableError,
    SettingsError,
    SyncError,
    ThrottledError,
    WriteOutcomeUnknown,
)

from .telemetry import count_request

log = logging.getLogger("bcsync.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH"})

# A connection that says "this can never work" (a name that does not resolve, a closed port, an untrusted
# certificate) is tried this many times more, this many seconds apart, before it is reported as the setting to fix:
# long enough to ride out a service restarting, short enough that a misconfigured job fails in seconds.
FAIL_FAST_RETRIES = 2
FAIL_FAST_WAIT = 1.0
CA_SETTING = "BCSYNC_CA_BUNDLE"  # the extra CA that VerifyingSession trusts
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}

T = TypeVar("T")


class VerifyingSession(requests.Session):
    """A Session that always passes its CA bundle per request.

    requests lets REQUESTS_CA_BUNDLE override a Session's own `verify`; passing it per request
    wins over the environment, so a test CA given in the settings is honoured everywhere (MSAL too).
    """

    def __init__(self, ca_bundle: str | None = None):
        super().__init__()
        self._ca_bundle = ca_bundle

    def request(self, method, url, **kwargs):
        if self._ca_bundle:
            kwargs.setdefault("verify", self._ca_bundle)
        return super().request(method, url, **kwargs)


@dataclass(frozen=True)
class ServiceError:
    """What a service said about a failed request, parsed from its error body."""

    status: int
    code: str
    message: str


ErrorParser = Callable[[requests.Response], ServiceError]

# Names of attributes/fields as services put them in validation messages.
_FIELD_PATTERNS = (
    re.compile(r"property (?:named )?'([^']+)'"),
    re.compile(r"'([A-Za-z0-9_]+)' attribute"),
    re.compile(r"[Ff]ield '?([A-Za-z0-9_ ./-]+?)'? (?:of table|must|contains)"),
)


def field_in(message: str) -> str:
    for pattern in _FIELD_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return ""


def classify(service: str, error: ServiceError, *, already_exists_codes: frozenset[str] = frozenset(),
             concurrency_codes: frozenset[str] = frozenset()) -> SyncError:
    """Map a service's answer onto transient vs terminal, once, here at the edge."""
    status, code = error.status, error.code
    text = f"{service}: {error.message}" if error.message else f"{service} answered HTTP {status}"
    kwargs = {"code": code, "status": status}
    if code in concurrency_codes:
        return ConcurrencyError(text, **kwargs)
    if code in already_exists_codes:
        return AlreadyExistsError(text, **kwargs)
    if status in (401, 403):
        return AuthenticationError(text, **kwargs)
    if status == 404:
        return NotFoundError(text, **kwargs)
    if status in (409, 412):
        return ConcurrencyError(text, **kwargs)
    if status == 429:
        return ThrottledError(text, **kwargs)
    if status == 408 or (status >= 500 and status != 501):  # 501: a request the service does not implement
        return ServiceUnavailableError(text, **kwargs)
    return RecordError(text, field=field_in(error.message), **kwargs)


def odata_error(service: str, status: int, body: Any, *, already_exists_codes: frozenset[str],
                concurrency_codes: frozenset[str]) -> SyncError:
    """An OData error answer ({"error": {"code", "message"}}; a whole response's, or one inner answer of a
    `$batch`) as the domain's error; a body of another shape (a gateway's page) gives its first 300 characters."""
    if isinstance(body, dict):
        error = body.get("error") or {}
        parsed = ServiceError(status, str(error.get("code", "")), str(error.get("message", "")).strip())
    else:
        parsed = ServiceError(status, "", str(body or "")[:300])
    return classify(service, parsed, already_exists_codes=already_exists_codes, concurrency_codes=concurrency_codes)


def response_body(response: requests.Response) -> Any:
    """A response's JSON, else its text."""
    try:
        return response.json()
    except ValueError:
        return response.text


def misconfigured(exc: BaseException, url: str, setting: str) -> SettingsError | None:
    """The setting to fix when a request failed in a way that retrying cannot mend: the host of `url` (from
    `setting`) does not resolve, nothing listens on its port, or its certificate is not one bcsync trusts. None
    when the service may just be down (a timeout, a reset, a name server that did not answer)."""
    where = urlsplit(url)
    host = f"{where.hostname}:{where.port}" if where.port else str(where.hostname)
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_NAME:
            return SettingsError({setting: f"its host {where.hostname} does not resolve (no such name in DNS); "
                                           "correct the host name"})
        if isinstance(cause, ConnectionRefusedError):
            return SettingsError({setting: f"nothing accepts connections on {host} (connection refused); correct "
                                           "the address or port"})
        if isinstance(cause, ssl.SSLCertVerificationError):
            return SettingsError({CA_SETTING: f"the certificate of {host} ({setting}) is not trusted: "
                                              f"{cause.verify_message or cause.reason}; set {CA_SETTING} to a PEM file "
                                              f"with the CA that signed it, or correct {setting}"})
    return None


def _causes(exc: BaseException):
    """The exception and everything it wraps (requests wraps urllib3, which wraps the socket's error)."""
    seen, pending = set(), [exc]
    while pending:
        cause = pending.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        pending += [cause.__cause__, cause.__context__, getattr(cause, "reason", None),
                    *(arg for arg in getattr(cause, "args", ()) if isinstance(arg, BaseException))]


def failing_fast(call: Callable[[], T]) -> T:
    """`call()`, tried again FAIL_FAST_RETRIES times while it says a setting is wrong, since one failed DNS
    lookup or refused connection may be a blip; the SettingsError is raised when it persists."""
    retries = 0
    while True:
        try:
            return call()
        except SettingsError as exc:
            if retries >= FAIL_FAST_RETRIES:
                raise
            log.info("%s; trying again in %g s", exc.message, FAIL_FAST_WAIT)
            time.sleep(FAIL_FAST_WAIT)
            retries += 1


class ConcurrencyLimit:
    """How many requests one client has in flight at once: never more than `maximum` (the service's limit
    per user), nor than the parallelism the service recommends in a `hint_header` when it sends one.

    The window adapts additively-increase / multiplicatively-decrease: a 429 halves it, so every thread
    backs off together instead of each retrying into the same wall, and `grow_after` successes in a row
    open it by one again. Threads over the window wait for a slot; a retry waits outside it.
    """

    def __init__(self, maximum: int, *, hint_header: str | None = None, grow_after: int = 20):
        if maximum < 1:
            raise ValueError("a concurrency limit is at least 1")
        self.maximum = self.ceiling = self.window = maximum
        self.hint_header = hint_header
        self.grow_after = grow_after
        self.in_flight = 0
        self.admitted = 0
        self._successes = 0
        self._changed = threading.Condition()

    def acquire(self) -> None:
        with self._changed:
            while self.in_flight >= self.window:
                self._changed.wait()
            self.in_flight += 1
            self.admitted += 1

    def release(self, response: requests.Response | None) -> None:
        """Frees the slot and adapts the window to the answer (None: no answer, which says nothing about load)."""
        with self._changed:
            self.in_flight -= 1
            if response is not None:
                self._follow_hint(response.headers.get(self.hint_header) if self.hint_header else None)
                if response.status_code == 429:
                    self.window, self._successes = max(1, self.window // 2), 0
                elif response.status_code < 500:
                    self._successes += 1
                    if self._successes >= self.grow_after and self.window < self.ceiling:
                        self.window, self._successes = self.window + 1, 0
            self._changed.notify_all()

    def _follow_hint(self, hint: str | None) -> None:
        try:
            recommended = int(hint) if hint else 0
        except ValueError:
            return
        if recommended >= 1:
            self.ceiling = min(self.maximum, recommended)
            self.window = min(self.window, self.ceiling)


class ApiClient:
    def __init__(self, service: str, base_url: str, token: Callable[..., str], *, session: requests.Session,
                 parse_error: Callable[[requests.Response], SyncError], limit: ConcurrencyLimit,
                 timeout: float = 60.0, max_retries: int = 5, max_retry_wait: float = 60.0,
                 default_headers: dict[str, str] | None = None, sleep: Callable[[float], None] = time.sleep,
                 setting: str = ""):
        self.service = service
        self.setting = setting  # the setting that gave base_url, named when it can never be reached
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session = session
        self.parse_error = parse_error
        self.limit = limit
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.default_headers = default_headers or {}
        self.sleep = sleep

    @property
    def requests_sent(self) -> int:
        return self.limit.admitted

    def url(self, path: str) -> str:
        return path if path.startswith("https://") or path.startswith("http://") else f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                data: bytes | None = None, headers: dict[str, str] | None = None,
                idempotent: bool | None = None) -> requests.Response:
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        url = self.url(path)
        refreshed = refresh_now = False
        attempt = fail_fast_retries = 0
        while True:
            all_headers = {**self.default_headers, **(headers or {}),
                           "Authorization": f"Bearer {self.token(force=refresh_now)}"}
            refresh_now = False
            try:
                response = self._send(method, url, params=params, json=json, data=data, headers=all_headers)
            except requests.RequestException as exc:
                count_request(self.service, None)
                wrong = misconfigured(exc, url, self.setting) if self.setting else None
                if wrong is not None:
                    if fail_fast_retries >= FAIL_FAST_RETRIES:
                        raise wrong from None
                    fail_fast_retries += 1
                    self.sleep(FAIL_FAST_WAIT)
                    continue
                sent = not _never_sent(exc)
                if (sent and not idempotent) or attempt >= self.max_retries:
                    if sent and not idempotent:
                        raise WriteOutcomeUnknown(f"{self.service}: {method} {_short(url)} got no answer ({exc}); "
                                                  f"it may or may not have been applied") from None
                    raise ServiceUnavailableError(f"{self.service}: {method} {_short(url)} failed: {exc}") from None
                self._wait(attempt, None)
                attempt += 1
                continue
            count_request(self.service, response.status_code)
            if response.status_code < 400 or response.status_code == 304:
                return response
            if response.status_code == 401 and not refreshed:
                refreshed = refresh_now = True  # an expired or revoked token: get a fresh one, once
                continue
            error = self.parse_error(response)
            retryable = response.status_code in (429, 503) or (
                idempotent and (response.status_code in (408, 500, 502, 504)))
            if not retryable or attempt >= self.max_retries:
                raise error
            wait = retry_after(response)
            if wait is not None and wait > self.max_retry_wait:
                error.retry_after = wait  # too long to wait here: the job is re-queued for later
                raise error
            log.info("%s %s %s -> %s, retry %d", self.service, method, _short(url), response.status_code, attempt + 1)
            self._wait(attempt, wait)
            attempt += 1

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        self.limit.acquire()
        response = None
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            return response
        finally:
            self.limit.release(response)

    def _wait(self, attempt: int, retry_after_seconds: float | None) -> None:
        if retry_after_seconds is not None:
            self.sleep(retry_after_seconds)
        else:
            self.sleep(min(30.0, 0.5 * 2 ** attempt) * (0.5 + random.random() / 2))

    def get_json(self, path: str, **kwargs) -> Any:
        return self.request("GET", path, **kwargs).json()

    def get_text(self, path: str, **kwargs) -> str:
        """A JSON answer's text, not parsed; its bytes are not kept. Decoded as `requests` decodes JSON (the encoding
        guessed from its first bytes, as JSON allows only UTF-8, -16 and -32), and, as `requests` does, bytes that
        do not decode become replacement characters: a value garbled in transit, not an answer to refuse."""
        content = self.request("GET", path, **kwargs).content
        return content.decode(requests.utils.guess_json_utf(content) or "utf-8", errors="replace")


def retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (so even a POST may be retried)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        return isinstance(inner, NewConnectionError) or isinstance(reason, NewConnectionError)
    return False


def _short(url: str) -> str:
    return url.split("?", 1)[0][-120:]
