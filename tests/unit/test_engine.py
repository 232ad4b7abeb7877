"""The engine against in-memory fakes of its ports."""

import dataclasses
import datetime as dt
import uuid

import pytest

from sync import engine as engine_module
from sync.config import MappingOverride, StaticCatalog, apply
from sync.engine import CRM_ID_NAMESPACE, FEED_CURSOR, JobMode, SyncEngine, plan_row
from sync.errors import ConfigurationError, LeaseLost, ServiceUnavailableError
from sync.mappings import CUSTOMER, Catalog, builtin_mappings
from sync.model import DeletionConflictResolution, Direction, Side, UpdateConflictResolution
from sync.ports import Coupling, FeedPage, Record
from sync.rules.currency import BC_COMPANY_INFORMATION, CRM_ORGANIZATION
from sync.tables import BC_CUSTOMER, BC_PAYMENT_TERMS, BC_SALESPERSON, CRM_ACCOUNT, CRM_CURRENCY, CRM_SYSTEMUSER
from tests.fakes import FakeClock, FakeCouplings, FakeEndpoint, FakeErrors, FakeState

TO, FROM = Direction.TO_CRM, Direction.FROM_CRM


class World:
    def __init__(self, catalog=None):
        self.clock = FakeClock()
        self.bc = FakeEndpoint(Side.BC, self.clock, user="bc-integration")
        self.crm = FakeEndpoint(Side.CRM, self.clock, user="crm-integration")
        self.couplings = FakeCouplings()
        self.errors = FakeErrors()
        self.state = FakeState(self.clock)
        self.catalog = catalog or Catalog(builtin_mappings())
        self.engine = SyncEngine(StaticCatalog(self.catalog), self.bc, self.crm, self.couplings, self.errors, self.state,
                                 self.clock, page_size=2)
        self.crm.options[("account", "paymenttermscode")] = {1: "Net 30", 2: "2% 10; Net 30", 3: "Net 45"}
        self.crm.options[("account", "address1_freighttermscode")] = {1: "FOB", 2: "No Charge"}
        # a company in USD and an organisation whose base currency is USD
        self.bc.put(BC_COMPANY_INFORMATION, {"displayName": "CRONUS", "currencyCode": "USD"})
        self.usd = self.crm.put(CRM_CURRENCY, {"isocurrencycode": "USD", "currencyname": "US Dollar",
                                                "exchangerate": 1.0})
        self.crm.put(CRM_ORGANIZATION, {"name": "org", "basecurrencyid": self.usd, "currencydecimalprecision": 2})
        self.jobs = 0

    def user(self, name, email, **extra):
        values = {"fullname": name, "internalemailaddress": email, "mobilephone": "", "isdisabled": False,
                  "islicensed": True, "isintegrationuser": False, **extra}
        return self.crm.put(CRM_SYSTEMUSER, values)

    def customer(self, number, name, **extra):
        values = {"number": number, "displayName": name, "blocked": " ", "salespersonCode": "", "email": "",
                  "paymentTermsId": "00000000-0000-0000-0000-000000000000",
                  "shipmentMethodId": "00000000-0000-0000-0000-000000000000", "creditLimit": 0,
                  "currencyId": "00000000-0000-0000-0000-000000000000", **extra}
        return self.bc.put(BC_CUSTOMER, values)

    def account(self, name, **extra):
        values = {"name": name, "statecode": 0, "customertypecode": 3, **extra}
        return self.crm.put(CRM_ACCOUNT, values)

    def run(self, mapping, direction, full=False):
        self.jobs += 1
        self.clock.tick(120)  # jobs start after the safety margin of earlier changes
        return self.engine.run(mapping, direction, job_id=f"job{self.jobs}",
                               mode=JobMode.FULL if full else JobMode.INCREMENTAL)

    def full_sync(self):
        return {f"{m}:{d.value}": self.run(m, d, full=True)
                for m, d in [("SALESPEOPLE", FROM), ("CURRENCY", TO), ("PAYMENT TERMS", TO), ("SHIPMENT METHOD", TO),
                             ("SHIPPING AGENT", TO), ("CUSTOMER", TO), ("CUSTOMER", FROM)]}


def test_full_sync_creates_salespeople_for_enabled_licensed_non_integration_users_only():
    w = World()
    w.user("Alicia Thornber", "alicia@contoso.com")
    w.user("Disabled Dan", "dan@contoso.com", isdisabled=True)
    w.user("Unlicensed Una", "una@contoso.com", islicensed=False)
    w.user("# Integration", "integration@contoso.com", isintegrationuser=True)
    out = w.run("SALESPEOPLE", FROM, full=True)
    people = list(w.bc.rows(BC_SALESPERSON).values())
    assert [p["values"]["displayName"] for p in people] == ["Alicia Thornber"]
    assert people[0]["values"]["code"] == "SP NO. 00001"
    assert out.counts.inserted == 1 and out.counts.failed == 0


def test_new_salesperson_codes_continue_the_series():
    w = World()
    w.bc.put(BC_SALESPERSON, {"code": "SP NO. 00007", "displayName": "Old", "email": "old@x.com"})
    w.user("A", "a@contoso.com")
    w.user("B", "b@contoso.com")
    w.run("SALESPEOPLE", FROM, full=True)
    codes = sorted(r["values"]["code"] for r in w.bc.rows(BC_SALESPERSON).values())
    assert codes == ["SP NO. 00007", "SP NO. 00008", "SP NO. 00009"]


def test_salesperson_matching_an_existing_user_by_email_is_coupled_not_duplicated():
    w = World()
    sp = w.bc.put(BC_SALESPERSON, {"code": "AT", "displayName": "A. Thornber", "email": "ALICIA@contoso.com"})
    uid = w.user("Alicia Thornber", "alicia@contoso.com")
    out = w.run("SALESPEOPLE", FROM, full=True)
    assert len(w.bc.rows(BC_SALESPERSON)) == 1
    assert out.counts.coupled == 1
    assert w.couplings.all("SALESPEOPLE")[sp].crm_id == uid
    assert w.bc.rows(BC_SALESPERSON)[sp]["values"]["displayName"] == "Alicia Thornber"


def test_customer_owner_comes_from_the_coupled_salesperson():
    w = World()
    uid = w.user("Alicia Thornber", "alicia@contoso.com")
    w.run("SALESPEOPLE", FROM, full=True)
    code = next(iter(w.bc.rows(BC_SALESPERSON).values()))["values"]["code"]
    cid = w.customer("C00010", "Adatum", salespersonCode=code, email="info@adatum.com")
    out = w.run("CUSTOMER", TO, full=True)
    assert out.counts.inserted == 1
    account_id = w.couplings.all("CUSTOMER")[cid].crm_id
    account = w.crm.rows(CRM_ACCOUNT)[account_id]["values"]
    assert account["ownerid"] == uid and account["name"] == "Adatum" and account["customertypecode"] == 3
    assert account["emailaddress1"] == "info@adatum.com"


def test_customer_whose_salesperson_is_not_coupled_fails_naming_record_and_field_then_succeeds_later():
    w = World()
    w.bc.put(BC_SALESPERSON, {"code": "JR", "displayName": "Jim", "email": "jim@contoso.com"})
    cid = w.customer("C00020", "Fabrikam", salespersonCode="JR")
    out = w.run("CUSTOMER", TO, full=True)
    assert out.counts.failed == 1 and out.counts.inserted == 0
    [failure] = w.errors.list("CUSTOMER", TO)
    assert "Customer C00020" in failure.message and "Salesperson Code 'JR'" in failure.message
    assert failure.field == "Salesperson Code" and "SALESPEOPLE" in failure.message
    # the user now exists in Sales and is coupled; the next (scheduled) run retries the customer
    w.user("Jim Rowe", "jim@contoso.com")
    w.run("SALESPEOPLE", FROM, full=True)
    out = w.run("CUSTOMER", TO)
    assert out.counts.inserted == 1 and out.counts.failed == 0
    assert w.errors.list("CUSTOMER", TO) == []
    assert cid in w.couplings.all("CUSTOMER")


def test_our_own_writes_do_not_echo_back_and_nothing_is_rewritten():
    w = World()
    w.customer("C00010", "Adatum")
    w.account("Contoso")
    w.full_sync()
    writes = (w.bc.writes, w.crm.writes)
    for direction in (TO, FROM, TO, FROM):
        out = w.run("CUSTOMER", direction)
        assert out.counts.inserted == out.counts.modified == out.counts.failed == 0
    assert (w.bc.writes, w.crm.writes) == writes
    assert len(w.bc.rows(BC_CUSTOMER)) == 2 and len(w.crm.rows(CRM_ACCOUNT)) == 2


