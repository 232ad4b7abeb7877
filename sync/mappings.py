"""The built-in table mappings (those of Business Central's own integration), and the catalogue that holds them.

Business Central names fields by table field (Salesperson Code); we talk to its API v2.0, so the
field mappings use the API names (salespersonCode) and keep the table caption for messages.
"""

from __future__ import annotations

import functools
from typing import Iterable, Mapping

from .availability import ItemAvailabilityProcess
from .errors import ConfigurationError
from .model import (
    Convert,
    Direction,
    FieldMapping,
    NumberSeries,
    OptionSet,
    OwnershipModel,
    TableMapping,
    WhenUncoupled,
)
from .orders import SUBMITTED as SUBMITTED_ORDER, SalesOrderProcess
from .quotes import MAPPING as QUOTES_MAPPING, SalesQuoteProcess
from .rules.contacts import ContactRules, OpportunityRules
from .rules.currency import CurrencyRules
from .rules.customers import CustomerRules
from .rules.invoices import PostedInvoiceRules
from .rules.prices import PriceListRules, PriceRules
from .rules.products import ProductRules
from .rules.unitgroups import UnitOfMeasureRules
from .rules.units import ITEM_UNITS, PRICING_MAPPINGS, RESOURCE_UNITS, UnitGroupRules, UnitOwner
from .tables import (
    BC_CONTACT,
    BC_CURRENCY,
    BC_CUSTOMER,
    BC_CUSTOMER_PRICE_GROUP,
    BC_ITEM,
    BC_ITEM_LEDGER_ENTRY,
    BC_ITEM_UNIT,
    BC_PRICE_LIST_HEADER,
    BC_PRICE_LIST_LINE,
    BC_OPPORTUNITY,
    BC_PAYMENT_TERMS,
    BC_RESOURCE,
    BC_RESOURCE_UNIT,
    BC_SALES_INVOICE,
    BC_SALES_ORDER,
    BC_SALES_QUOTE,
    BC_SALES_PRICE,
    BC_SALESPERSON,
    BC_SHIPMENT_METHOD,
    BC_SHIPPING_AGENT,
    BC_UNIT_GROUP,
    BC_UNIT_OF_MEASURE,
    BC_VENDOR,
    CRM_ACCOUNT,
    CRM_CONTACT,
    CRM_CURRENCY,
    CRM_INVOICE,
    CRM_OPPORTUNITY,
    CRM_PRICE_LIST,
    CRM_PRICE_LIST_ITEM,
    CRM_PRODUCT,
    CRM_QUOTE,
    CRM_SALES_ORDER,
    CRM_SYSTEMUSER,
    CRM_UNIT,
    CRM_UNIT_GROUP,
)

TO, FROM, BI = Direction.TO_CRM, Direction.FROM_CRM, Direction.BIDIRECTIONAL


def _text(bc: str, crm: str, direction: Direction, max_length: int, caption: str, **kw) -> FieldMapping:
    return FieldMapping(bc, crm, direction, Convert.TEXT, max_length=max_length, caption=caption, **kw)


def _owner(bc_field: str, direction: Direction = BI, caption: str = "Salesperson Code") -> FieldMapping:
    """The Sales owner: the user coupled to the record's salesperson; never cleared (Not Null). From Sales,
    a user owner gives the salesperson coupled to that user (see _Job._converter for teams). Person
    ownership model only: team_owned drops it."""
    return FieldMapping(bc_field, "ownerid", direction, Convert.LOOKUP, lookup_mapping="SALESPEOPLE",
                        bc_key="code", not_null=True, caption=caption)


def _currency_code() -> FieldMapping:
    """A price's (or price list's) Currency Code -> its Sales currency; blank is the local currency's."""
    return FieldMapping("Currency_Code", "transactioncurrencyid", TO, Convert.LOOKUP, lookup_mapping="CURRENCY",
                        bc_key="code", caption="Currency Code")


def _postal_address() -> tuple[FieldMapping, ...]:
    """Address 1 of an account or contact <-> the address of a customer or contact."""
    return (_text("addressLine1", "address1_line1", BI, 100, "Address"),
            _text("addressLine2", "address1_line2", BI, 50, "Address 2"),
            _text("postalCode", "address1_postalcode", BI, 20, "Post Code"),
            _text("city", "address1_city", BI, 30, "City"),
            _text("country", "address1_country", BI, 10, "Country/Region Code"),
            _text("state", "address1_stateorprovince", BI, 30, "County"))


