"""Sales orders and sales invoices (API v2.0) with their lines, posting and payments.

Tables: "Sales Order Entity Buffer" (orders, numbers 101001...) with "Sales Line"; "Sales Invoice
Entity Aggregate" holding draft invoices (102001...) and posted invoices (103001..., Posted = true)
with "Sales Invoice Line Aggregate". A line is a Comment or sells an Item, a Resource, an Account
(a G/L account that is a posting account, not blocked, with Direct Posting: freight and other charges),
a Charge (an item charge) or a Fixed Asset (not blocked, not inactive); an account's, charge's or fixed
asset's line takes its name as description and keeps the price it is given. Line amounts and header totals are
computed when read:

    amountExcludingTax = quantity x unitPrice - discountAmount   (prices excluding tax)
    totalTaxAmount     = amountExcludingTax x taxPercent / 100
    invoiceDiscountAllocation: the header's discountAmount spread over the lines by amount
    netAmount = amountExcludingTax - allocation; header totals sum the net amounts

Posting (bound actions `salesOrders({id})/Microsoft.NAV.shipAndInvoice`, `salesInvoices({id})/
Microsoft.NAV.post`) creates a posted invoice, adds negative item ledger entries for the shipped item
quantities and deletes the draft invoice / the fully invoiced order. A posted draft invoice keeps the
draft's id (BC's "Draft Invoice SystemId"); an invoice posted from an order gets a new id and carries
orderId/orderNumber. Posted invoices are read-only. Posting also writes the invoice's customer ledger
entry (table 21 "Cust. Ledger Entry"), which payments apply to (`apply_payment`): remainingAmount is
read live from that entry, as API page 30012 computes it on every read, and the invoice itself is
modified only when its status changes (Open -> Paid once the entry is closed), as codeunit 5477
"Sales Invoice Aggregator" does: a partial payment leaves its lastModifiedDateTime and etag alone.

A document takes its sell-to customer's shipment method and shipping agent. What API v2.0 orders do not
publish (Your Reference, the shipping agent) or publish read-only (the bill-to address) is set through
the page web service `SalesOrder` (page 42, keyed `SalesOrder(Document_Type='Order',No='101001')`),
which modifies orders but neither creates nor deletes them. Posted invoices do publish Your Reference,
as customerPurchaseOrderReference; their shipping agent, shipment date and work description are read
through page 132 "Posted Sales Invoice" published as `PostedSalesInvoice` (read-only; the simulator's
page also lists draft invoices, which an integration reading posted numbers never asks for). A document's
Shipment Date starts as its requested delivery date or document date.
"""

from __future__ import annotations

import uuid
from typing import Any

from . import errors
from .catalog import Catalog, _api_system_fields, _id, _last_modified, check_gl_account, page_system_fields
from .inventory import ENTRY_NUMBERS, post_item_ledger
from .model import EMPTY_GUID, Column, NumberSeries, Table, calc_date, email_check
from .views import (SystemField, Computed, CurrencyCode, Field, Navigation, PageView, RelatedCode, RelatedId, Session,
                    View)

ORDERS = "Sales Order Entity Buffer"
ORDER_LINES = "Sales Line"
INVOICES = "Sales Invoice Entity Aggregate"
INVOICE_LINES = "Sales Invoice Line Aggregate"
QUOTES = "Sales Quote Entity Buffer"
QUOTE_LINES = "Sales Quote Line"  # Business Central keeps them in "Sales Line" (Document Type Quote)
CUSTOMER_LEDGER = "Cust. Ledger Entry"
LINES_OF = {ORDERS: ORDER_LINES, INVOICES: INVOICE_LINES, QUOTES: QUOTE_LINES}
HEADER_OF = {ORDER_LINES: ORDERS, INVOICE_LINES: INVOICES, QUOTE_LINES: QUOTES}

POSTED_INVOICE_NUMBERS = NumberSeries("103001")
POSTED_SHIPMENT_NUMBERS = NumberSeries("108001")
LINE_TYPES = ("Comment", "Account", "Item", "Resource", "Fixed Asset", "Charge")
LINE_SOURCES = {"Item": "Item", "Resource": "Resource", "Account": "G/L Account",  # the table "No." refers to
                "Charge": "Item Charge", "Fixed Asset": "Fixed Asset"}
PRICED_BY_LINE = ("Account", "Charge", "Fixed Asset")  # no price or unit of their own: the line keeps what it is given
ORDER_STATUS = ("Draft", "In Review", "Open")
INVOICE_STATUS = (" ", "Draft", "In Review", "Open", "Paid", "Canceled", "Corrective")
QUOTE_STATUS = ("Draft", "Sent", "Accepted", "Expired")  # API v2.0 salesQuote's status
LINE_STEP = 10000
DOCUMENT_TYPES = ("Quote", "Order", "Invoice", "Credit Memo", "Blanket Order", "Return Order")  # Sales Header's
BILL_TO_OPTIONS = ("Default (Customer)", "Another Customer", "Custom Address")  # enum 421
CUSTOM_ADDRESS = BILL_TO_OPTIONS[2]

POSTED = "The invoice has been posted and can no longer be modified."
NOTHING_TO_POST = "There is nothing to post."

ADDRESS = (("Address", "text", 100, "AddressLine1"), ("Address 2", "text", 50, "AddressLine2"),
           ("City", "text", 30, "City"), ("Country/Region Code", "code", 10, "Country"),
           ("County", "text", 30, "State"), ("Post Code", "code", 20, "PostCode"))


def _r(value: float) -> float:
    return round(value + 0.0, 2)


# -- amounts -------------------------------------------------------------------------------------------------

ZERO_AMOUNTS = {"amountExcludingTax": 0.0, "totalTaxAmount": 0.0, "amountIncludingTax": 0.0,
                "invoiceDiscountAllocation": 0.0, "netAmount": 0.0, "netTaxAmount": 0.0, "netAmountIncludingTax": 0.0}


def document_lines(session: Session, header_table: str, header: dict) -> list[dict]:
    lines = session.find_all(LINES_OF[header_table], ("Document No.",), (header["No."],))
    return sorted(lines, key=lambda line: line["Line No."])


