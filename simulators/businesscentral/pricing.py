"""Customer price groups, (legacy) sales prices, price lists and their lines (the new sales pricing experience),
currency exchange rates and the Sales & Receivables Setup. None of them is in API v2.0; integrations publish their pages as OData v4 web services:
page 7 `CustomerPriceGroups`, page 7002 `SalesPrices` (composite key), page 483
`CurrencyExchangeRates` (key Currency_Code, Starting_Date) and page 459 `SalesReceivablesSetup`
(one record, key Primary_Key=''; with the write-in product and Freight_G_L_Acc_No, the G/L account
an integration puts freight charges on); page 472 `VATPostingSetup` (the VAT % per posting groups).
Price lists (table 7000 Price List Header) and their lines (table 7001 Price List Line) have no base page an
integration can read them through (the line pages are list parts without the price type and status), so the bcsync
extension publishes a list page of its own over each: `PriceListHeaders` (key Code) and `PriceListLines` (key
Price_List_Code, Line_No).
"""

from __future__ import annotations

import re

from . import errors
from .catalog import Catalog, check_gl_account, page_system_fields
from .model import Column, Table
from .views import Field, PageView, Session

SALES_TYPES = ("Customer", "Customer Price Group", "All Customers", "Campaign")
SALES_CODE_TABLES = {"Customer": "Customer", "Customer Price Group": "Customer Price Group"}
PRICE_TYPES = ("Any", "Sale", "Purchase")
AMOUNT_TYPES = ("Any", "Price", "Discount")
PRICE_STATUSES = ("Draft", "Active", "Inactive")
ASSET_TYPES = (" ", "Item", "Item Discount Group", "Resource", "Resource Group", "Service Cost", "G/L Account")
ASSET_TABLES = {"Item": "Item", "Resource": "Resource", "G/L Account": "G/L Account"}
# what a line of a price list whose Allow Updating Defaults is off takes from its header (Price List Line.CopyFrom)
HEADER_DEFAULTS = ("Price Type", "Currency Code", "Starting Date", "Ending Date", "Status")


def _sales_price_rules(session: Session, old: dict | None, record: dict) -> None:
    """Sales Price: Sales Code blank for All Customers, else required and (for customers and price
    groups) an existing row; the starting date not after the ending date."""
    table = session.table("Sales Price")
    kind, code = record["Sales Type"], record["Sales Code"]
    if kind == "All Customers":
        if code:
            raise errors.dialog("Sales Code must be blank.")
    elif not code:
        raise errors.must_have_value("Sales Code", table.name, table.key_fields(table.key_of(record)))
    elif kind in SALES_CODE_TABLES and session.find(SALES_CODE_TABLES[kind], (code,)) is None:
        raise errors.table_relation("Sales Code", table.name, code, SALES_CODE_TABLES[kind])
    if record["Starting Date"] and record["Ending Date"] and record["Starting Date"] > record["Ending Date"]:
        raise errors.dialog("Starting Date cannot be after Ending Date")


def _dates_in_order(record: dict) -> None:
    if record["Starting Date"] and record["Ending Date"] and record["Starting Date"] > record["Ending Date"]:
        raise errors.dialog(f"Starting Date {record['Starting Date']} cannot be after Ending Date "
                            f"{record['Ending Date']}.")


def _price_list_rules(session: Session, old: dict | None, record: dict) -> None:
    """Price List Header: dates in order."""
    _dates_in_order(record)


def _price_list_changed(session: Session, old: dict, record: dict) -> None:
    """A header's currency, dates, price type and status reach the lines of a list that does not allow updating
    them per line (Allow Updating Defaults off), as the header's validations update its lines."""
    if record["Allow Updating Defaults"] or all(old[f] == record[f] for f in HEADER_DEFAULTS):
        return
    table = session.table("Price List Line")
    for line in session.find_all("Price List Line", ("Price List Code",), (record["Code"],)):
        changed = {**line, **{f: record[f] for f in HEADER_DEFAULTS}}
        if changed != line:
            session.modify_row(table, line, changed)


def _price_line_rules(session: Session, old: dict | None, record: dict) -> None:
    """Price List Line: its price list must exist, and a list that does not allow updating defaults gives its lines
    its currency, dates, price type and status; the asset must exist; a new line gets the next line number."""
    table = session.table("Price List Line")
    header = session.find("Price List Header", (record["Price List Code"],))
    if header is None:
        raise errors.table_relation("Price List Code", table.name, record["Price List Code"], "Price List Header")
    if not header["Allow Updating Defaults"]:
        record.update({f: header[f] for f in HEADER_DEFAULTS})
    related = ASSET_TABLES.get(record["Asset Type"])
    if related and record["Asset No."] and session.find(related, (record["Asset No."],)) is None:
        raise errors.table_relation("Asset No.", table.name, record["Asset No."], related)
    _dates_in_order(record)
    if old is None and not record["Line No."]:
        lines = session.find_all("Price List Line", ("Price List Code",), (record["Price List Code"],))
        record["Line No."] = max((line["Line No."] for line in lines), default=0) + 10000


