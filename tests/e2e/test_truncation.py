"""Text longer than its Business Central field is never cut silently: by default it is cut with a note in the job
log naming the record, the field and the original length; the mapping's truncation setting (set from the CLI
like any other mapping setting) makes it a record error instead."""

from __future__ import annotations

import json

from .conftest import job

LONG_PHONE = "+1 425 555 0100 extension 4711, ask for reception"   # 49 characters; Phone No. holds 30


def test_text_cut_to_fit_is_noted_with_field_and_length(env):
    [account] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3, "telephone1": LONG_PHONE}])
    report = env.full_sync()
    customer = next(c for c in env.bc.rows("customers") if c["displayName"] == "Contoso")
    assert customer["phoneNumber"] == LONG_PHONE[:30]
    notes = job(report, "CUSTOMER:from-crm").notes
    assert (f"Phone No. (telephone1 -> phoneNumber) cut to the 30 characters the Business Central field holds, "
            f"1 record(s): account 'Contoso' ({account}): 49 characters") in notes, notes
    assert env.errors() == []

    # the cut value is in sync: the next run neither writes it back to Sales nor notes it again
    report = env.sync()
    assert env.dv.get("account", account)["telephone1"] == LONG_PHONE
    assert not any("Phone No." in n for j in report.jobs for n in j.notes)


def test_truncation_set_to_error_fails_the_record_naming_field_length_and_limit(env, cli):
    code, out, _ = cli("mappings", "set", "CUSTOMER", "--truncation", "error", "--json")
    assert code == 0 and json.loads(out)["truncation"] == "error", out
    [account] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3, "telephone1": LONG_PHONE}])
    report = env.full_sync()
    assert job(report, "CUSTOMER:from-crm").counts.failed == 1
    assert not any(c["displayName"] == "Contoso" for c in env.bc.rows("customers"))
    [failure] = env.errors()
    assert failure.record == "account 'Contoso' (%s)" % account and failure.field == "Phone No."
    assert "is 49 characters long; the Business Central field holds 30" in failure.message

    # fixed at the source, it goes through
    env.dv.update("account", account, {"telephone1": "+1 425 555 0100"})
    env.sync()
    assert next(c for c in env.bc.rows("customers") if c["displayName"] == "Contoso")["phoneNumber"] == "+1 425 555 0100"
    assert env.errors() == []


LONG_FAX = "+1 425 555 0199 (reception, weekdays)"     # 37 characters; Fax No. holds 30
LONG_CITY = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"   # 58 characters; City holds 30


def test_bad_input_text_too_long_in_an_edit_names_each_record_and_field(env):
    """Bad input on the edit path, several records and fields at once: each cut is in the job log with its record and
    field; with truncation set to error, the record fails naming the field and nothing of it is written."""
    contoso, fabrikam = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3, "telephone1": "1"},
                                                {"name": "Fabrikam", "customertypecode": 3, "fax": "2"}])
    env.full_sync()
    env.dv.update("account", contoso, {"telephone1": LONG_PHONE, "fax": LONG_FAX})
    env.dv.update("account", fabrikam, {"fax": LONG_FAX})
    notes = job(env.sync(), "CUSTOMER:from-crm").notes
    assert (f"Phone No. (telephone1 -> phoneNumber) cut to the 30 characters the Business Central field holds, "
            f"1 record(s): account 'Contoso' ({contoso}): 49 characters") in notes, notes
    assert (f"Fax No. (fax -> faxNo) cut to the 30 characters the Business Central field holds, 2 record(s): "
            f"account 'Contoso' ({contoso}): 37 characters; account 'Fabrikam' ({fabrikam}): 37 characters") in notes
    customers = {c["displayName"]: c for c in env.bc.rows("customers")}
    cards = {c["No"]: c for c in env.bc.rows("CustomerCard")}   # Fax No. is on the customer card
    assert customers["Contoso"]["phoneNumber"] == LONG_PHONE[:30]
    assert cards[customers["Fabrikam"]["number"]]["Fax_No"] == LONG_FAX[:30]
    assert env.errors() == []

    env.services.set_mapping("CUSTOMER", {"truncation": "error"})
    env.dv.update("account", contoso, {"address1_city": LONG_CITY, "telephone1": "+1 425 555 0100"})
    report = env.sync()
    assert job(report, "CUSTOMER:from-crm").counts.failed == 1
    [failure] = env.errors()
    assert failure.record == f"account 'Contoso' ({contoso})" and failure.field == "City"
    assert "is 58 characters long; the Business Central field holds 30" in failure.message
    contoso_bc = next(c for c in env.bc.rows("customers") if c["displayName"] == "Contoso")
    assert contoso_bc["city"] == "" and contoso_bc["phoneNumber"] == LONG_PHONE[:30]  # not written in part
