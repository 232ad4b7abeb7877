"""The token simulator's federated credentials and managed-identity endpoint check what Entra ID and
the platform check: the assertion's signature, issuer, subject, audience and lifetime; the identity
header. (Azurite does not check signatures, so the signature checks live here.)"""

from __future__ import annotations

import uuid

import pytest
import requests

from simulators.token import ASSERTION_TYPE, TOKEN_EXCHANGE_AUDIENCE, TokenIssuer


def token_request(stack, assertion: str) -> requests.Response:
    return requests.post(
        f"{stack.token_url}/{stack.issuer.tenant_id}/oauth2/v2.0/token", timeout=10, verify=str(stack.ca.ca_file),
        data={"grant_type": "client_credentials", "client_id": stack.ids.integration_client_id,
              "scope": "https://api.businesscentral.dynamics.com/.default",
              "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})


def identity_token(stack, issuer: TokenIssuer | None = None, **changes) -> str:
    identity = stack.ids.managed_identity
    claims = {"audience": TOKEN_EXCHANGE_AUDIENCE, "object_id": identity.principal_id}
    claims.update(changes)
    issuer = issuer or stack.issuer
    return issuer.access_token(claims.pop("audience"), app_id=identity.client_id, object_id=claims.pop("object_id"),
                               **claims)


def test_the_managed_identitys_token_is_a_valid_assertion(stack):
    answer = token_request(stack, identity_token(stack))
    assert answer.status_code == 200 and answer.json()["access_token"]


@pytest.mark.parametrize("make, code", [
    (lambda stack: identity_token(stack, issuer=_other_issuer(stack)), "AADSTS700027"),   # signed by someone else
    (lambda stack: identity_token(stack, object_id=str(uuid.uuid4())), "AADSTS700213"),  # another identity
    (lambda stack: identity_token(stack, audience="api://Other"), "AADSTS700212"),
    (lambda stack: identity_token(stack, lifetime_seconds=-600), "AADSTS700024"),
    (lambda stack: identity_token(stack, v1=True), "AADSTS700211"),                        # another issuer
], ids=["forged signature", "wrong subject", "wrong audience", "expired", "wrong issuer"])
def test_assertions_that_do_not_match_the_federated_credential_are_refused(stack, make, code):
    answer = token_request(stack, make(stack))
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client" and answer.json()["error_description"].startswith(code)


def _other_issuer(stack) -> TokenIssuer:
    other = TokenIssuer(tenant_id=stack.issuer.tenant_id)
    other.base_url = stack.issuer.base_url  # same issuer name, different signing key
    return other


def test_the_identity_endpoint_wants_its_header_and_an_assigned_identity(stack):
    params = {"api-version": "2019-08-01", "resource": "https://storage.azure.com",
              "client_id": stack.ids.managed_identity.client_id}
    assert requests.get(stack.identity_url, params=params, timeout=10).status_code == 401
    good = requests.get(stack.identity_url, params=params, headers={"X-IDENTITY-HEADER": stack.ids.identity_header},
                        timeout=10)
    assert good.status_code == 200 and int(good.json()["expires_on"]) > 0
    unknown = requests.get(stack.identity_url, params={**params, "client_id": str(uuid.uuid4())},
                           headers={"X-IDENTITY-HEADER": stack.ids.identity_header}, timeout=10)
    assert unknown.status_code == 400
