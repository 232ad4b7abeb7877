"""Our production clients against the simulators over real HTTPS, with the real MSAL."""

from __future__ import annotations

import certifi
import pytest

from shared.settings import Settings
from shared.wiring import build_services
from sync.errors import (AlreadyExistsError, AuthenticationError, ConcurrencyError, NotFoundError, RecordError,
                         ServiceUnavailableError, SyncError, ThrottledError)
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


def test_dataverse_insert_with_our_id_is_idempotent_and_updates_check_versions_in_small_batches(dv, stack,
                                                                                                monkeypatch):
    proposed = "6d3f4b1e-1111-4222-8333-944455556666"
    [first] = dv.insert(CRM_ACCOUNT, [NewRow({"name": "Adatum", "ownerid": stack.ids.user_systemuser_id}, proposed)],
                        ["name", "ownerid"])
    assert first.error is None, first.error
    assert first.record.id == proposed and first.record.values["ownerid"] == stack.ids.user_systemuser_id
    [again] = dv.insert(CRM_ACCOUNT, [NewRow({"name": "Adatum"}, proposed)], ["name"])
    assert isinstance(again.error, AlreadyExistsError)
    requests = stack.dataverse.faults.requests
    requests.clear()
    # a small update is one $batch of PATCH requests, answered with the rows and their new versions
    [ok] = dv.update(CRM_ACCOUNT, [RowChange(proposed, first.record.etag, {"telephone1": "1"})],
                     ["telephone1", "ownerid"])
    assert ok.error is None, ok.error
    assert ok.record.values == {"telephone1": "1", "ownerid": stack.ids.user_systemuser_id}
    [current] = dv.read_ids(CRM_ACCOUNT, [], [proposed])
    assert ok.record.etag == current.etag != first.record.etag
    assert [p.rsplit("/", 1)[-1] for m, p in requests] == ["$batch", "accounts"]   # the $batch, and the read here
    # ... which checks the version: a row changed since it was read is not written
    [stale] = dv.update(CRM_ACCOUNT, [RowChange(proposed, first.record.etag, {"telephone1": "2"})], ["telephone1"])
    assert isinstance(stale.error, ConcurrencyError) and stale.record is None
    assert stack.dataverse.get("account", proposed)["telephone1"] == "1"
    # a row that does not exist is not created (If-Match: * without a version)
    [missing] = dv.update(CRM_ACCOUNT, [RowChange("6d3f4b1e-1111-4222-8333-000000000000", None, {"name": "X"})],
                          ["name"])
    assert isinstance(missing.error, NotFoundError) and len(stack.dataverse.rows("account")) == 1
    # UpdateMultiple, for more rows, cannot check a row's version through the Web API: a stale ETag does not
    # stop the write
    monkeypatch.setattr("shared.dataverse.PATCH_BATCH_MAX", 0)
    requests.clear()
    [bulk] = dv.update(CRM_ACCOUNT, [RowChange(proposed, first.record.etag, {"telephone1": "3"})], ["telephone1"])
    assert bulk.error is None and bulk.record.values["telephone1"] == "3"
    assert stack.dataverse.get("account", proposed)["modifiedby"] == stack.ids.integration_user_id
    assert [(m, p.rsplit("/", 1)[-1].split("?")[0]) for m, p in requests] == [
        ("POST", "Microsoft.Dynamics.CRM.UpdateMultiple"), ("GET", "accounts")]


def test_dataverse_a_lost_answer_to_a_batch_of_updates_is_asked_again(dv, stack):
    created = dv.insert(CRM_ACCOUNT, [NewRow({"name": f"Co {i}"}, f"6d3f4b1e-0000-4000-8000-{i:012d}")
                                      for i in range(3)], ["name"])
    stale = created[0].record.etag
    dv.update(CRM_ACCOUNT, [RowChange(created[0].record.id, stale, {"name": "Co 0 renamed"})], ["name"])
    stack.dataverse.faults.requests.clear()
    stack.dataverse.faults.lose_answers(1, path_contains="$batch")
    results = dv.update(CRM_ACCOUNT, [RowChange(r.record.id, None if i else stale, {"telephone1": "9"})
                                      for i, r in enumerate(created)], ["telephone1"])
    # the $batch was served, its answer lost, and sent again: the rows without a version are written
    # once more alike; the stale one failed both times as the conflict it is
    assert [p.rsplit("/", 1)[-1] for m, p in stack.dataverse.faults.requests] == ["$batch", "$batch"]
    assert isinstance(results[0].error, ConcurrencyError)
    assert all(r.error is None and r.record.values["telephone1"] == "9" for r in results[1:])
    assert [a.get("telephone1") for a in sorted(stack.dataverse.rows("account"), key=lambda a: a["name"])] == \
        [None, "9", "9"]


def bulk_posts(stack) -> list[str]:
    return [p for m, p in stack.dataverse.faults.requests if m == "POST" and "Multiple" in p]


