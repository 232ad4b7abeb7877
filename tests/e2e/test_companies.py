"""Several Business Central companies in one Dataverse environment (BCSYNC_COMPANIES), end to end: each company's
Dataverse rows carry its bcbi_companyid, its jobs see its rows and the rows of no company, its couplings and state
are its own, the CLI and the HTTP API name it, and the timer starts each company's runs on its own interval."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from azure.functions.queue import QueueMessage

import function_app
from sync.runs import RunKind, RunStatus
from tests.support import FunctionsHost

CUSTOMER = 3


class Later:
    """The real clock, moved on by hand."""

    def __init__(self):
        self.offset = dt.timedelta()

    def now(self):
        return dt.datetime.now(dt.timezone.utc) + self.offset


@pytest.fixture
def two(env):
    """CRONUS (the stack's company, which keeps the tables of BCSYNC_TABLE_PREFIX) and FABRIKAM, every hour."""
    cronus, fabrikam = env.bc.company_id, env.bc.add_company("FABRIKAM Inc.")
    env.configure(BCSYNC_COMPANIES=f"CRONUS={cronus}; FABRIKAM={fabrikam}:60")
    return cronus, fabrikam


def run(env, company: str, kind: RunKind = RunKind.FULL, mappings=("CUSTOMER",)):
    services = env.services.for_company(company)
    started = services.start_run(kind, trigger="test", mappings=list(mappings))
    assert env.worker.run_until(lambda: services.report(started.run_id).run.status is not RunStatus.RUNNING,
                                timeout=120)
    return services.report(started.run_id)


def company_rows(env) -> dict[str, str]:
    """bcbi_company rows: Business Central company id -> row id."""
    return {r["bcbi_externalid"]: r["bcbi_companyid"] for r in env.dv.rows("bcbi_company")}


def accounts(env) -> dict[str, str | None]:
    """account name -> its bcbi_companyid."""
    return {a["name"]: a.get("bcbi_companyid") for a in env.dv.rows("account")}


def test_each_company_stamps_its_rows_sees_its_own_and_unclaimed_ones_and_keeps_its_couplings(env, two):
    cronus, fabrikam = two
    # Business Central made FABRIKAM's company row when its connection was set up; CRONUS has none yet
    fabrikam_row = env.dv.create("bcbi_company", {"bcbi_externalid": fabrikam, "bcbi_name": "FABRIKAM"})
    [a10000] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum (CRONUS)"}])
    [f10000] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum (FABRIKAM)"}],
                           company_id=fabrikam)
    env.dv.seed("account", [{"name": "Nobody's", "customertypecode": CUSTOMER},
                            {"name": "FABRIKAM's own", "customertypecode": CUSTOMER, "bcbi_companyid": fabrikam_row}])

    report = run(env, "CRONUS")
    assert report.run.status is RunStatus.DONE and report.run.company == "CRONUS", report.to_dict()
    rows = company_rows(env)
    cronus_row = rows[cronus]                      # looked up by the company's id; made, as it did not exist
    assert rows == {cronus: cronus_row, fabrikam: fabrikam_row}
    assert next(r for r in env.dv.rows("bcbi_company") if r["bcbi_companyid"] == cronus_row)["bcbi_name"]
    # CRONUS's customer became a CRONUS account; the account of no company became a CRONUS customer, and CRONUS's
    # (claimed, as Business Central stamps the account it made a customer from); FABRIKAM's account stayed away
    assert accounts(env) == {"Adatum (CRONUS)": cronus_row, "Nobody's": cronus_row, "FABRIKAM's own": fabrikam_row}
    assert sorted(c["displayName"] for c in env.bc.rows("customers")) == ["Adatum (CRONUS)", "Nobody's"]

    report = run(env, "FABRIKAM")
    assert report.run.status is RunStatus.DONE and report.run.company == "FABRIKAM", report.to_dict()
    assert accounts(env) == {"Adatum (CRONUS)": cronus_row, "Nobody's": cronus_row, "FABRIKAM's own": fabrikam_row,
                             "Adatum (FABRIKAM)": fabrikam_row}
    assert sorted(c["displayName"] for c in env.bc.rows("customers", company_id=fabrikam)) == [
        "Adatum (FABRIKAM)", "FABRIKAM's own"]
    assert sorted(c["displayName"] for c in env.bc.rows("customers")) == ["Adatum (CRONUS)", "Nobody's"]

    # the same customer number in both companies is coupled to two accounts, each in its company's couplings
    by_name = {a["name"]: a["accountid"] for a in env.dv.rows("account")}
    pairs = {name: {(c.bc_id, c.crm_id) for c in env.services.for_company(name).couplings.list("CUSTOMER")}
             for name in ("CRONUS", "FABRIKAM")}
    assert (a10000, by_name["Adatum (CRONUS)"]) in pairs["CRONUS"]
    assert (f10000, by_name["Adatum (FABRIKAM)"]) in pairs["FABRIKAM"]
    assert not {crm for _, crm in pairs["CRONUS"]} & {crm for _, crm in pairs["FABRIKAM"]}
    assert len(pairs["CRONUS"]) == len(pairs["FABRIKAM"]) == 2

    # a change to FABRIKAM's account reaches FABRIKAM only; CRONUS's scheduled run leaves it alone
    env.dv.update("account", by_name["FABRIKAM's own"], {"telephone1": "555-0199"}, as_user=env.stack.ids.user_systemuser_id)
    run(env, "CRONUS", RunKind.SCHEDULED)
    run(env, "FABRIKAM", RunKind.SCHEDULED)
    [own] = [c for c in env.bc.rows("customers", company_id=fabrikam) if c["displayName"] == "FABRIKAM's own"]
    assert own["phoneNumber"] == "555-0199"
    assert all(c.get("phoneNumber") != "555-0199" for c in env.bc.rows("customers"))


