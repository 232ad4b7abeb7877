"""The status page: an operator's console served by the function app as server-rendered HTML, one page per
section with a shared navigation. Pages only read, through the same services as the JSON routes; every
action is a small script calling an existing JSON route (and its access check) with fetch.

Every value is escaped on output, and nothing in the settings but the environments' URLs is shown. In
keys mode a browser carries the key as `?code=` in the page's address (the host accepts it there); the
script forwards it to the JSON routes as `x-functions-key` and keeps it on the navigation's links, and the
page's own HTML never contains it. Reading needs a function key, actions the master key (or, in entra mode,
the reader and admin app roles), exactly as for the JSON routes."""

from __future__ import annotations

import html
import json
import secrets
from collections import Counter
from typing import Iterable
from urllib.parse import quote, urlencode, urlsplit

import azure.functions as func

from sync import coupling
from sync.errors import ConfigurationError, RecordError, SettingsError, SyncError, cut
from sync.facts import BC_COMPANY_NAME
from sync.mappings import Catalog
from sync.model import DeletionConflictResolution, Direction, UpdateConflictResolution
from sync.ports import RecordFailure
from sync.runs import RUN_ID, RunStatus

from . import request
from .access import Access
from .companies import chosen
from .http_api import ONE_WAY, all_services, company_named, mapping_in_use, route, services

bp = func.Blueprint()

SECTIONS = (("mappings", "Table mappings"), ("review", "Full synchronisation review"), ("jobs", "Job log"),
            ("errors", "Errors"), ("couplings", "Couplings"), ("availability", "Item availability"))
COUNTS = ("inserted", "modified", "deleted", "unchanged", "skipped", "failed", "coupled")

# Business Central's list page of each table, where a deep link filters on the record's SystemId.
BC_PAGES = {"customers": 22, "vendors": 27, "items": 31, "contacts": 5052, "salespeoplePurchasers": 14,
            "currencies": 5, "unitsOfMeasure": 209, "opportunities": 5123, "salesInvoices": 143, "salesOrders": 9305,
            "paymentTerms": 4, "shipmentMethods": 11, "Resources": 77, "CustomerPriceGroups": 7, "ShippingAgents": 428,
            "itemLedgerEntries": 38, "PriceListHeaders": 7015}


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _error_page(status: int, message: str, field: str = "", settings: dict | None = None) -> func.HttpResponse:
    """What the route guard answers in place of a page: the reason, and with settings in error each setting."""
    listed = "".join(f"<li><code>{esc(name)}</code>: {esc(problem)}</li>" for name, problem in (settings or {}).items())
    body = f'<p role="alert" class="bad" id="problem">{esc(message)}</p>' + (f"<ul>{listed}</ul>" if listed else "")
    return _page(None, "", f"bcsync: {status}", body, status=status)


def page(path: str):
    """A page of the console: reading access, problems answered as a page."""
    return route(f"console{path}", ["GET"], Access.READ, blueprint=bp, problem=_error_page)


def _page(req: func.HttpRequest | None, section: str, title: str, body: str, status: int = 200) -> func.HttpResponse:
    """A whole page around `body`. Links in it are relative to the console's folder, which <base> names as this
    request reached it (the host's route prefix need not be api/)."""
    nonce = secrets.token_urlsafe(16)
    current = ' aria-current="page"'
    links = "".join(f'<li><a href="{_href(name)}"{current if name == section else ""}>{esc(label)}</a></li>'
                    for name, label in SECTIONS)
    path = urlsplit(req.url).path if req is not None else ""
    root = path[:path.index("/console") + len("/console/")] if "/console" in path else "/api/console/"
    document = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<base href="{esc(root)}">
