"""The connection check: everything bcsync depends on, tested in seconds, without writing anything.

- a token for each service;
- the Dataverse application user, enabled, and the privileges its security roles grant on every table the
  enabled table mappings read (Read) or write (Create, Write), at organization level, since bcsync reads
  and writes every row whoever owns it;
- the integration user's identity: the user bcsync acts as, and the one the job log kept (jobs leave out
  the changes that user made, so a kept id that is no longer ours would let bcsync's own writes come back);
- the Business Central company, and one row of every API entity set and published page the enabled
  mappings read or write;
- the storage account's tables and queue.

Each problem is one finding naming what failed and how to fix it. A service whose sign-in fails is not
asked anything further: each of its checks would fail for the same reason.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .errors import AuthenticationError, NotFoundError, SettingsError, SyncError
from .facts import INTEGRATION_USER
from .model import EMPTY_GUID, BcTable, CrmTable, Direction, Side, TableMapping
from .ports import ConnectionProbe
from .tables import CRM_COMPANY

CREATE, READ, WRITE = "Create", "Read", "Write"
ORGANIZATION = "organization"
SERVICE = {Side.BC: "Business Central", Side.CRM: "Dataverse"}
AGAIN = "the service did not answer; run the check again in a minute"
# Business Central requests go 5 at a time anyway (its limit per user); a few more keep both services busy
PARALLEL = 8


@dataclass(frozen=True)
class Finding:
    """One check's outcome: what was checked, what was found (or what failed) and, for a problem, the fix."""

    check: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok    {self.check}: {self.detail}"
        return f"FAIL  {self.check}: {_sentence(self.detail)}" + (f" Fix: {_sentence(self.fix)}" if self.fix else "")

    def to_dict(self) -> dict:
        return {"check": self.check, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def _sentence(text: str) -> str:
    text = text.rstrip()
    return text if text.endswith((".", ")")) else text + "."


@dataclass
class CheckReport:
    findings: list[Finding]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def to_dict(self) -> dict:
        return {"healthy": self.ok, "seconds": round(self.seconds, 2),
                "problems": [f.to_dict() for f in self.problems], "checks": [f.to_dict() for f in self.findings]}

    def text(self) -> str:
        verdict = "healthy" if self.ok else f"{len(self.problems)} problem(s)"
        return "\n".join([f.line() for f in self.findings] + [f"Connection check: {verdict} ({self.seconds:.1f} s)"])


@dataclass
class Reach:
    """What the enabled table mappings read and write: Business Central tables (entity sets and pages) by
    their name, and per Dataverse table the access they need."""

    bc: dict[str, tuple[BcTable, set[str]]] = field(default_factory=dict)
    crm: dict[str, tuple[CrmTable, set[str]]] = field(default_factory=dict)

    def add(self, table: BcTable | CrmTable | None, access: Iterable[str]) -> None:
        if isinstance(table, BcTable):
            self.bc.setdefault(table.entity_set, (table, set()))[1].update(access)
            if table.companion is not None:  # the fields API v2.0 lacks, through a published page
                page = BcTable.page(table.companion.service, f"{table.caption} page", (table.companion.key[1],))
                self.bc.setdefault(page.entity_set, (page, set()))[1].update(access)
        elif isinstance(table, CrmTable):
            self.crm.setdefault(table.logical_name, (table, set()))[1].update(access)


def reach(mappings: Iterable[TableMapping]) -> Reach:
    """The tables the enabled mappings touch: each mapping's own two tables (rows created and updated on the side
    the mapping's direction writes to) and those its rules or job process declare (`reads`, `writes` for
    updates, `creates`)."""
    found = Reach()
    for m in mappings:
        if not m.enabled:
            continue
        for side in (Side.BC, Side.CRM):
            writes = m.process is None and m.direction.includes(
                Direction.TO_CRM if side is Side.CRM else Direction.FROM_CRM)
            found.add(m.table_on(side), (READ, CREATE, WRITE) if writes else (READ,))
        for extra in (m.rules, m.process):
            for table in getattr(extra, "reads", ()):
                found.add(table, (READ,))
            for table in getattr(extra, "writes", ()):
                found.add(table, (READ, WRITE))
            for table in getattr(extra, "creates", ()):
                found.add(table, (READ, CREATE, WRITE))
    return found


def run_checks(mappings: Iterable[TableMapping], probe: ConnectionProbe,
               clock: Callable[[], float] = time.monotonic, *, companies: bool = False) -> CheckReport:
    """Every check, the services' in parallel; findings in a fixed order (storage, Dataverse, Business Central).
    `companies`: several companies share the environment, so bcsync reads their table (and creates a missing row)."""
    needed, started = reach(mappings), clock()
    if companies:
        needed.add(CRM_COMPANY, (READ, CREATE))
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="check") as pool:
        parts = [pool.submit(_storage, probe), pool.submit(_dataverse, probe, needed),
                 pool.submit(_business_central, probe, needed, pool)]
        findings = [f for part in parts for f in part.result()]
    return CheckReport(findings, clock() - started)


