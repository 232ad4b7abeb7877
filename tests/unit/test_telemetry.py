"""Telemetry set-up without exporting anything: the distro's arguments, the authentication string, log levels.
(tests/e2e/test_telemetry.py reads the telemetry of a real synchronisation.)"""

import logging

import azure.monitor.opentelemetry
import pytest
from opentelemetry import trace

from bcsync.cli import main
from shared import telemetry
from shared.settings import Settings
from sync.errors import ConfigurationError

CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/"


@pytest.fixture
def distro(monkeypatch):
    """configure_azure_monitor's arguments, with nothing installed or instrumented for real."""
    calls = []
    monkeypatch.setattr(azure.monitor.opentelemetry, "configure_azure_monitor", lambda **kw: calls.append(kw))
    monkeypatch.setattr(telemetry, "_instrument", lambda: calls.append("instrumented"))
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)  # as if no test had installed one
    return calls


def test_export_identity_reads_the_authentication_string():
    assert telemetry.export_identity(None) == (False, None)
    assert telemetry.export_identity("Authorization=AAD") == (True, None)
    assert telemetry.export_identity("Authorization=AAD;ClientId=1234") == (True, "1234")
    assert telemetry.export_identity(" authorization = aad ; clientid = 1234 ;") == (True, "1234")
    for wrong in ("Authorization=Key", "ClientId=1234", "AAD"):
        with pytest.raises(ConfigurationError, match="APPLICATIONINSIGHTS_AUTHENTICATION_STRING"):
            telemetry.export_identity(wrong)


def test_the_distro_exports_with_the_managed_identity_once_and_instruments_nothing_itself(distro):
    made = []
    settings = Settings(appinsights_connection=CONNECTION, appinsights_authentication="Authorization=AAD;ClientId=abc")
    processor = object()
    assert telemetry.configure_telemetry(settings, credential_factory=lambda client_id: made.append(client_id) or "cred",
                                         span_processors=[processor])
    [arguments, instrumented] = distro
    assert made == ["abc"] and arguments["credential"] == "cred" and arguments["connection_string"] == CONNECTION
    assert arguments["span_processors"] == [processor]
    options = arguments["instrumentation_options"]
    assert {"azure_sdk", "requests", "urllib", "urllib3"} <= set(options)
    assert all(o == {"enabled": False} for o in options.values())
    assert instrumented == "instrumented"
    assert not telemetry.configure_telemetry(settings, credential_factory=lambda client_id: "again")  # never twice
    assert len(distro) == 2


def test_entra_export_without_a_credential_is_refused_and_nothing_without_a_connection_string(distro):
    with pytest.raises(ConfigurationError, match="no managed identity credential"):
        telemetry.configure_telemetry(Settings(appinsights_connection=CONNECTION,
                                               appinsights_authentication="Authorization=AAD"))
    assert not telemetry.configure_telemetry(Settings())
    assert distro == []


def test_verbosity_shows_bcsync_first_and_the_sdks_http_logging_last():
    try:
        main(["settings"])
        assert logging.getLogger("bcsync.runs").getEffectiveLevel() == logging.INFO
        assert logging.getLogger("azure.core.pipeline.policies.http_logging_policy").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("urllib3.connectionpool").getEffectiveLevel() == logging.WARNING
        main(["-vv", "settings"])
        assert logging.getLogger("bcsync.runs").getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("azure.core.pipeline.policies.http_logging_policy").getEffectiveLevel() == logging.DEBUG
    finally:
        main(["-v", "settings"])
    assert logging.getLogger("azure").getEffectiveLevel() == logging.WARNING


def test_the_function_app_exports_with_the_managed_identity_named_in_the_authentication_string(distro, stack,
                                                                                               monkeypatch):
    """start_telemetry (what the function app calls) wires the identity's credential; it fetches tokens
    from the platform's identity endpoint."""
    from shared.wiring import start_telemetry
    for name, value in stack.identity_environment().items():
        monkeypatch.setenv(name, value)
    client_id = stack.ids.managed_identity.client_id
    assert start_telemetry(Settings(appinsights_connection=CONNECTION,
                                    appinsights_authentication=f"Authorization=AAD;ClientId={client_id}"))
    credential = distro[0]["credential"]
    token = credential.get_token("https://monitor.azure.com//.default")
    assert token.token and credential.identity.client_id == client_id
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in credential.identity.describe()