<title>{esc(title)} · bcsync</title>
<style nonce="{nonce}">{CSS}</style>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header><p class="brand">bcsync</p>{_companies_bar()}<nav aria-label="Sections"><ul id="nav">{links}</ul></nav></header>
<main id="main" tabindex="-1">
<h1>{esc(title)}</h1>
<p id="status" role="status" aria-live="polite"></p>
{body}
</main>
<script nonce="{nonce}">{SCRIPT}</script>
</body>
</html>
"""
    # The key may be in the address (?code=): no Referer carries it to a linked site.
    policy = (f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self'; "
              f"form-action 'self'; base-uri 'self'; frame-ancestors 'none'")
    return func.HttpResponse(document, status_code=status, mimetype="text/html", charset="utf-8",
                             headers={"Content-Security-Policy": policy, "Referrer-Policy": "no-referrer",
                                      "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


def _companies_bar() -> str:
    """Which Business Central company the page shows and, with several, a link to each (the links and actions of
    the page keep the company chosen)."""
    found, current = [], None
    try:
        found = all_services().companies
        current = chosen(found, company_named()).name if found else None
    except SyncError:  # settings in error, or several companies and none chosen yet
        pass
    if len(found) < 2:
        return f'<p id="company">Company: {esc(current)}</p>' if current else ""
    mark = ' aria-current="true"'
    links = "".join(f'<li><a href="{_href("mappings", company=c.name)}"{mark if c.name == current else ""}>'
                    f'{esc(c.name)}</a></li>' for c in found)
    shown = f"Company: {esc(current)}" if current else "Choose a company"
    return (f'<nav aria-label="Companies" id="company"><p>{shown}</p><ul>{links}</ul></nav>')


def _href(section: str, **params) -> str:
    """A link to a page of the console, relative to its folder (<base>)."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return esc(section + (f"?{query}" if query else ""))


def _table(caption: str, headers: Iterable[str], rows: list[str], table_id: str, empty: str) -> str:
    """A table with a caption and column headers, in a box that scrolls sideways on a narrow screen."""
    if not rows:
        return f'<p id="{table_id}-empty">{esc(empty)}</p>'
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    return (f'<div class="wrap" role="region" aria-labelledby="{table_id}-caption" tabindex="0">'
            f'<table id="{table_id}"><caption id="{table_id}-caption">{esc(caption)}</caption>'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _button(label: str, method: str, path: str, body=None, *, then: str = "reload", name: str = "",
            confirm: str = "") -> str:
    """A button that calls a JSON route: `then` is what follows success (reload the page, or open the run)."""
    attributes = {"data-method": method, "data-path": path, "data-then": then,
                  **({"data-body": json.dumps(body)} if body is not None else {}),
                  **({"data-confirm": confirm} if confirm else {}), **({"aria-label": name} if name else {})}
    shown = "".join(f' {key}="{esc(value)}"' for key, value in attributes.items())
    return f'<button type="button" class="act"{shown}>{esc(label)}</button>'


def _select(name: str, label: str, options: Iterable[tuple[str, str]], chosen: str | None, field_id: str) -> str:
    items = "".join(f'<option value="{esc(v)}"{" selected" if v == (chosen or "") else ""}>{esc(text)}</option>'
                    for v, text in options)
    return (f'<div class="field"><label for="{field_id}">{esc(label)}</label>'
            f'<select id="{field_id}" name="{esc(name)}" data-initial="{esc(chosen or "")}">{items}</select></div>')


def _input(name: str, label: str, value, field_id: str, kind: str = "text", **extra) -> str:
    more = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in extra.items())
    return (f'<div class="field"><label for="{field_id}">{esc(label)}</label>'
            f'<input id="{field_id}" name="{esc(name)}" type="{kind}" value="{esc(value)}" '
            f'data-initial="{esc(value)}"{more}></div>')


def _when(value: str | None) -> str:
    return f'<time datetime="{esc(value)}">{esc(value.replace("T", " ")[:19])}</time>' if value else "—"


# -- table mappings --------------------------------------------------------------------------------------------


@page("")
def console_home(req: func.HttpRequest) -> func.HttpResponse:
    """The console's own address opens the table mappings."""
    return _mappings(req)


@page("/mappings")
def console_mappings(req: func.HttpRequest) -> func.HttpResponse:
    return _mappings(req)


def _mappings(req: func.HttpRequest) -> func.HttpResponse:
    found = Counter((f.mapping, f.skipped) for f in services().failures())
    busy = services().coordinator.busy_mappings()
    rows = []
    for m in services().mappings():
        name, schedule = m["name"], m["schedule"]
        state = ("enabled" if m["enabled"] else "disabled") + (", running" if name in busy else "")
        problem = f'<span class="bad long">{esc(m["override_problem"])}</span>' if m.get("override_problem") else ""
        errors, skipped = found[(name, False)], found[(name, True)]
        actions = (_button("Run now", "POST", "/sync", {"mappings": [name]}, then="run", name=f"Run {name} now")
                   + _button("Full sync", "POST", "/fullsync", {"mappings": [name]}, then="run",
                             name=f"Full synchronisation of {name}", confirm=f"Start a full synchronisation of {name}?")
                   + f'<a class="button" href="{_href("mappings/" + quote(name, safe=""))}" '
                     f'aria-label="Edit {esc(name)}">Edit</a>')
        rows.append(
            f'<tr data-mapping="{esc(name)}"><th scope="row">{esc(name)}{problem}</th><td>{state}</td>'
            f'<td>{esc(m["direction"])}</td><td>every {esc(m["interval_minutes"])} min</td>'
            f'<td>{_when(schedule["last_run_at"])}</td><td>{_when(schedule["runs_by"])}</td>'
            f'<td><a href="{_href("errors", mapping=name)}">{errors}</a></td>'
            f'<td><a href="{_href("errors", mapping=name, skipped="true")}">{skipped}</a></td>'
            f'<td>{"held" if schedule["held"] else "no"}</td><td class="actions">{actions}</td></tr>')
    body = _table("Table mappings", ("Mapping", "State", "Direction", "Schedule", "Last run", "Runs by", "Errors",
                                     "Skipped", "Held", "Actions"), rows, "mappings", "There are no table mappings.")
    return _page(req, "mappings", "Table mappings", body)


