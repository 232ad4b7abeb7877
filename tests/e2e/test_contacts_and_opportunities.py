"""CONTACT and OPPORTUNITY end to end: parents through company contacts, business relations and
customer couplings; owners from salespeople; filters on both sides."""

from __future__ import annotations

from sync.model import Side
from sync.tables import BC_CUSTOMER

from .conftest import job


def seed(env):
    [alicia] = env.dv.seed("systemuser", [{"fullname": "Alicia Thornber", "islicensed": True,
                                           "internalemailaddress": "alicia@contoso.com"}])
    env.bc.seed("salespeoplePurchasers", [{"code": "AT", "displayName": "Alicia", "email": "alicia@contoso.com"}])
    [adatum] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    company = next(c for c in env.bc.rows("contacts") if c["displayName"] == "Adatum")["number"]
    [loose] = env.bc.seed("contacts", [{"type": "Company", "displayName": "Loose Co"}])   # no customer relation
    loose_number = env.bc.get("contacts", loose)["number"]
    ann, stray = env.bc.seed("contacts", [
        {"type": "Person", "displayName": "Ann Lee", "companyNumber": company, "email": "ann@adatum.example",
         "phoneNumber": "+1 555 0101"},
        {"type": "Person", "displayName": "Stray Person", "companyNumber": loose_number},
    ])
    env.bc.update("ContactCard", ann, {"Salesperson_Code": "AT"})
    [contoso] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3}])
    bob, orphan = env.dv.seed("contact", [
        {"firstname": "Bob", "lastname": "Smith", "parentcustomerid": contoso, "emailaddress1": "bob@contoso.example"},
        {"firstname": "No", "lastname": "Parent"},
    ])
    [child] = env.dv.seed("contact", [{"firstname": "Kid", "lastname": "Smith", "parentcustomerid": ("contact", bob)}])
    return alicia, adatum, company, ann, stray, contoso, bob


def test_contacts_both_ways_with_their_parent_company_and_owner(env):
    alicia, adatum, company, ann, stray, contoso, bob = seed(env)
    report = env.full_sync()
    assert job(report, "CONTACT:to-crm").counts.failed == 0 and job(report, "CONTACT:from-crm").counts.failed == 0

    adatum_account = next(a for a in env.dv.rows("account") if a["name"] == "Adatum")
    crm_contacts = {c["fullname"]: c for c in env.dv.rows("contact")}
    assert set(crm_contacts) == {"Ann Lee", "Bob Smith", "No Parent", "Kid Smith"}   # Stray Person stays in BC
    assert crm_contacts["Ann Lee"]["parentcustomerid"] == adatum_account["accountid"]
    assert crm_contacts["Ann Lee"]["firstname"] == "Ann" and crm_contacts["Ann Lee"]["lastname"] == "Lee"
    assert crm_contacts["Ann Lee"]["ownerid"] == alicia
    assert crm_contacts["Ann Lee"]["telephone1"] == "+1 555 0101"

    contoso_company = next(c for c in env.bc.rows("contacts") if c["displayName"] == "Contoso" and c["type"] == "Company")
    bc_people = {c["displayName"]: c for c in env.bc.rows("contacts") if c["type"] == "Person"}
    assert set(bc_people) == {"Ann Lee", "Stray Person", "Bob Smith"}       # no contact without an account parent
    assert bc_people["Bob Smith"]["companyNumber"] == contoso_company["number"]
    assert bc_people["Bob Smith"]["email"] == "bob@contoso.example"
    card = next(c for c in env.bc.rows("ContactCard") if c["No"] == bc_people["Bob Smith"]["number"])
    assert (card["First_Name"], card["Surname"]) == ("Bob", "Smith")

    # a change in Sales reaches Business Central through the contact card
    env.dv.update("contact", bob, {"lastname": "Smythe", "mobilephone": "+1 555 0199"})
    env.sync()
    card = next(c for c in env.bc.rows("ContactCard") if c["No"] == bc_people["Bob Smith"]["number"])
    assert card["Surname"] == "Smythe" and card["Mobile_Phone_No"] == "+1 555 0199"


def test_a_contact_of_a_customer_that_is_not_coupled_fails_with_a_clear_message(env):
    seed(env)
    env.services.set_mapping("CUSTOMER", {"enabled": False})
    report = env.full_sync()
    failures = [f for f in env.errors() if f.mapping == "CONTACT" and f.direction.value == "to-crm"]
    assert [f.field for f in failures] == ["Company No."]
    assert "is not related to a customer or vendor coupled to a Sales account" in failures[0].message
    assert job(report, "CONTACT:from-crm").counts.failed == 1   # Bob: Contoso is not coupled either
    [crm_failure] = [f for f in env.errors() if f.mapping == "CONTACT" and f.direction.value == "from-crm"]
    assert "company does not exist in Business Central" in crm_failure.message