def document_amounts(session: Session, header_table: str, header: dict) -> tuple[dict[str, dict], dict]:
    """Per line (by SystemId) the API's amount fields, and the header totals."""
    def compute():
        per: dict[str, dict] = {}
        priced = []
        includes_tax = header["Prices Including VAT"]
        for line in document_lines(session, header_table, header):
            if line["Type"] == "Comment":
                per[line["SystemId"]] = dict(ZERO_AMOUNTS)
                continue
            line_amount = _r(_r(line["Quantity"] * line["Unit Price"]) - line["Line Discount Amount"])
            rate = line["VAT %"] / 100
            excluding = _r(line_amount / (1 + rate)) if includes_tax else line_amount
            tax = _r(line_amount - excluding) if includes_tax else _r(excluding * rate)
            priced.append((line, excluding, tax))
        discount = header["Invoice Discount Amount"]
        base = sum(excluding for _, excluding, _ in priced)
        left = discount
        for index, (line, excluding, tax) in enumerate(priced):
            share = _r(left) if index == len(priced) - 1 else (_r(discount * excluding / base) if base else 0.0)
            left -= share
            net = _r(excluding - share)
            net_tax = _r(net * line["VAT %"] / 100)
            per[line["SystemId"]] = {
                "amountExcludingTax": excluding, "totalTaxAmount": tax, "amountIncludingTax": _r(excluding + tax),
                "invoiceDiscountAllocation": share, "netAmount": net, "netTaxAmount": net_tax,
                "netAmountIncludingTax": _r(net + net_tax)}
        totals = {"totalAmountExcludingTax": _r(sum(a["netAmount"] for a in per.values())),
                  "totalTaxAmount": _r(sum(a["netTaxAmount"] for a in per.values()))}
        totals["totalAmountIncludingTax"] = _r(totals["totalAmountExcludingTax"] + totals["totalTaxAmount"])
        return per, totals

    return session.cached(("amounts", header_table, header["SystemId"], header["$version"]), compute)


def header_of_line(session: Session, lines_table: str, line: dict) -> dict | None:
    return session.get(HEADER_OF[lines_table], line["Document Id"]) if line["Document Id"] != EMPTY_GUID else None


def _line_amount(name: str, lines_table: str) -> Computed:
    def compute(session: Session, line: dict) -> float:
        header = header_of_line(session, lines_table, line)
        if header is None:
            return 0.0
        per, _ = document_amounts(session, HEADER_OF[lines_table], header)
        return per.get(line["SystemId"], ZERO_AMOUNTS)[name]
    return Computed(name, "decimal", compute)


def _total(name: str, header_table: str) -> Computed:
    return Computed(name, "decimal", lambda s, header: document_amounts(s, header_table, header)[1][name])


def open_balance(session: Session, customer_no: str) -> float:
    """What the customer's open ledger entries still leave to pay."""
    data = session.store.container(session.table(CUSTOMER_LEDGER), session.company)
    if not data.rows:
        return 0.0
    entries = session.find_all(CUSTOMER_LEDGER, ("Customer No.",), (customer_no,))
    return _r(sum(entry["Remaining Amount"] for entry in entries if entry["Open"]))


def ledger_entry(session: Session, invoice: dict) -> dict | None:
    """The customer ledger entry a posted invoice made."""
    entries = session.find_all(CUSTOMER_LEDGER, ("Document No.",), (invoice["No."],))
    return next((entry for entry in entries if entry["Document Type"] == "Invoice"), None)


def remaining_amount(session: Session, invoice: dict) -> float:
    """API page 30012's remainingAmount, a page variable: the ledger entry's for a posted invoice (0 when
    canceled), the total for a draft."""
    if not invoice["Posted"]:
        return document_amounts(session, INVOICES, invoice)[1]["totalAmountIncludingTax"]
    entry = ledger_entry(session, invoice)
    return entry["Remaining Amount"] if entry is not None and invoice["Status"] != "Canceled" else 0.0


# -- header fields ---------------------------------------------------------------------------------------------

def _copy_customer(session: Session, record: dict, customer: dict, bill_to: bool) -> None:
    """Validate Sell-to (or Bill-to) Customer No.: take the customer's name, address and defaults. The
    bill-to customer follows a new sell-to customer and brings the currency and payment terms."""
    if customer["Blocked"] == "All":
        raise errors.dialog(f"You cannot create this type of document when Customer {customer['No.']} "
                            "is blocked with type All")
    prefix = "Bill-to" if bill_to else "Sell-to"
    if record[f"{prefix} Customer No."] == customer["No."]:
        return  # the same customer again: nothing changes
    for column, *_ in ADDRESS:
        record[f"{prefix} {column}"] = customer[column]
    if bill_to:
        record["Bill-to Customer No."] = customer["No."]
        record["Bill-to Name"] = customer["Name"]
        record["Currency Code"] = customer["Currency Code"]
        record["Payment Terms Code"] = customer["Payment Terms Code"]
        return
    record["Sell-to Customer No."] = customer["No."]
    record["Sell-to Customer Name"] = customer["Name"]
    record["Sell-to Phone No."] = customer["Phone No."]
    record["Sell-to E-Mail"] = customer["E-Mail"]
    record["Ship-to Name"] = customer["Name"]
    record["Ship-to Contact"] = ""
    for column, *_ in ADDRESS:
        record[f"Ship-to {column}"] = customer[column]
    record["Salesperson Code"] = customer["Salesperson Code"]
    record["Shipment Method Code"] = customer["Shipment Method Code"]
    record["Shipping Agent Code"] = customer["Shipping Agent Code"]
    _copy_customer(session, record, customer, True)


class CustomerId(Field):
    """customerId / billToCustomerId: the customer's SystemId; picks the customer."""

    def __init__(self, name: str, column: str, bill_to: bool):
        super().__init__(name, column, type="guid")
        self.bill_to = bill_to
        self.role = "bill-to" if bill_to else "sell-to"

    def get(self, session: Session, record: dict) -> Any:
        number = record[self.column_name]
        customer = session.find("Customer", (number,)) if number else None
        return customer["SystemId"] if customer else EMPTY_GUID

    def set(self, session: Session, view: View, record: dict, value: Any) -> None:
        guid = str(value).strip("{}").lower()
        customer = session.get("Customer", guid) if guid != EMPTY_GUID else None
        if customer is None:
            raise errors.dialog(f"The {self.role} customer cannot be found.")
        session.scratch[self.name] = customer
        _copy_customer(session, record, customer, self.bill_to)


class CustomerNumber(Field):
    """customerNumber / billToCustomerNumber: must name the same customer as the id when both are given."""

    def __init__(self, name: str, column: str, id_field: str, bill_to: bool):
        super().__init__(name, column)
        self.id_field = id_field
        self.bill_to = bill_to
        self.role = "bill-to" if bill_to else "sell-to"

    def set(self, session: Session, view: View, record: dict, value: Any) -> None:
        number = self.column.normalize(value)
        chosen = session.scratch.get(self.id_field)
        if chosen is not None:
            if chosen["No."] != number:
                raise errors.dialog(f"The {self.role} customer values do not match to a specific Customer.")
            return
        customer = session.find("Customer", (number,)) if number else None
        if customer is None:
            raise errors.dialog(f"The {self.role} customer cannot be found.")
        _copy_customer(session, record, customer, self.bill_to)


class PartialShipping(Field):
    """partialShipping: Shipping Advice Partial (true) or Complete (false); page 30028's PartialOrderShipping."""

    def __init__(self, name: str, column: str):
        super().__init__(name, column, type="bool", page_variable=True)

    def get(self, session: Session, record: dict) -> Any:
        return record[self.column_name] == "Partial"

    def set(self, session: Session, view: View, record: dict, value: Any) -> None:
        session.assign(view.table, record, self.column_name, "Partial" if value else "Complete")


