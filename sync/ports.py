"""What the domain needs from the outside world, as Protocols; `shared/` implements them."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

from .errors import SyncError
from .model import BcTable, CrmTable, Direction, OptionSet, Side

if TYPE_CHECKING:
    from .targeted import NotifiedRow


@dataclass(frozen=True)
class Record:
    """One row as read from either side: field values by field name, plus its version."""

    id: str
    values: dict[str, Any]
    etag: str | None = None
    modified_on: dt.datetime | None = None
    modified_by: str | None = None  # Dataverse: systemuserid of the last modifier


@dataclass(frozen=True)
class NewRow:
    values: dict[str, Any]
    id: str | None = None  # a client-chosen id, where the service accepts one (Dataverse)


@dataclass(frozen=True)
class RowChange:
    id: str
    etag: str | None
    values: dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one row of a page write: the row as stored, or the error for that row, or both
    when the row was written but not all of it (it is kept, and the error retried). The row carries its
    new version and the values the write answered with: a Business Central row's companion page fields
    only when the write went to the page as well (they are not read again for a write that did not)."""

    record: Record | None = None
    error: SyncError | None = None


Table = BcTable | CrmTable


class Endpoint(Protocol):
    """One side, Business Central or Dataverse, as the engine sees it.

    Reads stream pages; writes take a page at a time and answer per row, so that an adapter can
    send them one by one today and as $batch / UpsertMultiple later without the engine changing.
    """

    side: Side

    def read_changed(self, table: Table, fields: Sequence[str], *, since: dt.datetime | None,
                     where: str = "", page_size: int = 500, not_modified_by: str | None = None,
                     limit: int | None = None) -> Iterator[list[Record]]:
        """Rows matching `where` modified at or after `since` (all rows when None), oldest first.

        `not_modified_by` leaves out rows last changed by that user, where the service can tell. `limit`:
        only the first rows, at most that many, in one page (a look that reads nothing ahead).
        """

    def read_ids(self, table: Table, fields: Sequence[str], ids: Sequence[str]) -> list[Record]:
        """The rows with these ids that exist (missing ids are simply absent)."""

    def read_matching(self, table: Table, fields: Sequence[str], field: str, values: Sequence[Any],
                      where: str = "") -> list[Record]:
        """The rows whose `field` equals one of `values` (and that match `where`)."""

    def read_visible(self, table: Table, fields: Sequence[str], ids: Sequence[str], where: str = "") -> list[Record]:
        """The rows with these ids that read_changed would give with `where`: in Sales with several companies, the
        company's rows and those of no company only (read_ids finds a row of any company)."""

    def last_key(self, table: Table, field: str, prefix: str) -> str | None:
        """The highest value of `field` starting with `prefix` (for number series)."""

    def insert(self, table: Table, rows: Sequence[NewRow], fields: Sequence[str]) -> list[WriteResult]:
        ...

    def update(self, table: Table, changes: Sequence[RowChange], fields: Sequence[str]) -> list[WriteResult]:
        ...

    def delete_rows(self, table: Table, ids: Sequence[str]) -> list[SyncError | None]:
        """Delete these rows: per row, None when it is gone (now, or before), else the error."""

    def run_action(self, table: Table, rows: Sequence[Record], action: str) -> list[SyncError | None]:
        """Business Central: a [ServiceEnabled] procedure of the table's companion page on each row (an order's
        Reopen, Release): per row, None when it ran, else the error."""




@dataclass(frozen=True)
class FeedPage:
    """One page of a change feed (Dataverse change tracking)."""

    changed: list[Record]     # rows created or changed, matching the feed's filter
    deleted: list[str]        # ids of rows deleted
    cursor: str               # where the feed goes on after this page; the last page's is kept for next time
    last: bool = True         # the feed's last page: `cursor` is where the next run starts
    present: list[str] = field(default_factory=list)  # feed started over: every row of the page, filter or not


@dataclass
class ChangeFeed:
    pages: Iterator[FeedPage]
    complete: bool = True     # False: the feed started over; its pages hold every row and no deletions
    filtered: bool = True     # False: the filter cannot be applied to the feed, so `changed` is always empty


# rows worked on together: a read hands a page on in parts of at most this many rows (a page of 20,000 rows of
# Python objects is tens of MB), and the engine plans and writes as many at once, so that what it reads per batch
# of rows (references, the destination rows) is read per part
WORK_ROWS = 5_000


# the code of a claim's error when another company took the row first: the claiming company's coupling goes
CLAIM_TAKEN = "ClaimedByAnotherCompany"


