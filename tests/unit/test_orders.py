"""Pure parts of sales order creation: descriptions as lines, the order discount."""

from __future__ import annotations

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
