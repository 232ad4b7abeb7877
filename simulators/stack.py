"""The local stack: Azurite plus the token, Dataverse and Business Central simulators.

Used in-process by the tests (ephemeral ports) and as a background process by `make up`
(documented fixed ports). Knows the identities the way a real tenant would have them set up:
the integration app registration, its Dataverse application user and Business Central Entra
application, and one ordinary licensed user who signs in with a password.
"""

from __future__ import annotations

import json
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
from .token import Client, TokenIssuer, TokenServer, User

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

    @classmethod
    def documented(cls) -> "Ports":
        return cls(blob=10000, queue=10001, table=10002, token=7443, dataverse=7444, business_central=7445)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def azurite_connection_string(blob: int, queue: int, table: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{blob}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{queue}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{table}/{AZURITE_ACCOUNT};")


class Azurite:
    """The pinned Azurite from node_modules, in memory, as a child process."""

    def __init__(self, ports: Ports, log_file: Path):
        self.ports = ports
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    def start(self) -> "Azurite":
        binary = ROOT / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run `npm ci` (the Makefile does) in the project folder.")
        for name in ("blob", "queue", "table"):
            if not getattr(self.ports, name):
                setattr(self.ports, name, free_port())
        log = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            [str(binary), "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--silent",
             "--blobHost", "127.0.0.1", "--blobPort", str(self.ports.blob),
             "--queueHost", "127.0.0.1", "--queuePort", str(self.ports.queue),
             "--tableHost", "127.0.0.1", "--tablePort", str(self.ports.table)],
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
        return azurite_connection_string(self.ports.blob, self.ports.queue, self.ports.table)

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


class LocalStack:
    def __init__(self, folder: Path, ports: Ports | None = None, with_azurite: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = ports or Ports()
        self.ca = LocalCA(self.folder / "tls")
        self.issuer = TokenIssuer()
        self.ids = Identities()
        self.dataverse = DataverseSimulator(self.issuer)
        self.business_central = BusinessCentralSimulator(self.issuer, tenant_id=self.issuer.tenant_id)
        self.azurite = Azurite(self.ports, self.folder / "azurite.log") if with_azurite else None
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
        self.servers = [token, dv, bc]
        self.token_url, self.dataverse_url, self.bc_server_url = token.url, dv.url, bc.url
        self.issuer.add_client(Client(self.ids.integration_client_id, secret=self.ids.integration_secret,
                                      name="bcsync integration"))
        self.issuer.add_user(User(self.ids.user_name, self.ids.user_password, object_id=self.ids.user_object_id,
                                  name="Sam Sales"))
        self.reset()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.azurite:
            self.azurite.stop()

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
            "BCSYNC_TENANT_ID": self.issuer.tenant_id,
            "BCSYNC_AUTHORITY_HOST": self.token_url,
            "BCSYNC_CLIENT_ID": self.ids.integration_client_id,
            "BCSYNC_CLIENT_SECRET": self.ids.integration_secret,
            "BCSYNC_DATAVERSE_URL": self.dataverse_url,
            "BCSYNC_BC_URL": self.bc_url,
            "BCSYNC_BC_COMPANY_ID": self.business_central.company_id,
            "BCSYNC_BC_SCOPE": f"{BC_AUDIENCE}/.default",
            "BCSYNC_CA_BUNDLE": str(self.ca.ca_file),
        }
        values.update(overrides)
        return values

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
        }
