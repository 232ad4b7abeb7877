"""A small declarative schema of Dataverse tables: what the simulator knows about each column.

A table is an `Entity`; a column is an `Attr` of one of these kinds:

    string, memo, integer, bigint, decimal, money, boolean, datetime, picklist, state, status,
    lookup, owner, customer, uniqueidentifier

`table(...)` adds the system columns every Dataverse table carries (primary id, createdon,
modifiedon, createdby, modifiedby, versionnumber, ...), the owner columns of user-owned tables and,
when a table has money columns, the currency columns (transactioncurrencyid, exchangerate and a
`<money>_base` column per money column). To add a table later, write one more `table(...)` call
and register it in `default_schema()`. What the service does beyond checking columns (derived values,
lifecycles, side effects on other rows) is the table's `rules=` object (`rules.py`).

Names follow the Dataverse entity reference (logical names, entity set names, option values).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable

from . import rules

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
    # the service's own error for a missing required value: (code, message), else the generic one
    required_error: tuple[str, str] | None = None
    # lookups: what deleting the target does to this row: "remove_link" (clear the lookup) or "cascade"
    on_delete: str = "remove_link"
    # string columns numbered by the service when a create leaves them empty: the prefix ("ORD" -> ORD-01001-X7K2PQ)
    autonumber: str | None = None
    # written but never read back (IsValidForRead false): a secret such as a service endpoint's authvalue reads null
    unreadable: bool = False

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
class UniqueKey:
    """Columns whose values together must be unique in the table (case-insensitive), with the service's error."""

    columns: tuple[str, ...]
    code: str
    message: str          # may name the row's values: "{name}"


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
    # composite uniqueness the service enforces (not alternate keys: they cannot address a row)
    unique_keys: list[UniqueKey] = field(default_factory=list)
    # the table's platform rules (a `rules.TableRules`): derived values, lifecycle checks, side effects
    rules: object = None

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
        self.autonumber_attributes = [a for a in attrs if a.autonumber]
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
        self._shipped_options: dict[tuple[str, str], dict[int, str]] = {}
        for entity in entities:
            self.add(entity)

    def add(self, entity: Entity) -> Entity:
        self.entities[entity.logical_name] = entity
        self.by_set[entity.entity_set] = entity
        for attr in entity.attributes.values():
            if attr.kind == "picklist":
                self._shipped_options[(entity.logical_name, attr.name)] = dict(attr.options)
        return entity

    def restore_options(self) -> None:
        """Option sets back to what the tables shipped with (drops values added by InsertOptionValue)."""
        for (logical_name, name), options in self._shipped_options.items():
            attr = self.entities[logical_name].attributes[name]
            attr.options.clear()
            attr.options.update(options)

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


def company_id() -> Attr:
    """bcbi_companyid, the Business Central integration solution's lookup to the company a row belongs to
    (bcbi_company); bound as `bcbi_CompanyId@odata.bind`, read as `_bcbi_companyid_value`."""
    return lookup("bcbi_companyid", "bcbi_company", nav="bcbi_CompanyId", display_name="Company Id",
                  schema_name="bcbi_CompanyId")


def customer(name: str, **kw) -> Attr:
    return Attr(name, "customer", targets=("account", "contact"),
                navs={f"{name}_account": "account", f"{name}_contact": "contact"}, **kw)


def polymorphic(name: str, targets: tuple[str, ...], **kw) -> Attr:
    """A lookup to any of several tables, bound as `<name>_<table>@odata.bind` (annotation.objectid)."""
    return Attr(name, "lookup", targets=tuple(targets), navs={f"{name}_{t}": t for t in targets}, **kw)


def owner(**kw) -> Attr:
    # one navigation property, `ownerid`, bound to /systemusers(..) or /teams(..)
    return Attr("ownerid", "owner", targets=("systemuser", "team"), navs={"ownerid": "*"}, **kw)


