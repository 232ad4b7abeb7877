"""`bcsync`: the same services as the function app, from a terminal.

    bcsync fullsync [--wait] [--json] [--mapping NAME ...] [--dry-run]   start a full synchronisation
    bcsync sync [--due] [--mapping M] [--wait] [--json] [--dry-run]  start a scheduled (incremental) run now
    bcsync status [RUN_ID] [--json]                          a run and its jobs (default: the latest)
    bcsync runs [--limit N] [--mapping M] [--purge [--days N]]  the job log; apply its retention
    bcsync mappings [show NAME | set NAME ... | reset NAME]  list and change the table mappings
    bcsync match MAPPING [--match FIELD[:PRIORITY][:case]] [--wait]   match-based coupling of uncoupled rows
    bcsync couple MAPPING --bc ID --crm ID                   couple two records; the next run synchronises them
    bcsync uncouple MAPPING (--bc ID | --crm ID | --all)     remove a coupling, or all of a mapping
    bcsync couplings MAPPING [--search TEXT] [--limit N]     list and search the couplings of a mapping
    bcsync records create MAPPING --in sales|bc (--id ID ... | --filter F)   create uncoupled records there now
    bcsync records sync MAPPING [--direction D] (--id ID ... | --filter F)  synchronise coupled records now
    bcsync errors [--mapping M] [--skipped] [--json]         the records that failed, with their messages
    bcsync retry (ID | --all | --skipped) [--mapping M]      have the next run try failed records again
    bcsync worker [--until-idle]                             process the job queue, as the Functions host does
    bcsync settings                                          the settings and their meaning
    bcsync check [--json]                                    test every connection and permission bcsync needs
    bcsync serve [--port 7071] [--no-worker]                 the function app's HTTP routes (status page, API) here

`--company NAME` (any command that acts on a company's state) names the Business Central company when
BCSYNC_COMPANIES lists several; with one it may be left out.

`--wait` drives the local worker until the run finishes, since the Functions host cannot run here; on a terminal it
shows each job's progress meanwhile. `--json` (any command) prints one JSON document on stdout; errors then are one
JSON object on stderr. `-v` prints bcsync's own log (INFO), `-vv` everything, the Azure SDK's HTTP logging included.
Exit codes: see EXIT_CODES.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from importlib.metadata import PackageNotFoundError, version

from shared.settings import Settings, settings_rows
from shared.telemetry import set_log_levels
from shared.wiring import Services, build_services, start_telemetry
from sync import coupling, failures
from sync.errors import SettingsError, SyncError, TransientError
from sync.mappings import not_in_use
from sync.model import Side
from sync.runs import RunKind, RunReport, RunStatus

from . import host
from .console import COUNTS, Output, RunView, Watching, count_cells, error, seconds, show_report, table, when
from .worker import LocalWorker

OK, FAILED, USAGE, INTERRUPTED, PIPE_CLOSED = 0, 1, 2, 130, 141
EXIT_CODES = f"""exit codes:
  {OK}    done
  {FAILED}    done, but something failed or was not there: the run (a job) or a check failed, a record or order was
       not synchronised, no run yet, nothing to retry; also a service that is down or throttling (try again later)
  {USAGE}    bad usage or settings: a wrong option, an unknown name, a refused change, a setting that can never work
  {INTERRUPTED}  interrupted (Ctrl-C); a started run goes on in the background
  {PIPE_CLOSED}  the reader of the output went away (e.g. `bcsync mappings | head`); nothing is printed"""


class CliError(Exception):
    """Ends the command with one line on stderr (a JSON object under --json) and an exit code."""

    def __init__(self, message: str, exit_code: int = USAGE, *, code: str = "", field: str = ""):
        super().__init__(message)
        self.message, self.exit_code, self.code, self.field = message, exit_code, code, field


class UsageError(CliError):
    """What argparse refuses; `parser` is the (sub)command whose usage is shown."""

    def __init__(self, message: str, parser: argparse.ArgumentParser):
        named = re.match(r"argument ([^:]+): ", message)  # argparse names the argument it refuses this way
        super().__init__(message, field=named.group(1).split("/")[-1] if named else "")
        self.parser = parser


class Parser(argparse.ArgumentParser):
    """argparse, with its errors raised for main() to print (as JSON under --json) instead of exiting at once."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(message, self)


