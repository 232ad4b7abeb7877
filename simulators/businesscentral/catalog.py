"""What the simulated Business Central contains: tables, API v2.0 entity sets, published pages.

To add an entity set: define (or reuse) its `Table`, then a `View` listing its properties in the
order the API page declares them, and register both in `build_catalog`. Field names, lengths and
validation messages follow the standard APIV2 pages (microsoft/ALAppExtensions, Apps/W1/APIV2) and
the BaseApp tables. Table logic (OnInsert/OnModify/OnDelete) is registered with `Catalog.on`.

The master data and setup here (with the chart of accounts: `accounts`, read-only like BC's API page,
its rows seeded in-process; vendors; fixed assets and item charges as the pages FixedAssets and
ItemCharges, for invoice lines); marketing.py adds contacts, business relations and opportunities,
inventory.py units of measure, items, item ledger entries and resources, pricing.py price groups,
sales prices, exchange rates and the Sales & Receivables Setup, documents.py sales orders (with the
SalesOrder page) and invoices with posting and payments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .model import Column, NumberSeries, Table, email_check
from .views import Computed, CurrencyCode, Field, PageView, RelatedId, Session, SystemField, TableTriggers, View

API_V2 = "v2.0"
# 26.0 (2025 release wave 1): the first version whose salespeoplePurchasers has email and phoneNo
SYSTEM_VERSION = "26.0.0.0"


@dataclass
class Catalog:
    tables: dict[str, Table] = field(default_factory=dict)
    apis: dict[str, dict[str, View]] = field(default_factory=dict)  # "v2.0" -> entity set -> view
    pages: dict[str, PageView] = field(default_factory=dict)  # service name -> page
    triggers: dict[str, list[TableTriggers]] = field(default_factory=dict)  # table name -> its triggers

    def on(self, table_name: str, **triggers) -> None:
        """Register table triggers: on_insert / after_insert / on_modify / after_modify / on_delete / after_delete."""
        self.triggers.setdefault(table_name, []).append(TableTriggers(**triggers))

    def add_table(self, table: Table) -> Table:
        self.tables[table.name] = table
        return table

    def add_api(self, view: View, api: str = API_V2) -> View:
        self.apis.setdefault(api, {})[view.name] = view
        return view

    def add_page(self, view: PageView) -> PageView:
        self.pages[view.name] = view
        return view

    def view(self, name: str) -> View:
        """An API v2.0 entity set or a page service by name (the in-process API accepts both)."""
        found = self.apis.get(API_V2, {}).get(name) or self.pages.get(name)
        if found is None:
            raise KeyError(f"unknown entity set or page service {name!r}")
        return found


class NonBlank(Field):
    """A property whose OnValidate refuses a blank value (customers.displayName)."""

    def __init__(self, name: str, column: str, message: str):
        super().__init__(name, column)
        self.message = message

    def set(self, session: Session, view: View, record: dict, value: Any) -> None:
        super().set(session, view, record, value)
        if record[self.column_name] == "":
            raise errors.dialog(self.message)


def _documents():
    from . import documents  # documents.py builds on this module
    return documents


class BalanceDue(Field):
    """customers.balanceDue: the stored opening balance plus what posted invoices still leave open."""

    def get(self, session: Session, record: dict) -> Any:
        return record[self.column_name] + _documents().open_balance(session, record["No."])


def _api_system_fields() -> list[Field]:
    """Present on every row; not published by most API pages (the in-process API shows them)."""
    return [
        SystemField("systemCreatedAt", "SystemCreatedAt", "datetime", exposed=False),
        SystemField("systemCreatedBy", "SystemCreatedBy", "guid", exposed=False),
        SystemField("systemModifiedBy", "SystemModifiedBy", "guid", exposed=False),
    ]


def _address_columns() -> list[Column]:
    """The address and communication fields a customer and a vendor share."""
    return [Column("Address", "text", 100), Column("Address 2", "text", 50), Column("City", "text", 30),
            Column("County", "text", 30), Column("Country/Region Code", "code", 10, relation="Country/Region"),
            Column("Post Code", "code", 20), Column("Phone No.", "text", 30),
            Column("E-Mail", "text", 80, check=email_check), Column("Home Page", "text", 80)]


def address_fields() -> list[Field]:
    """The address and phone number of a customer, vendor or contact as API v2.0 publishes them."""
    return [Field("addressLine1", "Address"), Field("addressLine2", "Address 2"), Field("city", "City"),
            Field("state", "County"), Field("country", "Country/Region Code"), Field("postalCode", "Post Code"),
            Field("phoneNumber", "Phone No.")]


def _id() -> Field:
    return SystemField("id", "SystemId", "guid", caption="Id")


def _last_modified() -> Field:
    return SystemField("lastModifiedDateTime", "SystemModifiedAt", "datetime", caption="Last Modified Date")


GL_ACCOUNT_TYPES = ("Posting", "Heading", "Total", "Begin-Total", "End-Total")
GL_ACCOUNT_CATEGORIES = (" ", "Assets", "Liabilities", "Equity", "Income", "Cost of Goods Sold", "Expense")


def check_gl_account(account: dict) -> None:
    """GLAcc.CheckGLAcc, before anything is posted to an account: a posting account, not blocked."""
    key = [("No.", account["No."])]
    if account["Account Type"] != "Posting":
        raise errors.must_be_equal("Account Type", "Posting", "G/L Account", key, account["Account Type"])
    if account["Blocked"]:
        raise errors.must_be_equal("Blocked", "No", "G/L Account", key, "Yes")


def code_table(number: int, name: str, code_length: int, description: str, description_length: int,
               *extra: Column) -> Table:
    return Table(number, name, [Column("Code", "code", code_length), Column(description, "text", description_length),
                                *extra], key=("Code",))


def build_catalog() -> Catalog:
    cat = Catalog()

    # -- tables ---------------------------------------------------------------------------------------
    company = cat.add_table(Table(2000000006, "Company", [
        Column("Name", "text", 30),
        Column("Display Name", "text", 250),
        Column("Business Profile Id", "text", 250),
    ], key=("Name",), company_scoped=False))

    salesperson = cat.add_table(Table(13, "Salesperson/Purchaser", [
        Column("Code", "code", 20),
        Column("Name", "text", 50),
        Column("E-Mail", "text", 80, check=email_check),
        Column("E-Mail 2", "text", 80, check=email_check),
        Column("Phone No.", "text", 30),
        Column("Job Title", "text", 30),
        Column("Commission %", "decimal"),
        Column("Privacy Blocked", "bool"),
        Column("Blocked", "bool"),
    ], key=("Code",)))

    country = cat.add_table(code_table(9, "Country/Region", 10, "Name", 50))
    currency = cat.add_table(code_table(4, "Currency", 10, "Description", 30,
                                        Column("Symbol", "text", 10),
                                        Column("Amount Decimal Places", "text", 5, init="2:2"),
                                        Column("Invoice Rounding Precision", "decimal", init=0.01)))
    payment_terms = cat.add_table(code_table(3, "Payment Terms", 10, "Description", 100,
                                             Column("Due Date Calculation", "dateformula", 32),
                                             Column("Discount Date Calculation", "dateformula", 32),
                                             Column("Discount %", "decimal"),
                                             Column("Calc. Pmt. Disc. on Cr. Memos", "bool")))
    shipment_method = cat.add_table(code_table(10, "Shipment Method", 10, "Description", 100))
    payment_method = cat.add_table(code_table(289, "Payment Method", 10, "Description", 100))
    tax_area = cat.add_table(code_table(318, "Tax Area", 20, "Description", 100))
    shipping_agent = cat.add_table(code_table(291, "Shipping Agent", 10, "Name", 50,
                                              Column("Internet Address", "text", 250)))

    customer = cat.add_table(Table(18, "Customer", [
        Column("No.", "code", 20),
        Column("Name", "text", 100),
        Column("Contact Type", "option", options=("Company", "Person")),
        *_address_columns(),
        Column("Salesperson Code", "code", 20, relation="Salesperson/Purchaser"),
        Column("Balance Due", "decimal"),
        Column("Credit Limit (LCY)", "decimal"),
        Column("Tax Liable", "bool"),
        Column("Tax Area Code", "code", 20, relation="Tax Area"),
        Column("VAT Registration No.", "text", 20),
        Column("Currency Code", "code", 10, relation="Currency"),
        Column("Payment Terms Code", "code", 10, relation="Payment Terms"),
        Column("Shipment Method Code", "code", 10, relation="Shipment Method"),
        Column("Payment Method Code", "code", 10, relation="Payment Method"),
        Column("Blocked", "option", options=(" ", "Ship", "Invoice", "All")),
        Column("Shipping Agent Code", "code", 10, relation="Shipping Agent"),
        Column("Customer Price Group", "code", 10, relation="Customer Price Group"),
        Column("Fax No.", "text", 30),
        Column("Contact", "text", 100),
        Column("Primary Contact No.", "code", 20, relation="Contact"),
        Column("Gen. Bus. Posting Group", "code", 20),
        Column("VAT Bus. Posting Group", "code", 20),
        Column("Customer Posting Group", "code", 20),
    ], key=("No.",), series=NumberSeries("C00010", 10)))

    # Configuration templates (RapidStart): a template names a table and gives field values by field name;
    # Business Central's integration applies the one its table mapping names to each record it creates.
    template = cat.add_table(Table(8618, "Config. Template Header", [
        Column("Code", "code", 10),
        Column("Description", "text", 100),
        Column("Table ID", "integer"),
        Column("Table Name", "text", 250),
        Column("Enabled", "bool", init=True),
    ], key=("Code",)))
    template_line = cat.add_table(Table(8619, "Config. Template Line", [
        Column("Data Template Code", "code", 10, relation="Config. Template Header"),
        Column("Line No.", "integer"),
        Column("Type", "option", options=("Field", "Template", "Related Template")),
        Column("Field Name", "text", 30),
        Column("Field Caption", "text", 250),
        Column("Template Code", "code", 10),
        Column("Default Value", "text", 2048),
        Column("Skip Relation Check", "bool"),
        Column("Mandatory", "bool"),
        Column("Reference", "text", 250),
    ], key=("Data Template Code", "Line No.")))

    gl_account = cat.add_table(Table(15, "G/L Account", [
        Column("No.", "code", 20),
        Column("Name", "text", 100),
        Column("Account Type", "option", options=GL_ACCOUNT_TYPES),
        Column("Income/Balance", "option", options=("Income Statement", "Balance Sheet")),
        Column("Account Category", "option", options=GL_ACCOUNT_CATEGORIES),
        Column("Account Subcategory Descript.", "text", 80),
        Column("Direct Posting", "bool", init=True),
        Column("Blocked", "bool"),
    ], key=("No.",)))

    vendor = cat.add_table(Table(23, "Vendor", [
        Column("No.", "code", 20),
        Column("Name", "text", 100),
        *_address_columns(),
        Column("Fax No.", "text", 30),
        Column("Purchaser Code", "code", 20, relation="Salesperson/Purchaser"),
        Column("Currency Code", "code", 10, relation="Currency"),
        Column("Payment Terms Code", "code", 10, relation="Payment Terms"),
        Column("Blocked", "option", options=(" ", "Payment", "All")),
        Column("Gen. Bus. Posting Group", "code", 20),
        Column("VAT Bus. Posting Group", "code", 20),
        Column("Vendor Posting Group", "code", 20),
    ], key=("No.",), series=NumberSeries("V00010", 10)))
    fixed_asset = cat.add_table(Table(5600, "Fixed Asset", [
        Column("No.", "code", 20),
        Column("Description", "text", 100),
        Column("Blocked", "bool"),
        Column("Inactive", "bool"),
    ], key=("No.",), series=NumberSeries("FA000010", 10)))
    item_charge = cat.add_table(Table(5800, "Item Charge", [
        Column("No.", "code", 20),
        Column("Description", "text", 100),
    ], key=("No.",)))

    company_information = cat.add_table(Table(79, "Company Information", [
        Column("Primary Key", "code", 10),
        Column("Name", "text", 100),
        Column("Address", "text", 100),
        Column("Address 2", "text", 50),
        Column("City", "text", 30),
        Column("County", "text", 30),
        Column("Country/Region Code", "code", 10, relation="Country/Region"),
        Column("Post Code", "code", 20),
        Column("Phone No.", "text", 30),
        Column("Fax No.", "text", 30),
        Column("E-Mail", "text", 80, check=email_check),
        Column("Home Page", "text", 80),
        Column("VAT Registration No.", "text", 20),
        Column("Industrial Classification", "text", 30),
    ], key=("Primary Key",), blank_key=("Primary Key",)))

    # -- API v2.0 entity sets -----------------------------------------------------------------------------
    cat.add_api(View("companies", company, [
        _id(),
        Computed("systemVersion", "text", lambda s, r: SYSTEM_VERSION),
        Computed("timestamp", "bigint", lambda s, r: r["$version"]),
        Field("name", "Name"),
        Field("displayName", "Display Name"),
        Field("businessProfileId", "Business Profile Id"),
        SystemField("systemCreatedAt", "SystemCreatedAt", "datetime"),
        SystemField("systemCreatedBy", "SystemCreatedBy", "guid"),
        SystemField("systemModifiedAt", "SystemModifiedAt", "datetime"),
        SystemField("systemModifiedBy", "SystemModifiedBy", "guid"),
    ], entity_name="company", insertable=False, modifiable=False, deletable=False))

    cat.add_api(View("companyInformation", company_information, [
        _id(),
        Field("displayName", "Name"),
        *address_fields(),
        Field("faxNumber", "Fax No."),
        Field("email", "E-Mail"),
        Field("website", "Home Page"),
        Field("taxRegistrationNumber", "VAT Registration No."),
        Computed("currencyCode", "code", lambda s, r: s.lcy_code),  # General Ledger Setup."LCY Code"
        Computed("currentFiscalYearStartDate", "date", lambda s, r: s.today().replace(month=1, day=1)),
        Field("industry", "Industrial Classification"),
        _last_modified(),
        *_api_system_fields(),
    ], entity_name="companyInformation", insertable=False, deletable=False))

    cat.add_api(View("salespeoplePurchasers", salesperson, [
        _id(),
        Field("code", "Code"),
        Field("displayName", "Name"),
        Field("email", "E-Mail"),
        Field("email2", "E-Mail 2"),
        Field("phoneNo", "Phone No."),
        Field("jobTitle", "Job Title"),
        Field("commisionPercent", "Commission %"),
        Field("privacyBlocked", "Privacy Blocked"),
        Field("blocked", "Blocked"),
        _last_modified(),
        *_api_system_fields(),
    ], entity_name="salespersonPurchaser"))

    def customer_needs_name(session: Session, record: dict, values: dict) -> None:
        if record["Name"] == "":
            raise errors.dialog('A "displayName" must be provided.')

    def tax_area_display_name(session: Session, record: dict) -> str:
        code = record["Tax Area Code"]
        if not code:
            return ""
        area = session.find("Tax Area", (code,))
        return (area["Description"] or code) if area else code

    cat.add_api(View("customers", customer, [
        _id(),
        Field("number", "No."),
        NonBlank("displayName", "Name", 'The blank "displayName" is not allowed.'),
        Field("type", "Contact Type"),
        *address_fields(),
        Field("email", "E-Mail"),
        Field("website", "Home Page"),
        Field("salespersonCode", "Salesperson Code"),
        BalanceDue("balanceDue", "Balance Due", read_only=True),
        Field("creditLimit", "Credit Limit (LCY)"),
        Field("taxLiable", "Tax Liable"),
        RelatedId("taxAreaId", "Tax Area Code", "Tax Area", "Tax Area"),
        Computed("taxAreaDisplayName", "text", tax_area_display_name),
        Field("taxRegistrationNumber", "VAT Registration No."),
        RelatedId("currencyId", "Currency Code", "Currency", "Currency"),
        CurrencyCode("currencyCode", "Currency Code", "currencyId"),
        RelatedId("paymentTermsId", "Payment Terms Code", "Payment Terms", "Payment Terms"),
        RelatedId("shipmentMethodId", "Shipment Method Code", "Shipment Method", "Shipment Method"),
        RelatedId("paymentMethodId", "Payment Method Code", "Payment Method", "Payment Method"),
        Field("blocked", "Blocked"),
        _last_modified(),
        Field("shippingAgentCode", "Shipping Agent Code", exposed=False),
        Field("customerPriceGroupCode", "Customer Price Group", exposed=False),
        Field("genBusPostingGroup", "Gen. Bus. Posting Group", exposed=False),
        Field("vatBusPostingGroup", "VAT Bus. Posting Group", exposed=False),
        Field("customerPostingGroup", "Customer Posting Group", exposed=False),
        *_api_system_fields(),
    ], entity_name="customer", before_insert=customer_needs_name,
        seed_defaults={"genBusPostingGroup": "DOMESTIC", "vatBusPostingGroup": "DOMESTIC",
                       "customerPostingGroup": "DOMESTIC"}))

    cat.add_api(View("paymentTerms", payment_terms, [
        _id(),
        Field("code", "Code"),
        Field("displayName", "Description"),
        Field("dueDateCalculation", "Due Date Calculation"),
        Field("discountDateCalculation", "Discount Date Calculation"),
        Field("discountPercent", "Discount %"),
        Field("calculateDiscountOnCreditMemos", "Calc. Pmt. Disc. on Cr. Memos"),
        _last_modified(),
        *_api_system_fields(),
    ], entity_name="paymentTerm"))

    cat.add_api(View("shipmentMethods", shipment_method, [
        _id(), Field("code", "Code"), Field("displayName", "Description"), _last_modified(), *_api_system_fields(),
    ], entity_name="shipmentMethod"))

    cat.add_api(View("currencies", currency, [
        _id(),
        Field("code", "Code"),
        Field("displayName", "Description"),
        Field("symbol", "Symbol"),
        Field("amountDecimalPlaces", "Amount Decimal Places"),
        Field("amountRoundingPrecision", "Invoice Rounding Precision"),
        _last_modified(),
        *_api_system_fields(),
    ], entity_name="currency"))

    cat.add_api(View("paymentMethods", payment_method, [
        _id(), Field("code", "Code"), Field("displayName", "Description"), _last_modified(), *_api_system_fields(),
    ], entity_name="paymentMethod"))

    cat.add_api(View("taxAreas", tax_area, [
        _id(), Field("code", "Code"), Field("displayName", "Description"),
        Computed("taxType", "option", lambda s, r: "Sales Tax", options=("Sales Tax", "VAT")), _last_modified(), *_api_system_fields(),
    ], entity_name="taxArea"))

    cat.add_api(View("countriesRegions", country, [
        _id(), Field("code", "Code"), Field("displayName", "Name"), _last_modified(), *_api_system_fields(),
    ], entity_name="countryRegion"))

    cat.add_api(View("accounts", gl_account, [
        _id(),
        Field("number", "No."),
        Field("displayName", "Name"),
        Field("category", "Account Category"),
        Field("subCategory", "Account Subcategory Descript."),
        Field("blocked", "Blocked"),
        Field("accountType", "Account Type"),
        Field("directPosting", "Direct Posting"),
        Computed("netChange", "decimal", lambda s, r: 0.0),  # the simulator keeps no G/L entries
        _last_modified(),
        Field("incomeBalance", "Income/Balance", exposed=False),
        *_api_system_fields(),
    ], entity_name="account", insertable=False, modifiable=False, deletable=False, seedable=True))

    cat.add_api(View("vendors", vendor, [
        _id(),
        Field("number", "No."),
        NonBlank("displayName", "Name", 'The blank "displayName" is not allowed.'),
        *address_fields(),
        Field("email", "E-Mail"),
        Field("website", "Home Page"),
        RelatedId("currencyId", "Currency Code", "Currency", "Currency"),
        CurrencyCode("currencyCode", "Currency Code", "currencyId"),
        RelatedId("paymentTermsId", "Payment Terms Code", "Payment Terms", "Payment Terms"),
        Field("blocked", "Blocked"),
        _last_modified(),
        Field("purchaserCode", "Purchaser Code", exposed=False),
        Field("faxNo", "Fax No.", exposed=False),
        Field("genBusPostingGroup", "Gen. Bus. Posting Group", exposed=False),
        Field("vatBusPostingGroup", "VAT Bus. Posting Group", exposed=False),
        Field("vendorPostingGroup", "Vendor Posting Group", exposed=False),
        *_api_system_fields(),
    ], entity_name="vendor"))

    # -- OData v4 page web services -----------------------------------------------------------------------
    cat.add_page(PageView("CustomerCard", customer, [
        Field("No", "No."),
        Field("Name", "Name"),
        Field("Shipping_Agent_Code", "Shipping Agent Code"),
        Field("Salesperson_Code", "Salesperson Code"),
        Field("Customer_Price_Group", "Customer Price Group"),
        Field("Currency_Code", "Currency Code"),
        Field("Fax_No", "Fax No."),
        Field("ContactName", "Contact"),
        Field("Primary_Contact_No", "Primary Contact No."),
        Field("Gen_Bus_Posting_Group", "Gen. Bus. Posting Group"),
        Field("VAT_Bus_Posting_Group", "VAT Bus. Posting Group"),
        Field("Customer_Posting_Group", "Customer Posting Group"),
        SystemField("SystemId", "SystemId", "guid"),
        SystemField("SystemModifiedAt", "SystemModifiedAt", "datetime"),
    ]))
    # page 26 "Vendor Card": what API v2.0 vendors lack
    cat.add_page(PageView("VendorCard", vendor, [
        *page_fields("No.", "Name", "Purchaser Code", "Fax No.", "Gen. Bus. Posting Group", "VAT Bus. Posting Group",
                     "Vendor Posting Group"),
        *page_system_fields(),
    ]))
    # page 8620 "Config. Template List" and its lines, page 8619 "Config. Template Subform"
    cat.add_page(PageView("ConfigTemplates", template, [
        *page_fields("Code", "Description", "Table ID", "Table Name"), *page_system_fields()]))
    cat.add_page(PageView("ConfigTemplateLines", template_line, [
        *page_fields("Data Template Code", "Line No.", "Type", "Field Name", "Field Caption", "Template Code",
                     "Default Value", "Skip Relation Check", "Mandatory", "Reference"),
        *page_system_fields()]))
    cat.add_page(PageView("ShippingAgents", shipping_agent, [
        Field("Code", "Code"),
        Field("Name", "Name"),
        Field("Internet_Address", "Internet Address"),
        SystemField("SystemId", "SystemId", "guid"),
        SystemField("SystemModifiedAt", "SystemModifiedAt", "datetime"),
    ]))

    # pages 5601 "Fixed Asset List" and 5801 "Item Charges" (API v2.0 has neither): what invoice lines sell
    cat.add_page(PageView("FixedAssets", fixed_asset, [
        Field("No", "No."), Field("Description", "Description"), Field("Blocked", "Blocked"),
        Field("Inactive", "Inactive"), *page_system_fields(),
    ]))
    cat.add_page(PageView("ItemCharges", item_charge, [
        Field("No", "No."), Field("Description", "Description"), *page_system_fields(),
    ]))

    from . import documents, inventory, links, marketing, pricing
    inventory.register(cat)
    marketing.register(cat)
    pricing.register(cat)
    documents.register(cat)
    links.register(cat)
    return cat


def page_fields(*columns: str) -> list[Field]:
    """Controls named after their table fields, under the names a page web service publishes them by:
    characters that cannot be part of a name become one underscore ("Line No." -> Line_No)."""
    return [Field(re.sub(r"[^0-9A-Za-z]+", "_", column).strip("_"), column) for column in columns]


def page_system_fields() -> list[Field]:
    """SystemId and SystemModifiedAt, published on a page so an integration can track its changes."""
    return [SystemField("SystemId", "SystemId", "guid"), SystemField("SystemModifiedAt", "SystemModifiedAt", "datetime")]


# Country/Region codes every company starts with (the demo company ships a list like this one).
DEFAULT_COUNTRIES = [
    ("AT", "Austria"), ("AU", "Australia"), ("BE", "Belgium"), ("BR", "Brazil"), ("CA", "Canada"),
    ("CH", "Switzerland"), ("CN", "China"), ("CZ", "Czech Republic"), ("DE", "Germany"), ("DK", "Denmark"),
    ("ES", "Spain"), ("FI", "Finland"), ("FR", "France"), ("GB", "Great Britain"), ("IE", "Ireland"),
    ("IN", "India"), ("IS", "Iceland"), ("IT", "Italy"), ("JP", "Japan"), ("MX", "Mexico"),
    ("NL", "Netherlands"), ("NO", "Norway"), ("NZ", "New Zealand"), ("PL", "Poland"), ("PT", "Portugal"),
    ("SE", "Sweden"), ("SG", "Singapore"), ("US", "USA"), ("ZA", "South Africa"),
]