def state(options: dict[int, tuple[str, int]], **kw) -> Attr:
    """statecode: {value: (label, default status)}; `default=` is the state of a new row (else the first)."""
    return Attr("statecode", "state", options={v: label for v, (label, _) in options.items()},
                default_status={v: status for v, (_, status) in options.items()}, display_name="Status", **kw)


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
PRODUCT_TYPE = {1: "Sales Inventory", 2: "Miscellaneous Charges", 3: "Services", 4: "Flat Fees"}
PRODUCT_STRUCTURE = {1: "Product", 2: "Product Family", 3: "Product Bundle"}
PRICING_METHOD = {1: "Currency Amount", 2: "Percent of List", 3: "Percent Markup - Current Cost",
                  4: "Percent Margin - Current Cost", 5: "Percent Markup - Standard Cost",
                  6: "Percent Margin - Standard Cost"}
LINE_PRODUCT_TYPE = {1: "Product", 2: "Bundle", 3: "Required Bundle Product", 4: "Optional Bundle Product",
                     5: "Project-based Service"}


def _street(prefix: str) -> list[Attr]:
    """What a record's address (address1_*) and a document's (billto_*, shipto_*) share: name, street, city,
    state, postal code."""
    return [
        string(f"{prefix}_name", 200),
        string(f"{prefix}_line1", 250),
        string(f"{prefix}_line2", 250),
        string(f"{prefix}_line3", 250),
        string(f"{prefix}_city", 80),
        string(f"{prefix}_stateorprovince", 50),
        string(f"{prefix}_postalcode", 20),
    ]


def address_columns(prefix: str = "address1") -> list[Attr]:
    return [
        picklist(f"{prefix}_addresstypecode", ADDRESS_TYPE),
        *_street(prefix),
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


def document_address(prefix: str) -> list[Attr]:
    """billto_* / shipto_* of orders, invoices and their lines."""
    return [
        *_street(prefix),
        string(f"{prefix}_country", 80),
        string(f"{prefix}_telephone", 50),
        string(f"{prefix}_fax", 50),
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
    ], display_name="Business Unit", schema_name="BusinessUnit", object_type_code=10, rules=rules.BusinessUnitRules())


def organization() -> Entity:
    """The organisation itself: one row, which says which currency is the base currency."""
    return table("organization", "organizations", "none", [
        string("name", 160, required=True),
        lookup("basecurrencyid", "transactioncurrency", display_name="Currency"),
        integer("pricingdecimalprecision", 0, 4, default=2),
        integer("currencydecimalprecision", 0, 4, default=2),
    ], display_name="Organization", schema_name="Organization", object_type_code=1019)


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
        lookup("defaultpricelevelid", "pricelevel", display_name="Price List"),
        state(ACTIVE_INACTIVE_STATE),
        status(ACTIVE_INACTIVE_STATUS),
        memo("description", 2000),
        company_id(),
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
        string("pager", 50),
        string("websiteurl", 200),
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
        company_id(),
    ], primary_name="fullname", display_name="Contact", schema_name="Contact", object_type_code=2,
        compose=compose_fullname)


# --------------------------------------------------------------------------- product catalogue

def uomschedule() -> Entity:
    return table("uomschedule", "uomschedules", "organization", [
        string("name", 200, required=True),
        string("baseuomname", 100, required=True, display_name="Primary Unit",
               required_error=("0x80043810", "baseuomname not specified")),
        memo("description", 2000),
        state(ACTIVE_INACTIVE_STATE),
        status(ACTIVE_INACTIVE_STATUS),
    ], display_name="Unit Group", schema_name="UoMSchedule", object_type_code=1056, rules=rules.UnitGroupRules())


