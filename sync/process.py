"""Jobs that are not a row-by-row field transfer: sales order creation, quote processing, item availability.

A table mapping with a `process` runs it instead of the engine's transfer, with the same job
context (both sides, couplings, failures, counts, notes) and under the same scheduler, leases and
job log as every other mapping.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Protocol

from .model import ConnectionSetup, Direction
from .ports import (
    Clock,
    Coupling,
    CouplingStore,
    CrmEndpoint,
    Endpoint,
    ErrorStore,
    Record,
    RecordFailure,
    StateStore,
)

if TYPE_CHECKING:
    from .engine import Counts, JobOutcome
    from .facts import Facts
    from .mappings import Catalog
    from .model import TableMapping


class JobContext(Protocol):
    mapping: "TableMapping"
    direction: Direction
    catalog: "Catalog"
    job_id: str
    bc: Endpoint
    crm: CrmEndpoint
    couplings: CouplingStore
    errors: ErrorStore
    state: StateStore
    clock: Clock
    setup: ConnectionSetup
    counts: "Counts"
    cap: dt.datetime                 # what a watermark may be raised to: the job's start less the margin
    failures: dict[str, RecordFailure]
    cache: dict[str, Any]
    facts: "Facts"
    full: bool                       # a full synchronisation: every row is read, not those since the watermark

    def note(self, text: str) -> None: ...

    def coupled_first(self, mapping_name: str, ids: list[str], rows: list[Record]) \
            -> tuple[dict[str, Coupling], dict[str, str]]:
        """The couplings of records `rows` refer to in another mapping; those not coupled yet are synchronised
        first, in the job's direction (SyncEngine.sync_records). Also why one could not be, by lower-case id."""

    def integration_user_id(self) -> str:
        """systemuserid bcsync acts as in Dataverse (a fact kept across runs)."""

    def team_owner(self) -> dict[str, Any]:
        """What a new Sales row is owned by in the team ownership model (the default team of the coupled business
        unit); {} in the person model."""

    def progress(self) -> None:
        """Report the counts so far (the runner saves them and renews the job's lease)."""

    def outcome(self, checkpoint: dt.datetime | None = None, complete: bool = True) -> "JobOutcome": ...


class JobProcess(Protocol):
    def has_work(self, job: JobContext) -> bool:
        """Whether a scheduled job would find anything to do now (cheap: a row or two read)."""

    def run(self, job: JobContext, deadline: dt.datetime | None) -> "JobOutcome":
        ...
