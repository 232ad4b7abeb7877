"""CONTACT and OPPORTUNITY: the parent account of a contact, and of an opportunity.

Business Central relates a person contact to a company contact (Company No.), and the company
contact to a customer through a business relation (read from `contactsInformation`). Sales relates a
contact to its parent account. The chain person -> company -> customer -> coupled account is
followed both ways, for a page of rows at a time.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import RecordError
from ..model import BcTable, Direction, Side
from ..ports import Record
from ..tables import BC_CONTACT
from . import IGNORE, MappingRules, RuleContext

BC_CONTACT_RELATIONS = BcTable("contactsInformation", "Contact Business Relation", key_field="contactNumber",
                               id_field="contactId", modified_field=None)
RELATION_FIELDS = ["contactNumber", "contactType", "relatedId", "relatedType"]


def accounts_of_companies(ctx: RuleContext, company_numbers: Sequence[str]) -> dict[str, str | None]:
    """Company contact numbers -> the account coupled to the customer each is related to (or None)."""
    cache = ctx.cache.setdefault("account_of_company", {})
    wanted = [n for n in dict.fromkeys(company_numbers) if n and n not in cache]
    if wanted:
        relations = [r for r in ctx.bc.read_matching(BC_CONTACT_RELATIONS, RELATION_FIELDS, "contactNumber", wanted)
                     if r.values.get("relatedType") == "Customer"]
        # customers not coupled yet are synchronised first
        coupled, why = ctx.coupled_first("CUSTOMER", [r.values["relatedId"] for r in relations], [])
        problems = ctx.cache.setdefault("customer_problems", {})
        for r in relations:
            c = coupled.get(r.values["relatedId"])
            cache[r.values["contactNumber"]] = c.crm_id if c else None
            if r.values["relatedId"].lower() in why:
                problems[r.values["contactNumber"]] = why[r.values["relatedId"].lower()]
        for n in wanted:
            cache.setdefault(n, None)
    return {n: cache.get(n) for n in company_numbers if n}


def companies_of_accounts(ctx: RuleContext, account_ids: Sequence[str]) -> dict[str, str | None]:
    """Account ids -> the number of the company contact of the customer coupled to each (or None)."""
    cache = ctx.cache.setdefault("company_of_account", {})
    wanted = [a for a in dict.fromkeys(account_ids) if a and a not in cache]
    if wanted:
        coupled, why = ctx.coupled_first("CUSTOMER", wanted, [])  # accounts not coupled yet: synchronised first
        ctx.cache.setdefault("customer_problems", {}).update(why)
        customer_of = {a: c.bc_id for a, c in coupled.items()}
        relations = ctx.bc.read_matching(BC_CONTACT_RELATIONS, RELATION_FIELDS, "relatedId",
                                         list(customer_of.values())) if customer_of else []
        company_of_customer = {r.values["relatedId"].lower(): r.values["contactNumber"] for r in relations
                               if r.values.get("contactType") == "Company"}
        for a in wanted:
            customer = customer_of.get(a)
            cache[a] = company_of_customer.get(customer.lower()) if customer else None
    return {a: cache.get(a) for a in account_ids if a}


class ContactRules(MappingRules):
    extra_fields = {Side.BC: ("companyNumber", "type"), Side.CRM: ("parentcustomerid", "parentcustomeridtype")}
    reads = (BC_CONTACT_RELATIONS,)

    def accept(self, ctx: RuleContext, row: Record, coupling) -> Any:
        if ctx.direction is Direction.FROM_CRM and row.values.get("parentcustomeridtype") != "account":
            return IGNORE  # only contacts whose parent customer is an account (the product page's filter)
        return None

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        if ctx.direction is Direction.TO_CRM:
            accounts_of_companies(ctx, [r.values.get("companyNumber") for r in rows])
        else:
            companies_of_accounts(ctx, [r.values.get("parentcustomerid") for r in rows])

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        if ctx.direction is Direction.TO_CRM:
            company = row.values.get("companyNumber")
            account = accounts_of_companies(ctx, [company]).get(company)
            if account is None:
                why = ctx.cache.get("customer_problems", {}).get(company)
                advice = f"its customer could not be synchronised first: {why}" if why else \
                    "couple the customer first (table mapping CUSTOMER)."
                raise RecordError(f"Contact {row.values.get('number')}: its company {company} is not related to a "
                                  f"customer coupled to a Sales account; {advice}", field="Company No.",
                                  code="ParentNotCoupled")
            return {"parentcustomerid": account}
        account = row.values.get("parentcustomerid")
        company = companies_of_accounts(ctx, [account]).get(account)
        if company is None:
            why = ctx.cache.get("customer_problems", {}).get(str(account).lower())
            raise RecordError(f"contact '{row.values.get('fullname') or ''}' ({row.id}): its parent account {account} "
                              f"is not coupled to a Business Central customer with a company contact, so the "
                              f"company does not exist in Business Central" +
                              (f"; the account could not be synchronised first: {why}" if why else "."),
                              field="Company Name", code="CompanyDoesNotExist")
        values: dict[str, Any] = {"companyNumber": company}
        if dst_row is None:
            values["displayName"] = row.values.get("fullname") or ""
        return values


class OpportunityRules(MappingRules):
    """The account of an opportunity is its contact's company's customer, coupled; a new Business
    Central opportunity needs a contact (and takes the salesperson coupled to the Sales owner)."""

    extra_fields = {Side.BC: ("contactNumber", "salespersonCode"),
                    Side.CRM: ("parentaccountid", "parentcontactid", "customerid", "ownerid")}
    reads = (BC_CONTACT, BC_CONTACT_RELATIONS)

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        if ctx.direction is Direction.TO_CRM:
            companies = self._companies(ctx, [r.values.get("contactNumber") for r in rows])
            accounts_of_companies(ctx, list(companies.values()))

    @staticmethod
    def _companies(ctx: RuleContext, contact_numbers: Sequence[str]) -> dict[str, str]:
        cache = ctx.cache.setdefault("company_of_contact", {})
        wanted = [n for n in dict.fromkeys(contact_numbers) if n and n not in cache]
        if wanted:
            for c in ctx.bc.read_matching(BC_CONTACT, ["number", "companyNumber"], "number", wanted):
                cache[c.values["number"]] = c.values.get("companyNumber") or ""
        return {n: cache.get(n, "") for n in contact_numbers if n}

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        if ctx.direction is Direction.TO_CRM:
            contact = row.values.get("contactNumber")
            company = self._companies(ctx, [contact]).get(contact, "")
            account = accounts_of_companies(ctx, [company]).get(company) if company else None
            if account is None:
                return {}
            return {"parentaccountid": account, "customerid": account}
        if dst_row is None and not row.values.get("parentcontactid"):
            raise RecordError(f"opportunity '{row.values.get('name') or ''}' ({row.id}): it has no contact, and a "
                              f"Business Central opportunity needs one.", field="Contact", code="NoContact")
        return {}