def uom() -> Entity:
    return table("uom", "uoms", "none", [
        string("name", 100, required=True),
        decimal("quantity", precision=5, min_value=0.0, max_value=10000000000.0, required=True),
        lookup("baseuom", "uom", display_name="Base Unit"),
        lookup("uomscheduleid", "uomschedule", required=True, create_only=True, on_delete="cascade",
               display_name="Unit Schedule"),
        boolean("isschedulebaseuom", read_only=True, display_name="Is Schedule Base Unit"),
    ], display_name="Unit", schema_name="UoM", object_type_code=1055, rules=rules.UnitRules(),
        unique_keys=[UniqueKey(("uomscheduleid", "name"), "0x80047010",
                               "An object with the specified name already exists: the unit group already has a unit "
                               "named '{name}'.")])


PRODUCT_STATE = {0: ("Active", 1), 1: ("Retired", 2), 2: ("Draft", 0), 3: ("Under Revision", 3)}
PRODUCT_STATUS = {1: ("Active", 0), 2: ("Retired", 1), 0: ("Draft", 2), 3: ("Under Revision", 3)}


def product() -> Entity:
    return table("product", "products", "organization", [
        string("productnumber", 100, required=True, unique=True, unique_code="0x80043b06",
               unique_message="A product with the specified product ID already exists.",
               required_error=("0x80043b05", "The product number can not be null."), display_name="Product ID"),
        string("name", 100),
        picklist("producttypecode", PRODUCT_TYPE, default=1, display_name="Product Type"),
        picklist("productstructure", PRODUCT_STRUCTURE, default=1, display_name="Product Structure"),
        lookup("parentproductid", "product", display_name="Parent"),
        lookup("defaultuomscheduleid", "uomschedule", display_name="Unit Group"),
        lookup("defaultuomid", "uom", display_name="Default Unit"),
        lookup("pricelevelid", "pricelevel", display_name="Default Price List"),
        decimal("quantityonhand", precision=2, min_value=0.0, max_value=1000000000.0),
        integer("quantitydecimal", 0, 5, display_name="Decimals Supported"),
        money("price", min_value=0.0, max_value=1000000000000.0, display_name="List Price"),
        money("standardcost", min_value=0.0, max_value=1000000000000.0, display_name="Standard Cost"),
        money("currentcost", min_value=0.0, max_value=1000000000000.0, display_name="Current Cost"),
        decimal("stockvolume", precision=2, min_value=0.0, max_value=1000000000.0),
        decimal("stockweight", precision=2, min_value=0.0, max_value=1000000000.0),
        string("vendorname", 100),
        string("vendorpartnumber", 100),
        string("vendorid", 100),
        boolean("isstockitem"),
        boolean("iskit"),
        memo("description", 2000),
        datetime_("validfromdate", date_only=True),
        datetime_("validtodate", date_only=True),
        lookup("transactioncurrencyid", "transactioncurrency", display_name="Currency"),
        state(PRODUCT_STATE, default=2),
        status(PRODUCT_STATUS),
        company_id(),
    ], display_name="Product", schema_name="Product", object_type_code=1024, rules=rules.ProductRules())


def pricelevel() -> Entity:
    return table("pricelevel", "pricelevels", "organization", [
        string("name", 100, required=True, unique=True, unique_code="0x80043b0f",
               unique_message="The name already exists: another price list is named '{value}'.",
               required_error=("0x80043b0e", "The name can not be null.")),
        memo("description", 2000),
        lookup("transactioncurrencyid", "transactioncurrency", required=True, display_name="Currency"),
        datetime_("begindate", date_only=True),
        datetime_("enddate", date_only=True),
        state({0: ("Active", 100001), 1: ("Inactive", 100002)}),
        status({100001: ("Active", 0), 100002: ("Inactive", 1)}),
        company_id(),
    ], display_name="Price List", schema_name="PriceLevel", object_type_code=1022)


