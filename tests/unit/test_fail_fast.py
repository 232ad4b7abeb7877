"""Which failed connections are a setting to fix and which a service that is down: only the first kind fails fast
(two quick retries), the second keeps its retries; the end-to-end cases are in tests/e2e/test_misconfiguration.py."""

from __future__ import annotations

import socket

import pytest
import requests

from shared.http import FAIL_FAST_RETRIES, FAIL_FAST_WAIT, ApiClient, ConcurrencyLimit, misconfigured
from sync.errors import RecordError, ServiceUnavailableError, SettingsError


def failed(cause: BaseException) -> requests.ConnectionError:
    """A connection error as requests raises it, with the socket's error inside."""
    try:
        try:
            raise cause
        except OSError as exc:
            raise requests.ConnectionError("HTTPSConnectionPool(host='contoso.example'): Max retries exceeded") from exc
    except requests.ConnectionError as exc:
        return exc


class FailingSession:
    def __init__(self, error: requests.RequestException):
        self.error, self.sent = error, 0

    def request(self, method, url, **kwargs):
        self.sent += 1
        raise self.error


def send(error: requests.RequestException) -> tuple[FailingSession, list[float], Exception]:
    session, waits = FailingSession(error), []
    api = ApiClient("Dataverse", "https://contoso.example", lambda force=False: "token", session=session,
                    parse_error=lambda r: RecordError("unused"), limit=ConcurrencyLimit(1), max_retries=5,
                    sleep=waits.append, setting="BCSYNC_DATAVERSE_URL")
    with pytest.raises(Exception) as raised:
        api.get_json("accounts")
    return session, waits, raised.value


def test_a_name_that_does_not_exist_fails_fast_naming_the_setting():
    session, waits, error = send(failed(socket.gaierror(socket.EAI_NONAME, "Name or service not known")))
    assert isinstance(error, SettingsError) and not error.transient
    assert list(error.problems) == ["BCSYNC_DATAVERSE_URL"] and "contoso.example does not resolve" in error.message
    assert session.sent == 1 + FAIL_FAST_RETRIES and waits == [FAIL_FAST_WAIT] * FAIL_FAST_RETRIES


@pytest.mark.parametrize("cause", [
    socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError("timed out"),
], ids=["name server did not answer", "reset", "timeout"])
def test_a_service_or_name_server_in_trouble_keeps_its_retries(cause):
    assert misconfigured(failed(cause), "https://contoso.example", "BCSYNC_DATAVERSE_URL") is None
    session, _, error = send(failed(cause))
    assert isinstance(error, ServiceUnavailableError) and error.transient and session.sent == 6


def test_a_refused_connection_names_host_and_port():
    error = misconfigured(failed(ConnectionRefusedError(111, "Connection refused")), "https://contoso.example:8443/x",
                          "BCSYNC_BC_URL")
    assert error.problems == {"BCSYNC_BC_URL": "nothing accepts connections on contoso.example:8443 (connection "
                                               "refused); correct the address or port"}
