"""Which tables bcsync hooks: those enabled mappings read from, and on Business Central only entity sets that take
subscriptions."""

from dataclasses import replace

from sync.mappings import Catalog, builtin_mappings
from sync.model import Side
from sync.notifications import hookable_tables


def test_hooked_tables_are_the_sources_of_enabled_mappings():
    catalog = Catalog(builtin_mappings())
    assert hookable_tables(catalog, Side.BC) == ["currencies", "customers", "vendors", "unitsOfMeasure", "items",
                                                 "salesInvoices"]
    assert "contact" in hookable_tables(catalog, Side.CRM) and "account" in hookable_tables(catalog, Side.CRM)
    assert "transactioncurrency" not in hookable_tables(catalog, Side.CRM)  # CURRENCY goes to Sales only


def test_a_disabled_mapping_hooks_nothing():
    catalog = Catalog([replace(m, enabled=False) if m.name in ("CUSTOMER", "CONTACT") else m
                       for m in builtin_mappings()])
    assert "customers" not in hookable_tables(catalog, Side.BC)
    assert "contact" not in hookable_tables(catalog, Side.CRM)