class BillToOptions(Field):
    """Page 42's BillToOptions, a page variable (enum 421 "Sales Bill-to Options"). OnAfterGetRecord works it
    out only when a GUI is allowed, so a web service always reads the enum's first value. Its OnValidate makes
    the sell-to customer the bill-to customer for Default (Customer), and copies the sell-to address to the
    bill-to address while both customers are the same."""

    def __init__(self):
        super().__init__("BillToOptions", None, type="option", options=BILL_TO_OPTIONS, caption="Bill-to",
                         page_variable=True)

    def get(self, session: Session, record: dict) -> Any:
        return BILL_TO_OPTIONS[0]

    def set(self, session: Session, view: View, record: dict, value: Any) -> None:
        option = Column(self.name, "option", options=BILL_TO_OPTIONS).option(value)
        session.scratch[self.name] = option
        if option == BILL_TO_OPTIONS[0]:
            customer = session.find("Customer", (record["Sell-to Customer No."],))
            if customer is not None:
                _copy_customer(session, record, customer, True)
        if record["Bill-to Customer No."] == record["Sell-to Customer No."]:
            for column, *_ in ADDRESS:
                record[f"Bill-to {column}"] = record[f"Sell-to {column}"]


class BillToAddress(Field):
    """A bill-to address control of page 42: Editable = (BillToOptions = Custom Address) or (Bill-to Customer
    No. <> Sell-to Customer No.), so a request must choose Custom Address (earlier on the page) to write it."""

    def set(self, session: Session, view: View, record: dict, value: Any) -> None:
        custom = session.scratch.get("BillToOptions") == CUSTOM_ADDRESS
        if not custom and record["Bill-to Customer No."] == record["Sell-to Customer No."]:
            raise errors.read_only_property(self.caption)
        super().set(session, view, record, value)


def _header_columns(header_table: str) -> list[Column]:
    invoice = header_table == INVOICES
    columns = [
        Column("No.", "code", 20),
        Column("External Document No.", "code", 35),
        Column("Your Reference", "text", 35),
        Column("Document Date", "date"),
        Column("Posting Date", "date"),
        Column("Due Date", "date"),
        Column("Requested Delivery Date", "date"),
        Column("Shipment Date", "date"),
        Column("Sell-to Customer No.", "code", 20),
        Column("Sell-to Customer Name", "text", 100),
        Column("Bill-to Customer No.", "code", 20),
        Column("Bill-to Name", "text", 100),
        Column("Ship-to Name", "text", 100),
        Column("Ship-to Contact", "text", 100),
    ]
    for prefix in ("Sell-to", "Bill-to", "Ship-to"):
        for column, kind, length, _ in ADDRESS:
            columns.append(Column(f"{prefix} {column}", kind, length,
                                  relation="Country/Region" if column == "Country/Region Code" else None))
    columns += [
        Column("Sell-to Phone No.", "text", 30),
        Column("Sell-to E-Mail", "text", 80, check=email_check),
        Column("Shortcut Dimension 1 Code", "code", 20),
        Column("Shortcut Dimension 2 Code", "code", 20),
        Column("Currency Code", "code", 10, relation="Currency"),
        Column("Prices Including VAT", "bool"),
        Column("Payment Terms Code", "code", 10, relation="Payment Terms"),
        Column("Shipment Method Code", "code", 10, relation="Shipment Method"),
        Column("Shipping Agent Code", "code", 10, relation="Shipping Agent"),
        Column("Salesperson Code", "code", 20, relation="Salesperson/Purchaser"),
        Column("Shipping Advice", "option", options=("Partial", "Complete")),
        Column("Invoice Discount Amount", "decimal"),
        Column("Payment Discount %", "decimal"),
        Column("Work Description", "text"),  # a BLOB in Business Central; page 42 shows it as text
        Column("Status", "option", options={INVOICES: INVOICE_STATUS, QUOTES: QUOTE_STATUS}.get(header_table,
                                                                                                ORDER_STATUS)),
    ]
    if invoice:
        columns += [Column("Posted", "bool"), Column("Order No.", "code", 20), Column("Order Id", "guid")]
    elif header_table == QUOTES:
        columns += [Column("Quote Valid Until Date", "date"), Column("Quote Sent to Customer", "datetime"),
                    Column("Quote Accepted Date", "date")]
    else:  # what posting leaves on an order: the last shipment's date and number, the last invoice's number;
        # and the quote it was made from (table 36's Quote No., not editable)
        columns += [Column("Last Shipment Date", "date"), Column("Last Shipping No.", "code", 20),
                    Column("Last Posting No.", "code", 20), Column("Quote No.", "code", 20)]
    return columns


def _line_columns() -> list[Column]:
    return [
        Column("Document No.", "code", 20),
        Column("Line No.", "integer"),
        Column("Document Id", "guid"),
        Column("Type", "option", options=LINE_TYPES),
        Column("No.", "code", 20),
        Column("Description", "text", 100),
        Column("Description 2", "text", 50),
        Column("Unit of Measure Code", "code", 10, relation="Unit of Measure"),
        Column("Quantity", "decimal"),
        Column("Unit Price", "decimal"),
        Column("Line Discount Amount", "decimal"),
        Column("Line Discount %", "decimal"),
        Column("Tax Group Code", "code", 20, relation="Tax Group"),
        Column("VAT %", "decimal"),
        Column("Shipment Date", "date"),
        Column("Quantity Shipped", "decimal"),
        Column("Quantity Invoiced", "decimal"),
        Column("Qty. to Ship", "decimal"),
        Column("Qty. to Invoice", "decimal"),
    ]


def _due_date(session: Session, record: dict) -> None:
    terms = session.find("Payment Terms", (record["Payment Terms Code"],)) if record["Payment Terms Code"] else None
    start = record["Document Date"] or session.today()
    record["Due Date"] = calc_date(terms["Due Date Calculation"], start) if terms else start


def _header_hooks(header_table: str):
    invoice = header_table == INVOICES

    def before_insert(session: Session, record: dict, values: dict) -> None:
        if not record["Sell-to Customer No."]:
            raise errors.dialog("A customerNumber or a customerID must be provided.")
        if record["Invoice Discount Amount"] < 0:
            raise errors.dialog("Invoice discount must be positive.")
        record["Document Date"] = record["Document Date"] or session.today()
        record["Posting Date"] = record["Posting Date"] or session.today()
        record["Shipment Date"] = (record["Shipment Date"] or record["Requested Delivery Date"]
                                   or record["Document Date"])
        if invoice:
            record["Status"] = "Open" if record["Posted"] else "Draft"
        if "dueDate" not in values:
            _due_date(session, record)

    def before_modify(session: Session, current: dict, record: dict, values: dict) -> None:
        if invoice and current["Posted"]:
            raise errors.dialog(POSTED)
        if record["Invoice Discount Amount"] < 0:
            raise errors.dialog("Invoice discount must be positive.")
        if "dueDate" not in values and (record["Document Date"], record["Payment Terms Code"]) != (
                current["Document Date"], current["Payment Terms Code"]):
            _due_date(session, record)

    def on_delete(session: Session, record: dict) -> None:
        if invoice and record["Posted"]:
            raise errors.dialog(POSTED)

    return before_insert, before_modify, on_delete


