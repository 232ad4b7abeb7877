"""The timer through the stack: only due mappings run, quiet ones are held, and a change on either
side wakes a held mapping before its inactivity timeout."""

from __future__ import annotations

from azure.functions.timer import TimerRequest

import function_app
from tests.support import rewind_schedules


def _tick(env, monkeypatch):
    """One timer tick, then the queue drained; the mappings it ran, with why."""
    monkeypatch.setattr(function_app, "_services", env.services)
    before = {r.run_id for r in env.services.runs.list_runs()}
    function_app.scheduled_sync.build().get_user_function()(TimerRequest(past_due=False))
    [run] = [r for r in env.services.runs.list_runs() if r.run_id not in before] or [None]
    if run is None:
        return {}
    assert env.worker.run_until(lambda: env.services.report(run.run_id).run.status.value != "running", 120)
    return {j.mapping: j.reason for j in env.services.report(run.run_id).jobs}


def test_quiet_mappings_are_held_until_a_change_or_their_inactivity_timeout(env, monkeypatch):
    [customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    env.full_sync()
    [account] = env.dv.rows("account")
    schedules = env.services.state.schedules()
    assert not schedules["CUSTOMER"].held and schedules["CONTACT"].held   # the full sync created an account
    assert _tick(env, monkeypatch) == {}                                 # everything ran a moment ago

    rewind_schedules(env.services, 31)
    due = _tick(env, monkeypatch)
    assert due["CUSTOMER"] == "every 30 minutes" and "CONTACT" not in due and "ITEM-PRODUCT" not in due
    assert env.services.state.schedules()["CUSTOMER"].held          # that run found nothing to do

    rewind_schedules(env.services, 31)
    assert "CUSTOMER" not in _tick(env, monkeypatch)                 # held, and nothing changed
    rewind_schedules(env.services, 31)
    env.dv.update("account", account["accountid"], {"telephone1": "555-0100"},
                  as_user=env.stack.ids.user_systemuser_id)            # a change in Sales wakes it
    assert _tick(env, monkeypatch)["CUSTOMER"] == "held, woken by changes"
    assert env.bc.get("customers", customer)["phoneNumber"] == "555-0100"

    rewind_schedules(env.services, 31)
    env.bc.update("customers", customer, {"displayName": "Adatum Corporation"})   # so does one in BC
    assert _tick(env, monkeypatch)["CUSTOMER"] == "every 30 minutes"  # the last run was busy: not held
    assert env.dv.get("account", account["accountid"])["name"] == "Adatum Corporation"

    rewind_schedules(env.services, 31)
    _tick(env, monkeypatch)                                           # a quiet run holds it again
    rewind_schedules(env.services, 721)                               # CUSTOMER's inactivity timeout
    assert _tick(env, monkeypatch)["CUSTOMER"] == "inactivity timeout of 720 minutes"


def test_a_partial_payment_wakes_the_held_posted_invoices(env, monkeypatch):
    """A partial payment does not move the invoice's lastModifiedDateTime; the look at a held mapping
    finds it all the same, by the open invoices' amounts."""
    from .test_posted_invoices import post_invoice, setup

    setup(env)
    posted = post_invoice(env, [{"lineType": "Item", "lineObjectNumber": "1000", "quantity": 1}])
    env.sync()
    rewind_schedules(env.services, 31)
    _tick(env, monkeypatch)
    assert env.services.state.schedules()["POSTEDSALESINV-INV"].held
    rewind_schedules(env.services, 31)
    assert "POSTEDSALESINV-INV" not in _tick(env, monkeypatch)        # held, and nothing changed
    env.bc.apply_payment(posted, 40)
    rewind_schedules(env.services, 31)
    assert _tick(env, monkeypatch)["POSTEDSALESINV-INV"] == "held, woken by changes"
    [invoice] = env.dv.rows("invoice")
    assert (invoice["statecode"], invoice["statuscode"]) == (2, 100002)