@page("/mappings/{name}")
def console_mapping(req: func.HttpRequest) -> func.HttpResponse:
    """One mapping's settings in a form; saving sends the changed ones to PATCH /api/mappings/{name}."""
    m = mapping_in_use(request.mapping(req.route_params.get("name", ""), field="name"))
    name = m["name"]
    directions = [(d.value, d.value) for d in Direction]
    fields = "".join((
        _select("enabled", "State", (("true", "enabled"), ("false", "disabled")), str(m["enabled"]).lower(),
                "field-enabled"),
        _select("direction", "Direction", directions, m["direction"], "field-direction"),
        _input("bc_filter", "Business Central filter (OData $filter)", m["bc_filter"] or "", "field-bc_filter"),
        _input("crm_filter", "Sales filter (OData $filter)", m["crm_filter"] or "", "field-crm_filter"),
        _select("update_conflict", "When both sides changed a field",
                [(c.value, c.value) for c in UpdateConflictResolution], m["update_conflict"], "field-update_conflict"),
        _select("deletion_conflict", "When the coupled record was deleted",
                [(c.value, c.value) for c in DeletionConflictResolution], m["deletion_conflict"],
                "field-deletion_conflict"),
        _input("interval_minutes", "Interval (minutes)", m["interval_minutes"], "field-interval_minutes",
               "number", min=1, data_type="number"),
        _input("inactivity_timeout_minutes", "Interval after a while without changes (minutes)",
               m["inactivity_timeout_minutes"], "field-inactivity_timeout_minutes", "number", min=1,
               data_type="number"),
    ))
    changed = ", ".join(sorted(m["overridden"])) or "nothing: the built-in definition"
    path = f"/mappings/{quote(name, safe='')}"
    body = (f'<p>{esc(m["description"])} Business Central <code>{esc(m["business_central"])}</code>, '
            f'Sales <code>{esc(m["dataverse"])}</code>. Changed from the built-in definition: '
            f'<span id="overridden">{esc(changed)}</span>.</p>'
            f'<form id="mapping-form" class="edit" data-method="PATCH" data-path="{esc(path)}">{fields}'
            f'<div class="actions"><button type="submit" id="save">Save changes</button>'
            + _button("Reset to built-in", "DELETE", f"{path}/overrides",
                      name=f"Reset {name} to its built-in definition",
                      confirm=f"Undo every change to {name}?")
            + f'</div></form><p><a href="{_href("mappings")}">Back to the table mappings</a></p>')
    return _page(req, "mappings", f"Table mapping {name}", body)


# -- full synchronisation review -------------------------------------------------------------------------------


@page("/review")
def console_review(req: func.HttpRequest) -> func.HttpResponse:
    """What a full synchronisation would do per enabled mapping (each service asked for a row or two)."""
    s = services()
    configuration = s.catalogs.read()  # once, for the list and every recommendation
    try:
        catalog, refused = configuration.catalog(), ""
    except ConfigurationError as exc:  # a stored override is wrong: no mapping's recommendation is known
        catalog, refused = None, f"not known: {exc.message}"
    rows = []
    for m in (m for m in s.mappings(configuration) if m["enabled"]):
        name = m["name"]
        try:
            recommendation = s.engine.recommend(catalog[name]).value if catalog is not None else refused
        except SettingsError:
            raise  # the whole page is the settings' problem, not one mapping's
        except SyncError as exc:
            recommendation = f"not known: {exc.message}"
        box = f"review-{_slug(name)}"
        rows.append(f'<tr><td><input type="checkbox" id="{box}" name="mappings" value="{esc(name)}" checked>'
                    f'<label for="{box}" class="visually-hidden">Include {esc(name)}</label></td>'
                    f'<th scope="row">{esc(name)}</th><td>{esc(m["direction"])}</td>'
                    f'<td data-recommendation="{esc(name)}">{esc(recommendation)}</td></tr>')
    table = _table("Recommendation per table mapping", ("Include", "Mapping", "Direction", "Recommendation"), rows,
                   "review", "No table mapping is enabled.")
    body = (f'<form id="review-form" data-method="POST" data-path="/fullsync" data-then="run">{table}'
            f'<div class="actions"><button type="submit" id="start">Start full synchronisation</button></div>'
            f"</form>")
    return _page(req, "review", "Full synchronisation review", body)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).lower()