def _header_triggers(cat: Catalog, header_table: str) -> None:
    lines_table = LINES_OF[header_table]

    def renumber_lines(session: Session, old: dict, new: dict) -> None:
        if old["No."] != new["No."]:
            table = session.table(lines_table)
            for line in session.find_all(lines_table, ("Document No.",), (old["No."],)):
                session.store.modify(table, session.company, {**line, "Document No.": new["No."]}, session.user)

    def delete_lines(session: Session, record: dict) -> None:
        table = session.table(lines_table)
        for line in session.find_all(lines_table, ("Document No.",), (record["No."],)):
            session.delete_row(table, line)

    cat.on(header_table, after_modify=renumber_lines, after_delete=delete_lines)

    def bump_header(session: Session, line: dict) -> None:
        header = header_of_line(session, lines_table, line)
        if header is not None:
            session.touch(session.table(header_table), header)

    cat.on(lines_table, after_insert=bump_header, after_modify=lambda s, old, new: bump_header(s, new),
           after_delete=bump_header)


def _header_fields(header_table: str) -> list[Field]:
    invoice, quote = header_table == INVOICES, header_table == QUOTES
    fields: list[Field] = [
        _id(),
        Field("number", "No.", read_only=True),
        Field("externalDocumentNumber", "External Document No."),
        Field({INVOICES: "invoiceDate", QUOTES: "documentDate"}.get(header_table, "orderDate"), "Document Date"),
        Field("postingDate", "Posting Date"),
    ]
    if quote:
        fields.append(Field("dueDate", "Due Date"))
    if invoice:
        fields += [Field("dueDate", "Due Date"),
                   Field("customerPurchaseOrderReference", "Your Reference")]
    fields += [
        CustomerId("customerId", "Sell-to Customer No.", bill_to=False),
        CustomerNumber("customerNumber", "Sell-to Customer No.", "customerId", bill_to=False),
        Field("customerName", "Sell-to Customer Name", read_only=True),
        Field("billToName", "Bill-to Name", read_only=True),
        CustomerId("billToCustomerId", "Bill-to Customer No.", bill_to=True),
        CustomerNumber("billToCustomerNumber", "Bill-to Customer No.", "billToCustomerId", bill_to=True),
        Field("shipToName", "Ship-to Name"),
        Field("shipToContact", "Ship-to Contact"),
    ]
    for prefix, api, read_only in (("Sell-to", "sellTo", False), ("Bill-to", "billTo", True),
                                   ("Ship-to", "shipTo", False)):
        for column, _, _, suffix in ADDRESS:
            fields.append(Field(f"{api}{suffix}", f"{prefix} {column}", read_only=read_only))
    fields += [
        Field("shortcutDimension1Code", "Shortcut Dimension 1 Code"),
        Field("shortcutDimension2Code", "Shortcut Dimension 2 Code"),
        RelatedId("currencyId", "Currency Code", "Currency", "Currency"),
        CurrencyCode("currencyCode", "Currency Code", "currencyId", page_variable=True),  # CurrencyCodeTxt
    ]
    if invoice:
        fields += [Field("orderId", "Order Id", read_only=True), Field("orderNumber", "Order No.", read_only=True)]
    fields += [
        Field("pricesIncludeTax", "Prices Including VAT", read_only=invoice),
        RelatedId("paymentTermsId", "Payment Terms Code", "Payment Terms", "Payment Terms"),
        RelatedId("shipmentMethodId", "Shipment Method Code", "Shipment Method", "Shipment Method"),
        Field("salesperson", "Salesperson Code"),
    ]
    if invoice:
        fields.append(Computed("remainingAmount", "decimal", remaining_amount, page_variable=True))
    elif not quote:
        fields += [
            PartialShipping("partialShipping", "Shipping Advice"),
            Field("requestedDeliveryDate", "Requested Delivery Date"),
        ]
    fields += [
        Field("discountAmount", "Invoice Discount Amount"),
        Computed("discountAppliedBeforeTax", "bool", lambda s, r: True),
        _total("totalAmountExcludingTax", header_table),
        _total("totalTaxAmount", header_table),
        _total("totalAmountIncludingTax", header_table),
    ]
    if not invoice and not quote:
        fields.append(Computed("fullyShipped", "bool", _fully_shipped))
    fields.append(Field("status", "Status", read_only=True))
    if quote:
        fields += [Field("sentDate", "Quote Sent to Customer", read_only=True),
                   Field("validUntilDate", "Quote Valid Until Date"),
                   Field("acceptedDate", "Quote Accepted Date")]
    fields += [
        _last_modified(),
        Field("phoneNumber", "Sell-to Phone No."),
        Field("email", "Sell-to E-Mail"),
    ]
    if invoice:
        fields += [Computed("posted", "bool", lambda s, r: r["Posted"], exposed=False),
                   # not published by API v2.0 (page 132 has them): seedable on drafts, as a user sets them
                   Field("shippingAgentCode", "Shipping Agent Code", exposed=False),
                   Field("shipmentDate", "Shipment Date", exposed=False),
                   Field("workDescription", "Work Description", exposed=False)]
    elif quote:  # API v2.0 quotes publish no Your Reference, shipping agent or work description (page 41 does)
        fields += [Field("yourReference", "Your Reference", exposed=False),
                   Field("shippingAgentCode", "Shipping Agent Code", exposed=False),
                   Field("workDescription", "Work Description", exposed=False)]
    else:
        # API v2.0 orders publish no Your Reference (page 42 does, as Your_Reference)
        fields += [Field("shippingAdvice", "Shipping Advice", exposed=False),
                   Field("dueDate", "Due Date", exposed=False)]
    return fields + _api_system_fields()


def _fully_shipped(session: Session, record: dict) -> bool:
    lines = [line for line in document_lines(session, ORDERS, record) if line["Type"] != "Comment"]
    return bool(lines) and all(line["Quantity Shipped"] >= line["Quantity"] for line in lines)


# -- lines -------------------------------------------------------------------------------------------------------

class LineObjectId(Field):
    """itemId / accountId: the SystemId of an Item line's item / an Account line's G/L account; setting it
    makes the line a line of that type for that row."""

    def __init__(self, name: str, kind: str):
        super().__init__(name, None, type="guid")
        self.kind = kind

    def get(self, session: Session, record: dict) -> Any:
        if record["Type"] != self.kind or not record["No."]:
            return EMPTY_GUID
        source = session.find(LINE_SOURCES[self.kind], (record["No."],))
        return source["SystemId"] if source else EMPTY_GUID

    def set(self, session: Session, view: View, record: dict, value: Any) -> None:
        guid = str(value).strip("{}").lower()
        if guid != EMPTY_GUID and "line object" in session.scratch:
            raise errors.dialog('Both "itemId" and "accountId" are specified. Specify only one of them.')
        source = session.get(LINE_SOURCES[self.kind], guid) if guid != EMPTY_GUID else None
        if source is None:
            raise errors.dialog(f"{self.kind} does not exist.")
        session.scratch["line object"] = (self.kind, source)


