"""Record links (table 2000000068 "Record Link"): the notes and links a user attaches to any record, here
through the page web service `RecordLinks` that bcsync's extension publishes (API v2.0 has no record links).

A real Record Link keeps the record it belongs to as a RecordId and its note as a BLOB; the extension's page
shows them as the record's table number and SystemId, and the note as text, which is what the simulator
stores. Only notes are listed; a new one gets the next Link ID, its creation time and the Note type.
"""

from __future__ import annotations

import datetime as dt

from . import errors
from .catalog import Catalog, page_system_fields
from .model import EMPTY_GUID, Column, Table
from .views import Field, PageView, Session

RECORD_LINKS = "Record Link"
# table number (as the extension's page takes it) -> the simulator's table holding such records
LINKABLE = {36: "Sales Order Entity Buffer"}


def _before_insert(session: Session, record: dict, values: dict) -> None:
    table = LINKABLE.get(record["Record Table"])
    if table is None or record["Record SystemId"] == EMPTY_GUID or session.get(table, record["Record SystemId"]) is None:
        raise errors.dialog(f"There is no record {record['Record SystemId']} in table {record['Record Table']} to "
                            f"attach the note to.")
    links = session.store.rows(session.table(RECORD_LINKS), session.company)
    record.update({"Link ID": max((link["Link ID"] for link in links), default=0) + 1, "Type": "Note",
                   "Created": dt.datetime.now(dt.timezone.utc), "User ID": session.user or "",
                   "Company": session.company.name if session.company else ""})


def _before_modify(session: Session, old: dict, record: dict, values: dict) -> None:
    if (record["Record Table"], record["Record SystemId"]) != (old["Record Table"], old["Record SystemId"]):
        raise errors.dialog("A note stays with the record it was attached to.")


def register(cat: Catalog) -> None:
    cat.add_table(Table(2000000068, RECORD_LINKS, [
        Column("Link ID", "integer"),
        Column("Record Table", "integer"),        # with Record SystemId: the Record ID of the record
        Column("Record SystemId", "guid"),
        Column("Description", "text", 250),
        Column("Note", "text"),                    # a BLOB in Business Central
        Column("Type", "option", options=("Link", "Note")),
        Column("Created", "datetime"),
        Column("User ID", "code", 132),
        Column("Company", "text", 30),
    ], key=("Link ID",)))
    cat.add_page(PageView("RecordLinks", cat.tables[RECORD_LINKS], [
        Field("Link_ID", "Link ID", read_only=True),
        Field("Description", "Description"),
        Field("NoteText", "Note", page_variable=True),
        Field("RecordTableNo", "Record Table", page_variable=True),
        Field("RecordSystemId", "Record SystemId", page_variable=True),
        Field("Created", "Created", read_only=True),
        *page_system_fields(),
    ], before_insert=_before_insert, before_modify=_before_modify))
