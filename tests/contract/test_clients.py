"""Our production clients against the simulators over real HTTPS, with the real MSAL."""

from __future__ import annotations

import certifi
import pytest

from shared.settings import Settings
from shared.wiring import build_services
from sync.errors import (AlreadyExistsError, AuthenticationError, ConcurrencyError, ServiceUnavailableError,
                         SyncError, ThrottledError)
from sync.model import OptionSet
from sync.ports import NewRow, RowChange
from sync.tables import BC_CUSTOMER, BC_SALESPERSON, CRM_ACCOUNT


@pytest.fixture
def services(isolated, monkeypatch):
    # this machine points REQUESTS_CA_BUNDLE at the system store; our CA setting must still win
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    services = build_services(Settings.load(environ=isolated))
    services.dataverse.api.sleep = services.business_central.api.sleep = lambda s: None
    return services


@pytest.fixture
def dv(services):
    from shared.dataverse import DataverseEndpoint
    return DataverseEndpoint(services.dataverse)


@pytest.fixture
def bc(services):
    from shared.businesscentral import BusinessCentralEndpoint
    return BusinessCentralEndpoint(services.business_central)


def test_dataverse_reads_page_by_page_oldest_first_with_lookups_as_ids(dv, stack):
    owner = stack.ids.user_systemuser_id
    ids = stack.dataverse.seed("account", [{"name": f"Account {i}", "customertypecode": 3, "ownerid": owner}
                                           for i in range(5)])
    pages = list(dv.read_changed(CRM_ACCOUNT, ["name", "ownerid"], since=None, where="customertypecode eq 3",
                                 page_size=2))
    assert [len(p) for p in pages] == [2, 2, 1]
    records = [r for p in pages for r in p]
    assert sorted(r.id for r in records) == sorted(ids)
    assert all(r.values["ownerid"] == owner and r.etag.startswith('W/"') for r in records)
    assert records == sorted(records, key=lambda r: (r.modified_on, r.id))   # oldest first, then by id
    found = dv.read_ids(CRM_ACCOUNT, ["name"], [ids[3], ids[1], "00000000-0000-0000-0000-000000000001"])
    assert sorted(r.id for r in found) == sorted([ids[1], ids[3]])
    matched = dv.read_matching(CRM_ACCOUNT, ["name"], "name", ["account 2", "Account 4"])  # case-insensitive
    assert sorted(r.values["name"] for r in matched) == ["Account 2", "Account 4"]


def _read(feed):
    pages = list(feed.pages)
    return ([r for p in pages for r in p.changed], [i for p in pages for i in p.deleted],
            [i for p in pages for i in p.present], pages[-1])


def test_dataverse_change_feed_tells_changes_and_deletions_and_restarts_when_expired(dv, stack, monkeypatch):
    ids = stack.dataverse.seed("account", [{"name": f"Account {i}", "customertypecode": 3} for i in range(3)])
    [vendor] = stack.dataverse.seed("account", [{"name": "Vendor", "customertypecode": 11}])
    where, fields = "customertypecode eq 3 and statecode eq 0", ["name"]
    first = dv.changes(CRM_ACCOUNT, fields, None, where=where)   # starts tracking: every row, the filter applied
    changed, deleted, present, last = _read(first)
    assert not first.complete and first.filtered and deleted == [] and "$deltatoken=" in last.cursor and last.last
    assert sorted(r.id for r in changed) == sorted(ids) and sorted(present) == sorted(ids + [vendor])
    stack.dataverse.delete("account", ids[1])
    stack.dataverse.update("account", ids[0], {"name": "Changed"}, as_user=stack.ids.user_systemuser_id)
    stack.dataverse.update("account", ids[2], {"name": "Ours"}, as_user=stack.ids.integration_user_id)
    stack.dataverse.update("account", vendor, {"name": "Filtered out"}, as_user=stack.ids.user_systemuser_id)
    later = dv.changes(CRM_ACCOUNT, fields, last.cursor, where=where, page_size=1,
                       not_modified_by=stack.ids.integration_user_id)
    changed, deleted, present, end = _read(later)
    assert later.complete and deleted == [ids[1]] and present == []
    assert [(r.id, r.values["name"]) for r in changed] == [(ids[0], "Changed")] and changed[0].etag.startswith('W/"')
    assert end.cursor != last.cursor and end.last
    assert _read(dv.changes(CRM_ACCOUNT, fields, end.cursor, where=where))[:2] == ([], [])
    # a filter the feed cannot apply: deletions only
    assert not dv.changes(CRM_ACCOUNT, fields, end.cursor, where="contains(name,'A')").filtered
    # a cursor made for fewer columns starts over rather than read rows without the values asked for
    assert not dv.changes(CRM_ACCOUNT, ["name", "telephone1"], end.cursor, where=where).complete
    monkeypatch.setattr(stack.dataverse, "change_tracking_days", -1)   # every token has expired
    expired = dv.changes(CRM_ACCOUNT, fields, end.cursor, where=where)
    assert not expired.complete and _read(expired)[1] == []
    monkeypatch.setattr(stack.dataverse, "change_tracking_days", 7)
    garbled = dv.changes(CRM_ACCOUNT, fields, end.cursor.replace("$deltatoken=", "$deltatoken=x"), where=where)
    assert not garbled.complete and _read(garbled)[3].cursor.startswith("/api/data/v9.2/accounts?")


