"""Contacts, contact business relations and opportunities, with BC's Marketing Setup behaviour.

- A Company contact's Company No. is its own No.; a Person's Company No. must be a Company contact,
  whose name the person carries as Company Name.
- For a Person, changing First/Middle Name or Surname composes Name ("First Middle Surname");
  changing only Name breaks it down into the three parts (BC's NameBreakdown).
- Creating a customer creates a contact of the customer's contact type with its name and address and
  a business relation "CUST" (Link to Table = Customer) to it; changing the customer updates that
  contact and changing the contact updates the customer (CustCont-Update / CustVendBank-Update),
  deleting the customer deletes the relation (the contact stays).
- Contact."Contact Business Relation" is derived from the relations of the contact's company (" ",
  one link type, or Multiple) and kept up to date with a Modify, so SystemModifiedAt moves with it.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .catalog import API_V2, Catalog, _api_system_fields, _id, _last_modified, address_fields, page_system_fields
from .model import EMPTY_GUID, Column, NumberSeries, Table, email_check
from .views import Computed, Field, Navigation, PageView, Session, SystemField, View

CUSTOMER_RELATION_CODE = "CUST"  # Marketing Setup "Bus. Rel. Code for Customers"
VENDOR_RELATION_CODE = "VEND"    # Marketing Setup "Bus. Rel. Code for Vendors"
LINK_TYPES = (" ", "Customer", "Vendor", "Bank Account", "Employee")
RELATION_SUMMARY = (*LINK_TYPES, "Multiple")
NAME_PARTS = ("First Name", "Middle Name", "Surname")

# Vendor column -> Contact column (VendCont-Update copies these on insert)
VENDOR_TO_CONTACT = {
    "Name": "Name", "Address": "Address", "Address 2": "Address 2", "City": "City", "County": "County",
    "Post Code": "Post Code", "Country/Region Code": "Country/Region Code", "Phone No.": "Phone No.",
    "E-Mail": "E-Mail", "Home Page": "Home Page", "Currency Code": "Currency Code",
}

# Customer column -> Contact column (CustCont-Update copies these both ways in BC)
CUSTOMER_TO_CONTACT = {
    "Name": "Name", "Address": "Address", "Address 2": "Address 2", "City": "City", "County": "County",
    "Post Code": "Post Code", "Country/Region Code": "Country/Region Code", "Phone No.": "Phone No.",
    "E-Mail": "E-Mail", "Home Page": "Home Page", "VAT Registration No.": "VAT Registration No.",
    "Salesperson Code": "Salesperson Code", "Currency Code": "Currency Code",
}


# -- contacts ---------------------------------------------------------------------------------------

def relation_summary(session: Session, contact_no: str) -> str:
    links = {r["Link to Table"] for r in session.find_all("Contact Business Relation", ("Contact No.",), (contact_no,))}
    links.discard(" ")
    if not links:
        return " "
    return links.pop() if len(links) == 1 else "Multiple"


def _break_down(name: str) -> tuple[str, str, str]:
    parts = name.split()
    if not parts:
        return "", "", ""
    if len(parts) == 1:
        return "", "", parts[0][:30]
    if len(parts) == 2:
        return parts[0][:30], "", parts[1][:30]
    return parts[0][:30], parts[1][:30], " ".join(parts[2:])[:30]


def _contact_rules(session: Session, old: dict | None, record: dict) -> None:
    """OnInsert/OnModify of Contact: company link, composed names, search name, business relation."""
    table = session.table("Contact")
    if record["Type"] == "Company":
        given = record["Company No."]
        if given not in ("", record["No."]) and (old is None or given != old["Company No."]):
            raise errors.BCError(400, "Application_FieldValidationException",
                                 f"Type must be equal to 'Person'  in Contact: No.={record['No.']}. "
                                 "Current value is 'Company'.")
        record["Company No."] = record["No."]
        record["Company Name"] = record["Name"]
        record["Contact Business Relation"] = relation_summary(session, record["No."])
    else:
        if record["Company No."] == record["No."]:
            record["Company No."] = ""  # a company contact turned into a person
        company_no = record["Company No."]
        if company_no:
            company = session.find("Contact", (company_no,))
            if company is None or company["Type"] != "Company":
                raise errors.table_relation("Company No.", table.name, company_no, table.name)
            record["Company Name"] = company["Name"]
            record["Contact Business Relation"] = company["Contact Business Relation"]
        else:
            record["Company Name"] = ""
            record["Contact Business Relation"] = relation_summary(session, record["No."])
        parts = tuple(record[p] for p in NAME_PARTS)
        parts_changed = any(parts) if old is None else parts != tuple(old[p] for p in NAME_PARTS)
        if parts_changed:
            record["Name"] = " ".join(p for p in parts if p)[:100]
        elif record["Name"] and (old is None or record["Name"] != old["Name"]):
            record.update(zip(NAME_PARTS, _break_down(record["Name"])))
    if record["Search Name"] == "" or (old is not None and record["Search Name"] == old["Name"].upper()[:100]):
        record["Search Name"] = record["Name"].upper()[:100]


def _update_persons(session: Session, old: dict, new: dict) -> None:
    """A company contact's name or relation changed: its persons carry both."""
    if new["Type"] != "Company":
        return
    if (old["Name"], old["Contact Business Relation"]) == (new["Name"], new["Contact Business Relation"]):
        return
    table = session.table("Contact")
    for person in session.find_all("Contact", ("Company No.",), (new["No."],)):
        if person["SystemId"] == new["SystemId"]:
            continue
        if (person["Company Name"], person["Contact Business Relation"]) != (new["Name"], new["Contact Business Relation"]):
            session.modify_row(table, person, dict(person))