def productpricelevel() -> Entity:
    return table("productpricelevel", "productpricelevels", "none", [
        lookup("pricelevelid", "pricelevel", required=True, on_delete="cascade", display_name="Price List"),
        lookup("productid", "product", required=True, on_delete="cascade", display_name="Product"),
        lookup("uomid", "uom", required=True, display_name="Unit"),
        lookup("uomscheduleid", "uomschedule", read_only=True, display_name="Unit Schedule ID"),
        string("productnumber", 100, read_only=True, display_name="Product ID"),
        money("amount"),
        picklist("pricingmethodcode", PRICING_METHOD, default=1, display_name="Pricing Method"),
        decimal("percentage", precision=2, min_value=0.0, max_value=100000.0),
        lookup("transactioncurrencyid", "transactioncurrency", display_name="Currency"),
        company_id(),
    ], primary_name="productnumber", display_name="Price List Item", schema_name="ProductPriceLevel",
        object_type_code=1026, rules=rules.PriceListItemRules(),
        unique_keys=[UniqueKey(("pricelevelid", "productid", "uomid"), "0x80043b08",
                               "This product and unit combination has a price for this price list.")])


# --------------------------------------------------------------------------- sales documents

def opportunity() -> Entity:
    return table("opportunity", "opportunities", "user", [
        string("name", 300, required=True, display_name="Topic"),
        customer("customerid", display_name="Potential Customer"),
        lookup("parentaccountid", "account", display_name="Account"),
        lookup("parentcontactid", "contact", display_name="Contact"),
        lookup("pricelevelid", "pricelevel", display_name="Price List"),
        lookup("transactioncurrencyid", "transactioncurrency", display_name="Currency"),
        money("estimatedvalue", display_name="Est. Revenue"),
        datetime_("estimatedclosedate", date_only=True, display_name="Est. Close Date"),
        integer("closeprobability", 0, 100, display_name="Probability"),
        memo("description", 2000),
        state({0: ("Open", 1), 1: ("Won", 3), 2: ("Lost", 4)}),
        status({1: ("In Progress", 0), 2: ("On Hold", 0), 3: ("Won", 1), 4: ("Canceled", 2), 5: ("Out-Sold", 2)}),
        company_id(),
    ], display_name="Opportunity", display_collection_name="Opportunities", schema_name="Opportunity",
        object_type_code=3, rules=rules.OpportunityRules())


def quote() -> Entity:
    """A quote starts as a Draft, which alone can be edited; activating it makes it read-only; it is then won
    (WinQuote, or converting it to an order), closed (CloseQuote) or revised (ReviseQuote: closed as Revised and
    copied to a new Draft of the same quote number, revision number one higher)."""
    return table("quote", "quotes", "user", [
        string("name", 300, required=True),
        string("quotenumber", 100, autonumber="QUO", display_name="Quote ID"),
        integer("revisionnumber", 0, INT_MAX, display_name="Revision ID"),
        *document_columns(),
        picklist("freighttermscode", FREIGHT_TERMS, display_name="Freight Terms"),
        datetime_("requestdeliveryby", date_only=True, display_name="Due By"),
        datetime_("effectivefrom", date_only=True, display_name="Effective From"),
        datetime_("effectiveto", date_only=True, display_name="Effective To"),
        datetime_("closedon", date_only=True, display_name="Closed On"),
        state({0: ("Draft", 1), 1: ("Active", 2), 2: ("Won", 4), 3: ("Closed", 5)}),
        status({1: ("In Progress", 0), 2: ("In Progress", 1), 3: ("Open", 1), 4: ("Won", 2), 5: ("Lost", 3),
                6: ("Canceled", 3), 7: ("Revised", 3)}),
    ], display_name="Quote", schema_name="Quote", object_type_code=1084,
        rules=rules.DocumentRules(closing=rules.ClosingMessages(
            "quote", {2: ("Won", "WinQuote"), 3: ("Closed", "CloseQuote")}, "0x80040203")))