SALESPEOPLE = TableMapping(
    name="SALESPEOPLE",
    description="Dataverse users become Business Central salespeople (enabled, licensed, not the integration user).",
    bc=BC_SALESPERSON,
    crm=CRM_SYSTEMUSER,
    direction=FROM,
    fields=(
        _text("email", "internalemailaddress", FROM, 80, "E-Mail", use_for_matching=True),
        _text("displayName", "fullname", FROM, 50, "Name"),
        _text("phoneNo", "mobilephone", FROM, 30, "Phone No."),
    ),
    crm_filter="isdisabled eq false and islicensed eq true and isintegrationuser eq false",
    bc_number_series=NumberSeries("code", "SP NO. ", 5),
    inactivity_timeout_minutes=1440,
)


def _option_mapping(name: str, bc_table, attribute: str, description: str) -> TableMapping:
    """Business Central code table <-> the options of one account attribute, coupled by code = label."""
    return TableMapping(
        name=name,
        description=description,
        bc=bc_table,
        crm=None,
        option_set=OptionSet(CRM_ACCOUNT, attribute),
        direction=TO,
        fields=(FieldMapping(bc_table.key_field, "label", TO, Convert.TEXT, caption="Code", use_for_matching=True),),
        inactivity_timeout_minutes=1440,
    )


PAYMENT_TERMS = _option_mapping(
    "PAYMENT TERMS", BC_PAYMENT_TERMS, "paymenttermscode",
    "Payment terms codes coupled to the options of the account's Payment Terms.")
SHIPMENT_METHOD = _option_mapping(
    "SHIPMENT METHOD", BC_SHIPMENT_METHOD, "address1_freighttermscode",
    "Shipment method codes coupled to the options of the account's Address 1: Freight Terms.")
SHIPPING_AGENT = _option_mapping(
    "SHIPPING AGENT", BC_SHIPPING_AGENT, "address1_shippingmethodcode",
    "Shipping agent codes (page ShippingAgents) coupled to the options of the account's Address 1: Shipping Method.")

CURRENCY = TableMapping(
    name="CURRENCY",
    description="Currencies with a standard ISO code as transaction currencies; exchange rates from BC.",
    bc=BC_CURRENCY,
    crm=CRM_CURRENCY,
    direction=TO,
    fields=(
        _text("code", "isocurrencycode", TO, 10, "Code", use_for_matching=True),
        _text("displayName", "currencyname", TO, 30, "Description"),
        _text("symbol", "currencysymbol", TO, 10, "Symbol"),
    ),
    # exchange rates change without the currency changing: every run looks at every currency
    reread_all=True,
    rules=CurrencyRules(),
)

CONTACT = TableMapping(
    name="CONTACT",
    description="Person contacts of companies related to customers or vendors, and Sales contacts of accounts; "
                "both ways.",
    bc=BC_CONTACT,
    crm=CRM_CONTACT,
    direction=BI,
    fields=(
        _owner("salespersonCode"),
        FieldMapping("currencyCode", "transactioncurrencyid", BI, Convert.LOOKUP, lookup_mapping="CURRENCY",
                     bc_key="code", caption="Currency Code"),
        *_postal_address(),
        _text("email", "emailaddress1", BI, 80, "E-Mail", use_for_matching=True),
        _text("faxNo", "fax", BI, 30, "Fax No."),
        _text("firstName", "firstname", BI, 30, "First Name"),
        _text("middleName", "middlename", BI, 30, "Middle Name"),
        _text("surname", "lastname", BI, 30, "Surname"),
        _text("website", "websiteurl", BI, 80, "Home Page"),
        _text("mobilePhoneNumber", "mobilephone", BI, 30, "Mobile Phone No."),
        _text("pager", "pager", BI, 30, "Pager"),
        _text("phoneNumber", "telephone1", BI, 30, "Phone No."),
        FieldMapping("type", None, FROM, Convert.TEXT, constant="Person", caption="Type"),
    ),
    bc_filter="type eq 'Person' and (contactBusinessRelation eq 'Customer' or contactBusinessRelation eq 'Vendor')",
    crm_filter="_parentcustomerid_value ne null and statecode eq 0",
    dependencies=("CUSTOMER", "VENDOR"),
    rules=ContactRules(),
)