def _storage(probe: ConnectionProbe) -> list[Finding]:
    try:
        missing = probe.storage()
    except SyncError as exc:
        # a refusal or a setting in error says what to fix itself
        return [Finding("Storage", False, exc.message, "" if not exc.transient else
                        "check that the storage account in AzureWebJobsStorage is reachable from here (network rules, "
                        "private endpoints, the account name)")]
    if missing:
        return [Finding("Storage", True, f"reachable; not created yet: {', '.join(missing)} (bcsync creates them "
                                         "when it first uses them)")]
    return [Finding("Storage", True, "tables and queue reachable")]


def _signed_in(probe: ConnectionProbe, side: Side) -> Finding:
    service = SERVICE[side]
    try:
        probe.sign_in(side)
    except SyncError as exc:
        fix = "" if "Fix:" in exc.message else (
            "check BCSYNC_TENANT_ID, BCSYNC_CLIENT_ID and the client credential settings (`bcsync settings` "
            "lists them)")
        return Finding(f"{service} sign-in", False, exc.message, fix)
    return Finding(f"{service} sign-in", True, f"token for {probe.identity(side)}")


def _dataverse(probe: ConnectionProbe, needed: Reach) -> list[Finding]:
    signed_in = _signed_in(probe, Side.CRM)
    if not signed_in.ok:
        return [signed_in]
    findings = [signed_in]
    who = probe.identity(Side.CRM)
    try:
        user = probe.application_user()
    except SyncError as exc:
        return findings + [Finding("Dataverse application user", False, exc.message, _access_fix(exc, who))]
    if not user.found:
        return findings + [Finding(
            "Dataverse application user", False, f"{who} has no application user in this environment",
            "create one with that application id (Power Platform admin center > the environment > Settings > Users "
            "+ permissions > Application users) and assign it a security role with the privileges bcsync needs "
            "(docs/deploy.md lists them)")]
    if user.disabled:
        return findings + [Finding("Dataverse application user", False, f"the application user '{user.name}' of "
                                   f"{who} is disabled", "enable it in the Power Platform admin center (Application "
                                                         "users)")]
    findings.append(Finding("Dataverse application user", True, f"'{user.name}' ({user.id})"))
    findings.append(_integration_user(probe, user.id, user.name))
    try:
        held = probe.privileges(user.id)
    except SyncError as exc:
        return findings + [Finding("Dataverse privileges", False, exc.message, _access_fix(exc, who))]
    return findings + _privileges(user.name, held, needed)


def _integration_user(probe: ConnectionProbe, user_id: str, name: str) -> Finding:
    """Jobs leave out what the integration user changed (their own writes); the id they use is kept across
    runs, so a kept id that is no longer the signed-in user's would make bcsync read its own writes back."""
    try:
        kept = probe.kept_facts().get(INTEGRATION_USER)
    except SyncError:
        kept = None  # storage has its own finding
    if kept is not None and str(kept.value).lower() != user_id.lower():
        return Finding("Integration user", False, f"bcsync's state keeps {kept.value} as the integration user, but "
                                                  f"bcsync now acts as '{name}' ({user_id})",
                       "the kept id is read afresh after BCSYNC_FACTS_TTL_SECONDS; until then bcsync's own writes "
                       "come back as changes: wait that long before the next run, or lower the setting")
    return Finding("Integration user", True, f"bcsync acts as '{name}' ({user_id}); jobs leave out its own changes")