def test_the_cli_and_the_http_api_name_the_company_and_refuse_to_guess(env, two, cli, monkeypatch):
    cronus, fabrikam = two
    env.bc.seed("customers", [{"number": "20000", "displayName": "Trey Research"}], company_id=fabrikam)

    code, _, err = cli("runs")
    assert code == 2 and "Several companies are configured (CRONUS, FABRIKAM)" in err and "--company" in err
    code, _, err = cli("errors", "--company", "CONTOSO")
    assert code == 2 and "There is no company 'CONTOSO'; configured: CRONUS, FABRIKAM" in err

    code, out, err = cli("fullsync", "--company", "fabrikam", "--mapping", "CUSTOMER", "--wait", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["company"] == "FABRIKAM" and report["status"] == "done"
    code, out, _ = cli("--company", fabrikam.upper(), "status")           # by its id, before the command
    assert code == 0 and out.startswith(f"Run {report['run']} of company FABRIKAM (full, cli): done")
    code, out, _ = cli("runs", "--company", "CRONUS", "--json")
    assert code == 0 and json.loads(out) == []                            # CRONUS's job log is its own
    code, out, err = cli("check", "--company", "FABRIKAM", "--json")
    found = {c["check"]: c for c in json.loads(out)["checks"]}
    assert found["Business Central company"]["ok"] and "FABRIKAM Inc." in found["Business Central company"]["detail"]
    assert found["Dataverse table bcbi_company"]["ok"], found["Dataverse table bcbi_company"]

    monkeypatch.setattr(function_app, "_services", env.services)
    host = FunctionsHost(function_app.app)
    refused = host.request("GET", "/api/runs", key=host.FUNCTION_KEY)
    assert refused.status_code == 400 and "Several companies are configured" in json.loads(refused.get_body())["error"]
    listed = json.loads(host.request("GET", "/api/runs", key=host.FUNCTION_KEY,
                                     params={"company": "FABRIKAM"}).get_body())["runs"]
    assert [(r["run"], r["company"]) for r in listed] == [(report["run"], "FABRIKAM")]
    started = host.request("POST", "/api/fullsync", b'{"mappings": ["CUSTOMER"]}', key=host.MASTER_KEY,
                           params={"company": "CRONUS"})
    answer = json.loads(started.get_body())
    assert started.status_code == 202 and answer["company"] == "CRONUS"
    assert answer["status_url"].endswith(f"/api/runs/{answer['run']}?company=CRONUS")
    page = host.request("GET", "/api/console/jobs", key=host.FUNCTION_KEY, params={"company": "FABRIKAM"})
    text = page.get_body().decode()
    assert page.status_code == 200 and "Company: FABRIKAM" in text and 'href="mappings?company=CRONUS"' in text
    page = host.request("GET", "/api/console/jobs", key=host.FUNCTION_KEY)
    text = page.get_body().decode()
    assert page.status_code == 400 and "Choose a company" in text and 'href="mappings?company=FABRIKAM"' in text

    # the connection check asks for what finding and making a company row needs
    env.dv.revoke_privileges(env.stack.ids.integration_user_id, ["prvCreatebcbi_Company"])
    code, out, err = cli("check", "--company", "FABRIKAM", "--json")
    found = {c["check"]: c for c in json.loads(out)["checks"]}
    assert code == 1 and not found["Dataverse table bcbi_company"]["ok"] and "Create" in json.dumps(
        found["Dataverse table bcbi_company"])


def test_the_timer_starts_each_company_on_its_own_interval_and_its_messages_name_it(env, two, monkeypatch):
    later = Later()
    env.configure(clock=later)
    first = env.services.start_scheduled_runs("timer")
    assert set(first) == {"CRONUS", "FABRIKAM"}                         # FABRIKAM's first tick: due
    assert all(r is not None and r.company == name for name, r in first.items())
    later.offset = dt.timedelta(minutes=5)
    assert set(env.services.start_scheduled_runs("timer")) == {"CRONUS"}  # FABRIKAM: an hour between runs
    later.offset = dt.timedelta(minutes=61)
    assert set(env.services.start_scheduled_runs("timer")) == {"CRONUS", "FABRIKAM"}

    # a job message bcsync sent, as the host hands it to the queue trigger (base64 decoded): it names its company,
    # and the trigger runs that company's job
    queue = env.services.queue
    deliveries = list(queue.receive(visibility_timeout=60, max_messages=32))
    bodies = [base64.b64decode(d.content, validate=True) for d in deliveries]
    companies = {json.loads(b)["company"] for b in bodies}
    assert companies == {"CRONUS", "FABRIKAM"}
    fabrikam = next(b for b in bodies if json.loads(b)["company"] == "FABRIKAM")
    message = json.loads(fabrikam)
    monkeypatch.setattr(function_app, "_services", env.services)
    function_app.run_job(QueueMessage(id="m1", body=fabrikam, dequeue_count=1, pop_receipt="p1"))
    job = env.services.for_company("FABRIKAM").runs.get_job(message["run"], message["job"])
    assert job.status.value in ("done", "running", "queued") and job.attempts >= 1
    assert env.services.for_company("CRONUS").runs.get(message["run"]) is None


def test_uncoupling_gives_the_row_back_to_no_company(env, two, cli):
    cronus, fabrikam = two
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"},
                              {"number": "20000", "displayName": "Trey Research"}])
    run(env, "CRONUS")
    mine = company_rows(env)[cronus]
    assert accounts(env) == {"Adatum": mine, "Trey Research": mine}
    adatum = next(a["accountid"] for a in env.dv.rows("account") if a["name"] == "Adatum")
    code, _, err = cli("uncouple", "CUSTOMER", "--crm", adatum, "--company", "CRONUS")
    assert code == 0, err
    assert accounts(env) == {"Adatum": None, "Trey Research": mine}
    code, _, err = cli("uncouple", "CUSTOMER", "--all", "--company", "CRONUS")
    assert code == 0, err
    assert accounts(env) == {"Adatum": None, "Trey Research": None}
    # no company's now: once someone changes it, FABRIKAM's next run sees it, and claims it
    env.dv.update("account", adatum, {"telephone1": "555-0100"}, as_user=env.stack.ids.user_systemuser_id)
    run(env, "FABRIKAM")
    theirs = company_rows(env)[fabrikam]
    assert accounts(env) == {"Adatum": theirs, "Trey Research": None}
    assert [c["displayName"] for c in env.bc.rows("customers", company_id=fabrikam)] == ["Adatum"]