class CrmEndpoint(Endpoint, Protocol):
    def changes(self, table: CrmTable, fields: Sequence[str], cursor: str | None, *, where: str = "",
                page_size: int = 500, not_modified_by: str | None = None) -> ChangeFeed | None:
        """Rows changed and deleted since `cursor`, in one feed. Without a cursor, or when it expired or
        was made for other fields, the feed starts over (complete=False). `where` and `not_modified_by`
        are applied as `read_changed` does; where the feed cannot apply `where`, it tells only deletions
        (filtered=False). None when the table does not track changes."""

    def integration_user_id(self) -> str:
        """systemuserid of the user our token acts as (Dataverse WhoAmI)."""

    def default_owning_team_id(self) -> str:
        """teamid of the default team of the business unit the user our token acts as belongs to."""

    def option_labels(self, option_set: OptionSet) -> dict[int, str]:
        """Value -> label of the options of one attribute."""

    def job_started(self) -> None:
        """A job starts: what the endpoint found missing (a company's row) is looked for again."""

    def claim(self, table: CrmTable, ids: Sequence[str]) -> dict[str, SyncError]:
        """Coupled rows that belong to no Business Central company become this company's (several companies share
        the environment); nothing otherwise. Answers the rows that could not be claimed, by id, with the error
        (code CLAIM_TAKEN: another company took the row first)."""

    def release(self, table: CrmTable, ids: Sequence[str]) -> None:
        """Uncoupled rows of this company belong to no company again (several companies); nothing otherwise."""


@dataclass
class Coupling:
    """A Business Central record coupled to a Dataverse row (BC's CRM Integration Record).

    Besides the two ids it keeps, per side, the version (ETag) we last saw or wrote and the
    values of the mapped fields at the last synchronisation: comparing against those tells
    which side changed which field, which makes echo suppression and field-level merges exact.
    """

    mapping: str
    bc_id: str
    crm_id: str
    bc_etag: str | None = None
    crm_etag: str | None = None
    bc_values: dict[str, Any] = field(default_factory=dict)
    crm_values: dict[str, Any] = field(default_factory=dict)
    synced_at: dt.datetime | None = None
    job_id: str = ""

    def id_on(self, side: Side) -> str:
        return self.bc_id if side is Side.BC else self.crm_id

    def etag_on(self, side: Side) -> str | None:
        return self.bc_etag if side is Side.BC else self.crm_etag

    def values_on(self, side: Side) -> dict[str, Any]:
        return self.bc_values if side is Side.BC else self.crm_values


@dataclass
class FollowUp:
    """New rows of one direction whose rules write more after their couplings are saved (an invoice's lines):
    the store keeps a note of them, written with the couplings' own journal at no extra request, until
    `followed_up`; a job that stops in between leaves the note, and `recover` hands its rows back to be
    retried. `note` is the store's handle on what it wrote."""

    direction: Direction
    source_ids: list[str]
    note: Any = None


class CouplingStore(Protocol):
    def get_many(self, mapping: str, side: Side, ids: Sequence[str]) -> dict[str, Coupling]:
        """Couplings of `mapping` by the id on `side`, for the ids that are coupled."""

    def save_many(self, couplings: Sequence[Coupling], follow_up: FollowUp | None = None) -> None:
        """Saves the couplings; with `follow_up`, notes those rows as awaiting their follow-up writes."""

    def followed_up(self, follow_up: FollowUp) -> None:
        """The follow-up writes of a save_many are done (or their failures recorded): the note goes."""

    def list(self, mapping: str) -> list[Coupling]:
        """Every coupling of `mapping`."""

    def delete_many(self, couplings: Sequence[Coupling]) -> None:
        ...

    def coupled_ids(self, mapping: str, side: Side, page_size: int = 1000) -> Iterator[list[str]]:
        """The ids on `side` of every coupling of `mapping`, a page at a time."""

    def held(self, mapping: str, side: Side, complete: bool = True) -> AbstractContextManager[None]:
        """While open, the couplings of `mapping` on `side` may be read all at once and kept, and get_many answer
        from them (with what this store saves or deletes meanwhile): for a job that reads every row. Not
        `complete`: ids not found among them are looked up as usual (another mapping's, coupled by its own jobs)."""

    def recover(self, mapping: str) -> list[FollowUp]:
        """Completes the coupling writes of `mapping` that a stopped job left half done (one side of a pair
        written or deleted, not the other), and moves couplings kept in an older storage layout; the rows whose
        follow-up writes a stopped job may not have done (each note stays until `followed_up`, so the caller
        records them first). Called before a job reads any coupling."""