# -- job log -------------------------------------------------------------------------------------------------


@page("/jobs")
def console_jobs(req: func.HttpRequest) -> func.HttpResponse:
    chosen = request.named_mapping(req.params)
    reports = services().job_log(limit=request.number(req.params, "limit", 10, 1, 100), mapping=chosen)
    form = (f'<form method="get" class="filters" action="{_href("jobs")}">'
            + _select("mapping", "Mapping", [("", "all")] + [(n, n) for n in services().catalogs.current().names()],
                      chosen, "filter-mapping")
            + '<button type="submit">Show</button></form>')
    runs = "".join(_run(report.to_dict()) for report in reports) or '<p id="runs-empty">No run yet.</p>'
    return _page(req, "jobs", "Job log", form + runs)


@page("/jobs/{run_id}")
def console_run(req: func.HttpRequest) -> func.HttpResponse:
    run_id = req.route_params.get("run_id", "")
    report = services().report(run_id) if RUN_ID.fullmatch(run_id) else None
    if report is None:
        raise request.BadRequest(f"There is no run {cut(run_id)}.", status=404)
    shown = report.to_dict()
    failed = [f'<tr><td>{esc(f["mapping"])}</td><td>{esc(f["direction"])}</td><td>{esc(f["record"])}</td>'
              f'<td class="long">{esc(f["message"])}</td></tr>' for f in shown["failures"]]
    more = _table("Records that failed in this run", ("Mapping", "Direction", "Record", "Message"), failed,
                  "run-failures", "No record failed in this run.")
    return _page(req, "jobs", f"Run {run_id}", _run(shown, heading=False) + more)


def _run(run: dict, heading: bool = True) -> str:
    """A run and the table of its jobs; while it runs, the script polls GET /api/runs/{id} to update the rows."""
    rid = run["run"]
    totals = ", ".join(f"{run['totals'][c]} {c}" for c in COUNTS if run["totals"].get(c))
    title = (f'<h2><a href="{_href("jobs/" + quote(rid, safe=""))}">Run {esc(rid)}</a></h2>' if heading else "")
    rows = []
    for job in run["jobs"]:
        why = job["recommendation"] or job["reason"]
        counts = "".join(f'<td data-count="{c}">{esc(job["counts"].get(c, 0))}</td>' for c in COUNTS)
        message = f'<span class="note long">{esc(job["message"])}</span>' if job["message"] else ""
        rows.append(f'<tr data-job="{esc(job["job"])}"><th scope="row">{esc(job["job"])}{message}</th>'
                    f'<td>{esc(job["mode"])}{": " + esc(why) if why else ""}</td>'
                    f'<td data-field="status">{esc(job["status"])}</td>{counts}'
                    f'<td data-field="started">{_when(job["started_at"])}</td>'
                    f'<td data-field="seconds" data-started="{esc(job["started_at"] or "")}">'
                    f'{esc(job["seconds"] if job["seconds"] is not None else "—")}</td></tr>')
    running = run["status"] == RunStatus.RUNNING.value
    table = _table(f"Jobs of run {rid}", ("Job", "Mode", "Status", *COUNTS, "Started", "Seconds"), rows,
                   f"jobs-{_slug(rid)}", "This run has no jobs.")
    return (f'<section class="run" data-run="{esc(rid)}" data-running="{str(running).lower()}">{title}'
            f'<p>{esc(run["kind"])} run, started by {esc(run["trigger"])} at {_when(run["created_at"])}; '
            f'<strong data-field="run-status">{esc(run["status"])}</strong>'
            f'{", finished " + _when(run["finished_at"]) if run["finished_at"] else ""}. '
            f'<span data-field="totals">{esc(totals)}</span></p>{table}</section>')


# -- errors ------------------------------------------------------------------------------------------------------