def test_a_dry_run_of_a_company_writes_not_even_its_company_row(env, two):
    cronus, fabrikam = two
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}], company_id=fabrikam)
    env.dv.seed("account", [{"name": "Nobody's", "customertypecode": CUSTOMER}])
    services = env.services.for_company("FABRIKAM")
    started = services.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"], dry=True)
    assert env.worker.run_until(lambda: services.report(started.run_id).run.status is not RunStatus.RUNNING,
                                timeout=120)
    report = services.report(started.run_id).to_dict()
    planned = {job["job"]: job["counts"] for job in report["jobs"]}
    assert report["dry_run"] and report["company"] == "FABRIKAM"
    assert planned["CUSTOMER:to-crm"]["inserted"] == 1 and planned["CUSTOMER:from-crm"]["inserted"] == 1, planned
    assert env.dv.rows("bcbi_company") == [] and accounts(env) == {"Nobody's": None}


def test_two_company_rows_made_in_the_same_second_settle_on_one(env, two):
    """Two workers that each made the company's row: both take the same one, even when created in the same second
    (createdon ties; the row id breaks it)."""
    cronus, _ = two
    same = "2026-01-01T00:00:00Z"
    made = [env.dv.create("bcbi_company", {"bcbi_externalid": cronus, "bcbi_name": "CRONUS",
                                           "overriddencreatedon": same}) for _ in range(6)]
    env.dv.seed("account", [{"name": "Nobody's", "customertypecode": CUSTOMER}])
    run(env, "CRONUS")
    assert accounts(env) == {"Nobody's": min(made)}


