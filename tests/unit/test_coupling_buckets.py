"""Couplings spread over buckets by a hash of the id (shared.storage)."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from collections import Counter

from shared.storage import _HELD, COUPLING_BUCKETS, CouplingTable, _bucket, _packed, _unpacked
from sync.mappings import CUSTOMER
from sync.model import Side
from sync.ports import Coupling


def test_a_thousand_guids_fill_every_bucket_evenly():
    spread = Counter(_bucket(str(uuid.UUID(int=i * 7919 + 12345))) for i in range(1000))
    assert sorted(spread) == [f"{b:02x}" for b in range(COUPLING_BUCKETS)]
    assert max(spread.values()) < 2 * 1000 / COUPLING_BUCKETS


def test_an_id_keeps_its_bucket_whatever_the_case_and_its_row_key_as_given():
    guid = "9A3E1C2B-0D4F-4E5A-8B6C-7D8E9F0A1B2C"
    assert _bucket(guid) == _bucket(guid.lower())
    assert CouplingTable._address("CUSTOMER", Side.CRM, guid) == (f"CUSTOMER|crm|{_bucket(guid)}", guid)
    assert CouplingTable._address("CUSTOMER", Side.BC, guid)[0].startswith("CUSTOMER|bc|")


def test_a_held_coupling_is_one_object_that_gives_back_the_coupling_stored():
    synced = dt.datetime(2026, 12, 3, 9, 30, tzinfo=dt.timezone.utc)
    for coupling in (Coupling("CUSTOMER", "bc-1", "crm-1", 'W/"1"', None, {"name": "Ünïcode, \"quoted\""},
                              {"name": ""}, synced, "job-1"),
                     Coupling("CUSTOMER", "bc-2", "crm-2", None, None, {}, {}, None, "")):  # blanks stored as ""
        entity = CouplingTable._entity(coupling, Side.BC)
        packed = _packed(entity)
        assert isinstance(packed, bytes)   # one object per held coupling, not a tuple of nine
        assert CouplingTable._coupling(_unpacked(packed)) == coupling
        assert _unpacked(packed)["crm_etag"] == entity["crm_etag"]
    older = {"mapping": "CUSTOMER", "bc_id": "bc-3", "crm_id": "crm-3"}   # a row written before every property was
    assert _unpacked(_packed(older))["job_id"] is None                     # a missing property stays None, not ""


def test_a_held_coupling_takes_a_fraction_of_its_stored_fields():
    fields = [fm.key for fm in CUSTOMER.fields]   # snapshots are keyed by field mapping, names of both sides
    coupling = Coupling("CUSTOMER", str(uuid.uuid4()), str(uuid.uuid4()), 'W/"JzE5OzEyMzQ1Njc4OTAxMjM0NTY3ODkxOzAwOyc="',
                        'W/"5512"', {f: f"value {i}" for i, f in enumerate(fields)},
                        {f: f"value {i}" for i, f in enumerate(fields)},
                        dt.datetime(2026, 12, 3, 9, 30, tzinfo=dt.timezone.utc), "full-20261204/CUSTOMER:to-crm")
    entity = CouplingTable._entity(coupling, Side.CRM)
    stored = sum(len(str(entity[f])) for f in _HELD)
    assert sys.getsizeof(_packed(entity)) < stored / 3   # a side of 100,000 customers held in tens of MB less
    assert CouplingTable._coupling(_unpacked(_packed(entity))) == coupling


def test_couplings_looked_up_share_their_snapshots_field_names():
    fields = [fm.key for fm in CUSTOMER.fields]
    entities = [CouplingTable._entity(Coupling("CUSTOMER", f"bc-{i}", f"crm-{i}", None, None, {f: i for f in fields},
                                               {f: i for f in fields}), Side.BC) for i in range(2)]
    first, second = (CouplingTable._coupling(_unpacked(_packed(e))) for e in entities)
    # one string per name for every coupling of a batch, not one per name per coupling (half a coupling's size)
    assert all(a is b for a, b in zip([*first.bc_values, *first.crm_values], [*second.bc_values, *second.crm_values]))