def _update_customers(session: Session, old: dict, new: dict) -> None:
    """A contact linked to customers changed a field they share: the customers take it over."""
    changed = {source: new[target] for source, target in CUSTOMER_TO_CONTACT.items() if new[target] != old[target]}
    if not changed:
        return
    customers = session.table("Customer")
    for relation in session.find_all("Contact Business Relation", ("Contact No.",), (new["No."],)):
        if relation["Link to Table"] != "Customer":
            continue
        customer = session.find("Customer", (relation["No."],))
        if customer is not None and any(customer[k] != v for k, v in changed.items()):
            session.modify_row(customers, customer, {**customer, **changed})


def _contact_modified(session: Session, old: dict, new: dict) -> None:
    _update_persons(session, old, new)
    _update_customers(session, old, new)


def _delete_contact(session: Session, record: dict) -> None:
    """OnDelete of Contact: its business relations go; a company takes its persons with it."""
    relations = session.table("Contact Business Relation")
    for relation in session.find_all("Contact Business Relation", ("Contact No.",), (record["No."],)):
        session.store.delete(relations, session.company, relation["SystemId"])
    if record["Type"] == "Company":
        table = session.table("Contact")
        for person in session.find_all("Contact", ("Company No.",), (record["No."],)):
            if person["SystemId"] != record["SystemId"]:
                session.delete_row(table, person)


def refresh_relation(session: Session, contact_no: str) -> None:
    """After a business relation changed: re-derive the contact's Contact Business Relation (a Modify
    only when it differs; a company's persons follow through its after-modify)."""
    contact = session.find("Contact", (contact_no,))
    if contact is not None and contact["Contact Business Relation"] != relation_summary(session, contact_no):
        session.modify_row(session.table("Contact"), contact, dict(contact))


# -- customers: their contact and business relation ------------------------------------------------------

def customer_relations(session: Session, customer_no: str) -> list[dict]:
    return session.find_all("Contact Business Relation", ("Link to Table", "No."), ("Customer", customer_no))