def test_a_change_on_either_side_is_carried_by_the_next_scheduled_run():
    w = World()
    cid = w.customer("C00010", "Adatum", city="Lyon")
    aid = w.account("Contoso", address1_city="Paris")
    w.full_sync()
    bc_aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.bc.edit(BC_CUSTOMER, cid, city="Marseille")
    w.crm.edit(CRM_ACCOUNT, aid, telephone1="+33 1 23 45 67 89")
    assert w.run("CUSTOMER", TO).counts.modified == 1
    assert w.run("CUSTOMER", FROM).counts.modified == 1
    assert w.crm.rows(CRM_ACCOUNT)[bc_aid]["values"]["address1_city"] == "Marseille"
    bc_of_account = w.couplings.by_side[("CUSTOMER", Side.CRM, aid)].bc_id
    assert w.bc.rows(BC_CUSTOMER)[bc_of_account]["values"]["phoneNumber"] == "+33 1 23 45 67 89"


def test_same_field_changed_on_both_sides_is_a_conflict_and_nothing_is_overwritten():
    w = World()
    cid = w.customer("C00010", "Adatum", city="Lyon")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.bc.edit(BC_CUSTOMER, cid, city="Marseille")
    w.crm.edit(CRM_ACCOUNT, aid, address1_city="Nice")
    out = w.run("CUSTOMER", TO)
    assert out.counts.failed == 1
    [failure] = w.errors.list("CUSTOMER", TO)
    assert failure.code == "UpdateConflict" and "City" in failure.message
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["address1_city"] == "Nice"
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["city"] == "Marseille"


def test_different_fields_changed_on_both_sides_are_merged():
    w = World()
    cid = w.customer("C00010", "Adatum", city="Lyon", email="a@adatum.com")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.bc.edit(BC_CUSTOMER, cid, city="Marseille")
    w.crm.edit(CRM_ACCOUNT, aid, emailaddress1="sales@adatum.com")
    assert w.run("CUSTOMER", TO).counts.modified == 1
    assert w.run("CUSTOMER", FROM).counts.modified == 1
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["address1_city"] == "Marseille"
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["emailaddress1"] == "sales@adatum.com"
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["email"] == "sales@adatum.com"
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["city"] == "Marseille"
    assert w.errors.entries == {}


def test_conflict_resolution_send_to_crm_lets_business_central_win():
    catalog = Catalog([m if m.name != "CUSTOMER" else CUSTOMER.with_overrides(
        update_conflict=UpdateConflictResolution.SEND_TO_CRM) for m in builtin_mappings()])
    w = World(catalog)
    cid = w.customer("C00010", "Adatum", city="Lyon")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.bc.edit(BC_CUSTOMER, cid, city="Marseille")
    w.crm.edit(CRM_ACCOUNT, aid, address1_city="Nice")
    assert w.run("CUSTOMER", TO).counts.modified == 1
    w.run("CUSTOMER", FROM)
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["address1_city"] == "Marseille"
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["city"] == "Marseille"


def test_changes_made_in_sales_by_the_integration_user_are_not_synchronised_back():
    w = World()
    cid = w.customer("C00010", "Adatum", city="Lyon")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.crm.edit(CRM_ACCOUNT, aid, by="crm-integration", address1_city="Somewhere")
    w.run("CUSTOMER", FROM)
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["city"] == "Lyon"


def test_accounts_existing_on_both_sides_are_matched_not_duplicated():
    w = World()
    cid = w.customer("C00010", "Adatum Corporation", city="Lyon")
    aid = w.account("adatum corporation", address1_city="Lyon")
    results = w.full_sync()
    assert len(w.crm.rows(CRM_ACCOUNT)) == 1 and len(w.bc.rows(BC_CUSTOMER)) == 1
    assert w.couplings.all("CUSTOMER")[cid].crm_id == aid
    assert results["CUSTOMER:to-crm"].counts.coupled == 1


def test_an_insert_repeated_after_a_lost_answer_couples_the_existing_row():
    w = World()
    cid = w.customer("C00010", "Adatum")
    first = w.run("CUSTOMER", TO, full=True)
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.couplings.delete_many([w.couplings.all("CUSTOMER")[cid]])   # the coupling save was lost
    w.crm.edit(CRM_ACCOUNT, aid, by="someone", name="Renamed in Sales")  # and the row is no longer a name match
    second = w.run("CUSTOMER", TO, full=True)
    assert first.counts.inserted == 1 and second.counts.inserted == 0 and second.counts.failed == 0
    assert len(w.crm.rows(CRM_ACCOUNT)) == 1
    assert w.couplings.all("CUSTOMER")[cid].crm_id == aid


def test_uncoupled_rows_are_ignored_by_scheduled_jobs_under_sync_only_coupled_records():
    w = World()
    w.customer("C00010", "Adatum")
    out = w.run("CUSTOMER", TO)
    assert out.counts.as_dict() == {k: 0 for k in out.counts.as_dict()}
    assert w.crm.rows(CRM_ACCOUNT) == {}


def test_option_codes_couple_by_label_and_unmatched_codes_are_left_blank_with_a_note():
    w = World()
    net30 = w.bc.put(BC_PAYMENT_TERMS, {"code": "NET 30", "displayName": "Net 30 days"})
    cod = w.bc.put(BC_PAYMENT_TERMS, {"code": "COD", "displayName": "Cash on delivery"})
    out = w.run("PAYMENT TERMS", TO, full=True)
    assert out.counts.coupled == 1 and out.counts.skipped == 1
    assert any("COD" in n and "left blank" in n for n in out.notes)
    c1 = w.customer("C00010", "Adatum", paymentTermsId=net30)
    c2 = w.customer("C00020", "Fabrikam", paymentTermsId=cod)
    out = w.run("CUSTOMER", TO, full=True)
    assert out.counts.inserted == 2 and out.counts.failed == 0
    accounts = {w.couplings.all("CUSTOMER")[c].crm_id: c for c in (c1, c2)}
    by_customer = {accounts[a]: r["values"] for a, r in w.crm.rows(CRM_ACCOUNT).items()}
    assert by_customer[c1]["paymenttermscode"] == 1
    assert by_customer[c2].get("paymenttermscode") is None
    assert any("Payment Terms Code" in n and "left blank" in n for n in out.notes)


def test_option_value_read_back_from_sales_becomes_the_coupled_code():
    w = World()
    net45 = w.bc.put(BC_PAYMENT_TERMS, {"code": "NET 45", "displayName": "Net 45 days"})
    w.run("PAYMENT TERMS", TO, full=True)
    cid = w.customer("C00010", "Adatum")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.crm.edit(CRM_ACCOUNT, aid, paymenttermscode=3)
    w.run("CUSTOMER", FROM)
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["paymentTermsId"] == net45


def test_watermark_never_passes_the_job_start_minus_the_margin():
    w = World()
    w.customer("C00010", "Adatum")
    w.run("CUSTOMER", TO, full=True)
    mark = w.state.watermark("CUSTOMER", TO)
    assert mark is not None and mark <= w.clock.now()


def test_record_rejected_by_the_destination_is_logged_and_retried_next_run():
    w = World()
    cid = w.customer("C00010", "Bad Name Ltd")
    w.crm.reject["Bad Name Ltd"] = "The length of the 'name' attribute exceeded the maximum"
    out = w.run("CUSTOMER", TO, full=True)
    assert out.counts.failed == 1
    [failure] = w.errors.list("CUSTOMER", TO)
    assert failure.record == "Customer C00010" and failure.count == 1
    out = w.run("CUSTOMER", TO)   # still failing: retried although unchanged, count goes up
    assert out.counts.failed == 1 and w.errors.list("CUSTOMER", TO)[0].count == 2
    assert w.errors.list("CUSTOMER", TO)[0].skipped          # the same error twice: skipped from now on
    del w.crm.reject["Bad Name Ltd"]
    out = w.run("CUSTOMER", TO)
    assert out.counts.failed == out.counts.inserted == 0     # skipped records are not retried by themselves
    from sync import failures
    failures.retry(w.errors, w.errors.list("CUSTOMER", TO))  # a user restores it
    out = w.run("CUSTOMER", TO)
    assert out.counts.inserted == 1 and w.errors.list("CUSTOMER", TO) == []
    assert cid in w.couplings.all("CUSTOMER")


def test_a_skipped_record_is_tried_again_when_its_source_changes():
    w = World()
    cid = w.customer("C00010", "Bad Name Ltd")
    w.crm.reject["Bad Name Ltd"] = "The length of the 'name' attribute exceeded the maximum"
    w.run("CUSTOMER", TO, full=True)
    w.run("CUSTOMER", TO)
    assert w.errors.list("CUSTOMER", TO)[0].skipped
    w.bc.edit(BC_CUSTOMER, cid, displayName="Good Name Ltd")      # fixed at the source
    out = w.run("CUSTOMER", TO)
    assert out.counts.inserted == 1 and w.errors.list("CUSTOMER", TO) == []


def test_plan_row_three_way_merge():
    src = Record("b1", {"displayName": "New", "city": "Lyon"}, "e2")
    dst = Record("c1", {"name": "Old", "address1_city": "Paris", "customertypecode": 3}, "f2")
    coupling = Coupling("CUSTOMER", "b1", "c1", bc_values={"displayName|name": "Old", "city|address1_city": "Lyon"},
                        crm_values={"displayName|name": "Old", "city|address1_city": "Lyon"})
    plan = plan_row(CUSTOMER, TO, src, dst, coupling, lambda fm, v: v)
    assert plan.action == "update"
    assert plan.values == {"name": "New"}          # the city changed in Sales only: left for the other pass
    assert plan.dst_has_unsynced_changes