@dataclass
class RecordFailure:
    """A record that failed to synchronise: kept until it succeeds, retried at every run."""

    mapping: str
    direction: Direction
    source_id: str
    record: str                     # how a user recognises it: "Customer C00010" / "account 'Adatum' (id)"
    message: str
    field: str = ""
    code: str = ""
    target_id: str = ""
    transient: bool = False
    count: int = 1
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    job_id: str = ""
    skipped: bool = False            # failed twice the same way: not retried until its source changes
    source_etag: str | None = None   # the version of the source row that failed

    @property
    def key(self) -> tuple[str, str, str]:
        return self.mapping, self.direction.value, self.source_id


class ErrorStore(Protocol):
    def list(self, mapping: str, direction: Direction) -> list[RecordFailure]:
        ...

    def save_many(self, failures: Sequence[RecordFailure]) -> None:
        ...

    def clear_many(self, mapping: str, direction: Direction, source_ids: Sequence[str]) -> None:
        ...

    def list_all(self) -> list[RecordFailure]:
        ...


@dataclass(frozen=True)
class WriteBack:
    """Columns to write to a Sales row that may be read-only in its state, and the state it ends in.

    Recorded before the first of its steps and forgotten after the last (sync.writeback), so that a run
    that stops in between leaves it for the next run to complete.
    """

    row_id: str
    values: dict[str, Any]
    state: int | None = None        # the state the row ends in; None: the one it has
    status: int | None = None       # its status reason; None: the state's default
    version: str | None = None      # the row's version when the write-back began (recorded with it)


@dataclass(frozen=True)
class PendingInsert:
    """A row sent to be created on a side that chooses the new row's id itself (Business Central),
    recorded before the write: should the answer be lost, the values sent and the time tell the next
    attempt which new row it was."""

    source_id: str
    values: dict[str, Any]          # the destination's fields as sent
    sent_at: dt.datetime


@dataclass(frozen=True)
class Fact:
    """Something read from a service's configuration (a company's name, the local currency code), with
    when it was read: kept across runs, so that a worker starting cold need not read it again."""

    value: Any
    read_at: dt.datetime


@dataclass
class JobState:
    """What a job of one mapping and direction reads of the state store, in one read when it first needs it: the
    watermark of its direction, the mapping's cursors (by name), the rows pending and notified for its direction and,
    where asked for, its known versions (None: not asked for)."""

    watermark: dt.datetime | None = None
    cursors: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    known_versions: dict[str, str] | None = None
    # the rows notified for its direction (sync.targeted) that no targeted job took yet: a scheduled job takes them
    notified: list["NotifiedRow"] = field(default_factory=list)


