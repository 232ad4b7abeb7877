"""`bcsync`: the same services as the function app, from a terminal.

    bcsync fullsync [--wait] [--json] [--mapping NAME ...]   start a full synchronisation
    bcsync sync [--due] [--mapping M] [--wait] [--json]      start a scheduled (incremental) run now
    bcsync status [RUN_ID] [--json]                          a run and its jobs (default: the latest)
    bcsync runs [--limit N] [--mapping M] [--purge [--days N]]  the job log; apply its retention
    bcsync mappings [show NAME | set NAME ... | reset NAME]  list and change the table mappings
    bcsync match MAPPING [--match FIELD[:PRIORITY][:case]] [--wait]   match-based coupling of uncoupled rows
    bcsync couple MAPPING --bc ID --crm ID                   couple two records; the next run synchronises them
    bcsync uncouple MAPPING (--bc ID | --crm ID)             remove a coupling
    bcsync couplings MAPPING [--search TEXT] [--limit N]     list and search the couplings of a mapping
    bcsync records create MAPPING --in sales|bc (--id ID ... | --filter F)   create uncoupled records there now
    bcsync records sync MAPPING [--direction D] (--id ID ... | --filter F)  synchronise coupled records now
    bcsync errors [--mapping M] [--skipped] [--json]         the records that failed, with their messages
    bcsync retry (ID | --all | --skipped) [--mapping M]      have the next run try failed records again
    bcsync worker [--until-idle]                             process the job queue, as the Functions host does
    bcsync settings                                          the settings and their meaning
    bcsync check [--json]                                    test every connection and permission bcsync needs
    bcsync serve [--port 7071] [--no-worker]                 the function app's HTTP routes (status page, API) here

`--wait` drives the local worker until the run finishes, since the Functions host cannot run here.
`-v` prints bcsync's own log (INFO), `-vv` everything, the Azure SDK's HTTP logging included.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from shared.settings import Settings, settings_table
from shared.telemetry import set_log_levels
from shared.wiring import Services, build_services, start_telemetry
from sync import coupling, failures
from sync.errors import SettingsError, SyncError
from sync.model import Side
from sync.runs import RunKind, RunReport, RunStatus

from . import host
from .worker import LocalWorker

COLUMNS = ("inserted", "modified", "deleted", "unchanged", "skipped", "failed", "coupled", "uncoupled")


def format_report(report: RunReport) -> str:
    data = report.to_dict()
    lines = [f"Run {data['run']} ({data['kind']}, {data['trigger']}): {data['status']}"]
    header = f"{'job':<28} {'status':<8} " + " ".join(f"{c:>9}" for c in COLUMNS)
    lines += [header, "-" * len(header)]
    for job in data["jobs"]:
        counts = " ".join(f"{job['counts'][c]:>9}" for c in COLUMNS)
        lines.append(f"{job['job']:<28} {job['status']:<8} {counts}")
    totals = " ".join(f"{data['totals'][c]:>9}" for c in COLUMNS)
    lines += ["-" * len(header), f"{'total':<28} {'':<8} {totals}"]
    for job in data["jobs"]:
        why = ([f"review: {job['recommendation']}"] if job["recommendation"] else []) + \
              ([f"due: {job['reason']}"] if job["reason"] else [])
        for text in why + ([job["message"]] if job["message"] else []) + job["notes"]:
            lines.append(f"  {job['job']}: {text}")
    if data["failures"]:
        lines.append(f"Failed records ({len(data['failures'])}), retried at the next run:")
        lines += [f"  {f['mapping']} {f['direction']}: {f['message']}" for f in data["failures"]]
    return "\n".join(lines)


def _wait(services: Services, run_id: str, quiet: bool) -> RunReport:
    worker = LocalWorker(services)
    last = [0.0]

    def finished() -> bool:
        report = services.report(run_id)
        return report is not None and report.run.status is not RunStatus.RUNNING

    def progress() -> None:
        if not quiet and time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            report = services.report(run_id)
            running = [j.job_id for j in report.jobs if j.status.value in ("running", "queued")]
            print(f"... {', '.join(running) or 'waiting'}", file=sys.stderr)

    worker.run_until(finished, on_idle=progress)
    return services.report(run_id)


def _start(services: Services, kind: RunKind, args) -> int:
    return _follow(services, services.start_run(kind, trigger="cli", mappings=getattr(args, "mapping", None) or None),
                   args)


def _follow(services: Services, run, args) -> int:
    """Say the run started, or with --wait process its jobs here and print its report."""
    if not args.wait:
        print(json.dumps({"run": run.run_id, "status": run.status.value}) if args.json else
              f"Run {run.run_id} started; `bcsync status {run.run_id}` shows its progress.")
        return 0
    report = _wait(services, run.run_id, quiet=args.json)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    # a job that failed on a setting that can never work: said once, as a settings error at start is
    misconfigured = next((j.message for j in report.jobs if j.message.startswith(f"{SettingsError.__name__}: ")), None)
    if misconfigured:
        print(f"bcsync: {misconfigured}", file=sys.stderr)
        return 2
    return 0 if report.run.status is RunStatus.DONE else 1


def cmd_fullsync(services: Services, args) -> int:
    return _start(services, RunKind.FULL, args)


def cmd_sync(services: Services, args) -> int:
    if not args.due:
        return _start(services, RunKind.SCHEDULED, args)
    run = services.start_scheduled_run(trigger="cli")
    if run is None:
        print(json.dumps({"run": None}) if args.json else "No table mapping is due.")
        return 0
    return _follow(services, run, args)


def cmd_status(services: Services, args) -> int:
    report = services.report(args.run_id)
    if report is None:
        print(f"No run {args.run_id}." if args.run_id else "No runs yet.", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0


def cmd_runs(services: Services, args) -> int:
    if args.purge:
        purged = services.purge_runs(args.days)
        print(json.dumps({"purged": purged}) if args.json else f"Purged {purged} run(s).")
        return 0
    reports = services.job_log(limit=args.limit, mapping=args.mapping)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
        return 0
    header = f"{'run':<24} {'job':<28} {'status':<8} {'started':<20} {'seconds':>8} " + \
        " ".join(f"{c:>9}" for c in COLUMNS)
    lines = [header, "-" * len(header)]
    for report in reports:
        for job in report.to_dict()["jobs"]:
            seconds = "" if job["seconds"] is None else f"{job['seconds']:.1f}"
            lines.append(f"{report.run.run_id:<24} {job['job']:<28} {job['status']:<8} "
                         f"{(job['started_at'] or '')[:19]:<20} {seconds:>8} "
                         + " ".join(f"{job['counts'][c]:>9}" for c in COLUMNS))
    print("\n".join(lines))
    return 0


def format_mappings(mappings: list[dict]) -> str:
    lines = [f"{'mapping':<18} {'enabled':<8} {'direction':<14} {'every':>6} {'last run':<21} {'runs by':<21} "
             f"{'depends on':<40} overridden"]
    for m in mappings:
        schedule = m["schedule"]
        last = (schedule["last_run_at"] or "never")[:19] + (" (held)" if schedule["held"] else "")
        lines.append(f"{m['name']:<18} {str(m['enabled']).lower():<8} {m['direction']:<14} "
                     f"{str(m['interval_minutes']) + ' m':>6} {last:<21} {(schedule['runs_by'] or 'next tick')[:19]:<21} "
                     f"{', '.join(m['dependencies']) or '-':<40} {', '.join(m['overridden']) or '-'}")
    return "\n".join(lines)


def format_mapping(m: dict) -> str:
    lines = [f"{m['name']}: {m['description']}",
             f"  {m['business_central']} (Business Central) <-> {m['dataverse']} (Sales), {m['direction']}, "
             f"{'enabled' if m['enabled'] else 'disabled'}",
             f"  Business Central filter: {m['bc_filter'] or '-'}",
             f"  Sales filter:            {m['crm_filter'] or '-'}",
             f"  synchronise only coupled records: {str(m['sync_only_coupled']).lower()}; update conflicts: "
             f"{m['update_conflict']}; deletion conflicts: {m['deletion_conflict']}; text too long: {m['truncation']}",
             f"  configuration template: {m['template_code'] or '-'}",
             f"  depends on: {', '.join(m['dependencies']) or '-'}",
             f"  overridden: {json.dumps(m['overridden']) if m['overridden'] else '-'}",
             "  fields:"]
    for f in m["fields"]:
        bc = f["bc"] or f"(constant {f['constant']!r})"
        crm = f["crm"] or f"(constant {f['constant']!r})"
        via = f" via {f['lookup']}" if f["lookup"] else ""
        lines.append(f"    {f['caption']:<24} {bc:<20} {f['direction']:<14} {crm}{via}")
    return "\n".join(lines)


def cmd_mappings(services: Services, args) -> int:
    action = args.action or "list"
    if action == "list":
        found = services.mappings()
        print(json.dumps(found, indent=2) if args.json else format_mappings(found))
        return 0
    if action == "show":
        found = next((m for m in services.mappings() if m["name"] == args.name), None)
        if found is None:
            print(f"There is no table mapping named {args.name}.", file=sys.stderr)
            return 1
        print(json.dumps(found, indent=2) if args.json else format_mapping(found))
        return 0
    if action == "reset":
        result = services.reset_mapping(args.name)
    else:
        changes = _changes(args)
        if args.field:
            pairs = [f.rsplit("=", 1) for f in args.field]
            if any(len(p) != 2 for p in pairs):
                print("--field takes FIELD=DIRECTION, e.g. --field email=to-crm", file=sys.stderr)
                return 2
            changes["fields"] = dict(pairs)
        if not changes:
            print("Nothing to change; see `bcsync mappings set --help`.", file=sys.stderr)
            return 2
        result = services.set_mapping(args.name, changes)
    print(json.dumps(result, indent=2) if args.json else format_mapping(result))
    return 0


def format_failures(found: list) -> str:
    if not found:
        return "No failed records."
    lines = []
    for f in found:
        state = "skipped" if f.skipped else "will be retried"
        lines.append(f"{f.mapping} {f.direction.value} {f.source_id} ({f.count}x, {state}, last {f.last_seen:%Y-%m-%d %H:%M}): "
                     f"{f.message}")
    return "\n".join(lines)


def cmd_errors(services: Services, args) -> int:
    found = services.failures(args.mapping, args.direction, True if args.skipped else None)
    print(json.dumps([failures.to_dict(f) for f in found], indent=2) if args.json else format_failures(found))
    return 0


def cmd_retry(services: Services, args) -> int:
    if not (args.source_id or args.all or args.skipped):
        print("Say which records: a source id, --all, or --skipped.", file=sys.stderr)
        return 2
    done = services.retry_failures(mapping=args.mapping, direction=args.direction, source_id=args.source_id,
                                   skipped=True if args.skipped else None)
    if args.json:
        print(json.dumps([failures.to_dict(f) for f in done], indent=2))
    else:
        print(f"{len(done)} record(s) will be retried at the next run (`bcsync sync --wait` runs one now).")
    return 0 if done or args.all or args.skipped else 1


SETTING_OPTIONS = ("enabled", "direction", "bc_filter", "crm_filter", "sync_only_coupled", "update_conflict",
                   "deletion_conflict", "create_new_if_no_match", "sync_after_coupling", "interval_minutes",
                   "inactivity_timeout_minutes", "template_code", "truncation")


def _changes(args) -> dict:
    """The mapping settings given on the command line, as `set_mapping` takes them."""
    changes = {k: getattr(args, k) for k in SETTING_OPTIONS if getattr(args, k, None) is not None}
    if getattr(args, "match", None):
        criteria = {}
        for spec in args.match:
            name, *rest = spec.split(":")
            criteria[name] = {"priority": int(next((r for r in rest if r.isdigit()), 0)),
                              "case_sensitive": "case" in rest}
        changes["match"] = criteria
    return changes


def cmd_match(services: Services, args) -> int:
    changes = _changes(args)
    if changes:
        services.set_mapping(args.mapping, changes)
    return _follow(services, services.start_run(RunKind.COUPLE, trigger="cli", mappings=[args.mapping]), args)


def cmd_couple(services: Services, args) -> int:
    made = services.couple(args.mapping, args.bc, args.crm)
    print(json.dumps(coupling.to_dict(made), indent=2) if args.json else
          f"Coupled {args.bc} (Business Central) with {args.crm} (Sales) in {args.mapping}; the next run synchronises them.")
    return 0


def cmd_uncouple(services: Services, args) -> int:
    if bool(args.bc) == bool(args.crm):
        print("Give --bc ID or --crm ID.", file=sys.stderr)
        return 2
    side, record_id = (Side.BC, args.bc) if args.bc else (Side.CRM, args.crm)
    removed = services.uncouple(args.mapping, side, record_id)
    print(json.dumps(coupling.to_dict(removed), indent=2) if args.json else
          f"Uncoupled {removed.bc_id} (Business Central) from {removed.crm_id} (Sales) in {args.mapping}.")
    return 0


def cmd_couplings(services: Services, args) -> int:
    found = services.list_couplings(args.mapping, args.search, args.limit)
    if args.json:
        print(json.dumps([coupling.to_dict(c) for c in found], indent=2, default=str))
    else:
        for c in found:
            name = next((str(v) for v in c.bc_values.values() if v), "")
            print(f"{c.bc_id}  {c.crm_id}  {c.synced_at:%Y-%m-%d %H:%M}  {name[:40]}" if c.synced_at else
                  f"{c.bc_id}  {c.crm_id}  (not synchronised yet)")
        print(f"{len(found)} coupling(s)")
    return 0


def cmd_records(services: Services, args) -> int:
    if args.action == "create":
        done = services.create_records(args.mapping, Side.CRM if args.target == "sales" else Side.BC, args.id,
                                       args.filter)
    else:
        done = services.synchronise_records(args.mapping, args.direction, args.id, args.filter)
    if args.json:
        print(json.dumps([r.to_dict() for r in done], indent=2))
    else:
        for r in done:
            print(f"{r.status:10} {r.record or r.source_id}" + (f" -> {r.target_id}" if r.target_id else "") +
                  (f": {r.error}" if r.error else ""))
    return 0 if all(r.ok for r in done) else 1


def cmd_orders(services: Services, args) -> int:
    results = services.create_sales_orders(args.order_ids)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            print(f"{r.status:10} {r.bc_order or '-':10} {r.message}")
    return 0 if all(r.ok for r in results) else 1


def cmd_availability(services: Services, args) -> int:
    found = services.item_availability(args.product)
    print(json.dumps(found, indent=2) if args.json else
          f"Product {found['product_number']}: item {found['item_no']}, {found['inventory']:g} {found['unit']} in "
          f"inventory")
    return 0


def cmd_worker(services: Services, args) -> int:
    worker = LocalWorker(services)
    if args.until_idle:
        worker.run_until(lambda: True)
    else:
        worker.run_until(lambda: False)
    print(f"handled {worker.handled} job message(s)")
    return 0


def cmd_check(services: Services, args) -> int:
    """The connection check; exit code 1 when a check fails."""
    report = services.check()
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.text())
    return 0 if report.ok else 1


def cmd_settings(services: Services | None, args) -> int:
    print(settings_table())
    return 0


def _coupling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--match", action="append", metavar="FIELD[:PRIORITY][:case]",
                   help="a match criterion (repeatable; these replace the mapping's criteria); lower priorities are "
                        "tried first, fields of one priority must all match; :case compares case-sensitively")
    p.add_argument("--create-new-if-no-match", choices=["true", "false"])
    p.add_argument("--sync-after-coupling", choices=["true", "false"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bcsync", description="Dynamics 365 Sales <-> Business Central synchronisation.")
    p.add_argument("--settings", help="settings file (local.settings.json shape); default $BCSYNC_SETTINGS or "
                                      "./local.settings.json")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="print bcsync's log; -vv prints everything, the Azure SDK's HTTP logging included")
    sub = p.add_subparsers(dest="command", required=True)
    for name, func, text in (("fullsync", cmd_fullsync, "start a full synchronisation"),
                             ("sync", cmd_sync, "start a scheduled (incremental) run now")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--wait", action="store_true", help="process the jobs here until the run finishes")
        s.add_argument("--json", action="store_true", help="machine-readable output")
        s.add_argument("--mapping", action="append", help="only this table mapping (repeatable)")
        if name == "sync":
            s.add_argument("--due", action="store_true",
                           help="as the timer does: only the mappings whose schedule says they are due")
        s.set_defaults(func=func)
    s = sub.add_parser("runs", help="the job log: the latest runs' jobs with counts and timings")
    s.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    s.add_argument("--mapping", help="only the jobs of this table mapping")
    s.add_argument("--purge", action="store_true", help="delete runs older than the retention now")
    s.add_argument("--days", type=int, help="with --purge: the retention in days (default BCSYNC_LOG_RETENTION_DAYS)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_runs)
    s = sub.add_parser("status", help="a run and its jobs")
    s.add_argument("run_id", nargs="?", help="default: the latest run")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("mappings", help="list and change the table mappings")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_mappings, action=None)
    actions = s.add_subparsers(dest="action")
    a = actions.add_parser("show", help="one mapping with its fields")
    a.add_argument("name")
    a.add_argument("--json", action="store_true")
    a = actions.add_parser("reset", help="drop a mapping's overrides")
    a.add_argument("name")
    a.add_argument("--json", action="store_true")
    a = actions.add_parser("set", help="override a mapping's settings")
    a.add_argument("name")
    a.add_argument("--enabled", choices=["true", "false"])
    a.add_argument("--direction", choices=["to-crm", "from-crm", "bidirectional"])
    a.add_argument("--bc-filter", help="OData $filter on the Business Central side ('' removes it)")
    a.add_argument("--crm-filter", help="OData $filter on the Dataverse side ('' removes it)")
    a.add_argument("--sync-only-coupled", choices=["true", "false"])
    a.add_argument("--update-conflict", choices=["none", "send-to-crm", "get-from-crm"])
    a.add_argument("--deletion-conflict", choices=["none", "restore", "remove-coupling"])
    a.add_argument("--field", action="append", metavar="FIELD=DIRECTION",
                   help="a field's direction; FIELD is its BC field, Dataverse attribute or caption")
    a.add_argument("--interval-minutes", type=int, help="minutes between scheduled runs of this mapping")
    a.add_argument("--inactivity-timeout-minutes", type=int,
                   help="after a run that changed nothing, minutes before the next unless a change wakes it")
    a.add_argument("--template-code", help="configuration template applied to each Business Central record the "
                                           "mapping creates ('' removes it)")
    a.add_argument("--truncation", choices=["cut", "error"],
                   help="text longer than its Business Central field: cut it with a note (default), or fail the record")
    _coupling_options(a)
    a.add_argument("--json", action="store_true")
    s = sub.add_parser("match", help="match-based coupling of the uncoupled rows of a mapping")
    s.add_argument("mapping")
    _coupling_options(s)
    s.add_argument("--wait", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_match)
    s = sub.add_parser("couple", help="couple a Business Central record with a Sales row")
    s.add_argument("mapping")
    s.add_argument("--bc", required=True, help="the Business Central record's id (SystemId)")
    s.add_argument("--crm", required=True, help="the Dataverse row's id (or the option value of an option mapping)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_couple)
    s = sub.add_parser("uncouple", help="remove a coupling")
    s.add_argument("mapping")
    s.add_argument("--bc")
    s.add_argument("--crm")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_uncouple)
    s = sub.add_parser("couplings", help="list and search the couplings of a mapping")
    s.add_argument("mapping")
    s.add_argument("--search", help="text found in an id or a synchronised value")
    s.add_argument("--limit", type=int, default=100)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_couplings)
    s = sub.add_parser("records", help="create or synchronise single records now")
    actions = s.add_subparsers(dest="action", required=True)
    for name, text in (("create", "create records that are not coupled on the other side, and couple them"),
                       ("sync", "synchronise coupled records now, changed or not")):
        a = actions.add_parser(name, help=text)
        a.add_argument("mapping")
        if name == "create":
            a.add_argument("--in", dest="target", choices=["sales", "bc"], required=True,
                           help="where to create them: Sales (from Business Central records) or Business Central")
        else:
            a.add_argument("--direction", choices=["to-crm", "from-crm"],
                           help="default: the mapping's first direction (to-crm for a bidirectional one)")
        a.add_argument("--id", action="append", help="a source record's id (repeatable)")
        a.add_argument("--filter", help="an OData $filter on the source table instead of ids")
        a.add_argument("--json", action="store_true")
        a.set_defaults(func=cmd_records)
    s = sub.add_parser("errors", help="the records that failed")
    s.add_argument("--mapping")
    s.add_argument("--direction", choices=["to-crm", "from-crm"])
    s.add_argument("--skipped", action="store_true", help="only the skipped ones")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_errors)
    s = sub.add_parser("retry", help="have the next run try failed records again (restores skipped ones)")
    s.add_argument("source_id", nargs="?", help="the failed record's id on its source side")
    s.add_argument("--all", action="store_true", help="every failed record (of --mapping)")
    s.add_argument("--skipped", action="store_true", help="every skipped record (of --mapping)")
    s.add_argument("--mapping")
    s.add_argument("--direction", choices=["to-crm", "from-crm"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_retry)
    s = sub.add_parser("orders", help="sales orders from Sales")
    actions = s.add_subparsers(dest="action", required=True)
    a = actions.add_parser("create", help="create submitted Sales orders in Business Central now")
    a.add_argument("order_ids", nargs="+", metavar="ID", help="the Sales order's id (salesorderid)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_orders)
    s = sub.add_parser("availability", help="Business Central inventory of a Sales product")
    s.add_argument("product", help="the product's id or product number")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_availability)
    s = sub.add_parser("worker", help="process the job queue as the Functions host would")
    s.add_argument("--until-idle", action="store_true", help="stop when the queue is empty")
    s.set_defaults(func=cmd_worker)
    s = sub.add_parser("check", help="test every connection and permission bcsync needs (writes nothing)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_check)
    s = sub.add_parser("settings", help="list the settings")
    s.set_defaults(func=cmd_settings, no_services=True)
    host.add_command(sub)
    return p


def _log_to_console(verbosity: int) -> None:
    """Warnings only by default; the loggers themselves stay at INFO so that telemetry gets bcsync's log."""
    set_log_levels(verbosity)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)
    if not root.handlers:  # a host (pytest) that brings its own handlers keeps them
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        console.setLevel((logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)])
        root.addHandler(console)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _log_to_console(args.verbose)
    try:
        if getattr(args, "no_services", False):
            return args.func(None, args)
        settings = Settings.load(file=args.settings)
        start_telemetry(settings)
        return args.func(build_services(settings), args)
    except SyncError as exc:
        print(f"bcsync: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
