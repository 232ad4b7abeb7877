"""Configuration templates, end to end: customers, items and resources created in Business Central from Sales
get the posting groups of their mapping's template and can be invoiced; without a template they are created,
the job log says what they lack, and Business Central refuses to invoice them."""

from __future__ import annotations

import pytest

from simulators.businesscentral import BCError
from simulators.sample import seed_templates

from .conftest import job


def seed_groups(env):
    env.bc.seed("generalProductPostingGroups", [{"code": "RETAIL"}, {"code": "SERVICES"}])
    env.bc.seed("inventoryPostingGroups", [{"code": "RESALE"}])
    seed_templates(env.bc)


def new_account(env, name: str) -> str:
    [account] = env.dv.seed("account", [{"name": name, "customertypecode": 3, "statecode": 0}])
    return account


def customer_named(env, name: str) -> dict:
    found = next(c for c in env.bc.rows("customers") if c["displayName"] == name)
    return env.bc.get("CustomerCard", found["id"])


def invoice(env, customer: str) -> str:
    """Posts an invoice for the customer with one item line; returns the posted invoice's id."""
    if not any(i["number"] == "1000" for i in env.bc.rows("items")):
        env.bc.seed("items", [{"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS",
                               "unitPrice": 100}])
    [draft] = env.bc.seed("salesInvoices", [{"customerNumber": customer}])
    env.bc.seed("salesInvoiceLines", [{"documentId": draft, "lineType": "Item", "lineObjectNumber": "1000",
                                       "quantity": 1}])
    return env.bc.post_document("salesInvoices", draft)


def test_customers_items_and_resources_from_sales_get_their_templates_and_can_be_invoiced(env, cli):
    seed_groups(env)
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}, {"code": "HOUR", "displayName": "Hour"}])
    for mapping, code in (("CUSTOMER", "bcicust"), ("ITEM-PRODUCT", "BCIITEM"), ("RESOURCE-PRODUCT", "BCIRES")):
        status, out, err = cli("mappings", "set", mapping, "--template-code", code)
        assert status == 0 and f"configuration template: {code.upper()}" in out, err
    new_account(env, "Fourth Coffee")
    env.full_sync()
    groups = {g["name"]: g for g in env.dv.rows("uomschedule")}
    units = {u["name"]: u for u in env.dv.rows("uom")}
    env.dv.seed("product", [
        {"productnumber": "K-1", "name": "Kettle", "producttypecode": 1, "statecode": 0, "statuscode": 1,
         "defaultuomscheduleid": groups["NAV PCS"]["uomscheduleid"], "defaultuomid": units["PCS"]["uomid"]},
        {"productnumber": "S-1", "name": "Setup", "producttypecode": 3, "statecode": 0, "statuscode": 1,
         "defaultuomscheduleid": groups["NAV HOUR"]["uomscheduleid"], "defaultuomid": units["HOUR"]["uomid"]}])
    report = env.full_sync(["ITEM-PRODUCT", "RESOURCE-PRODUCT"])
    assert not any("without a template" in n for j in report.jobs for n in j.notes)

    card = customer_named(env, "Fourth Coffee")
    assert (card["Gen_Bus_Posting_Group"], card["VAT_Bus_Posting_Group"], card["Customer_Posting_Group"]) == (
        "DOMESTIC", "DOMESTIC", "DOMESTIC")
    item = next(i for i in env.bc.rows("items") if i["number"] == "K-1")
    assert (item["generalProductPostingGroupCode"], item["inventoryPostingGroupCode"]) == ("RETAIL", "RESALE")
    resource = next(r for r in env.bc.rows("Resources") if r["No"] == "S-1")
    assert (resource["Gen_Prod_Posting_Group"], resource["VAT_Prod_Posting_Group"]) == ("SERVICES", "STANDARD")
    posted = invoice(env, card["No"])
    assert env.bc.get("salesInvoices", posted)["status"] == "Open"


def test_without_a_template_the_customer_is_created_and_the_job_log_says_what_it_lacks(env, cli):
    seed_groups(env)                                              # templates exist, but no mapping names one
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
    new_account(env, "Trey Research")
    report = env.full_sync()
    card = customer_named(env, "Trey Research")
    assert card["Customer_Posting_Group"] == ""
    notes = job(report, "CUSTOMER:from-crm").notes
    assert (f"customers created without a template: no Gen. Bus. Posting Group or Customer Posting Group, so they "
            f"cannot be invoiced; set CUSTOMER's template code, 1 record(s): {card['No']}") in notes
    # and Business Central refuses to invoice it, naming the missing field
    with pytest.raises(BCError) as refused:
        invoice(env, card["No"])
    assert refused.value.code == "Application_FieldValidationException"
    assert refused.value.message == (f"Customer Posting Group must have a value in Customer: No.={card['No']}. "
                                     "It cannot be zero or empty.")


def test_a_template_that_does_not_exist_fails_the_record_until_it_is_created(env, cli):
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
    assert cli("mappings", "set", "CUSTOMER", "--template-code", "NEWCUST")[0] == 0
    account = new_account(env, "Litware, Inc.")
    report = env.full_sync()
    assert job(report, "CUSTOMER:from-crm").counts.failed == 1
    assert not any(c["displayName"] == "Litware, Inc." for c in env.bc.rows("customers"))    # nothing half-made
    [failure] = [f for f in env.errors() if f.mapping == "CUSTOMER"]
    assert failure.source_id == account and "configuration template NEWCUST" in failure.message
    assert "does not exist" in failure.message

    seed_templates(env.bc, {"NEWCUST": ("Customer", 18, {"Gen. Bus. Posting Group": "EXPORT",
                                                         "Customer Posting Group": "FOREIGN"})})
    env.sync()
    card = customer_named(env, "Litware, Inc.")
    assert (card["Gen_Bus_Posting_Group"], card["Customer_Posting_Group"]) == ("EXPORT", "FOREIGN")
    assert [f for f in env.errors() if f.mapping == "CUSTOMER"] == []


def test_a_template_code_only_on_a_mapping_that_creates_records_taking_one(cli):
    status, _, err = cli("mappings", "set", "CURRENCY", "--template-code", "BCICUR")
    assert status == 2 and "CURRENCY does not create Business Central records that take a configuration template" in err
    status, _, err = cli("mappings", "set", "CUSTOMER", "--template-code", "MUCH-TOO-LONG")
    assert status == 2 and "at most 10 characters" in err
