"""Pure parts of quote processing: how a quote is named, which quotes a job picks, how a write's error
becomes the quote's, and the Business Central quote an order's Quote No. names."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sync.errors import ConcurrencyError, NotFoundError, RecordError, ServiceUnavailableError
from sync.model import Side
from sync.orders import coupled_quote_number
from sync.ports import Coupling, Record
from sync.quotes import MAPPING, SalesQuoteProcess, quote_label
from sync.tables import BC_SALES_QUOTE
from tests.fakes import FakeClock, FakeCouplings, FakeEndpoint


def test_a_quote_is_named_by_its_number_revision_and_name():
    quote = Record("q1", {"quotenumber": "QUO-01001-AB12CD", "revisionnumber": 2, "name": "10 bikes"})
    assert quote_label(quote) == "Sales quote QUO-01001-AB12CD revision 2 '10 bikes'"
    assert quote_label(Record("q2", {})) == "Sales quote q2 revision 0 ''"


def test_the_job_picks_active_and_won_quotes_only():
    assert SalesQuoteProcess._picked() == "(statecode eq 1 or statecode eq 2)"


def test_a_write_error_becomes_the_quotes_own_unless_the_service_gave_out():
    as_error = SalesQuoteProcess._as_record_error
    refused = RecordError("Item 1000 is blocked.", field="lineObjectNumber", code="Blocked")
    assert as_error(refused) is refused
    changed = as_error(ConcurrencyError("changed since it was read"))  # tried again at the next run
    assert isinstance(changed, RecordError) and changed.message == "changed since it was read"
    gone = as_error(NotFoundError("Business Central: Sales Quote 1001 does not exist", code="Internal_RecordNotFound"))
    assert isinstance(gone, RecordError) and gone.code == "Internal_RecordNotFound"
    assert as_error(None).code == "NoAnswer"
    with pytest.raises(ServiceUnavailableError):  # the job stops; the quote is not blamed
        as_error(ServiceUnavailableError("503"))


def test_an_orders_quote_no_is_the_number_of_the_quote_its_sales_quote_is_coupled_to():
    bc, couplings = FakeEndpoint(Side.BC, FakeClock()), FakeCouplings()
    job = SimpleNamespace(bc=bc, couplings=couplings)
    made = bc.put(BC_SALES_QUOTE, {"number": "1001"})
    couplings.save_many([Coupling(MAPPING, made, "quote-1")])
    assert coupled_quote_number(job, "quote-1") == "1001"
    assert coupled_quote_number(job, "quote-2") is None          # not processed into a Business Central quote
    bc.delete(BC_SALES_QUOTE, made)
    assert coupled_quote_number(job, "quote-1") is None          # deleted in Business Central