@page("/errors")
def console_errors(req: func.HttpRequest) -> func.HttpResponse:
    chosen, direction = request.named_mapping(req.params), request.choice(req.params, "direction", ONE_WAY)
    skipped = request.flag(req.params, "skipped")
    found = services().failures(chosen, direction, skipped)
    catalog = services().catalogs.current()  # once, for the links and the filter
    links = _Links(catalog)
    rows = []
    for f in found:
        scope = {"mapping": f.mapping, "direction": f.direction.value, "source_id": f.source_id}
        act = (_button("Restore", "POST", "/errors/retry", {**scope, "skipped": True},
                       name=f"Restore skipped record {f.record}") if f.skipped else
               _button("Retry", "POST", "/errors/retry", scope, name=f"Retry record {f.record}"))
        rows.append(f'<tr data-source-id="{esc(f.source_id)}"><td>{esc(f.mapping)}</td><td>{esc(f.direction.value)}'
                    f'</td><th scope="row">{esc(f.record)}</th><td>{esc(f.field)}</td>'
                    f'<td class="long">{esc(f.message)}</td>'
                    f'<td>{esc(f.count)}</td><td>{"skipped" if f.skipped else "failed"}</td>'
                    f'<td>{_when(f.last_seen.isoformat() if f.last_seen else None)}</td>'
                    f'<td class="actions">{links.both(f)}</td><td class="actions">{act}</td></tr>')
    form = (f'<form method="get" class="filters" action="{_href("errors")}">'
            + _select("mapping", "Mapping", [("", "all")] + [(n, n) for n in catalog.names()], chosen, "filter-mapping")
            + _select("direction", "Direction", [("", "both"), *((d, d) for d in ONE_WAY)], direction,
                      "filter-direction")
            + _select("skipped", "Records", [("", "failed and skipped"), ("false", "failed"), ("true", "skipped")],
                      None if skipped is None else str(skipped).lower(), "filter-skipped")
            + '<button type="submit">Filter</button></form>')
    scope = {k: v for k, v in (("mapping", chosen), ("direction", direction)) if v}
    bulk = ('<div class="actions">'
            + _button("Retry all shown", "POST", "/errors/retry", {**scope, "all": True},
                      name="Retry every record shown")
            + _button("Restore all skipped", "POST", "/errors/retry", {**scope, "skipped": True},
                      name="Restore every skipped record shown")
            + "</div>") if found else ""
    table = _table("Failed and skipped records", ("Mapping", "Direction", "Record", "Field", "Message", "Count",
                                                  "State", "Last seen", "Open", "Action"), rows, "errors",
                   "No failed or skipped record.")
    return _page(req, "errors", "Errors", form + bulk + table)


class _Links:
    """Deep links that open a record in Business Central's web client and in Sales, built from the configured
    environment URLs: BCSYNC_BC_URL (…/v2.0/<tenant>/<environment>) and BCSYNC_DATAVERSE_URL."""

    def __init__(self, catalog: Catalog):
        s = services()
        self.catalog = catalog
        self.sales = (s.settings.dataverse_url or "").rstrip("/")
        bc = urlsplit(s.settings.bc_url or "")
        tenant_environment = bc.path.split("/v2.0/", 1)[1].strip("/") if "/v2.0/" in bc.path else ""
        host = bc.netloc.removeprefix("api.") if bc.netloc else ""
        self.bc = f"{bc.scheme}://{host}/{tenant_environment}" if host and tenant_environment else ""
        fact = _company_name(s)
        self.company = {"company": fact} if fact else {}

    def both(self, f: RecordFailure) -> str:
        bc_id, crm_id = (f.source_id, f.target_id) if f.direction is Direction.TO_CRM else (f.target_id, f.source_id)
        return self.pair(f.mapping, bc_id, crm_id)

    def pair(self, mapping: str, bc_id: str | None, crm_id: str | None) -> str:
        found = self.catalog[mapping] if mapping in self.catalog else None
        if found is None or found.is_option_mapping:
            return "—"
        shown = []
        page_id = BC_PAGES.get(found.bc.entity_set)
        if bc_id and self.bc and page_id:
            url = f"{self.bc}/?" + urlencode({**self.company, "page": page_id, "filter": f"'SystemId' IS '{bc_id}'"})
            shown.append(f'<a href="{esc(url)}" rel="noreferrer" target="_blank">Business Central</a>')
        if crm_id and self.sales and found.crm is not None:
            url = f"{self.sales}/main.aspx?" + urlencode({"pagetype": "entityrecord", "etn": found.crm.logical_name,
                                                          "id": crm_id})
            shown.append(f'<a href="{esc(url)}" rel="noreferrer" target="_blank">Sales</a>')
        return " ".join(shown) or "—"