def _check_source(kind: str, source: dict) -> None:
    """A line's item, resource or fixed asset must not be blocked (a fixed asset not inactive either), its
    G/L account must pass GLAcc.CheckGLAcc; an item charge has nothing to check."""
    if kind == "Account":
        check_gl_account(source)
    elif kind == "Fixed Asset" and source["Inactive"]:
        raise errors.must_be_equal("Inactive", "No", kind, [("No.", source["No."])], "Yes")
    elif kind != "Charge" and source["Blocked"]:
        raise errors.must_be_equal("Blocked", "No", kind, [("No.", source["No."])], "Yes")


def _line_hooks(lines_table: str):
    header_table = HEADER_OF[lines_table]
    orders, invoices = header_table == ORDERS, header_table == INVOICES

    def rules(session: Session, old: dict | None, record: dict, values: dict) -> None:
        table = session.table(lines_table)
        header = session.get(header_table, record["Document Id"]) if record["Document Id"] != EMPTY_GUID else None
        if header is None:
            raise errors.dialog("No document with the specified ID exists.")
        if invoices and header["Posted"]:
            raise errors.dialog(POSTED)
        if orders and header["Status"] == "Open":
            raise errors.must_be_equal("Status", "Open", "Sales Header",
                                       [("Document Type", "Order"), ("No.", header["No."])], "Released")
        if old is not None:
            if record["Document Id"] != old["Document Id"]:
                raise errors.dialog('The value for "documentId" cannot be modified.')
            if record["Line No."] != old["Line No."]:
                raise errors.dialog("The value for sequence cannot be modified. Delete and insert the line again.")
            if record["No."] != old["No."] and old["No."]:
                raise errors.dialog('The value for "lineObjectNumber" cannot be modified.')
        record["Document No."] = header["No."]
        if old is None:
            if not record["Line No."]:
                lines = session.find_all(lines_table, ("Document No.",), (header["No."],))
                record["Line No."] = max((line["Line No."] for line in lines), default=0) + LINE_STEP
            elif session.find(lines_table, (header["No."], record["Line No."])) is not None:
                raise errors.dialog("You cannot insert a line with a duplicate sequence number.")
        key = [("Document No.", header["No."]), ("Line No.", record["Line No."])]

        chosen = session.scratch.get("line object")  # (type, row) that itemId or accountId picked
        if chosen is not None:
            kind, source = chosen
            if "lineObjectNumber" in values and record["No."] != source["No."]:
                raise errors.dialog(f"The {kind.lower()} values do not match to a specific {kind}.")
            record["Type"], record["No."] = kind, source["No."]
        elif old is None and "lineType" not in values:
            record["Type"] = "Item" if record["No."] else "Comment"
        kind = record["Type"]
        new_object = old is None or record["No."] != old["No."] or kind != old["Type"]

        if kind == "Comment":
            if record["Quantity"]:
                raise errors.must_have_value("Type", table.name, key)
            for column in ("Unit Price", "Line Discount Amount", "Line Discount %", "Qty. to Ship", "Qty. to Invoice"):
                record[column] = 0.0
            return
        if kind not in LINE_SOURCES:
            raise errors.dialog(f"The simulator does not support lines of type {kind}; use Comment, Item, Resource, "
                                "Account, Charge or Fixed Asset.")
        if not record["No."]:
            raise errors.must_have_value("No.", table.name, key)
        source = session.find(LINE_SOURCES[kind], (record["No."],))
        if source is None:
            if kind == "Resource":
                raise errors.table_relation("No.", table.name, record["No."], kind)
            raise errors.dialog(f"{kind} does not exist.")  # the API page's own check for items and accounts
        _check_source(kind, source)
        if kind == "Account" and not source["Direct Posting"]:
            raise errors.must_be_equal("Direct Posting", "Yes", LINE_SOURCES[kind], [("No.", source["No."])], "No")
        if new_object:
            if "description" not in values:
                record["Description"] = source["Name" if kind in ("Resource", "Account") else "Description"]
            if kind not in PRICED_BY_LINE:
                if "unitPrice" not in values:
                    record["Unit Price"] = source["Unit Price"]
                if "unitOfMeasureCode" not in values and "unitOfMeasureId" not in values:
                    record["Unit of Measure Code"] = source["Base Unit of Measure"]
            if kind == "Item" and "taxCode" not in values:
                record["Tax Group Code"] = source["Tax Group Code"]
        unit = record["Unit of Measure Code"]
        if kind in ("Item", "Resource") and unit and \
                session.find(f"{kind} Unit of Measure", (record["No."], unit)) is None:
            # a line sells in one of the item's or resource's units of measure, converted to base units by its quantity
            raise errors.table_relation("Unit of Measure Code", table.name, unit, f"{kind} Unit of Measure")
        if record["Shipment Date"] is None:
            record["Shipment Date"] = header["Requested Delivery Date"] if orders and header["Requested Delivery Date"] \
                else header["Document Date"]

        gross = _r(record["Quantity"] * record["Unit Price"])
        if "discountPercent" in values:
            record["Line Discount Amount"] = _r(gross * record["Line Discount %"] / 100)
        elif "discountAmount" in values:
            record["Line Discount %"] = round(record["Line Discount Amount"] / gross * 100, 5) if gross else 0.0
        else:
            record["Line Discount Amount"] = _r(gross * record["Line Discount %"] / 100)
        if not 0 <= record["Line Discount %"] <= 100:
            raise errors.dialog("Line Discount % must be between 0 and 100.")

        if orders:
            if record["Quantity"] < record["Quantity Shipped"]:
                raise errors.dialog(f"Quantity cannot be less than the quantity already shipped "
                                    f"({record['Quantity Shipped']:g}).")
            to_ship = _r(record["Quantity"] - record["Quantity Shipped"])
            to_invoice = _r(record["Quantity"] - record["Quantity Invoiced"])
            quantity_changed = old is None or record["Quantity"] != old["Quantity"]
            if quantity_changed and "shipQuantity" not in values:
                record["Qty. to Ship"] = to_ship
            if quantity_changed and "invoiceQuantity" not in values:
                record["Qty. to Invoice"] = to_invoice
            if not 0 <= record["Qty. to Ship"] <= to_ship:
                raise errors.dialog(f"You cannot ship more than {to_ship:g} units.")
            if not 0 <= record["Qty. to Invoice"] <= to_invoice:
                raise errors.dialog(f"You cannot invoice more than {to_invoice:g} units.")
            invoiceable = _r(record["Quantity Shipped"] + record["Qty. to Ship"] - record["Quantity Invoiced"])
            if record["Qty. to Invoice"] > invoiceable:
                raise errors.dialog(f"You cannot invoice more than {invoiceable:g} units.")

    def on_delete(session: Session, line: dict) -> None:
        header = header_of_line(session, lines_table, line)
        if header is None:
            return
        if invoices and header["Posted"]:
            raise errors.dialog(POSTED)
        if orders and header["Status"] == "Open":
            raise errors.must_be_equal("Status", "Open", "Sales Header",
                                       [("Document Type", "Order"), ("No.", header["No."])], "Released")

    return (lambda s, record, values: rules(s, None, record, values), rules, on_delete)