def test_dataverse_insert_with_our_id_is_idempotent_and_stale_updates_are_refused(dv, stack):
    proposed = "6d3f4b1e-1111-4222-8333-944455556666"
    [first] = dv.insert(CRM_ACCOUNT, [NewRow({"name": "Adatum", "ownerid": stack.ids.user_systemuser_id}, proposed)],
                        ["name", "ownerid"])
    assert first.record.id == proposed and first.record.values["ownerid"] == stack.ids.user_systemuser_id
    [again] = dv.insert(CRM_ACCOUNT, [NewRow({"name": "Adatum"}, proposed)], ["name"])
    assert isinstance(again.error, AlreadyExistsError)
    [ok] = dv.update(CRM_ACCOUNT, [RowChange(proposed, first.record.etag, {"telephone1": "1"})], ["telephone1"])
    assert ok.record.values["telephone1"] == "1" and ok.record.etag != first.record.etag
    [stale] = dv.update(CRM_ACCOUNT, [RowChange(proposed, first.record.etag, {"telephone1": "2"})], ["telephone1"])
    assert isinstance(stale.error, ConcurrencyError)
    assert stack.dataverse.get("account", proposed)["telephone1"] == "1"
    assert stack.dataverse.get("account", proposed)["modifiedby"] == stack.ids.integration_user_id


def test_dataverse_whoami_and_option_labels(dv, stack):
    assert dv.integration_user_id() == stack.ids.integration_user_id
    labels = dv.option_labels(OptionSet(CRM_ACCOUNT, "paymenttermscode"))
    assert labels[1] == "Net 30" and labels[4] == "Net 60"


def test_business_central_reads_writes_and_escapes_enums(bc, stack):
    stack.business_central.seed("customers", [{"number": "10000", "displayName": "Blocked", "blocked": "All"},
                                              {"number": "20000", "displayName": "Open"}])
    [page] = list(bc.read_changed(BC_CUSTOMER, ["number", "displayName", "blocked"], since=None,
                                  where="blocked eq '_x0020_'"))
    assert [(r.values["number"], r.values["blocked"]) for r in page] == [("20000", " ")]
    [created] = bc.insert(BC_CUSTOMER, [NewRow({"displayName": "New Co", "blocked": " "})], ["number", "displayName"])
    assert created.record.values["number"]  # numbered by the company's number series
    [stale_base] = bc.read_ids(BC_CUSTOMER, ["displayName"], [created.record.id])
    bc.update(BC_CUSTOMER, [RowChange(created.record.id, stale_base.etag, {"city": "Oslo"})], ["city"])
    [stale] = bc.update(BC_CUSTOMER, [RowChange(created.record.id, stale_base.etag, {"city": "Bergen"})], ["city"])
    assert isinstance(stale.error, ConcurrencyError)
    [bad] = bc.insert(BC_CUSTOMER, [NewRow({"displayName": "X" * 101})], ["number"])
    assert bad.error is not None and not bad.error.transient and "100" in bad.error.message