def quotedetail() -> Entity:
    return table("quotedetail", "quotedetails", "user", [
        string("quotedetailname", 500, display_name="Name"),
        *line_columns("quote", 500),
        datetime_("requestdeliveryby", date_only=True, display_name="Requested Delivery Date"),
    ], primary_name="quotedetailname", display_name="Quote Product", schema_name="QuoteDetail",
        object_type_code=1085, rules=rules.LineRules("quote"))


def document_columns() -> list[Attr]:
    """What quotes, orders and invoices share: customer, prices, addresses, terms, totals."""
    return [
        memo("description", 2000),
        customer("customerid", required=True, display_name="Customer"),
        lookup("pricelevelid", "pricelevel", display_name="Price List"),
        lookup("transactioncurrencyid", "transactioncurrency", required=True, display_name="Currency"),
        lookup("opportunityid", "opportunity", display_name="Opportunity"),
        *document_address("billto"),
        *document_address("shipto"),
        picklist("paymenttermscode", PAYMENT_TERMS, display_name="Payment Terms"),
        picklist("shippingmethodcode", SHIPPING_METHOD, display_name="Shipping Method"),
        money("freightamount", display_name="Freight Amount"),
        money("discountamount", display_name="Order Discount Amount"),
        decimal("discountpercentage", precision=2, min_value=0.0, max_value=100.0, display_name="Order Discount (%)"),
        money("totalamount", display_name="Total Amount"),
        money("totalamountlessfreight", display_name="Total Pre-Freight Amount"),
        money("totaltax", display_name="Total Tax"),
        money("totaldiscountamount", display_name="Total Discount Amount"),
        money("totallineitemdiscountamount", display_name="Total Line Item Discount Amount"),
        money("totallineitemamount", read_only=True, display_name="Total Detail Amount"),
        boolean("ispricelocked", ("No", "Yes"), display_name="Prices Locked"),
        company_id(),
    ]


def line_columns(parent: str, write_in_length: int) -> list[Attr]:
    """What quote, order and invoice lines share: product or write-in, price, quantity, amounts."""
    return [
        lookup(f"{parent}id", parent, required=True, create_only=True, on_delete="cascade"),
        lookup("productid", "product", display_name="Existing Product"),
        lookup("uomid", "uom", display_name="Unit"),
        boolean("isproductoverridden", ("Existing", "Write In"), display_name="Select Product"),
        string("productdescription", write_in_length, display_name="Write-In Product"),
        boolean("ispriceoverridden", ("Use Default", "Override Price"), display_name="Pricing"),
        money("priceperunit", required=True, display_name="Price Per Unit"),
        decimal("quantity", precision=5, required=True),
        money("manualdiscountamount", display_name="Manual Discount"),
        money("volumediscountamount", display_name="Volume Discount"),
        money("tax"),
        money("baseamount", display_name="Amount"),
        money("extendedamount", display_name="Extended Amount"),
        integer("lineitemnumber", display_name="Line Item Number"),
        integer("sequencenumber", display_name="Sequence Number"),
        memo("description", 2000),
        picklist("producttypecode", LINE_PRODUCT_TYPE, default=1, display_name="Product type"),
        *document_address("shipto"),
        lookup("transactioncurrencyid", "transactioncurrency", display_name="Currency"),
    ]


def invoice() -> Entity:
    return table("invoice", "invoices", "user", [
        string("name", 300, required=True),
        string("invoicenumber", 100, autonumber="INV", display_name="Invoice ID"),
        *document_columns(),
        lookup("pricelevelid", "pricelevel", required=True, display_name="Price List"),
        lookup("salesorderid", "salesorder", display_name="Order"),
        datetime_("duedate", date_only=True, display_name="Due Date"),
        datetime_("datedelivered", date_only=True, display_name="Date Delivered"),
        state({0: ("Active", 1), 1: ("Closed", 3), 2: ("Paid", 100001), 3: ("Canceled", 100003)}),
        status({1: ("New", 0), 2: ("Partially Shipped", 0), 4: ("Billed", 0), 5: ("Booked", 0), 6: ("Installed", 0),
                3: ("Canceled", 1), 7: ("Paid in Full", 1), 100001: ("Complete", 2), 100002: ("Partial", 2),
                100003: ("Canceled", 3)}),
    ], display_name="Invoice", schema_name="Invoice", object_type_code=1090,
        rules=rules.DocumentRules(through_active=True))


