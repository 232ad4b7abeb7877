"""The local stack: Azurite plus the token, Dataverse and Business Central simulators.

Used in-process by the tests (ephemeral ports) and as a background process by `make up`
(documented fixed ports). Knows the identities the way a real tenant would have them set up:
the integration app registration, its Dataverse application user and Business Central Entra
application, and one ordinary licensed user who signs in with a password.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .businesscentral import BusinessCentralSimulator
from .dataverse import DataverseSimulator
from .http import SimServer
from .tls import LocalCA
from .token import (
    TOKEN_EXCHANGE_AUDIENCE,
    Client,
    FederatedCredential,
    ManagedIdentity,
    ManagedIdentityServer,
    TokenIssuer,
    TokenServer,
    User,
)

ROOT = Path(__file__).resolve().parent.parent
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BC_AUDIENCE = "https://api.businesscentral.dynamics.com"


@dataclass
class Ports:
    """0 means any free port (tests); `make up` uses the documented defaults."""

    blob: int = 0
    queue: int = 0
    table: int = 0
    token: int = 0
    dataverse: int = 0
    business_central: int = 0
    identity: int = 0

    @classmethod
    def documented(cls) -> "Ports":
        return cls(blob=10000, queue=10001, table=10002, token=7443, dataverse=7444, business_central=7445,
                   identity=7446)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def azurite_connection_string(blob: int, queue: int, table: int, scheme: str = "http") -> str:
    return (f"DefaultEndpointsProtocol={scheme};AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={scheme}://127.0.0.1:{blob}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint={scheme}://127.0.0.1:{queue}/{AZURITE_ACCOUNT};"
            f"TableEndpoint={scheme}://127.0.0.1:{table}/{AZURITE_ACCOUNT};")


class Azurite:
    """The pinned Azurite from node_modules, in memory, as a child process.

    With `tls` (certificate and key files) it serves HTTPS and accepts OAuth bearer tokens besides the
    account key (`--oauth basic`: issuer, audience and expiry are checked, signatures are not)."""

    def __init__(self, ports: Ports, log_file: Path, tls: tuple[Path, Path] | None = None):
        self.ports = ports
        self.log_file = log_file
        self.tls = tls
        self.process: subprocess.Popen | None = None

    def start(self) -> "Azurite":
        binary = ROOT / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run `npm ci` (the Makefile does) in the project folder.")
        for name in ("blob", "queue", "table"):
            if not getattr(self.ports, name):
                setattr(self.ports, name, free_port())
        log = open(self.log_file, "ab")
        # AZURITE_CPU_PROFILE=<folder>: node writes a CPU profile of Azurite there when it stops (for `make bench`)
        profile = os.environ.get("AZURITE_CPU_PROFILE")
        node = ["node", "--cpu-prof", "--cpu-prof-dir", profile] if profile else []
        self.process = subprocess.Popen(
            [*node, str(binary), "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--silent",
             "--blobHost", "127.0.0.1", "--blobPort", str(self.ports.blob),
             "--queueHost", "127.0.0.1", "--queuePort", str(self.ports.queue),
             "--tableHost", "127.0.0.1", "--tablePort", str(self.ports.table),
             *(["--oauth", "basic", "--cert", str(self.tls[0]), "--key", str(self.tls[1])] if self.tls else [])],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + 30
        for port in (self.ports.queue, self.ports.table):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"Azurite exited; see {self.log_file}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Azurite did not listen on {port}; see {self.log_file}")
                    time.sleep(0.1)
        return self

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.ports.blob, self.ports.queue, self.ports.table,
                                         "https" if self.tls else "http")

    def service_uri(self, service: str) -> str:
        """`https://127.0.0.1:<port>/devstoreaccount1`: what AzureWebJobsStorage__<service>ServiceUri names."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{getattr(self.ports, service)}/{AZURITE_ACCOUNT}"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class Identities:
    """App registrations and users of the simulated tenant."""

    integration_client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    integration_secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    integration_user_id: str = ""          # its Dataverse application user (systemuserid)
    user_name: str = "sam.sales@contoso.com"
    user_password: str = field(default_factory=lambda: uuid.uuid4().hex)
    user_object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    user_systemuser_id: str = ""
    public_client_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the app Sam signs in with
    # the function app's user-assigned managed identity, trusted by the integration app's federated credential
    managed_identity: ManagedIdentity = field(default_factory=ManagedIdentity)
    identity_header: str = field(default_factory=lambda: uuid.uuid4().hex)  # what the platform puts in IDENTITY_HEADER