def _wait(services: Services, run_id: str, out: Output) -> RunReport:
    """Work through the run's jobs here until it finishes; on a terminal, show them meanwhile."""
    worker = LocalWorker(services)

    def finished() -> bool:
        run = services.runs.get(run_id)
        return run is not None and run.status is not RunStatus.RUNNING

    try:
        if not out.live:
            worker.run_until(finished)
        else:
            _watch(services, run_id, worker, finished, out)
    except KeyboardInterrupt:
        raise CliError(f"interrupted. Run {run_id} goes on in the background as soon as a worker takes its jobs (the "
                       f"function app, or `bcsync worker`); a job cut short here starts again once its lease of "
                       f"{services.settings.job_lease_seconds} s runs out. `bcsync status {run_id}` follows it.",
                       INTERRUPTED) from None
    return services.report(run_id)


def _watch(services: Services, run_id: str, worker: LocalWorker, finished, out: Output) -> None:
    """`worker.run_until(finished)` with the run's jobs live on the terminal: counts page by page from the worker
    here, and the job log polled (at most once a second) for the jobs that have not started or run elsewhere."""
    from rich.live import Live

    view = RunView(out.console, services.runs.get(run_id), services.runs.jobs(run_id))
    polled = [time.monotonic()]

    def poll() -> None:
        if time.monotonic() - polled[0] >= 1:
            polled[0] = time.monotonic()
            view.stored(services.runs.jobs(run_id))

    coordinator = services.coordinator
    observer = coordinator.observer
    coordinator.observer = Watching(observer, view, on_start=poll)
    try:
        with Live(view, console=out.console, transient=True, refresh_per_second=4):
            worker.run_until(finished, on_idle=poll)
    finally:
        coordinator.observer = observer


def _start(services: Services, kind: RunKind, args) -> int:
    return _follow(services, services.start_run(kind, trigger="cli", mappings=getattr(args, "mapping", None) or None,
                                                dry=args.dry_run), args)


def _follow(services: Services, run, args) -> int:
    """Say the run started, or with --wait process its jobs here and print its report."""
    out = args.out
    if not args.wait:
        whose = f" --company {run.company}" if run.company else ""
        out.result({"run": run.run_id, **({"company": run.company} if run.company else {}), "status": run.status.value},
                   f"Run {run.run_id} started; `bcsync status {run.run_id}{whose}` shows its progress.")
        return OK
    report = _wait(services, run.run_id, out)
    show_report(out, report)
    # a job that failed on a setting that can never work: said once, as a settings error at start is
    misconfigured = next((j.message for j in report.jobs if j.message.startswith(f"{SettingsError.__name__}: ")), None)
    if misconfigured:
        raise CliError(misconfigured.split(": ", 1)[1], USAGE, code=SettingsError.__name__)
    return OK if report.run.status is RunStatus.DONE else FAILED


def cmd_fullsync(services: Services, args) -> int:
    return _start(services, RunKind.FULL, args)


def cmd_sync(services: Services, args) -> int:
    if not args.due:
        return _start(services, RunKind.SCHEDULED, args)
    run = services.start_scheduled_run(trigger="cli", dry=args.dry_run)
    if run is None:
        args.out.result({"run": None}, "No table mapping is due.")
        return OK
    return _follow(services, run, args)


def cmd_status(services: Services, args) -> int:
    report = services.report(args.run_id)
    if report is None:
        raise CliError(f"There is no run {args.run_id}." if args.run_id else "There are no runs yet.",
                       USAGE if args.run_id else FAILED, field="run_id" if args.run_id else "")
    show_report(args.out, report)
    return OK


def cmd_runs(services: Services, args) -> int:
    if args.purge:
        purged = services.purge_runs(args.days)
        args.out.result({"purged": purged}, f"Purged {purged} run(s).")
        return OK
    reports = services.job_log(limit=args.limit, mapping=args.mapping)
    # the job's start time only: its date is in the run id
    rows = [[report.run.run_id, job.job_id, job.status.value, f"{job.started_at:%H:%M:%S}" if job.started_at else "",
             seconds(job),
             *count_cells(job.counts)] for report in reports for job in report.jobs]
    args.out.result([r.to_dict() for r in reports],
                    table(args.out.console, ("run", "job", "status", "started", "seconds", *COUNTS), rows,
                          numeric=("seconds", *COUNTS), whole=("run", "status", "started"), optional=COUNTS))
    return OK