def _privileges(user: str, held: dict[str, dict[str, str]], needed: Reach) -> list[Finding]:
    findings = []
    for name, (table, access) in sorted(needed.crm.items()):
        lacking = [a for a in (READ, CREATE, WRITE) if a in access and held.get(name, {}).get(a) != ORGANIZATION]
        if not lacking:
            findings.append(Finding(f"Dataverse table {name}", True, f"{', '.join(sorted(access))} at organization "
                                                                     "level"))
            continue
        partial = [f"{a} only at {held[name][a]} level" for a in lacking if held.get(name, {}).get(a)]
        findings.append(Finding(
            f"Dataverse table {name}", False,
            f"the application user '{user}' has no security role with {' and '.join(lacking)} on {name} at "
            f"organization level" + (f" ({'; '.join(partial)})" if partial else ""),
            f"add {', '.join(lacking)} on the table {name} at Organization level to its security role, or assign "
            "it a role that has them (Power Platform admin center > Application users > Edit security roles)"))
    return findings


def _no_answer_fix(exc: SyncError) -> str:
    """A service that gave no answer: a setting that can never work is corrected, a service that is down waited for."""
    if isinstance(exc, SettingsError):
        return f"correct {' and '.join(exc.problems)}"
    return AGAIN if exc.transient else ""


def _access_fix(exc: SyncError, who: str) -> str:
    if isinstance(exc, AuthenticationError):
        return f"check that {who} may use the service (its application user and security role)"
    return _no_answer_fix(exc)


def _business_central(probe: ConnectionProbe, needed: Reach, pool: ThreadPoolExecutor) -> list[Finding]:
    signed_in = _signed_in(probe, Side.BC)
    if not signed_in.ok:
        return [signed_in]
    who = probe.identity(Side.BC)
    try:
        name = probe.company()
    except NotFoundError as exc:
        return [signed_in, Finding("Business Central company", False, exc.message, _company_fix(probe))]
    except SyncError as exc:
        return [signed_in, Finding("Business Central company", False, exc.message, _bc_fix(exc, who, None))]
    tables = [table for table, _ in sorted(needed.bc.values(), key=lambda t: (t[0].is_page, t[0].entity_set))]
    return [signed_in, Finding("Business Central company", True, f"'{name}'")] + \
        list(pool.map(lambda table: _bc_table(probe, table, who), tables))


def _company_fix(probe: ConnectionProbe) -> str:
    try:
        found = probe.companies()
    except SyncError:
        found = []
    known = "; the environment has " + ", ".join(f"'{name}' ({id_})" for id_, name in found) if found else ""
    return (f"set BCSYNC_BC_COMPANY_ID (with several companies, the company's entry in BCSYNC_COMPANIES) to the id of "
            f"the company to synchronise{known}")


def _bc_table(probe: ConnectionProbe, table: BcTable, who: str) -> Finding:
    kind = "page" if table.is_page else "entity set"
    check = f"Business Central {kind} {table.entity_set}"
    try:
        # document lines are read by their document only; no document has the empty id
        probe.read_one(Side.BC, table, f"documentId eq {EMPTY_GUID}" if table.key_field == "sequence" else "")
    except SyncError as exc:
        return Finding(check, False, exc.message, _bc_fix(exc, who, table))
    return Finding(check, True, "answers")


def _bc_fix(exc: SyncError, who: str, table: BcTable | None) -> str:
    if isinstance(exc, AuthenticationError):
        return (f"on Business Central's Microsoft Entra Applications page, enable {who} and give it the BCS "
                "INTEGRATION permission set (of the bcsync extension) or one that reads and writes "
                + (table.caption if table else "the synchronised tables"))
    if isinstance(exc, NotFoundError) and table is not None:
        if table.is_page:
            return (f"publish the page as the web service {table.entity_set} (install the bcsync extension "
                    "from bc-extension/, which publishes every page bcsync uses)")
        return f"the API v2.0 entity set {table.entity_set} is missing: bcsync needs Business Central 26.0 or later"
    return _no_answer_fix(exc)
