"""Dry runs through the stack: a full synchronisation and a scheduled run planned for real, reported per record
(inserted, modified field by field, coupled, deleted, a conflict, skipped), writing nothing to either service, the
couplings or the state; then a real run does what the dry run said. The CLI flags and the HTTP option too."""

from __future__ import annotations

import json

import azure.functions as func
import requests

import function_app
from sync.runs import RunKind, RunStatus


def _writes(env) -> dict[str, int]:
    """Requests that change something, per simulator (their admin paths are not counted)."""
    counts = {}
    for name, base in (("Sales", env.stack.dataverse_url), ("Business Central", env.stack.bc_server_url)):
        answer = requests.get(f"{base}/_sim/requests", verify=str(env.stack.ca.ca_file), timeout=10).json()
        counts[name] = answer["write"] + answer["batch"]
    return counts


def _stored(env) -> dict:
    """Every entity of the couplings, failed records and state (watermarks, feed cursors, ...), with its version."""
    return {name: {(e["PartitionKey"], e["RowKey"]): e.metadata["etag"] for e in table.query_entities("")}
            for name, table in (("couplings", env.services.couplings.table), ("errors", env.services.errors.table),
                                ("state", env.services.state.table))}


def _dry(env, kind: RunKind, mappings):
    run = env.services.start_run(kind, trigger="test", mappings=mappings, dry=True)
    assert env.worker.run_until(lambda: env.services.report(run.run_id).run.status is not RunStatus.RUNNING, 120)
    return env.services.report(run.run_id)


def _records(report, job_id: str) -> dict[tuple[str, str], dict]:
    """A dry job's records by (kind, record label)."""
    return {(r["kind"], r["record"]): r for r in report.to_dict()["dry_run_report"][job_id]["records"]}


def _counts(report) -> dict[str, dict]:
    return {j.job_id: j.counts.as_dict() for j in report.jobs}


def _rows(env) -> list:
    """The customers and accounts as stored, each with its version."""
    return [env.bc.rows("customers"), env.dv.rows("account")]


def _unchanged_by(env, act):
    """`act` with evidence that it wrote nothing: no request but reads reached either service (Business Central's
    reads of many ids go as a `$batch` of queries, which these small tests do not need), their rows are as they
    were, and so are the couplings, the failed records and the state."""
    writes, stored, rows = _writes(env), _stored(env), _rows(env)
    result = act()
    assert _writes(env) == writes, "a dry run sent a write to a service"
    assert _rows(env) == rows
    assert _stored(env) == stored, "a dry run changed couplings, failed records or state"
    return result


def _seed(env):
    fabrikam, litware, blocked = env.bc.seed("customers", [
        {"number": "C1", "displayName": "Fabrikam", "city": "Oslo"},
        {"number": "C2", "displayName": "Litware", "city": "Paris"},
        {"number": "C3", "displayName": "Blocked Co", "city": "Rome", "blocked": "All"},
    ])
    a_fabrikam, a_woodgrove = env.dv.seed("account", [
        {"name": "Fabrikam", "address1_city": "Bergen", "customertypecode": 3},
        {"name": "Woodgrove", "address1_city": "Lima", "customertypecode": 3},
    ])
    return fabrikam, litware, blocked, a_fabrikam, a_woodgrove


def test_a_dry_full_synchronisation_reports_per_record_writes_nothing_and_a_real_one_does_what_it_said(env, cli):
    fabrikam, litware, blocked, a_fabrikam, a_woodgrove = _seed(env)

    code, out, err = _unchanged_by(env, lambda: cli("fullsync", "--mapping", "CUSTOMER", "--dry-run", "--wait",
                                                    "--json"))
    assert code == 0, err
    dry = json.loads(out)
    assert dry["dry_run"] is True and dry["status"] == "done"
    assert all(job["dry_run"] for job in dry["jobs"])
    to_crm = {(r["kind"], r["record"]): r for r in dry["dry_run_report"]["CUSTOMER:to-crm"]["records"]}
    # matched by name: coupled, and the first synchronisation of the pair changes the account's city
    coupled = to_crm[("couple", "Customer C1")]
    assert coupled["target_id"] == a_fabrikam
    assert coupled["fields"]["address1_city"] == {"old": "Bergen", "new": "Oslo"}
    inserted = to_crm[("insert", "Customer C2")]
    assert inserted["values"]["name"] == "Litware" and inserted["values"]["address1_city"] == "Paris"
    assert "left out by the rules" in to_crm[("skip", "Customer C3")]["reason"]
    from_crm = {(r["kind"], r["record"]): r for r in dry["dry_run_report"]["CUSTOMER:from-crm"]["records"]}
    # the account the first job couples is not planned again by the second one
    assert set(from_crm) == {("insert", f"account 'Woodgrove' ({a_woodgrove})")}
    assert from_crm[("insert", f"account 'Woodgrove' ({a_woodgrove})")]["values"]["displayName"] == "Woodgrove"
    assert dry["dry_run_report"]["CUSTOMER:to-crm"]["counts"] == {
        "insert": 1, "modify": 0, "couple": 1, "delete": 0, "restore": 0, "conflict": 0, "fail": 0, "skip": 1,
        "action": 0}
    assert env.couplings("CUSTOMER") == [] and len(env.dv.rows("account")) == 2 and len(env.bc.rows("customers")) == 3

    # the text output: a summary per job and the records with their fields
    code, out, err = cli("status", dry["run"])
    assert code == 0 and "Dry run: nothing was written." in out
    assert "CUSTOMER:to-crm would: 1 insert, 1 couple, 1 skip" in out
    assert "address1_city: 'Bergen' -> 'Oslo'" in out

    real = env.full_sync(["CUSTOMER"])
    assert not real.run.dry
    assert _counts(real) == {job["job"]: job["counts"] for job in dry["jobs"]}
    assert env.dv.get("account", a_fabrikam)["address1_city"] == "Oslo"
    assert {a["name"] for a in env.dv.rows("account")} == {"Fabrikam", "Woodgrove", "Litware"}
    assert {c["displayName"] for c in env.bc.rows("customers")} == {"Fabrikam", "Litware", "Blocked Co", "Woodgrove"}
    assert {(c.bc_id, c.crm_id) for c in env.couplings("CUSTOMER")} >= {(fabrikam, a_fabrikam)}