def invoicedetail() -> Entity:
    return table("invoicedetail", "invoicedetails", "user", [
        string("invoicedetailname", 500, display_name="Name"),
        *line_columns("invoice", 850),
        datetime_("actualdeliveryon", date_only=True, display_name="Delivered On"),
        lookup("salesorderdetailid", "salesorderdetail", display_name="Order Product"),
    ], primary_name="invoicedetailname", display_name="Invoice Product", schema_name="InvoiceDetail",
        object_type_code=1091, rules=rules.LineRules("invoice"))


def salesorder() -> Entity:
    return table("salesorder", "salesorders", "user", [
        string("name", 300, required=True),
        string("ordernumber", 100, autonumber="ORD", display_name="Order ID"),
        *document_columns(),
        lookup("quoteid", "quote", display_name="Quote"),
        datetime_("requestdeliveryby", date_only=True, display_name="Requested Delivery Date"),
        datetime_("submitdate", date_only=True, display_name="Date Submitted"),
        datetime_("datefulfilled", date_only=True, display_name="Date Fulfilled"),
        datetime_("lastbackofficesubmit", date_only=True, display_name="Last Submitted to Back Office"),
        integer("submitstatus", display_name="Submit Status"),
        memo("submitstatusdescription", 2000, display_name="Submit Status Description"),
        picklist("freighttermscode", FREIGHT_TERMS, display_name="Freight Terms"),
        # Business Central's integration solution: the order's number there, in two-way order mode
        string("bcbi_businesscentralordernumber", 20, display_name="Business Central Order No."),
        boolean("willcall", ("Address", "Will Call"), display_name="Ship To"),
        state({0: ("Active", 1), 1: ("Submitted", 3), 2: ("Canceled", 4), 3: ("Fulfilled", 100001),
               4: ("Invoiced", 100003)}),
        status({1: ("New", 0), 2: ("Pending", 0), 3: ("In Progress", 1), 4: ("No Money", 2), 100001: ("Complete", 3),
                100002: ("Partial", 3), 100003: ("Invoiced", 4)}),
    ], display_name="Order", schema_name="SalesOrder", object_type_code=1088,
        rules=rules.DocumentRules(closing=rules.ClosingMessages(
            "SalesOrder", {2: ("Canceled", "CancelSalesOrder"), 3: ("Fulfilled", "FulfillSalesOrder")}, "0x80040203")))


def salesorderdetail() -> Entity:
    return table("salesorderdetail", "salesorderdetails", "user", [
        string("salesorderdetailname", 500, display_name="Name"),
        *line_columns("salesorder", 500),
        datetime_("requestdeliveryby", date_only=True, display_name="Requested Delivery Date"),
        decimal("quantityshipped", precision=5, display_name="Quantity Shipped"),
        integer("bcbi_businesscentrallinenumber", display_name="Business Central Line No."),
    ], primary_name="salesorderdetailname", display_name="Order Product", schema_name="SalesOrderDetail",
        object_type_code=1089, rules=rules.LineRules("salesorder"))


NOTE_TARGETS = ("account", "contact", "salesorder", "invoice", "opportunity")


def annotation() -> Entity:
    return table("annotation", "annotations", "user", [
        string("subject", 500, display_name="Title"),
        memo("notetext", 100000, display_name="Description"),
        polymorphic("objectid", NOTE_TARGETS, on_delete="cascade", display_name="Regarding"),
        string("objecttypecode", 64, read_only=True, display_name="Object Type"),
        boolean("isdocument", display_name="Is Document"),
        string("filename", 255, display_name="File Name"),
        integer("filesize", 0, INT_MAX, read_only=True, display_name="File Size (Bytes)"),
        string("mimetype", 256, display_name="Mime Type"),
        memo("documentbody", 1073741823, display_name="Document"),
    ], primary_name="subject", display_name="Note", schema_name="Annotation", object_type_code=5,
        rules=rules.NoteRules())