def test_dataverse_one_bad_row_in_a_chunk_of_100_fails_alone(dv, stack):
    rows = [NewRow({"name": "x" * 200 if i == 37 else f"Bulk {i}"}, f"6d3f4b1e-0000-4000-8000-{i:012d}")
            for i in range(100)]
    results = dv.insert(CRM_ACCOUNT, rows, ["name"])
    assert [i for i, r in enumerate(results) if r.error is not None] == [37]
    bad = results[37].error
    assert isinstance(bad, RecordError) and bad.field == "name" and "'name'" in bad.message
    assert all(r.record.id == row.id and r.record.values["name"] == row.values["name"] and r.record.etag
               for r, row in zip(results, rows) if r is not results[37])
    assert len(stack.dataverse.rows("account")) == 99
    assert len(bulk_posts(stack)) <= 1 + 2 * 7  # halves down to the bad row: two requests per level
    changes = [RowChange(r.record.id, r.record.etag, {"name": "y" * 200 if i == 3 else f"Renamed {i}"})
               for i, r in enumerate(results[:10])]
    updated = dv.update(CRM_ACCOUNT, changes, ["name"])
    assert [i for i, r in enumerate(updated) if r.error is not None] == [3]
    assert updated[0].record.values["name"] == "Renamed 0" and stack.dataverse.get("account", rows[3].id)["name"] == \
        "Bulk 3"


def test_dataverse_a_lost_answer_to_a_bulk_create_is_repeated_without_duplicates(dv, stack):
    stack.dataverse.faults.fail(504, served_first=True, path_contains="CreateMultiple")
    rows = [NewRow({"name": f"Lost {i}"}, f"6d3f4b1e-0000-4000-8000-{i:012d}") for i in range(20)]
    results = dv.insert(CRM_ACCOUNT, rows, ["name"])
    # the repeat fails as duplicate keys: every row exists, for the engine to couple and update
    assert all(isinstance(r.error, AlreadyExistsError) for r in results)
    assert sorted(r["name"] for r in stack.dataverse.rows("account")) == sorted(f"Lost {i}" for i in range(20))
    assert len(bulk_posts(stack)) == 2


def test_dataverse_throttling_in_the_middle_of_a_write(services, dv, stack, monkeypatch):
    monkeypatch.setattr("shared.dataverse.BULK_CHUNK", 50)
    bulk, calls = dv.client.bulk, []

    def throttled_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            stack.dataverse.faults.fail(429, times=1, retry_after=2, path_contains="CreateMultiple")
        if len(calls) == 4:
            stack.dataverse.faults.fail(429, times=1, retry_after=600, path_contains="CreateMultiple")
        return bulk(*args, **kwargs)

    monkeypatch.setattr(dv.client, "bulk", throttled_second)
    waits = []
    services.dataverse.api.sleep = waits.append
    rows = [NewRow({"name": f"Row {i}"}, f"6d3f4b1e-0000-4000-8000-{i:012d}") for i in range(200)]
    results = dv.insert(CRM_ACCOUNT, rows, ["name"])
    assert waits == [2.0]  # the second chunk waited as told, then went through
    assert all(r.record is not None for r in results[:150])
    # beyond patience in the fourth: its rows carry the error (the engine records what was written, then stops)
    assert all(isinstance(r.error, ThrottledError) and r.error.retry_after == 600 for r in results[150:])
    assert len(stack.dataverse.rows("account")) == 150


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


def test_business_central_writes_and_reads_many_rows_in_few_requests(bc, stack):
    requests = stack.business_central.faults.requests
    fields = ["number", "displayName", "faxNo"]
    created = bc.insert(BC_CUSTOMER, [NewRow({"displayName": f"Co {i:03d}", "faxNo": f"+47 {i:03d}"})
                                      for i in range(150)], fields)
    assert [r.record.values["faxNo"] for r in created] == [f"+47 {i:03d}" for i in range(150)]
    # 2 $batches of creates, 2 of Customer Card writes (after learning the company's name for the page
    # URLs), then the API rows read back once for their versions: the card's values are in its answers
    assert sorted((m, p.rsplit("/", 1)[-1].split("(")[0]) for m, p in requests) == sorted(
        [("POST", "$batch")] * 4 + [("GET", "customers"), ("GET", "companies")])
    ids = [r.record.id for r in created]
    read = {r.id: r for r in bc.read_ids(BC_CUSTOMER, fields, ids)}
    assert all(read[r.record.id].etag == r.record.etag for r in created)   # the version after the card write

    requests.clear()
    stale = created[7].record
    bc.update(BC_CUSTOMER, [RowChange(stale.id, stale.etag, {"faxNo": "changed"})], fields)
    changes = [RowChange(r.record.id, r.record.etag, {"faxNo": f"+1 {i}"}) for i, r in enumerate(created)]
    updated = bc.update(BC_CUSTOMER, changes, fields)
    assert isinstance(updated[7].error, ConcurrencyError)        # card fields alone: the version is still checked
    assert [u.record.values["faxNo"] for u in updated if u.error is None] == [f"+1 {i}" for i in range(150) if i != 7]

    requests.clear()
    many = ids + [f"00000000-0000-0000-0000-{i:012d}" for i in range(1000)]   # more ids than one URL holds
    assert sorted(r.id for r in bc.read_ids(BC_CUSTOMER, ["number"], many)) == sorted(ids)
    assert [(m, p.rsplit("/", 1)[-1]) for m, p in requests] == [("POST", "$batch")]


def test_business_central_rows_written_but_not_read_back_are_kept_written_in_part(bc, stack):
    # after the card writes, the versions they made are read back from the API, which is down
    stack.business_central.faults.fail(503, times=10, path_contains="/customers", methods=("GET",))
    results = bc.insert(BC_CUSTOMER, [NewRow({"displayName": f"Co {i}", "faxNo": "1"}) for i in range(3)],
                        ["number", "displayName", "faxNo"])
    assert all(r.record is not None and isinstance(r.error, ServiceUnavailableError) for r in results)
    assert sorted(r.record.values["displayName"] for r in results) == ["Co 0", "Co 1", "Co 2"]
    assert len(stack.business_central.rows("customers")) == 3


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