def test_a_company_whose_run_could_not_start_is_tried_at_the_next_tick_and_recovers_at_every_tick(env, two,
                                                                                                   monkeypatch):
    from sync.errors import ServiceUnavailableError

    later = Later()
    env.configure(clock=later)
    fabrikam = env.services.for_company("FABRIKAM")
    real, recovered = type(fabrikam).start_scheduled_run, []

    def refused(self, trigger, dry=False):
        if self.company.name == "FABRIKAM":
            raise ServiceUnavailableError("Table Storage is down.")
        return real(self, trigger, dry)

    monkeypatch.setattr(type(fabrikam), "start_scheduled_run", refused)
    first = env.services.start_scheduled_runs("timer")
    assert isinstance(first["FABRIKAM"], ServiceUnavailableError) and first["CRONUS"] is not None
    monkeypatch.setattr(type(fabrikam), "start_scheduled_run", real)
    later.offset = dt.timedelta(minutes=5)
    assert set(env.services.start_scheduled_runs("timer")) == {"CRONUS", "FABRIKAM"}  # not an hour later
    # FABRIKAM's interval has not passed now: its run does not start, its stranded jobs are looked for all the same
    monkeypatch.setattr(type(fabrikam.coordinator), "recover", lambda self, runs=20: recovered.append(self) or 0)
    later.offset = dt.timedelta(minutes=10)
    assert set(env.services.start_scheduled_runs("timer")) == {"CRONUS"}
    assert fabrikam.coordinator in recovered


def test_the_companies_share_business_centrals_limit_of_requests_in_flight(env, two):
    """Business Central serves five requests at a time per user, whatever the company they name."""
    cronus, fabrikam = (env.services.for_company(name).business_central for name in ("CRONUS", "FABRIKAM"))
    assert cronus.company_id != fabrikam.company_id
    assert cronus.api.limit is fabrikam.api.limit and cronus.api.limit.maximum == 5


