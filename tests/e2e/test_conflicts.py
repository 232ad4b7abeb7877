"""A record edited on both sides between two runs: different fields are merged, the same field is an
update conflict that overwrites nothing unless the mapping's resolution says which side wins."""

from __future__ import annotations

from .conftest import job


def _pair(env):
    [customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum", "city": "Atlanta",
                                            "phoneNumber": "111"}])
    env.full_sync(["CUSTOMER"])
    [account] = env.dv.rows("account")
    return customer, account["accountid"]


def _edit_in_sales(env, account, values):
    env.dv.update("account", account, values, as_user=env.stack.ids.user_systemuser_id)


def test_different_fields_changed_on_both_sides_are_merged(env):
    customer, account = _pair(env)
    env.bc.update("customers", customer, {"phoneNumber": "222"})
    _edit_in_sales(env, account, {"address1_city": "Denver"})
    report = env.sync(["CUSTOMER"])
    assert env.errors() == []
    assert env.bc.get("customers", customer)["city"] == "Denver" and env.bc.get("customers", customer)["phoneNumber"] == "222"
    assert env.dv.get("account", account)["telephone1"] == "222" and env.dv.get("account", account)["address1_city"] == "Denver"
    assert job(report, "CUSTOMER:to-crm").counts.modified == 1 and job(report, "CUSTOMER:from-crm").counts.modified == 1
    again = env.sync(["CUSTOMER"])                     # and nothing echoes back
    assert sum(j.counts.modified + j.counts.inserted for j in again.jobs) == 0


def test_the_same_field_changed_on_both_sides_is_a_conflict_until_a_resolution_picks_a_winner(env):
    customer, account = _pair(env)
    env.bc.update("customers", customer, {"city": "Boston", "phoneNumber": "222"})
    _edit_in_sales(env, account, {"address1_city": "Denver"})
    report = env.sync(["CUSTOMER"])
    assert job(report, "CUSTOMER:to-crm").counts.failed == 1
    errors = {e.direction.value: e for e in env.errors()}
    conflict = errors["to-crm"]
    assert conflict.code == "UpdateConflict" and conflict.field == "City"
    assert conflict.message.startswith("Customer 10000: Both sides changed City (city <-> address1_city)")
    assert "source 'Boston', destination 'Denver'" in conflict.message
    # nothing is overwritten, not even the field that did not conflict: the record waits as a whole
    assert env.dv.get("account", account)["address1_city"] == "Denver"
    assert env.bc.get("customers", customer)["city"] == "Boston"

    env.services.set_mapping("CUSTOMER", {"update_conflict": "get-from-crm"})   # Sales wins
    env.sync(["CUSTOMER"])
    assert env.bc.get("customers", customer)["city"] == "Denver"
    assert env.dv.get("account", account)["address1_city"] == "Denver"
    assert env.dv.get("account", account)["telephone1"] == "222"      # the other change still arrives
    assert env.errors() == []

    env.services.set_mapping("CUSTOMER", {"update_conflict": "send-to-crm"})    # Business Central wins
    env.bc.update("customers", customer, {"displayName": "Adatum (BC)"})
    _edit_in_sales(env, account, {"name": "Adatum (Sales)"})
    report = env.sync(["CUSTOMER"])
    assert env.dv.get("account", account)["name"] == "Adatum (BC)"
    assert env.bc.get("customers", customer)["displayName"] == "Adatum (BC)"
    assert job(report, "CUSTOMER:to-crm").counts.modified == 1 and env.errors() == []


def test_a_sales_edit_made_while_bcsync_writes_the_account_is_not_overwritten(env, monkeypatch):
    customer, account = _pair(env)
    env.bc.update("customers", customer, {"city": "Boston"})
    client, send = env.services.dataverse, env.services.dataverse.batch

    def edited_in_between(requests_):
        monkeypatch.setattr(client, "batch", send)
        _edit_in_sales(env, account, {"address1_city": "Denver"})   # after bcsync read the account
        return send(requests_)

    monkeypatch.setattr(client, "batch", edited_in_between)
    report = env.sync(["CUSTOMER"])
    # the update carried the version bcsync read: Sales refused it, and the record failed, not the run
    assert job(report, "CUSTOMER:to-crm").counts.failed == 1 and job(report, "CUSTOMER:to-crm").counts.modified == 0
    assert env.dv.get("account", account)["address1_city"] == "Denver"
    assert env.bc.get("customers", customer)["city"] == "Boston"
    # seen again, both sides changed City: the conflict the mapping's resolution decides, nothing lost meanwhile
    env.sync(["CUSTOMER"])
    conflict = next(e for e in env.errors() if e.direction.value == "to-crm")
    assert conflict.code == "UpdateConflict" and conflict.field == "City"
    assert env.dv.get("account", account)["address1_city"] == "Denver"
    assert env.bc.get("customers", customer)["city"] == "Boston"