def _line_fields(lines_table: str) -> list[Field]:
    orders = lines_table == ORDER_LINES
    fields: list[Field] = [
        _id(),
        Field("documentId", "Document Id"),
        Field("sequence", "Line No."),
        LineObjectId("itemId", "Item"),
        LineObjectId("accountId", "Account"),
        Field("lineType", "Type"),
        Field("lineObjectNumber", "No."),
        Field("description", "Description"),
        Field("description2", "Description 2"),
        RelatedId("unitOfMeasureId", "Unit of Measure Code", "Unit of Measure", "Unit of Measure"),
        RelatedCode("unitOfMeasureCode", "Unit of Measure Code", "unitOfMeasureId",
                    "The unit of measure values do not match to a specific Unit of Measure."),
        Field("quantity", "Quantity"),
        Field("unitPrice", "Unit Price"),
        Field("discountAmount", "Line Discount Amount"),
        Field("discountPercent", "Line Discount %"),
        Computed("discountAppliedBeforeTax", "bool", lambda s, r: True),
        _line_amount("amountExcludingTax", lines_table),
        Field("taxCode", "Tax Group Code"),
        Field("taxPercent", "VAT %", read_only=True),
        _line_amount("totalTaxAmount", lines_table),
        _line_amount("amountIncludingTax", lines_table),
        _line_amount("invoiceDiscountAllocation", lines_table),
        _line_amount("netAmount", lines_table),
        _line_amount("netTaxAmount", lines_table),
        _line_amount("netAmountIncludingTax", lines_table),
        Field("shipmentDate", "Shipment Date"),
    ]
    if orders:
        fields += [
            Field("shippedQuantity", "Quantity Shipped", read_only=True),
            Field("invoicedQuantity", "Quantity Invoiced", read_only=True),
            Field("invoiceQuantity", "Qty. to Invoice"),
            Field("shipQuantity", "Qty. to Ship"),
        ]
    # API v2.0 document lines publish no lastModifiedDateTime; a line change shows on the header
    fields.append(SystemField("lastModifiedDateTime", "SystemModifiedAt", "datetime", exposed=False))
    return fields + _api_system_fields()


# -- posting ------------------------------------------------------------------------------------------------------

POSTING_GROUPS = ("Customer Posting Group", "Gen. Bus. Posting Group")  # a customer without them cannot be invoiced

def _check_customer(session: Session, header: dict, shipping: bool, invoicing: bool) -> None:
    for number in dict.fromkeys((header["Sell-to Customer No."], header["Bill-to Customer No."])):
        customer = session.find("Customer", (number,))
        if customer is None:
            raise errors.record_not_found("Customer", [("No.", number)])
        blocked = customer["Blocked"]
        if blocked == "All" or (blocked == "Ship" and shipping) or (blocked == "Invoice" and invoicing):
            raise errors.dialog(f"You cannot post this type of document when Customer {number} is blocked "
                                f"with type {blocked}")
        if invoicing:  # the customer ledger entry and the sales G/L entries need them (Cust.TestField)
            for column in POSTING_GROUPS:
                if not customer[column]:
                    raise errors.must_have_value(column, "Customer", [("No.", number)])


def _check_lines(session: Session, lines: list[dict]) -> None:
    for line in lines:
        if line["Type"] in LINE_SOURCES:
            table = LINE_SOURCES[line["Type"]]
            source = session.find(table, (line["No."],))
            if source is None:
                raise errors.record_not_found(table, [("No.", line["No."])])
            _check_source(line["Type"], source)


def _new_posted_invoice(session: Session, source_table: str, header: dict, system_id: str | None) -> dict:
    invoices = session.table(INVOICES)
    record = invoices.new_record()
    for column in invoices.by_name:
        if column in header and column not in ("No.", "Status"):
            record[column] = header[column]
    record.update({
        "SystemId": system_id or str(uuid.uuid4()),
        "No.": session.store.next_number(invoices, session.company, POSTED_INVOICE_NUMBERS),
        "Posted": True, "Status": "Open",
        "Posting Date": header["Posting Date"] or session.today(),
        "Document Date": header["Document Date"] or session.today(),
    })
    if source_table == ORDERS:
        record.update({"Order No.": header["No."], "Order Id": header["SystemId"]})
    record["Shipment Date"] = header["Shipment Date"] or record["Document Date"]
    if source_table == ORDERS or record["Due Date"] is None:
        _due_date(session, record)
    return record


def _insert_posted(session: Session, record: dict, lines: list[dict]) -> dict:
    """Insert a posted invoice with copies of `lines`, and its customer ledger entry, open for its total."""
    invoices, invoice_lines = session.table(INVOICES), session.table(INVOICE_LINES)
    posted = session.insert_row(invoices, record)
    for source in lines:
        line = invoice_lines.new_record()
        for column in invoice_lines.by_name:
            if column in source:
                line[column] = source[column]
        line.update({"Document No.": posted["No."], "Document Id": posted["SystemId"], "Quantity Shipped": 0.0,
                     "Quantity Invoiced": 0.0, "Qty. to Ship": 0.0, "Qty. to Invoice": 0.0})
        session.insert_row(invoice_lines, line)
    posted = session.get(INVOICES, posted["SystemId"])
    total = document_amounts(session, INVOICES, posted)[1]["totalAmountIncludingTax"]
    ledger = session.table(CUSTOMER_LEDGER)
    session.insert_row(ledger, {**ledger.new_record(),
                                "Entry No.": int(session.store.next_number(ledger, session.company, ENTRY_NUMBERS)),
                                "Customer No.": posted["Bill-to Customer No."], "Posting Date": posted["Posting Date"],
                                "Document Type": "Invoice", "Document No.": posted["No."], "Amount": total,
                                "Remaining Amount": total, "Open": True})
    return posted


def post_invoice(session: Session, draft: dict) -> dict:
    """salesInvoices({id})/Microsoft.NAV.post: the draft becomes a posted invoice with the same id."""
    if draft["Posted"]:
        raise errors.dialog(POSTED)
    lines = document_lines(session, INVOICES, draft)
    billable = [line for line in lines if line["Type"] != "Comment" and line["Quantity"]]
    if not billable:
        raise errors.dialog(NOTHING_TO_POST)
    _check_customer(session, draft, shipping=True, invoicing=True)
    _check_lines(session, billable)
    with session.store.atomic():
        record = _new_posted_invoice(session, INVOICES, draft, draft["SystemId"])
        copies = [dict(line) for line in lines]
        session.delete_row(session.table(INVOICES), draft)
        posted = _insert_posted(session, record, copies)
        for line in billable:
            if line["Type"] == "Item":
                post_item_ledger(session, line["No."], -line["Quantity"], entry_type="Sale",
                                 document_no=posted["No."], posting_date=posted["Posting Date"],
                                 description=line["Description"])
        return posted


