"""The connection check's view of the services and of storage (sync.ports.ConnectionProbe): reads only.

Dataverse names a privilege `prv<Access><Table>` with the table's schema name (prvWriteAccount); the
privileges a user holds through all its security roles are one function call (RetrieveUserPrivileges).
A few tables have no privileges of their own and follow their parent's (an invoice line, the invoice's).
"""

from __future__ import annotations

import re
from typing import Callable

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from sync.errors import AuthenticationError, ConfigurationError
from sync.model import BcTable, CrmTable, Side
from sync.ports import ApplicationUser, Fact, SystemClock, Table

from . import businesscentral, dataverse
from .auth import SignIn
from .settings import Settings
from .storage import TABLE_NAMES, StateTable, StorageAccount, TableStorage, storage_errors

NOT_A_MEMBER = "0x80072560"   # the app registration has no application user in the environment
USER_DISABLED = "0x80040225"
_PRIVILEGE = re.compile(r"^prv(AppendTo|Append|Assign|Create|Delete|Read|Share|Write)(\w+)$")
# privilege depth as the service names it (or numbers it) -> how the check reports it
DEPTHS = {"basic": "user", "0": "user", "local": "business unit", "1": "business unit",
          "deep": "parent business unit", "2": "parent business unit", "global": "organization", "3": "organization"}
_WIDTH = ["user", "business unit", "parent business unit", "organization"]
PRIVILEGE_TABLE = {"user": "systemuser"}  # privilege names that are not the table's name
PARENT_PRIVILEGES = {"invoicedetail": "invoice", "salesorderdetail": "salesorder", "quotedetail": "quote",
                     "opportunityproduct": "opportunity"}


def held_privileges(role_privileges: list[dict]) -> dict[str, dict[str, str]]:
    """RetrieveUserPrivileges' RolePrivileges as table -> access -> the widest depth any role grants."""
    held: dict[str, dict[str, str]] = {}
    for privilege in role_privileges:
        match = _PRIVILEGE.match(str(privilege.get("PrivilegeName", "")))
        depth = DEPTHS.get(str(privilege.get("Depth", "")).lower())
        if match is None or depth is None:
            continue
        table = match.group(2).lower()
        access, kind = held.setdefault(PRIVILEGE_TABLE.get(table, table), {}), match.group(1)
        if kind not in access or _WIDTH.index(depth) > _WIDTH.index(access[kind]):
            access[kind] = depth  # several roles may grant one privilege: the widest depth counts
    for child, parent in PARENT_PRIVILEGES.items():
        if parent in held:
            held[child] = held[parent]
    return held


class ServiceProbe:
    """What the connection check reads, through the clients bcsync runs with (their token caches, retries and
    error classification). The clients are built on first use: a setting they need and lack is an error of
    the check that uses them, not of the whole check."""

    def __init__(self, settings: Settings, sign_in: SignIn, dataverse_client: Callable[[], dataverse.DataverseClient],
                 bc_client: Callable[[], businesscentral.BusinessCentralClient],
                 storage_account: Callable[[], StorageAccount]):
        self.settings = settings
        self.sign_in_ = sign_in
        self.dataverse = dataverse_client
        self.business_central = bc_client
        self.storage_account = storage_account

    def identity(self, side: Side) -> str:
        return f"the app registration {self.settings.client_id}"

    def sign_in(self, side: Side) -> None:
        self.settings.check_services()
        scope = self.settings.bc_scope if side is Side.BC else f"{self.settings.dataverse_url.rstrip('/')}/.default"
        self.sign_in_.tokens_for(scope)()

    def application_user(self) -> ApplicationUser:
        client = self.dataverse()
        try:
            user_id = client.whoami()["UserId"]
        except AuthenticationError as exc:
            if exc.code == NOT_A_MEMBER:
                return ApplicationUser(found=False)
            if exc.code == USER_DISABLED:
                return ApplicationUser(found=True, name=self.identity(Side.CRM), disabled=True)
            raise
        row = client.api.get_json(f"{dataverse.API_PATH}/systemusers({user_id})",
                                  params={"$select": "fullname,isdisabled"}, headers=client.HEADERS)
        return ApplicationUser(found=True, id=str(user_id).lower(), name=row.get("fullname") or str(user_id),
                               disabled=bool(row.get("isdisabled")))

    def privileges(self, user_id: str) -> dict[str, dict[str, str]]:
        client = self.dataverse()
        answer = client.api.get_json(
            f"{dataverse.API_PATH}/systemusers({user_id})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()",
            headers=client.HEADERS)
        return held_privileges(answer.get("RolePrivileges") or [])

    def company(self) -> str:
        return self.business_central().read_company_name()  # asked every time: the client keeps the name it read

    def companies(self) -> list[tuple[str, str]]:
        return [(c.get("id", ""), c.get("name", "")) for c in self.business_central().companies()]

    def read_one(self, side: Side, table: Table, where: str = "") -> None:
        if isinstance(table, BcTable):
            next(iter(self.business_central().pages(table, filter=where, top=1, page_size=1)), None)
        elif isinstance(table, CrmTable):
            next(iter(self.dataverse().pages(table.entity_set, select=[table.primary_id], filter=where, top=1)), None)

    def storage(self) -> list[str]:
        """Each table and the queue, read once without retries (a check answers in seconds); the ones that
        do not exist yet."""
        account, prefix, missing = self.storage_account(), self.settings.table_prefix, []
        for name in TABLE_NAMES:
            client = account.table_client(f"{prefix}{name}", retry_total=0)
            if not self._exists(lambda: next(iter(client.query_entities("PartitionKey eq 'check'",
                                                                        results_per_page=1)), None)):
                missing.append(f"table {prefix}{name}")
        queue = account.queue_client(self.settings.queue_name, retry_total=0)
        if not self._exists(queue.get_queue_properties):
            missing.append(f"queue {self.settings.queue_name}")
        return missing

    @staticmethod
    def _exists(read: Callable[[], object]) -> bool:
        with storage_errors():
            try:
                read()
            except ResourceNotFoundError:
                return False
            except HttpResponseError as exc:  # a 4xx other than a refusal: a name the service does not accept
                if (exc.status_code or 500) >= 500:
                    raise
                raise ConfigurationError(f"Azure Storage refused a read: {exc.reason} "
                                         f"({str(exc.message).splitlines()[0]})") from None
        return True

    def kept_facts(self) -> dict[str, Fact]:
        storage = TableStorage(self.storage_account(), self.settings.table_prefix, read_only=True)
        state = StateTable(storage, SystemClock())
        try:
            return state.facts()
        except ResourceNotFoundError:
            return {}
