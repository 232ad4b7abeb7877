"""Which columns an Update step of bcsync's Dataverse webhooks names (filtering attributes)."""

from __future__ import annotations

import dataclasses

from shared.dataverse_webhooks import update_columns
from sync.mappings import builtin_mappings
from sync.model import Direction


def test_update_steps_name_the_columns_plain_mappings_read_and_no_more():
    mappings = {m.name: m for m in builtin_mappings()}
    columns = update_columns(mappings.values())
    salespeople = mappings["SALESPEOPLE"]
    assert salespeople.rules is None and salespeople.process is None
    read = {f.crm for f in salespeople.fields_for(Direction.FROM_CRM) if f.crm}
    assert set(columns["systemuser"]) >= read and read
    # a table read by a mapping with rules of its own gets no list: every update is posted
    assert mappings["CUSTOMER"].rules is not None and "account" not in columns
    # a mapping's filter columns are read too; a filter that cannot be parsed drops the list
    filtered = dataclasses.replace(salespeople, crm_filter="_businessunitid_value ne null and title eq 'Rep'")
    assert {"businessunitid", "title"} <= set(update_columns([filtered])["systemuser"])
    assert update_columns([dataclasses.replace(salespeople, crm_filter="contains(title,'Rep')")]) == {}
    # a disabled mapping reads nothing
    assert update_columns([dataclasses.replace(salespeople, enabled=False)]) == {}