OPPORTUNITY = TableMapping(
    name="OPPORTUNITY",
    description="Open opportunities both ways; owner from the salesperson, account from the contact's company.",
    bc=BC_OPPORTUNITY,
    crm=CRM_OPPORTUNITY,
    direction=BI,
    fields=(
        _text("description", "name", BI, 100, "Description"),
        FieldMapping("contactNumber", "parentcontactid", BI, Convert.LOOKUP, lookup_mapping="CONTACT",
                     bc_key="number", caption="Contact No."),
        _owner("salespersonCode"),
        FieldMapping("estimatedValue", "estimatedvalue", TO, Convert.NUMBER, caption="Estimated Value (LCY)"),
        _text("estimatedClosingDate", "estimatedclosedate", TO, 10, "Estimated Closing Date"),
    ),
    bc_filter="status eq 'Not_x0020_Started' or status eq 'In_x0020_Progress'",
    dependencies=("CONTACT",),
    sync_only_coupled=False,
    rules=OpportunityRules(),
)

def _address(prefix_bc: str, prefix_crm: str, caption: str) -> tuple[FieldMapping, ...]:
    parts = (("Name", "name", 100), ("AddressLine1", "line1", 100), ("AddressLine2", "line2", 50), ("City", "city", 30),
             ("Country", "country", 10), ("PostCode", "postalcode", 20), ("State", "stateorprovince", 30))
    return tuple(_text(f"{prefix_bc}{bc}", f"{prefix_crm}_{crm}", TO, length, f"{caption} {bc}")
                 for bc, crm, length in parts)


POSTED_SALES_INVOICE = TableMapping(
    name="POSTEDSALESINV-INV",
    description="Posted sales invoices, with their lines, as Sales invoices; totals and paid state follow.",
    bc=BC_SALES_INVOICE,
    crm=CRM_INVOICE,
    direction=TO,
    fields=(
        _text("number", "invoicenumber", TO, 20, "No.", use_for_matching=True),
        FieldMapping("customerId", "customerid", TO, Convert.LOOKUP, lookup_mapping="CUSTOMER",
                     caption="Sell-to Customer No."),
        _owner("salesperson", TO),
        FieldMapping("currencyId", "transactioncurrencyid", TO, Convert.LOOKUP, lookup_mapping="CURRENCY",
                     caption="Currency Code"),
        _text("dueDate", "duedate", TO, 10, "Due Date"),
        *_address("shipTo", "shipto", "Ship-to"),
        *_address("billTo", "billto", "Bill-to"),
        FieldMapping("totalAmountExcludingTax", "totalamountlessfreight", TO, Convert.NUMBER, caption="Amount"),
        FieldMapping("totalAmountIncludingTax", "totalamount", TO, Convert.NUMBER, caption="Amount Including VAT"),
        FieldMapping("discountAmount", "discountamount", TO, Convert.NUMBER, caption="Invoice Discount Amount"),
        FieldMapping("paymentTermsId", "paymenttermscode", TO, Convert.LOOKUP, lookup_mapping="PAYMENT TERMS",
                     when_uncoupled=WhenUncoupled.LEAVE_BLANK, caption="Payment Terms Code"),
        FieldMapping("shippingAgentCode", "shippingmethodcode", TO, Convert.LOOKUP, lookup_mapping="SHIPPING AGENT",
                     bc_key="Code", when_uncoupled=WhenUncoupled.LEAVE_BLANK, caption="Shipping Agent Code"),
        _text("shipmentDate", "datedelivered", TO, 10, "Shipment Date"),
        _text("workDescription", "description", TO, 2000, "Work Description"),
    ),
    bc_filter="status eq 'Open' or status eq 'Paid'",
    dependencies=("CUSTOMER", "ITEM-PRODUCT", "RESOURCE-PRODUCT", "OPPORTUNITY"),
    sync_only_coupled=False,
    inactivity_timeout_minutes=1440,
    rules=PostedInvoiceRules(),
)

UNIT_OF_MEASURE = TableMapping(
    name="UNIT OF MEASURE",
    description="Units of measure as Sales unit groups named NAV <code>, each holding exactly one unit.",
    bc=BC_UNIT_OF_MEASURE,
    crm=CRM_UNIT_GROUP,
    direction=TO,
    fields=(
        FieldMapping("code", "name", TO, Convert.TEXT, template="NAV {}", caption="Code", use_for_matching=True),
        _text("code", "baseuomname", TO, 10, "Code"),
    ),
    rules=UnitGroupRules(),
)

# Unit-group mode (Business Central's "Unit Group Mapping Enabled"). Synch. Only Coupled Records is off: a unit
# of measure added to an item reaches Sales at the next run, found again by its name in its group if it is there.
UNIT_GROUP = TableMapping(
    name="UNIT GROUP",
    description="Each item's and resource's unit group as a Sales unit group named ITEM <No.> UOM GR / "
                "RESOURCE <No.> UOM GR.",
    bc=BC_UNIT_GROUP,
    crm=CRM_UNIT_GROUP,
    direction=TO,
    fields=(
        FieldMapping("Code", "name", TO, Convert.TEXT, caption="Source No.", use_for_matching=True),
        FieldMapping("Code", "baseuomname", TO, Convert.TEXT, caption="Source No."),
    ),
    sync_only_coupled=False,
)