def bcbi_company() -> Entity:
    """The Business Central integration solution's company table (AL table 5393 "CDS Company"): one row per Business
    Central company, found by its external id (the company's id in Business Central), owned by a team."""
    return table("bcbi_company", "bcbi_companies", "user", [
        string("bcbi_name", 30, display_name="Name"),
        string("bcbi_externalid", 36, display_name="External ID"),
        lookup("bcbi_defaultowningteam", "team", display_name="Default owning team ID"),
        state(ACTIVE_INACTIVE_STATE),
        status(ACTIVE_INACTIVE_STATUS),
    ], primary_id="bcbi_companyid", primary_name="bcbi_name", display_name="Company", schema_name="bcbi_Company",
        display_collection_name="Companies")


def post() -> Entity:
    """A post on a row's activity wall (what Business Central's status posts are); posts are created, not edited."""
    return table("post", "posts", "organization", [
        memo("text", 1000, required=True, display_name="Text"),
        polymorphic("regardingobjectid", NOTE_TARGETS, required=True, create_only=True, on_delete="cascade",
                    display_name="Regarding"),
        picklist("source", {1: "Auto Post", 2: "Manual Post"}, default=2, display_name="Source"),
        picklist("type", {1: "Check-in", 2: "Idea", 3: "News", 4: "Private Message", 5: "Question", 6: "Re-post",
                          7: "Status"}, default=7, display_name="Type"),
    ], primary_name="text", display_name="Post", schema_name="Post", object_type_code=8000)


# --------------------------------------------------------------------------- event registration (webhooks)

CONTRACT = {1: "OneWay", 2: "Queue", 3: "Rest", 4: "TwoWay", 5: "Topic", 6: "Queue_Persistent", 7: "EventHub",
            8: "Webhook", 9: "EventGrid", 10: "ManagedDataLake", 11: "ContainerStorage"}
AUTH_TYPE = {1: "ACS", 2: "SAS Key", 3: "SAS Token", 4: "Webhook Key", 5: "Http Header", 6: "Http Query String",
             7: "Connection String", 8: "Access Key"}
STAGE = {5: "Initial Pre-operation (For internal use only)", 10: "Pre-validation",
         15: "Internal Pre-operation Before External Plugins (For internal use only)", 20: "Pre-operation",
         25: "Internal Pre-operation After External Plugins (For internal use only)", 30: "Main Operation",
         40: "Post-operation", 45: "Internal Post-operation Before External Plugins (For internal use only)",
         50: "Post-operation (Deprecated)", 55: "Internal Post-operation After External Plugins (For internal use only)"}


def serviceendpoint() -> Entity:
    """Where Dataverse sends the execution context of a registered step: for a webhook (contract 8), an HTTPS URL and
    how the call authenticates (authtype, with authvalue the header settings or key, never read back)."""
    return table("serviceendpoint", "serviceendpoints", "organization", [
        string("name", 256, required=True),
        memo("description", 2000),
        string("url", 2000, display_name="Url"),
        picklist("contract", CONTRACT, required=True),
        picklist("authtype", AUTH_TYPE),
        string("authvalue", 2048, unreadable=True, display_name="Authentication Value"),
        picklist("connectionmode", {1: "Normal", 2: "Federated"}, default=1, display_name="Connection Mode"),
        picklist("messageformat", {1: "BinaryXML", 2: "Json", 3: "TextXML"}, default=2, display_name="Message Format"),
        picklist("userclaim", {1: "None", 2: "UserId", 3: "UserInfo"}, default=1, display_name="User Information Sent"),
    ], display_name="Service Endpoint", schema_name="ServiceEndpoint", object_type_code=4618, change_tracking=False,
        rules=rules.ServiceEndpointRules())


