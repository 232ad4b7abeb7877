"""Entra ID (Azure AD) token endpoint simulator, and the managed-identity endpoint of a function app.

Speaks enough of the v2.0 endpoint for the real MSAL: the tenant's OpenID configuration, the token
endpoint for the client-credentials grant (client secret, certificate assertion, or a federated
assertion: another identity's token that the app registration's federated credential trusts) and the
resource-owner password grant (an ordinary user), the user realm lookup MSAL does before a password
grant, and the signing keys. Access tokens are RS256 JWTs with audience, expiry, tenant, app id and
object id. `TokenValidator` is what the resource simulators use to check a bearer token.

`ManagedIdentityServer` is the App Service / Functions identity endpoint (IDENTITY_ENDPOINT, checked
with the X-IDENTITY-HEADER secret) that MSAL's ManagedIdentityClient calls. As in Azure, a token for
storage is a v1 token (issuer https://sts.windows.net/<tenant>/), which is what Azurite accepts; other
resources get v2 tokens from the tenant's issuer.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .http import json_response

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# Resources whose tokens are v1 (Azure Storage accepts v1 tokens only; Azurite checks the v1 issuer).
V1_RESOURCES = frozenset({"https://storage.azure.com"})


@dataclass(frozen=True)
class FederatedCredential:
    """What an app registration trusts instead of a secret: tokens from `issuer` about `subject`
    (for a managed identity, its principal id) with `audience`."""

    issuer: str
    subject: str
    audience: str = TOKEN_EXCHANGE_AUDIENCE


@dataclass
class Client:
    """An app registration: client id, its secret, certificate and/or federated credentials, and its
    service principal."""

    client_id: str
    secret: str | None = None
    certificate_pem: bytes | None = None
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str = ""
    federated: list[FederatedCredential] = field(default_factory=list)

    def thumbprint(self) -> str | None:
        if not self.certificate_pem:
            return None
        cert = x509.load_pem_x509_certificate(self.certificate_pem)
        return cert.fingerprint(cert.signature_hash_algorithm.__class__()).hex().upper()


@dataclass
class ManagedIdentity:
    """A managed identity assigned to the function app: user-assigned ones have a client id of their own."""

    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    principal_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    system_assigned: bool = False


@dataclass
class User:
    """An ordinary user who signs in with a password (resource-owner password grant)."""

    username: str
    password: str
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str = ""


class TokenIssuer:
    """Issues and signs tokens for one tenant; shared by the token server and the validators."""

    def __init__(self, tenant_id: str | None = None, lifetime_seconds: int = 3599):
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.lifetime_seconds = lifetime_seconds
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = hashlib.sha1(
            self._key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).hexdigest()[:16]
        self.clients: dict[str, Client] = {}
        self.users: dict[str, User] = {}
        self.managed_identities: list[ManagedIdentity] = []
        self.base_url = ""  # set once the server knows its port
        self.issued = 0

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/v2.0"

    @property
    def v1_issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    def add_client(self, client: Client) -> Client:
        self.clients[client.client_id] = client
        return client

    def add_managed_identity(self, identity: ManagedIdentity) -> ManagedIdentity:
        self.managed_identities.append(identity)
        return identity

    def add_user(self, user: User) -> User:
        self.users[user.username.lower()] = user
        return user

    def public_key(self):
        return self._key.public_key()

    def sign(self, claims: dict) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})

    def access_token(self, audience: str, *, app_id: str, object_id: str, extra: dict | None = None,
                     v1: bool = False, lifetime_seconds: int | None = None) -> str:
        now = int(time.time())
        lifetime = self.lifetime_seconds if lifetime_seconds is None else lifetime_seconds
        claims = {
            "aud": audience,
            "iss": self.v1_issuer if v1 else self.issuer,
            "iat": min(now, now + lifetime),
            "nbf": min(now, now + lifetime),
            "exp": now + lifetime,
            "tid": self.tenant_id,
            "appid": app_id,
            "azp": app_id,
            "oid": object_id,
            "sub": object_id,
            "ver": "1.0" if v1 else "2.0",
        }
        claims.update(extra or {})
        self.issued += 1
        return self.sign(claims)


class TokenError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class TokenServer:
    """WSGI app of the token endpoint."""

    def __init__(self, issuer: TokenIssuer):
        self.issuer = issuer
        self.url_map = Map([
            Rule("/<tenant>/v2.0/.well-known/openid-configuration", endpoint="openid"),
            Rule("/<tenant>/oauth2/v2.0/token", endpoint="token", methods=["POST"]),
            Rule("/<tenant>/discovery/v2.0/keys", endpoint="keys"),
            Rule("/common/userrealm/<path:username>", endpoint="userrealm"),
        ])

    def __call__(self, environ, start_response):
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
        except Exception:
            return json_response({"error": "not_found"}, 404)(environ, start_response)
        response = getattr(self, f"on_{endpoint}")(request, **args)
        return response(environ, start_response)

    def _check_tenant(self, tenant: str) -> None:
        if tenant not in (self.issuer.tenant_id, "organizations", "common"):
            raise TokenError(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found.")

    def on_openid(self, request: Request, tenant: str) -> Response:
        try:
            self._check_tenant(tenant)
        except TokenError as exc:
            return json_response({"error": exc.error, "error_description": exc.description}, exc.status)
        base = f"{self.issuer.base_url}/{self.issuer.tenant_id}"
        return json_response({
            "issuer": self.issuer.issuer,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
        })

    def on_keys(self, request: Request, tenant: str) -> Response:
        numbers = self.issuer.public_key().public_numbers()

        def b64(value: int) -> str:
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return json_response({"keys": [{"kty": "RSA", "use": "sig", "kid": self.issuer.key_id, "n": b64(numbers.n), "e": b64(numbers.e)}]})

    def on_userrealm(self, request: Request, username: str) -> Response:
        return json_response({"ver": "1.0", "account_type": "Managed", "domain_name": username.split("@")[-1],
                              "cloud_instance_name": "microsoftonline.com"})

    def on_token(self, request: Request, tenant: str) -> Response:
        try:
            self._check_tenant(tenant)
            form = request.form
            grant = form.get("grant_type")
            audience = self._audience(form.get("scope", ""))
            if grant == "client_credentials":
                client = self._authenticate_client(form)
                token = self.issuer.access_token(audience, app_id=client.client_id, object_id=client.object_id,
                                                 extra={"idtyp": "app"})
            elif grant == "password":
                client_id = form.get("client_id", "")
                user = self.issuer.users.get(form.get("username", "").lower())
                if user is None or user.password != form.get("password"):
                    raise TokenError(400, "invalid_grant", "AADSTS50126: Error validating credentials due to invalid username or password.")
                token = self.issuer.access_token(audience, app_id=client_id, object_id=user.object_id,
                                                 extra={"upn": user.username, "name": user.name, "scp": "user_impersonation"})
            else:
                raise TokenError(400, "unsupported_grant_type", f"AADSTS70003: The app requested an unsupported grant type '{grant}'.")
        except TokenError as exc:
            codes = [int(code) for code in re.findall(r"^AADSTS(\d+)", exc.description)]
            return json_response({"error": exc.error, "error_description": exc.description, "error_codes": codes}, exc.status)
        return json_response({"token_type": "Bearer", "expires_in": self.issuer.lifetime_seconds,
                              "ext_expires_in": self.issuer.lifetime_seconds, "access_token": token})

    @staticmethod
    def _audience(scope: str) -> str:
        scopes = [s for s in scope.split() if s not in ("openid", "profile", "offline_access")]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise TokenError(400, "invalid_scope", f"AADSTS70011: The provided value for the input parameter 'scope' is not valid: '{scope}'.")
        return scopes[0][: -len("/.default")]

    def _authenticate_client(self, form) -> Client:
        client = self.issuer.clients.get(form.get("client_id", ""))
        if client is None:
            raise TokenError(400, "unauthorized_client",
                             f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the directory.")
        if form.get("client_secret") is not None:
            if client.secret is None or form["client_secret"] != client.secret:
                raise TokenError(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
            return client
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            assertion = form.get("client_assertion", "")
            if _unverified_claims(assertion).get("iss") == client.client_id and client.certificate_pem:
                self._verify_assertion(client, assertion)
            else:
                self._verify_federated(client, assertion)
            return client
        raise TokenError(401, "invalid_client", "AADSTS7000216: 'client_assertion' or 'client_secret' is required.")

    def _verify_assertion(self, client: Client, assertion: str) -> None:
        cert = x509.load_pem_x509_certificate(client.certificate_pem)
        try:
            claims = jwt.decode(assertion, cert.public_key(), algorithms=["RS256", "PS256"],
                                options={"verify_aud": False})
        except jwt.PyJWTError as exc:
            raise TokenError(401, "invalid_client", f"AADSTS700027: Client assertion failed signature validation. {exc}")
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise TokenError(401, "invalid_client", "AADSTS700023: Client assertion issuer or subject does not match the client id.")

    def _verify_federated(self, client: Client, assertion: str) -> None:
        """A token from a trusted issuer (here: this tenant's own, for a managed identity) stands in for
        a secret when a federated credential of the app names its issuer, subject and audience."""
        claims = _unverified_claims(assertion)
        issuer, subject, audience = claims.get("iss"), claims.get("sub"), claims.get("aud")
        trusted = [f for f in client.federated if f.issuer == issuer]
        if not trusted:
            raise TokenError(401, "invalid_client", "AADSTS700211: No matching federated identity record found for "
                                                    f"presented assertion issuer '{issuer}'.")
        trusted = [f for f in trusted if f.subject == subject]
        if not trusted:
            raise TokenError(401, "invalid_client", "AADSTS700213: No matching federated identity record found for "
                                                    f"presented assertion subject '{subject}'.")
        if not any(f.audience == audience for f in trusted):
            raise TokenError(401, "invalid_client", "AADSTS700212: No matching federated identity record found for "
                                                    f"presented assertion audience '{audience}'.")
        try:
            jwt.decode(assertion, self.issuer.public_key(), algorithms=["RS256"], audience=audience, issuer=issuer)
        except jwt.ExpiredSignatureError:
            raise TokenError(401, "invalid_client", "AADSTS700024: Client assertion is not within its valid time range.")
        except jwt.PyJWTError as exc:
            raise TokenError(401, "invalid_client", f"AADSTS700027: Client assertion failed signature validation. {exc}")


def _unverified_claims(assertion: str) -> dict:
    try:
        return jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenError(400, "invalid_request", "AADSTS50027: JWT token is invalid or malformed.") from None


class ManagedIdentityServer:
    """WSGI app of the App Service / Functions managed-identity endpoint (plain HTTP on loopback, as
    the platform serves it inside the sandbox): GET ?api-version=2019-08-01&resource=...[&client_id=...]
    with the X-IDENTITY-HEADER secret."""

    API_VERSION = "2019-08-01"

    def __init__(self, issuer: TokenIssuer, header_secret: str):
        self.issuer = issuer
        self.header_secret = header_secret
        self.lifetime_seconds: int | None = None  # tests set a negative one to hand out expired tokens
        self.issued = 0

    def __call__(self, environ, start_response):
        request = Request(environ)
        response = self._token(request) if request.method == "GET" else \
            json_response({"statusCode": 405, "message": "Only GET is supported."}, 405)
        return response(environ, start_response)

    def _token(self, request: Request) -> Response:
        if request.headers.get("X-IDENTITY-HEADER") != self.header_secret:
            return json_response({"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong."}, 401)
        if request.args.get("api-version") != self.API_VERSION:
            return json_response({"statusCode": 400, "message": f"api-version must be {self.API_VERSION}."}, 400)
        resource = (request.args.get("resource") or "").rstrip("/")
        if not resource:
            return json_response({"statusCode": 400, "message": "The resource parameter is required."}, 400)
        identity = self._identity(request.args.get("client_id"))
        if identity is None:
            return json_response({"statusCode": 400, "message": "No managed identity with client id "
                                  f"'{request.args.get('client_id') or '(system-assigned)'}' is assigned to this app."}, 400)
        v1 = resource in V1_RESOURCES
        token = self.issuer.access_token(resource, app_id=identity.client_id, object_id=identity.principal_id,
                                         extra={"idtyp": "app", "xms_mirid": "/managedIdentity"}, v1=v1,
                                         lifetime_seconds=self.lifetime_seconds)
        self.issued += 1
        claims = jwt.decode(token, options={"verify_signature": False})
        return json_response({"access_token": token, "expires_on": str(claims["exp"]), "resource": resource,
                              "token_type": "Bearer", "client_id": identity.client_id})

    def _identity(self, client_id: str | None) -> ManagedIdentity | None:
        for identity in self.issuer.managed_identities:
            if (client_id and identity.client_id == client_id) or (not client_id and identity.system_assigned):
                return identity
        return None


class TokenValidator:
    """What a resource server does with `Authorization: Bearer ...`: signature, audience, expiry."""

    def __init__(self, issuer: TokenIssuer, audiences: tuple[str, ...]):
        self.issuer = issuer
        self.audiences = audiences

    def validate(self, authorization: str | None) -> dict | None:
        """Return the token claims, or None when the token is missing or invalid."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        token = authorization.split(" ", 1)[1].strip()
        try:
            return jwt.decode(token, self.issuer.public_key(), algorithms=["RS256"], audience=list(self.audiences),
                              issuer=self.issuer.issuer)
        except jwt.PyJWTError:
            return None
