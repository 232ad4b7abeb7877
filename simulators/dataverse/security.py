"""Security roles, as far as a caller of the Web API meets them.

Every user holds every privilege at organization (Global) depth, as with the System Administrator role,
except those a test revokes from a user (what removing a privilege from the user's security role does).
A privilege is named `prv<Access><Table>` after the table's schema name; a few child tables have none of
their own and are governed by their parent's (an invoice line by the invoice's). A request that needs a
revoked privilege is refused with 403 0x80040220, naming the privilege; `RetrieveUserPrivileges` lists
what the user holds.
"""

from __future__ import annotations

import uuid

from .errors import DataverseError
from .schema import Entity, Schema

ACCESS_BY_METHOD = {"GET": "Read", "POST": "Create", "PATCH": "Write", "PUT": "Write", "DELETE": "Delete"}
ACCESS_BY_ACTION = {"CreateMultiple": ("Create",), "UpdateMultiple": ("Write",), "UpsertMultiple": ("Create", "Write")}
ACCESS_KINDS = ("Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share")
PRIVILEGE_TABLE = {"systemuser": "User"}
PARENT = {"invoicedetail": "invoice", "salesorderdetail": "salesorder", "quotedetail": "quote",
          "opportunityproduct": "opportunity"}
MISSING_PRIVILEGE = "0x80040220"


def privilege_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"dataverse-privilege/{name}"))


class Security:
    def __init__(self, schema: Schema):
        self.schema = schema
        self.revoked: dict[str, set[str]] = {}  # systemuserid -> privilege names taken from its role

    def privilege(self, entity: Entity, access: str) -> str:
        governing = self.schema.get(PARENT.get(entity.logical_name, "")) or entity
        return f"prv{access}{PRIVILEGE_TABLE.get(governing.logical_name, governing.schema_name)}"

    def revoke(self, user_id: str, names: list[str]) -> None:
        self.revoked.setdefault(user_id.lower(), set()).update(names)

    def clear(self) -> None:
        self.revoked.clear()

    def demand(self, user_id: str, entity: Entity, accesses: tuple[str, ...]) -> None:
        for access in accesses:
            name = self.privilege(entity, access)
            if name in self.revoked.get(user_id.lower(), ()):
                raise DataverseError(403, MISSING_PRIVILEGE, (
                    f"Principal user (Id={user_id}, type=8, roleCount=1), is missing {name} privilege "
                    f"(Id={privilege_id(name)}) on OTC={entity.object_type_code} for entity "
                    f"'{entity.logical_name}'."))

    def role_privileges(self, user_id: str, business_unit_id: str) -> list[dict]:
        """What RetrieveUserPrivileges answers: every privilege the user's roles grant, with its depth."""
        revoked = self.revoked.get(user_id.lower(), set())
        names = sorted({self.privilege(entity, access) for entity in self.schema.entities.values()
                        for access in ACCESS_KINDS} - revoked)
        return [{"Depth": "Global", "PrivilegeId": privilege_id(name), "BusinessUnitId": business_unit_id,
                 "PrivilegeName": name} for name in names]