def _company_name(s) -> str | None:
    """The Business Central company's name as the last job read it, for the web client's ?company=."""
    try:
        fact = s.state.facts().get(BC_COMPANY_NAME)
    except SyncError:
        return None
    return str(fact.value) if fact else None


# -- couplings -----------------------------------------------------------------------------------------------------


@page("/couplings")
def console_couplings(req: func.HttpRequest) -> func.HttpResponse:
    catalog = services().catalogs.current()  # once, for the filter, the couplings and the links
    names = catalog.names()
    chosen = request.named_mapping(req.params) or names[0]
    search = request.text(req.params, "search")
    found = services().list_couplings(chosen, search, request.number(req.params, "limit", 100, 1, 1000), catalog)
    links = _Links(catalog)
    path = f"/couplings/{quote(chosen, safe='')}"
    rows = []
    for c in map(coupling.to_dict, found):
        values = "; ".join(f"{k}: {v}" for k, v in {**c["bc_values"], **c["crm_values"]}.items() if v not in (None, ""))
        rows.append(f'<tr data-bc-id="{esc(c["bc_id"])}"><th scope="row"><code>{esc(c["bc_id"])}</code></th>'
                    f'<td><code>{esc(c["crm_id"])}</code></td><td class="long">{esc(values[:200])}</td>'
                    f'<td>{_when(c["synced_at"])}</td>'
                    f'<td class="actions">{links.pair(chosen, c["bc_id"], c["crm_id"])}</td><td class="actions">'
                    + _button("Uncouple", "DELETE", f"{path}?{urlencode({'bc': c['bc_id']})}",
                              name=f"Uncouple {c['bc_id']}", confirm="Uncouple these two records?") + "</td></tr>")
    form = (f'<form method="get" class="filters" action="{_href("couplings")}">'
            + _select("mapping", "Mapping", [(n, n) for n in names], chosen, "filter-mapping")
            + _input("search", "Search (id or value)", search or "", "filter-search", "search")
            + '<button type="submit">Search</button></form>')
    couple = (f'<h2 id="couple-heading">Couple two records</h2><form id="couple-form" class="edit" data-method="POST" '
              f'data-path="{esc(path)}" data-all="true" aria-labelledby="couple-heading">'
              + _input("bc_id", "Business Central id", "", "couple-bc_id", required="required")
              + _input("crm_id", "Sales id", "", "couple-crm_id", required="required")
              + f'<div class="actions"><button type="submit" id="couple">Couple in {esc(chosen)}</button></div></form>')
    table = _table(f"Couplings of {chosen}", ("Business Central id", "Sales id", "Values", "Synchronised", "Open",
                                              "Action"), rows, "couplings", "No coupling found.")
    return _page(req, "couplings", "Couplings", form + table + couple)


# -- item availability ---------------------------------------------------------------------------------------------


@page("/availability")
def console_availability(req: func.HttpRequest) -> func.HttpResponse:
    """Business Central inventory of a Sales product, looked up when the form is sent."""
    product = request.text({"product": (req.params.get("product") or "").strip()}, "product", limit=100)
    form = (f'<form method="get" class="filters" action="{_href("availability")}">'
            + _input("product", "Sales product id or product number", product or "", "product", "search")
            + '<button type="submit">Look up</button></form>')
    if not product:
        return _page(req, "availability", "Item availability", form)
    try:
        found = services().item_availability(product)
    except RecordError as exc:
        return _page(req, "availability", "Item availability", form + f'<p role="alert" class="bad" id="problem">'
                                                                 f'{esc(exc.message)}</p>', status=404)
    rows = [f'<tr><th scope="row">{esc(found["product_number"])}</th><td>{esc(found["item_no"])}</td>'
            f'<td data-field="inventory">{esc(found["inventory"])}</td><td>{esc(found["unit"])}</td></tr>']
    table = _table("Inventory in Business Central", ("Product", "Item", "Inventory", "Unit"), rows, "availability", "")
    return _page(req, "availability", "Item availability", form + table)


