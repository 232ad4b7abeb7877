"""Business Central picks the ids of the rows bcsync creates there, so a repeated insert cannot find its
row by id. Rows no match criterion can find again (an opportunity) are recorded before they are sent:
after a lost answer, or a worker killed right after Business Central created them, the next attempt
couples the rows that were created instead of creating them twice (opportunities; contacts without an
e-mail, whose card fields are compared too)."""

from __future__ import annotations

from collections import Counter

from sync.model import Side
from sync.runs import RunKind, RunStatus

from .conftest import job, killed_after, taken_over

MAPPING = "OPPORTUNITY"


def opportunities(env, names):
    """Sales opportunities of one contact whose company is coupled, the contact coupled too."""
    [contoso] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3}])
    [bob] = env.dv.seed("contact", [{"firstname": "Bob", "lastname": "Smith", "parentcustomerid": contoso,
                                     "emailaddress1": "bob@contoso.example"}])
    env.full_sync(["CUSTOMER", "CONTACT"])
    env.dv.seed("opportunity", [{"name": name, "parentcontactid": bob, "customerid": contoso} for name in names])


def assert_each_once_and_coupled(env, names):
    created = Counter(o["description"] for o in env.bc.rows("opportunities"))
    assert created == Counter(names)
    couplings = env.couplings(MAPPING)
    assert len(couplings) == len(names) and len({c.bc_id for c in couplings}) == len(names)
    assert env.errors() == [] and env.services.state.pending_inserts(MAPPING) == []


# two opportunities alike in every field written: each still gets a row of its own
NAMES = [f"Deal {i:02d}" for i in range(28)] + ["Twin deal", "Twin deal"]


def test_a_lost_answer_to_a_batch_of_opportunities_is_repeated_without_duplicates(env):
    env.configure(BCSYNC_PAGE_SIZE=10)
    opportunities(env, NAMES)
    # the third $batch of creates (the twins among them) is applied, but its answer never arrives
    env.bc.faults.lose_answers(times=1, path_contains="/api/v2.0/$batch", methods=("POST",), after=2)
    report = env.full_sync([MAPPING])
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert not env.bc.faults.faults                     # the answer was indeed lost
    from_crm = job(report, f"{MAPPING}:from-crm")
    assert from_crm.attempts >= 2                       # the job stopped on the unknown outcome and resumed
    assert from_crm.counts.inserted == 20 and from_crm.counts.coupled == 10
    assert_each_once_and_coupled(env, NAMES)
    again = env.sync([MAPPING])
    assert sum(j.counts.inserted + j.counts.modified for j in again.jobs) == 0


def test_a_worker_killed_right_after_business_central_created_opportunities_leaves_no_duplicates(env):
    env.configure(BCSYNC_PAGE_SIZE=10, BCSYNC_JOB_LEASE_SECONDS=2)
    opportunities(env, NAMES)
    inserts = []

    def second_page(table, rows):   # the second page is created in Business Central, its couplings never saved
        inserts.append(len(rows))
        return table.entity_set == "opportunities" and len(inserts) == 2

    run = killed_after(env, Side.BC, "insert", second_page, RunKind.FULL, [MAPPING])
    assert len(env.bc.rows("opportunities")) == 20 and len(env.couplings(MAPPING)) == 10
    assert len(env.services.state.pending_inserts(MAPPING)) == 10

    report = taken_over(env, run)
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert_each_once_and_coupled(env, NAMES)


def test_a_lost_answer_to_a_batch_of_contacts_without_an_e_mail_is_repeated_without_duplicates(env):
    [contoso] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3}])
    env.full_sync(["CUSTOMER"])
    people = [("Bob", "Smith"), ("Ann", "Lee"), ("Ann", "Lee")]   # no e-mail to match them by
    env.dv.seed("contact", [{"firstname": first, "lastname": last, "parentcustomerid": contoso}
                            for first, last in people])
    env.bc.faults.lose_answers(times=1, path_contains="/api/v2.0/$batch", methods=("POST",))
    report = env.full_sync(["CONTACT"])
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert not env.bc.faults.faults
    assert job(report, "CONTACT:from-crm").attempts >= 2
    created = Counter(c["displayName"] for c in env.bc.rows("contacts") if c["type"] == "Person")
    assert created == Counter(["Bob Smith", "Ann Lee", "Ann Lee"])
    cards = Counter((c["First_Name"], c["Surname"]) for c in env.bc.rows("ContactCard") if c["Surname"])
    assert cards == Counter(people)
    assert len(env.couplings("CONTACT")) == 3 and env.errors() == []
    assert env.services.state.pending_inserts("CONTACT") == []
