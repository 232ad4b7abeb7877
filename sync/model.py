"""The table-mapping and field-mapping model, in Business Central's own terms.

A *table mapping* pairs a Business Central table with a Dataverse table (or, for an option
mapping, with an option set of a Dataverse attribute) and says in which direction rows flow, which
rows take part (a filter on each side), which mappings must run first, and how conflicts are
resolved. Its *field mappings* say which field goes to which attribute, in which direction, and how
a value is converted on the way (plain copy, a lookup through another mapping's couplings, an
option value, a constant).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping


class Side(str, Enum):
    """Business Central (bc) or Dynamics 365 Sales on Dataverse (crm, as BC itself calls it)."""

    BC = "bc"
    CRM = "crm"

    @property
    def other(self) -> "Side":
        return Side.CRM if self is Side.BC else Side.BC


class Direction(str, Enum):
    """Direction of a table mapping, a field mapping or a job.

    to-crm is Business Central -> Sales ("To Integration Table" in BC), from-crm is
    Sales -> Business Central ("From Integration Table"). Jobs are always one of those two.
    """

    TO_CRM = "to-crm"
    FROM_CRM = "from-crm"
    BIDIRECTIONAL = "bidirectional"

    @property
    def source(self) -> Side:
        if self is Direction.BIDIRECTIONAL:
            raise ValueError("a bidirectional mapping has no single source side")
        return Side.BC if self is Direction.TO_CRM else Side.CRM

    @property
    def target(self) -> Side:
        return self.source.other

    def includes(self, job_direction: "Direction") -> bool:
        return self is Direction.BIDIRECTIONAL or self is job_direction

    def job_directions(self) -> tuple["Direction", ...]:
        """The jobs a mapping with this direction runs, BC -> Sales first as BC does."""
        if self is Direction.BIDIRECTIONAL:
            return (Direction.TO_CRM, Direction.FROM_CRM)
        return (self,)


class UpdateConflictResolution(str, Enum):
    """What happens when both sides changed the same field since the last synchronisation."""

    NONE = "none"                # fail the record and report the conflict (BC's default)
    SEND_TO_CRM = "send-to-crm"  # Business Central wins ("Send Update to Integration")
    GET_FROM_CRM = "get-from-crm"  # Sales wins ("Get Update from Integration")


class DeletionConflictResolution(str, Enum):
    """What happens when the coupled counterpart of a changed record was deleted."""

    NONE = "none"
    RESTORE = "restore"
    REMOVE_COUPLING = "remove-coupling"


class WhenUncoupled(str, Enum):
    """What a lookup does when the referenced record is not coupled."""

    FAIL = "fail"          # the record fails with an error naming the field and value
    CLEAR = "clear"        # BC's "Clear Value on Failed Sync": write an empty value
    LEAVE_BLANK = "blank"  # the seed's rule for option values: leave blank, note it in the job log


class Truncation(str, Enum):
    """What happens to text longer than the Business Central field it is written to."""

    CUT = "cut"      # cut to fit, with a note naming the record, the field and the original length
    ERROR = "error"  # the record fails with an error naming the field, the length and the limit


EMPTY_GUID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Companion:
    """Fields API v2.0 does not expose, read and written through a published page over the same rows
    (e.g. a customer's Shipping Agent Code through the Customer Card page), as integrators do."""

    service: str                    # the page web service, e.g. "CustomerCard"
    key: tuple[str, str]            # (API field, page field) that identify the row, e.g. ("number", "No")
    fields: Mapping[str, str]       # our field name on the API entity -> page field name
    fixed_keys: tuple[tuple[str, str], ...] = ()  # key fields the page's view fixes: (("Document_Type", "Order"),)
    enum_fields: frozenset[str] = frozenset()       # page fields whose values are enum members (BillToOptions)


@dataclass(frozen=True)
class BcTable:
    """A Business Central table as the API exposes it: an API v2.0 entity set, or a page published
    as an OData v4 web service (when `page_keys` is set) for what API v2.0 lacks."""

    entity_set: str                 # API v2.0 entity set ("customers") or page service name ("Resources")
    caption: str                    # "Customer", used in messages
    key_field: str = "number"       # the field users know a record by (No., Code)
    enum_fields: frozenset[str] = frozenset()
    modified_field: str | None = "lastModifiedDateTime"  # None: the entity set publishes none (lines, relations)
    id_field: str = "id"
    page_keys: tuple[str, ...] = ()  # a page service's key fields, in the order of its URL key
    companion: Companion | None = None
    # what a configuration template may fill on a new row: (the table's field name, as a template line names
    # it, our field name); the first `posting_groups` of them are what the row cannot be invoiced without
    template_fields: tuple[tuple[str, str], ...] = ()
    posting_groups: int = 0

    @property
    def is_page(self) -> bool:
        return bool(self.page_keys)

    @classmethod
    def page(cls, service: str, caption: str, keys: tuple[str, ...], key_field: str = "", **kw) -> "BcTable":
        return cls(service, caption, key_field=key_field or keys[0], modified_field="SystemModifiedAt",
                   id_field="SystemId", page_keys=keys, **kw)


@dataclass(frozen=True)
class CrmLookup:
    """A Dataverse lookup attribute: how to bind it on write (navigation property + entity set)."""

    navigation: str                 # e.g. "ownerid", "parentcustomerid_account"
    entity_set: str                 # e.g. "systemusers"
    type_field: str | None = None   # for a lookup to several tables: where to put the referenced table's name


@dataclass(frozen=True)
class CrmTable:
    """A Dataverse table."""

    logical_name: str               # "account"
    entity_set: str                 # "accounts"
    primary_id: str                 # "accountid"
    primary_name: str               # "name"
    lookups: Mapping[str, CrmLookup] = field(default_factory=dict)


@dataclass(frozen=True)
class OptionSet:
    """The CRM side of an option mapping: the option set of one Dataverse attribute."""

    table: CrmTable                 # the table that owns the attribute (account)
    attribute: str                  # e.g. "paymenttermscode"


class Convert(str, Enum):
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"       # a Business Central date; its blank date (0001-01-01) is no date in Sales
    LOOKUP = "lookup"


@dataclass(frozen=True)
class FieldMapping:
    """One field of a table mapping.

    bc/crm name the field on each side; one of them is None when the other side is given a
    constant. For a lookup, `lookup_mapping` is the table mapping whose couplings translate the
    value, and `bc_key` is the referenced Business Central field the BC value holds (e.g. the
    salesperson's "code"), or None when the BC value is the referenced record's id.
    """

    bc: str | None
    crm: str | None
    direction: Direction
    convert: Convert = Convert.TEXT
    constant: Any = None
    lookup_mapping: str | None = None
    bc_key: str | None = None
    when_uncoupled: WhenUncoupled = WhenUncoupled.FAIL
    not_null: bool = False          # never write an empty value (BC's "Not Null", e.g. ownerid)
    max_length: int | None = None   # of the Business Central field; longer text: the mapping's `truncation`
    caption: str = ""               # the BC field caption for messages, e.g. "Salesperson Code"
    use_for_matching: bool = False  # a criterion of match-based coupling
    match_priority: int = 0         # criteria groups are tried in ascending priority; one group is AND-ed
    case_sensitive: bool = False    # text criteria compare case-insensitively unless set
    insert_only: bool = False       # written when the row is created only (BC's configuration templates)
    template: str | None = None     # text written to Sales, e.g. "NAV {}" for a unit group's name
    not_negative: bool = False      # a negative number is written as 0 (prices, inventory in Sales)

    @property
    def key(self) -> str:
        """Stable identity, used for snapshots of synchronised values and for overrides."""
        return f"{self.bc or '='}|{self.crm or '='}"

    @property
    def label(self) -> str:
        return self.caption or self.bc or self.crm or "?"

    def field_on(self, side: Side) -> str | None:
        return self.bc if side is Side.BC else self.crm

    @property
    def is_constant(self) -> bool:
        return self.bc is None or self.crm is None


@dataclass(frozen=True)
class NumberSeries:
    """How new Business Central records get their key when BC does not assign one (e.g. salespeople)."""

    field: str
    prefix: str
    digits: int

    def format(self, number: int) -> str:
        return f"{self.prefix}{number:0{self.digits}d}"

    def parse(self, value: str | None) -> int:
        if not value or not value.startswith(self.prefix):
            return 0
        tail = value[len(self.prefix):]
        return int(tail) if tail.isdigit() else 0


class OwnershipModel(str, Enum):
    """Who owns the Sales rows (Business Central's Dataverse Connection Setup, "Ownership Model")."""

    PERSON = "person"  # the user coupled to the record's salesperson; SALESPEOPLE synchronises users
    TEAM = "team"      # new rows get the default team of the coupled business unit; owners never cross


@dataclass(frozen=True)
class ConnectionSetup:
    """The switches of Business Central's CRM Connection Setup that change what jobs do."""

    auto_create_sales_orders: bool = False  # "Automatically Create Sales Orders": submitted orders on schedule
    auto_process_sales_quotes: bool = False  # "Automatically Process Sales Quotes": active and won quotes on schedule
    two_way_orders: bool = False            # "Bidirectional Sales Order Int.": orders made on either side, archived
    ownership_model: OwnershipModel = OwnershipModel.PERSON


@dataclass(frozen=True)
class TableMapping:
    name: str
    bc: BcTable
    crm: CrmTable | None
    direction: Direction
    fields: tuple[FieldMapping, ...]
    option_set: OptionSet | None = None   # set for option mappings (PAYMENT TERMS ...)
    bc_filter: str = ""                   # OData $filter on the Business Central entity set
    crm_filter: str = ""                  # OData $filter on the Dataverse entity set
    dependencies: tuple[str, ...] = ()
    sync_only_coupled: bool = True        # scheduled jobs update coupled rows only (BC default)
    update_conflict: UpdateConflictResolution = UpdateConflictResolution.NONE
    deletion_conflict: DeletionConflictResolution = DeletionConflictResolution.NONE
    interval_minutes: int = 30
    inactivity_timeout_minutes: int = 720
    enabled: bool = True
    bc_number_series: NumberSeries | None = None
    description: str = ""
    rules: Any = None                     # a sync.rules.MappingRules for what field mappings cannot say
    # match-based coupling creates the rows it finds no match for (BC's default is off; matching first
    # is what prevents duplicates, so bcsync turns it on)
    create_new_if_no_match: bool = True
    sync_after_coupling: bool = True      # match-based coupling synchronises the pairs it couples
    reread_all: bool = False              # every run reads all rows (small tables whose values are computed)
    truncation: Truncation = Truncation.CUT  # text longer than its Business Central field: cut with a note, or fail
    # a job that is no row-by-row field transfer (sales orders, item availability): a sync.process.JobProcess
    process: Any = None
    # "Table Config Template Code": the configuration template applied to each Business Central row it creates
    template_code: str = ""

    def __post_init__(self):
        if self.option_set is not None and self.direction is Direction.BIDIRECTIONAL:
            raise ValueError(f"{self.name}: an option mapping cannot be bidirectional")

    @property
    def is_option_mapping(self) -> bool:
        return self.option_set is not None

    def table_on(self, side: Side):
        return self.bc if side is Side.BC else self.crm

    def filter_on(self, side: Side) -> str:
        return self.bc_filter if side is Side.BC else self.crm_filter

    def fields_for(self, job_direction: Direction) -> tuple[FieldMapping, ...]:
        return tuple(f for f in self.fields if f.direction.includes(job_direction))

    def with_overrides(self, **changes) -> "TableMapping":
        return dataclasses.replace(self, **changes)

    def match_groups(self, source: Side) -> list[list[FieldMapping]]:
        """The match criteria usable from `source`, grouped by priority, highest (lowest number) first."""
        usable = [f for f in self.fields if f.use_for_matching and f.bc and f.crm]
        return [[f for f in usable if f.match_priority == p] for p in sorted({f.match_priority for f in usable})]