def _units_of_measure(owner: UnitOwner, products: str, table, price: str) -> TableMapping:
    """ITEM UOM / RESOURCE UOM: the units of measure of items or resources as the units of their unit groups,
    matched by name within the group."""
    return TableMapping(
        name=owner.mapping,
        description=f"{owner.caption} units of measure as units of the {owner.caption.lower()}'s Sales unit group, "
                    f"holding their quantity of base units.",
        bc=owner.table,
        crm=CRM_UNIT,
        direction=TO,
        fields=(
            FieldMapping(owner.system_id, "uomscheduleid", TO, Convert.LOOKUP, lookup_mapping="UNIT GROUP",
                         bc_key="Source_Id", caption=f"{owner.caption} No.", use_for_matching=True),
            FieldMapping("Code", "name", TO, Convert.TEXT, caption="Code", use_for_matching=True),
            FieldMapping("Qty_per_Unit_of_Measure", "quantity", TO, Convert.NUMBER,
                         caption="Qty. per Unit of Measure"),
        ),
        dependencies=("UNIT GROUP",),
        sync_only_coupled=False,
        rules=UnitOfMeasureRules(owner, products, table, price),
    )


ITEM_UOM = _units_of_measure(ITEM_UNITS, "ITEM-PRODUCT", BC_ITEM, "unitPrice")
RESOURCE_UOM = _units_of_measure(RESOURCE_UNITS, "RESOURCE-PRODUCT", BC_RESOURCE, "Unit_Price")

ITEM_PRODUCT = TableMapping(
    name="ITEM-PRODUCT",
    description="Items as Sales products of type Sales Inventory, with the default price list; both ways.",
    bc=BC_ITEM,
    crm=CRM_PRODUCT,
    direction=BI,
    fields=(
        _text("number", "productnumber", TO, 20, "No.", use_for_matching=True),
        _text("displayName", "name", BI, 100, "Description"),
        FieldMapping("unitPrice", "price", TO, Convert.NUMBER, not_negative=True, caption="Unit Price"),
        FieldMapping("unitCost", "standardcost", TO, Convert.NUMBER, caption="Unit Cost"),
        FieldMapping("unitCost", "currentcost", TO, Convert.NUMBER, caption="Unit Cost"),
        FieldMapping("unitVolume", "stockvolume", TO, Convert.NUMBER, caption="Unit Volume"),
        FieldMapping("grossWeight", "stockweight", TO, Convert.NUMBER, caption="Gross Weight"),
        _text("vendorNo", "vendorid", TO, 20, "Vendor No."),
        _text("vendorItemNo", "vendorpartnumber", TO, 50, "Vendor Item No."),
        FieldMapping("inventory", "quantityonhand", TO, Convert.NUMBER, not_negative=True, caption="Inventory"),
        FieldMapping("baseUnitOfMeasureCode", "defaultuomscheduleid", BI, Convert.LOOKUP,
                     lookup_mapping="UNIT OF MEASURE", bc_key="code", caption="Base Unit of Measure"),
    ),
    crm_filter="producttypecode eq 1",
    dependencies=("UNIT OF MEASURE", "CURRENCY"),
    inactivity_timeout_minutes=1440,
    rules=ProductRules(1, "blocked", "baseUnitOfMeasureCode", "unitPrice", "Item", "vendorNo"),
)

RESOURCE_PRODUCT = TableMapping(
    name="RESOURCE-PRODUCT",
    description="Resources (page Resources) as Sales products of type Services; both ways.",
    bc=BC_RESOURCE,
    crm=CRM_PRODUCT,
    direction=BI,
    fields=(
        _text("No", "productnumber", TO, 20, "No.", use_for_matching=True),
        _text("Name", "name", BI, 100, "Name"),
        FieldMapping("Unit_Price", "price", TO, Convert.NUMBER, not_negative=True, caption="Unit Price"),
        FieldMapping("Unit_Cost", "standardcost", TO, Convert.NUMBER, caption="Unit Cost"),
        FieldMapping("Unit_Cost", "currentcost", TO, Convert.NUMBER, caption="Unit Cost"),
        _text("Vendor_No", "vendorid", TO, 20, "Vendor No."),
        FieldMapping("Capacity", "quantityonhand", TO, Convert.NUMBER, not_negative=True, caption="Capacity"),
        FieldMapping("Base_Unit_of_Measure", "defaultuomscheduleid", BI, Convert.LOOKUP,
                     lookup_mapping="UNIT OF MEASURE", bc_key="code", caption="Base Unit of Measure"),
    ),
    crm_filter="producttypecode eq 3",
    dependencies=("UNIT OF MEASURE", "CURRENCY"),
    rules=ProductRules(3, "Blocked", "Base_Unit_of_Measure", "Unit_Price", "Resource", "Vendor_No"),
)