def _company_contact(session: Session, link: str, code: str, record: dict, copied: dict[str, str]) -> None:
    """A new customer or vendor gets a contact, related to it by a business relation (CustCont-Update and
    VendCont-Update)."""
    contacts = session.table("Contact")
    number = session.store.next_number(contacts, session.company)
    relation = session.table("Contact Business Relation").new_record()
    relation.update({"Contact No.": number, "Business Relation Code": code, "Link to Table": link,
                     "No.": record["No."]})
    session.insert_row(session.table("Contact Business Relation"), relation)
    contact = contacts.new_record()
    contact.update({target: record[source] for source, target in copied.items()})
    contact.update({"No.": number, "Type": record.get("Contact Type", "Company")})
    session.insert_row(contacts, contact)


def _customer_inserted(session: Session, customer: dict) -> None:
    _company_contact(session, "Customer", CUSTOMER_RELATION_CODE, customer, CUSTOMER_TO_CONTACT)


def _customer_modified(session: Session, old: dict, new: dict) -> None:
    relations = session.table("Contact Business Relation")
    links = customer_relations(session, old["No."])
    if new["No."] != old["No."]:
        for link in links:
            session.modify_row(relations, link, {**link, "No.": new["No."]})
    changed = {target: new[source] for source, target in CUSTOMER_TO_CONTACT.items() if new[source] != old[source]}
    if not changed:
        return
    contacts = session.table("Contact")
    for link in links:
        contact = session.find("Contact", (link["Contact No."],))
        if contact is not None and any(contact[k] != v for k, v in changed.items()):
            session.modify_row(contacts, contact, {**contact, **changed})


def _customer_deleted(session: Session, customer: dict) -> None:
    relations = session.table("Contact Business Relation")
    for link in customer_relations(session, customer["No."]):
        session.delete_row(relations, link)


# -- opportunities ---------------------------------------------------------------------------------------

def _opportunity_rules(session: Session, old: dict | None, record: dict) -> None:
    contact = session.find("Contact", (record["Contact No."],)) if record["Contact No."] else None
    record["Contact Company No."] = contact["Company No."] if contact else ""
    if old is None and record["Creation Date"] is None:
        record["Creation Date"] = session.today()
    closed = record["Status"] in ("Won", "Lost")
    if closed and record["Date Closed"] is None:
        record["Date Closed"] = session.today()
    if not closed and old is not None and old["Closed"]:
        record["Date Closed"] = None
    record["Closed"] = closed


def _contact_field(column: str):
    def compute(session: Session, record: dict) -> Any:
        contact = session.find("Contact", (record["Contact No."],)) if record["Contact No."] else None
        return contact[column] if contact else ""
    return compute


def _related_contact(table_column: str, blank: Any):
    """contactsInformation: a property of the relation's contact."""
    def compute(session: Session, record: dict) -> Any:
        contact = session.find("Contact", (record["Contact No."],))
        return contact[table_column] if contact else blank
    return compute


def _related_id(session: Session, record: dict) -> str:
    table = {"Customer": "Customer", "Vendor": "Vendor"}.get(record["Link to Table"])
    related = session.find(table, (record["No."],)) if table else None
    return related["SystemId"] if related else EMPTY_GUID