def test_a_dry_scheduled_run_reports_modifications_conflicts_and_deletions_and_writes_nothing(env, cli):
    fabrikam, litware, blocked, a_fabrikam, a_woodgrove = _seed(env)
    env.full_sync(["CUSTOMER"])
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "remove-coupling"})
    a_litware = next(a["accountid"] for a in env.dv.rows("account") if a["name"] == "Litware")
    env.bc.update("customers", litware, {"phoneNumber": "555-0100"})                       # modified
    env.bc.update("customers", fabrikam, {"city": "Boston"})                               # a conflict ...
    env.dv.update("account", a_fabrikam, {"address1_city": "Denver"}, as_user=env.stack.ids.user_systemuser_id)
    env.dv.delete("account", a_woodgrove)                                                  # deleted

    dry = _unchanged_by(env, lambda: _dry(env, RunKind.SCHEDULED, ["CUSTOMER"]))
    to_crm = _records(dry, "CUSTOMER:to-crm")
    assert to_crm[("modify", "Customer C2")]["fields"] == {"telephone1": {"old": None, "new": "555-0100"}}
    assert to_crm[("modify", "Customer C2")]["target_id"] == a_litware
    conflict = to_crm[("conflict", "Customer C1")]
    assert conflict["code"] == "UpdateConflict" and "Both sides changed City" in conflict["reason"]
    woodgrove = next(c for c in env.couplings("CUSTOMER") if c.crm_id == a_woodgrove)
    deleted = next(r for r in dry.to_dict()["dry_run_report"]["CUSTOMER:from-crm"]["records"] if r["kind"] == "delete")
    assert deleted["source_id"] == woodgrove.bc_id and "deleted" in deleted["reason"]
    assert len(env.couplings("CUSTOMER")) == 3 and env.errors() == []

    code, out, err = cli("status", dry.run.run_id, "--json")
    assert code == 0 and json.loads(out)["dry_run_report"] == dry.to_dict()["dry_run_report"]

    real = env.sync(["CUSTOMER"])
    assert _counts(real) == _counts(dry)
    assert env.dv.get("account", a_litware)["telephone1"] == "555-0100"
    assert {e.code for e in env.errors()} == {"UpdateConflict"}
    assert all(c.crm_id != a_woodgrove for c in env.couplings("CUSTOMER"))


def test_the_cli_flag_on_sync_and_the_http_option(env, cli, monkeypatch):
    env.bc.seed("customers", [{"number": "C1", "displayName": "Fabrikam", "city": "Oslo"}])
    code, out, err = _unchanged_by(env, lambda: cli("sync", "--mapping", "CUSTOMER", "--dry-run", "--wait"))
    assert code == 0, err
    assert "Dry run: nothing was written." in out

    monkeypatch.setattr(function_app, "_services", env.services)
    handler = function_app.start_full_sync.build().get_user_function()

    def post(body: bytes):
        return handler(func.HttpRequest("POST", "http://localhost/api/fullsync", body=body, headers={}))

    answer = post(json.dumps({"mappings": ["CUSTOMER"], "dry_run": True}).encode())
    assert answer.status_code == 202
    run_id = json.loads(answer.get_body())["run"]
    assert env.worker.run_until(lambda: env.services.report(run_id).run.status is not RunStatus.RUNNING, 60)
    report = env.services.report(run_id).to_dict()
    assert report["dry_run"] is True
    assert report["dry_run_report"]["CUSTOMER:to-crm"]["counts"]["insert"] == 1
    assert env.dv.rows("account") == []

    status = function_app.run_status.build().get_user_function()(
        func.HttpRequest("GET", f"http://localhost/api/runs/{run_id}", body=b"", route_params={"run_id": run_id}))
    assert json.loads(status.get_body())["dry_run_report"]["CUSTOMER:to-crm"]["records"][0]["kind"] == "insert"

    bad = post(b'{"dry_run": "yes"}')
    assert bad.status_code == 400
    assert json.loads(bad.get_body()) == {"error": "dry_run is true or false, not 'yes'.", "field": "dry_run"}


def test_a_restore_is_reported_as_such(env):
    env.bc.seed("customers", [{"number": "C1", "displayName": "Fabrikam", "city": "Oslo"}])
    env.full_sync(["CUSTOMER"])
    [account] = env.dv.rows("account")
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "restore"})
    env.dv.delete("account", account["accountid"])
    dry = _unchanged_by(env, lambda: _dry(env, RunKind.SCHEDULED, ["CUSTOMER"]))
    [record] = [r for job in dry.to_dict()["dry_run_report"].values() for r in job["records"]]
    assert record["kind"] == "restore" and record["record"] == "Customer C1" and record["values"]["name"] == "Fabrikam"
    real = env.sync(["CUSTOMER"])
    assert _counts(real) == _counts(dry)
    assert [a["name"] for a in env.dv.rows("account")] == ["Fabrikam"]
