"""Scheduled (incremental) runs after a full synchronisation, end to end."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

from sync.runs import JobMessage, RunStatus

from .conftest import job

EMPTY = "00000000-0000-0000-0000-000000000000"


def seed_small(env):
    """Two users, one salesperson that matches, two customers, one customer account."""
    alicia, _ = env.dv.seed("systemuser", [
        {"fullname": "Alicia Thornber", "firstname": "Alicia", "lastname": "Thornber", "islicensed": True,
         "internalemailaddress": "alicia@contoso.com"},
        {"fullname": "Bernd Kaiser", "firstname": "Bernd", "lastname": "Kaiser", "islicensed": True,
         "internalemailaddress": "bernd@contoso.com"},
    ])
    env.bc.seed("salespeoplePurchasers", [{"code": "AT", "displayName": "Alicia", "email": "alicia@contoso.com"}])
    adatum, fabrikam = env.bc.seed("customers", [
        {"number": "10000", "displayName": "Adatum Corporation", "city": "Atlanta", "salespersonCode": "AT"},
        {"number": "20000", "displayName": "Fabrikam", "city": "Lyon"},
    ])
    [contoso] = env.dv.seed("account", [{"name": "Contoso Ltd", "customertypecode": 3, "address1_city": "Paris"}])
    return alicia, adatum, fabrikam, contoso


def crm_id(env, mapping, bc_id):
    return next(c.crm_id for c in env.couplings(mapping) if c.bc_id == bc_id)


def bc_id_of(env, mapping, crm):
    return next(c.bc_id for c in env.couplings(mapping) if c.crm_id == crm)


def versions(env):
    return ({a["accountid"]: a["versionnumber"] for a in env.dv.rows("account")},
            {c["id"]: c["lastModifiedDateTime"] for c in env.bc.rows("customers")},
            {s["id"]: s["lastModifiedDateTime"] for s in env.bc.rows("salespeoplePurchasers")})


def test_a_change_on_either_side_reaches_the_other_and_nothing_else_is_touched(env):
    _, adatum, fabrikam, contoso = seed_small(env)
    env.full_sync()
    adatum_account = crm_id(env, "CUSTOMER", adatum)
    contoso_customer = bc_id_of(env, "CUSTOMER", contoso)
    accounts_before, customers_before, people_before = versions(env)

    env.bc.update("customers", adatum, {"city": "Savannah", "phoneNumber": "+1 912 555 0100"})
    token = env.stack.user_token(env.stack.dataverse_url)  # Sam edits the account in Sales, over HTTPS
    import requests
    r = requests.patch(f"{env.stack.dataverse_url}/api/data/v9.2/accounts({contoso})",
                       json={"telephone1": "+33 1 55 55 01 02"}, verify=str(env.stack.ca.ca_file),
                       headers={"Authorization": f"Bearer {token}", "If-Match": "*"})
    assert r.status_code == 204, r.text

    report = env.sync()
    assert report.run.status is RunStatus.DONE
    assert job(report, "CUSTOMER:to-crm").counts.modified == 1
    assert job(report, "CUSTOMER:from-crm").counts.modified == 1
    assert env.dv.get("account", adatum_account)["address1_city"] == "Savannah"
    assert env.dv.get("account", adatum_account)["telephone1"] == "+1 912 555 0100"
    assert env.bc.get("customers", contoso_customer)["phoneNumber"] == "+33 1 55 55 01 02"

    accounts_after, customers_after, people_after = versions(env)
    assert {k for k in accounts_after if accounts_after[k] != accounts_before[k]} == {adatum_account, contoso}
    assert {k for k in customers_after if customers_after[k] != customers_before[k]} == {adatum, contoso_customer}
    assert people_after == people_before

    # our own writes do not come back: the next run writes nothing at all
    again = env.sync()
    totals = again.to_dict()["totals"]
    assert totals["inserted"] == totals["modified"] == totals["failed"] == 0
    assert versions(env) == (accounts_after, customers_after, people_after)


def test_a_failing_record_is_logged_and_retried_next_run_until_it_succeeds(env):
    seed_small(env)
    [jim_customer] = env.bc.seed("salespeoplePurchasers", [{"code": "JR", "displayName": "Jim", "email": "jim@contoso.com"}])
    [orphan] = env.bc.seed("customers", [{"number": "30000", "displayName": "Orphan Inc.", "salespersonCode": "JR"}])
    first = env.full_sync()
    assert job(first, "CUSTOMER:to-crm").counts.failed == 1
    [failure] = [f for f in env.errors() if f.mapping == "CUSTOMER"]
    assert failure.record == "Customer 30000" and failure.field == "Salesperson Code"
    assert "Salesperson Code 'JR' is not coupled to a Dataverse systemuser" in failure.message
    assert first.failures[0].record == "Customer 30000"

    second = env.sync()  # still not coupled: retried although unchanged, still failing, counted again
    assert job(second, "CUSTOMER:to-crm").counts.failed == 1
    assert [(f.count, f.skipped) for f in env.errors() if f.mapping == "CUSTOMER"] == [(2, True)]

    # the salesperson gets a Sales user, and a full sync of SALESPEOPLE couples it by e-mail; the
    # skipped customer is restored (bcsync retry) and goes through at the next run
    env.dv.seed("systemuser", [{"fullname": "Jim Rowe", "islicensed": True, "internalemailaddress": "jim@contoso.com"}])
    env.full_sync(mappings=["SALESPEOPLE"])
    env.services.retry_failures(mapping="CUSTOMER")
    third = env.sync()
    assert job(third, "CUSTOMER:to-crm").counts.inserted == 1 and job(third, "CUSTOMER:to-crm").counts.failed == 0
    assert [f for f in env.errors() if f.mapping == "CUSTOMER"] == []
    jim = next(u for u in env.dv.rows("systemuser") if u["fullname"] == "Jim Rowe")
    assert env.dv.get("account", crm_id(env, "CUSTOMER", orphan))["ownerid"] == jim["systemuserid"]


def test_a_duplicate_queue_delivery_changes_nothing(env):
    seed_small(env)
    report = env.full_sync()
    before = versions(env)
    jobs_before = [j.to_dict() for j in env.services.report(report.run.run_id).jobs]
    for j in report.jobs:   # every message of the run delivered once more
        env.services.queue.send(JobMessage(report.run.run_id, j.job_id))
    env.worker.run_until(lambda: True, timeout=60)
    assert versions(env) == before
    assert [j.to_dict() for j in env.services.report(report.run.run_id).jobs] == jobs_before
    assert len(env.dv.rows("account")) == 3 and len(env.bc.rows("customers")) == 3


def test_accounts_that_are_not_active_customers_stay_out(env):
    env.dv.seed("account", [
        {"name": "Vendor Co", "customertypecode": 11},
        {"name": "Prospect Co", "customertypecode": 8},
        {"name": "Gone Co", "customertypecode": 3, "statecode": 1, "statuscode": 2},
        {"name": "Real Customer", "customertypecode": 3},
    ])
    env.bc.seed("customers", [{"number": "10000", "displayName": "Blocked Co", "blocked": "All"}])
    env.full_sync()
    assert sorted(c["displayName"] for c in env.bc.rows("customers")) == ["Blocked Co", "Real Customer"]
    assert sorted(a["name"] for a in env.dv.rows("account")) == ["Gone Co", "Prospect Co", "Real Customer", "Vendor Co"]


def test_changes_made_in_sales_with_the_connection_users_account_are_not_synchronised_back(env):
    seed_small(env)
    env.full_sync()
    adatum = next(a for a in env.dv.rows("account") if a["name"] == "Adatum Corporation")
    customer = next(c for c in env.bc.rows("customers") if c["displayName"] == "Adatum Corporation")
    # someone signs in to Sales as the integration user and edits the account
    env.dv.update("account", adatum["accountid"], {"telephone1": "+1 000 000 0000"},
                  as_user=env.stack.ids.integration_user_id)
    report = env.sync()
    assert env.bc.get("customers", customer["id"])["phoneNumber"] == customer["phoneNumber"]
    assert job(report, "CUSTOMER:from-crm").counts.modified == 0
    # the same edit by an ordinary user is synchronised
    env.dv.update("account", adatum["accountid"], {"telephone1": "+1 404 555 0100"}, as_user=env.stack.ids.user_systemuser_id)
    env.sync()
    assert env.bc.get("customers", customer["id"])["phoneNumber"] == "+1 404 555 0100"


def test_fax_contact_name_and_primary_contact_of_customers_through_the_customer_card(env):
    seed_small(env)
    [adatum] = [c["id"] for c in env.bc.rows("customers") if c["displayName"] == "Adatum Corporation"]
    env.bc.update("CustomerCard", adatum, {"Fax_No": "+1 404 555 0199", "ContactName": "Ann Lee"})
    company = next(c for c in env.bc.rows("contacts") if c["displayName"] == "Adatum Corporation")["number"]
    [ann] = env.bc.seed("contacts", [{"type": "Person", "displayName": "Ann Lee", "companyNumber": company}])
    env.full_sync()           # contacts couple after customers: the primary contact is back-filled then
    account = next(a for a in env.dv.rows("account") if a["name"] == "Adatum Corporation")
    assert account["fax"] == "+1 404 555 0199" and account["address1_primarycontactname"] == "Ann Lee"
    ann_contact = next(c for c in env.dv.rows("contact") if c["fullname"] == "Ann Lee")
    assert account["primarycontactid"] == ann_contact["contactid"]
    ann_number = env.bc.get("contacts", ann)["number"]
    assert next(c for c in env.bc.rows("CustomerCard") if c["Name"] == "Adatum Corporation")["Primary_Contact_No"] \
        == ann_number
    # cleared in Business Central: cleared in Sales
    env.bc.update("CustomerCard", adatum, {"Primary_Contact_No": ""})
    env.sync()
    account = next(a for a in env.dv.rows("account") if a["name"] == "Adatum Corporation")
    assert account.get("primarycontactid") is None


def test_rows_sharing_one_modified_time_across_pages_are_all_synchronised_and_read_again_without_lookups(env):
    # Business Central's SystemModifiedAt is a SQL datetime (ticks of 1/300 s): rows written in one tick share
    # it. Pages of 10 put page boundaries inside such a tie; the watermark stops at the tie's time, so a row
    # committed later with that same time is still found by the next run.
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0, BCSYNC_PAGE_SIZE=10)
    ids = env.bc.seed("customers", [{"number": f"C{i:03d}", "displayName": f"Customer {i}", "city": "Lyon"}
                                    for i in range(30)])
    env.full_sync(["CUSTOMER"])
    tie = dt.datetime.now(dt.timezone.utc)  # after the watermark the full synchronisation left
    for customer in ids[:25]:
        env.bc.update("customers", customer, {"city": "Marseille", "lastModifiedDateTime": tie})
    time.sleep(1)  # the run starts after the tie
    first = env.sync(["CUSTOMER"])
    assert job(first, "CUSTOMER:to-crm").counts.modified == 25
    assert sum(1 for a in env.dv.rows("account") if a.get("address1_city") == "Marseille") == 25

    env.bc.update("customers", ids[25], {"city": "Marseille", "lastModifiedDateTime": tie})  # committed late
    storage = env.services.storage
    before = Counter(storage.requests_by_purpose)
    second = env.sync(["CUSTOMER"])
    assert job(second, "CUSTOMER:to-crm").counts.modified == 1
    assert job(second, "CUSTOMER:to-crm").counts.unchanged == 25
    assert env.dv.get("account", crm_id(env, "CUSTOMER", ids[25]))["address1_city"] == "Marseille"
    # the 25 read again are known unchanged by the versions the first run kept: only the late row is looked up
    # (a range query, then its bucket by key; the 25 would take 18 more)
    lookups = [k for k, n in (storage.requests_by_purpose - before).items() for _ in range(n)
               if k[0] == "query" and k[1].endswith("couplings") and k[2].startswith("CUSTOMER|bc")]
    assert len(lookups) <= 2, storage.requests_by_purpose - before
