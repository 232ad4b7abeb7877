"""The two pricing experiences (BCSYNC_PRICING): which mappings each catalogue holds, as Business Central defines
them, the refusal of couplings of the other experience, and the rules of a price list's currency."""

import datetime as dt
from types import SimpleNamespace

import pytest

from sync.errors import ConfigurationError, RecordError
from sync.mappings import Catalog, builtin_mappings, builtin_names, mode_setting
from sync.model import Convert, Direction, FieldMapping, Side
from sync.planner import plan
from sync.ports import Coupling, Record
from sync.rules import Written
from sync.rules.prices import Price, PriceListRules, carried, list_currency
from sync.rules.units import refuse_mixed_modes
from sync.values import plain_converter
from tests.fakes import FakeClock, FakeCouplings, FakeState
from tests.unit import test_unit_modes as unit_modes

LEGACY = {"CUSTPRCGRP-PRICE", "SALESPRC-PRODPRICE"}
EXTENDED = {"PLHEADER-PRICE", "PLLINE-PRODPRICE"}


def test_extended_pricing_replaces_the_legacy_price_mappings_as_business_central_defines_them():
    catalog = Catalog(builtin_mappings(extended_pricing=True))
    assert EXTENDED <= set(catalog.names()) and not LEGACY & set(catalog.names())
    assert LEGACY <= set(Catalog(builtin_mappings()).names()) and not EXTENDED & set(Catalog(builtin_mappings()).names())
    assert EXTENDED | LEGACY <= set(builtin_names())
    header, line = catalog["PLHEADER-PRICE"], catalog["PLLINE-PRODPRICE"]
    assert (header.direction, line.direction) == (Direction.TO_CRM, Direction.TO_CRM)
    assert header.dependencies == ("CURRENCY", "ITEM-PRODUCT") and line.dependencies == ("PLHEADER-PRICE", "ITEM-PRODUCT")
    assert header.sync_only_coupled and not line.sync_only_coupled
    assert header.bc_filter == "Price_Type eq 'Sale' and Amount_Type eq 'Price'"
    assert line.bc_filter == ("Price_Type eq 'Sale' and Amount_Type eq 'Price' and (Asset_Type eq 'Item' or "
                              "Asset_Type eq 'Resource') and Minimum_Quantity eq 0")
    assert {(f.bc, f.crm) for f in header.fields} == {
        ("Code", "name"), ("Description", "description"), ("Currency_Code", "transactioncurrencyid"),
        ("Starting_Date", "begindate"), ("Ending_Date", "enddate")}
    assert {(f.bc, f.crm, f.constant) for f in line.fields} == {
        ("Price_List_Code", "pricelevelid", None), ("Currency_Code", "transactioncurrencyid", None),
        (None, "pricingmethodcode", 1), ("Unit_Price", "amount", None)}
    order = [j.job_id for j in plan(catalog)]
    assert order.index("CURRENCY:to-crm") < order.index("PLHEADER-PRICE:to-crm") < order.index("PLLINE-PRODPRICE:to-crm")
    assert order.index("ITEM-PRODUCT:to-crm") < order.index("PLHEADER-PRICE:to-crm")
    # both unit modes
    assert EXTENDED <= set(Catalog(builtin_mappings(unit_groups=True, extended_pricing=True)).names())


def test_a_mapping_not_in_use_names_the_setting_that_decides():
    assert mode_setting("PLHEADER-PRICE") == mode_setting("SALESPRC-PRODPRICE") == "BCSYNC_PRICING"
    assert mode_setting("UNIT GROUP") == "BCSYNC_UNIT_MODE" and mode_setting("SALESPEOPLE") == "BCSYNC_OWNERSHIP_MODEL"


def test_dates_reach_sales_without_business_centrals_blank_date():
    to_crm = plain_converter(FieldMapping("Starting_Date", "begindate", Direction.TO_CRM, Convert.DATE), Side.CRM)
    assert to_crm("2026-01-01") == "2026-01-01" and to_crm("0001-01-01") is None and to_crm(None) is None
    to_bc = plain_converter(FieldMapping("Starting_Date", "begindate", Direction.TO_CRM, Convert.DATE), Side.BC)
    assert to_bc(None) == "0001-01-01" and to_bc("2026-01-01T00:00:00Z") == "2026-01-01"


def context(extended: bool, mapping: str, couplings: FakeCouplings, state: FakeState, clock: FakeClock):
    return unit_modes.context(False, mapping, couplings, state, clock, extended_pricing=extended)


