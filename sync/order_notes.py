"""SALESORDER-ORDER's notes: a Sales order's notes and its Business Central order's notes, both ways, as Business
Central's Sales Order Notes job keeps them.

Business Central keeps a note as a record link (table "Record Link", type Note) on the order. API v2.0 has no
record links, so bcsync's extension publishes them as the page web service RecordLinks, with the record a link
belongs to as its table number and SystemId and the note as text.

- Sales -> Business Central: at each run, the notes of the coupled orders (annotations that are not attachments,
  file size 0), read a page of couplings at a time: one not coupled yet becomes a record link on the order, with
  its title as the link's description; a coupled one changed since it was last written has its text and title
  written to its link.
- Business Central -> Sales: the record links made since the last one seen (Link ID only grows) that belong to a
  coupled order and are not coupled yet become notes on the Sales order. As in Business Central, a note is sent
  this way once; what a user changes on it in Business Central afterwards stays there.

Each note is coupled to its link (table mapping name NOTES), the moment it is made, so a note bcsync made never
comes back as a new one. A note made in Sales gets an id made from its link's, so that one whose answer was lost
is found, not made twice.
"""

from __future__ import annotations

import uuid
from typing import Sequence

from .errors import AlreadyExistsError
from .model import Side
from .ports import Coupling, NewRow, Record, RowChange
from .process import JobContext
from .tables import BC_RECORD_LINK, CRM_NOTE

NOTES = "SALESORDER-ORDER NOTES"
SALES_HEADER = 36       # the table a record link of a sales order belongs to
CURSOR = "record-links"  # the last Link ID read
NOTE_FIELDS = ["subject", "notetext", "objectid", "isdocument", "filesize"]
LINK_FIELDS = ["Link_ID", "Description", "NoteText", "RecordTableNo", "RecordSystemId"]
NOTE_IDS = uuid.UUID("7a0e4a6b-5d0c-4f55-8a8e-0b7c1e2f9d31")  # namespace of the ids of notes made from links


def _link_text(note: Record) -> dict:
    """What a Sales note gives its record link."""
    return {"Description": (note.values.get("subject") or "")[:250], "NoteText": note.values.get("notetext") or ""}


def _coupling(job: JobContext, link: Record, note: Record | None, note_id: str) -> Coupling:
    return Coupling(NOTES, link.id, note_id, bc_etag=link.etag, crm_etag=note.etag if note else None,
                    synced_at=job.clock.now(), job_id=job.job_id)


class OrderNotes:
    """Notes of coupled orders, both ways (a part of SalesOrderProcess's job)."""

    def __init__(self, mapping: str):
        self.mapping = mapping

    def to_business_central(self, job: JobContext, orders: Sequence[Coupling]) -> None:
        """The notes of these coupled orders that Business Central lacks or has in an older version."""
        by_order = {c.crm_id.lower(): c for c in orders}
        if not by_order:
            return
        notes = [n for n in job.crm.read_matching(CRM_NOTE, NOTE_FIELDS, "objectid", list(by_order))
                 if not n.values.get("isdocument") and not n.values.get("filesize")]
        coupled = job.couplings.get_many(NOTES, Side.CRM, [n.id for n in notes])
        new = [n for n in notes if n.id not in coupled]
        changed = [n for n in notes if n.id in coupled and n.etag != coupled[n.id].crm_etag]
        saved = []
        if new:
            results = job.bc.insert(BC_RECORD_LINK, [NewRow({
                **_link_text(n), "RecordTableNo": SALES_HEADER, "RecordSystemId": by_order[str(n.values["objectid"]).lower()].bc_id})
                for n in new], LINK_FIELDS)
            saved += self._written(job, new, results, "inserted")
        if changed:
            results = job.bc.update(BC_RECORD_LINK, [RowChange(coupled[n.id].bc_id, None, _link_text(n))
                                                     for n in changed], LINK_FIELDS)  # the note in Sales wins, as in Business Central
            saved += self._written(job, changed, results, "modified")
        job.couplings.save_many(saved)

    @staticmethod
    def _written(job: JobContext, notes: list[Record], results, count: str) -> list[Coupling]:
        saved = []
        for note, result in zip(notes, results):
            if result.error is not None:
                job.note(f"note '{note.values.get('subject') or note.id}' of sales order {note.values.get('objectid')} "
                         f"could not be written to Business Central ({result.error.message}); tried again next run")
                continue
            setattr(job.counts, count, getattr(job.counts, count) + 1)
            saved.append(_coupling(job, result.record, note, note.id))
        return saved

    def to_sales(self, job: JobContext) -> None:
        """The record links made in Business Central on coupled orders since the last run, as Sales notes."""
        last = int(job.state.cursor(self.mapping, CURSOR) or 0)
        for page in job.bc.read_changed(BC_RECORD_LINK, LINK_FIELDS, since=None, where=f"Link_ID gt {last}",
                                        page_size=100):
            links = [link for link in page if link.values.get("RecordTableNo") == SALES_HEADER]
            orders = job.couplings.get_many(self.mapping, Side.BC,
                                            [str(link.values["RecordSystemId"]) for link in links])
            links = [link for link in links if str(link.values["RecordSystemId"]) in orders]
            known = job.couplings.get_many(NOTES, Side.BC, [link.id for link in links])
            new = [link for link in links if link.id not in known]
            rows = [NewRow({"subject": link.values.get("Description") or "",
                            "notetext": link.values.get("NoteText") or "",
                            "objectid": orders[str(link.values["RecordSystemId"])].crm_id},
                           id=str(uuid.uuid5(NOTE_IDS, link.id.lower()))) for link in new]
            saved, failed = [], []
            for link, row, result in zip(new, rows, job.crm.insert(CRM_NOTE, rows, NOTE_FIELDS) if rows else []):
                if result.error is None or isinstance(result.error, AlreadyExistsError):  # made by a lost answer
                    job.counts.inserted += 1
                    saved.append(_coupling(job, link, result.record, row.id))
                else:
                    failed.append(int(link.values["Link_ID"]))
                    job.note(f"record link {link.values['Link_ID']} could not be made a Sales note "
                             f"({result.error.message}); tried again next run")
            job.couplings.save_many(saved)
            seen = [int(link.values["Link_ID"]) for link in page]
            # a link that failed is read again next run, with those after it (their couplings keep them single)
            cursor = min(failed) - 1 if failed else max([last, *seen])
            if cursor != last:
                last = cursor
                job.state.save_cursor(self.mapping, CURSOR, str(last))
            if failed:
                return
