"""VENDOR, end to end: Business Central vendors <-> Sales accounts of relationship type Vendor, both ways, with
the purchaser as owner; contacts of a vendor's company under its account; vendors and customers never confused."""

from __future__ import annotations

from simulators.sample import seed_templates

from .conftest import job


def by_name(rows, field, name):
    return next(r for r in rows if r[field] == name)


def seed(env):
    [alicia] = env.dv.seed("systemuser", [
        {"fullname": "Alicia Thornber", "islicensed": True, "internalemailaddress": "alicia@contoso.com"}])
    env.bc.seed("salespeoplePurchasers", [{"code": "AT", "displayName": "Alicia", "email": "alicia@contoso.com"}])
    env.bc.seed("vendors", [{"number": "V1000", "displayName": "Northwind Supply", "city": "London",
                             "purchaserCode": "AT"},
                            {"number": "V2000", "displayName": "Litware", "city": "Boston"}])
    [fabrikam, litware] = env.dv.seed("account", [
        {"name": "Fabrikam Parts", "customertypecode": 11, "telephone1": "+1 555 0111", "ownerid": alicia},
        {"name": "Litware", "customertypecode": 3, "address1_city": "Redmond"}])
    return alicia, fabrikam, litware


def test_vendors_synchronise_both_ways_with_the_purchaser_as_owner(env):
    alicia, fabrikam, litware = seed(env)
    seed_templates(env.bc)
    env.services.set_mapping("VENDOR", {"template_code": "BCIVEND"})
    report = env.full_sync()
    assert job(report, "VENDOR:to-crm").counts.inserted == 2 and job(report, "VENDOR:from-crm").counts.inserted == 1
    assert [f for f in env.errors() if f.mapping == "VENDOR"] == []
    northwind = by_name(env.dv.rows("account"), "name", "Northwind Supply")
    assert northwind["customertypecode"] == 11 and northwind["address1_city"] == "London"
    assert northwind["ownerid"] == alicia                      # the user coupled to purchaser AT
    vendor = by_name(env.bc.rows("vendors"), "displayName", "Fabrikam Parts")
    assert vendor["phoneNumber"] == "+1 555 0111"
    card = by_name(env.bc.rows("VendorCard"), "No", vendor["number"])
    assert card["Purchaser_Code"] == "AT"                      # the owner, coupled to AT
    assert (card["Gen_Bus_Posting_Group"], card["Vendor_Posting_Group"]) == ("DOMESTIC", "DOMESTIC")  # BCIVEND
    assert not any("without a template" in n for n in job(report, "VENDOR:from-crm").notes)
    assert {c.bc_id for c in env.couplings("VENDOR")} == {v["id"] for v in env.bc.rows("vendors")}

    # scheduled runs carry changes both ways
    env.bc.update("vendors", vendor["id"], {"city": "Lyon"})
    env.dv.update("account", northwind["accountid"], {"telephone1": "+44 20 5550 0100"})
    report = env.sync()
    assert job(report, "VENDOR:to-crm").counts.modified == 1 and job(report, "VENDOR:from-crm").counts.modified == 1
    assert env.dv.get("account", fabrikam)["address1_city"] == "Lyon"
    assert by_name(env.bc.rows("vendors"), "displayName", "Northwind Supply")["phoneNumber"] == "+44 20 5550 0100"


def test_a_vendor_and_a_customer_account_of_the_same_name_are_not_confused(env):
    alicia, fabrikam, litware = seed(env)
    env.full_sync()
    accounts = sorted((a["name"], a["customertypecode"]) for a in env.dv.rows("account") if a["name"] == "Litware")
    assert accounts == [("Litware", 3), ("Litware", 11)]
    assert [c["displayName"] for c in env.bc.rows("customers")] == ["Litware"]
    assert sorted(v["displayName"] for v in env.bc.rows("vendors")) == ["Fabrikam Parts", "Litware", "Northwind Supply"]
    vendor_account = next(a for a in env.dv.rows("account") if a["name"] == "Litware" and a["customertypecode"] == 11)
    assert next(c for c in env.couplings("VENDOR") if c.crm_id == vendor_account["accountid"])
    assert all(c.crm_id != litware for c in env.couplings("VENDOR"))
    assert any(c.crm_id == litware for c in env.couplings("CUSTOMER"))


def test_contacts_of_a_vendor_company_belong_to_its_account_both_ways(env):
    alicia, fabrikam, litware = seed(env)
    env.full_sync()
    vendor = by_name(env.bc.rows("vendors"), "displayName", "Northwind Supply")
    [relation] = [r for r in env.bc.rows("contactsInformation") if r["relatedId"] == vendor["id"]]
    assert relation["relatedType"] == "Vendor"
    env.bc.seed("contacts", [{"type": "Person", "displayName": "Nina North", "companyNumber": relation["contactNumber"],
                              "email": "nina@northwind.example"}])
    [pat] = env.dv.seed("contact", [{"firstname": "Pat", "lastname": "Parts", "parentcustomerid": fabrikam}])
    report = env.full_sync(["CONTACT"])
    assert job(report, "CONTACT:to-crm").counts.failed == 0 and job(report, "CONTACT:from-crm").counts.failed == 0
    northwind = by_name(env.dv.rows("account"), "name", "Northwind Supply")
    nina = by_name(env.dv.rows("contact"), "emailaddress1", "nina@northwind.example")
    assert nina["parentcustomerid"] == northwind["accountid"]
    fabrikam_vendor = by_name(env.bc.rows("vendors"), "displayName", "Fabrikam Parts")
    [company] = [r["contactNumber"] for r in env.bc.rows("contactsInformation")
                 if r["relatedId"] == fabrikam_vendor["id"]]
    pat_contact = next(c for c in env.couplings("CONTACT") if c.crm_id == pat)
    assert by_name(env.bc.rows("contacts"), "id", pat_contact.bc_id)["companyNumber"] == company