def test_couplings_of_the_other_pricing_experience_stop_the_price_jobs_only():
    clock = FakeClock()
    state, couplings = FakeState(clock), FakeCouplings()
    legacy = Coupling("CUSTPRCGRP-PRICE", "bc-retail", "crm-retail")
    couplings.save_many([legacy])
    for mapping in EXTENDED:
        with pytest.raises(ConfigurationError, match="extended pricing experience.*BCSYNC_PRICING.*CUSTPRCGRP-PRICE"
                                                     ".*uncouple"):
            refuse_mixed_modes(context(True, mapping, couplings, state, clock))
    for mapping in ("ITEM-PRODUCT", "CUSTOMER", "POSTEDSALESINV-INV"):
        refuse_mixed_modes(context(True, mapping, couplings, state, clock))
    refuse_mixed_modes(context(False, "SALESPRC-PRODPRICE", couplings, state, clock))   # its own couplings
    couplings.delete_many([legacy])
    refuse_mixed_modes(context(True, "PLHEADER-PRICE", couplings, state, clock))
    couplings.save_many([Coupling("PLLINE-PRODPRICE", "bc-line", "crm-item")])
    with pytest.raises(ConfigurationError, match="legacy pricing experience.*PLLINE-PRODPRICE"):
        refuse_mixed_modes(context(False, "CUSTPRCGRP-PRICE", couplings, state, clock))


def line(number: str, currency: str = "", **more) -> Price:
    return Price(Record(f"id-{number}", {"Price_List_Code": "S1", "Line_No": number, "Asset_Type": "Item",
                                         "Asset_No": "1000", "Currency_Code": currency, **more}), legacy=False)


class Resolver:
    def coupled(self, mapping, key, codes):
        return {c: f"crm-{c}" for c in codes if c != "GBP"}


def ctx():
    return SimpleNamespace(resolver=Resolver(), cache={})


def test_a_price_list_takes_its_first_price_currency_which_every_price_must_share(monkeypatch):
    usd = "0b2f6a3e-1c4d-4e5f-8a9b-0c1d2e3f4a5b"
    monkeypatch.setattr("sync.rules.prices.CurrencyRules.lcy_currency_id", lambda self, c: usd)
    assert list_currency(ctx(), "Price list S1", [line("10000", "EUR"), line("20000", "EUR")], None) == "crm-EUR"
    assert list_currency(ctx(), "Price list S1", [], None) == usd          # no prices: the local currency
    assert list_currency(ctx(), "Price list S1", [line("10000")], None) == usd
    with pytest.raises(RecordError, match="line 20000 .*is in currency EUR, but the list's first price is in LCY") as e:
        list_currency(ctx(), "Price list S1", [line("10000"), line("20000", "EUR")], None)
    assert e.value.field == "Currency Code" and not e.value.skippable   # its lines' change retries it
    with pytest.raises(RecordError, match="GBP is not coupled"):
        list_currency(ctx(), "Price list S1", [line("10000", "GBP")], None)
    held = Record("pl", {"name": "S1", "transactioncurrencyid": usd.upper()})
    assert list_currency(ctx(), "Price list S1", [line("10000")], held) == usd   # ids compare without case
    with pytest.raises(RecordError, match="Price list S1: its Sales price list 'S1' is in another currency") as e:
        list_currency(ctx(), "Price list S1", [line("10000", "EUR")], held)
    assert e.value.code == "CurrencyChanged"


def test_legacy_prices_carried_are_those_in_force_today_for_any_quantity_and_no_variant():
    today = dt.date.today()
    price = {"Starting_Date": "0001-01-01", "Ending_Date": "0001-01-01", "Minimum_Quantity": 0, "Variant_Code": ""}
    assert carried(Record("p", price)) is None
    later, earlier = (today + dt.timedelta(days=1)).isoformat(), (today - dt.timedelta(days=1)).isoformat()
    assert carried(Record("p", {**price, "Starting_Date": later})) == f"not in force before {later}"
    assert carried(Record("p", {**price, "Ending_Date": earlier})) == f"ended on {earlier}"
    assert carried(Record("p", {**price, "Ending_Date": today.isoformat()})) is None
    assert carried(Record("p", {**price, "Minimum_Quantity": 5})) == "for a minimum quantity of 5"
    assert carried(Record("p", {**price, "Variant_Code": "RED"})) == "for variant RED"


def test_a_written_list_pushes_only_the_lines_plline_prodprice_carries():
    rows = {"l1": {"Asset_Type": "Item", "Asset_No": "1000", "Minimum_Quantity": 0},
            "l2": {"Asset_Type": "Item", "Asset_No": "1000", "Minimum_Quantity": 10},   # a minimum quantity
            "l3": {"Asset_Type": "Item", "Asset_No": "", "Minimum_Quantity": 0},        # every item
            "l4": {"Asset_Type": "Item_Discount_Group", "Asset_No": "D", "Minimum_Quantity": 0},
            "l5": {"Asset_Type": "Resource", "Asset_No": "R0010", "Minimum_Quantity": 0}}
    pushed = []
    context = SimpleNamespace(cache={"list_prices": {"S1": [Price(Record(i, {"Price_List_Code": "S1", **v}), False)
                                                            for i, v in rows.items()]}},
                              coupled_first=lambda mapping, ids, rows: pushed.append((mapping, ids)) or ({}, {}))
    header = Record("h", {"Code": "S1"})
    PriceListRules(extended=True).after_write(context, [Written(header, Record("pl", {}), True, None)])
    assert pushed == [("PLLINE-PRODPRICE", ["l1", "l5"])]