class LocalStack:
    def __init__(self, folder: Path, ports: Ports | None = None, with_azurite: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = ports or Ports()
        self.ca = LocalCA(self.folder / "tls")
        self.issuer = TokenIssuer()
        self.ids = Identities()
        self.dataverse = DataverseSimulator(self.issuer, any_webhook_port=True)  # bcsync's receivers: any port
        self.business_central = BusinessCentralSimulator(self.issuer, tenant_id=self.issuer.tenant_id)
        self.azurite = Azurite(self.ports, self.folder / "azurite.log") if with_azurite else None
        self.secure_azurite: Azurite | None = None
        self.managed_identity_endpoint = ManagedIdentityServer(self.issuer, self.ids.identity_header)
        self.servers: list[SimServer] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "LocalStack":
        if self.azurite:
            self.azurite.start()
        context = self.ca.server_context()
        token = SimServer(TokenServer(self.issuer), self.ports.token, context).start()
        self.issuer.base_url = token.url
        dv = SimServer(self.dataverse.app, self.ports.dataverse, context).start()
        bc = SimServer(self.business_central.app, self.ports.business_central, context).start()
        identity = SimServer(self.managed_identity_endpoint, self.ports.identity).start()  # plain HTTP, as in Azure
        self.servers = [token, dv, bc, identity]
        self.token_url, self.dataverse_url, self.bc_server_url = token.url, dv.url, bc.url
        self.identity_url = f"{identity.url}/msi/token"
        self.issuer.add_managed_identity(self.ids.managed_identity)
        self.issuer.add_client(Client(
            self.ids.integration_client_id, secret=self.ids.integration_secret, name="bcsync integration",
            federated=[FederatedCredential(self.issuer.issuer, self.ids.managed_identity.principal_id,
                                           TOKEN_EXCHANGE_AUDIENCE)]))
        self.issuer.add_user(User(self.ids.user_name, self.ids.user_password, object_id=self.ids.user_object_id,
                                  name="Sam Sales"))
        self.reset()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        for azurite in (self.azurite, self.secure_azurite):
            if azurite:
                azurite.stop()

    def start_secure_storage(self) -> Azurite:
        """A second Azurite over HTTPS that accepts bearer tokens, for the secretless path (started once)."""
        if self.secure_azurite is None:
            self.secure_azurite = Azurite(Ports(), self.folder / "azurite-oauth.log", tls=self.ca.server_files()).start()
        return self.secure_azurite

    def reset(self) -> None:
        """Both services back to an empty org/company with only the identities set up."""
        self.dataverse.reset()
        self.business_central.reset()
        self.dataverse.faults.clear()
        self.business_central.faults.clear()
        self.ids.integration_user_id, self.ids.user_systemuser_id = self.dataverse.seed("systemuser", [
            {"firstname": "#", "lastname": "bcsync integration", "fullname": "# bcsync integration",
             "applicationid": self.ids.integration_client_id, "islicensed": False, "isintegrationuser": True,
             "accessmode": 4, "internalemailaddress": "bcsync-integration@contoso.com"},
            {"firstname": "Sam", "lastname": "Sales", "fullname": "Sam Sales", "islicensed": True,
             "azureactivedirectoryobjectid": self.ids.user_object_id, "internalemailaddress": self.ids.user_name,
             "domainname": self.ids.user_name, "mobilephone": "+1 425 555 0100"},
        ])
        self.business_central.register_application(self.ids.integration_client_id, "bcsync integration")
        self.business_central.register_user(self.ids.user_object_id, "SAM")

    # -- what clients need -----------------------------------------------------------------------

    @property
    def bc_url(self) -> str:
        return self.bc_server_url + self.business_central.root_path

    @property
    def storage_connection(self) -> str:
        if not self.azurite:
            raise RuntimeError("this stack runs without Azurite")
        return self.azurite.connection_string

    def settings_values(self, **overrides: str) -> dict[str, str]:
        """The app settings a bcsync worker needs against this stack (local.settings.json Values)."""
        values = {
            "AzureWebJobsStorage": self.storage_connection if self.azurite else "",
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "FUNCTIONS_EXTENSION_VERSION": "~4",
            "BCSYNC_TENANT_ID": self.issuer.tenant_id,
            "BCSYNC_AUTHORITY_HOST": self.token_url,
            "BCSYNC_CLIENT_ID": self.ids.integration_client_id,
            "BCSYNC_CLIENT_SECRET": self.ids.integration_secret,
            "BCSYNC_DATAVERSE_URL": self.dataverse_url,
            "BCSYNC_BC_URL": self.bc_url,
            "BCSYNC_BC_COMPANY_ID": self.business_central.company_id,
            "BCSYNC_BC_SCOPE": f"{BC_AUDIENCE}/.default",
            "BCSYNC_CA_BUNDLE": str(self.ca.ca_file),
            # the Functions host resolves %BCSYNC_SCHEDULE% and %BCSYNC_QUEUE_NAME% in the bindings from the
            # settings alone (code defaults do not apply there), so `func start` needs them written out
            "BCSYNC_SCHEDULE": "0 */5 * * * *",
            "BCSYNC_QUEUE_NAME": "bcsync-jobs",
        }
        values.update(overrides)
        return values

    def secretless_settings_values(self, **overrides: str) -> dict[str, str]:
        """Settings with no secret and no storage key: storage over HTTPS with the managed identity's tokens,
        and the integration app signed in through its federated credential. The process also needs
        `identity_environment()`, which the platform sets in Azure."""
        storage = self.start_secure_storage()
        client_id = self.ids.managed_identity.client_id
        values = {k: v for k, v in self.settings_values().items()
                  if k not in ("AzureWebJobsStorage", "BCSYNC_CLIENT_SECRET")}
        values.update({
            "AzureWebJobsStorage__tableServiceUri": storage.service_uri("table"),
            "AzureWebJobsStorage__queueServiceUri": storage.service_uri("queue"),
            "AzureWebJobsStorage__blobServiceUri": storage.service_uri("blob"),
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": client_id,
            "BCSYNC_CLIENT_CREDENTIAL": "managedidentity",
            "BCSYNC_MANAGED_IDENTITY_CLIENT_ID": client_id,
        })
        values.update(overrides)
        return values

    def identity_environment(self) -> dict[str, str]:
        """What App Service / Functions sets in the environment of a process with a managed identity."""
        return {"IDENTITY_ENDPOINT": self.identity_url, "IDENTITY_HEADER": self.ids.identity_header}

    def user_token(self, resource: str) -> str:
        """A token for the ordinary user (password grant, as a person signing in)."""
        response = requests.post(
            f"{self.token_url}/{self.issuer.tenant_id}/oauth2/v2.0/token",
            data={"grant_type": "password", "client_id": self.ids.public_client_id, "username": self.ids.user_name,
                  "password": self.ids.user_password, "scope": f"{resource}/.default"},
            verify=str(self.ca.ca_file), timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]

    def write_settings_file(self, path: Path) -> None:
        path.write_text(json.dumps({"IsEncrypted": False, "Values": self.settings_values()}, indent=2) + "\n")

    def describe(self) -> dict:
        return {
            "token": self.token_url, "dataverse": self.dataverse_url, "business_central": self.bc_url,
            "azurite": {"blob": self.ports.blob, "queue": self.ports.queue, "table": self.ports.table},
            "tenant_id": self.issuer.tenant_id, "bc_company_id": self.business_central.company_id,
            "integration_client_id": self.ids.integration_client_id, "integration_user_id": self.ids.integration_user_id,
            "user": {"name": self.ids.user_name, "password": self.ids.user_password,
                     "public_client_id": self.ids.public_client_id, "systemuserid": self.ids.user_systemuser_id},
            "ca_file": str(self.ca.ca_file),
            "managed_identity": {"endpoint": self.identity_url, "client_id": self.ids.managed_identity.client_id,
                                 "principal_id": self.ids.managed_identity.principal_id,
                                 "identity_header": self.ids.identity_header},
        }