def test_a_filter_business_central_does_not_implement_is_refused_at_once_not_retried(services, bc, stack):
    waits = []
    services.business_central.api.sleep = waits.append
    for where in ("number eq '10000' or displayName eq 'Open'", "number in ('10000', '20000')"):
        with pytest.raises(SyncError) as caught:  # 501 BadRequest_MethodNotImplemented: no retry can help
            list(bc.read_changed(BC_CUSTOMER, ["number"], since=None, where=where))
        assert not caught.value.transient and caught.value.status == 501
    assert waits == []


def test_business_central_number_series_helper(bc, stack):
    stack.business_central.seed("salespeoplePurchasers", [{"code": "SP NO. 00003", "displayName": "a"},
                                                          {"code": "SP NO. 00011", "displayName": "b"},
                                                          {"code": "ZZ", "displayName": "c"}])
    assert bc.last_key(BC_SALESPERSON, "code", "SP NO. ") == "SP NO. 00011"


def test_throttling_is_retried_after_retry_after_and_counted(services, dv, stack):
    waits = []
    services.dataverse.api.sleep = waits.append
    stack.dataverse.faults.fail(429, times=2, retry_after=3, path_contains="/accounts")
    assert list(dv.read_changed(CRM_ACCOUNT, ["name"], since=None)) in ([], [[]])
    assert waits == [3.0, 3.0]


def test_a_long_retry_after_is_handed_back_to_the_job_instead_of_sleeping(services, dv, stack):
    stack.dataverse.faults.fail(429, times=1, retry_after=600, path_contains="/accounts")
    with pytest.raises(ThrottledError) as caught:
        list(dv.read_changed(CRM_ACCOUNT, ["name"], since=None))
    assert caught.value.retry_after == 600


def test_a_create_is_never_blindly_repeated_but_a_read_is(services, bc, stack):
    stack.business_central.faults.fail(500, times=1, methods=("POST",))
    [failed] = bc.insert(BC_CUSTOMER, [NewRow({"displayName": "Once"})], ["number"])
    assert isinstance(failed.error, ServiceUnavailableError) and failed.error.transient
    assert stack.business_central.rows("customers") == []   # (the simulator failed before creating)
    posts = [r for r in stack.business_central.faults.requests if r[0] == "POST"]
    assert len(posts) == 1
    stack.business_central.faults.fail(500, times=2, methods=("GET",))
    assert bc.read_ids(BC_CUSTOMER, ["number"], ["00000000-0000-0000-0000-000000000009"]) == []
    stack.business_central.faults.fail(503, times=1, retry_after=1, methods=("POST",))
    [created] = bc.insert(BC_CUSTOMER, [NewRow({"displayName": "After 503"})], ["number"])
    assert created.record is not None  # a 503 means not processed: safe to send again


def test_tokens_are_cached_and_a_wrong_secret_is_an_authentication_error(isolated, stack):
    services = build_services(Settings.load(environ=isolated))
    before = stack.issuer.issued
    services.dataverse.whoami()
    services.dataverse.whoami()
    services.business_central.companies()
    assert stack.issuer.issued - before == 2  # one token per resource, then MSAL's cache
    wrong = build_services(Settings.load(environ={**isolated, "BCSYNC_CLIENT_SECRET": "wrong"}))
    with pytest.raises(AuthenticationError, match="AADSTS7000215"):
        wrong.dataverse.whoami()


def test_an_app_without_a_dataverse_application_user_is_refused(isolated, stack):
    from simulators.token import Client
    stack.issuer.add_client(Client("11111111-2222-3333-4444-555555555555", secret="s"))
    stranger = build_services(Settings.load(environ={**isolated, "BCSYNC_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
                                                     "BCSYNC_CLIENT_SECRET": "s"}))
    with pytest.raises(AuthenticationError, match="0x80072560|not a member"):
        stranger.dataverse.whoami()
    with pytest.raises(AuthenticationError):
        stranger.business_central.companies()