def test_with_one_company_reports_name_no_company_as_before(env, cli):
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    code, out, err = cli("fullsync", "--mapping", "CUSTOMER", "--wait", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert "company" not in report and report["status"] == "done"
    code, out, _ = cli("status")
    assert code == 0 and out.startswith(f"Run {report['run']} (full, cli): done"), out


def test_a_sales_quote_of_no_company_is_processed_by_the_home_company_only(env):
    from .test_sales_quotes import QUOTES, processing_on, product_line, quote

    processing_on(env)
    made = quote(env, [product_line(env, "1000", 1, 100)])
    cronus, fabrikam = env.bc.company_id, env.bc.add_company("FABRIKAM Inc.")
    env.configure(BCSYNC_COMPANIES=f"FABRIKAM={fabrikam}; CRONUS={cronus}")  # CRONUS: BCSYNC_BC_COMPANY_ID's
    report = run(env, "FABRIKAM", mappings=(QUOTES,))
    assert report.run.status is RunStatus.DONE and report.failures == [], report.to_dict()
    assert env.bc.rows("salesQuotes", company_id=fabrikam) == []
    report = run(env, "CRONUS", mappings=(QUOTES,))
    assert report.run.status is RunStatus.DONE and report.failures == [], report.to_dict()
    [theirs] = env.bc.rows("salesQuotes")
    assert theirs["externalDocumentNumber"] == env.dv.get("quote", made)["name"].upper()


def test_the_home_companys_rows_from_one_company_days_become_its_own_before_any_company_runs(env):
    """A deployment that grows from one company to several: the rows its company coupled carry no company (one
    company stamps nothing); before any company's first run they become that company's, so another company never
    sees them."""
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    env.dv.seed("account", [{"name": "Trey Research", "customertypecode": CUSTOMER}])
    report = run(env, env.bc.company_id)
    assert report.run.status is RunStatus.DONE and accounts(env) == {"Adatum": None, "Trey Research": None}
    env.dv.seed("account", [{"name": "Nobody's", "customertypecode": CUSTOMER}])  # never coupled

    cronus, fabrikam = env.bc.company_id, env.bc.add_company("FABRIKAM Inc.")
    env.configure(BCSYNC_COMPANIES=f"CRONUS={cronus}; FABRIKAM={fabrikam}")
    report = run(env, "FABRIKAM")  # FABRIKAM first: CRONUS's rows are CRONUS's already
    assert report.run.status is RunStatus.DONE, report.to_dict()
    rows = company_rows(env)
    assert accounts(env) == {"Adatum": rows[cronus], "Trey Research": rows[cronus], "Nobody's": rows[fabrikam]}
    assert [c["displayName"] for c in env.bc.rows("customers", company_id=fabrikam)] == ["Nobody's"]


def test_a_notification_before_any_run_writes_nothing_and_its_job_claims_the_home_companys_rows(env):
    """The receivers write Table Storage only: the home company's rows from its one-company days are claimed by the
    queue worker before the targeted job runs, when no run of the timer or the HTTP API claimed them yet."""
    from sync.model import Side
    from sync.notifications import Change, Notification

    [adatum] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    assert run(env, env.bc.company_id).run.status is RunStatus.DONE
    cronus, fabrikam = env.bc.company_id, env.bc.add_company("FABRIKAM Inc.")
    env.configure(BCSYNC_COMPANIES=f"CRONUS={cronus}; FABRIKAM={fabrikam}", BCSYNC_WEBHOOK_WINDOW_SECONDS=0)
    env.bc.update("customers", adatum, {"city": "Oslo"})
    versions = {a["accountid"]: a["versionnumber"] for a in env.dv.rows("account")}
    summary = env.services.notify([Notification(Side.BC, "customers", Change.UPDATED, adatum, cronus)])
    assert {a["accountid"]: a["versionnumber"] for a in env.dv.rows("account")} == versions  # nothing claimed yet
    services, run_id = env.services.for_company("CRONUS"), summary["companies"]["CRONUS"]["CUSTOMER"]["run"]
    assert env.worker.run_until(lambda: services.report(run_id).run.status is not RunStatus.RUNNING, timeout=60)
    assert accounts(env) == {"Adatum": company_rows(env)[cronus]}
    assert env.dv.rows("account")[0]["address1_city"] == "Oslo"


def test_a_claim_of_the_home_companys_rows_that_can_never_work_keeps_no_job_message_from_running(env, monkeypatch,
                                                                                                   caplog):
    from shared.wiring import Services
    from sync.errors import TerminalError
    from sync.model import Side
    from sync.notifications import Change, Notification

    [adatum] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    assert run(env, env.bc.company_id).run.status is RunStatus.DONE
    cronus, fabrikam = env.bc.company_id, env.bc.add_company("FABRIKAM Inc.")
    env.configure(BCSYNC_COMPANIES=f"CRONUS={cronus}; FABRIKAM={fabrikam}", BCSYNC_WEBHOOK_WINDOW_SECONDS=0)

    def refused(self, mapping, table):
        raise TerminalError("400 the claim is refused")

    monkeypatch.setattr(Services, "_claim_coupled", refused)
    env.bc.update("customers", adatum, {"city": "Oslo"})
    summary = env.services.notify([Notification(Side.BC, "customers", Change.UPDATED, adatum, cronus)])
    services, run_id = env.services.for_company("CRONUS"), summary["companies"]["CRONUS"]["CUSTOMER"]["run"]
    assert env.worker.run_until(lambda: services.report(run_id).run.status is not RunStatus.RUNNING, timeout=20)
    assert services.report(run_id).run.status is RunStatus.DONE
    assert env.dv.rows("account")[0]["address1_city"] == "Oslo"
    assert "could not be claimed: 400 the claim is refused" in caplog.text