def test_coupling_by_match_fills_gaps_both_ways_instead_of_blanking():
    w = World()
    cid = w.customer("C00010", "Adatum Corporation", city="Lyon", phoneNumber="")
    aid = w.account("Adatum Corporation", address1_city="", telephone1="+33 4 00 00 00 00")
    w.full_sync()
    account = w.crm.rows(CRM_ACCOUNT)[aid]["values"]
    customer = w.bc.rows(BC_CUSTOMER)[cid]["values"]
    assert account["address1_city"] == "Lyon" and account["telephone1"] == "+33 4 00 00 00 00"
    assert customer["city"] == "Lyon" and customer["phoneNumber"] == "+33 4 00 00 00 00"
    out = w.run("CUSTOMER", TO), w.run("CUSTOMER", FROM)
    assert all(o.counts.modified == 0 for o in out)


def test_get_from_crm_lets_sales_win_even_when_the_bc_pass_sees_the_conflict_first():
    catalog = Catalog([m if m.name != "CUSTOMER" else CUSTOMER.with_overrides(
        update_conflict=UpdateConflictResolution.GET_FROM_CRM) for m in builtin_mappings()])
    w = World(catalog)
    cid = w.customer("C00010", "Adatum", city="Lyon", phoneNumber="1")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.bc.edit(BC_CUSTOMER, cid, city="BC-City", phoneNumber="2")
    w.crm.edit(CRM_ACCOUNT, aid, address1_city="Sales-City")
    w.run("CUSTOMER", TO)   # writes the phone, loses on the city
    w.run("CUSTOMER", FROM)
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["city"] == "Sales-City"
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["address1_city"] == "Sales-City"
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["telephone1"] == "2"


def test_a_value_cut_to_fit_business_central_is_not_written_back_over_the_longer_original():
    w = World()
    long_name = "The Very Long Named Corporation of Greater Metropolitan Areas and Surrounding Regions Incorporated Ltd"
    aid = w.account(long_name)
    w.full_sync()
    cid = w.couplings.by_side[("CUSTOMER", Side.CRM, aid)].bc_id
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["displayName"] == long_name[:100]
    w.bc.edit(BC_CUSTOMER, cid, phoneNumber="555")
    w.run("CUSTOMER", TO)
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["name"] == long_name
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["telephone1"] == "555"


def test_several_matches_fail_the_record_instead_of_adding_another_row():
    w = World()
    w.account("Contoso")
    w.account("contoso")
    w.customer("C00010", "Contoso")
    out = w.run("CUSTOMER", TO, full=True)
    assert out.counts.failed == 1 and out.counts.inserted == 0
    assert len(w.crm.rows(CRM_ACCOUNT)) == 2
    [failure] = w.errors.list("CUSTOMER", TO)
    assert failure.code == "SeveralMatches" and "2 uncoupled account rows match" in failure.message


def test_matching_only_considers_rows_within_the_other_sides_filter():
    w = World()
    vendor = w.account("Contoso", customertypecode=11)
    cid = w.customer("C00010", "Contoso")
    w.run("CUSTOMER", TO, full=True)
    assert w.couplings.all("CUSTOMER")[cid].crm_id != vendor
    assert len(w.crm.rows(CRM_ACCOUNT)) == 2


def test_the_relationship_type_is_set_on_insert_only():
    w = World()
    cid = w.customer("C00010", "Adatum")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.crm.edit(CRM_ACCOUNT, aid, customertypecode=9)   # a user makes it a reseller
    w.bc.edit(BC_CUSTOMER, cid, city="Oslo")
    w.run("CUSTOMER", TO)
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["customertypecode"] == 9


def test_a_service_failing_mid_page_keeps_what_was_written_and_stops_the_job():
    from sync.errors import ServiceUnavailableError
    from sync.ports import WriteResult
    w = World()
    first, second = w.customer("C00010", "Adatum"), w.customer("C00020", "Fabrikam")
    real_insert = w.crm.insert

    def flaky(table, rows, fields):
        results = real_insert(table, rows[:1], fields)
        return results + [WriteResult(error=ServiceUnavailableError("503")) for _ in rows[1:]]

    w.crm.insert = flaky
    with pytest.raises(ServiceUnavailableError):
        w.run("CUSTOMER", TO, full=True)
    assert list(w.couplings.all("CUSTOMER")) == [first]       # the row that was written is coupled
    assert w.errors.list("CUSTOMER", TO) == []                # a service outage is no record failure
    w.crm.insert = real_insert
    out = w.run("CUSTOMER", TO, full=True)
    assert out.counts.inserted == 1 and len(w.crm.rows(CRM_ACCOUNT)) == 2
    assert set(w.couplings.all("CUSTOMER")) == {first, second}


def test_a_job_out_of_time_stops_at_a_checkpoint_and_a_continuation_finishes_it():
    import datetime as dt
    w = World()
    for i in range(7):
        w.customer(f"C{i:05d}", f"Customer {i}")
    w.clock.tick(120)
    out = w.engine.run("CUSTOMER", TO, job_id="j", mode=JobMode.FULL, deadline=w.clock.now() - dt.timedelta(seconds=1))
    assert not out.complete and out.counts.inserted == 2   # one page of two rows
    more = w.engine.run("CUSTOMER", TO, job_id="j", mode=JobMode.FULL, resume_from=out.checkpoint, counts=out.counts)
    assert more.complete and more.counts.inserted == 7 and len(w.crm.rows(CRM_ACCOUNT)) == 7


def test_currencies_couple_by_iso_code_with_exchange_rates_and_the_local_currency_is_blank():
    from sync.rules.currency import BC_EXCHANGE_RATES
    from sync.tables import BC_CURRENCY
    w = World()
    eur = w.bc.put(BC_CURRENCY, {"code": "EUR", "displayName": "Euro", "symbol": "€"})
    gbp = w.bc.put(BC_CURRENCY, {"code": "GBP", "displayName": "Pound", "symbol": ""})
    w.bc.put(BC_CURRENCY, {"code": "LOC", "displayName": "Loyalty points", "symbol": ""})   # not ISO 4217
    w.bc.put(BC_CURRENCY, {"code": "SEK", "displayName": "Krona", "symbol": "kr"})          # no exchange rate
    existing_gbp = w.crm.put(CRM_CURRENCY, {"isocurrencycode": "GBP", "currencyname": "British Pound",
                                            "exchangerate": 0.5})
    w.bc.put(BC_EXCHANGE_RATES, {"Currency_Code": "EUR", "Starting_Date": "2020-01-01", "Exchange_Rate_Amount": 1,
                                 "Relational_Exch_Rate_Amount": 1.25})
    w.bc.put(BC_EXCHANGE_RATES, {"Currency_Code": "EUR", "Starting_Date": "2099-01-01", "Exchange_Rate_Amount": 1,
                                 "Relational_Exch_Rate_Amount": 9})     # a future rate is not yet in force
    w.bc.put(BC_EXCHANGE_RATES, {"Currency_Code": "GBP", "Starting_Date": "2021-06-01", "Exchange_Rate_Amount": 100,
                                 "Relational_Exch_Rate_Amount": 125})
    out = w.run("CURRENCY", TO, full=True)
    assert out.counts.inserted == 1 and out.counts.coupled == 1 and out.counts.failed == 2
    currencies = {r["values"]["isocurrencycode"]: r["values"] for r in w.crm.rows(CRM_CURRENCY).values()}
    assert currencies["EUR"]["exchangerate"] == 0.8 and currencies["EUR"]["currencysymbol"] == "€"
    assert currencies["GBP"]["exchangerate"] == 0.8 and currencies["GBP"]["currencysymbol"] == "GBP"
    assert currencies["EUR"]["currencyprecision"] == 2
    assert w.couplings.all("CURRENCY")[gbp].crm_id == existing_gbp
    messages = sorted(f.message for f in w.errors.list("CURRENCY", TO))
    assert "'LOC' is not a standard ISO 4217 currency code" in messages[0]
    assert "no exchange rate for SEK" in messages[1]
    # customers: EUR through the coupling, the blank local currency as the USD row, and back
    euro_customer = w.customer("C00010", "Adatum", currencyId=eur)
    local_customer = w.customer("C00020", "Fabrikam")
    w.run("CUSTOMER", TO, full=True)
    accounts = {w.couplings.all("CUSTOMER")[c].crm_id: c for c in (euro_customer, local_customer)}
    by_customer = {accounts[a]: r["values"] for a, r in w.crm.rows(CRM_ACCOUNT).items()}
    assert by_customer[euro_customer]["transactioncurrencyid"] == w.couplings.all("CURRENCY")[eur].crm_id
    assert by_customer[local_customer]["transactioncurrencyid"] == w.usd
    aid = w.couplings.all("CUSTOMER")[euro_customer].crm_id
    w.crm.edit(CRM_ACCOUNT, aid, transactioncurrencyid=w.usd)
    w.run("CUSTOMER", FROM)
    assert w.bc.rows(BC_CUSTOMER)[euro_customer]["values"]["currencyId"] == "00000000-0000-0000-0000-000000000000"