def _delete_lines(session: Session, code: str) -> None:
    table = session.table("Price List Line")
    for line in session.find_all("Price List Line", ("Price List Code",), (code,)):
        session.delete_row(table, line)


def _delete_prices(session: Session, sales_type: str | None, column: str, code: str) -> None:
    table = session.table("Sales Price")
    for price in session.find_all("Sales Price", (column,), (code,)):
        if sales_type is None or price["Sales Type"] == sales_type:
            session.delete_row(table, price)


def _setup_rules(session: Session, old: dict | None, record: dict) -> None:
    """Sales & Receivables Setup: a new Write-in Product Type clears the number; the number must be an
    item or a resource according to the type. A new freight account must be one that can be posted to."""
    if (old is not None and record["Write-in Product Type"] != old["Write-in Product Type"]
            and record["Write-in Product No."] == old["Write-in Product No."]):
        record["Write-in Product No."] = ""
    number = record["Write-in Product No."]
    if number:
        related = "Item" if record["Write-in Product Type"] == "Item" else "Resource"
        if session.find(related, (number,)) is None:
            raise errors.table_relation("Write-in Product No.", "Sales & Receivables Setup", number, related)
    freight = record["Freight G/L Acc. No."]
    if freight and (old is None or freight != old["Freight G/L Acc. No."]):
        account = session.find("G/L Account", (freight,))
        if account is None:
            raise errors.table_relation("Freight G/L Acc. No.", "Sales & Receivables Setup", freight, "G/L Account")
        check_gl_account(account)


def create_setup(session: Session) -> dict:
    """The company's single Sales & Receivables Setup record."""
    table = session.table("Sales & Receivables Setup")
    return session.insert_row(table, table.new_record())


