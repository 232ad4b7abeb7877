"""No secret and no storage key anywhere: the function app's managed identity signs in to the
integration app registration through a federated credential (MSAL's client assertion is the identity's
token), and storage is reached over HTTPS with the identity's bearer tokens, which Azurite checks.

The managed-identity endpoint is the token simulator's App Service protocol (IDENTITY_ENDPOINT with
X-IDENTITY-HEADER), spoken by MSAL's own ManagedIdentityClient.
"""

from __future__ import annotations

import dataclasses
import time

import jwt
import pytest
from azure.core.credentials import AccessToken

from shared.settings import Settings
from shared.storage import TableStorage
from shared.wiring import build_services
from simulators import sample
from sync.errors import AuthenticationError, ServiceUnavailableError
from sync.runs import JobStatus, RunStatus

from .conftest import Env

SECRET_SETTINGS = ("AzureWebJobsStorage", "BCSYNC_CLIENT_SECRET", "BCSYNC_CLIENT_CERTIFICATE",
                   "BCSYNC_CLIENT_CERTIFICATE_PATH", "BCSYNC_CLIENT_CERTIFICATE_PASSWORD")


@pytest.fixture
def secretless(stack, isolated, monkeypatch):
    """Settings with no secret and no key, and the environment the platform gives a process with an identity."""
    for name, value in stack.identity_environment().items():
        monkeypatch.setenv(name, value)
    values = stack.secretless_settings_values(BCSYNC_TABLE_PREFIX=isolated["BCSYNC_TABLE_PREFIX"],
                                              BCSYNC_QUEUE_NAME=isolated["BCSYNC_QUEUE_NAME"])
    stack.managed_identity_endpoint.lifetime_seconds = None
    yield values
    stack.managed_identity_endpoint.lifetime_seconds = None


def test_a_full_synchronisation_with_no_secret_and_no_storage_key(stack, secretless):
    assert not any(secretless.get(name) for name in SECRET_SETTINGS)
    assert not any("AccountKey" in value or "SharedAccessSignature" in value for value in secretless.values())
    env = Env(stack, secretless)
    assert env.services.storage_account.connection_string is None
    sample.seed(env.dv, env.bc)
    issued_before = stack.managed_identity_endpoint.issued

    report = env.full_sync()

    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert all(j.status is JobStatus.DONE for j in report.jobs)
    assert {c["displayName"] for c in env.bc.rows("customers")} >= {"Fourth Coffee", "Trey Research"}
    assert {a["name"] for a in env.dv.rows("account")} >= {"Adatum Corporation", "School of Fine Art"}
    # the couplings, the run and the job queue live in the storage account reached with tokens
    assert env.couplings("CUSTOMER") and env.services.storage.account.table_url.startswith("https://")
    # two tokens from the identity (storage, and the assertion for the app registration), cached after that
    assert stack.managed_identity_endpoint.issued - issued_before == 2


def test_the_app_registration_trusts_only_its_federated_credential(stack, secretless):
    """The assertion is the managed identity's token for the token-exchange audience; the token
    endpoint checks its signature, issuer, subject, audience and lifetime against the federated credential."""
    services = build_services(Settings.load(environ=secretless))
    identity = services.managed_identity(secretless["BCSYNC_MANAGED_IDENTITY_CLIENT_ID"], "test")
    assertion = identity.token("api://AzureADTokenExchange")[0]
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["sub"] == stack.ids.managed_identity.principal_id
    assert claims["aud"] == "api://AzureADTokenExchange"
    assert services.sign_in.tokens_for(secretless["BCSYNC_BC_SCOPE"])()  # accepted


def test_storage_tokens_are_v1_tokens_for_storage(stack, secretless):
    services = build_services(Settings.load(environ=secretless))
    token = services.storage_account.credential.get_token("https://storage.azure.com/.default")
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["aud"] == "https://storage.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{stack.issuer.tenant_id}/"
    assert token.expires_on > time.time() + 600


class ForgedCredential:
    """A credential handing out tokens of the wrong shape, to show that Azurite checks them."""

    def __init__(self, stack, **kwargs):
        self.stack, self.kwargs = stack, kwargs

    def get_token(self, *scopes, **kwargs):
        token = self.stack.issuer.access_token(self.kwargs.get("audience", "https://storage.azure.com"),
                                               app_id="x", object_id="y", v1=self.kwargs.get("v1", True),
                                               lifetime_seconds=self.kwargs.get("lifetime"))
        return AccessToken(token, int(time.time()) + 3600)


@pytest.mark.parametrize("shape", [{"audience": "https://vault.azure.net"}, {"v1": False}, {"lifetime": -600}],
                         ids=["wrong audience", "wrong issuer", "expired"])
def test_storage_refuses_tokens_of_the_wrong_audience_issuer_or_age(stack, secretless, shape):
    services = build_services(Settings.load(environ=secretless))
    account = dataclasses.replace(services.storage_account, credential=ForgedCredential(stack, **shape))
    with pytest.raises(AuthenticationError) as refused:
        TableStorage(account, secretless["BCSYNC_TABLE_PREFIX"]).table("probe")
    assert "AzureWebJobsStorage__clientId" in refused.value.message


def test_an_identity_endpoint_that_is_down_names_what_to_check(stack, secretless, monkeypatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token")  # nothing listens there
    services = build_services(Settings.load(environ=secretless))
    with pytest.raises(ServiceUnavailableError) as down:
        services.sign_in.tokens_for(secretless["BCSYNC_BC_SCOPE"])()
    assert "http://127.0.0.1:9/msi/token" in down.value.message
    assert "BCSYNC_MANAGED_IDENTITY_CLIENT_ID" in down.value.message
    with pytest.raises(ServiceUnavailableError) as storage_down:
        services.state.schedules()
    assert "AzureWebJobsStorage__clientId" in storage_down.value.message


def test_a_wrong_audience_names_the_audience_setting(stack, secretless):
    services = build_services(Settings.load(environ={**secretless, "BCSYNC_FEDERATED_TOKEN_AUDIENCE": "api://Wrong"}))
    with pytest.raises(AuthenticationError) as refused:
        services.sign_in.tokens_for(secretless["BCSYNC_BC_SCOPE"])()
    assert "AADSTS700212" in refused.value.message and "BCSYNC_FEDERATED_TOKEN_AUDIENCE" in refused.value.message


def test_expired_identity_tokens_are_refused_with_what_to_fix(stack, secretless):
    stack.managed_identity_endpoint.lifetime_seconds = -600
    services = build_services(Settings.load(environ=secretless))
    with pytest.raises(AuthenticationError) as sign_in:
        services.sign_in.tokens_for(secretless["BCSYNC_BC_SCOPE"])()
    assert "AADSTS700024" in sign_in.value.message and "BCSYNC_MANAGED_IDENTITY_CLIENT_ID" in sign_in.value.message
    with pytest.raises(AuthenticationError) as storage:
        services.state.schedules()
    assert "expired" in storage.value.message and "AzureWebJobsStorage__clientId" in storage.value.message


def test_an_identity_not_assigned_to_the_app_is_named(stack, secretless):
    services = build_services(Settings.load(environ={**secretless,
                                                      "BCSYNC_MANAGED_IDENTITY_CLIENT_ID": "00000000-0000-0000-0000-000000000001"}))
    with pytest.raises(AuthenticationError) as refused:
        services.sign_in.tokens_for(secretless["BCSYNC_BC_SCOPE"])()
    assert "00000000-0000-0000-0000-000000000001" in refused.value.message
    assert "BCSYNC_MANAGED_IDENTITY_CLIENT_ID" in refused.value.message