def mappings_table(console, mappings: list[dict]):
    rows = []
    for m in mappings:
        schedule = m["schedule"]
        state = "held" if schedule["held"] and m["enabled"] else "enabled" if m["enabled"] else "disabled"
        # month, day and time: a schedule is about the next hours, and the year makes it too wide for a terminal
        last, runs_by = (schedule[k][5:16].replace("T", " ") if schedule[k] else "" for k in ("last_run_at", "runs_by"))
        rows.append([m["name"], state, m["direction"], f"{m['interval_minutes']} m", last or "never",
                     runs_by or "next tick", ", ".join(m["dependencies"]) or "-", ", ".join(m["overridden"]) or "-"])
    return table(console, ("mapping", "state", "direction", "every", "last run", "runs by", "depends on",
                           "overridden"), rows,
                 numeric=("every",), whole=("mapping", "state", "direction", "last run", "runs by"),
                 optional=("overridden",))


def format_mapping(console, m: dict) -> list:
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
    rows = [[f["caption"], f["bc"] or f"(constant {f['constant']!r})", f["direction"],
             (f["crm"] or f"(constant {f['constant']!r})") + (f" via {f['lookup']}" if f["lookup"] else "")]
            for f in m["fields"]]
    return [*lines, table(console, ("field", "Business Central", "direction", "Sales"), rows, whole=("direction",))]


def cmd_mappings(services: Services, args) -> int:
    action = args.action or "list"
    if action == "list":
        found = services.mappings()
        args.out.result(found, mappings_table(args.out.console, found))
        return OK
    if action == "show":
        found = next((m for m in services.mappings() if m["name"] == args.name), None)
        if found is None:
            raise CliError(not_in_use(args.name), field="name")
        args.out.result(found, *format_mapping(args.out.console, found))
        return OK
    if action == "reset":
        result = services.reset_mapping(args.name)
    else:
        changes = _changes(args)
        if args.field:
            pairs = [f.rsplit("=", 1) for f in args.field]
            if any(len(p) != 2 for p in pairs):
                raise CliError("--field takes FIELD=DIRECTION, e.g. --field email=to-crm", field="--field")
            changes["fields"] = dict(pairs)
        if not changes:
            raise CliError("Nothing to change; see `bcsync mappings set --help`.")
        result = services.set_mapping(args.name, changes)
    args.out.result(result, *format_mapping(args.out.console, result))
    return OK


def failures_table(console, found: list):
    if not found:
        return "No failed records."
    rows = [[f.mapping, f.direction.value, f.source_id, str(f.count), "skipped" if f.skipped else "will retry",
             when(f.last_seen), f.message] for f in found]
    return table(console, ("mapping", "direction", "record", "count", "state", "last seen", "message"), rows,
                 numeric=("count",), whole=("direction", "state", "last seen"))


def cmd_errors(services: Services, args) -> int:
    found = services.failures(args.mapping, args.direction, True if args.skipped else None)
    args.out.result([failures.to_dict(f) for f in found], failures_table(args.out.console, found))
    return OK


def cmd_retry(services: Services, args) -> int:
    if not (args.source_id or args.all or args.skipped):
        raise CliError("Say which records: a source id, --all, or --skipped.")
    done = services.retry_failures(mapping=args.mapping, direction=args.direction, source_id=args.source_id,
                                   skipped=True if args.skipped else None)
    args.out.result([failures.to_dict(f) for f in done],
                    f"{len(done)} record(s) will be retried at the next run (`bcsync sync --wait` runs one now).")
    return OK if done or args.all or args.skipped else FAILED


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
    args.out.result(coupling.to_dict(made), f"Coupled {args.bc} (Business Central) with {args.crm} (Sales) in "
                                            f"{args.mapping}; the next run synchronises them.")
    return OK