def _coupling_run(w, mapping, direction, **overrides):
    w.jobs += 1
    w.clock.tick(120)
    if overrides:
        w.engine.catalogs = StaticCatalog(Catalog([m.with_overrides(**overrides) if m.name == mapping else m
                                                   for m in w.catalog]))
    return w.engine.run(mapping, direction, job_id=f"job{w.jobs}", mode=JobMode.COUPLE)


def test_a_coupling_job_leaves_the_watermark_so_changes_to_coupled_rows_still_flow():
    w = World()
    cid = w.customer("C00010", "Adatum")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.bc.edit(BC_CUSTOMER, cid, displayName="Adatum Corporation")
    w.clock.tick(600)
    w.customer("C00020", "Litware")                      # a newer row: the coupling job reads past the rename
    _coupling_run(w, "CUSTOMER", TO)                     # ignores the coupled, changed customer
    w.run("CUSTOMER", TO)
    assert w.crm.rows(CRM_ACCOUNT)[aid]["values"]["name"] == "Adatum Corporation"


def test_a_coupling_job_fills_a_matched_pairs_blank_business_central_field_from_sales():
    """Found by the convergence property test: the Sales -> BC coupling job ignored the matched pair that the
    BC -> Sales one had left pending for it, and cleared its mark, so the blank phone was never filled."""
    w = World()
    cid = w.customer("C00010", "Adatum")
    w.account("Adatum", telephone1="111")
    _coupling_run(w, "CUSTOMER", TO)
    _coupling_run(w, "CUSTOMER", FROM)
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["phoneNumber"] == "111"


def test_a_record_that_failed_matching_is_never_created_by_a_scheduled_run():
    w = World()
    cid = w.customer("C00010", "Adatum")
    out = _coupling_run(w, "CUSTOMER", TO, create_new_if_no_match=False)
    assert out.counts.failed == 1 and w.errors.list("CUSTOMER", TO)[0].code == "NoMatch"
    w.engine.catalogs = StaticCatalog(w.catalog)
    w.run("CUSTOMER", TO)                                # retried: still no match, and not created
    assert w.crm.rows(CRM_ACCOUNT) == {} and w.errors.list("CUSTOMER", TO)[0].count == 2
    aid = w.account("Adatum")                            # the counterpart appears: the retry couples it
    w.run("CUSTOMER", TO)
    assert w.couplings.all("CUSTOMER")[cid].crm_id == aid and w.errors.list("CUSTOMER", TO) == []
    assert len(w.crm.rows(CRM_ACCOUNT)) == 1


def test_a_row_matched_by_several_of_ours_is_coupled_to_none_of_them():
    w = World()
    w.account("Contoso", telephone1="1")
    w.account("Contoso", telephone1="2")
    w.customer("C00010", "Contoso", phoneNumber="1")   # matches only the first account by name and phone
    w.customer("C00020", "Contoso")                    # matches both by name
    criteria = MappingOverride(match={"displayName|name": {"priority": 0, "case_sensitive": False},
                                      "phoneNumber|telephone1": {"priority": 0, "case_sensitive": False}})
    w.engine.catalogs = StaticCatalog(Catalog([apply(m, criteria) if m.name == "CUSTOMER" else m for m in w.catalog]))
    out = w.run("CUSTOMER", TO, full=True)
    assert out.counts.coupled == 0 and out.counts.inserted == 0 and out.counts.failed == 2
    assert {f.code for f in w.errors.list("CUSTOMER", TO)} == {"SeveralMatches"}


def test_a_coupling_whose_two_records_were_both_deleted_is_dropped():
    w = World()
    cid = w.customer("C00010", "Adatum")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.crm.delete(CRM_ACCOUNT, aid)
    w.bc.delete(BC_CUSTOMER, cid)
    # the Sales -> BC job reads the Sales change feed and hands the customer to the BC -> Sales pass at
    # once, which finds it gone too
    w.run("CUSTOMER", FROM)
    assert w.couplings.all("CUSTOMER") == {} and w.errors.list_all() == []


def _stopped_after(port, method, job):
    """Runs `job`, which stops right after `port.method` did its work, as a worker dying there would."""
    real = getattr(port, method)

    def stopped(*args):
        real(*args)
        raise ServiceUnavailableError("the worker stopped here")
    setattr(port, method, stopped)
    try:
        with pytest.raises(ServiceUnavailableError):
            job()
    finally:
        setattr(port, method, real)


def test_a_job_that_stops_after_letting_a_deleted_records_failure_go_still_drops_its_coupling():
    """Found by the convergence property test: the failure went before the coupling, so a job stopped in
    between left a coupling of two deleted rows that nothing reported."""
    w = World()
    w.engine.reconcile_every = dt.timedelta(0)              # coupled Business Central ids checked at every run
    cid = w.customer("C00010", "Adatum")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.bc.delete(BC_CUSTOMER, cid)
    w.run("CUSTOMER", TO)                                   # finds the deletion, hands it to Sales -> BC
    w.run("CUSTOMER", FROM)                                 # no deletion-conflict resolution: reported
    assert [f.source_id for f in w.errors.list("CUSTOMER", FROM)] == [aid]
    w.crm.delete(CRM_ACCOUNT, aid)
    _stopped_after(w.errors, "clear_many", lambda: _coupling_run(w, "CUSTOMER", FROM))  # as a full sync does
    _coupling_run(w, "CUSTOMER", FROM)                      # goes on; it reads no deletions itself
    assert w.couplings.all("CUSTOMER") == {} and w.errors.list_all() == []


def test_a_skipped_record_deleted_at_its_source_leaves_the_error_log():
    """Found by the convergence property test: skipped records were never read again, so the failure of one
    deleted since stayed in the error log for ever."""
    w = World()
    w.engine.reconcile_every = dt.timedelta(0)
    cid = w.customer("C00010", "Adatum")
    w.full_sync()
    w.crm.delete(CRM_ACCOUNT, w.couplings.all("CUSTOMER")[cid].crm_id)
    w.run("CUSTOMER", FROM)                                 # the deletion found: the customer's failure
    w.run("CUSTOMER", TO)                                   # the same again: skipped
    [failure] = w.errors.list("CUSTOMER", TO)
    assert failure.skipped and failure.source_id == cid
    w.bc.delete(BC_CUSTOMER, cid)
    w.run("CUSTOMER", TO)
    w.run("CUSTOMER", FROM)
    assert w.errors.list_all() == [] and w.couplings.all("CUSTOMER") == {}


def test_a_restore_repeated_after_its_insert_couples_the_row_restored_instead_of_creating_another():
    """Found by the convergence property test: a restore inserted without matching first, so a job stopped
    after the insert created the customer twice when it ran again."""
    w = World(Catalog([m.with_overrides(deletion_conflict=DeletionConflictResolution.RESTORE)
                       if m.name == "CUSTOMER" else m for m in builtin_mappings()]))
    w.engine.reconcile_every = dt.timedelta(0)
    cid = w.customer("C00010", "Adatum")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.bc.delete(BC_CUSTOMER, cid)
    w.run("CUSTOMER", TO)                                   # finds the deletion, hands it to Sales -> BC
    _stopped_after(w.bc, "insert", lambda: w.run("CUSTOMER", FROM))
    w.run("CUSTOMER", FROM)
    [restored] = w.bc.rows(BC_CUSTOMER)
    assert w.couplings.all("CUSTOMER")[restored].crm_id == aid and w.errors.list_all() == []


def _deleted_in_bc(deletion=DeletionConflictResolution.NONE):
    """A coupled customer deleted in Business Central, the BC -> Sales job having found it; (world, account id)."""
    w = World(Catalog([m.with_overrides(deletion_conflict=deletion) if m.name == "CUSTOMER" else m
                       for m in builtin_mappings()]))
    w.engine.reconcile_every = dt.timedelta(0)
    cid = w.customer("C00010", "Adatum")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.bc.edit(BC_CUSTOMER, cid, email="bc@adatum.com")
    w.crm.edit(CRM_ACCOUNT, aid, emailaddress1="crm@adatum.com")
    w.run("CUSTOMER", TO)                                   # an update conflict: the customer fails
    assert [f.source_id for f in w.errors.list("CUSTOMER", TO)] == [cid]
    w.bc.delete(BC_CUSTOMER, cid)
    w.run("CUSTOMER", TO)
    return w, aid


def test_a_failed_record_deleted_at_its_source_keeps_its_coupling_while_the_other_row_is_there():
    """Found by the convergence property test: letting go the failure of a deleted customer also removed its
    coupling, so the account was created again in Business Central, whatever the deletion-conflict resolution."""
    w, aid = _deleted_in_bc()
    w.run("CUSTOMER", FROM)
    assert w.bc.rows(BC_CUSTOMER) == {} and [c.crm_id for c in w.couplings.all("CUSTOMER").values()] == [aid]
    [failure] = w.errors.list_all()
    assert failure.source_id == aid and failure.code == "DeletionConflict"


