"""Changes the services push (webhooks): what a receiver makes of a notification, what bcsync keeps registered at
each service, and which tables it hooks.

Business Central sends a notification per changed record (or one "collection" notification for a burst) to a
subscription's URL; Dataverse posts the execution context of a registered step (Create, Update, Delete) to a service
endpoint. The receivers (shared/) only check a notification and hand it over as `Notification`s; what they name is
read from its service again by a targeted job, so a notification alone never decides what is written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, Sequence

from .mappings import Catalog
from .model import BcTable, CrmTable, Side, TableMapping

# The receivers' routes under the function app's route prefix ("api"): BCSYNC_WEBHOOK_URL + "/api/" + route.
BC_ROUTE = "webhooks/businesscentral"
CRM_ROUTE = "webhooks/dataverse"

# Business Central API v2.0 entity sets that take webhook subscriptions (Microsoft's documented list); a table read
# from another entity set or from a page web service is found by the scheduled runs only.
BC_HOOKABLE = frozenset({
    "accounts", "companyInformation", "countriesRegions", "currencies", "customerPaymentJournals", "customers",
    "dimensions", "employees", "generalLedgerEntries", "itemCategories", "items", "journals", "paymentMethods",
    "paymentTerms", "purchaseInvoices", "salesCreditMemos", "salesInvoices", "salesOrders", "salesQuotes",
    "shipmentMethods", "unitsOfMeasure", "vendors",
})


class Change(str, Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    COLLECTION = "collection"  # many rows of the table changed: read its changes as a scheduled job does


@dataclass(frozen=True)
class Notification:
    """One change a service told of. Nothing in it is trusted beyond "look at this row (or table) again"."""

    side: Side           # where the change happened
    table: str           # Business Central: the API entity set ("customers"); Sales: the logical name ("account")
    change: Change
    record_id: str = ""  # the row's id; empty for a collection
    company_id: str = ""  # Business Central: the company of the resource; empty on the Sales side


class HookState(str, Enum):
    ACTIVE = "active"      # registered and not about to expire
    EXPIRING = "expiring"  # registered, but expires within a day: the timer renews it
    STALE = "stale"        # registered with an earlier URL or key: the next registration replaces it
    CREATED = "created"    # registered just now
    RENEWED = "renewed"    # its expiry moved on just now
    REMOVED = "removed"    # removed just now
    MISSING = "missing"    # wanted, but not registered at the service
    FAILED = "failed"      # the service refused it: `detail` says why


@dataclass(frozen=True)
class Hook:
    """One registration at a service: a Business Central subscription, or a Dataverse step (one per message and
    table; the service endpoint they share is reported with table "")."""

    side: Side
    table: str                          # entity set or logical name, as in Notification
    hook_id: str                        # the subscription's or step's id at the service ("" when missing)
    state: HookState
    expires: dt.datetime | None = None  # Business Central subscriptions expire; Dataverse steps do not
    detail: str = ""                    # the message (Create, Update, Delete), or why it failed

    def to_dict(self) -> dict:
        return {"side": self.side.value, "table": self.table, "id": self.hook_id, "state": self.state.value,
                "expires": self.expires.isoformat() if self.expires else None, "detail": self.detail}


class Registrar(Protocol):
    """One service's webhook registrations, by the receiver URL they post to (shared/ implements it per service).
    Every call is idempotent: register twice and nothing is registered twice."""

    side: Side

    def register(self, tables: Sequence[str], url: str, key: str, renewing: bool = False) -> list[Hook]:
        """Make sure each table is hooked to `url`, authenticated with `key`: create what is missing or gone, renew
        what expires soon (Business Central), remove what this receiver has for tables no longer wanted.
        `renewing` (the timer's call, every few minutes): the fewest requests that keep it working; what exists is
        read, not written again."""
        ...

    def hooks(self, url: str, key: str | None, tables: Sequence[str] = ()) -> list[Hook]:
        """What is registered at the service for `url` (or with `key`) now, then each hook `tables` want that is not
        there (MISSING: a Business Central entity set, a Dataverse message of a table); read only."""
        ...

    def remove(self, url: str, key: str | None) -> list[Hook]:
        """Remove everything registered for `url` (or with `key`); returns what went."""
        ...


def hooked_table(mapping: TableMapping, side: Side) -> str:
    """The name notifications of `side` give the table an enabled table mapping reads from there (a Sales logical
    name, a Business Central entity set that takes subscriptions); "" when none is hooked."""
    if not mapping.enabled or mapping.is_option_mapping:
        return ""
    if not any(direction.source is side for direction in mapping.direction.job_directions()):
        return ""
    table = mapping.table_on(side)
    if isinstance(table, CrmTable):
        return table.logical_name
    if isinstance(table, BcTable) and not table.is_page and table.entity_set in BC_HOOKABLE:
        return table.entity_set
    return ""


def hookable_tables(catalog: Catalog, side: Side) -> list[str]:
    """The tables on `side` that enabled table mappings read from, as the notifications name them (hooked_table)."""
    return list(dict.fromkeys(name for mapping in catalog if (name := hooked_table(mapping, side))))