def register(cat: Catalog) -> None:
    contact = cat.add_table(Table(5050, "Contact", [
        Column("No.", "code", 20),
        Column("Type", "option", options=("Company", "Person")),
        Column("Name", "text", 100),
        Column("Company No.", "code", 20),
        Column("Company Name", "text", 100),
        Column("First Name", "text", 30),
        Column("Middle Name", "text", 30),
        Column("Surname", "text", 30),
        Column("Job Title", "text", 30),
        Column("Address", "text", 100),
        Column("Address 2", "text", 50),
        Column("City", "text", 30),
        Column("County", "text", 30),
        Column("Post Code", "code", 20),
        Column("Country/Region Code", "code", 10, relation="Country/Region"),
        Column("Phone No.", "text", 30),
        Column("Mobile Phone No.", "text", 30),
        Column("Fax No.", "text", 30),
        Column("Pager", "text", 30),
        Column("E-Mail", "text", 80, check=email_check),
        Column("Home Page", "text", 80),
        Column("Search Name", "code", 100),
        Column("Privacy Blocked", "bool"),
        Column("VAT Registration No.", "text", 20),
        Column("Date of Last Interaction", "date"),
        Column("Salesperson Code", "code", 20, relation="Salesperson/Purchaser"),
        Column("Currency Code", "code", 10, relation="Currency"),
        Column("Contact Business Relation", "option", options=RELATION_SUMMARY),
    ], key=("No.",), series=NumberSeries("CT000010", 10), indexes=(("Company No.",),)))

    business_relation = cat.add_table(Table(5054, "Contact Business Relation", [
        Column("Contact No.", "code", 20, relation="Contact"),
        Column("Business Relation Code", "code", 10),
        Column("Link to Table", "option", options=LINK_TYPES),
        Column("No.", "code", 20),
    ], key=("Contact No.", "Business Relation Code"), indexes=(("Contact No.",), ("Link to Table", "No."))))

    opportunity = cat.add_table(Table(5092, "Opportunity", [
        Column("No.", "code", 20),
        Column("Description", "text", 100),
        Column("Contact No.", "code", 20, relation="Contact"),
        Column("Contact Company No.", "code", 20),
        Column("Salesperson Code", "code", 20, relation="Salesperson/Purchaser"),
        Column("Status", "option", options=("Not Started", "In Progress", "Won", "Lost")),
        Column("Closed", "bool"),
        Column("Creation Date", "date"),
        Column("Date Closed", "date"),
        Column("Calcd. Current Value (LCY)", "decimal"),
        Column("Chances of Success %", "decimal"),
        Column("Completed %", "decimal"),
        Column("Estimated Closing Date", "date"),
        Column("Estimated Value (LCY)", "decimal"),
    ], key=("No.",), series=NumberSeries("OP000010", 10)))

    cat.on("Contact", on_insert=lambda s, r: _contact_rules(s, None, r), on_modify=_contact_rules,
           after_modify=_contact_modified, on_delete=_delete_contact)
    cat.on("Contact Business Relation",
           after_insert=lambda s, r: refresh_relation(s, r["Contact No."]),
           after_modify=lambda s, old, new: (refresh_relation(s, old["Contact No."]),
                                             refresh_relation(s, new["Contact No."])),
           after_delete=lambda s, r: refresh_relation(s, r["Contact No."]))
    cat.on("Customer", after_insert=_customer_inserted, after_modify=_customer_modified,
           after_delete=_customer_deleted)
    cat.on("Vendor", after_insert=lambda s, r: _company_contact(s, "Vendor", VENDOR_RELATION_CODE, r,
                                                                VENDOR_TO_CONTACT))
    cat.on("Opportunity", on_insert=lambda s, r: _opportunity_rules(s, None, r), on_modify=_opportunity_rules)

    # -- API v2.0 ---------------------------------------------------------------------------------------
    cat.add_api(View("contacts", contact, [
        _id(),
        Field("number", "No."),
        Field("type", "Type"),
        Field("displayName", "Name"),
        Field("jobTitle", "Job Title"),
        Field("companyNumber", "Company No."),
        Field("companyName", "Company Name", read_only=True),
        Field("contactBusinessRelation", "Contact Business Relation", read_only=True),
        *address_fields(),
        Field("mobilePhoneNumber", "Mobile Phone No."),
        Field("email", "E-Mail"),
        Field("website", "Home Page"),
        Field("searchName", "Search Name"),
        Field("privacyBlocked", "Privacy Blocked"),
        Field("taxRegistrationNumber", "VAT Registration No."),
        Field("lastInteractionDate", "Date of Last Interaction", read_only=True),
        _last_modified(),
        Field("firstName", "First Name", exposed=False),
        Field("middleName", "Middle Name", exposed=False),
        Field("surname", "Surname", exposed=False),
        Field("salespersonCode", "Salesperson Code", exposed=False),
        Field("currencyCode", "Currency Code", exposed=False),
        Field("faxNo", "Fax No.", exposed=False),
        Field("pager", "Pager", exposed=False),
        *_api_system_fields(),
    ], entity_name="contact"))

    # contactInformation (API v2.0) publishes neither an id nor a modification time of its own
    information = cat.add_api(View("contactsInformation", business_relation, [
        SystemField("id", "SystemId", "guid", exposed=False),
        Computed("contactId", "guid", _related_contact("SystemId", EMPTY_GUID)),
        Field("contactNumber", "Contact No."),
        Computed("contactName", "text", _related_contact("Name", "")),
        Computed("contactType", "option", _related_contact("Type", "Company"), options=("Company", "Person")),
        Computed("relatedId", "guid", _related_id),
        Field("relatedType", "Link to Table"),
        SystemField("lastModifiedDateTime", "SystemModifiedAt", "datetime", exposed=False),
        Field("businessRelationCode", "Business Relation Code", exposed=False),
        Field("relatedNumber", "No.", exposed=False),
        *_api_system_fields(),
    ], entity_name="contactInformation", insertable=False, modifiable=False, deletable=False))
    customers = cat.apis[API_V2]["customers"]
    customers.navigations["contactsInformation"] = Navigation(
        information, "relatedId", lambda s, customer: customer_relations(s, customer["No."]), deep_insert=False)

    cat.add_api(View("opportunities", opportunity, [
        _id(),
        Field("number", "No."),
        Field("contactNumber", "Contact No."),
        Computed("contactName", "text", _contact_field("Name")),
        Computed("contactCompanyName", "text", _contact_field("Company Name")),
        Field("salespersonCode", "Salesperson Code"),
        Field("description", "Description"),
        Field("status", "Status"),
        Field("closed", "Closed", read_only=True),
        Field("creationDate", "Creation Date"),
        Field("dateClosed", "Date Closed"),
        Field("calculatedCurrentValue", "Calcd. Current Value (LCY)"),
        Field("chancesOfSuccessPrc", "Chances of Success %"),
        Field("completedPrc", "Completed %"),
        Field("estimatedClosingDate", "Estimated Closing Date"),
        Field("estimatedValue", "Estimated Value (LCY)"),
        SystemField("systemCreatedAt", "SystemCreatedAt", "datetime"),
        _last_modified(),
        Field("contactCompanyNumber", "Contact Company No.", exposed=False),
        *[f for f in _api_system_fields() if f.name != "systemCreatedAt"],
    ], entity_name="opportunity"))

    # -- OData v4 page 5050 "Contact Card" ---------------------------------------------------------------
    cat.add_page(PageView("ContactCard", contact, [
        Field("No", "No."),
        Field("Type", "Type"),
        Field("Name", "Name"),
        Field("First_Name", "First Name"),
        Field("Middle_Name", "Middle Name"),
        Field("Surname", "Surname"),
        Field("Company_No", "Company No."),
        Field("Company_Name", "Company Name", read_only=True),
        Field("Job_Title", "Job Title"),
        Field("Address", "Address"),
        Field("Address_2", "Address 2"),
        Field("City", "City"),
        Field("County", "County"),
        Field("Post_Code", "Post Code"),
        Field("Country_Region_Code", "Country/Region Code"),
        Field("Phone_No", "Phone No."),
        Field("Mobile_Phone_No", "Mobile Phone No."),
        Field("Home_Page", "Home Page"),
        Field("Salesperson_Code", "Salesperson Code"),
        Field("Currency_Code", "Currency Code"),
        Field("Fax_No", "Fax No."),
        Field("Pager", "Pager"),
        Field("E_Mail", "E-Mail"),
        *page_system_fields(),
    ]))