CUSTOMER_PRICE_GROUP = TableMapping(
    name="CUSTPRCGRP-PRICE",
    description="Customer price groups (page CustomerPriceGroups) as Sales price lists in their prices' currency "
                "(legacy pricing).",
    bc=BC_CUSTOMER_PRICE_GROUP,
    crm=CRM_PRICE_LIST,
    direction=TO,
    fields=(
        _text("Code", "name", TO, 10, "Code", use_for_matching=True),
        _text("Description", "description", TO, 100, "Description", insert_only=True),
    ),
    dependencies=("CURRENCY", "ITEM-PRODUCT"),
    inactivity_timeout_minutes=1440,
    rules=PriceListRules(extended=False),
)

SALES_PRICE = TableMapping(
    name="SALESPRC-PRODPRICE",
    description="Sales prices of customer price groups (page SalesPrices) as price list items (legacy pricing).",
    bc=BC_SALES_PRICE,
    crm=CRM_PRICE_LIST_ITEM,
    direction=TO,
    fields=(
        FieldMapping("Sales_Code", "pricelevelid", TO, Convert.LOOKUP, lookup_mapping="CUSTPRCGRP-PRICE",
                     bc_key="Code", caption="Sales Code", use_for_matching=True),
        FieldMapping("Item_No", "productid", TO, Convert.LOOKUP, lookup_mapping="ITEM-PRODUCT", bc_key="number",
                     caption="Item No.", use_for_matching=True),
        _currency_code(),
        FieldMapping(None, "pricingmethodcode", TO, Convert.NUMBER, constant=1, caption="Pricing Method"),
        FieldMapping("Unit_Price", "amount", TO, Convert.NUMBER, caption="Unit Price"),
    ),
    bc_filter="Sales_Type eq 'Customer_x0020_Price_x0020_Group' and Sales_Code ne ''",
    dependencies=("CUSTPRCGRP-PRICE", "ITEM-PRODUCT"),
    sync_only_coupled=False,
    inactivity_timeout_minutes=1440,
    rules=PriceRules(extended=False),
)

PRICE_LIST_HEADER = TableMapping(
    name="PLHEADER-PRICE",
    description="Sales price lists (page PriceListHeaders) as Sales price lists, with their currency, dates and state "
                "(extended pricing).",
    bc=BC_PRICE_LIST_HEADER,
    crm=CRM_PRICE_LIST,
    direction=TO,
    fields=(
        _text("Code", "name", TO, 20, "Code", use_for_matching=True),
        _text("Description", "description", TO, 250, "Description"),
        _currency_code(),
        FieldMapping("Starting_Date", "begindate", TO, Convert.DATE, caption="Starting Date"),
        FieldMapping("Ending_Date", "enddate", TO, Convert.DATE, caption="Ending Date"),
    ),
    # and Allow Updating Defaults as Sales & Receivables Setup has a default price list or not (PriceListRules)
    bc_filter="Price_Type eq 'Sale' and Amount_Type eq 'Price'",
    dependencies=("CURRENCY", "ITEM-PRODUCT"),
    inactivity_timeout_minutes=1440,
    rules=PriceListRules(extended=True),
)

PRICE_LIST_LINE = TableMapping(
    name="PLLINE-PRODPRICE",
    description="Lines of sales price lists (page PriceListLines) for items and resources as price list items "
                "(extended pricing).",
    bc=BC_PRICE_LIST_LINE,
    crm=CRM_PRICE_LIST_ITEM,
    direction=TO,
    fields=(
        FieldMapping("Price_List_Code", "pricelevelid", TO, Convert.LOOKUP, lookup_mapping="PLHEADER-PRICE",
                     bc_key="Code", caption="Price List Code"),
        # Asset No. -> productid (the item's or the resource's product) and the unit are computed (PriceRules);
        # productnumber, read-only on a price list item, is the product's, which Dataverse fills in
        _currency_code(),
        FieldMapping(None, "pricingmethodcode", TO, Convert.NUMBER, constant=1, caption="Pricing Method"),
        FieldMapping("Unit_Price", "amount", TO, Convert.NUMBER, caption="Unit Price"),
    ),
    bc_filter="Price_Type eq 'Sale' and Amount_Type eq 'Price' and (Asset_Type eq 'Item' or Asset_Type eq 'Resource') "
              "and Minimum_Quantity eq 0",
    dependencies=("PLHEADER-PRICE", "ITEM-PRODUCT"),
    sync_only_coupled=False,
    inactivity_timeout_minutes=1440,
    rules=PriceRules(extended=True),
)