def ship_and_invoice(session: Session, order: dict) -> dict | None:
    """salesOrders({id})/Microsoft.NAV.shipAndInvoice: ship each line's shipQuantity and invoice its
    invoiceQuantity; the order goes once every line is fully invoiced. Returns the posted invoice."""
    lines = document_lines(session, ORDERS, order)
    active = [line for line in lines if line["Type"] != "Comment"]
    shipping = any(line["Qty. to Ship"] for line in active)
    invoicing = any(line["Qty. to Invoice"] for line in active)
    if not shipping and not invoicing:
        raise errors.dialog(NOTHING_TO_POST)
    _check_customer(session, order, shipping, invoicing)
    _check_lines(session, [line for line in active if line["Qty. to Ship"] or line["Qty. to Invoice"]])
    with session.store.atomic():
        posted = None
        if invoicing:
            record = _new_posted_invoice(session, ORDERS, order, None)
            copies, full, part = [], 0.0, 0.0
            for line in lines:
                if line["Type"] == "Comment":
                    copies.append(dict(line))
                    continue
                amount = _r(line["Quantity"] * line["Unit Price"]) - line["Line Discount Amount"]
                full += amount
                quantity = line["Qty. to Invoice"]
                if not quantity:
                    continue
                share = quantity / line["Quantity"] if line["Quantity"] else 1.0
                part += amount * share
                copies.append({**line, "Quantity": quantity, "Line Discount Amount": _r(line["Line Discount Amount"] * share)})
            record["Invoice Discount Amount"] = _r(order["Invoice Discount Amount"] * (part / full if full else 1.0))
            posted = _insert_posted(session, record, copies)
        document_no = posted["No."] if posted else order["No."]
        posting_date = order["Posting Date"] or session.today()
        line_table = session.table(ORDER_LINES)
        for line in active:
            ship, invoice = line["Qty. to Ship"], line["Qty. to Invoice"]
            if line["Type"] == "Item" and ship:
                post_item_ledger(session, line["No."], -ship, entry_type="Sale", document_no=document_no,
                                 posting_date=posting_date, description=line["Description"])
            if ship or invoice:
                shipped = _r(line["Quantity Shipped"] + ship)
                invoiced = _r(line["Quantity Invoiced"] + invoice)
                session.modify_row(line_table, line, {
                    **line, "Quantity Shipped": shipped, "Quantity Invoiced": invoiced,
                    "Qty. to Ship": _r(line["Quantity"] - shipped), "Qty. to Invoice": _r(line["Quantity"] - invoiced)})
        current = session.get(ORDERS, order["SystemId"])
        # the Sales Header remembers its last posted shipment and invoice (what page 42 then shows)
        last = {"Last Posting No.": posted["No."]} if posted else {}
        if shipping:
            last.update({"Last Shipment Date": posting_date, "Last Shipping No.": session.store.next_number(
                session.table(ORDERS), session.company, POSTED_SHIPMENT_NUMBERS)})
        current = session.modify_row(session.table(ORDERS), current, {**current, **last})
        remaining = [line for line in document_lines(session, ORDERS, current) if line["Type"] != "Comment"]
        if all(line["Quantity Invoiced"] >= line["Quantity"] for line in remaining):
            session.delete_row(session.table(ORDERS), current)
        return posted


def release(session: Session, order: dict) -> None:
    if order["Status"] == "Open":
        return
    if not any(line["Type"] != "Comment" and line["Quantity"] for line in document_lines(session, ORDERS, order)):
        raise errors.dialog(f"There is nothing to release for the document of type Order with the number {order['No.']}.")
    session.modify_row(session.table(ORDERS), order, {**order, "Status": "Open"})


def reopen(session: Session, order: dict) -> None:
    if order["Status"] != "Draft":
        session.modify_row(session.table(ORDERS), order, {**order, "Status": "Draft"})


def apply_payment(session: Session, invoice: dict, amount: float) -> dict:
    """A payment applied to a posted invoice's ledger entry: its remaining amount drops; at zero the entry
    closes. Returns the invoice as it now stands."""
    if not invoice["Posted"]:
        raise errors.dialog(f"Invoice {invoice['No.']} is not posted; only posted invoices can be paid.")
    if amount <= 0:
        raise errors.dialog("The payment amount must be positive.")
    entry = ledger_entry(session, invoice)
    if entry is None:
        raise errors.record_not_found(CUSTOMER_LEDGER, [("Document No.", invoice["No."])])
    remaining = max(0.0, _r(entry["Remaining Amount"] - amount))
    session.modify_row(session.table(CUSTOMER_LEDGER), entry, {**entry, "Remaining Amount": remaining,
                                                                 "Open": remaining > 0})
    return session.get(INVOICES, invoice["SystemId"])


def _invoice_status_follows_ledger(session: Session, entry: dict) -> None:
    """Codeunit 5477's subscriber on Cust. Ledger Entry: the posted invoice's status is set from its entry
    (Paid once closed), and the invoice is modified only when that status changes (UpdateStatusIfChanged)."""
    if entry["Document Type"] != "Invoice":
        return
    invoice = session.find(INVOICES, (entry["Document No."],))
    status = "Open" if entry["Open"] else "Paid"
    if invoice is not None and invoice["Posted"] and invoice["Status"] not in (status, "Canceled", "Corrective"):
        session.modify_row(session.table(INVOICES), invoice, {**invoice, "Status": status})


def _refuse_customer_delete(session: Session, customer: dict) -> None:
    """Customer.OnDelete: no outstanding orders or draft invoices, no open (unpaid) posted invoices."""
    if open_balance(session, customer["No."]):
        raise errors.dialog(f"You cannot delete Customer {customer['No.']} because it has open ledger entries.")
    for table, kind in ((ORDERS, "Order"), (INVOICES, "Invoice")):
        for header in session.find_all(table, ("Sell-to Customer No.",), (customer["No."],)):
            if not header.get("Posted"):
                raise errors.dialog(f"You cannot delete Customer {customer['No.']} because there is at least one "
                                    f"outstanding Sales {kind} for this customer.")


# -- registration -------------------------------------------------------------------------------------------------