CSS = """
:root{color-scheme:light;--fg:#1b1b1b;--muted:#555;--line:#c8c8c8;--accent:#0b5cad;--bad:#a4262c;--bg:#fff}
*{box-sizing:border-box}
body{margin:0;overflow-wrap:break-word;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg);background:var(--bg)}
header{background:#f3f5f8;border-bottom:1px solid var(--line);padding:.5rem 1rem}
.brand{margin:0 0 .25rem;font-weight:700}
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.25rem .75rem}
nav a[aria-current=page]{font-weight:700;text-decoration-thickness:3px}
main{padding:1rem;max-width:100%}
h1{font-size:1.5rem;margin:.25rem 0 .75rem}
h2{font-size:1.15rem;margin:1.25rem 0 .5rem;overflow-wrap:anywhere}
a{color:var(--accent)}
.wrap{max-width:100%;overflow-x:auto;margin:.5rem 0 1rem}
table{border-collapse:collapse;min-width:100%}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{border:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top;white-space:nowrap}
.long{display:block;white-space:normal;min-width:16rem;max-width:32rem}
td.long{display:table-cell}
thead th{background:#f3f5f8}
code{overflow-wrap:anywhere;white-space:normal}
form.filters,form.edit{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end;margin:.5rem 0 1rem}
form.edit{flex-direction:column;align-items:stretch;max-width:40rem}
.field{display:flex;flex-direction:column;gap:.15rem;min-width:0;max-width:100%}
label{display:block;font-weight:600;font-size:.9rem}
input,select,button,.button{font:inherit;min-height:2.25rem;max-width:100%}
input[type=text],input[type=search],input[type=number],select{width:100%;padding:.25rem .4rem;border:1px solid #767676;
  border-radius:3px}
button,.button{display:inline-block;padding:.3rem .75rem;border:1px solid var(--accent);border-radius:3px;
  background:var(--accent);color:#fff;cursor:pointer;text-decoration:none}
button.act{background:#fff;color:var(--accent)}
button[disabled]{opacity:.6;cursor:progress}
.actions{display:flex;flex-wrap:wrap;gap:.35rem}
td.actions{display:table-cell}
td.actions>*{margin:.1rem .2rem .1rem 0}
:focus-visible{outline:3px solid #f9a825;outline-offset:2px}
.skip{position:absolute;left:-999px}
.skip:focus{left:1rem;top:.5rem;background:#fff;padding:.25rem .5rem;z-index:1}
.bad{color:var(--bad)}
.note{color:var(--muted);font-size:.9rem;font-weight:400}
#status:empty{display:none}
#status{padding:.4rem .6rem;border-left:4px solid var(--accent);background:#eef4fb}
#status.bad{border-color:var(--bad);background:#fbeeee}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
"""