def cmd_uncouple(services: Services, args) -> int:
    if args.all:
        if args.bc or args.crm:
            raise CliError("Give --all, or --bc ID or --crm ID, not both.")
        count = services.uncouple_all(args.mapping)
        args.out.result({"mapping": args.mapping, "removed": count},
                        f"Removed all {count} coupling(s) of {args.mapping}.")
        return OK
    if bool(args.bc) == bool(args.crm):
        raise CliError("Give --bc ID or --crm ID (or --all).")
    side, record_id = (Side.BC, args.bc) if args.bc else (Side.CRM, args.crm)
    removed = services.uncouple(args.mapping, side, record_id)
    args.out.result(coupling.to_dict(removed), f"Uncoupled {removed.bc_id} (Business Central) from {removed.crm_id} "
                                               f"(Sales) in {args.mapping}.")
    return OK


def cmd_couplings(services: Services, args) -> int:
    found = services.list_couplings(args.mapping, args.search, args.limit)
    rows = [[c.bc_id, c.crm_id, when(c.synced_at) or "not yet", next((str(v) for v in c.bc_values.values() if v), "")]
            for c in found]
    args.out.result([coupling.to_dict(c) for c in found],
                    table(args.out.console, ("Business Central", "Sales", "synchronised", "name"), rows,
                          whole=("synchronised",)), f"{len(found)} coupling(s)")
    return OK


def cmd_records(services: Services, args) -> int:
    if args.action == "create":
        done = services.create_records(args.mapping, Side.CRM if args.target == "sales" else Side.BC, args.id,
                                       args.filter)
    else:
        done = services.synchronise_records(args.mapping, args.direction, args.id, args.filter)
    args.out.result([r.to_dict() for r in done],
                    *(f"{r.status:10} {r.record or r.source_id}" + (f" -> {r.target_id}" if r.target_id else "") +
                      (f": {r.error}" if r.error else "") for r in done))
    return OK if all(r.ok for r in done) else FAILED


def cmd_orders(services: Services, args) -> int:
    results = services.create_sales_orders(args.order_ids)
    args.out.result([r.to_dict() for r in results],
                    *(f"{r.status:10} {r.bc_order or '-':10} {r.message}" for r in results))
    return OK if all(r.ok for r in results) else FAILED


def cmd_availability(services: Services, args) -> int:
    found = services.item_availability(args.product)
    args.out.result(found, f"Product {found['product_number']}: item {found['item_no']}, {found['inventory']:g} "
                           f"{found['unit']} in inventory")
    return OK


def cmd_webhooks(services: Services, args) -> int:
    act = {"register": services.register_webhooks, "status": services.webhook_status,
           "remove": services.remove_webhooks}[args.action]
    report = act()
    rows = [[hook.get("company", ""), hook["side"], hook["table"], hook["state"], hook["expires"] or "",
             hook["detail"] or hook["id"]] for hook in report["hooks"]]
    args.out.result(report, f"Receivers under {report['url']}/api/webhooks/",
                    table(args.out.console, ("company", "side", "table", "state", "expires", "id or detail"), rows),
                    f"{len(rows)} webhook(s)")
    return OK if report["ok"] else FAILED


def cmd_worker(services: Services, args) -> int:
    worker = LocalWorker(services)
    worker.run_until(lambda: bool(args.until_idle))
    args.out.result({"handled": worker.handled}, f"handled {worker.handled} job message(s)")
    return OK


def cmd_check(services: Services, args) -> int:
    """The connection check; exit code 1 when a check fails."""
    report = services.check()
    args.out.result(report.to_dict(), report.text())
    return OK if report.ok else FAILED


def cmd_settings(services: Services | None, args) -> int:
    rows = settings_rows()
    shown = [[row["setting"], "" if row["default"] is None else str(row["default"]), "yes" if row["required"] else "",
              row["meaning"]] for row in rows]
    args.out.result(rows, table(args.out.console, ("setting", "default", "required", "meaning"), shown))
    return OK


def _coupling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--match", action="append", metavar="FIELD[:PRIORITY][:case]",
                   help="a match criterion (repeatable; these replace the mapping's criteria); lower priorities are "
                        "tried first, fields of one priority must all match; :case compares case-sensitively")
    p.add_argument("--create-new-if-no-match", choices=["true", "false"],
                   help="a row that matches nothing: create it on the other side (true) or report it (false)")
    p.add_argument("--sync-after-coupling", choices=["true", "false"],
                   help="synchronise a pair as soon as it is coupled (true), or leave that to the next run (false)")


