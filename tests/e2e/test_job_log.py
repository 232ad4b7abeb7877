"""The job log: every job's counts and timings, listed from the CLI and over HTTP, and a retention that
never takes away what an unresolved error still refers to."""

from __future__ import annotations

import datetime as dt
import json

import azure.functions as func

import function_app


class DaysAgo:
    def __init__(self, days):
        self.offset = dt.timedelta(days=days)

    def now(self):
        return dt.datetime.now(dt.timezone.utc) - self.offset


def test_jobs_are_listed_with_counts_and_timings_and_old_runs_are_purged_unless_an_error_needs_them(
        env, cli, monkeypatch):
    env.dv.seed("systemuser", [{"fullname": "Alicia Thornber", "internalemailaddress": "at@example.com",
                                "islicensed": True}])
    env.bc.seed("salespeoplePurchasers", [{"code": "AT", "displayName": "Alicia", "email": "at@example.com"},
                                          {"code": "JR", "displayName": "Jim", "email": "jim@example.com"}])
    [customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum", "salespersonCode": "JR"}])
    env.configure(clock=DaysAgo(3))                               # these two runs are three days old
    failing = env.full_sync(["SALESPEOPLE", "CUSTOMER"])          # the customer fails: JR is no salesperson
    quiet = env.sync(["SALESPEOPLE"])
    env.configure(clock=None)

    code, out, _ = cli("runs", "--json")
    listed = json.loads(out)
    assert code == 0 and [r["run"] for r in listed] == [quiet.run.run_id, failing.run.run_id]
    jobs = {j["job"]: j for j in listed[1]["jobs"]}
    assert jobs["SALESPEOPLE:from-crm"]["counts"]["coupled"] == 1   # Alicia matched AT by e-mail
    assert jobs["CUSTOMER:to-crm"]["counts"]["failed"] == 1
    assert all(j["seconds"] is not None and j["seconds"] >= 0 and j["started_at"] for j in jobs.values())
    code, out, _ = cli("runs", "--mapping", "CUSTOMER")
    assert "CUSTOMER:to-crm" in out and "SALESPEOPLE" not in out and failing.run.run_id in out

    monkeypatch.setattr(function_app, "_services", env.services)
    handler = function_app.list_runs.build().get_user_function()
    body = json.loads(handler(func.HttpRequest("GET", "http://localhost/api/runs", body=b"",
                                               params={"limit": "1"})).get_body())
    assert [r["run"] for r in body["runs"]] == [quiet.run.run_id]
    quiet_counts = body["runs"][0]["jobs"][0]["counts"]
    # quiet: the Sales change feed tells no change since the full synchronisation, so nothing is even read
    assert quiet_counts["inserted"] + quiet_counts["modified"] + quiet_counts["failed"] == 0

    assert env.services.purge_runs(0) == 0 and cli("runs", "--purge", "--days", "4")[1].startswith("Purged 0")
    # a retention of 2 days: both runs are old enough, but the failed customer still refers to the first
    code, out, _ = cli("runs", "--purge", "--days", "2")
    assert code == 0 and "Purged 1 run" in out
    assert [r.run_id for r in env.services.runs.list_runs()] == [failing.run.run_id]
    assert env.services.runs.jobs(quiet.run.run_id) == []
    assert len(env.errors()) == 1                                  # errors are never purged

    env.bc.update("customers", customer, {"salespersonCode": "AT"})
    env.sync(["CUSTOMER"])
    assert env.errors() == []                                      # resolved: nothing holds the old run now
    newest = env.services.runs.list_runs()[0].run_id                # today's run stays
    env.services.purge_runs(2)
    assert [r.run_id for r in env.services.runs.list_runs()] == [newest]
