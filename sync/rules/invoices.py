"""POSTEDSALESINV-INV with its lines, POSTEDSALESLINE-INV.

- A posted invoice becomes a Sales invoice named after its number, for the coupled account, with
  the salesperson's coupled user as owner, in its currency's price list (the default price list for
  the local currency, "Price List in <code>" otherwise, created when missing).
- Its item and resource lines become invoice products (the coupled product, in the product's unit),
  after the header, in order. An invoice is written with its lines or not at all: the lines' items and
  resources are looked up before the header is written, those not coupled yet are synchronised first
  (when ITEM-PRODUCT or RESOURCE-PRODUCT would: not blocked, within the filter), and an invoice with a
  line whose product still cannot be found fails as a whole, naming the line, the item and why, and
  nothing of it is written. A line with no Sales product (a G/L account, such as freight or the
  invoice rounding line, an item charge, a fixed asset, or the write-in item or resource of Sales &
  Receivables Setup) becomes a write-in product described "<No.> <Description>.". Comment lines carry
  no amounts and are left out. Lines are never synchronised on their own.
- Line amounts are Business Central's: tax is the line's amount including tax less its amount (both after
  the invoice discount), the extended amount adds the line's share of the invoice discount back, as the
  invoice's own discount is taken off the header. With prices including tax, the price per unit is the
  line's amount before discounts and excluding tax, per unit (Business Central subtracts the tax per unit,
  which an invoice discount throws off). Whatever a price per unit rounded to cents leaves between Sales'
  arithmetic (price x quantity - discount + tax) and the posted lines goes to one write-in line
  "Rounding", so that the Sales invoice's totals are the sums of its lines and equal the posted invoice's.
- The shipping agent becomes the shipping method (through the SHIPPING AGENT option coupling), the shipment
  date the date delivered, the work description the description; a new invoice without a work description
  takes its shipment method's description instead.
- An invoice of an order that came from Sales (Your Reference = the Sales order number) belongs to
  that order: it takes the order's name, order, opportunity, price list and owner (a user; a team
  owner leaves the salesperson's user). The order's customer (its account, or its contact's parent
  account) must still be the invoice's, else the invoice fails with an error naming both.
- Totals and state follow the posted invoice: paid in full -> Paid/Complete, partly paid ->
  Paid/Partial, else Active/Billed. A Sales invoice that is no longer active is read-only: only its
  state follows from then on, and as Business Central does it, the invoice is re-activated (Active /
  Billed) before it is given another paid status.
- A partial payment does not move a posted invoice's lastModifiedDateTime (the API's value is the
  SystemModifiedAt of "Sales Invoice Entity Aggregate", which codeunit 5477 modifies on a ledger
  entry change only when the invoice's status changes, Open -> Paid); only remainingAmount, computed
  on every read, shows it. So every job reads the open invoices' amounts in one paged read, and the
  coupled ones whose paid state is not the one last synchronised are worked on as changed rows.
"""

from __future__ import annotations

import uuid
from typing import Any, Sequence

from ..errors import RecordError
from ..model import Side
from ..ports import Coupling, NewRow, Record, RowChange
from ..tables import (
    BC_ITEM,
    BC_RESOURCE,
    BC_SALES_INVOICE,
    BC_SALES_INVOICE_LINE,
    BC_SHIPMENT_METHOD,
    CRM_CONTACT,
    CRM_INVOICE,
    CRM_INVOICE_DETAIL,
    CRM_PRICE_LIST,
    CRM_PRODUCT,
    CRM_SALES_ORDER,
)
from . import MappingRules, RuleContext, SkipRow, Written
from .currency import BC_COMPANY_INFORMATION, CurrencyRules
from .products import default_price_list, write_in_product
from .units import ITEM_UNITS, RESOURCE_UNITS, coupled_units, unit_groups

ACTIVE, PAID = 0, 2
BILLED, COMPLETE, PARTIAL = 4, 100001, 100002
OPEN_INVOICES_PAGE = 20_000  # Business Central's largest page: one request per 20,000 open invoices
LINE_FIELDS = ["documentId", "sequence", "lineType", "lineObjectNumber", "description", "quantity", "unitPrice",
               "discountAmount", "invoiceDiscountAllocation", "netAmount", "netAmountIncludingTax", "shipmentDate",
               "unitOfMeasureCode"]
