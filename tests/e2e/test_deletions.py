"""Deletions on either side, found by Dataverse change tracking and by reconciling coupled Business
Central ids, and handled by the mapping's deletion-conflict resolution (none, restore, remove coupling)."""

from __future__ import annotations

import time

from .conftest import job


def _customer_pair(env):
    [customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum", "city": "Atlanta"}])
    env.full_sync(["CUSTOMER"])
    [account] = [r["accountid"] for r in env.dv.rows("account")]
    return customer, account


def _pair_of(env, customer):
    return next((c for c in env.couplings("CUSTOMER") if c.bc_id == customer), None)


def test_an_account_deleted_in_sales_is_reported_then_restored(env):
    customer, account = _customer_pair(env)
    env.dv.delete("account", account)

    # change tracking tells the deletion at once: the Sales -> BC job reads the feed and hands the customer
    # to a BC -> Sales pass, whose deletion-conflict resolution decides (and whose failure it is)
    report = env.sync(["CUSTOMER"])
    assert job(report, "CUSTOMER:from-crm").counts.failed == 1
    [error] = env.errors()
    assert error.code == "DeletionConflict" and error.source_id == customer and error.target_id == account
    assert error.direction.value == "to-crm"
    assert error.message.startswith(f"Customer 10000 cannot be updated because its coupled account {account} "
                                    "was deleted")
    assert _pair_of(env, customer).crm_id == account   # nothing is decided for the user

    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "restore"})
    report = env.sync(["CUSTOMER"])              # the failed record is retried with the new resolution
    to_crm = job(report, "CUSTOMER:to-crm")
    assert to_crm.counts.uncoupled == 1 and to_crm.counts.inserted == 1
    [restored] = env.dv.rows("account")
    assert restored["name"] == "Adatum" and restored["address1_city"] == "Atlanta"
    assert _pair_of(env, customer).crm_id == restored["accountid"]
    assert env.errors() == []
    assert len(env.bc.rows("customers")) == 1


def test_a_customer_deleted_in_business_central_is_found_by_reconciliation(env):
    env.configure(BCSYNC_RECONCILE_MINUTES=0)   # look at the coupled ids at every run
    customer, account = _customer_pair(env)
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "remove-coupling"})
    env.bc.delete("customers", customer)

    report = env.sync(["CUSTOMER"])
    from_crm = job(report, "CUSTOMER:from-crm")
    assert from_crm.counts.uncoupled == 1 and from_crm.counts.failed == 0
    assert any("couplings removed because the Customer was deleted" in n for n in from_crm.notes)
    assert env.couplings("CUSTOMER") == []
    assert env.dv.get("account", account)["name"] == "Adatum"     # the account stays, uncoupled
    assert env.bc.rows("customers") == [] and env.errors() == []

    # the uncoupled account is not recreated by scheduled runs (synchronise only coupled records)
    env.dv.update("account", account, {"telephone1": "555-0100"}, as_user=env.stack.ids.user_systemuser_id)
    env.sync(["CUSTOMER"])
    assert env.bc.rows("customers") == []


def test_a_customer_deleted_in_business_central_is_restored_from_sales(env):
    env.configure(BCSYNC_RECONCILE_MINUTES=0)
    customer, account = _customer_pair(env)
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "restore"})
    env.bc.delete("customers", customer)
    report = env.sync(["CUSTOMER"])
    from_crm = job(report, "CUSTOMER:from-crm")
    assert from_crm.counts.uncoupled == 1 and from_crm.counts.inserted == 1
    [again] = env.bc.rows("customers")
    assert again["displayName"] == "Adatum" and again["id"] != customer
    assert _pair_of(env, again["id"]).crm_id == account


def test_reconciliation_waits_for_its_interval(env):
    customer, account = _customer_pair(env)          # default: every 360 minutes
    env.bc.delete("customers", customer)
    report = env.sync(["CUSTOMER"])
    assert job(report, "CUSTOMER:from-crm").counts.uncoupled == 0 and env.errors() == []
    assert _pair_of(env, customer) is not None


def test_a_one_way_mappings_source_deleted_drops_the_coupling_and_keeps_the_copy(env):
    env.configure(BCSYNC_RECONCILE_MINUTES=0)
    [unit] = env.bc.seed("unitsOfMeasure", [{"code": "BOX", "displayName": "Box"}])
    env.full_sync(["UNIT OF MEASURE"])
    assert len(env.couplings("UNIT OF MEASURE")) == 1
    groups = env.dv.rows("uomschedule")
    env.bc.delete("unitsOfMeasure", unit)
    report = env.sync(["UNIT OF MEASURE"])
    assert job(report, "UNIT OF MEASURE:to-crm").counts.uncoupled == 1
    assert env.couplings("UNIT OF MEASURE") == []
    assert env.dv.rows("uomschedule") == groups and env.errors() == []


def test_an_expired_change_tracking_token_falls_back_to_reconciliation(env):
    customer, account = _customer_pair(env)
    env.dv.change_tracking_days = 0          # every delta link older than a second has expired
    try:
        time.sleep(1.2)
        env.dv.delete("account", account)
        env.sync(["CUSTOMER"])
    finally:
        env.dv.change_tracking_days = 7
    [error] = env.errors()
    assert error.code == "DeletionConflict" and error.source_id == customer