def register(cat: Catalog) -> None:
    cat.add_table(Table(5495, ORDERS, _header_columns(ORDERS), key=("No.",), series=NumberSeries("101001"),
                        indexes=(("Sell-to Customer No.",),)))
    cat.add_table(Table(5475, INVOICES, _header_columns(INVOICES), key=("No.",), series=NumberSeries("102001"),
                        indexes=(("Sell-to Customer No.",), ("Bill-to Customer No.",))))
    cat.add_table(Table(5505, QUOTES, _header_columns(QUOTES), key=("No.",), series=NumberSeries("1001"),
                        indexes=(("Sell-to Customer No.",),)))
    cat.add_table(Table(37, ORDER_LINES, _line_columns(), key=("Document No.", "Line No."), indexes=(("Document No.",),)))
    cat.add_table(Table(5476, INVOICE_LINES, _line_columns(), key=("Document No.", "Line No."),
                        indexes=(("Document No.",),)))
    cat.add_table(Table(37, QUOTE_LINES, _line_columns(), key=("Document No.", "Line No."),
                        indexes=(("Document No.",),)))
    for header_table in (ORDERS, INVOICES, QUOTES):
        _header_triggers(cat, header_table)
    cat.add_table(Table(21, CUSTOMER_LEDGER, [
        Column("Entry No.", "integer"),
        Column("Customer No.", "code", 20, relation="Customer"),
        Column("Posting Date", "date"),
        Column("Document Type", "option", options=(" ", "Payment", "Invoice", "Credit Memo")),
        Column("Document No.", "code", 20),
        Column("Amount", "decimal"),
        Column("Remaining Amount", "decimal"),  # a FlowField over the detailed entries in BC; kept here
        Column("Open", "bool"),
    ], key=("Entry No.",), indexes=(("Customer No.",), ("Document No.",))))
    cat.on(CUSTOMER_LEDGER, after_modify=lambda s, old, new: _invoice_status_follows_ledger(s, new))
    cat.on("Customer", on_delete=_refuse_customer_delete)

    views = {}
    for header_table, lines_table, name, entity, lines_name, line_entity in (
            (ORDERS, ORDER_LINES, "salesOrders", "salesOrder", "salesOrderLines", "salesOrderLine"),
            (INVOICES, INVOICE_LINES, "salesInvoices", "salesInvoice", "salesInvoiceLines", "salesInvoiceLine"),
            (QUOTES, QUOTE_LINES, "salesQuotes", "salesQuote", "salesQuoteLines", "salesQuoteLine")):
        before_insert, before_modify, on_delete = _header_hooks(header_table)
        header_view = cat.add_api(View(name, cat.tables[header_table], _header_fields(header_table), entity_name=entity,
                                       before_insert=before_insert, before_modify=before_modify, on_delete=on_delete))
        line_insert, line_modify, line_delete = _line_hooks(lines_table)
        line_view = cat.add_api(View(lines_name, cat.tables[lines_table], _line_fields(lines_table),
                                     entity_name=line_entity, before_insert=line_insert, before_modify=line_modify,
                                     on_delete=line_delete, list_requires=("documentId", "id"),
                                     order=["documentId", "sequence"]))
        header_view.navigations[lines_name] = Navigation(
            line_view, "documentId", lambda s, header, table=header_table: document_lines(s, table, header))
        views[name] = header_view

    views["salesOrders"].actions.update({
        "shipAndInvoice": ship_and_invoice,
        "release": release,
        "reopen": reopen,
    })
    views["salesInvoices"].actions["post"] = post_invoice

    # page 132 "Posted Sales Invoice": what API v2.0 does not publish of a posted invoice
    cat.add_page(PageView("PostedSalesInvoice", cat.tables[INVOICES], [
        Field("No", "No."),
        Field("Shipment_Date", "Shipment Date"),
        Field("Shipping_Agent_Code", "Shipping Agent Code"),
        Field("GetWorkDescription", "Work Description", page_variable=True),  # a control over a method
        *page_system_fields(),
    ], insertable=False, modifiable=False, deletable=False))

    # page 42 "Sales Order", its controls in the page's order (a request's values are validated in that order):
    # a header change passes salesOrders' checks (and due date) like one through the API
    cat.add_page(PageView("SalesOrder", cat.tables[ORDERS], [
        *_document_controls("Order"),
        Field("Payment_Terms_Code", "Payment Terms Code"),
        Field("Payment_Discount_Percent", "Payment Discount %"),
        Field("Shipment_Method_Code", "Shipment Method Code"),
        Field("Shipping_Agent_Code", "Shipping Agent Code"),
        *_bill_to_controls(),
        Field("Last_Shipment_Date", "Last Shipment Date", read_only=True),
        Field("Last_Shipping_No", "Last Shipping No.", read_only=True),
        Field("Last_Posting_No", "Last Posting No.", read_only=True),
        Field("Quote_No", "Quote No.", read_only=True),  # table 36 makes it not editable
        Field("QuoteNo", "Quote No.", page_variable=True),  # bcsync's extension: a control whose OnValidate sets it
        *page_system_fields(),
    ], key=("Document_Type", "No"), insertable=False, deletable=False, before_modify=_header_hooks(ORDERS)[1]))

    # page 41 "Sales Quote": what API v2.0 quotes lack (Your Reference, the requested delivery date, the work
    # description, the shipping agent) or publish read-only (the bill-to address)
    cat.add_page(PageView("SalesQuote", cat.tables[QUOTES], [
        *_document_controls("Quote"),
        Field("Quote_Valid_Until_Date", "Quote Valid Until Date"),
        Field("Requested_Delivery_Date", "Requested Delivery Date"),
        Field("Payment_Terms_Code", "Payment Terms Code"),
        Field("Shipment_Method_Code", "Shipment Method Code"),
        Field("Shipping_Agent_Code", "Shipping Agent Code"),
        *_bill_to_controls(),
        *page_system_fields(),
    ], key=("Document_Type", "No"), insertable=False, deletable=False, before_modify=_header_hooks(QUOTES)[1]))

    # the bcsync extension's [ServiceEnabled] procedures on page 42: POST SalesOrder(...)/NAV.Reopen, NAV.Release
    # (API v2.0 orders have no such bound action), as the page's Reopen and Release actions do
    cat.pages["SalesOrder"].actions.update({"Reopen": reopen, "Release": release})


def _document_controls(document_type: str) -> list[Field]:
    """The first controls of pages 41 and 42: the document type (their view's filter), number, customer, and the
    references; WorkDescription is a page variable over Rec.GetWorkDescription()."""
    return [
        Computed("Document_Type", "option", lambda s, r: document_type, options=DOCUMENT_TYPES,
                 caption="Document Type"),
        Field("No", "No.", read_only=True),
        Field("Sell_to_Customer_No", "Sell-to Customer No.", read_only=True),
        Field("External_Document_No", "External Document No."),
        Field("Your_Reference", "Your Reference"),
        Field("WorkDescription", "Work Description", page_variable=True),
    ]


def _bill_to_controls() -> list[Field]:
    return [BillToOptions(), *(BillToAddress(f"Bill_to_{name}", f"Bill-to {column}") for name, column in (
        ("Address", "Address"), ("Address_2", "Address 2"), ("City", "City"), ("County", "County"),
        ("Post_Code", "Post Code"), ("Country_Region_Code", "Country/Region Code")))]
