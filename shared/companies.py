"""The Business Central companies one function app synchronises with one Dataverse environment.

One company (BCSYNC_BC_COMPANY_ID alone) works as bcsync always did: its tables are BCSYNC_TABLE_PREFIX's and its
Dataverse rows carry no company. Several (BCSYNC_COMPANIES) each get tables of their own, their jobs' messages name
them, and their Dataverse rows carry the company (bcbi_companyid), as Business Central's own integration stamps and
filters them. This module is the one place that derives a company's tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sync.errors import ConfigurationError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
MAX_INTERVAL_MINUTES = 7 * 24 * 60
EXAMPLE = "CRONUS=<company id>; FABRIKAM=<company id>:60"


@dataclass(frozen=True)
class Company:
    name: str                 # how the CLI, the HTTP API and the job log name it
    bc_company_id: str        # the company's id in Business Central (API v2.0 companies(<id>))
    table_prefix: str         # its Table Storage tables: couplings, state, runs, errors, mapping overrides
    interval_minutes: int | None = None  # the least time between two of its scheduled runs (None: every tick)
    stamped: bool = False     # its Dataverse rows carry bcbi_companyid (several companies)
    home: bool = True         # processes the Sales quotes of no company (BCSYNC_BC_COMPANY_ID's, else the first)


def parse(value: str) -> list[tuple[str, str, int | None]]:
    """BCSYNC_COMPANIES as (name, id, minutes); ValueError says what is wrong and how to fix it."""
    entries = [part.strip() for part in value.split(";") if part.strip()]
    if not entries:
        raise ValueError(f"lists no company; set NAME=ID for each, like {EXAMPLE}")
    parsed, names, ids = [], set(), set()
    for entry in entries:
        name, sep, rest = (s.strip() for s in entry.partition("="))
        company_id, _, minutes = (s.strip() for s in rest.partition(":"))
        if not sep or not _NAME.fullmatch(name):
            raise ValueError(f"has {entry!r}, which is not NAME=ID with a name of letters and digits starting with a "
                             f"letter; set one entry per company, like {EXAMPLE}")
        if not _GUID.fullmatch(company_id):
            raise ValueError(f"gives {name} the id {company_id!r}, which is not a GUID; set the company's id "
                             f"(bcsync check lists them)")
        interval = None
        if minutes:
            if not minutes.isdigit() or not 1 <= int(minutes) <= MAX_INTERVAL_MINUTES:
                raise ValueError(f"gives {name} the interval {minutes!r}; set whole minutes from 1 to "
                                 f"{MAX_INTERVAL_MINUTES}, or none for every tick of BCSYNC_SCHEDULE")
            interval = int(minutes)
        if name.lower() in names:
            raise ValueError(f"names {name} twice (names are compared without case); give each company its own")
        if company_id.lower() in ids:
            raise ValueError(f"gives the id {company_id} twice; each company once")
        names.add(name.lower())
        ids.add(company_id.lower())
        parsed.append((name, company_id.lower(), interval))
    return parsed


def companies(listed: str | None, single_id: str | None, table_prefix: str) -> list[Company]:
    """The companies to synchronise. The company of BCSYNC_BC_COMPANY_ID keeps the tables it always had (so a
    deployment that adds companies keeps its couplings and state); the others get BCSYNC_TABLE_PREFIX + name."""
    if not listed:
        return [Company(single_id.lower(), single_id.lower(), table_prefix)] if single_id else []
    entries, single = parse(listed), (single_id or "").lower()
    home = single or entries[0][1]  # processes the Sales quotes of no company
    found = [Company(name, company_id, table_prefix if company_id == single else table_prefix + name, interval,
                     stamped=True, home=company_id == home) for name, company_id, interval in entries]
    if single and not any(c.home for c in found):
        raise ConfigurationError(f"BCSYNC_BC_COMPANY_ID ({single}) is not one of the companies of BCSYNC_COMPANIES; "
                                 f"add it there (its couplings and state stay where they are), or remove the setting.")
    return found


def table_prefix_problem(listed: str, table_prefix: str, longest_table: str) -> str | None:
    """What makes a company's table names ones Azure Storage refuses (too long), if anything."""
    longest = max((name for name, _, _ in parse(listed)), key=len)
    if len(table_prefix + longest + longest_table) > 63:
        return (f"makes table names longer than Azure Storage allows ({table_prefix + longest + longest_table!r}); "
                f"shorten the name {longest} (at most {63 - len(table_prefix + longest_table)} characters)")
    return None


def chosen(found: list[Company], asked: str | None) -> Company:
    """The company a command or request names (its name or id), or the only one; several and none named is an
    error, never a guess."""
    if asked:
        key = asked.strip().lower()
        for company in found:
            if key in (company.name.lower(), company.bc_company_id):
                return company
        raise ConfigurationError(f"There is no company {asked!r}; configured: {names(found)}.")
    if len(found) == 1:
        return found[0]
    raise ConfigurationError(f"Several companies are configured ({names(found)}): name one (--company NAME on the "
                             f"command line, ?company=NAME over HTTP).")


def names(found: list[Company]) -> str:
    return ", ".join(c.name for c in found)