def sdkmessage() -> Entity:
    """An operation of the organization service (Create, Update, Delete ...) that steps can be registered on."""
    return table("sdkmessage", "sdkmessages", "organization", [
        string("name", 256, required=True),
        string("categoryname", 25, display_name="Category Name"),
        boolean("isprivate", display_name="Is Private"),
        boolean("autotransact", default=True, display_name="Auto Transact"),
    ], display_name="Sdk Message", schema_name="SdkMessage", object_type_code=4606, change_tracking=False)


def sdkmessagefilter() -> Entity:
    """Which table a message serves (primaryobjecttypecode, a logical name): a step names one."""
    return table("sdkmessagefilter", "sdkmessagefilters", "organization", [
        lookup("sdkmessageid", "sdkmessage", required=True, create_only=True, display_name="SDK Message ID"),
        string("primaryobjecttypecode", 64, create_only=True, display_name="Primary Object Type Code"),
        string("secondaryobjecttypecode", 64, create_only=True, display_name="Secondary Object Type Code"),
        boolean("iscustomprocessingstepallowed", default=True, display_name="Custom Processing Step Allowed"),
        integer("availability", 0, 2, default=0),
    ], primary_name="primaryobjecttypecode", display_name="Sdk Message Filter", schema_name="SdkMessageFilter",
        object_type_code=4607, change_tracking=False)


def sdkmessageprocessingstep() -> Entity:
    """A step: run the event handler (here a service endpoint; plug-in types are not served) when a message runs on a
    table, at a stage, synchronously or not; an Update step may name the columns that fire it."""
    return table("sdkmessageprocessingstep", "sdkmessageprocessingsteps", "organization", [
        string("name", 256, required=True),
        memo("description", 256),
        polymorphic("eventhandler", ("serviceendpoint",), required=True, display_name="Event Handler"),
        lookup("sdkmessageid", "sdkmessage", required=True, display_name="SDK Message"),
        lookup("sdkmessagefilterid", "sdkmessagefilter", display_name="Sdk Message Filter"),
        picklist("stage", STAGE, required=True, display_name="Execution Stage"),
        picklist("mode", {0: "Synchronous", 1: "Asynchronous"}, default=0, display_name="Execution Mode"),
        integer("rank", default=1, display_name="Execution Order"),
        picklist("supporteddeployment", {0: "Server Only", 1: "Microsoft Dynamics 365 Client for Outlook Only",
                                         2: "Both"}, default=0, display_name="Deployment"),
        boolean("asyncautodelete", display_name="Asynchronous Automatic Delete"),
        memo("filteringattributes", 100000, display_name="Filtering Attributes"),
        memo("configuration", 1073741823),
        state({0: ("Enabled", 1), 1: ("Disabled", 2)}),
        status({1: ("Enabled", 0), 2: ("Disabled", 1)}),
    ], display_name="Sdk Message Processing Step", schema_name="SdkMessageProcessingStep", object_type_code=4608,
        change_tracking=False)


REGISTRATION_TABLES = ("serviceendpoint", "sdkmessage", "sdkmessagefilter", "sdkmessageprocessingstep")


def default_schema() -> Schema:
    """The tables served out of the box. Add new tables here."""
    return Schema([organization(), businessunit(), team(), systemuser(), transactioncurrency(), account(), contact(),
                   uomschedule(), uom(), pricelevel(), product(), productpricelevel(), opportunity(), quote(),
                   quotedetail(), salesorder(), salesorderdetail(), invoice(), invoicedetail(), annotation(), post(),
                   bcbi_company(), serviceendpoint(), sdkmessage(), sdkmessagefilter(), sdkmessageprocessingstep()])