JSON_HELP = "machine-readable output: one JSON document on stdout; an error is one JSON object on stderr"
EXAMPLES = """examples:
  bcsync check                           is every connection and permission in place?
  bcsync fullsync --wait                 a full synchronisation, its jobs shown as they run
  bcsync sync --mapping CUSTOMER --wait  a scheduled run of one mapping now
  bcsync runs --limit 5                  the job log
  bcsync errors --json | jq length       how many records failed
  bcsync mappings set CUSTOMER --direction to-crm
"""


COMPANY_HELP = ("the Business Central company (its name in BCSYNC_COMPANIES, or its id) whose runs, mappings, "
                "couplings and errors to act on; needed when several are configured")
# commands that act for no one company: the worker and the host take every company's job messages
NO_COMPANY = frozenset({"worker", "serve", "settings"})


def _command(sub, name: str, text: str, func=None, examples: str = "", every_company: bool = False
             ) -> argparse.ArgumentParser:
    """A (sub)command with its help; one that runs (`func`) takes --json, and --company unless it acts for all
    (`every_company`, or named in NO_COMPANY)."""
    s = sub.add_parser(name, help=text, description=text + ".",
                       epilog=f"examples:\n{examples}" if examples else None)
    if func is not None:
        every_company = every_company or name in NO_COMPANY
        s.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)
        if not every_company:
            s.add_argument("--company", default=argparse.SUPPRESS, help=COMPANY_HELP)
        s.set_defaults(func=func, every_company=every_company)
    return s