def test_opportunities_both_ways(env):
    alicia, adatum, company, ann, stray, contoso, bob = seed(env)
    ann_number = env.bc.get("contacts", ann)["number"]
    env.bc.seed("opportunities", [
        {"contactNumber": ann_number, "description": "Fleet renewal", "salespersonCode": "AT",
         "status": "In Progress", "estimatedValue": 50000, "estimatedClosingDate": "2027-03-31"},
        {"contactNumber": ann_number, "description": "Old deal", "status": "Won"},
    ])
    env.full_sync()
    [sales_bob] = [c for c in env.dv.rows("contact") if c["fullname"] == "Bob Smith"]
    env.dv.seed("opportunity", [{"name": "Service contract", "parentcontactid": sales_bob["contactid"],
                                 "customerid": contoso, "estimatedvalue": 1200}])
    env.full_sync(mappings=["OPPORTUNITY"])
    opportunities = {o["name"]: o for o in env.dv.rows("opportunity")}
    assert set(opportunities) == {"Fleet renewal", "Service contract"}      # a won opportunity is not synchronised
    fleet = opportunities["Fleet renewal"]
    ann_contact = next(c for c in env.dv.rows("contact") if c["fullname"] == "Ann Lee")
    adatum_account = next(a for a in env.dv.rows("account") if a["name"] == "Adatum")
    assert fleet["parentcontactid"] == ann_contact["contactid"] and fleet["parentaccountid"] == adatum_account["accountid"]
    assert fleet["ownerid"] == alicia and fleet["estimatedvalue"] == 50000
    assert str(fleet["estimatedclosedate"])[:10] == "2027-03-31"
    bc_opps = {o["description"]: o for o in env.bc.rows("opportunities")}
    bob_number = next(c for c in env.bc.rows("contacts") if c["displayName"] == "Bob Smith")["number"]
    assert bc_opps["Service contract"]["contactNumber"] == bob_number
    # renamed in Sales, renamed in Business Central
    env.dv.update("opportunity", fleet["opportunityid"], {"name": "Fleet renewal 2027"})
    env.sync()
    assert "Fleet renewal 2027" in {o["description"] for o in env.bc.rows("opportunities")}


def test_a_contact_card_write_failing_after_the_contact_was_created_keeps_it_coupled(env):
    seed(env)
    env.full_sync(mappings=["SALESPEOPLE", "CUSTOMER"])
    env.bc.faults.fail(400, times=1, path_contains="ContactCard", methods=("PATCH",))
    env.full_sync(mappings=["CONTACT"])
    bobs = [c for c in env.bc.rows("contacts") if c["type"] == "Person" and c["displayName"].startswith("Bob")]
    assert len(bobs) == 1
    assert [f.mapping for f in env.errors()] == ["CONTACT"]        # the card's fields are still to be written
    env.sync()
    card = next(c for c in env.bc.rows("ContactCard") if c["No"] == bobs[0]["number"])
    assert (card["First_Name"], card["Surname"]) == ("Bob", "Smith")
    assert [c["displayName"] for c in env.bc.rows("contacts") if c["displayName"].startswith("Bob")] == ["Bob Smith"]
    assert env.errors() == []


def test_an_opportunity_synchronises_its_new_contact_first_or_names_it(env):
    alicia, adatum, company, ann, stray, contoso, bob = seed(env)
    env.full_sync()
    [dan] = env.bc.seed("contacts", [{"type": "Person", "displayName": "Dan Park", "companyNumber": company}])
    env.sync()
    assert "Dan Park" not in [c["fullname"] for c in env.dv.rows("contact")]   # Synch. Only Coupled Records
    env.bc.seed("opportunities", [{"contactNumber": env.bc.get("contacts", dan)["number"], "description": "Spare parts",
                                   "status": "In Progress"}])
    report = env.sync()
    assert job(report, "OPPORTUNITY:to-crm").counts.failed == 0, report.to_dict()
    dan_contact = next(c for c in env.dv.rows("contact") if c["fullname"] == "Dan Park")
    [spare] = [o for o in env.dv.rows("opportunity") if o["name"] == "Spare parts"]
    assert spare["parentcontactid"] == dan_contact["contactid"]
    # a person of a company that is no customer is outside CONTACT's filter: the opportunity's error says so
    stray_number = env.bc.get("contacts", stray)["number"]
    env.bc.seed("opportunities", [{"contactNumber": stray_number, "description": "Cold lead", "status": "In Progress"}])
    env.sync()
    [failure] = [f for f in env.errors() if f.mapping == "OPPORTUNITY"]
    assert f"Contact No. '{stray_number}' is not coupled to a Dataverse contact; it could not be synchronised first: " \
           f"Contact {stray_number} does not pass the filter of table mapping CONTACT" in failure.message