def test_a_row_whose_coupling_was_removed_is_not_created_by_a_job_that_stopped_before_clearing_its_mark():
    """Found by the convergence property test: the row stayed marked pending, uncoupled, and the next attempt
    created its counterpart as if the resolution were restore."""
    w, aid = _deleted_in_bc(DeletionConflictResolution.REMOVE_COUPLING)
    _stopped_after(w.couplings, "delete_many", lambda: w.run("CUSTOMER", FROM))
    w.run("CUSTOMER", FROM)
    assert w.bc.rows(BC_CUSTOMER) == {} and w.couplings.all("CUSTOMER") == {} and aid in w.crm.rows(CRM_ACCOUNT)


def test_a_restore_stopped_between_its_couplings_is_completed_by_the_next_attempt():
    """Found by the convergence property test: the old coupling removed and the new one not saved, the row
    restored was left uncoupled."""
    w, aid = _deleted_in_bc(DeletionConflictResolution.RESTORE)
    _stopped_after(w.couplings, "delete_many", lambda: w.run("CUSTOMER", FROM))
    w.run("CUSTOMER", FROM)
    [restored] = w.bc.rows(BC_CUSTOMER)
    assert w.couplings.all("CUSTOMER")[restored].crm_id == aid


def test_the_ids_of_rows_we_create_in_sales_are_name_based_uuids_of_mapping_and_source_id():
    job = World().engine.job("CUSTOMER", "job1")
    for bc_id in ("C00010", "0b0e6a3e-1f2d-4c55-9d3c-2a7e5f9b8c01", "Zoë"):
        assert job.crm_id_for(bc_id) == str(uuid.uuid5(CRM_ID_NAMESPACE, f"CUSTOMER/{bc_id}"))


