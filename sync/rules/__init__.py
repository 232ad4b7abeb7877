"""Special rules of particular table mappings, beyond what field mappings express.

A table mapping may name a `MappingRules` object. The engine calls its hooks at fixed points of a
page, always in bulk:

- `accept(ctx, row, coupling)`: None to synchronise the row, IGNORE to leave it out silently (as a
  filter would), or a RecordError to fail it with a message naming the record;
- `prepare(ctx, rows)`: fetch, once per page, whatever `extra_values` needs;
- `extra_values(ctx, row, dst_row)`: destination values that are computed rather than copied
  (an exchange rate, a unit, a price list, a state); written when they differ from what is there;
  a value that costs reads may be taken as last synchronised while its inputs did not change
  (`ctx.remembered`);
- `unversioned_changes(ctx)`: at the start of a job, the coupled source rows that changed although
  their version did not move (a value the service computes on every read), found in bulk; the job
  works on them as changed rows;
- `reopen(ctx, dst_row, values)`: what to write first so that a destination row read-only in its
  state takes the update (a closed Sales invoice is re-activated, as Business Central does);
- `after_write(ctx, written)`: what must follow a page's writes (publish new products, keep price
  list items, push invoice lines).

Rules are pure domain code: they reach the services only through the job's ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

from ..errors import RecordError, SyncError
from ..model import Side
from ..ports import Coupling, CouplingStore, CrmEndpoint, Endpoint, Record

if TYPE_CHECKING:
    from ..facts import Facts
    from ..lookups import LookupResolver
    from ..mappings import Catalog
    from ..model import Direction, TableMapping

IGNORE = "ignore"


class SkipRow(Exception):
    """Raised by `extra_values`: leave this row alone this time (counted skipped, noted in the job log).
    `in_place`: computed values the destination already holds, remembered as synchronised."""

    def __init__(self, note: str, in_place: dict[str, Any] | None = None):
        super().__init__(note)
        self.note = note
        self.in_place = in_place or {}


@dataclass(frozen=True)
class Written:
    """One row a page wrote, newly coupled, or retried after its follow-up failed: the source row,
    the destination as stored, whether the pair is new (inserted, matched, or found again after a
    lost answer), and whether it is a retry of a failed record."""

    source: Record
    target: Record
    inserted: bool
    coupling: Coupling
    retried: bool = False


class RuleContext(Protocol):
    """What a rule may use: the job's mapping and direction, both sides, couplings, the catalogue."""

    mapping: "TableMapping"
    direction: "Direction"
    catalog: "Catalog"
    bc: Endpoint
    crm: CrmEndpoint
    couplings: CouplingStore
    cache: dict[str, Any]   # per job: what a rule fetched once (a unit group's units)
    facts: "Facts"          # across runs: the services' set-up (the local currency), see sync.facts
    resolver: "LookupResolver"  # per job: Business Central codes -> coupled Dataverse ids, shared with lookups

    failures: dict[str, Any]  # source id -> the record's failure from earlier runs

    def note(self, text: str) -> None: ...

    def endpoint(self, side: Side) -> Endpoint: ...

    def remembered(self, row: Record, inputs: tuple[str, ...], names: tuple[str, ...]) -> dict[str, Any] | None:
        """Computed values `names` as last synchronised, while source fields `inputs` are unchanged since (a
        scheduled run); None when they must be computed again."""

    def coupled_first(self, mapping_name: str, ids: list[str], rows: Sequence[Record]) \
            -> tuple[dict[str, Coupling], dict[str, str]]:
        """The couplings of records `rows` refer to in another mapping; those not coupled yet are synchronised
        first, in the job's direction (SyncEngine.sync_records). Also why one could not be, by lower-case id."""

    def keep_synchronised(self, mapping_name: str, couplings: list[Coupling], bc_written: Iterable[str]) -> None:
        """Saves couplings of another mapping whose rows the rules wrote while each pair stayed synchronised (with
        the new versions and values); the versions of the Business Central rows written (`bc_written`, their ids)
        are left for that mapping's next BC -> Sales pass, which then finds those rows unchanged without looking
        their couplings up."""


class MappingRules:
    """No special rules; subclasses override what their mapping needs."""

    #: destination fields the rules read or write, besides the field mappings' own
    extra_fields: dict[Side, tuple[str, ...]] = {}
    #: computed values a new row does not take (a follow-up sets them); remembered as if written
    update_only: tuple[str, ...] = ()
    #: facts (sync.facts) a job of the mapping may make stale: dropped when it wrote anything, read afresh after
    stales: tuple[str, ...] = ()
    #: tables besides the mapping's own that the rules read, update, and create rows in (the connection check's)
    reads: tuple = ()
    writes: tuple = ()
    creates: tuple = ()
    #: computed values the source side owns: written whenever the destination differs, even where a user
    #: changed the destination since (not merged like bidirectional fields)
    source_owned: tuple[str, ...] = ()
    #: source fields, per source side, that costly computed values derive from (a parent found through other
    #: rows): kept in the coupling's snapshot, so that a scheduled run computes those values again only for rows
    #: where one changed (RuleContext.remembered)
    inputs: dict[Side, tuple[str, ...]] = {}
    #: each direction computes the other's inputs, pairwise (a contact's parent account from its company, its
    #: company from its parent account): a pass remembers what it wrote as the destination's inputs too
    mirrored_inputs = False

    def accept(self, ctx: RuleContext, row: Record, coupling: Coupling | None) -> str | RecordError | None:
        return None

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        return None

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        return {}

    def unversioned_changes(self, ctx: RuleContext) -> list[str]:
        return []

    # For mappings other mappings look up through: what a blank Business Central value stands for on
    # the other side (a blank currency code is the local currency, a row in Sales).

    def blank_counterpart(self, ctx: RuleContext, target: Side) -> Any:
        return None

    def is_blank_counterpart(self, ctx: RuleContext, value: Any) -> bool:
        return False

    def reopen(self, ctx: RuleContext, dst_row: Record, values: dict[str, Any]) -> dict[str, Any]:
        """Values that make `dst_row` writable again before `values` are written to it; {} when it is."""
        return {}

    def after_write(self, ctx: RuleContext, written: Sequence[Written]) -> dict[str, SyncError]:
        """Follow-up writes; returns the source rows whose follow-up failed (retried next run)."""
        return {}