CUSTOMER = TableMapping(
    name="CUSTOMER",
    description="Customers and accounts of relationship type Customer, both ways.",
    bc=BC_CUSTOMER,
    crm=CRM_ACCOUNT,
    direction=BI,
    fields=(
        _owner("salespersonCode"),
        _text("displayName", "name", BI, 100, "Name", use_for_matching=True),
        _text("contact", "address1_primarycontactname", BI, 100, "Contact"),
        *_postal_address(),
        _text("email", "emailaddress1", BI, 80, "E-Mail"),
        _text("website", "websiteurl", BI, 80, "Home Page"),
        _text("phoneNumber", "telephone1", BI, 30, "Phone No."),
        _text("faxNo", "fax", BI, 30, "Fax No."),
        FieldMapping("primaryContactNo", "primarycontactid", BI, Convert.LOOKUP, lookup_mapping="CONTACT",
                     bc_key="number", when_uncoupled=WhenUncoupled.CLEAR, caption="Primary Contact No."),
        FieldMapping("shipmentMethodId", "address1_freighttermscode", BI, Convert.LOOKUP,
                     lookup_mapping="SHIPMENT METHOD", when_uncoupled=WhenUncoupled.LEAVE_BLANK,
                     caption="Shipment Method Code"),
        FieldMapping("paymentTermsId", "paymenttermscode", BI, Convert.LOOKUP,
                     lookup_mapping="PAYMENT TERMS", when_uncoupled=WhenUncoupled.LEAVE_BLANK,
                     caption="Payment Terms Code"),
        FieldMapping("shippingAgentCode", "address1_shippingmethodcode", BI, Convert.LOOKUP,
                     lookup_mapping="SHIPPING AGENT", bc_key="Code", when_uncoupled=WhenUncoupled.LEAVE_BLANK,
                     caption="Shipping Agent Code"),
        FieldMapping("currencyId", "transactioncurrencyid", BI, Convert.LOOKUP, lookup_mapping="CURRENCY",
                     caption="Currency Code"),
        FieldMapping("creditLimit", "creditlimit", TO, Convert.NUMBER, caption="Credit Limit (LCY)"),
        # BC's account template sets Relationship Type = Customer on the accounts it creates.
        FieldMapping(None, "customertypecode", TO, Convert.NUMBER, constant=3, caption="Relationship Type",
                     insert_only=True),
    ),
    # not blocked / active: checked on uncoupled rows only (CustomerRules), so that a coupled customer or
    # account that becomes blocked or inactive still gets that change across
    crm_filter="customertypecode eq 3",
    dependencies=("SALESPEOPLE", "CURRENCY", "PAYMENT TERMS", "SHIPMENT METHOD", "SHIPPING AGENT"),
    rules=CustomerRules(),
)

VENDOR = TableMapping(
    name="VENDOR",
    description="Vendors and accounts of relationship type Vendor, both ways.",
    bc=BC_VENDOR,
    crm=CRM_ACCOUNT,
    direction=BI,
    fields=(
        _owner("purchaserCode", caption="Purchaser Code"),
        _text("displayName", "name", BI, 100, "Name", use_for_matching=True),
        *_postal_address(),
        _text("email", "emailaddress1", BI, 80, "E-Mail"),
        _text("phoneNumber", "telephone1", BI, 30, "Phone No."),
        _text("website", "websiteurl", BI, 80, "Home Page"),
        _text("faxNo", "fax", BI, 30, "Fax No."),
        FieldMapping("paymentTermsId", "paymenttermscode", BI, Convert.LOOKUP, lookup_mapping="PAYMENT TERMS",
                     when_uncoupled=WhenUncoupled.LEAVE_BLANK, caption="Payment Terms Code"),
        FieldMapping("currencyId", "transactioncurrencyid", BI, Convert.LOOKUP, lookup_mapping="CURRENCY",
                     caption="Currency Code"),
        # Business Central's vendor account template sets Relationship Type = Vendor on the accounts it creates.
        FieldMapping(None, "customertypecode", TO, Convert.NUMBER, constant=11, caption="Relationship Type",
                     insert_only=True),
    ),
    # blocked / inactive as for CUSTOMER: checked on uncoupled rows only (CustomerRules)
    crm_filter="customertypecode eq 11",
    dependencies=("SALESPEOPLE", "CURRENCY", "PAYMENT TERMS", "SHIPMENT METHOD", "SHIPPING AGENT"),
    rules=CustomerRules(),
)

