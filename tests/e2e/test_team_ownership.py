"""The team ownership model (BCSYNC_OWNERSHIP_MODEL=team), end to end: rows bcsync creates in Sales belong to the
default team of the business unit of bcsync's application user; an owner never changes a Salesperson Code, nor a
salesperson an owner; SALESPEOPLE does not exist. The person model keeps owners per user."""

from __future__ import annotations

from .conftest import job


def team_model(env):
    """A business unit of its own for the company (Dataverse makes its default team), bcsync's application user
    moved into it, and the team model chosen. Returns the default team's id."""
    [unit] = env.dv.seed("businessunit", [{"name": "CRONUS USA (bcsync)"}])
    env.dv.update("systemuser", env.stack.ids.integration_user_id, {"businessunitid": unit})
    [team] = [t for t in env.dv.rows("team") if t.get("_businessunitid_value", t.get("businessunitid")) == unit]
    assert team["isdefault"] and team["teamtype"] == 0 and team["name"] == "CRONUS USA (bcsync)"
    env.configure(BCSYNC_OWNERSHIP_MODEL="team")
    return team["teamid"]


def seed(env):
    [alicia] = env.dv.seed("systemuser", [
        {"fullname": "Alicia Thornber", "islicensed": True, "internalemailaddress": "alicia@contoso.com"}])
    env.bc.seed("salespeoplePurchasers", [{"code": "AT", "displayName": "Alicia", "email": "alicia@contoso.com"},
                                          {"code": "JR", "displayName": "Jim", "email": "jim@contoso.com"}])
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum", "salespersonCode": "JR"}])
    [contoso] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3, "ownerid": alicia}])
    return alicia, contoso


def by_name(rows, field, name):
    return next(r for r in rows if r[field] == name)


def test_new_sales_rows_get_the_default_team_of_the_business_unit_and_salespeople_do_not_run(env):
    team = team_model(env)
    alicia, contoso = seed(env)
    report = env.full_sync()
    assert not any(j.job_id.startswith("SALESPEOPLE") for j in report.jobs)
    assert "SALESPEOPLE" not in [m["name"] for m in env.services.mappings()]
    assert job(report, "CUSTOMER:to-crm").counts.inserted == 1 and env.errors() == []
    # JR has no Sales user: in the team model that is no error, the new account belongs to the team
    adatum = by_name(env.dv.rows("account"), "name", "Adatum")
    assert adatum["ownerid"] == team and adatum["owningteam"] == team and adatum["owninguser"] is None
    # a customer made from an account has no salesperson: the owner does not cross
    assert by_name(env.bc.rows("customers"), "displayName", "Contoso")["salespersonCode"] == ""

    # a posted invoice reaches Sales owned by the team as well
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
    env.bc.seed("items", [{"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS",
                           "unitPrice": 100}])
    [draft] = env.bc.seed("salesInvoices", [{"customerNumber": "10000"}])
    env.bc.seed("salesInvoiceLines", [{"documentId": draft, "lineType": "Item", "lineObjectNumber": "1000",
                                       "quantity": 1}])
    env.bc.post_document("salesInvoices", draft)
    report = env.sync()
    assert job(report, "POSTEDSALESINV-INV:to-crm").counts.inserted == 1, report.to_dict()
    [invoice] = env.dv.rows("invoice")
    assert invoice["ownerid"] == team and invoice["owningteam"] == team


def test_an_owner_never_changes_a_salesperson_code_nor_the_other_way_round(env):
    team = team_model(env)
    alicia, contoso = seed(env)
    env.full_sync()
    adatum = by_name(env.dv.rows("account"), "name", "Adatum")["accountid"]

    # a new owner and a new phone number in Sales: the phone number crosses, the salesperson stays
    env.dv.update("account", adatum, {"ownerid": alicia, "telephone1": "+1 555 0100"})
    report = env.sync()
    assert job(report, "CUSTOMER:from-crm").counts.modified == 1 and env.errors() == []
    customer = by_name(env.bc.rows("customers"), "displayName", "Adatum")
    assert customer["salespersonCode"] == "JR" and customer["phoneNumber"] == "+1 555 0100"

    # a new salesperson in Business Central leaves the Sales owner as it is
    env.bc.update("customers", customer["id"], {"salespersonCode": "AT", "city": "Atlanta"})
    env.sync()
    account = env.dv.get("account", adatum)
    assert account["ownerid"] == alicia and account["address1_city"] == "Atlanta"
    assert env.dv.get("account", contoso)["ownerid"] == alicia  # existing rows keep their owner
    assert team != alicia


def test_the_person_model_still_owns_rows_per_user(env):
    alicia, contoso = seed(env)
    env.bc.seed("customers", [{"number": "20000", "displayName": "Fabrikam", "salespersonCode": "AT"}])
    report = env.full_sync()
    assert job(report, "SALESPEOPLE:from-crm").counts.failed == 0
    fabrikam = by_name(env.dv.rows("account"), "name", "Fabrikam")
    assert fabrikam["ownerid"] == alicia and fabrikam["owninguser"] == alicia
    assert by_name(env.bc.rows("customers"), "displayName", "Contoso")["salespersonCode"] == "AT"
    # JR has no Sales user: the person model fails that customer, naming the salesperson
    [failure] = [f for f in env.errors() if f.mapping == "CUSTOMER"]
    assert "Salesperson Code 'JR'" in failure.message
