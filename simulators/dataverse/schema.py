"""A small declarative schema of Dataverse tables: what the simulator knows about each column.

A table is an `Entity`; a column is an `Attr` of one of these kinds:

    string, memo, integer, bigint, decimal, money, boolean, datetime, picklist, state, status,
    lookup, owner, customer, uniqueidentifier

`table(...)` adds the system columns every Dataverse table carries (primary id, createdon,
modifiedon, createdby, modifiedby, versionnumber, ...), the owner columns of user-owned tables and,
when a table has money columns, the currency columns (transactioncurrencyid, exchangerate and a
`<money>_base` column per money column). To add a table later, write one more `table(...)` call
and register it in `default_schema()`.

Names follow the Dataverse entity reference (logical names, entity set names, option values).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable

METADATA_NAMESPACE = uuid.UUID("6d1f3c4e-9d7a-4c1b-8f0e-2b5a7c9e1d30")

# Column kinds whose value is a reference to another row.
LOOKUP_KINDS = frozenset({"lookup", "owner", "customer"})
# Column kinds that carry an option set.
OPTION_KINDS = frozenset({"picklist", "state", "status"})

INT_MIN, INT_MAX = -2147483648, 2147483647


def metadata_id(*parts: str) -> str:
    """A stable MetadataId, the same on every run, for a table or column."""
    return str(uuid.uuid5(METADATA_NAMESPACE, ".".join(parts)))


@dataclass
class Attr:
    """One column of a table."""

    name: str
    kind: str
    max_length: int | None = None
    options: dict[int, str] = field(default_factory=dict)
    # status column: status value -> the state value it belongs to
    status_state: dict[int, int] = field(default_factory=dict)
    # state column: state value -> its default status value
    default_status: dict[int, int] = field(default_factory=dict)
    # lookups: the tables a value may point to
    targets: tuple[str, ...] = ()
    # navigation property name (as written in `<nav>@odata.bind`) -> target table
    navs: dict[str, str] = field(default_factory=dict)
    read_only: bool = False        # not valid for create or update over the Web API (silently ignored)
    create_only: bool = False      # valid for create, ignored on update
    required: bool = False         # SystemRequired: must have a value on create
    default: object = None
    min_value: float | None = None
    max_value: float | None = None
    precision: int | None = None   # decimal places of decimal and money columns
    bool_labels: tuple[str, str] = ("No", "Yes")
    date_only: bool = False
    display_name: str = ""
    schema_name: str = ""
    unique: bool = False           # rejected when another row has the same value (case-insensitive)
    unique_code: str = "0x80040237"
    unique_message: str = ""

    def __post_init__(self) -> None:
        if not self.display_name:
            self.display_name = self.name
        if not self.schema_name:
            self.schema_name = self.name[:1].upper() + self.name[1:]

    @property
    def is_lookup(self) -> bool:
        return self.kind in LOOKUP_KINDS

    @property
    def wire_name(self) -> str:
        """The property name on the wire: lookups read as `_<name>_value`."""
        return f"_{self.name}_value" if self.is_lookup else self.name


@dataclass
class Entity:
    """One table."""

    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    ownership: str                      # "user" | "organization" | "business" | "none"
    attributes: dict[str, Attr]
    display_name: str = ""
    display_collection_name: str = ""
    schema_name: str = ""
    object_type_code: int = 0
    # fills server-composed columns (e.g. fullname) from the row's values, after every write
    compose: Callable[[dict], None] | None = None
    # named-key URL form (`accounts(accountid=<guid>)`) is refused for tables whose key is inherited
    named_key_allowed: bool = True
    # alternate keys: each a tuple of column names
    alternate_keys: list[tuple[str, ...]] = field(default_factory=list)
    change_tracking: bool = True

    def __post_init__(self) -> None:
        if not self.schema_name:
            self.schema_name = self.logical_name[:1].upper() + self.logical_name[1:]
        if not self.display_name:
            self.display_name = self.schema_name
        if not self.display_collection_name:
            self.display_collection_name = self.display_name + "s"
        self.metadata_id = metadata_id(self.logical_name)
        self.navs: dict[str, Attr] = {}
        self.wire: dict[str, Attr] = {}
        self.reindex()

    def reindex(self) -> None:
        """Recompute the lookups derived from the columns (call after changing `attributes`)."""
        attrs = list(self.attributes.values())
        self.navs = {nav: attr for attr in attrs for nav in attr.navs}
        self.wire = {attr.wire_name: attr for attr in attrs}
        self.defaults = {attr.name: attr.default for attr in attrs}
        self.money_attributes = [a for a in attrs if a.kind == "money" and not a.name.endswith("_base")]
        self.unique_attributes = [a for a in attrs if a.unique]
        self.required_attributes = [a for a in attrs if a.required and a.name != self.primary_id]
        owner = self.attributes.get("ownerid")
        self.self_owner = owner is not None and owner.kind == "uniqueidentifier"

    @property
    def type_name(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.logical_name}"

    @property
    def user_owned(self) -> bool:
        return self.ownership == "user"

    def state_attr(self) -> Attr | None:
        attr = self.attributes.get("statecode")
        return attr if attr is not None and attr.kind == "state" else None

    def status_attr(self) -> Attr | None:
        attr = self.attributes.get("statuscode")
        return attr if attr is not None and attr.kind == "status" else None


class Schema:
    """The tables the simulator serves, by logical name and by entity set name."""

    def __init__(self, entities: Iterable[Entity] = ()):
        self.entities: dict[str, Entity] = {}
        self.by_set: dict[str, Entity] = {}
        for entity in entities:
            self.add(entity)

    def add(self, entity: Entity) -> Entity:
        self.entities[entity.logical_name] = entity
        self.by_set[entity.entity_set] = entity
        return entity

    def get(self, logical_name: str) -> Entity | None:
        return self.entities.get(logical_name)

    def __getitem__(self, logical_name: str) -> Entity:
        return self.entities[logical_name]

    def __contains__(self, logical_name: str) -> bool:
        return logical_name in self.entities

    def referencing(self, target: str) -> list[tuple[Entity, Attr]]:
        """Every (table, lookup column) that can point at a row of `target`."""
        return [(entity, attr) for entity in self.entities.values() for attr in entity.attributes.values()
                if attr.is_lookup and target in attr.targets]


# --------------------------------------------------------------------------- column builders

def string(name: str, max_length: int = 100, **kw) -> Attr:
    return Attr(name, "string", max_length=max_length, **kw)


def memo(name: str, max_length: int = 2000, **kw) -> Attr:
    return Attr(name, "memo", max_length=max_length, **kw)


def integer(name: str, min_value: int = INT_MIN, max_value: int = INT_MAX, **kw) -> Attr:
    return Attr(name, "integer", min_value=min_value, max_value=max_value, **kw)


def bigint(name: str, **kw) -> Attr:
    return Attr(name, "bigint", min_value=-(2 ** 63), max_value=2 ** 63 - 1, **kw)


def decimal(name: str, precision: int = 2, min_value: float = -100000000000.0, max_value: float = 100000000000.0,
            **kw) -> Attr:
    return Attr(name, "decimal", precision=precision, min_value=min_value, max_value=max_value, **kw)


def money(name: str, precision: int = 2, min_value: float = -922337203685477.0, max_value: float = 922337203685477.0,
          **kw) -> Attr:
    return Attr(name, "money", precision=precision, min_value=min_value, max_value=max_value, **kw)


def boolean(name: str, labels: tuple[str, str] = ("No", "Yes"), default: bool = False, **kw) -> Attr:
    return Attr(name, "boolean", bool_labels=labels, default=default, **kw)


def datetime_(name: str, date_only: bool = False, **kw) -> Attr:
    return Attr(name, "datetime", date_only=date_only, **kw)


def picklist(name: str, options: dict[int, str], **kw) -> Attr:
    return Attr(name, "picklist", options=dict(options), **kw)


def guid(name: str, **kw) -> Attr:
    return Attr(name, "uniqueidentifier", **kw)


def lookup(name: str, target: str, nav: str | None = None, **kw) -> Attr:
    return Attr(name, "lookup", targets=(target,), navs={nav or name: target}, **kw)


def customer(name: str, **kw) -> Attr:
    return Attr(name, "customer", targets=("account", "contact"),
                navs={f"{name}_account": "account", f"{name}_contact": "contact"}, **kw)


def owner(**kw) -> Attr:
    # one navigation property, `ownerid`, bound to /systemusers(..) or /teams(..)
    return Attr("ownerid", "owner", targets=("systemuser", "team"), navs={"ownerid": "*"}, **kw)


def state(options: dict[int, tuple[str, int]]) -> Attr:
    """statecode: {value: (label, default status)}."""
    return Attr("statecode", "state", options={v: label for v, (label, _) in options.items()},
                default_status={v: status for v, (_, status) in options.items()}, display_name="Status")


def status(options: dict[int, tuple[str, int]]) -> Attr:
    """statuscode: {value: (label, state it belongs to)}."""
    return Attr("statuscode", "status", options={v: label for v, (label, _) in options.items()},
                status_state={v: st for v, (_, st) in options.items()}, display_name="Status Reason")


ACTIVE_INACTIVE_STATE = {0: ("Active", 1), 1: ("Inactive", 2)}
ACTIVE_INACTIVE_STATUS = {1: ("Active", 0), 2: ("Inactive", 1)}


def table(logical_name: str, entity_set: str, ownership: str, columns: Iterable[Attr], *,
          primary_id: str | None = None, primary_name: str = "name", **kw) -> Entity:
    """Build a table, adding the system columns Dataverse puts on every table."""
    primary_id = primary_id or f"{logical_name}id"
    attrs: dict[str, Attr] = {}

    def add(attr: Attr) -> None:
        attrs.setdefault(attr.name, attr)

    add(guid(primary_id, create_only=True, display_name=f"{logical_name} id"))
    for column in columns:
        attrs[column.name] = column
    add(datetime_("createdon", read_only=True, display_name="Created On"))
    add(datetime_("modifiedon", read_only=True, display_name="Modified On"))
    add(datetime_("overriddencreatedon", create_only=True, display_name="Record Created On"))
    add(lookup("createdby", "systemuser", read_only=True, display_name="Created By"))
    add(lookup("modifiedby", "systemuser", read_only=True, display_name="Modified By"))
    add(lookup("createdonbehalfby", "systemuser", read_only=True, display_name="Created By (Delegate)"))
    add(lookup("modifiedonbehalfby", "systemuser", read_only=True, display_name="Modified By (Delegate)"))
    add(bigint("versionnumber", read_only=True, display_name="Version Number"))
    if ownership == "user":
        add(owner(display_name="Owner"))
        add(lookup("owninguser", "systemuser", read_only=True, display_name="Owning User"))
        add(lookup("owningteam", "team", read_only=True, display_name="Owning Team"))
        add(lookup("owningbusinessunit", "businessunit", read_only=True, display_name="Owning Business Unit"))
    money_columns = [a for a in attrs.values() if a.kind == "money"]
    if money_columns:
        add(lookup("transactioncurrencyid", "transactioncurrency", display_name="Currency"))
        add(decimal("exchangerate", precision=10, min_value=0.0000000001, max_value=100000000000.0, read_only=True,
                    display_name="Exchange Rate"))
        for column in money_columns:
            add(money(f"{column.name}_base", precision=column.precision or 2, read_only=True,
                      display_name=f"{column.display_name} (Base)"))
    return Entity(logical_name, entity_set, primary_id, primary_name, ownership, attrs, **kw)


def compose_fullname(values: dict) -> None:
    """Dataverse composes fullname as "First Last" whenever either part changes."""
    parts = [values.get("firstname"), values.get("middlename"), values.get("lastname")]
    composed = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if composed:
        values["fullname"] = composed


# --------------------------------------------------------------------------- option sets shared by tables

CUSTOMER_TYPE = {1: "Competitor", 2: "Consultant", 3: "Customer", 4: "Investor", 5: "Partner", 6: "Influencer",
                 7: "Press", 8: "Prospect", 9: "Reseller", 10: "Supplier", 11: "Vendor", 12: "Other"}
PAYMENT_TERMS = {1: "Net 30", 2: "2% 10; Net 30", 3: "Net 45", 4: "Net 60"}
FREIGHT_TERMS = {1: "FOB", 2: "No Charge"}
SHIPPING_METHOD = {1: "Airborne", 2: "DHL", 3: "FedEx", 4: "UPS", 5: "Postal Mail", 6: "Full Load", 7: "Will Call"}
ADDRESS_TYPE = {1: "Bill To", 2: "Ship To", 3: "Primary", 4: "Other"}
ACCOUNT_CATEGORY = {1: "Preferred Customer", 2: "Standard"}
PREFERRED_CONTACT_METHOD = {1: "Any", 2: "Email", 3: "Phone", 4: "Fax", 5: "Mail"}
ACCESS_MODE = {0: "Read-Write", 1: "Administrative", 2: "Read", 3: "Support User", 4: "Non-interactive",
               5: "Delegated Admin"}
TEAM_TYPE = {0: "Owner", 1: "Access", 2: "Security Group", 3: "Office Group"}
GENDER = {1: "Male", 2: "Female"}


def address_columns(prefix: str = "address1") -> list[Attr]:
    return [
        picklist(f"{prefix}_addresstypecode", ADDRESS_TYPE),
        string(f"{prefix}_name", 200),
        string(f"{prefix}_line1", 250),
        string(f"{prefix}_line2", 250),
        string(f"{prefix}_line3", 250),
        string(f"{prefix}_city", 80),
        string(f"{prefix}_stateorprovince", 50),
        string(f"{prefix}_postalcode", 20),
        string(f"{prefix}_county", 50),
        string(f"{prefix}_country", 80),
        string(f"{prefix}_primarycontactname", 100),
        string(f"{prefix}_telephone1", 50),
        string(f"{prefix}_telephone2", 50),
        string(f"{prefix}_fax", 50),
        picklist(f"{prefix}_freighttermscode", FREIGHT_TERMS),
        picklist(f"{prefix}_shippingmethodcode", SHIPPING_METHOD),
        Attr(f"{prefix}_latitude", "decimal", precision=5, min_value=-90.0, max_value=90.0),
        Attr(f"{prefix}_longitude", "decimal", precision=5, min_value=-180.0, max_value=180.0),
        memo(f"{prefix}_composite", 1000, read_only=True),
    ]


# --------------------------------------------------------------------------- the tables

def businessunit() -> Entity:
    return table("businessunit", "businessunits", "business", [
        string("name", 160, required=True),
        lookup("parentbusinessunitid", "businessunit", display_name="Parent Business"),
        string("divisionname", 100),
        string("emailaddress", 100),
        string("websiteurl", 200),
        boolean("isdisabled", ("Enabled", "Disabled")),
        lookup("transactioncurrencyid", "transactioncurrency", display_name="Currency"),
        memo("description", 2000),
    ], display_name="Business Unit", schema_name="BusinessUnit", object_type_code=10)


def team() -> Entity:
    return table("team", "teams", "business", [
        string("name", 160, required=True),
        lookup("businessunitid", "businessunit", required=True, display_name="Business Unit"),
        picklist("teamtype", TEAM_TYPE, default=0),
        boolean("isdefault", read_only=True),
        lookup("administratorid", "systemuser", display_name="Administrator"),
        guid("azureactivedirectoryobjectid"),
        string("emailaddress", 100),
        memo("description", 2000),
        guid("ownerid", read_only=True, display_name="Owner"),
    ], display_name="Team", schema_name="Team", object_type_code=9, named_key_allowed=False)


def systemuser() -> Entity:
    return table("systemuser", "systemusers", "business", [
        string("fullname", 200, read_only=True, display_name="Full Name"),
        string("firstname", 64),
        string("middlename", 50),
        string("lastname", 64),
        string("nickname", 50),
        string("title", 128),
        string("jobtitle", 100),
        string("internalemailaddress", 100, display_name="Primary Email"),
        string("domainname", 1024, display_name="User Name"),
        string("mobilephone", 64),
        string("address1_telephone1", 64),
        boolean("isdisabled", ("Enabled", "Disabled"), read_only=True, display_name="Status"),
        boolean("islicensed", ("No", "Yes")),
        boolean("isintegrationuser", ("No", "Yes")),
        picklist("accessmode", ACCESS_MODE, default=0),
        guid("applicationid"),
        guid("azureactivedirectoryobjectid", display_name="Azure AD Object ID"),
        lookup("businessunitid", "businessunit", required=True, display_name="Business Unit"),
        lookup("parentsystemuserid", "systemuser", display_name="Manager"),
        guid("ownerid", read_only=True, display_name="Owner"),
    ], primary_name="fullname", display_name="User", schema_name="SystemUser", object_type_code=8,
        compose=compose_fullname, named_key_allowed=False)


def transactioncurrency() -> Entity:
    return table("transactioncurrency", "transactioncurrencies", "organization", [
        string("isocurrencycode", 5, required=True, unique=True, unique_code="0x80048cf3",
               unique_message="The ISO currency code '{value}' is already in use by another currency."),
        string("currencyname", 100, required=True),
        string("currencysymbol", 10, required=True),
        integer("currencyprecision", 0, 10, required=True, default=2),
        decimal("exchangerate", precision=10, min_value=0.0000000001, max_value=100000000000.0, required=True),
        picklist("currencytype", {0: "System", 1: "Custom"}, default=0),
        state(ACTIVE_INACTIVE_STATE),
        status(ACTIVE_INACTIVE_STATUS),
    ], primary_name="currencyname", display_name="Currency", display_collection_name="Currencies",
        schema_name="TransactionCurrency", object_type_code=9105)


def account() -> Entity:
    return table("account", "accounts", "user", [
        string("name", 160, display_name="Account Name"),
        string("accountnumber", 20, display_name="Account Number"),
        picklist("customertypecode", CUSTOMER_TYPE, display_name="Relationship Type"),
        picklist("accountcategorycode", ACCOUNT_CATEGORY, display_name="Category"),
        picklist("paymenttermscode", PAYMENT_TERMS, display_name="Payment Terms"),
        picklist("preferredcontactmethodcode", PREFERRED_CONTACT_METHOD, default=1),
        *address_columns("address1"),
        *address_columns("address2"),
        string("telephone1", 50),
        string("telephone2", 50),
        string("telephone3", 50),
        string("fax", 50),
        string("emailaddress1", 100),
        string("emailaddress2", 100),
        string("emailaddress3", 100),
        string("websiteurl", 200),
        money("creditlimit", display_name="Credit Limit"),
        money("revenue", display_name="Annual Revenue"),
        boolean("creditonhold", ("No", "Yes")),
        integer("numberofemployees", 0, 1000000000),
        lookup("transactioncurrencyid", "transactioncurrency", display_name="Currency"),
        lookup("primarycontactid", "contact", display_name="Primary Contact"),
        lookup("parentaccountid", "account", display_name="Parent Account"),
        state(ACTIVE_INACTIVE_STATE),
        status(ACTIVE_INACTIVE_STATUS),
        memo("description", 2000),
    ], display_name="Account", schema_name="Account", object_type_code=1)


def contact() -> Entity:
    return table("contact", "contacts", "user", [
        string("fullname", 160, read_only=True, display_name="Full Name"),
        string("firstname", 50),
        string("middlename", 50),
        string("lastname", 50),
        string("jobtitle", 100),
        string("emailaddress1", 100),
        string("emailaddress2", 100),
        string("telephone1", 50),
        string("telephone2", 50),
        string("mobilephone", 50),
        string("fax", 50),
        picklist("gendercode", GENDER),
        picklist("customertypecode", {1: "Default Value"}),
        picklist("paymenttermscode", PAYMENT_TERMS, display_name="Payment Terms"),
        picklist("preferredcontactmethodcode", PREFERRED_CONTACT_METHOD, default=1),
        *address_columns("address1"),
        customer("parentcustomerid", display_name="Company Name"),
        lookup("transactioncurrencyid", "transactioncurrency", display_name="Currency"),
        money("creditlimit", display_name="Credit Limit"),
        boolean("creditonhold", ("No", "Yes")),
        state(ACTIVE_INACTIVE_STATE),
        status(ACTIVE_INACTIVE_STATUS),
        memo("description", 2000),
    ], primary_name="fullname", display_name="Contact", schema_name="Contact", object_type_code=2,
        compose=compose_fullname)


def default_schema() -> Schema:
    """The tables served out of the box. Add new tables here."""
    return Schema([businessunit(), team(), systemuser(), transactioncurrency(), account(), contact()])
