"""What bcsync writes to a submitted Sales order goes in three updates (Active, the columns, Submitted
again), as Business Central's own integration writes it. A worker killed between two of them leaves
the order Active; the next worker completes the sequence, without a second Business Central order and
without overriding what a user did to the order meanwhile."""

from __future__ import annotations

from sync.model import Side
from sync.runs import RunKind, RunStatus

from .conftest import job, killed_after, taken_over
from .test_sales_orders import product_line, setup, submitted_order

MAPPING = "SALESORDER-ORDER"


def killed_midway(env, values: dict):
    """A scheduled run of SALESORDER-ORDER whose worker dies right after an update of a Sales order with
    exactly these values reached Dataverse."""
    def update(table, changes):
        return table.logical_name == "salesorder" and any(c.values == values for c in changes)

    return killed_after(env, Side.CRM, "update", update, RunKind.SCHEDULED, [MAPPING])


def job_taken_over(env, run):
    """Another worker (a new process) finishes the run; the job from Sales."""
    report = taken_over(env, run)
    assert report.run.status is RunStatus.DONE
    return job(report, f"{MAPPING}:from-crm")


def state(env, order):
    row = env.dv.get("salesorder", order)
    return row["statecode"], row["statuscode"]


def test_killed_between_the_steps_of_stamping_a_new_order_the_next_worker_submits_it_again(env):
    setup(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true", BCSYNC_JOB_LEASE_SECONDS=2)
    order = submitted_order(env, [product_line(env, "1000", 1, 100)])

    run = killed_midway(env, {"statecode": 0})           # re-activated to be stamped, then the worker died
    [created] = env.bc.rows("salesOrders")
    assert state(env, order) == (0, 1) and env.dv.get("salesorder", order)["lastbackofficesubmit"] is None
    assert [w.row_id for w in env.services.state.write_backs(MAPPING)] == [order]

    job_taken_over(env, run)
    assert state(env, order) == (1, 3)                   # Submitted again, never left Active
    sales_order = env.dv.get("salesorder", order)
    assert sales_order["lastbackofficesubmit"] is not None
    assert sales_order["submitstatusdescription"] == f"Business Central sales order {created['number']}"
    assert env.bc.rows("salesOrders") == [created] and env.services.state.write_backs(MAPPING) == []
    again = env.sync([MAPPING])
    assert job(again, f"{MAPPING}:from-crm").counts.inserted == 0 and len(env.bc.rows("salesOrders")) == 1


def test_killed_while_setting_an_order_back_to_active_the_next_worker_clears_its_stamp(env):
    setup(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true", BCSYNC_JOB_LEASE_SECONDS=2)
    order = submitted_order(env, [product_line(env, "1000", 1, 100)])
    env.sync([MAPPING])
    [created] = env.bc.rows("salesOrders")
    env.bc.delete("salesOrders", created["id"])          # deleted by a Business Central user

    run = killed_midway(env, {"statecode": 0, "statuscode": 2})
    assert state(env, order) == (0, 2)                   # Active / Pending, the old stamp still on it
    assert env.dv.get("salesorder", order)["lastbackofficesubmit"] is not None
    assert env.couplings(MAPPING) == []                  # what is left to do is the recorded write-back

    job_taken_over(env, run)
    sales_order = env.dv.get("salesorder", order)
    assert state(env, order) == (0, 2)
    assert (sales_order["lastbackofficesubmit"], sales_order["submitstatusdescription"]) == (None, None)
    assert env.services.state.write_backs(MAPPING) == []

    # submitted again, it is not yet sent: one new Business Central order
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=env.stack.ids.user_systemuser_id)
    env.sync([MAPPING])
    [recreated] = env.bc.rows("salesOrders")
    assert recreated["id"] != created["id"] and state(env, order) == (1, 3)


def test_an_order_a_user_changed_while_it_was_left_active_keeps_what_the_user_did(env):
    setup(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true", BCSYNC_JOB_LEASE_SECONDS=2)
    user = env.stack.ids.user_systemuser_id
    order = submitted_order(env, [product_line(env, "1000", 1, 100)])
    run = killed_midway(env, {"statecode": 0})
    [created] = env.bc.rows("salesOrders")
    # the order looks editable again, and a salesperson edits it before the next worker comes
    env.dv.update("salesorder", order, {"name": "PO 4711 with a bell"}, as_user=user)

    completed = job_taken_over(env, run)
    sales_order = env.dv.get("salesorder", order)
    assert state(env, order) == (0, 1) and sales_order["name"] == "PO 4711 with a bell"   # not submitted over them
    assert sales_order["submitstatusdescription"] == f"Business Central sales order {created['number']}"
    assert any("changed in Sales while bcsync was writing to it" in note for note in completed.notes)
    assert env.services.state.write_backs(MAPPING) == []

    # submitted again by the user: it is known as sent, so no second Business Central order
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    env.sync([MAPPING])
    assert env.bc.rows("salesOrders") == [created]
