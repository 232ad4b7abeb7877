"""Couplings spread over buckets by a hash of the id (shared.storage)."""

from __future__ import annotations

import uuid
from collections import Counter

from shared.storage import COUPLING_BUCKETS, CouplingTable, _bucket
from sync.model import Side


def test_a_thousand_guids_fill_every_bucket_evenly():
    spread = Counter(_bucket(str(uuid.UUID(int=i * 7919 + 12345))) for i in range(1000))
    assert sorted(spread) == [f"{b:02x}" for b in range(COUPLING_BUCKETS)]
    assert max(spread.values()) < 2 * 1000 / COUPLING_BUCKETS


def test_an_id_keeps_its_bucket_whatever_the_case_and_its_row_key_as_given():
    guid = "9A3E1C2B-0D4F-4E5A-8B6C-7D8E9F0A1B2C"
    assert _bucket(guid) == _bucket(guid.lower())
    assert CouplingTable._address("CUSTOMER", Side.CRM, guid) == (f"CUSTOMER|crm|{_bucket(guid)}", guid)
    assert CouplingTable._address("CUSTOMER", Side.BC, guid)[0].startswith("CUSTOMER|bc|")