class StateStore(Protocol):
    def job_state(self, mapping: str, direction: Direction, versions: bool = False) -> JobState:
        """The watermark, cursors, pending and notified rows of a mapping and direction, with its known versions when
        `versions`: one request where the store allows."""

    def save_job_state(self, mapping: str, direction: Direction, *, watermark: dt.datetime | None = None,
                       cursors: dict[str, str] | None = None, versions: dict[str, str] | None = None,
                       replacing: dict[str, str] | None = None) -> None:
        """What a job leaves for the next one, written together (one request where the store allows): its watermark
        and cursors, and its known versions replacing those it read (`replacing`, as save_known_versions takes
        it); None leaves a part as it is."""

    def watermark(self, mapping: str, direction: Direction) -> dt.datetime | None:
        ...

    def advance_watermark(self, mapping: str, direction: Direction, value: dt.datetime) -> None:
        """Raise the watermark to `value`; never lowers it."""

    def save_watermark(self, mapping: str, direction: Direction, value: dt.datetime) -> None:
        """Set the watermark to `value`, unread: for the job of that mapping and direction, which holds the
        mapping's lease and knows it lower."""

    def pending(self, mapping: str, direction: Direction) -> list[str]:
        """Source ids a job of this direction must process whatever their version: rows where a merge
        in the opposite direction left changes for this one."""

    def mark_pending(self, mapping: str, direction: Direction, ids: Sequence[str]) -> None:
        ...

    def clear_pending(self, mapping: str, direction: Direction, ids: Sequence[str]) -> None:
        ...

    def write_backs(self, mapping: str) -> list[WriteBack]:
        """Write-backs begun and not known to be finished."""

    def save_write_backs(self, mapping: str, write_backs: Sequence[WriteBack]) -> None:
        ...

    def clear_write_backs(self, mapping: str, row_ids: Sequence[str]) -> None:
        ...

    def pending_inserts(self, mapping: str) -> list[PendingInsert]:
        """Inserts sent and not known to be coupled."""

    def save_pending_inserts(self, mapping: str, inserts: Sequence[PendingInsert]) -> None:
        ...

    def clear_pending_inserts(self, mapping: str, source_ids: Sequence[str]) -> None:
        ...

    def known_versions(self, mapping: str, direction: Direction) -> dict[str, str]:
        """Versions of source rows (by lower-case id) known to be coupled with that version: left by a full job of
        the other direction that wrote them, by this direction's previous scheduled job, which found them
        unchanged or synchronised them short of its watermark, or added by another mapping's job that wrote them
        (add_known_versions). A row still of that version needs no look at its coupling."""

    def save_known_versions(self, mapping: str, direction: Direction, versions: dict[str, str],
                            replacing: dict[str, str] | None = None) -> None:
        """Replaces the known versions (none: forgets them); `replacing`: what known_versions gave this job, when it
        read them under the mapping's lease (the adapter may replace what it read without reading it again)."""

    def add_known_versions(self, mapping: str, direction: Direction, versions: dict[str, str]) -> None:
        """Adds versions to the known ones, for a job that does not hold the mapping's lease: what the mapping's
        job saves replaces those it read, and leaves those added after its read."""

    def cursor(self, mapping: str, name: str) -> str | None:
        """A mapping's bookmark in some feed (a delta link, the time of the last reconciliation)."""

    def save_cursor(self, mapping: str, name: str, value: str) -> None:
        ...

    def notify(self, mapping: str, direction: Direction, rows: Sequence["NotifiedRow"]) -> None:
        """Records rows a notification named for a targeted job of this mapping and direction, one transaction per
        partition: a row recorded again replaces its record (and its version), so that repeats coalesce."""

    def notified(self, mapping: str, direction: Direction) -> list["NotifiedRow"]:
        """The notified rows recorded, each with the version of its record."""

    def clear_notified(self, mapping: str, direction: Direction, rows: Sequence["NotifiedRow"]) -> None:
        """Removes the records of these rows that are still of the version read: a row notified again meanwhile
        stays, for the next targeted job."""

    def join_waiting_run(self, mapping: str, run_id: str, stale_before: dt.datetime) -> tuple[str, dt.datetime]:
        """The targeted run that waits for the mapping's notified rows: `run_id`, now recorded as the one, when none
        waits (or the one recorded was recorded before `stale_before`: its start failed), else the one waiting; with
        when it was recorded."""

    def release_waiting_run(self, mapping: str, run_id: str) -> None:
        """The targeted run `run_id` no longer waits for the mapping's notified rows (its job started, was blocked,
        or its start failed): a notification from now on starts another (nothing when another run is recorded as
        the one waiting)."""

    def facts(self) -> dict[str, Fact]:
        """Every fact kept, by name, in one read."""

    def save_fact(self, name: str, fact: Fact) -> None:
        ...

    def drop_facts(self, names: Sequence[str]) -> None:
        ...


class Clock(Protocol):
    def now(self) -> dt.datetime:
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class ApplicationUser:
    """The Dataverse user bcsync acts as; `found` False when the app registration has none in the environment,
    `disabled` when it has one that is disabled (both refuse every request)."""

    found: bool
    id: str = ""
    name: str = ""
    disabled: bool = False


class ConnectionProbe(Protocol):
    """What the connection check asks of the services and of storage. Every call only reads; each raises
    the SyncError the adapter classified when the service refuses or cannot be reached."""

    def identity(self, side: Side) -> str:
        """How bcsync signs in to that side, for messages: "the app registration <client id>"."""

    def sign_in(self, side: Side) -> None:
        """Get a token for the service on `side` (from the token cache when it holds one)."""

    def application_user(self) -> ApplicationUser:
        """Who bcsync acts as in Dataverse (WhoAmI and the user's row)."""

    def privileges(self, user_id: str) -> dict[str, dict[str, str]]:
        """The user's privileges through its security roles: Dataverse table (logical name) -> access
        ("Create", "Read", "Write", ...) -> depth ("user", "business unit", "parent business unit",
        "organization")."""

    def company(self) -> str:
        """The name of the Business Central company bcsync is set up for (NotFoundError when there is none)."""

    def companies(self) -> list[tuple[str, str]]:
        """(id, name) of every company the environment has."""

    def read_one(self, side: Side, table: Table, where: str = "") -> None:
        """Read at most one row of `table` (that matches `where`)."""

    def storage(self) -> list[str]:
        """Reach the storage account's tables and queue; returns those that do not exist yet."""

    def kept_facts(self) -> dict[str, Fact]:
        """The facts kept in the state table, read without creating it ({} when it does not exist)."""