SALES_ORDER = TableMapping(
    name="SALESORDER-ORDER",
    description="Sales orders submitted in Sales created as Business Central sales orders (automatically when "
                "BCSYNC_AUTO_CREATE_SALES_ORDERS is on, else on demand); posted or deleted orders reported back.",
    bc=BC_SALES_ORDER,
    crm=CRM_SALES_ORDER,
    direction=FROM,
    fields=(),
    dependencies=("CUSTOMER", "CURRENCY", "UNIT OF MEASURE", "ITEM-PRODUCT", "RESOURCE-PRODUCT", "PAYMENT TERMS",
                  "SHIPMENT METHOD"),
    process=SalesOrderProcess(),
)

SALES_QUOTE = TableMapping(
    name=QUOTES_MAPPING,
    description="Quotes activated in Sales made Business Central sales quotes, a new revision replacing the earlier "
                "one's; the order made from a won quote gets its Quote No. (when BCSYNC_AUTO_PROCESS_SALES_QUOTES is "
                "on).",
    bc=BC_SALES_QUOTE,
    crm=CRM_QUOTE,
    direction=FROM,
    fields=(),
    dependencies=SALES_ORDER.dependencies,
    process=SalesQuoteProcess(),
)

ITEM_AVAILABILITY = TableMapping(
    name="ITEM-AVAILABILITY",
    description="Inventory of coupled items pushed to the products' Quantity On Hand when item ledger entries are "
                "posted.",
    bc=BC_ITEM_LEDGER_ENTRY,
    crm=CRM_PRODUCT,
    direction=TO,
    fields=(),
    dependencies=("ITEM-PRODUCT",),
    process=ItemAvailabilityProcess(),
)


def _in_unit_groups(mapping: TableMapping, units: tuple[str, ...]) -> TableMapping:
    """A mapping as unit-group mode has it: depending on the unit mappings `units` instead of UNIT OF MEASURE;
    a product's unit and unit group come from its rules, not from a lookup through UNIT OF MEASURE."""
    dependencies = tuple(d for d in mapping.dependencies if d != UNIT_OF_MEASURE.name)
    return mapping.with_overrides(
        dependencies=(*units, *dependencies) if len(dependencies) < len(mapping.dependencies) else dependencies,
        fields=tuple(f for f in mapping.fields if f.lookup_mapping != UNIT_OF_MEASURE.name))


# mappings that exist in the person ownership model only
PERSON_ONLY = frozenset({"SALESPEOPLE"})


def builtin_mappings(unit_groups: bool = False, ownership: OwnershipModel = OwnershipModel.PERSON,
                     extended_pricing: bool = False, two_way_orders: bool = False) -> list[TableMapping]:
    """The built-in mappings in legacy unit mode, or in unit-group mode (Business Central's "Unit Group Mapping
    Enabled"), where UNIT GROUP, ITEM UOM and RESOURCE UOM replace UNIT OF MEASURE; in the person ownership model
    or the team one (team_owned); with legacy pricing, or extended pricing (the new sales pricing experience), where
    PLHEADER-PRICE and PLLINE-PRODPRICE replace CUSTPRCGRP-PRICE and SALESPRC-PRODPRICE; with the one-way order
    flow or the two-way one (in_two_ways)."""
    if not unit_groups:
        units, items, resources = [UNIT_OF_MEASURE], ITEM_PRODUCT, RESOURCE_PRODUCT
        orders, quotes = SALES_ORDER, SALES_QUOTE
    else:
        units = [UNIT_GROUP, ITEM_UOM, RESOURCE_UOM]
        items = _in_unit_groups(ITEM_PRODUCT, (ITEM_UOM.name,))
        resources = _in_unit_groups(RESOURCE_PRODUCT, (RESOURCE_UOM.name,))
        orders = _in_unit_groups(SALES_ORDER, (ITEM_UOM.name, RESOURCE_UOM.name))
        quotes = _in_unit_groups(SALES_QUOTE, (ITEM_UOM.name, RESOURCE_UOM.name))
    if two_way_orders:
        orders = in_two_ways(orders)
    mappings = [SALESPEOPLE, CURRENCY, PAYMENT_TERMS, SHIPMENT_METHOD, SHIPPING_AGENT, CUSTOMER, VENDOR, CONTACT,
                OPPORTUNITY, *units, items, resources,
                *((PRICE_LIST_HEADER, PRICE_LIST_LINE) if extended_pricing else (CUSTOMER_PRICE_GROUP, SALES_PRICE)),
                POSTED_SALES_INVOICE, orders, quotes, ITEM_AVAILABILITY]
    if ownership is OwnershipModel.PERSON:
        return mappings
    return [team_owned(m) for m in mappings if m.name not in PERSON_ONLY]