def _version() -> str:
    try:
        return version("bcsync")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="bcsync", description="Dynamics 365 Sales <-> Business Central synchronisation.",
               epilog=f"{EXAMPLES}\n{EXIT_CODES}\n\n`bcsync COMMAND --help` tells more about each command.")
    p.add_argument("--settings", help="settings file (local.settings.json shape); default $BCSYNC_SETTINGS or "
                                      "./local.settings.json")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="print bcsync's log; -vv prints everything, the Azure SDK's HTTP logging included")
    p.add_argument("--json", action="store_true", help=JSON_HELP + " (also after the command)")
    p.add_argument("--company", help=COMPANY_HELP + " (also after the command)")
    p.add_argument("--version", action="version", version=f"bcsync {_version()}", help="print bcsync's version")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")
    for name, func, text, examples in (
            ("fullsync", cmd_fullsync, "start a full synchronisation",
             "  bcsync fullsync --wait\n  bcsync fullsync --mapping CUSTOMER --mapping CONTACT --wait --json\n"
             "  bcsync fullsync --dry-run --wait    what it would write, writing nothing\n"),
            ("sync", cmd_sync, "start a scheduled (incremental) run now",
             "  bcsync sync --wait\n  bcsync sync --due            as the timer does\n")):
        s = _command(sub, name, text, func, examples)
        s.add_argument("--wait", action="store_true",
                       help="process the jobs here until the run finishes, showing them on a terminal; exit code 1 "
                            "when the run fails")
        s.add_argument("--mapping", action="append", help="only this table mapping (repeatable)")
        s.add_argument("--dry-run", action="store_true",
                       help="plan for real, write nothing: report per record what would be inserted, modified, "
                            "coupled, deleted, restored, a conflict or skipped")
        if name == "sync":
            s.add_argument("--due", action="store_true",
                           help="as the timer does: only the mappings whose schedule says they are due")
    s = _command(sub, "runs", "the job log: the latest runs' jobs with counts and timings", cmd_runs,
                 "  bcsync runs --limit 5 --mapping CUSTOMER\n  bcsync runs --purge --days 30\n")
    s.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    s.add_argument("--mapping", help="only the jobs of this table mapping")
    s.add_argument("--purge", action="store_true", help="delete runs older than the retention now")
    s.add_argument("--days", type=int, help="with --purge: the retention in days (default BCSYNC_LOG_RETENTION_DAYS)")
    s = _command(sub, "status", "a run and its jobs", cmd_status, "  bcsync status\n  bcsync status RUN_ID --json\n")
    s.add_argument("run_id", nargs="?", help="the run's id, as fullsync, sync and runs print it (default: the latest)")
    s = _command(sub, "mappings", "list and change the table mappings", cmd_mappings,
                 "  bcsync mappings\n  bcsync mappings show CUSTOMER\n"
                 "  bcsync mappings set CUSTOMER --direction to-crm --field email=to-crm\n"
                 "  bcsync mappings reset CUSTOMER\n")
    s.set_defaults(action=None)
    actions = s.add_subparsers(dest="action", metavar="ACTION", help="default: list the mappings")
    a = _command(actions, "show", "one mapping with its fields", cmd_mappings)
    a.add_argument("name", help="the table mapping's name, e.g. CUSTOMER")
    a = _command(actions, "reset", "drop a mapping's overrides", cmd_mappings)
    a.add_argument("name", help="the table mapping's name")
    a = _command(actions, "set", "override a mapping's settings", cmd_mappings,
                 "  bcsync mappings set CUSTOMER --update-conflict send-to-crm\n"
                 "  bcsync mappings set CUSTOMER --bc-filter \"city eq 'Lyon'\"\n")
    a.add_argument("name", help="the table mapping's name")
    a.add_argument("--enabled", choices=["true", "false"], help="a disabled mapping is left out of every run")
    a.add_argument("--direction", choices=["to-crm", "from-crm", "bidirectional"],
                   help="which way its records flow: to Sales, from Sales, or both")
    a.add_argument("--bc-filter", help="OData $filter on the Business Central side ('' removes it)")
    a.add_argument("--crm-filter", help="OData $filter on the Dataverse side ('' removes it)")
    a.add_argument("--sync-only-coupled", choices=["true", "false"],
                   help="true: scheduled runs leave uncoupled records alone; false: they create their counterparts")
    a.add_argument("--update-conflict", choices=["none", "send-to-crm", "get-from-crm"],
                   help="a record changed on both sides: report it (none), or let one side win")
    a.add_argument("--deletion-conflict", choices=["none", "restore", "remove-coupling"],
                   help="a coupled record deleted on one side: report it (none), restore it, or drop the coupling")
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
    s = _command(sub, "match", "match-based coupling of the uncoupled rows of a mapping", cmd_match,
                 "  bcsync match CUSTOMER --match Name:0 --match 'Phone No.':1 --wait\n")
    s.add_argument("mapping", help="the table mapping's name")
    _coupling_options(s)
    s.add_argument("--wait", action="store_true", help="process the coupling here until it finishes")
    s = _command(sub, "couple", "couple a Business Central record with a Sales row", cmd_couple)
    s.add_argument("mapping", help="the table mapping's name")
    s.add_argument("--bc", required=True, help="the Business Central record's id (SystemId)")
    s.add_argument("--crm", required=True, help="the Dataverse row's id (or the option value of an option mapping)")
    s = _command(sub, "uncouple", "remove a coupling", cmd_uncouple, "  bcsync uncouple CUSTOMER --crm ID\n")
    s.add_argument("mapping", help="the table mapping's name")
    s.add_argument("--bc", help="the Business Central record's id (SystemId)")
    s.add_argument("--crm", help="the Dataverse row's id")
    s.add_argument("--all", action="store_true",
                   help="every coupling of the mapping, also of a mapping of the other unit mode or pricing "
                        "experience")
    s = _command(sub, "couplings", "list and search the couplings of a mapping", cmd_couplings)
    s.add_argument("mapping", help="the table mapping's name")
    s.add_argument("--search", help="text found in an id or a synchronised value")
    s.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    s = _command(sub, "records", "create or synchronise single records now")
    actions = s.add_subparsers(dest="action", required=True, metavar="ACTION", help="create or sync")
    for name, text in (("create", "create records that are not coupled on the other side, and couple them"),
                       ("sync", "synchronise coupled records now, changed or not")):
        a = _command(actions, name, text, cmd_records)
        a.add_argument("mapping", help="the table mapping's name")
        if name == "create":
            a.add_argument("--in", dest="target", choices=["sales", "bc"], required=True,
                           help="where to create them: Sales (from Business Central records) or Business Central")
        else:
            a.add_argument("--direction", choices=["to-crm", "from-crm"],
                           help="default: the mapping's first direction (to-crm for a bidirectional one)")
        a.add_argument("--id", action="append", help="a source record's id (repeatable)")
        a.add_argument("--filter", help="an OData $filter on the source table instead of ids")
    s = _command(sub, "errors", "the records that failed", cmd_errors)
    s.add_argument("--mapping", help="only this table mapping's")
    s.add_argument("--direction", choices=["to-crm", "from-crm"], help="only this direction's")
    s.add_argument("--skipped", action="store_true", help="only the skipped ones")
    s = _command(sub, "retry", "have the next run try failed records again (restores skipped ones)", cmd_retry,
                 "  bcsync retry --all --mapping CUSTOMER\n")
    s.add_argument("source_id", nargs="?", help="the failed record's id on its source side")
    s.add_argument("--all", action="store_true", help="every failed record (of --mapping)")
    s.add_argument("--skipped", action="store_true", help="every skipped record (of --mapping)")
    s.add_argument("--mapping", help="only this table mapping's")
    s.add_argument("--direction", choices=["to-crm", "from-crm"], help="only this direction's")
    s = _command(sub, "orders", "sales orders from Sales")
    actions = s.add_subparsers(dest="action", required=True, metavar="ACTION", help="create")
    a = _command(actions, "create", "create submitted Sales orders in Business Central now", cmd_orders)
    a.add_argument("order_ids", nargs="+", metavar="ID", help="the Sales order's id (salesorderid)")
    s = _command(sub, "availability", "Business Central inventory of a Sales product", cmd_availability)
    s.add_argument("product", help="the product's id or product number")
    s = _command(sub, "webhooks", "the webhooks through which both services tell of changes in seconds",
                 examples="  bcsync webhooks register     (in Azure; elsewhere set BCSYNC_WEBHOOK_URL first)\n"
                          "  bcsync webhooks status --json\n  bcsync webhooks remove\n")
    actions = s.add_subparsers(dest="action", required=True, metavar="ACTION", help="register, status or remove")
    for name, text in (("register", "register the webhooks of every company (renews and recreates what it must)"),
                       ("status", "what is registered for the URL registered last, and what is missing"),
                       ("remove", "remove every webhook registered for the URL registered last")):
        _command(actions, name, text, cmd_webhooks, every_company=True)
    s = _command(sub, "worker", "process the job queue as the Functions host would", cmd_worker)
    s.add_argument("--until-idle", action="store_true", help="stop when the queue is empty")
    _command(sub, "check", "test every connection and permission bcsync needs (writes nothing)", cmd_check)
    s = _command(sub, "settings", "list the settings and their meaning", cmd_settings)
    s.set_defaults(no_services=True)
    host.add_command(_command(sub, "serve", "serve the function app's HTTP routes (status page and API) on this "
                                            "machine", host.run,
                              "  bcsync serve                 then open http://127.0.0.1:7071/api/console\n"
                              "  bcsync serve --port 0 --no-worker\n"))
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