WITH_PRODUCT = {"Item": "ITEM-PRODUCT", "Resource": "RESOURCE-PRODUCT"}  # line types sold as a coupled product
DETAIL_NAMESPACE = uuid.UUID("0b6f5a4e-4d0a-4a55-a0a5-5f4bb3e8c9d1")


def synced_state(coupling: Coupling) -> tuple[int, int]:
    """The paid state last synchronised (Active/Billed until one was)."""
    snapshot = coupling.values_on(Side.BC)
    return snapshot.get("~statecode", ACTIVE), snapshot.get("~statuscode", BILLED)


def invoice_state(row: Record) -> tuple[int, int]:
    total = float(row.values.get("totalAmountIncludingTax") or 0)
    remaining = float(row.values.get("remainingAmount") or 0)
    if total and remaining <= 0:
        return PAID, COMPLETE
    if 0 < remaining < total:
        return PAID, PARTIAL
    return ACTIVE, BILLED


class PostedInvoiceRules(MappingRules):
    extra_fields = {Side.BC: ("number", "currencyCode", "currencyId", "totalAmountExcludingTax",
                              "totalAmountIncludingTax", "remainingAmount", "discountAmount",
                              "customerPurchaseOrderReference", "pricesIncludeTax", "shipmentMethodId",
                              "workDescription"),
                    Side.CRM: ("statecode", "statuscode", "pricelevelid", "invoicenumber", "salesorderid", "name")}
    update_only = ("statecode", "statuscode")  # a new invoice takes its state after its lines (after_write)
    reads = (BC_SALES_INVOICE_LINE, BC_ITEM, BC_RESOURCE, BC_COMPANY_INFORMATION, CRM_SALES_ORDER, CRM_CONTACT,
             CRM_PRODUCT, BC_SHIPMENT_METHOD)
    creates = (CRM_INVOICE_DETAIL, CRM_PRICE_LIST)

    def unversioned_changes(self, ctx: RuleContext) -> list[str]:
        """Open invoices whose paid state is not the one last synchronised: partly paid (or unapplied)
        since. One paged read of the open invoices' amounts, whatever their number."""
        where = " and ".join(f"({f})" for f in (ctx.mapping.filter_on(Side.BC), "status eq 'Open'") if f)
        changed = []
        for page in ctx.bc.read_changed(BC_SALES_INVOICE, ["totalAmountIncludingTax", "remainingAmount"], since=None,
                                        where=where, page_size=OPEN_INVOICES_PAGE):
            couplings = ctx.couplings.get_many(ctx.mapping.name, Side.BC, [r.id for r in page])
            changed += [r.id for r in page if r.id in couplings and invoice_state(r) != synced_state(couplings[r.id])]
        return changed

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        """The Sales orders the page's invoices came from, the accounts that buy on them, and the
        accounts the invoices' customers are coupled to."""
        origins = ctx.cache.setdefault("origin_orders", {})
        refs = sorted({r.values["customerPurchaseOrderReference"] for r in rows
                       if r.values.get("customerPurchaseOrderReference")} - set(origins))
        if refs:
            self._origin_orders(ctx, refs, origins)
        customers = {str(r.values.get("customerId") or "").lower() for r in rows
                     if origins.get(r.values.get("customerPurchaseOrderReference") or "")}
        ctx.cache["invoice_accounts"] = {bc_id.lower(): c.crm_id.lower() for bc_id, c in ctx.couplings.get_many(
            "CUSTOMER", Side.BC, sorted(customers)).items()} if customers else {}
        methods = ctx.cache.setdefault("shipment_methods", {})
        wanted = sorted({str(r.values["shipmentMethodId"]).lower() for r in rows if r.values.get("shipmentMethodId")}
                        - set(methods))
        if wanted:
            found = {m.id.lower(): m.values.get("displayName") for m in ctx.bc.read_ids(BC_SHIPMENT_METHOD,
                                                                                         ["displayName"], wanted)}
            methods.update({m: found.get(m) for m in wanted})
        self._prepare_lines(ctx, rows)

    def _prepare_lines(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        """The lines of the invoices this page may write (new ones, and those whose lines failed before), and
        the products of their items and resources, before any header is written."""
        coupled = ctx.couplings.get_many(ctx.mapping.name, Side.BC, [r.id for r in rows])
        wanted = [r.id for r in rows if r.id not in coupled or r.id in ctx.failures]
        lines = ctx.bc.read_matching(BC_SALES_INVOICE_LINE, LINE_FIELDS, "documentId", wanted) if wanted else []
        by_invoice: dict[str, list[Record]] = {}
        for line in sorted(lines, key=lambda l: l.values.get("sequence") or 0):
            by_invoice.setdefault(str(line.values["documentId"]).lower(), []).append(line)
        ctx.cache["invoice_lines"] = by_invoice
        ctx.cache["line_products"], ctx.cache["line_problems"] = line_products(ctx, lines, rows)
        ctx.cache["line_units"] = line_units(ctx, lines, rows)

    @staticmethod
    def _check_lines(ctx: RuleContext, row: Record) -> None:
        check_lines(ctx, f"Posted Sales Invoice {row.values.get('number')}", "invoice",
                    ctx.cache["invoice_lines"].get(row.id.lower(), []), ctx.cache["line_products"],
                    ctx.cache["line_problems"], ctx.cache["line_units"])

    @staticmethod
    def _origin_orders(ctx: RuleContext, refs: list[str], origins: dict) -> None:
        orders = ctx.crm.read_matching(CRM_SALES_ORDER, ["name", "ordernumber", "customerid", "customeridtype",
                                                         "opportunityid", "pricelevelid", "ownerid", "owneridtype"],
                                       "ordernumber", refs)
        contacts = [o.values["customerid"] for o in orders if o.values.get("customeridtype") == "contact"]
        parents = {c.id.lower(): c.values.get("parentcustomerid") for c in ctx.crm.read_ids(
            CRM_CONTACT, ["parentcustomerid", "parentcustomeridtype"], contacts)
            if c.values.get("parentcustomeridtype") in (None, "account")}
        for ref in refs:
            origins[ref] = None  # not from Sales
        for order in orders:
            customer = str(order.values.get("customerid") or "").lower()
            account = parents.get(customer) if order.values.get("customeridtype") == "contact" else customer
            origins[order.values.get("ordernumber")] = (order, str(account or "").lower())

    def origin_values(self, ctx: RuleContext, row: Record) -> dict[str, Any]:
        """What a new invoice takes from the Sales order it came from."""
        found = ctx.cache.get("origin_orders", {}).get(row.values.get("customerPurchaseOrderReference") or "")
        if found is None:
            return {}
        order, account = found
        customer = ctx.cache["invoice_accounts"].get(str(row.values.get("customerId") or "").lower(), "")
        if customer != account:
            raise RecordError(
                f"Posted Sales Invoice {row.values.get('number')} was created from Sales order "
                f"{order.values.get('ordernumber')}, whose customer has changed or is no longer coupled to the "
                f"invoice's customer.", field="customerid", code="CustomerChanged")
        v = order.values
        values = {"name": v.get("name"), "salesorderid": order.id}
        if v.get("opportunityid"):
            values["opportunityid"] = v["opportunityid"]
        if v.get("pricelevelid"):
            values["pricelevelid"] = v["pricelevelid"]
        if v.get("ownerid") and v.get("owneridtype") in (None, "systemuser"):
            values["ownerid"] = v["ownerid"]
        return values

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        state, status = invoice_state(row)
        if dst_row is not None and dst_row.values.get("statecode") != ACTIVE:
            if (dst_row.values.get("statecode"), dst_row.values.get("statuscode")) != (state, status):
                return {"statecode": state, "statuscode": status}  # once re-activated (reopen)
            raise SkipRow(f"Sales invoice {dst_row.values.get('invoicenumber') or dst_row.id} is no longer active, so "
                          f"it is read-only and was left as it is", in_place={"statecode": state, "statuscode": status})
        if dst_row is None or row.id in ctx.failures:
            self._check_lines(ctx, row)
        total = float(row.values.get("totalAmountIncludingTax") or 0)
        less_freight = float(row.values.get("totalAmountExcludingTax") or 0)
        values: dict[str, Any] = {"name": row.values.get("number"), "totaltax": round(total - less_freight, 2)}
        if dst_row is None:
            method = str(row.values.get("shipmentMethodId") or "").lower()
            if not row.values.get("workDescription") and ctx.cache["shipment_methods"].get(method):
                values["description"] = ctx.cache["shipment_methods"][method]
            values.update(self.origin_values(ctx, row))
            if "pricelevelid" not in values:
                values["pricelevelid"] = self.price_list(ctx, row)
            if state != ACTIVE:
                values.update(statecode=state, statuscode=status)  # remembered now, written by after_write
            return values
        if row.id not in ctx.failures:  # while its lines are missing, the state waits for them
            if state != ACTIVE:
                values.update(statecode=state, statuscode=status)
        if dst_row.values.get("salesorderid"):
            # an order's invoice keeps its name and owner (the order's, or whom a Sales user chose)
            values.update(name=dst_row.values.get("name"), ownerid=dst_row.values.get("ownerid"))
        return values

    def reopen(self, ctx: RuleContext, dst_row: Record, values: dict[str, Any]) -> dict[str, Any]:
        """A closed invoice takes nothing but a change back to Active: anything else waits until it is
        Active / Billed again (CRM Synch. Helper, ActivateInvoiceForFurtherUpdate)."""
        if dst_row.values.get("statecode") == ACTIVE or (
                values.get("statecode") == ACTIVE and set(values) <= {"statecode", "statuscode"}):
            return {}
        return {"statecode": ACTIVE, "statuscode": BILLED}

    @staticmethod
    def price_list(ctx: RuleContext, row: Record) -> str:
        return currency_price_list(ctx, row, f"Posted Sales Invoice {row.values.get('number')}")

    def after_write(self, ctx: RuleContext, written: Sequence[Written]) -> dict[str, RecordError]:
        # lines go with a new invoice, and with one whose lines failed before (written idempotently)
        new = [w for w in written if w.inserted or w.retried]
        if not new:
            return {}
        # the lines and products read, and the products synchronised, before the headers were written
        lines_of, products = ctx.cache["invoice_lines"], ctx.cache["line_products"]
        failures: dict[str, RecordError] = {}
        details: list[tuple[Written, NewRow]] = []
        for w in new:
            mine = [l for l in lines_of.get(w.source.id.lower(), []) if l.values.get("lineType") != "Comment"]
            rows = [self._detail(w, line, products, ctx.cache["line_units"] or {}) for line in mine]
            details += [(w, d) for d in rows + self._rounding(w, mine, rows)]
        results = ctx.crm.insert(CRM_INVOICE_DETAIL, [d for _, d in details], ["quantity"])
        for (w, _), result in zip(details, results):
            if result.error is not None and result.error.code not in ("0x80040237",):  # already there: a retry
                failures.setdefault(w.source.id, RecordError(
                    f"Posted Sales Invoice {w.source.values.get('number')}: a line could not be written: "
                    f"{result.error.message}", code=result.error.code))
        # totals of the lines, then the state: lines cannot be added to an invoice that is paid
        changes = []
        for w in new:
            if w.source.id in failures:
                continue
            state, status = invoice_state(w.source)
            # the totals once more after the lines, which Dataverse would otherwise recalculate from
            values: dict[str, Any] = totals_of(w.source, [d for x, d in details if x is w])
            if state != ACTIVE:
                values.update(statecode=state, statuscode=status)
            else:
                values.update(statecode=ACTIVE, statuscode=BILLED)
            changes.append((w, RowChange(w.target.id, None, values)))
        for (w, _), result in zip(changes, ctx.crm.update(CRM_INVOICE, [c for _, c in changes], ["statecode"])):
            if result.error is not None:
                failures[w.source.id] = RecordError(f"Posted Sales Invoice {w.source.values.get('number')}: its "
                                                    f"totals and state could not be set: {result.error.message}")
        return failures

    @staticmethod
    def _detail(w: Written, line: Record, products: dict, units: dict) -> NewRow:
        v = line.values
        kind, number = v.get("lineType"), v.get("lineObjectNumber")
        product = products.get((kind, number))  # none: a write-in (the invoice's lines were checked before)
        quantity = float(v.get("quantity") or 0)
        net, share, discount = (float(v.get(f) or 0)
                                for f in ("netAmount", "invoiceDiscountAllocation", "discountAmount"))
        tax = round(float(v.get("netAmountIncludingTax") or 0) - net, 2)
        price = float(v.get("unitPrice") or 0)
        if w.source.values.get("pricesIncludeTax"):
            price = round((net + share + discount) / quantity, 2) if quantity else 0.0
        base = round(price * quantity, 2)
        values = {
            "invoiceid": w.target.id, "quantity": quantity, "priceperunit": price, "ispriceoverridden": True,
            "manualdiscountamount": discount, "volumediscountamount": 0, "tax": tax, "baseamount": base,
            "extendedamount": round(base - discount + tax, 2), "lineitemnumber": int(v.get("sequence") or 0),
            "description": v.get("description") or None,
            "actualdeliveryon": str(v.get("shipmentDate")) if v.get("shipmentDate") else None,
        }
        if product is None:  # a write-in product, as Business Central writes it
            values.update(isproductoverridden=True, productdescription=f"{number} {v.get('description') or ''}.")
        else:
            values.update(productid=product.id, uomid=units.get((kind, number, v.get("unitOfMeasureCode")))
                          or product.values.get("defaultuomid"))
        return NewRow(values, id=str(uuid.uuid5(DETAIL_NAMESPACE, line.id)))

    @staticmethod
    def _rounding(w: Written, lines: Sequence[Record], details: Sequence[NewRow]) -> list[NewRow]:
        """The write-in line "Rounding" for what the details' own arithmetic leaves of the posted lines'
        amounts (including tax, the invoice discount added back as it is taken off the header); none when
        nothing is left."""
        posted = sum(float(l.values.get(f) or 0) for l in lines
                     for f in ("netAmountIncludingTax", "invoiceDiscountAllocation"))
        left = round(posted - sum(d.values["extendedamount"] for d in details), 2)
        if not left:
            return []
        return [NewRow({"invoiceid": w.target.id, "isproductoverridden": True, "productdescription": "Rounding",
                        "quantity": 1, "priceperunit": left, "ispriceoverridden": True, "manualdiscountamount": 0,
                        "volumediscountamount": 0, "tax": 0, "baseamount": left, "extendedamount": left},
                       id=str(uuid.uuid5(DETAIL_NAMESPACE, f"{w.source.id}/rounding")))]


def currency_price_list(ctx: RuleContext, row: Record, label: str) -> str:
    """The price list of a Business Central document's currency (legacy pricing): the default price list for the
    local currency, "Price List in <code>" otherwise, created when missing. `label` names the document."""
    code = (row.values.get("currencyCode") or "").upper()
    currencies = CurrencyRules()
    if not code or code == currencies.lcy_code(ctx):
        return default_price_list(ctx)
    lists = ctx.cache.setdefault("price_list_in", {})
    if code not in lists:
        name = f"Price List in {code}"
        found = ctx.crm.read_matching(CRM_PRICE_LIST, ["name"], "name", [name])
        if found:
            lists[code] = found[0].id
        else:
            coupled = ctx.couplings.get_many("CURRENCY", Side.BC, [row.values.get("currencyId")])
            if not coupled:
                raise RecordError(f"{label}: currency {code} is not coupled to a Sales currency (table mapping "
                                  f"CURRENCY).", field="Currency Code", code="NotCoupled")
            currency = next(iter(coupled.values())).crm_id
            [result] = ctx.crm.insert(CRM_PRICE_LIST, [NewRow({"name": name, "transactioncurrencyid": currency})],
                                      ["name"])
            if result.error is not None:
                raise RecordError(f"The price list {name!r} could not be created: {result.error.message}")
            lists[code] = result.record.id
    return lists[code]


def line_products(ctx: RuleContext, lines: Sequence[Record], rows: Sequence[Record]) \
        -> tuple[dict[tuple[str, str], Record], dict[tuple[str, str], str]]:
    """(line type, number) -> the coupled Sales product (with its default unit); items and resources not
    coupled yet are synchronised first (not the write-in one, which needs no product). Also (line type,
    number) -> why one could not be."""
    _, write_in = write_in_product(ctx)
    found: dict[tuple[str, str], Record] = {}
    problems: dict[tuple[str, str], str] = {}
    for kind, table, mapping, key in (("Item", BC_ITEM, "ITEM-PRODUCT", "number"),
                                      ("Resource", BC_RESOURCE, "RESOURCE-PRODUCT", "No")):
        numbers = sorted({l.values.get("lineObjectNumber") for l in lines if l.values.get("lineType") == kind}
                         - {write_in})
        if not numbers:
            continue
        records = ctx.bc.read_matching(table, [key], key, numbers)
        coupled, why = ctx.coupled_first(mapping, [r.id for r in records], rows)
        problems.update({(kind, r.values.get(key)): why[r.id.lower()] for r in records if r.id.lower() in why})
        products = {p.id: p for p in ctx.crm.read_ids(CRM_PRODUCT, ["defaultuomid", "productnumber"],
                                                      [c.crm_id for c in coupled.values()])}
        for r in records:
            c = coupled.get(r.id)
            if c and c.crm_id in products:
                found[(kind, r.values.get(key))] = products[c.crm_id]
    return found, problems


def line_units(ctx: RuleContext, lines: Sequence[Record], rows: Sequence[Record]) -> dict | None:
    """Unit-group mode: (line type, number, unit of measure code) -> the coupled Sales unit, a line being in the
    unit of its own unit of measure; None in legacy mode (a product's default unit)."""
    if not unit_groups(ctx):
        return None
    return {(owner.caption, *key): unit[0] for owner in (ITEM_UNITS, RESOURCE_UNITS)
            for key, unit in coupled_units(ctx, owner, [l.values.get("lineObjectNumber") for l in lines
                                                        if l.values.get("lineType") == owner.caption], rows).items()}


def check_lines(ctx: RuleContext, label: str, document: str, lines: Sequence[Record],
                products: dict, problems: dict, units: dict | None) -> None:
    """A document (`label`, a `document`) whose item or resource line (other than the write-in one) has no Sales
    product, or in unit-group mode no Sales unit, is not written at all."""
    _, write_in = write_in_product(ctx)
    for line in lines:
        v = line.values
        kind, number = v.get("lineType"), v.get("lineObjectNumber")
        if kind in WITH_PRODUCT and number != write_in and (kind, number) not in products:
            why = problems.get((kind, number))
            advice = f"it could not be synchronised first: {why}" if why else \
                f"couple it first (table mapping {WITH_PRODUCT[kind]})."
            raise RecordError(f"{label}: {kind.lower()} {number} on line {v.get('sequence')} is not coupled to a Sales "
                              f"product, so the {document} is not written; {advice}", field="No.", code="NotCoupled")
        code = v.get("unitOfMeasureCode")
        if units is not None and kind in WITH_PRODUCT and number != write_in and code \
                and (kind, number, code) not in units:
            raise RecordError(f"{label}: unit of measure {code} of {kind.lower()} {number} on line "
                              f"{v.get('sequence')} is not coupled to a unit of its Sales unit group, so the "
                              f"{document} is not written; couple it first (table mapping {kind.upper()} UOM).",
                              field="Unit of Measure Code", code="NotCoupled")

def totals_of(invoice: Record, details: Sequence[NewRow]) -> dict[str, Any]:
    """A Sales invoice's totals as the sums of its lines, less the posted invoice's discount."""
    discount = float(invoice.values.get("discountAmount") or 0)
    line_discounts = round(sum(d.values["manualdiscountamount"] for d in details), 2)
    tax = round(sum(d.values["tax"] for d in details), 2)
    total = round(sum(d.values["extendedamount"] for d in details) - discount, 2)
    return {"totallineitemdiscountamount": line_discounts, "totalamount": total, "totaltax": tax,
            "totalamountlessfreight": round(total - tax, 2), "discountamount": discount,
            "totaldiscountamount": round(discount + line_discounts, 2)}
