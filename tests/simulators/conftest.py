"""What both simulator test modules need: a test CA and a token endpoint serving it over TLS."""

from __future__ import annotations

from dataclasses import dataclass

import msal
import pytest
import requests

from simulators.http import SimServer
from simulators.tls import LocalCA
from simulators.token import Client, TokenIssuer, TokenServer


@dataclass
class Tenant:
    ca: LocalCA
    issuer: TokenIssuer
    token_url: str

    def session(self, token: str | None = None) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
        session.verify = str(self.ca.ca_file)
        if token is not None:
            session.headers["Authorization"] = f"Bearer {token}"
        return session

    def msal_app(self, client: Client) -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            client.client_id, client_credential=client.secret,
            authority=f"{self.token_url}/{self.issuer.tenant_id}", instance_discovery=False,
            http_client=self.session())

    def serve(self, app) -> SimServer:
        return SimServer(app, ssl_context=self.ca.server_context()).start()


@pytest.fixture(scope="module")
def tenant(tmp_path_factory):
    ca = LocalCA(tmp_path_factory.mktemp("ca"))
    issuer = TokenIssuer()
    server = SimServer(TokenServer(issuer), ssl_context=ca.server_context()).start()
    issuer.base_url = server.url
    yield Tenant(ca, issuer, server.url)
    server.stop()