def register(cat: Catalog) -> None:
    # page 472 "VAT Posting Setup": the VAT % of each business and product posting group (what a price that
    # includes VAT is converted by)
    vat_setup = cat.add_table(Table(325, "VAT Posting Setup", [
        Column("VAT Bus. Posting Group", "code", 20),
        Column("VAT Prod. Posting Group", "code", 20),
        Column("VAT %", "decimal"),
    ], key=("VAT Bus. Posting Group", "VAT Prod. Posting Group")))
    cat.add_page(PageView("VATPostingSetup", vat_setup, [
        Field("VAT_Bus_Posting_Group", "VAT Bus. Posting Group"),
        Field("VAT_Prod_Posting_Group", "VAT Prod. Posting Group"),
        Field("VAT_Percent", "VAT %"),
        *page_system_fields(),
    ]))
    price_group = cat.add_table(Table(6, "Customer Price Group", [
        Column("Code", "code", 10),
        Column("Description", "text", 100),
        Column("Allow Invoice Disc.", "bool", init=True),
        Column("Price Includes VAT", "bool"),
    ], key=("Code",)))

    sales_price = cat.add_table(Table(7002, "Sales Price", [
        Column("Item No.", "code", 20, relation="Item"),
        Column("Sales Type", "option", options=SALES_TYPES),
        Column("Sales Code", "code", 20),
        Column("Starting Date", "date"),
        Column("Ending Date", "date"),
        Column("Currency Code", "code", 10, relation="Currency"),
        Column("Variant Code", "code", 10),
        Column("Unit of Measure Code", "code", 10, relation="Unit of Measure"),
        Column("Minimum Quantity", "decimal"),
        Column("Unit Price", "decimal"),
    ], key=("Item No.", "Sales Type", "Sales Code", "Starting Date", "Currency Code", "Variant Code",
            "Unit of Measure Code", "Minimum Quantity"),
        blank_key=("Sales Code", "Starting Date", "Currency Code", "Variant Code", "Unit of Measure Code"),
        indexes=(("Item No.",), ("Sales Code",))))

    price_list = cat.add_table(Table(7000, "Price List Header", [
        Column("Code", "code", 20),
        Column("Description", "text", 250),
        Column("Price Type", "option", options=PRICE_TYPES),
        Column("Amount Type", "option", options=AMOUNT_TYPES),
        Column("Currency Code", "code", 10, relation="Currency"),
        Column("Starting Date", "date"),
        Column("Ending Date", "date"),
        Column("Status", "option", options=PRICE_STATUSES),
        Column("Allow Updating Defaults", "bool"),
    ], key=("Code",)))
    price_line = cat.add_table(Table(7001, "Price List Line", [
        Column("Price List Code", "code", 20),
        Column("Line No.", "integer"),
        Column("Price Type", "option", options=PRICE_TYPES),
        Column("Amount Type", "option", options=AMOUNT_TYPES),
        Column("Asset Type", "option", options=ASSET_TYPES),
        Column("Asset No.", "code", 20),
        Column("Variant Code", "code", 10),
        Column("Currency Code", "code", 10, relation="Currency"),
        Column("Starting Date", "date"),
        Column("Ending Date", "date"),
        Column("Unit of Measure Code", "code", 10, relation="Unit of Measure"),
        Column("Minimum Quantity", "decimal"),
        Column("Unit Price", "decimal"),
        Column("Status", "option", options=PRICE_STATUSES),
    ], key=("Price List Code", "Line No."), indexes=(("Price List Code",),)))

    exchange_rate = cat.add_table(Table(330, "Currency Exchange Rate", [
        Column("Currency Code", "code", 10, relation="Currency"),
        Column("Starting Date", "date"),
        Column("Exchange Rate Amount", "decimal"),
        Column("Relational Exch. Rate Amount", "decimal"),
    ], key=("Currency Code", "Starting Date")))

    setup = cat.add_table(Table(311, "Sales & Receivables Setup", [
        Column("Primary Key", "code", 10),
        Column("Write-in Product Type", "option", options=("Item", "Resource")),
        Column("Write-in Product No.", "code", 20),
        Column("Default Price List Code", "code", 20),
        Column("Freight G/L Acc. No.", "code", 20, relation="G/L Account"),
    ], key=("Primary Key",), blank_key=("Primary Key",)))

    cat.on("Sales Price", on_insert=lambda s, r: _sales_price_rules(s, None, r), on_modify=_sales_price_rules)
    cat.on("Customer Price Group",
           after_delete=lambda s, r: _delete_prices(s, "Customer Price Group", "Sales Code", r["Code"]))
    cat.on("Item", after_delete=lambda s, r: _delete_prices(s, None, "Item No.", r["No."]))
    cat.on("Price List Header", on_insert=lambda s, r: _price_list_rules(s, None, r), on_modify=_price_list_rules,
           after_modify=_price_list_changed, after_delete=lambda s, r: _delete_lines(s, r["Code"]))
    cat.on("Price List Line", on_insert=lambda s, r: _price_line_rules(s, None, r), on_modify=_price_line_rules)
    cat.on("Sales & Receivables Setup", on_insert=lambda s, r: _setup_rules(s, None, r), on_modify=_setup_rules)

    cat.add_page(PageView("CustomerPriceGroups", price_group, [
        Field("Code", "Code"),
        Field("Description", "Description"),
        Field("Allow_Invoice_Disc", "Allow Invoice Disc."),
        Field("Price_Includes_VAT", "Price Includes VAT"),
        *page_system_fields(),
    ]))
    cat.add_page(PageView("SalesPrices", sales_price, [
        Field("Item_No", "Item No."),
        Field("Sales_Type", "Sales Type"),
        Field("Sales_Code", "Sales Code"),
        Field("Starting_Date", "Starting Date"),
        Field("Ending_Date", "Ending Date"),
        Field("Currency_Code", "Currency Code"),
        Field("Variant_Code", "Variant Code"),
        Field("Unit_of_Measure_Code", "Unit of Measure Code"),
        Field("Minimum_Quantity", "Minimum Quantity"),
        Field("Unit_Price", "Unit Price"),
        *page_system_fields(),
    ]))
    # the bcsync extension's own pages over tables 7000 and 7001 (bc-extension/src/PriceList*.Page.al), each control
    # named as its field: read only on the wire, seeded in process as a user keeps price lists
    for service, table in (("PriceListHeaders", price_list), ("PriceListLines", price_line)):
        cat.add_page(PageView(service, table, [
            *(Field(re.sub(r"\W+", "_", c.name).strip("_"), c.name) for c in table.columns),
            *page_system_fields(),
        ], insertable=False, modifiable=False, deletable=False, seedable=True))
    cat.add_page(PageView("CurrencyExchangeRates", exchange_rate, [
        Field("Currency_Code", "Currency Code"),
        Field("Starting_Date", "Starting Date"),
        Field("Exchange_Rate_Amount", "Exchange Rate Amount"),
        Field("Relational_Exch_Rate_Amount", "Relational Exch. Rate Amount"),
        *page_system_fields(),
    ]))
    cat.add_page(PageView("SalesReceivablesSetup", setup, [
        Field("Primary_Key", "Primary Key", read_only=True),
        Field("Write_in_Product_Type", "Write-in Product Type"),
        Field("Write_in_Product_No", "Write-in Product No."),
        Field("Default_Price_List_Code", "Default Price List Code"),
        Field("Freight_G_L_Acc_No", "Freight G/L Acc. No."),
        *page_system_fields(),
    ], insertable=False, deletable=False))
