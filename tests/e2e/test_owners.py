"""Owner <-> Salesperson Code both ways, end to end: a Sales owner who is a user coupled to a salesperson sets
the Salesperson Code of customers, contacts and opportunities; a user who is not coupled fails the record with
an error naming the user; a team keeps the Business Central value, with a note in the job log."""

from __future__ import annotations

from .conftest import job


def seed(env):
    alicia, chen, una = env.dv.seed("systemuser", [
        {"fullname": "Alicia Thornber", "islicensed": True, "internalemailaddress": "alicia@contoso.com"},
        {"fullname": "Chen Li", "islicensed": True, "internalemailaddress": "chen@contoso.com"},
        {"fullname": "Una Unlicensed", "islicensed": False, "internalemailaddress": "una@contoso.com"},
    ])
    env.bc.seed("salespeoplePurchasers", [{"code": "AT", "displayName": "Alicia", "email": "alicia@contoso.com"}])
    [contoso] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3, "ownerid": alicia}])
    [bob] = env.dv.seed("contact", [{"firstname": "Bob", "lastname": "Smith", "parentcustomerid": contoso,
                                     "ownerid": chen}])
    return alicia, chen, una, contoso, bob


def salesperson_of(env, name):
    return next(c for c in env.bc.rows("customers") if c["displayName"] == name)["salespersonCode"]


def test_a_sales_owner_sets_the_salesperson_code_of_customers_and_contacts(env):
    alicia, chen, una, contoso, bob = seed(env)
    report = env.full_sync()
    assert job(report, "CUSTOMER:from-crm").counts.failed == 0 and job(report, "CONTACT:from-crm").counts.failed == 0
    chen_code = next(p for p in env.bc.rows("salespeoplePurchasers") if p["email"] == "chen@contoso.com")["code"]
    assert salesperson_of(env, "Contoso") == "AT"                  # the account's owner is Alicia, coupled to AT
    person = next(c for c in env.bc.rows("contacts") if c["displayName"] == "Bob Smith")
    card = next(c for c in env.bc.rows("ContactCard") if c["No"] == person["number"])
    assert card["Salesperson_Code"] == chen_code

    # a new owner in Sales reaches Business Central; the other way round, a new salesperson reaches Sales
    env.dv.update("account", contoso, {"ownerid": chen})
    env.sync()
    assert salesperson_of(env, "Contoso") == chen_code
    customer = next(c for c in env.bc.rows("customers") if c["displayName"] == "Contoso")
    env.bc.update("customers", customer["id"], {"salespersonCode": "AT"})
    env.sync()
    assert env.dv.get("account", contoso)["ownerid"] == alicia


def test_an_owner_that_is_not_coupled_fails_and_a_team_keeps_the_salesperson(env):
    alicia, chen, una, contoso, bob = seed(env)
    env.full_sync()
    # Una is not licensed, so she is no salesperson: the account fails with an error naming her
    env.dv.update("account", contoso, {"ownerid": una, "telephone1": "+1 555 0100"})
    report = env.sync()
    assert job(report, "CUSTOMER:from-crm").counts.failed == 1
    [failure] = [f for f in env.errors() if f.mapping == "CUSTOMER"]
    assert failure.field == "Salesperson Code" and failure.direction.value == "from-crm"
    assert "'Una Unlicensed'" in failure.message and "not coupled to a Salesperson/Purchaser" in failure.message
    customer = next(c for c in env.bc.rows("customers") if c["displayName"] == "Contoso")
    assert customer["salespersonCode"] == "AT" and customer["phoneNumber"] != "+1 555 0100"

    # a team owns it now: Business Central keeps its salesperson, the rest synchronises, the job log says why
    env.dv.update("account", contoso, {"ownerid": ("team", env.dv.default_team_id)})
    report = env.sync()
    assert job(report, "CUSTOMER:from-crm").counts.failed == 0 and env.errors() == []
    customer = next(c for c in env.bc.rows("customers") if c["displayName"] == "Contoso")
    assert customer["salespersonCode"] == "AT" and customer["phoneNumber"] == "+1 555 0100"
    notes = " ".join(job(report, "CUSTOMER:from-crm").notes)
    assert "Salesperson Code kept where the owner is a Dataverse team" in notes
    assert f"account 'Contoso' ({contoso}), team {env.dv.default_team_id}" in notes


def test_an_opportunity_owner_sets_its_salesperson(env):
    alicia, chen, una, contoso, bob = seed(env)
    env.full_sync()
    [deal] = env.dv.seed("opportunity", [{"name": "Fleet renewal", "parentcontactid": bob, "ownerid": alicia}])
    report = env.sync()
    assert job(report, "OPPORTUNITY:from-crm").counts.inserted == 1, report.to_dict()
    [opportunity] = [o for o in env.bc.rows("opportunities") if o["description"] == "Fleet renewal"]
    assert opportunity["salespersonCode"] == "AT"
