"""The integration app signs in with the real MSAL against the token simulator, with each kind of
credential: a certificate as a PEM file, a PFX file, or base64 PKCS#12 (a Key Vault reference), and a
secret. Bad certificate settings are refused with the setting to fix."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from shared.identity import credential_kind, storage_account
from shared.settings import Settings
from shared.wiring import build_services
from simulators.token import Client
from sync.errors import AuthenticationError, ConfigurationError

PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def certificate():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bcsync integration")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert


@pytest.fixture
def app_with_certificate(stack, certificate):
    """An app registration that knows the certificate's public part (and has no secret)."""
    client = stack.issuer.add_client(Client(str(uuid.uuid4()), name="certificate app",
                                            certificate_pem=certificate[1].public_bytes(serialization.Encoding.PEM)))
    yield client
    stack.issuer.clients.pop(client.client_id)


def settings_for(stack, client_id, **values) -> Settings:
    base = {k: v for k, v in stack.settings_values().items() if k != "BCSYNC_CLIENT_SECRET"}
    return Settings.load(environ={**base, "BCSYNC_CLIENT_ID": client_id, **values})


def sign_in(settings: Settings) -> dict:
    token = build_services(settings).sign_in.tokens_for(settings.bc_scope)()
    return jwt.decode(token, options={"verify_signature": False})


def pfx(key, cert, password: str | None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    return pkcs12.serialize_key_and_certificates(b"bcsync", key, cert, None, encryption)


def test_a_pfx_file_with_its_password_signs_in(stack, app_with_certificate, certificate, tmp_path):
    path = tmp_path / "app.pfx"
    path.write_bytes(pfx(*certificate, PASSWORD))
    claims = sign_in(settings_for(stack, app_with_certificate.client_id, BCSYNC_CLIENT_CERTIFICATE_PATH=str(path),
                                  BCSYNC_CLIENT_CERTIFICATE_PASSWORD=PASSWORD))
    assert claims["appid"] == app_with_certificate.client_id


def test_a_key_vault_certificate_as_base64_pkcs12_signs_in(stack, app_with_certificate, certificate):
    value = base64.b64encode(pfx(*certificate, None)).decode()  # what @Microsoft.KeyVault(...) resolves to
    claims = sign_in(settings_for(stack, app_with_certificate.client_id, BCSYNC_CLIENT_CERTIFICATE=value))
    assert claims["appid"] == app_with_certificate.client_id


def test_a_pem_file_signs_in_without_a_thumbprint_setting(stack, app_with_certificate, certificate, tmp_path):
    key, cert = certificate
    path = tmp_path / "app.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(PASSWORD.encode()))
                     + cert.public_bytes(serialization.Encoding.PEM))
    claims = sign_in(settings_for(stack, app_with_certificate.client_id, BCSYNC_CLIENT_CERTIFICATE_PATH=str(path),
                                  BCSYNC_CLIENT_CERTIFICATE_PASSWORD=PASSWORD))
    assert claims["appid"] == app_with_certificate.client_id


def test_a_certificate_the_app_does_not_know_is_refused_with_what_to_fix(stack, app_with_certificate, tmp_path):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(other.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(other, hashes.SHA256()))
    path = tmp_path / "other.pfx"
    path.write_bytes(pfx(other, cert, None))
    with pytest.raises(AuthenticationError) as refused:
        sign_in(settings_for(stack, app_with_certificate.client_id, BCSYNC_CLIENT_CERTIFICATE_PATH=str(path)))
    assert "AADSTS700027" in refused.value.message and "BCSYNC_CLIENT_CERTIFICATE" in refused.value.message


@pytest.mark.parametrize("values, setting", [
    ({"BCSYNC_CLIENT_CERTIFICATE": "not base64!"}, "BCSYNC_CLIENT_CERTIFICATE"),
    ({"BCSYNC_CLIENT_CERTIFICATE_PATH": "/nowhere/app.pfx"}, "BCSYNC_CLIENT_CERTIFICATE_PATH"),
    ({"BCSYNC_CLIENT_CREDENTIAL": "certificate"}, "BCSYNC_CLIENT_CERTIFICATE_PATH"),
    ({"BCSYNC_CLIENT_CREDENTIAL": "password"}, "BCSYNC_CLIENT_CREDENTIAL"),
    ({}, "BCSYNC_CLIENT_CREDENTIAL"),
], ids=["not base64", "missing file", "no certificate", "unknown kind", "no credential"])
def test_bad_credential_settings_name_the_setting(stack, values, setting):
    with pytest.raises(ConfigurationError) as refused:
        sign_in(settings_for(stack, str(uuid.uuid4()), **values))
    assert setting in refused.value.message


def test_a_wrong_pfx_password_names_the_password_setting(stack, certificate, tmp_path):
    path = tmp_path / "app.pfx"
    path.write_bytes(pfx(*certificate, PASSWORD))
    with pytest.raises(ConfigurationError) as refused:
        sign_in(settings_for(stack, str(uuid.uuid4()), BCSYNC_CLIENT_CERTIFICATE_PATH=str(path),
                             BCSYNC_CLIENT_CERTIFICATE_PASSWORD="wrong"))
    assert "BCSYNC_CLIENT_CERTIFICATE_PASSWORD" in refused.value.message


def test_the_credential_kind_follows_the_settings_given():
    assert credential_kind(Settings(client_secret="s")) == "secret"
    assert credential_kind(Settings(certificate="MII")) == "certificate"
    assert credential_kind(Settings(managed_identity_client_id="id")) == "managedidentity"
    assert credential_kind(Settings(client_credential="ManagedIdentity", client_secret="s")) == "managedidentity"


@pytest.mark.parametrize("values, setting", [
    ({}, "AzureWebJobsStorage__accountName"),
    ({"storage_account_name": "bcsyncprod"}, "AzureWebJobsStorage__credential=managedidentity"),
    ({"storage_table_uri": "https://127.0.0.1:1/devstoreaccount1", "storage_credential": "managedidentity"},
     "AzureWebJobsStorage__queueServiceUri"),
], ids=["nothing", "no credential", "one endpoint"])
def test_storage_settings_that_cannot_work_are_refused(values, setting):
    with pytest.raises(ConfigurationError) as refused:
        storage_account(Settings(**values), lambda client_id, name: None)
    assert setting in refused.value.message


def test_an_account_name_gives_the_public_endpoints():
    class Identity:
        def describe(self):
            return "the identity"
    account = storage_account(Settings(storage_account_name="bcsyncprod", storage_credential="managedidentity"),
                              lambda client_id, name: Identity())
    assert account.table_url == "https://bcsyncprod.table.core.windows.net"
    assert account.queue_url == "https://bcsyncprod.queue.core.windows.net"
    assert account.connection_string is None and account.credential is not None
