"""Unit-group mode (BCSYNC_UNIT_MODE=unit-groups) end to end: UNIT GROUP, ITEM UOM and RESOURCE UOM, products in
their own unit groups, a price list item per unit, orders in any unit of the product's group, and the refusal of
couplings of both modes."""

from __future__ import annotations

from sync.runs import JobStatus, RunStatus

from .conftest import job
from .test_sales_orders import bc_lines, submitted_order

UNIT_GROUPS = {"BCSYNC_UNIT_MODE": "unit-groups"}


def seed(env):
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}, {"code": "BOX", "displayName": "Box"},
                                   {"code": "PALLET", "displayName": "Pallet"}, {"code": "HOUR", "displayName": "Hour"},
                                   {"code": "DAY", "displayName": "Day"}])
    [bike] = env.bc.seed("items", [{"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS",
                                    "unitPrice": 100}])
    env.bc.seed("ItemUnitsOfMeasure", [{"Item_No": "1000", "Code": "BOX", "Qty_per_Unit_of_Measure": 12}])
    env.bc.seed("Resources", [{"No": "R0010", "Name": "Installation", "Base_Unit_of_Measure": "HOUR",
                               "Unit_Price": 80}])
    env.bc.seed("ResourceUnitsOfMeasure", [{"Resource_No": "R0010", "Code": "DAY", "Qty_per_Unit_of_Measure": 8}])
    return bike


def groups(env):
    return {g["name"]: g for g in env.dv.rows("uomschedule")}


def units_of(env, group):
    return {u["name"]: u for u in env.dv.rows("uom") if u["uomscheduleid"] == group["uomscheduleid"]}


def products(env):
    return {p["productnumber"]: p for p in env.dv.rows("product")}


def prices(env):
    names = {u["uomid"]: u["name"] for u in env.dv.rows("uom")}
    numbers = {p["productid"]: p["productnumber"] for p in env.dv.rows("product")}
    return {(numbers[p["productid"]], names[p["uomid"]]): p["amount"] for p in env.dv.rows("productpricelevel")}


def test_a_full_sync_gives_each_item_and_resource_its_unit_group_with_every_unit_and_a_price_per_unit(env):
    env.configure(**UNIT_GROUPS)
    bike = seed(env)
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert {j.mapping for j in report.jobs} >= {"UNIT GROUP", "ITEM UOM", "RESOURCE UOM"}
    assert "UNIT OF MEASURE" not in {j.mapping for j in report.jobs}

    assert [f.message for f in env.errors()] == []
    found = groups(env)
    assert set(found) == {"ITEM 1000 UOM GR", "RESOURCE R0010 UOM GR"}     # no NAV <code> groups
    item_units = units_of(env, found["ITEM 1000 UOM GR"])
    # the group's own base unit carries its name, as Business Central names it; the units of measure hold their
    # quantity of base units
    assert {n: u["quantity"] for n, u in item_units.items()} == {"ITEM 1000 UOM GR": 1, "PCS": 1, "BOX": 12}
    assert {n: u["quantity"] for n, u in units_of(env, found["RESOURCE R0010 UOM GR"]).items()} == {
        "RESOURCE R0010 UOM GR": 1, "HOUR": 1, "DAY": 8}

    product = products(env)
    assert product["1000"]["defaultuomscheduleid"] == found["ITEM 1000 UOM GR"]["uomscheduleid"]
    assert product["1000"]["defaultuomid"] == item_units["PCS"]["uomid"]
    assert product["R0010"]["defaultuomscheduleid"] == found["RESOURCE R0010 UOM GR"]["uomscheduleid"]
    assert prices(env) == {("1000", "PCS"): 100, ("1000", "BOX"): 1200, ("R0010", "HOUR"): 80, ("R0010", "DAY"): 640}

    # a price change reprices every unit
    env.bc.update("items", bike, {"unitPrice": 110})
    env.sync()
    assert prices(env)[("1000", "BOX")] == 1320 and prices(env)[("1000", "PCS")] == 110


