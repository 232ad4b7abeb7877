"""Units of measure, items with their item ledger, resources.

An item's `inventory` is what BC's Inventory FlowField is: the sum of its item ledger entries'
quantities. Entries come from `post_item_ledger` (the simulator's `post_item_ledger` / admin
`POST /_sim/inventory`, an `inventory` given to seed or update an item, posting a sales document).
Resources are not in API v2.0; integrations publish page 76/77 as the `Resources` web service.

Every item and resource has its units of measure (tables 5404 and 205: a code and how many base units it
holds; the base unit holds 1, created when the base unit is set) and its unit group (table 5400, created with
the item or resource; its code is `ITEM <No.> UOM GR` / `RESOURCE <No.> UOM GR`), published as the pages
ItemUnitsOfMeasure (5404), ResourceUnitsOfMeasure (210) and UnitGroups (the bcsync extension's list over 5400).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import errors
from .catalog import Catalog, _api_system_fields, _id, _last_modified, code_table, page_system_fields
from .model import Column, NumberSeries, Table
from .views import Computed, Field, PageView, RelatedCode, RelatedId, Session, View

ENTRY_NUMBERS = NumberSeries("1")
ENTRY_TYPES = ("Purchase", "Sale", "Positive Adjmt.", "Negative Adjmt.", "Transfer", "Consumption", "Output")


class Inventory(Field):
    """items.inventory: read-only on the wire; the in-process API may set it, which posts the difference
    as one item ledger entry (an opening entry for a new item)."""

    def __init__(self):
        super().__init__("inventory", None, type="decimal", read_only=True, caption="Inventory")

    @property
    def privileged_writable(self) -> bool:
        return True

    def get(self, session: Session, record: dict) -> Any:
        return inventory_of(session, record["No."])

    def set(self, session: Session, view: View, record: dict, value: Any) -> None:
        session.scratch["inventory"] = float(value or 0)


def inventory_of(session: Session, item_no: str) -> float:
    entries = session.find_all("Item Ledger Entry", ("Item No.",), (item_no,))
    return round(sum(entry["Quantity"] for entry in entries), 5)


def post_item_ledger(session: Session, item_no: str, quantity: float, *, entry_type: str | None = None,
                     document_no: str = "", posting_date: dt.date | None = None, description: str = "") -> dict:
    """Add an item ledger entry (Positive/Negative Adjmt. unless told). As in Business Central the item
    itself does not change: its inventory is a sum over the entries, so its lastModifiedDateTime stays."""
    items = session.table("Item")
    item = session.find("Item", (items.column("No.").normalize(item_no),))
    if item is None:
        raise errors.record_not_found("Item", [("No.", item_no)])
    table = session.table("Item Ledger Entry")
    record = table.new_record()
    record.update({
        "Entry No.": int(session.store.next_number(table, session.company, ENTRY_NUMBERS)),
        "Item No.": item["No."],
        "Posting Date": posting_date or session.today(),
        "Entry Type": entry_type or ("Positive Adjmt." if quantity >= 0 else "Negative Adjmt."),
        "Document No.": document_no,
        "Description": description[:100] or item["Description"],
        "Quantity": float(quantity),
    })
    return session.insert_row(table, record)


def _related(name: str, column: str, table: str, label: str) -> list[Field]:
    """`<name>Id` and `<name>Code` kept consistent (the id picks the row; a code given with it must match)."""
    return [RelatedId(f"{name}Id", column, table, label),
            RelatedCode(f"{name}Code", column, f"{name}Id",
                        f"The {label.lower()} values do not match to a specific {label}.")]


def _keep_units(owner: str, unit_table: str, group_type: str):
    """Triggers of an item or resource: its unit group with it, and a unit of measure for its base unit
    (quantity 1) whenever the base unit is set, as validating Base Unit of Measure does in Business Central."""
    def base_unit(session: Session, record: dict) -> None:
        code = record["Base Unit of Measure"]
        if code and session.find(unit_table, (record["No."], code)) is None:
            table = session.table(unit_table)
            unit = table.new_record()
            unit.update({f"{owner} No.": record["No."], "Code": code, "Qty. per Unit of Measure": 1.0})
            session.child().insert_row(table, unit)

    def inserted(session: Session, record: dict) -> None:
        table = session.table("Unit Group")
        group = table.new_record()
        group.update({"Source Type": group_type, "Source Id": record["SystemId"], "Source No.": record["No."]})
        session.child().insert_row(table, group)
        base_unit(session, record)

    def deleted(session: Session, record: dict) -> None:
        for row in session.find_all("Unit Group", ("Source Id",), (record["SystemId"],)):
            session.child().delete_row(session.table("Unit Group"), row)
        for row in session.find_all(unit_table, (f"{owner} No.",), (record["No."],)):
            session.child().delete_row(session.table(unit_table), row)

    return dict(after_insert=inserted, after_modify=lambda s, old, new: base_unit(s, new), after_delete=deleted)


def _check_unit(owner: str):
    """A unit of measure holds a positive quantity of base units; the base unit itself holds exactly 1."""
    def check(session: Session, record: dict) -> None:
        quantity = record["Qty. per Unit of Measure"]
        if quantity <= 0:
            raise errors.dialog(f"Qty. per Unit of Measure must be greater than 0 in {owner} Unit of Measure "
                                f"{owner} No.='{record[owner + ' No.']}',Code='{record['Code']}'.")
        parent = session.find(owner, (record[f"{owner} No."],))
        if parent is None:
            raise errors.record_not_found(owner, [("No.", record[f"{owner} No."])])
        if parent["Base Unit of Measure"] == record["Code"] and quantity != 1:
            raise errors.dialog(f"Qty. per Unit of Measure must be 1 for the base unit of measure of {owner} "
                                f"{parent['No.']}.")
    return check


def _group_code(session: Session, record: dict) -> str:
    return f"{record['Source Type'].upper()} {record['Source No.']} UOM GR"


def register(cat: Catalog) -> None:
    unit = cat.add_table(Table(204, "Unit of Measure", [
        Column("Code", "code", 10),
        Column("Description", "text", 50),
        Column("International Standard Code", "code", 10),
        Column("Symbol", "text", 10),
    ], key=("Code",)))
    category = cat.add_table(code_table(5722, "Item Category", 20, "Description", 100))
    tax_group = cat.add_table(code_table(321, "Tax Group", 20, "Description", 100))
    product_group = cat.add_table(code_table(251, "Gen. Product Posting Group", 20, "Description", 100))
    inventory_group = cat.add_table(code_table(94, "Inventory Posting Group", 20, "Description", 100))

    item = cat.add_table(Table(27, "Item", [
        Column("No.", "code", 20),
        Column("Description", "text", 100),
        Column("Description 2", "text", 50),
        Column("Type", "option", options=("Inventory", "Service", "Non-Inventory")),
        Column("Item Category Code", "code", 20, relation="Item Category"),
        Column("Blocked", "bool"),
        Column("GTIN", "code", 14),
        Column("Unit Price", "decimal"),
        Column("Price Includes VAT", "bool"),
        Column("Unit Cost", "decimal"),
        Column("Tax Group Code", "code", 20, relation="Tax Group"),
        Column("Base Unit of Measure", "code", 10, relation="Unit of Measure"),
        Column("Gen. Prod. Posting Group", "code", 20, relation="Gen. Product Posting Group"),
        Column("Inventory Posting Group", "code", 20, relation="Inventory Posting Group"),
        Column("Unit Volume", "decimal"),
        Column("Gross Weight", "decimal"),
        Column("Vendor No.", "code", 20),
        Column("Vendor Item No.", "text", 50),
    ], key=("No.",), series=NumberSeries("1000", 10)))

    ledger = cat.add_table(Table(32, "Item Ledger Entry", [
        Column("Entry No.", "integer"),
        Column("Item No.", "code", 20, relation="Item"),
        Column("Posting Date", "date"),
        Column("Entry Type", "option", options=ENTRY_TYPES),
        Column("Document No.", "code", 20),
        Column("Description", "text", 100),
        Column("Quantity", "decimal"),
    ], key=("Entry No.",), indexes=(("Item No.",),)))

    resource = cat.add_table(Table(156, "Resource", [
        Column("No.", "code", 20),
        Column("Name", "text", 100),
        Column("Type", "option", options=("Person", "Machine")),
        Column("Base Unit of Measure", "code", 10, relation="Unit of Measure"),
        Column("Unit Price", "decimal"),
        Column("Unit Cost", "decimal"),
        Column("Capacity", "decimal"),
        Column("Vendor No.", "code", 20),
        Column("Blocked", "bool"),
        Column("Gen. Prod. Posting Group", "code", 20, relation="Gen. Product Posting Group"),
        Column("VAT Prod. Posting Group", "code", 20),
    ], key=("No.",), series=NumberSeries("R0010", 10)))

    item_unit = cat.add_table(Table(5404, "Item Unit of Measure", [
        Column("Item No.", "code", 20, relation="Item"),
        Column("Code", "code", 10, relation="Unit of Measure"),
        Column("Qty. per Unit of Measure", "decimal"),
    ], key=("Item No.", "Code"), indexes=(("Item No.",),)))
    resource_unit = cat.add_table(Table(205, "Resource Unit of Measure", [
        Column("Resource No.", "code", 20, relation="Resource"),
        Column("Code", "code", 10, relation="Unit of Measure"),
        Column("Qty. per Unit of Measure", "decimal"),
    ], key=("Resource No.", "Code"), indexes=(("Resource No.",),)))
    unit_group = cat.add_table(Table(5400, "Unit Group", [
        Column("Source Type", "option", options=("Item", "Resource")),
        Column("Source Id", "guid"),
        Column("Source No.", "code", 20),
    ], key=("Source Type", "Source Id"), indexes=(("Source Id",),)))
    cat.on("Item", **_keep_units("Item", "Item Unit of Measure", "Item"))
    cat.on("Resource", **_keep_units("Resource", "Resource Unit of Measure", "Resource"))
    for owner, table_name in (("Item", "Item Unit of Measure"), ("Resource", "Resource Unit of Measure")):
        check = _check_unit(owner)
        cat.on(table_name, on_insert=check, on_modify=lambda s, old, new, check=check: check(s, new))

    # -- item triggers: an inventory given in-process becomes a ledger entry; no deleting posted history ----

    def post_requested_inventory(session: Session, record: dict, opening: bool) -> None:
        target = session.scratch.pop("inventory", None)
        if target is None:
            return
        delta = round(target - inventory_of(session, record["No."]), 5)
        if delta:
            post_item_ledger(session, record["No."], delta,
                             description="Opening inventory" if opening else "Inventory adjustment")

    def refuse_delete_with_entries(session: Session, record: dict) -> None:
        if session.find_all("Item Ledger Entry", ("Item No.",), (record["No."],)):
            raise errors.dialog(f"You cannot delete Item {record['No.']} because it has ledger entries in a "
                                "fiscal year that has not been closed yet.")

    cat.on("Item", after_insert=lambda s, r: post_requested_inventory(s, r, True),
           after_modify=lambda s, old, new: post_requested_inventory(s, new, False),
           on_delete=refuse_delete_with_entries)

    # -- API v2.0 ---------------------------------------------------------------------------------------
    cat.add_api(View("unitsOfMeasure", unit, [
        _id(),
        Field("code", "Code"),
        Field("displayName", "Description"),
        Field("internationalStandardCode", "International Standard Code"),
        Field("symbol", "Symbol"),
        _last_modified(),
        *_api_system_fields(),
    ], entity_name="unitOfMeasure"))
    cat.add_api(View("itemCategories", category, [
        _id(), Field("code", "Code"), Field("displayName", "Description"), _last_modified(), *_api_system_fields(),
    ], entity_name="itemCategory"))
    cat.add_api(View("taxGroups", tax_group, [
        _id(), Field("code", "Code"), Field("displayName", "Description"),
        Computed("taxType", "option", lambda s, r: "Sales Tax", options=("Sales Tax", "VAT")),
        _last_modified(), *_api_system_fields(),
    ], entity_name="taxGroup"))
    cat.add_api(View("generalProductPostingGroups", product_group, [
        _id(), Field("code", "Code"), Field("description", "Description"), _last_modified(), *_api_system_fields(),
    ], entity_name="generalProductPostingGroup"))
    cat.add_api(View("inventoryPostingGroups", inventory_group, [
        _id(), Field("code", "Code"), Field("description", "Description"), _last_modified(), *_api_system_fields(),
    ], entity_name="inventoryPostingGroup"))

    cat.add_api(View("items", item, [
        _id(),
        Field("number", "No."),
        Field("displayName", "Description"),
        Field("displayName2", "Description 2"),
        Field("type", "Type"),
        *_related("itemCategory", "Item Category Code", "Item Category", "Item Category"),
        Field("blocked", "Blocked"),
        Field("gtin", "GTIN"),
        Inventory(),
        Field("unitPrice", "Unit Price"),
        Field("priceIncludesTax", "Price Includes VAT"),
        Field("unitCost", "Unit Cost"),
        *_related("taxGroup", "Tax Group Code", "Tax Group", "Tax Group"),
        *_related("baseUnitOfMeasure", "Base Unit of Measure", "Unit of Measure", "Unit of Measure"),
        *_related("generalProductPostingGroup", "Gen. Prod. Posting Group", "Gen. Product Posting Group",
                  "General Product Posting Group"),
        *_related("inventoryPostingGroup", "Inventory Posting Group", "Inventory Posting Group",
                  "Inventory Posting Group"),
        _last_modified(),
        Field("unitVolume", "Unit Volume", exposed=False),
        Field("grossWeight", "Gross Weight", exposed=False),
        Field("vendorNo", "Vendor No.", exposed=False),
        Field("vendorItemNo", "Vendor Item No.", exposed=False),
        *_api_system_fields(),
    ], entity_name="item"))

    cat.add_api(View("itemLedgerEntries", ledger, [
        _id(),
        Field("entryNumber", "Entry No."),
        Field("itemNumber", "Item No."),
        Field("postingDate", "Posting Date"),
        Field("entryType", "Entry Type"),
        Field("documentNumber", "Document No."),
        Field("description", "Description"),
        Field("quantity", "Quantity"),
        _last_modified(),
        *_api_system_fields(),
    ], entity_name="itemLedgerEntry", insertable=False, modifiable=False, deletable=False))

    # -- OData v4 pages ------------------------------------------------------------------------------------
    cat.add_page(PageView("ItemCard", item, [
        Field("No", "No."),
        Field("Description", "Description"),
        Field("Unit_Volume", "Unit Volume"),
        Field("Gross_Weight", "Gross Weight"),
        Field("Vendor_No", "Vendor No."),
        Field("Vendor_Item_No", "Vendor Item No."),
        Field("Blocked", "Blocked"),
        *page_system_fields(),
    ]))
    cat.add_page(PageView("Resources", resource, [
        Field("No", "No."),
        Field("Name", "Name"),
        Field("Type", "Type"),
        Field("Base_Unit_of_Measure", "Base Unit of Measure"),
        Field("Unit_Price", "Unit Price"),
        Field("Unit_Cost", "Unit Cost"),
        Field("Capacity", "Capacity"),
        Field("Vendor_No", "Vendor No."),
        Field("Blocked", "Blocked"),
        Field("Gen_Prod_Posting_Group", "Gen. Prod. Posting Group"),
        Field("VAT_Prod_Posting_Group", "VAT Prod. Posting Group"),
        *page_system_fields(),
    ]))
    for service, table, owner in (("ItemUnitsOfMeasure", item_unit, "Item"),
                                  ("ResourceUnitsOfMeasure", resource_unit, "Resource")):
        cat.add_page(PageView(service, table, [
            Field(f"{owner}_No", f"{owner} No."),
            Field("Code", "Code"),
            Field("Qty_per_Unit_of_Measure", "Qty. per Unit of Measure"),
            # the extension's field: the item's or resource's SystemId, which its unit group names as Source Id
            Computed(f"{owner}_System_Id", "guid", lambda s, r, owner=owner: (
                s.find(owner, (r[f"{owner} No."],)) or {}).get("SystemId")),
            *page_system_fields(),
        ]))
    cat.add_page(PageView("UnitGroups", unit_group, [
        Field("Source_Type", "Source Type"),
        Field("Source_Id", "Source Id"),
        Field("Source_No", "Source No."),
        Computed("Code", "code", _group_code),
        *page_system_fields(),
    ], insertable=False, modifiable=False, deletable=False))