def in_two_ways(orders: TableMapping) -> TableMapping:
    """SALESORDER-ORDER as Business Central's "Bidirectional Sales Order Int." has it: released Business Central
    orders and submitted Sales orders, both ways (its lines, SOLINE-ORDERDETAIL, go with their order)."""
    return orders.with_overrides(
        direction=BI, bc_filter="status eq 'Open'", crm_filter=f"statecode eq {SUBMITTED_ORDER}",
        process=SalesOrderProcess(two_way=True),
        description="Released Business Central orders and submitted Sales orders, with their lines, both ways "
                    "(BCSYNC_SALES_ORDER_MODE=two-way); posted orders archived and reported back.")


def team_owned(mapping: TableMapping) -> TableMapping:
    """A mapping in the team ownership model, as Business Central sets it up: no owner field mappings (an owner
    never changes a Salesperson Code, nor the other way round) and no SALESPEOPLE, which that model deletes.
    New Sales rows get the default owning team (SyncEngine)."""
    fields = tuple(fm for fm in mapping.fields if fm.lookup_mapping not in PERSON_ONLY)
    dependencies = tuple(name for name in mapping.dependencies if name not in PERSON_ONLY)
    return mapping.with_overrides(fields=fields, dependencies=dependencies)


def builtin_names() -> list[str]:
    """The names of the built-in mappings of both unit modes and both pricing experiences."""
    return list(_builtin_names())


@functools.cache
def _builtin_names() -> tuple[str, ...]:  # asked per request that names a mapping; the catalogue is built 4 times
    return tuple(dict.fromkeys(m.name for unit_groups in (False, True) for extended in (False, True)
                               for m in builtin_mappings(unit_groups, extended_pricing=extended)))


def not_in_use(name: str) -> str:
    """Why a built-in mapping is missing from the catalogue in use: it belongs to another mode, and which setting
    decides (for a name that is no built-in mapping, that there is none)."""
    if name not in _builtin_names():
        return f"There is no table mapping named {name}."
    return f"Table mapping {name} is not in use with the current {mode_setting(name)}: it belongs to its other mode."


def mode_setting(name: str) -> str:
    """The setting that decides whether built-in mapping `name` is in use: BCSYNC_PRICING, BCSYNC_UNIT_MODE or
    BCSYNC_OWNERSHIP_MODEL (for a name of none of them, all three)."""
    if any(name in names for names in PRICING_MAPPINGS.values()):
        return "BCSYNC_PRICING"
    if name in PERSON_ONLY:
        return "BCSYNC_OWNERSHIP_MODEL"
    if name in {m.name for m in builtin_mappings(False)} ^ {m.name for m in builtin_mappings(True)}:
        return "BCSYNC_UNIT_MODE"
    return "BCSYNC_UNIT_MODE, BCSYNC_OWNERSHIP_MODEL or BCSYNC_PRICING"


class Catalog:
    """The table mappings in force: the built-in ones with the user's overrides applied."""

    def __init__(self, mappings: Iterable[TableMapping]):
        self._mappings: dict[str, TableMapping] = {}
        for mapping in mappings:
            if mapping.name in self._mappings:
                raise ConfigurationError(f"Table mapping {mapping.name} is defined twice.")
            self._mappings[mapping.name] = mapping
        self._validate()

    def _validate(self) -> None:
        for mapping in self._mappings.values():
            for dep in mapping.dependencies:
                if dep not in self._mappings:
                    raise ConfigurationError(f"Table mapping {mapping.name} depends on unknown mapping {dep}.")
            for fm in mapping.fields:
                if fm.convert is Convert.LOOKUP and fm.lookup_mapping not in self._mappings:
                    raise ConfigurationError(
                        f"Field {fm.label} of table mapping {mapping.name} looks up through unknown mapping {fm.lookup_mapping}.")

    def __getitem__(self, name: str) -> TableMapping:
        try:
            return self._mappings[name]
        except KeyError:
            raise ConfigurationError(f"There is no table mapping named {name}.") from None

    def __contains__(self, name: str) -> bool:
        return name in self._mappings

    def __iter__(self):
        return iter(self._mappings.values())

    def names(self) -> list[str]:
        return list(self._mappings)

    def as_dict(self) -> Mapping[str, TableMapping]:
        return dict(self._mappings)
