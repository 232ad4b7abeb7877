"""BCSYNC_COMPANIES: several Business Central companies in one Dataverse environment, each with tables of its own,
checked when the settings are loaded; the company a command or request acts for is named, or the only one."""

from __future__ import annotations

import pytest

from shared.companies import chosen, companies
from shared.settings import Settings
from sync.errors import ConfigurationError, SettingsError

A = "11111111-1111-4111-8111-111111111111"
B = "22222222-2222-4222-8222-222222222222"


def load(**values) -> Settings:
    return Settings.load(environ={k: str(v) for k, v in values.items()})


def refused(**values) -> dict[str, str]:
    with pytest.raises(SettingsError) as found:
        load(**values)
    return found.value.problems


def test_one_company_keeps_its_tables_and_stamps_nothing():
    s = load(BCSYNC_BC_COMPANY_ID=A.upper())
    [only] = companies(s.companies, s.bc_company_id, s.table_prefix)
    assert (only.name, only.bc_company_id, only.table_prefix, only.interval_minutes, only.stamped) == \
        (A, A, "bcsync", None, False)


def test_several_companies_each_with_their_tables_interval_and_stamp():
    s = load(BCSYNC_COMPANIES=f" CRONUS={A} ; Fabrikam = {B.upper()}:60 ;", BCSYNC_TABLE_PREFIX="sync")
    found = companies(s.companies, s.bc_company_id, s.table_prefix)
    assert [(c.name, c.bc_company_id, c.table_prefix, c.interval_minutes, c.stamped) for c in found] == [
        ("CRONUS", A, "syncCRONUS", None, True), ("Fabrikam", B, "syncFabrikam", 60, True)]


def test_the_company_of_bcsync_bc_company_id_keeps_the_tables_it_had():
    s = load(BCSYNC_COMPANIES=f"CRONUS={A}; FABRIKAM={B}", BCSYNC_BC_COMPANY_ID=B)
    found = {c.name: c.table_prefix for c in companies(s.companies, s.bc_company_id, s.table_prefix)}
    assert found == {"CRONUS": "bcsyncCRONUS", "FABRIKAM": "bcsync"}


@pytest.mark.parametrize("value, problem", [
    ("", None),  # empty is unset: one company, as before
    (";", "lists no company"),
    (f"CRONUS {A}", "is not NAME=ID"),
    (f"9LIVES={A}", "is not NAME=ID"),
    (f"CRO-NUS={A}", "is not NAME=ID"),
    ("CRONUS=CRONUS", "which is not a GUID"),
    (f"CRONUS={A}:0", "set whole minutes from 1"),
    (f"CRONUS={A}:hourly", "set whole minutes from 1"),
    (f"CRONUS={A}; cronus={B}", "names cronus twice"),
    (f"CRONUS={A}; FABRIKAM={A.upper()}", f"gives the id {A.upper()} twice"),
])
def test_bad_company_lists_are_refused_at_start_with_the_fix(value, problem):
    if problem is None:
        assert load(BCSYNC_COMPANIES=value).companies is None
        return
    found = refused(BCSYNC_COMPANIES=value)
    assert list(found) == ["BCSYNC_COMPANIES"] and problem in found["BCSYNC_COMPANIES"], found


def test_a_single_company_id_outside_the_list_is_refused():
    found = refused(BCSYNC_COMPANIES=f"CRONUS={A}", BCSYNC_BC_COMPANY_ID=B)
    assert list(found) == ["BCSYNC_BC_COMPANY_ID"] and "is not one of the companies of BCSYNC_COMPANIES" in \
        found["BCSYNC_BC_COMPANY_ID"]


def test_a_company_name_too_long_for_its_table_names_is_refused():
    found = refused(BCSYNC_COMPANIES=f"C{'X' * 50}={A}", BCSYNC_TABLE_PREFIX="bcsync")
    assert list(found) == ["BCSYNC_COMPANIES"] and "longer than Azure Storage allows" in found["BCSYNC_COMPANIES"]


def test_a_command_names_its_company_by_name_or_id_and_several_need_one():
    s = load(BCSYNC_COMPANIES=f"CRONUS={A}; FABRIKAM={B}")
    found = companies(s.companies, s.bc_company_id, s.table_prefix)
    assert chosen(found, "fabrikam").name == chosen(found, B.upper()).name == "FABRIKAM"
    with pytest.raises(ConfigurationError, match=r"Several companies are configured \(CRONUS, FABRIKAM\)"):
        chosen(found, None)
    with pytest.raises(ConfigurationError, match="There is no company 'CONTOSO'; configured: CRONUS, FABRIKAM"):
        chosen(found, "CONTOSO")
    assert chosen(found[:1], None).name == "CRONUS"


def test_the_home_company_is_bcsync_bc_company_ids_else_the_first_listed():
    s = load(BCSYNC_COMPANIES=f"CRONUS={A}; FABRIKAM={B}", BCSYNC_BC_COMPANY_ID=B)
    assert {c.name: c.home for c in companies(s.companies, s.bc_company_id, s.table_prefix)} == {
        "CRONUS": False, "FABRIKAM": True}
    s = load(BCSYNC_COMPANIES=f"CRONUS={A}; FABRIKAM={B}")
    assert {c.name: c.home for c in companies(s.companies, s.bc_company_id, s.table_prefix)} == {
        "CRONUS": True, "FABRIKAM": False}