def _json_asked(argv: list[str]) -> bool:
    """Whether the command line asks for JSON, for the errors argparse finds before it has parsed --json."""
    return "--json" in (argv[:argv.index("--")] if "--" in argv else argv)


def _stdout_closed() -> None:
    """The reader went away: what is still buffered (and Python's flush at exit) goes nowhere, quietly."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (a test captures it)
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    json_mode = _json_asked(argv)
    try:
        args = parser().parse_args(argv)
        _log_to_console(args.verbose)
        args.out = Output(args.json)
        if getattr(args, "no_services", False):
            return args.func(None, args)
        settings = Settings.load(file=args.settings)
        start_telemetry(settings)
        services = build_services(settings)
        return args.func(services if args.every_company else services.for_company(args.company), args)
    except UsageError as exc:
        if json_mode:
            error(exc.message, json_mode, field=exc.field)
        else:  # as argparse says it
            exc.parser.print_usage(sys.stderr)
            sys.stderr.write(f"{exc.parser.prog}: error: {exc.message}\n")
        return exc.exit_code
    except CliError as exc:
        error(exc.message, json_mode, code=exc.code, field=exc.field)
        return exc.exit_code
    except SyncError as exc:
        problems = exc.problems if isinstance(exc, SettingsError) else {}
        error(exc.message, json_mode, code=type(exc).__name__,
              field=next(iter(problems)) if len(problems) == 1 else getattr(exc, "field", ""))
        # a service that is down or throttling may work later; anything else needs a fix first
        return FAILED if isinstance(exc, TransientError) else USAGE
    except KeyboardInterrupt:
        error("interrupted.", json_mode)
        return INTERRUPTED
    except BrokenPipeError:
        _stdout_closed()
        return PIPE_CLOSED


if __name__ == "__main__":
    sys.exit(main())
