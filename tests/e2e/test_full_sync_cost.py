"""What CONTACT's full synchronisation costs in API requests: the referenced rows (business relations, parent
accounts, customers and their card page rows) are read once per page of contacts, joined by key, and the
primary-contact back-fills are written in bulk, so the count follows the page and bulk sizes, not the rows.
A lookup per row or per small group of rows would break the formula below."""

from __future__ import annotations

import math
import time

from .conftest import job
from .test_incremental_cost import RequestCount, seed_contacts

ROWS = 600  # more than a CreateMultiple chunk (500) and than a $batch (100): chunks and batches both count
DV_PAGE, BC_PAGE, DV_BULK, BC_BATCH = 5000, 20000, 500, 100


def back_fill(rows: int) -> int:
    """Primary contacts set on the parents of `rows` new contacts (each parent has one): the accounts read
    (one $batch of In queries), the customers with their card page rows (2), the accounts' UpdateMultiple
    chunks and their versions read back (1), the customers' card rows read before the write (2), their page
    writes in $batches of 100 and the customers' versions read back (1)."""
    return 1 + 2 + math.ceil(rows / DV_BULK) + 1 + 2 + math.ceil(rows / BC_BATCH) + 1


def test_contact_full_jobs_read_referenced_rows_once_per_page(env):
    seed_contacts(env, ROWS)
    time.sleep(1)  # the seeded rows are older than the full synchronisation's start
    count = RequestCount(env)
    full = count.measure("full synchronisation", lambda: env.full_sync(["CUSTOMER", "CONTACT"]))
    assert full.to_dict()["totals"]["failed"] == 0, full.to_dict()
    assert job(full, "CONTACT:to-crm").counts.inserted == ROWS
    assert job(full, "CONTACT:from-crm").counts.inserted == ROWS
    bc_pages, dv_pages = math.ceil(2 * ROWS / BC_PAGE), math.ceil(2 * ROWS / DV_PAGE)
    # to Sales: the contacts with their card page rows, their business relations, the Sales contacts (matched in
    # memory), the CreateMultiple chunks and one read of the new rows' versions, then the back-fill
    to_crm = 2 * bc_pages + 1 + dv_pages + math.ceil(ROWS / DV_BULK) + 1 + back_fill(ROWS)
    # from Sales: the contacts and the change feed begun, the business relations of their accounts' customers, the
    # Business Central contacts (matched in memory), the creates and their card page writes in $batches of 100 and
    # one read of their versions, the back-fill, and the check of the rows written against the watermark
    from_crm = 2 * dv_pages + 1 + bc_pages + 2 * math.ceil(ROWS / BC_BATCH) + 1 + back_fill(ROWS) + 1
    assert {k: v for k, v in count.requests.items() if k.startswith("CONTACT")} == {
        "CONTACT:to-crm": to_crm, "CONTACT:from-crm": from_crm}, count.sent
    # the back-fill made every new contact its parent's primary contact, on both sides
    assert sum(1 for a in env.dv.rows("account") if a.get("primarycontactid")) == 2 * ROWS
    assert sum(1 for c in env.bc.rows("CustomerCard") if c.get("Primary_Contact_No")) == 2 * ROWS