def test_a_unit_added_to_an_item_arrives_with_its_price_on_a_scheduled_run(env):
    env.configure(**UNIT_GROUPS)
    seed(env)
    env.full_sync()
    env.bc.seed("ItemUnitsOfMeasure", [{"Item_No": "1000", "Code": "PALLET", "Qty_per_Unit_of_Measure": 480}])
    report = env.sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert job(report, "ITEM UOM:to-crm").counts.inserted == 1
    units = units_of(env, groups(env)["ITEM 1000 UOM GR"])
    assert units["PALLET"]["quantity"] == 480
    assert prices(env)[("1000", "PALLET")] == 48000

    # its quantity changes in Business Central: the unit and its price follow
    pallet = next(u for u in env.bc.rows("ItemUnitsOfMeasure") if u["Code"] == "PALLET")
    env.bc.update("ItemUnitsOfMeasure", pallet["SystemId"], {"Qty_per_Unit_of_Measure": 500})
    env.sync()
    assert units_of(env, groups(env)["ITEM 1000 UOM GR"])["PALLET"]["quantity"] == 500
    assert prices(env)[("1000", "PALLET")] == 50000
    assert len(env.couplings("ITEM UOM")) == 3 and env.errors() == []


def test_a_sales_order_in_a_unit_other_than_the_base_unit_keeps_its_unit(env, cli):
    env.configure(**UNIT_GROUPS)
    seed(env)
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    env.full_sync()
    adatum = next(a["accountid"] for a in env.dv.rows("account") if a["name"] == "Adatum")
    bike = products(env)["1000"]
    box = units_of(env, groups(env)["ITEM 1000 UOM GR"])["BOX"]
    order = submitted_order(env, [{"productid": bike["productid"], "uomid": box["uomid"], "quantity": 2,
                                   "priceperunit": 1200, "ispriceoverridden": True}], customer=adatum)
    code, out, err = cli("orders", "create", order)
    assert code == 0, out + err
    [created] = env.bc.rows("salesOrders")
    assert bc_lines(env, created["id"]) == [("Item", "1000", "Bicycle", 2, 1200)]
    [line] = [line for line in env.bc.rows("salesOrderLines") if line["documentId"] == created["id"]]
    assert line["unitOfMeasureCode"] == "BOX"

    # posted, its invoice line in Sales is in the box too
    env.bc.post_document("salesOrders", created["id"])
    env.sync(["POSTEDSALESINV-INV"])
    [detail] = env.dv.rows("invoicedetail")
    assert (detail["productid"], detail["uomid"], detail["quantity"]) == (bike["productid"], box["uomid"], 2)

    # a unit of another product's group is refused, naming both
    install = units_of(env, groups(env)["RESOURCE R0010 UOM GR"])["DAY"]
    other = submitted_order(env, [{"productid": bike["productid"], "uomid": install["uomid"], "quantity": 1,
                                   "priceperunit": 100, "ispriceoverridden": True}], customer=adatum, name="PO 4712")
    assert cli("orders", "create", other)[0] == 1
    failure = next(f for f in env.errors() if f.source_id == other)
    assert failure.field == "uomid" and "R0010" in failure.message and "1000" in failure.message


def test_couplings_of_the_other_unit_mode_stop_the_unit_jobs_until_they_are_removed(env, cli):
    seed(env)
    legacy = env.full_sync(["UNIT OF MEASURE"])                        # legacy mode, the default
    assert legacy.run.status is RunStatus.DONE and env.couplings("UNIT OF MEASURE")

    env.configure(**UNIT_GROUPS)
    report = env.full_sync()
    assert report.run.status is not RunStatus.DONE
    refused = job(report, "UNIT GROUP:to-crm")
    assert refused.status is JobStatus.FAILED
    assert "legacy" in refused.message and "UNIT OF MEASURE" in refused.message and "uncouple" in refused.message
    assert job(report, "ITEM-PRODUCT:to-crm").status is not JobStatus.DONE
    assert not any(g.startswith("ITEM ") for g in groups(env))        # nothing written in the other mode
    assert job(report, "CUSTOMER:to-crm").status is JobStatus.DONE     # mappings without units run

    code, out, _ = cli("uncouple", "UNIT OF MEASURE", "--all")
    assert code == 0 and "Removed all 5" in out
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert "ITEM 1000 UOM GR" in groups(env)

    # and back: the unit-group couplings stop legacy mode in turn
    env.configure(BCSYNC_UNIT_MODE="legacy")
    report = env.full_sync(["UNIT OF MEASURE"])
    assert "UNIT GROUP" in job(report, "UNIT OF MEASURE:to-crm").message
