"""Pure parts of sales orders: descriptions as lines, the order discount, the two-way mode's mapping."""

from __future__ import annotations

from sync.mappings import builtin_mappings
from sync.model import Direction
from sync.orders import SalesOrderProcess, text_lines


def test_a_memo_becomes_lines_of_at_most_100_characters_one_group_per_memo_line():
    memo = "a" * 250 + "\r\n\nsecond line\n  " + "b" * 100
    assert text_lines(memo) == ["a" * 100, "a" * 100, "a" * 50, "second line", "b" * 100]
    assert text_lines("") == []


def test_the_order_discount_is_the_line_total_less_the_total_before_freight():
    discount = SalesOrderProcess.invoice_discount
    assert discount({"discountamount": 0, "discountpercentage": 0, "totallineitemamount": 500}) == 0
    # Dataverse's own total wins when it has one
    assert discount({"discountamount": 20, "totallineitemamount": 500, "totalamountlessfreight": 470}) == 30
    # else: the percentage of the line total, then the amount
    assert discount({"discountamount": 20, "discountpercentage": 10, "totallineitemamount": 500,
                     "totalamountlessfreight": None}) == 70


def test_two_way_mode_makes_salesorder_order_bidirectional_on_released_and_submitted_orders_only():
    def orders(**mode):
        return next(m for m in builtin_mappings(**mode) if m.name == "SALESORDER-ORDER")

    one_way, two_way = orders(), orders(two_way_orders=True)
    assert (one_way.direction, one_way.bc_filter, one_way.crm_filter) == (Direction.FROM_CRM, "", "")
    assert (two_way.direction, two_way.bc_filter, two_way.crm_filter) == (
        Direction.BIDIRECTIONAL, "status eq 'Open'", "statecode eq 1")  # API v2.0's Open is Released
    assert two_way.dependencies == one_way.dependencies
    # the connection check asks for what the mode needs: creating Sales orders and their lines in two-way mode only
    assert "salesorderdetail" not in {t.logical_name for t in one_way.process.creates if hasattr(t, "logical_name")}
    assert "salesorderdetail" in {t.logical_name for t in two_way.process.creates if hasattr(t, "logical_name")}
    # the unit mode's dependencies stay
    assert "ITEM UOM" in orders(unit_groups=True, two_way_orders=True).dependencies