SCRIPT = r"""
"use strict";
(function () {
  const key = new URLSearchParams(location.search).get("code");
  const company = new URLSearchParams(location.search).get("company");
  const api = location.pathname.slice(0, location.pathname.indexOf("/console"));
  const status = document.getElementById("status");

  function say(text, bad) { status.textContent = text; status.classList.toggle("bad", !!bad); }

  function withKey(href) {
    const url = new URL(href, location.href);
    if (key && url.origin === location.origin) { url.searchParams.set("code", key); }
    if (company && url.origin === location.origin && !url.searchParams.has("company")) {
      url.searchParams.set("company", company);
    }
    return url.origin === location.origin ? url.pathname + url.search + url.hash : url.href;
  }

  // keys mode: the key in the address follows the links and the filter forms (never written into the HTML); so
  // does the company chosen
  if (key || company) {
    document.querySelectorAll("a[href]").forEach(a => { a.href = withKey(a.href); });
    document.querySelectorAll("form[method=get]").forEach(form => {
      for (const [name, value] of [["code", key], ["company", company]]) {
        if (!value) { continue; }
        const hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = name; hidden.value = value;
        form.append(hidden);
      }
    });
  }

  async function call(method, path, body) {
    const headers = {"Accept": "application/json"};
    if (key) { headers["x-functions-key"] = key; }
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    const target = company ? path + (path.includes("?") ? "&" : "?") + "company=" + encodeURIComponent(company) : path;
    const response = await fetch(api + target, {method, headers, credentials: "same-origin",
                                              body: body === undefined ? undefined : JSON.stringify(body)});
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return {ok: response.ok, status: response.status, data};
  }

  function problem(answer) {
    if (answer.data && answer.data.error) { return answer.data.error; }
    if (answer.status === 401) {
      return "Not allowed: this action needs the master key (open the page with ?code=<master key>) or the admin role.";
    }
    return "The request failed with status " + answer.status + ".";
  }

  function done(answer, then) {
    if (!answer.ok) { say(problem(answer), true); return; }
    if (then === "run" && answer.data.run) {
      say("Run " + answer.data.run + " started.");
      location.href = withKey(api + "/console/jobs/" + encodeURIComponent(answer.data.run));
      return;
    }
    const records = answer.data.retried ? answer.data.retried.length + " record(s) will be tried again. " : "";
    say(records + "Done.");
    if (then === "reload") { setTimeout(() => location.reload(), 600); }
  }

  async function act(control, method, path, body, then) {
    control.disabled = true;
    say("Working…");
    try { done(await call(method, path, body), then); }
    catch (e) { say("bcsync could not be reached: " + e.message, true); }
    finally { control.disabled = false; }
  }

  document.querySelectorAll("button.act").forEach(button => button.addEventListener("click", () => {
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) { return; }
    const body = button.dataset.body === undefined ? undefined : JSON.parse(button.dataset.body);
    act(button, button.dataset.method, button.dataset.path, body, button.dataset.then);
  }));

  // forms that change: the review sends the ticked mappings, the couple form every field, the mapping form
  // only the fields that differ from what the page showed
  document.querySelectorAll("form[data-method]").forEach(form => form.addEventListener("submit", event => {
    event.preventDefault();
    const body = {};
    if (form.id === "review-form") {
      body.mappings = Array.from(form.querySelectorAll("input[name=mappings]:checked"), box => box.value);
      if (!body.mappings.length) { say("Tick at least one table mapping.", true); return; }
    } else {
      form.querySelectorAll("input[name], select[name]").forEach(field => {
        if (form.dataset.all !== "true" && field.value === field.dataset.initial) { return; }
        let value = field.value;
        if (field.dataset.type === "number") { value = Number(value); }
        if (field.name === "enabled") { value = value === "true"; }
        body[field.name] = value;
      });
      if (!Object.keys(body).length) { say("Nothing changed."); return; }
    }
    act(form.querySelector("button[type=submit]"), form.dataset.method, form.dataset.path, body,
        form.dataset.then || "reload");
  }));

  // live progress: a running run's jobs are read again every two seconds until the run ends
  function seconds(cell, job) {
    if (job.seconds !== null) { return String(job.seconds); }
    return job.started_at ? ((Date.now() - Date.parse(job.started_at)) / 1000).toFixed(0) + " so far" : "—";
  }

  // the run page lists the run's failed records: once a live run ends, the list is rebuilt from its answer
  function showFailures(failures) {
    const empty = document.getElementById("run-failures-empty");
    if (!empty || !failures.length) { return; }
    const table = document.createElement("table");
    table.id = "run-failures";
    table.createCaption().textContent = "Records that failed in this run";
    const head = table.createTHead().insertRow();
    ["Mapping", "Direction", "Record", "Message"].forEach(text => {
      const cell = document.createElement("th");
      cell.scope = "col";
      cell.textContent = text;
      head.appendChild(cell);
    });
    const body = table.createTBody();
    failures.forEach(failure => {
      const row = body.insertRow();
      [failure.mapping, failure.direction, failure.record, failure.message].forEach(text => {
        row.insertCell().textContent = text;
      });
    });
    empty.replaceWith(table);
  }

  function refresh(section) {
    call("GET", "/runs/" + encodeURIComponent(section.dataset.run)).then(answer => {
      if (!answer.ok) { return; }
      const run = answer.data;
      run.jobs.forEach(job => {
        const row = Array.from(section.querySelectorAll("tr[data-job]")).find(r => r.dataset.job === job.job);
        if (!row) { return; }
        row.querySelector("[data-field=status]").textContent = job.status;
        row.querySelectorAll("[data-count]").forEach(cell => {
          cell.textContent = String(job.counts[cell.dataset.count] || 0);
        });
        const time = row.querySelector("[data-field=seconds]");
        time.textContent = seconds(time, job);
        const started = row.querySelector("[data-field=started]");
        if (job.started_at && started.textContent === "—") {
          started.textContent = job.started_at.replace("T", " ").slice(0, 19);
        }
      });
      section.querySelector("[data-field=run-status]").textContent = run.status;
      if (run.status === "running") { setTimeout(() => refresh(section), 2000); }
      else {
        section.dataset.running = "false";
        showFailures(run.failures);
        say("Run " + run.run + " " + run.status + ".");
      }
    }, () => setTimeout(() => refresh(section), 5000));
  }

  document.querySelectorAll("section.run[data-running=true]")
    .forEach(section => setTimeout(() => refresh(section), 2000));
})();
"""