def test_the_primary_contact_is_back_filled_once_the_contact_is_coupled_after_its_account(env):
    [adatum] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    company = next(c for c in env.bc.rows("contacts") if c["displayName"] == "Adatum")["number"]
    [ann] = env.bc.seed("contacts", [{"type": "Person", "displayName": "Ann Lee", "companyNumber": company}])
    ann_number = env.bc.get("contacts", ann)["number"]
    env.bc.update("CustomerCard", adatum, {"Primary_Contact_No": ann_number})
    [contoso] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3}])
    env.full_sync(mappings=["CUSTOMER"])
    # the contacts are not coupled yet: the lookups found nothing to point at
    account = next(a for a in env.dv.rows("account") if a["name"] == "Adatum")
    assert account["primarycontactid"] is None
    contoso_customer = next(c for c in env.bc.rows("CustomerCard") if c["Name"] == "Contoso")
    assert contoso_customer["Primary_Contact_No"] == ""
    [bob] = env.dv.seed("contact", [{"firstname": "Bob", "lastname": "Smith", "parentcustomerid": contoso}])

    report = env.full_sync(mappings=["CONTACT"])
    assert job(report, "CONTACT:to-crm").counts.failed == 0 and job(report, "CONTACT:from-crm").counts.failed == 0
    ann_in_sales = next(c for c in env.dv.rows("contact") if c["fullname"] == "Ann Lee")
    assert next(a for a in env.dv.rows("account") if a["name"] == "Adatum")["primarycontactid"] == \
        ann_in_sales["contactid"]                                 # the one the customer names
    bob_in_bc = next(c for c in env.bc.rows("contacts") if c["displayName"] == "Bob Smith")
    contoso_customer = next(c for c in env.bc.rows("CustomerCard") if c["Name"] == "Contoso")
    assert contoso_customer["Primary_Contact_No"] == bob_in_bc["number"]  # both empty: the contact coupled
    assert next(a for a in env.dv.rows("account") if a["name"] == "Contoso")["primarycontactid"] == bob
    # nothing left for the next run to write back and forth
    report = env.sync()
    assert job(report, "CUSTOMER:to-crm").counts.failed == 0 and job(report, "CUSTOMER:from-crm").counts.modified == 0


def test_a_customer_edited_while_its_primary_contact_is_back_filled_keeps_the_edit_flowing_to_sales(env):
    # The back-fill reads the customer, then writes its primary contact. A user who edits the customer in between
    # must not see the edit taken into the version the coupling records as synchronised: the write is refused,
    # the CUSTOMER job carries the edit to Sales, and the primary contact still reaches the customer.
    [contoso] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3, "telephone1": "+1 555 0100"}])
    env.full_sync(mappings=["CUSTOMER"])
    customer = next(c for c in env.bc.rows("customers") if c["displayName"] == "Contoso")
    [bob] = env.dv.seed("contact", [{"firstname": "Bob", "lastname": "Smith", "parentcustomerid": contoso}])

    endpoint = env.services.engine.endpoint(Side.BC)
    real = endpoint.update

    def update(table, changes, fields):
        if table is BC_CUSTOMER and any("primaryContactNo" in c.values for c in changes):
            env.bc.update("customers", customer["id"], {"phoneNumber": "+1 555 0199"})  # the user, meanwhile
        return real(table, changes, fields)

    endpoint.update = update
    try:
        report = env.full_sync(mappings=["CONTACT"])
    finally:
        endpoint.update = real
    bob_in_bc = next(c for c in env.bc.rows("contacts") if c["displayName"] == "Bob Smith")
    assert next(a for a in env.dv.rows("account") if a["name"] == "Contoso")["primarycontactid"] == bob
    assert next(c for c in env.bc.rows("CustomerCard") if c["Name"] == "Contoso")["Primary_Contact_No"] == ""
    assert job(report, "CONTACT:from-crm").counts.failed == 1
    [failure] = env.errors()
    assert failure.transient and not failure.skipped
    assert f"Contact {bob_in_bc['number']}: its customer changed while it was being made the primary contact" in \
        failure.message

    env.sync()
    account = next(a for a in env.dv.rows("account") if a["name"] == "Contoso")
    assert account["telephone1"] == "+1 555 0199"                   # the user's edit reached Sales
    assert account["primarycontactid"] == bob
    assert next(c for c in env.bc.rows("CustomerCard") if c["Name"] == "Contoso")["Primary_Contact_No"] == \
        bob_in_bc["number"]                                           # and the primary contact the customer
    assert env.errors() == []