def _reads(endpoint):
    """Counts the reads of an endpoint from now on."""
    counted = {"read_changed": 0, "read_ids": 0, "changes": 0}
    for name in counted:
        original = getattr(endpoint, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            counted[_name] += 1
            return _original(*args, **kwargs)
        setattr(endpoint, name, wrapper)
    return counted


def test_sales_changes_come_from_the_change_feed_with_the_filter_and_our_own_changes_left_out_in_memory():
    w = World()
    cid = w.customer("C00010", "Adatum", city="Lyon")
    other = w.customer("C00020", "Litware", city="Rome")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    vendor = w.couplings.all("CUSTOMER")[other].crm_id
    w.crm.edit(CRM_ACCOUNT, vendor, customertypecode=11, telephone1="1")   # outside the filter now
    w.crm.edit(CRM_ACCOUNT, aid, by="crm-integration", address1_city="Ours")  # the integration user
    reads = _reads(w.crm)
    assert w.run("CUSTOMER", FROM).counts.modified == 0
    assert reads == {"read_changed": 0, "read_ids": 0, "changes": 1}   # no watermark read, no reconciliation
    w.crm.edit(CRM_ACCOUNT, aid, address1_city="Paris")
    assert w.run("CUSTOMER", FROM).counts.modified == 1
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["city"] == "Paris"
    assert w.bc.rows(BC_CUSTOMER)[other]["values"].get("phoneNumber") != "1"
    # the BC -> Sales job does not touch the feed: one reader, so neither misses what the other read past
    w.run("CUSTOMER", TO)
    assert reads["changes"] == 2


def test_a_filter_the_feed_cannot_apply_keeps_the_watermark_and_takes_only_deletions_from_the_feed():
    w = World()
    cid = w.customer("C00010", "Adatum", city="Lyon")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    reads = _reads(w.crm)
    feed = w.crm.changes
    w.crm.changes = lambda *a, **k: dataclasses.replace(feed(*a, **k), filtered=False)
    w.crm.edit(CRM_ACCOUNT, aid, address1_city="Paris")
    assert w.run("CUSTOMER", FROM).counts.modified == 1
    assert reads["read_changed"] == 1 and reads["changes"] == 1


def test_a_full_sync_leaves_the_feed_and_the_reconciliation_so_the_next_run_checks_nothing_again():
    w = World()
    w.customer("C00010", "Adatum")
    w.account("Contoso")
    w.full_sync()
    bc_reads, crm_reads = _reads(w.bc), _reads(w.crm)
    w.run("CUSTOMER", TO)
    w.run("CUSTOMER", FROM)
    assert bc_reads == {"read_changed": 1, "read_ids": 0, "changes": 0}
    assert crm_reads == {"read_changed": 0, "read_ids": 0, "changes": 1}


def test_the_feed_cursor_is_saved_only_once_its_page_is_dealt_with():
    w = World()
    cid = w.customer("C00010", "Adatum", city="Lyon")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    before = w.state.cursor("CUSTOMER", "feed:crm")
    w.crm.edit(CRM_ACCOUNT, aid, address1_city="Paris")
    w.bc.update = lambda *a, **k: (_ for _ in ()).throw(ServiceUnavailableError("down"))
    with pytest.raises(ServiceUnavailableError):
        w.run("CUSTOMER", FROM)
    assert w.state.cursor("CUSTOMER", "feed:crm") == before    # the change is read again next time
    del w.bc.update
    assert w.run("CUSTOMER", FROM).counts.modified == 1
    assert w.state.cursor("CUSTOMER", "feed:crm") != before


def test_a_sales_deletion_found_by_the_sales_to_bc_job_goes_through_the_bc_to_sales_pass_at_once():
    w = World()
    cid = w.customer("C00010", "Adatum", city="Lyon")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.crm.delete(CRM_ACCOUNT, aid)
    out = w.run("CUSTOMER", FROM)
    assert out.counts.failed == 1
    [failure] = w.errors.list("CUSTOMER", TO)
    assert failure.code == "DeletionConflict" and failure.source_id == cid
    assert w.state.pending("CUSTOMER", TO) == []


def test_the_schedules_look_at_sales_is_one_read_of_the_feed_which_it_leaves_where_it_is():
    w = World()
    cid = w.customer("C00010", "Adatum", city="Lyon")
    w.full_sync()
    aid = w.couplings.all("CUSTOMER")[cid].crm_id
    w.run("CUSTOMER", TO)
    w.run("CUSTOMER", FROM)
    w.clock.tick(120)
    reads = _reads(w.crm)
    assert not w.engine.has_work("CUSTOMER")
    w.crm.edit(CRM_ACCOUNT, aid, by="crm-integration", address1_city="Ours")
    assert not w.engine.has_work("CUSTOMER")
    w.crm.edit(CRM_ACCOUNT, aid, address1_city="Paris")
    assert w.engine.has_work("CUSTOMER")
    assert reads == {"read_changed": 0, "read_ids": 0, "changes": 3}
    assert w.run("CUSTOMER", FROM).counts.modified == 1


def test_salespeople_without_an_email_created_before_a_lost_answer_are_coupled_not_created_again():
    from sync.errors import WriteOutcomeUnknown
    from sync.ports import WriteResult
    w = World()
    w.bc.put(BC_SALESPERSON, {"code": "OLD", "displayName": "Pat Doe", "email": ""})
    twins = [w.user("Pat Doe", ""), w.user("Pat Doe", "")]     # nothing to match them by, and alike
    alicia = w.user("Alicia Thornber", "alicia@contoso.com")
    real_insert = w.bc.insert

    def answer_lost(table, rows, fields):
        real_insert(table, rows, fields)
        return [WriteResult(error=WriteOutcomeUnknown("no answer")) for _ in rows]

    w.bc.insert = answer_lost
    with pytest.raises(WriteOutcomeUnknown):
        w.run("SALESPEOPLE", FROM, full=True)
    assert sorted(p.source_id for p in w.state.pending_inserts("SALESPEOPLE")) == sorted(twins)
    assert len(w.bc.rows(BC_SALESPERSON)) == 3 and w.couplings.all("SALESPEOPLE") == {}
    w.bc.insert = real_insert
    out = w.run("SALESPEOPLE", FROM, full=True)
    assert out.counts.coupled == 2 and out.counts.inserted == 1 and out.counts.failed == 0
    people = w.bc.rows(BC_SALESPERSON)
    assert sorted(p["values"]["code"] for p in people.values()) == ["OLD", "SP NO. 00001", "SP NO. 00002",
                                                                    "SP NO. 00003"]
    coupled = {c.crm_id: people[c.bc_id]["values"]["code"] for c in w.couplings.all("SALESPEOPLE").values()}
    assert coupled == {twins[0]: "SP NO. 00001", twins[1]: "SP NO. 00002", alicia: "SP NO. 00003"}
    assert w.state.pending_inserts("SALESPEOPLE") == []


def test_sales_owner_sets_the_salesperson_a_team_or_the_integration_user_keeps_it_and_others_fail():
    w = World()
    alicia = w.user("Alicia Thornber", "alicia@contoso.com")
    una = w.user("Una Unlicensed", "una@contoso.com", islicensed=False)
    w.run("SALESPEOPLE", FROM, full=True)
    code = next(iter(w.bc.rows(BC_SALESPERSON).values()))["values"]["code"]
    owned = {name: w.account(name, ownerid=owner, owneridtype=kind) for name, owner, kind in [
        ("Alicias", alicia, "systemuser"), ("Teams", "team-1", "team"), ("Ours", "crm-integration", "systemuser"),
        ("Unas", una, "systemuser")]}
    out = w.run("CUSTOMER", FROM, full=True)
    salesperson = {c["values"]["displayName"]: c["values"].get("salespersonCode")
                   for c in w.bc.rows(BC_CUSTOMER).values()}
    assert salesperson == {"Alicias": code, "Teams": None, "Ours": None}
    assert (f"Salesperson Code kept where the owner is a Dataverse team: only systemuser owners map to a "
            f"Salesperson/Purchaser, 1 record(s): account 'Teams' ({owned['Teams']}), team team-1") in out.notes
    [failure] = w.errors.list("CUSTOMER", FROM)
    assert failure.source_id == owned["Unas"] and failure.field == "Salesperson Code"
    assert f"Dataverse systemuser 'Una Unlicensed' ({una}) is not coupled" in failure.message


def test_text_longer_than_its_field_is_cut_with_a_note_or_fails_as_the_mapping_says():
    w = World()
    adatum = w.account("Adatum", telephone1="x" * 45)
    for n in range(11):
        w.account(f"Other {n:02}", telephone1="y" * 31)
    out = w.run("CUSTOMER", FROM, full=True)
    phones = {c["values"]["displayName"]: c["values"]["phoneNumber"] for c in w.bc.rows(BC_CUSTOMER).values()}
    assert phones["Adatum"] == "x" * 30 and phones["Other 10"] == "y" * 30
    # one note for the field, naming the first records with their lengths and counting the rest
    [note] = [n for n in out.notes if n.startswith("Phone No.")]
    assert note.startswith("Phone No. (telephone1 -> phoneNumber) cut to the 30 characters the Business Central "
                           f"field holds, 12 record(s): account 'Adatum' ({adatum}): 45 characters; account 'Other 00'")
    assert note.endswith(": 31 characters; and 2 more")

    strict = World(Catalog(apply(m, MappingOverride.from_dict({"truncation": "error"})) if m.name == "CUSTOMER" else m
                           for m in builtin_mappings()))
    strict.account("Adatum", telephone1="x" * 45)
    out = strict.run("CUSTOMER", FROM, full=True)
    assert out.counts.failed == 1 and not strict.bc.rows(BC_CUSTOMER)
    [failure] = strict.errors.list("CUSTOMER", FROM)
    assert failure.field == "Phone No." and "is 45 characters long; the Business Central field holds 30" in failure.message


def test_truncation_accepts_cut_or_error_only():
    with pytest.raises(ConfigurationError, match="truncation must be one of cut, error"):
        MappingOverride.from_dict({"truncation": "shorten"})


def _created_in_bc_by_a_full_sync(margin_seconds: int, edit_meanwhile: str = ""):
    """Three Sales accounts that the full synchronisation creates in Business Central, a page of two and then
    one; `edit_meanwhile`: a city a user gives the second one in Business Central between the two pages."""
    w = World()
    w.engine.watermark_margin = dt.timedelta(seconds=margin_seconds)
    w.customer("C00010", "Adatum")
    accounts = [w.account(name) for name in ("Contoso", "Fabrikam", "Litware")]
    save_many = w.couplings.save_many

    def saved(couplings, follow_up=None):
        save_many(couplings, follow_up)
        created = w.couplings.by_side.get(("CUSTOMER", Side.CRM, accounts[1]))
        if edit_meanwhile and created is not None and any(c.crm_id == accounts[1] for c in couplings):
            w.bc.edit(BC_CUSTOMER, created.bc_id, city=edit_meanwhile)
        w.clock.tick()  # time goes on after writes

    w.couplings.save_many = saved
    w.full_sync()
    w.couplings.save_many = save_many
    return w, accounts


def test_a_full_sync_moves_the_bc_watermark_past_the_rows_it_created_in_business_central():
    w, _ = _created_in_bc_by_a_full_sync(margin_seconds=0)
    assert all(w.state.watermark("CUSTOMER", TO) >= row["modified_on"] for row in w.bc.rows(BC_CUSTOMER).values())
    first = w.run("CUSTOMER", TO)
    assert first.counts.unchanged == first.counts.modified == 0  # nothing read back


def test_a_row_edited_while_the_full_sync_ran_is_carried_by_the_next_scheduled_run():
    w, accounts = _created_in_bc_by_a_full_sync(margin_seconds=0, edit_meanwhile="Marseille")
    first = w.run("CUSTOMER", TO)
    assert first.counts.modified == 1 and first.counts.unchanged == 1  # the row created after it is read again
    assert w.crm.rows(CRM_ACCOUNT)[accounts[1]]["values"]["address1_city"] == "Marseille"


def test_rows_written_within_the_margin_are_read_back_without_looking_up_their_couplings():
    w, _ = _created_in_bc_by_a_full_sync(margin_seconds=60)
    assert w.state.known_versions("CUSTOMER", TO)
    queries = w.couplings.queries
    first = w.run("CUSTOMER", TO)
    assert first.counts.unchanged == 3 and first.counts.modified == 0
    assert w.couplings.queries == queries  # the versions the full sync kept told them unchanged
    # read past, their versions are forgotten, but for the newest: the watermark stops at its time, and reads
    # start there, so every run reads it again and finds it unchanged by the version kept
    newest = max(w.bc.rows(BC_CUSTOMER).items(), key=lambda item: item[1]["modified_on"])
    assert w.state.watermark("CUSTOMER", TO) == newest[1]["modified_on"]
    assert w.state.known_versions("CUSTOMER", TO) == {newest[0].lower(): newest[1]["etag"]}
    assert w.run("CUSTOMER", TO).counts.unchanged == 1 and w.couplings.queries == queries


def test_runs_within_the_margin_find_the_rows_read_again_unchanged_without_lookups():
    w, _ = _created_in_bc_by_a_full_sync(margin_seconds=600)  # runs 2 minutes apart: the watermark stays short
    queries = w.couplings.queries
    for _ in range(3):
        run = w.run("CUSTOMER", TO)
        mark = w.state.watermark("CUSTOMER", TO)
        within = {i.lower(): r["etag"] for i, r in w.bc.rows(BC_CUSTOMER).items() if r["modified_on"] >= mark}
        assert run.counts.unchanged == 3 and run.counts.modified == 0
        assert w.state.known_versions("CUSTOMER", TO) == within and len(within) == 3  # kept, each run
    assert w.couplings.queries == queries
    for _ in range(5):  # past the margin: the watermark passes them, and their versions are forgotten
        w.run("CUSTOMER", TO)
    assert len(w.state.known_versions("CUSTOMER", TO)) == 1 and w.couplings.queries == queries
    # a row synchronised is kept at its new version (the coupling holds it), as the newest it is read again
    edited = next(i for i in w.bc.rows(BC_CUSTOMER) if i.lower() not in w.state.known_versions("CUSTOMER", TO))
    w.bc.edit(BC_CUSTOMER, edited, city="Lyon")
    assert w.run("CUSTOMER", TO).counts.modified == 1
    assert w.state.known_versions("CUSTOMER", TO) == {edited.lower(): w.bc.rows(BC_CUSTOMER)[edited]["etag"]}
    queries = w.couplings.queries
    assert w.run("CUSTOMER", TO).counts.unchanged == 1 and w.couplings.queries == queries


def _first_coupling_run(w, edit_between=None):
    """A first full synchronisation as the review recommends when both sides hold rows: coupling jobs that
    synchronise what they couple, BC -> Sales first; `edit_between` runs between the two."""
    for m, d in [("SALESPEOPLE", FROM), ("CURRENCY", TO), ("PAYMENT TERMS", TO), ("SHIPMENT METHOD", TO),
                 ("SHIPPING AGENT", TO)]:
        w.run(m, d, full=True)
    _coupling_run(w, "CUSTOMER", TO)
    if edit_between:
        edit_between()
    return _coupling_run(w, "CUSTOMER", FROM)


def test_a_coupling_run_leaves_the_sales_change_feed_so_the_first_scheduled_run_reads_no_rows_again():
    w = World()
    w.customer("C00010", "Adatum")
    w.account("Contoso")
    w.account("Fabrikam")
    assert _first_coupling_run(w).counts.inserted == 2
    assert w.state.cursor("CUSTOMER", "feed:crm") is not None
    queries = w.couplings.queries
    first = w.run("CUSTOMER", FROM)
    assert first.counts.unchanged == first.counts.modified == 0
    assert w.couplings.queries == queries


def test_a_sales_row_edited_between_the_two_coupling_jobs_is_carried_to_business_central():
    w = World()
    cid = w.customer("C00010", "Adatum")
    w.account("Contoso")
    edited = lambda: w.crm.edit(CRM_ACCOUNT, w.couplings.all("CUSTOMER")[cid].crm_id, telephone1="+33 1 23 45 67 89")
    assert _first_coupling_run(w, edited).counts.modified == 1
    assert w.bc.rows(BC_CUSTOMER)[cid]["values"]["phoneNumber"] == "+33 1 23 45 67 89"
    assert w.run("CUSTOMER", FROM).counts.modified == 0


class _Crash(Exception):
    """A worker that dies (not an error the engine handles)."""


def test_a_job_that_stops_before_a_new_rows_follow_up_leaves_it_to_be_retried():
    base = type(CUSTOMER.rules)
    calls = []

    class FollowingUp(base):
        def after_write(self, ctx, written):
            calls.append([(w.source.id, w.inserted, w.retried) for w in written])
            if len(calls) == 1:
                raise _Crash()
            return {}

    w = World(Catalog([dataclasses.replace(m, rules=FollowingUp()) if m.name == "CUSTOMER" else m
                       for m in builtin_mappings()]))
    adatum = w.customer("C1", "Adatum")
    with pytest.raises(_Crash):
        w.full_sync()                                       # coupled, then stopped before its follow-up was done
    assert w.couplings.get_many("CUSTOMER", Side.BC, [adatum])  # it looks coupled and done ...
    assert w.errors.list("CUSTOMER", TO) == []              # ... and nothing was logged for it (no storage write)
    w.run("CUSTOMER", FROM)                                 # any next job of the mapping logs it from the note
    assert [f.source_id for f in w.errors.list("CUSTOMER", TO)] == [adatum]
    w.run("CUSTOMER", TO)
    assert calls[-1] == [(adatum, False, True)]             # the follow-up is retried
    assert w.errors.list("CUSTOMER", TO) == [] and w.couplings.recover("CUSTOMER") == []


def test_a_page_is_planned_and_written_in_batches_of_work_rows_so_a_large_page_holds_no_more(monkeypatch):
    w = World()
    w.engine.page_size = 10
    monkeypatch.setattr(engine_module, "WORK_ROWS", 2)
    worked: list[int] = []
    process = engine_module._Job._process
    monkeypatch.setattr(engine_module._Job, "_process",
                        lambda job, rows, forced: (worked.append(len(rows)), process(job, rows, forced)))
    for i in range(5):
        w.customer(f"C{i:05d}", f"Customer {i}")
    outcome = w.run("CUSTOMER", TO, full=True)
    assert worked == [2, 2, 1]                     # one page of five rows, in batches of two
    assert outcome.counts.inserted == 5 and len(w.crm.rows(CRM_ACCOUNT)) == 5


def test_a_row_the_company_cannot_claim_is_a_failed_record_and_the_page_is_recorded():
    """Several companies: a coupled row of no company whose claim fails is that source row's failed record (naming
    bcbi_companyid); the page's couplings, counts and other rows are recorded as usual, and the job ends."""
    from sync.errors import RecordError

    w = World()
    adatum, trey = w.customer("10000", "Adatum"), w.customer("20000", "Trey")
    asked = []

    def claim(table, ids):
        asked.extend(ids)
        account = w.couplings.all("CUSTOMER")[adatum].crm_id
        return {account: RecordError("Dataverse: the account cannot be made the company's (bcbi_companyid): no.",
                                     field="bcbi_companyid")} if account in ids else {}

    w.crm.claim = claim
    out = w.run("CUSTOMER", TO, full=True)
    assert out.counts.inserted == 2 and out.counts.failed == 1 and len(asked) == 2
    [failure] = w.errors.list("CUSTOMER", TO)
    assert failure.source_id == adatum and "bcbi_companyid" in failure.message
    assert set(w.couplings.all("CUSTOMER")) == {adatum, trey}
    w.crm.claim = lambda table, ids: {}
    out = w.run("CUSTOMER", TO)  # tried again next run, and claimed
    assert out.counts.failed == 0 and w.errors.list("CUSTOMER", TO) == []


def test_a_row_another_company_took_first_loses_this_companys_coupling():
    from sync.errors import RecordError
    from sync.ports import CLAIM_TAKEN

    w = World()
    adatum = w.customer("10000", "Adatum")
    w.crm.claim = lambda table, ids: {i: RecordError(f"Dataverse: the account {i} cannot be made a row of the "
                                                     f"company (bcbi_companyid): another company took it",
                                                     field="bcbi_companyid", code=CLAIM_TAKEN) for i in ids}
    out = w.run("CUSTOMER", TO, full=True)
    assert out.counts.failed == 1 and out.counts.uncoupled == 1 and w.couplings.all("CUSTOMER") == {}
    [failure] = w.errors.list("CUSTOMER", TO)
    assert failure.source_id == adatum and "another company took it" in failure.message


# -- the watermark: saved once per job, and on every stop path what the job passed --------------------------------

def _watermarks_written(w):
    """The watermarks of CUSTOMER BC -> Sales the state store is given, in order, by any of its methods."""
    written = []
    save_watermark, save_job_state = w.state.save_watermark, w.state.save_job_state

    def saved(mapping, direction, value):
        written.append(value)
        save_watermark(mapping, direction, value)

    def saved_with_state(mapping, direction, **parts):
        if parts.get("watermark") is not None:
            written.append(parts["watermark"])
        save_job_state(mapping, direction, **parts)
    w.state.save_watermark, w.state.save_job_state = saved, saved_with_state
    return written


def _three_pages_of_customers(w):
    """Six customers changed after the last run, three pages of two: the modified-on of each page's newest row."""
    ids = [w.customer(f"C{i:05d}", f"Customer {i}") for i in range(6)]
    w.clock.tick(120)  # past the safety margin of the job that reads them
    return [w.bc.rows(BC_CUSTOMER)[ids[i]]["modified_on"] for i in (1, 3, 5)]


def test_a_job_saves_its_watermark_once_however_many_pages_it_reads():
    w = World()
    newest = _three_pages_of_customers(w)
    written = _watermarks_written(w)
    out = w.engine.run("CUSTOMER", TO, job_id="j", mode=JobMode.FULL)
    assert out.complete and out.counts.inserted == 6
    assert written == [newest[2]]


def test_a_job_that_fails_midway_keeps_the_watermark_of_the_pages_it_passed():
    w = World()
    newest = _three_pages_of_customers(w)
    written = _watermarks_written(w)
    real_insert, calls = w.crm.insert, []

    def failing_third_page(table, rows, fields):
        calls.append(rows)
        if len(calls) == 3:
            raise ServiceUnavailableError("503")
        return real_insert(table, rows, fields)
    w.crm.insert = failing_third_page
    with pytest.raises(ServiceUnavailableError):
        w.engine.run("CUSTOMER", TO, job_id="j", mode=JobMode.FULL)
    assert written == [newest[1]]   # the third page is read again by the next job, the first two are not


def test_a_job_out_of_time_keeps_the_watermark_of_the_page_it_stopped_at():
    w = World()
    newest = _three_pages_of_customers(w)
    written = _watermarks_written(w)
    out = w.engine.run("CUSTOMER", TO, job_id="j", mode=JobMode.FULL, deadline=w.clock.now() - dt.timedelta(seconds=1))
    assert not out.complete and out.checkpoint == newest[0] and written == [newest[0]]


class _Interrupted(BaseException):
    """Stands for the interpreter's exit (SystemExit, KeyboardInterrupt)."""


@pytest.mark.parametrize("stop, saves", [(lambda: KeyError("a bug"), True),
                                         (lambda: LeaseLost("the lease on CUSTOMER passed to another worker"), False),
                                         (_Interrupted, False)],
                         ids=["a bug", "lease lost", "interpreter exit"])
def test_a_job_stopped_by_its_progress_keeps_the_watermark_of_the_pages_it_passed_unless_it_lost_its_lease(stop, saves):
    """A bug stops the job after its second page: that page's watermark is saved. A job whose lease another worker
    took writes nothing more: that worker's job may have saved a later watermark already. Nor does an interpreter's
    exit (no storage request then)."""
    w = World()
    newest = _three_pages_of_customers(w)
    written = _watermarks_written(w)
    seen = []

    def progress(p):
        seen.append(p.checkpoint)
        if len(seen) == 2:
            raise stop()
    with pytest.raises(type(stop())):
        w.engine.run("CUSTOMER", TO, job_id="j", mode=JobMode.FULL, on_progress=progress)
    assert written == ([newest[1]] if saves else [])


def test_a_running_job_saves_its_watermark_when_its_progress_is_saved():
    """A worker killed midway (out of memory, the host's time limit) saves nothing then: what the store holds is what
    the job saved with its last progress save, so that its next attempt gets further."""
    w = World()
    newest = _three_pages_of_customers(w)
    stored, saves = [], [False, True, False]  # the runner saves the second report of progress only

    def progress(p):
        stored.append(w.state.watermark("CUSTOMER", TO))
        return saves[len(stored) - 1]
    assert w.engine.run("CUSTOMER", TO, job_id="j", mode=JobMode.FULL, on_progress=progress).complete
    assert stored == [None, None, newest[1]] and w.state.watermark("CUSTOMER", TO) == newest[2]


def test_a_job_reading_the_sales_feed_saves_its_cursor_when_its_progress_is_saved():
    w = World()
    w.state.save_cursor("CUSTOMER", FEED_CURSOR, "0")
    accounts = [w.account(f"Account {i}") for i in range(3)]
    changes = w.crm.changes

    def a_page_per_row(table, fields, cursor, **kwargs):
        feed = changes(table, fields, cursor, **kwargs)
        [page] = feed.pages
        return dataclasses.replace(feed, pages=iter([FeedPage([row], [], row.etag[1:], last=False)
                                                     for row in page.changed[:-1]]
                                                    + [FeedPage(page.changed[-1:], [], page.cursor)]))
    w.crm.changes = a_page_per_row
    stored = []

    def progress(p):
        stored.append(w.state.cursor("CUSTOMER", FEED_CURSOR))
        return True
    w.clock.tick(120)
    assert w.engine.run("CUSTOMER", FROM, job_id="j", on_progress=progress).complete
    versions = [w.crm.rows(CRM_ACCOUNT)[a]["etag"][1:] for a in accounts]
    assert stored == ["0", versions[0], versions[1]] and w.state.cursor("CUSTOMER", FEED_CURSOR) == versions[2]


def test_a_job_reads_its_state_in_one_go_and_saves_its_end_in_one_go():
    w = World()
    _three_pages_of_customers(w)
    w.run("CUSTOMER", TO, full=True)
    w.bc.edit(BC_CUSTOMER, next(iter(w.bc.rows(BC_CUSTOMER))), displayName="Renamed")
    reads, saves = w.state.job_state_reads, w.state.job_state_saves
    w.run("CUSTOMER", TO)  # watermark, pending rows, cursors and known versions read together, written together
    assert (w.state.job_state_reads - reads, w.state.job_state_saves - saves) == (1, 1)


def test_a_job_reads_what_it_needs_before_its_first_row_side_by_side():
    """The couplings' journal, the failed records, the mapping's state and the kept facts: four reads, each waiting
    here until the four are under way together (one after another, the first would wait in vain)."""
    import threading
    w = World()
    w.customer("C00010", "Adatum")
    together = threading.Barrier(4, timeout=5)
    for port, name in ((w.couplings, "recover"), (w.errors, "list"), (w.state, "job_state"), (w.state, "facts")):
        def first_waits(*args, read=getattr(port, name), waited=[], **kwargs):
            if not waited:
                waited.append(together.wait())
            return read(*args, **kwargs)
        setattr(port, name, first_waits)
    assert w.run("CUSTOMER", TO).complete


@pytest.mark.parametrize("direction", [Direction.BIDIRECTIONAL, Direction.TO_CRM])
def test_couplings_a_rule_keeps_synchronised_leave_their_bc_versions_where_the_bc_to_sales_pass_reads_them(direction):
    w = World()
    w.engine.catalogs = StaticCatalog(Catalog([apply(m, MappingOverride(direction=direction))
                                               if m.name == "CUSTOMER" else m for m in w.catalog]))
    w.state.save_known_versions("CUSTOMER", TO, {"kept": "v0"})
    written = Coupling("CUSTOMER", "BC-1", "crm-1", bc_etag="v2", crm_etag="w1", bc_values={"name": "A"},
                       crm_values={"name": "A"})
    only_in_sales = Coupling("CUSTOMER", "BC-2", "crm-2", bc_etag="v1", crm_etag="w2", bc_values={"name": "B"},
                             crm_values={"name": "B"})
    w.engine.job("CONTACT", "job1").keep_synchronised("CUSTOMER", [written, only_in_sales], ["bc-1"])
    assert w.couplings.all("CUSTOMER")["BC-1"].bc_etag == "v2" and "BC-2" in w.couplings.all("CUSTOMER")
    # a one-way mapping's pass reads no known versions: none left to pile up there; the others are added to
    # those kept, and only the version of the row the rule wrote in Business Central
    assert w.state.known_versions("CUSTOMER", TO) == (
        {"kept": "v0", "bc-1": "v2"} if direction is Direction.BIDIRECTIONAL else {"kept": "v0"})


def test_passing_its_own_writes_a_full_job_looks_up_many_unknown_couplings_a_batch_at_a_time(monkeypatch):
    """A full Sales -> BC job checks the BC rows changed since the other pass's watermark against their couplings;
    those it did not read or write itself (here: accounts its Sales filter leaves out) are many at volume, so the
    side is held once and looked up WORK_ROWS at a time: the couplings parsed at once are a batch's."""
    catalog = Catalog([dataclasses.replace(m, crm_filter="name eq 'Sales only'") if m.name == "CUSTOMER" else m
                       for m in builtin_mappings()])
    w = World(catalog)
    customers = [w.customer(f"C{i:05d}", f"Customer {i}") for i in range(5)]
    w.run("CUSTOMER", TO, full=True)
    for customer in customers:                      # changed since that pass, so read by the check
        w.bc.edit(BC_CUSTOMER, customer, city="Lyon")
    w.account("Sales only")
    monkeypatch.setattr(engine_module, "WORK_ROWS", 2)
    looked_up: list[int] = []
    held: list[tuple[str, Side]] = []
    get_many, hold = w.couplings.get_many, w.couplings.held
    monkeypatch.setattr(w.couplings, "get_many", lambda mapping, side, ids: (
        looked_up.append(len(ids)) if side is Side.BC else None, get_many(mapping, side, ids))[1])
    monkeypatch.setattr(w.couplings, "held", lambda mapping, side, complete=True: (
        held.append((mapping, side)), hold(mapping, side, complete))[1])
    w.run("CUSTOMER", FROM, full=True)
    assert looked_up[-3:] == [2, 2, 1] and ("CUSTOMER", Side.BC) in held


def test_the_schedules_look_and_a_pass_of_forced_rows_read_no_known_versions():
    """Known versions spare the BC -> Sales pass a look at the couplings of the rows it reads by watermark; a look
    whether the mapping has work reads none, nor does a pass of rows it works on whatever their version (here a
    Sales deletion the Sales -> BC job hands to it), as for a large mapping they are up to a hundred rows."""
    w = World()
    cid = w.customer("C00010", "Adatum")
    w.full_sync()
    w.run("CUSTOMER", TO)
    assert w.state.known_versions("CUSTOMER", TO)  # (the full job left the version it wrote)
    w.clock.tick(120)
    reads = w.state.version_reads
    w.engine.has_work("CUSTOMER")
    assert w.state.version_reads == reads
    w.crm.delete(CRM_ACCOUNT, w.couplings.all("CUSTOMER")[cid].crm_id)
    out = w.run("CUSTOMER", FROM)
    assert out.counts.failed == 1 and w.state.version_reads == reads   # the pass reported the deletion conflict


def test_versions_another_mapping_added_while_the_bc_to_sales_pass_ran_outlive_its_save():
    """A CONTACT job adds versions of customers it wrote (keep_synchronised) while CUSTOMER's BC -> Sales pass runs
    (another lease): the pass's save replaces what it read, and leaves what was added since."""
    w = World()
    customers = [w.customer(f"C{i:05d}", f"Customer {i}") for i in range(3)]
    w.full_sync()
    w.bc.edit(BC_CUSTOMER, customers[0], displayName="Renamed")
    added = Coupling("CUSTOMER", customers[1], w.couplings.all("CUSTOMER")[customers[1]].crm_id, bc_etag="v-added",
                     crm_etag="w-added", bc_values={"displayName": "Customer 1"}, crm_values={"name": "Customer 1"})

    def contact_job_adds(progress):
        w.engine.job("CONTACT", "contact-job").keep_synchronised("CUSTOMER", [added], [customers[1]])
    saved, save = [], w.state.save_job_state
    w.state.save_job_state = lambda *a, **k: (saved.append(k.get("versions")), save(*a, **k))[1]
    w.clock.tick(120)
    w.engine.run("CUSTOMER", TO, job_id="j", on_progress=contact_job_adds)
    [kept] = saved
    assert kept is not None and w.state.known_versions("CUSTOMER", TO) == {**kept, customers[1].lower(): "v-added"}


def test_a_job_run_within_another_may_not_move_what_only_a_job_of_its_own_saves(monkeypatch):
    """Records synchronised first (sync_records) and a pass in the other direction keep no watermark, cursor or
    known versions of their own: moving one there would be lost."""
    w = World()
    cid = w.customer("C00010", "Adatum")
    process_ids = engine_module._Job._process_ids

    def moves_its_watermark(job, ids):
        process_ids(job, ids)
        job._raise_watermark(w.clock.now())
    monkeypatch.setattr(engine_module._Job, "_process_ids", moves_its_watermark)
    with pytest.raises(AssertionError, match="a job within another moved the state of CUSTOMER"):
        w.engine.sync_records("CUSTOMER", TO, [cid], job_id="j")
