"""CONTACT and OPPORTUNITY: the parent account of a contact, and of an opportunity.

Business Central relates a person contact to a company contact (Company No.), and the company
contact to a customer or vendor through a business relation (read from `contactsInformation`). Sales
relates a contact to its parent account. The chain person -> company -> customer (else vendor) ->
coupled account is followed both ways, for a page of rows at a time.

When a contact is coupled after its customer and account (the CUSTOMER job cleared the primary contact
then, as it was not coupled yet), the primary contact is back-filled where it is empty, as Business
Central does: the account's Primary Contact and the customer's Primary Contact No. become the one the
other side names, if that is the contact just coupled; when both are empty, the first contact coupled.
A customer or account that had not changed since its last synchronisation stays synchronised.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from ..errors import ConcurrencyError, RecordError, SyncError
from ..model import BcTable, Direction, Side
from ..ports import Coupling, Record, RowChange
from ..tables import BC_CONTACT, BC_CUSTOMER, CRM_ACCOUNT
from . import IGNORE, MappingRules, RuleContext, Written

BC_CONTACT_RELATIONS = BcTable("contactsInformation", "Contact Business Relation", key_field="contactNumber",
                               id_field="contactId", modified_field=None)
RELATION_FIELDS = ["contactNumber", "contactType", "relatedId", "relatedType"]


# a business relation -> the table mapping of the accounts of its records, customers first
PARENT_MAPPINGS = {"Customer": "CUSTOMER", "Vendor": "VENDOR"}


def _coupled_parents(ctx: RuleContext, ids_by_mapping: dict[str, list[str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The couplings of customers or vendors (or accounts) by mapping, those not coupled yet synchronised first;
    and why one could not be (through each mapping that was tried)."""
    coupled: dict[str, Any] = {}
    why: dict[str, str] = {}
    for mapping, ids in ids_by_mapping.items():
        ids = [i for i in ids if i not in coupled]
        if not ids or mapping not in ctx.catalog:
            continue
        found, problems = ctx.coupled_first(mapping, ids, [])
        coupled.update(found)
        for key, problem in problems.items():
            why[key] = f"{why[key]}; {problem}" if key in why else problem
    found = {key.lower() for key in coupled}
    return coupled, {key: problem for key, problem in why.items() if key not in found}


def accounts_of_companies(ctx: RuleContext, company_numbers: Sequence[str]) -> dict[str, str | None]:
    """Company contact numbers -> the account coupled to the customer (else the vendor) each is related to (or
    None)."""
    cache = ctx.cache.setdefault("account_of_company", {})
    wanted = [n for n in dict.fromkeys(company_numbers) if n and n not in cache]
    if wanted:
        relations = [r for r in ctx.bc.read_matching(BC_CONTACT_RELATIONS, RELATION_FIELDS, "contactNumber", wanted)
                     if r.values.get("relatedType") in PARENT_MAPPINGS]
        # customers and vendors not coupled yet are synchronised first
        coupled, why = _coupled_parents(ctx, {mapping: [r.values["relatedId"] for r in relations
                                                        if r.values["relatedType"] == link]
                                              for link, mapping in PARENT_MAPPINGS.items()})
        problems = ctx.cache.setdefault("customer_problems", {})
        for r in sorted(relations, key=lambda r: r.values["relatedType"] != "Customer"):
            c = coupled.get(r.values["relatedId"])
            if cache.get(r.values["contactNumber"]) is None:
                cache[r.values["contactNumber"]] = c.crm_id if c else None
            if r.values["relatedId"].lower() in why:
                problems.setdefault(r.values["contactNumber"], why[r.values["relatedId"].lower()])
        for n in wanted:
            cache.setdefault(n, None)
    return {n: cache.get(n) for n in company_numbers if n}


def companies_of_accounts(ctx: RuleContext, account_ids: Sequence[str]) -> dict[str, str | None]:
    """Account ids -> the number of the company contact of the customer or vendor coupled to each (or None)."""
    cache = ctx.cache.setdefault("company_of_account", {})
    wanted = [a for a in dict.fromkeys(account_ids) if a and a not in cache]
    if wanted:
        # accounts not coupled yet: synchronised first, as a customer, else as a vendor
        coupled, why = _coupled_parents(ctx, {mapping: wanted for mapping in PARENT_MAPPINGS.values()})
        ctx.cache.setdefault("customer_problems", {}).update(why)
        related_of = {a: c.bc_id for a, c in coupled.items()}
        relations = ctx.bc.read_matching(BC_CONTACT_RELATIONS, RELATION_FIELDS, "relatedId",
                                         list(related_of.values())) if related_of else []
        company_of_related = {r.values["relatedId"].lower(): r.values["contactNumber"] for r in relations
                              if r.values.get("contactType") == "Company"}
        for a in wanted:
            related = related_of.get(a)
            cache[a] = company_of_related.get(related.lower()) if related else None
    return {a: cache.get(a) for a in account_ids if a}


class ContactRules(MappingRules):
    """A contact's parent takes a read of business relations: a scheduled run reads them only for contacts
    whose company (or parent account) changed since the pair was last synchronised, and keeps the parent
    it found then for the others. A change of a company's customer relation alone reaches its contacts
    at the next full synchronisation, which finds every parent afresh."""

    extra_fields = {Side.BC: ("companyNumber", "type"), Side.CRM: ("parentcustomerid", "parentcustomeridtype")}
    inputs = {Side.BC: ("companyNumber",), Side.CRM: ("parentcustomerid",)}
    mirrored_inputs = True
    reads = (BC_CONTACT_RELATIONS,)
    writes = (CRM_ACCOUNT, BC_CUSTOMER)  # primary contacts back-filled

    def accept(self, ctx: RuleContext, row: Record, coupling) -> Any:
        if ctx.direction is Direction.FROM_CRM and row.values.get("parentcustomeridtype") != "account":
            return IGNORE  # only contacts whose parent customer is an account (the product page's filter)
        return None

    @staticmethod
    def _parent(ctx: RuleContext, row: Record) -> dict[str, Any] | None:
        """The parent as last synchronised, while the row's company (parent account) is the same."""
        if ctx.direction is Direction.TO_CRM:
            return ctx.remembered(row, ("companyNumber",), ("parentcustomerid",))
        return ctx.remembered(row, ("parentcustomerid",), ("companyNumber",))

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        rows = [r for r in rows if self._parent(ctx, r) is None]
        if ctx.direction is Direction.TO_CRM:
            accounts_of_companies(ctx, [r.values.get("companyNumber") for r in rows])
        else:
            companies_of_accounts(ctx, [r.values.get("parentcustomerid") for r in rows])

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        kept = self._parent(ctx, row) if dst_row is not None else None
        if kept is not None:
            return kept
        if ctx.direction is Direction.TO_CRM:
            company = row.values.get("companyNumber")
            account = accounts_of_companies(ctx, [company]).get(company)
            if account is None:
                why = ctx.cache.get("customer_problems", {}).get(company)
                advice = f"its customer or vendor could not be synchronised first: {why}" if why else \
                    "couple the customer or vendor first (table mapping CUSTOMER or VENDOR)."
                raise RecordError(f"Contact {row.values.get('number')}: its company {company} is not related to a "
                                  f"customer or vendor coupled to a Sales account; {advice}", field="Company No.",
                                  code="ParentNotCoupled")
            return {"parentcustomerid": account}
        account = row.values.get("parentcustomerid")
        company = companies_of_accounts(ctx, [account]).get(account)
        if company is None:
            why = ctx.cache.get("customer_problems", {}).get(str(account).lower())
            raise RecordError(f"contact '{row.values.get('fullname') or ''}' ({row.id}): its parent account {account} "
                              f"is not coupled to a Business Central customer or vendor with a company contact, so "
                              f"the company does not exist in Business Central" +
                              (f"; the account could not be synchronised first: {why}" if why else "."),
                              field="Company Name", code="CompanyDoesNotExist")
        values: dict[str, Any] = {"companyNumber": company}
        if dst_row is None:
            values["displayName"] = row.values.get("fullname") or ""
        return values

    def after_write(self, ctx: RuleContext, written: Sequence[Written]) -> dict[str, SyncError]:
        return back_fill_primary_contacts(ctx, written)


class NewContact(NamedTuple):
    account: str        # the parent account's id
    contact: str        # the Sales contact's id
    number: str         # the Business Central contact's number
    source: str         # the job's source row id


def new_contacts(ctx: RuleContext, written: Sequence[Written]) -> list[NewContact]:
    """The pairs a page coupled (or whose follow-up is retried), with their parent account."""
    found = []
    for w in written:
        if not (w.inserted or w.retried):
            continue
        if ctx.direction is Direction.TO_CRM:
            company = w.source.values.get("companyNumber")
            account, crm, bc = accounts_of_companies(ctx, [company]).get(company), w.target, w.source
        else:
            account, crm, bc = w.source.values.get("parentcustomerid"), w.source, w.target
        if account and bc.values.get("number"):
            found.append(NewContact(str(account).lower(), crm.id, bc.values["number"], w.source.id))
    return found


def back_fill_primary_contacts(ctx: RuleContext, written: Sequence[Written]) -> dict[str, SyncError]:
    """Primary contacts left empty because the contact was not coupled yet, set now that it is. As Business
    Central does, a customer or account that had not changed since it was last synchronised is kept so:
    its CUSTOMER coupling takes the new version and value, and the next CUSTOMER job has nothing to do: the
    customers' new versions are left to it as known, so it does not even look their couplings up.

    Each parent is written at the version read (If-Match), so that a user's edit made since is refused
    rather than taken into a version recorded as synchronised (where it would never reach the other side).
    A refused write fails the contact's follow-up, tried again at the next run, as Business Central fails
    a contact whose parent it could not modify; the pair's coupling is then left as it was, so the CUSTOMER
    job carries the user's edit, and whatever side the back-fill did write, as changes."""
    new = new_contacts(ctx, written)
    if not new or "CUSTOMER" not in ctx.catalog:
        return {}
    accounts = {a.id.lower(): a for a in ctx.crm.read_ids(CRM_ACCOUNT, ["primarycontactid"], [n.account for n in new])}
    couplings = {a.lower(): c for a, c in ctx.couplings.get_many("CUSTOMER", Side.CRM, list(accounts)).items()}
    customers = {c.id.lower(): c for c in ctx.bc.read_ids(BC_CUSTOMER, ["primaryContactNo"],
                                                          [c.bc_id for c in couplings.values()])}
    account_changes: list[tuple[NewContact, Record, Coupling | None]] = []
    customer_changes: list[tuple[NewContact, Record, Coupling | None]] = []
    by_account: dict[str, list[NewContact]] = {}  # grouped once: a page may hold thousands of new contacts
    for n in new:
        by_account.setdefault(n.account, []).append(n)
    for account_id, account in accounts.items():
        mine = by_account.get(account_id, [])
        coupling = couplings.get(account_id)
        customer = customers.get(coupling.bc_id.lower()) if coupling else None
        named_in_sales = str(account.values.get("primarycontactid") or "").lower()
        named_in_bc = customer.values.get("primaryContactNo") if customer else None
        if not named_in_sales:
            chosen = next((n for n in mine if n.number == named_in_bc), None) if named_in_bc else mine[0]
            if chosen:
                account_changes.append((chosen, account, coupling))
        if customer is not None and not named_in_bc:
            chosen = next((n for n in mine if n.contact.lower() == named_in_sales), None) if named_in_sales else mine[0]
            if chosen:
                customer_changes.append((chosen, customer, coupling))
    failures: dict[str, SyncError] = {}
    done: dict[int, tuple[Coupling, list[tuple[Side, NewContact, Record, Record]]]] = {}  # by pair: what went through
    refused: set[int] = set()  # pairs with a side that was not written
    for side, table, what, changes in ((Side.CRM, CRM_ACCOUNT, "account", account_changes),
                                       (Side.BC, BC_CUSTOMER, "customer", customer_changes)):
        field = "primarycontactid" if side is Side.CRM else "primaryContactNo"
        values = [n.contact if side is Side.CRM else n.number for n, _, _ in changes]
        results = ctx.endpoint(side).update(table, [RowChange(row.id, row.etag, {field: value}) for (_, row, _), value
                                                    in zip(changes, values)], [field]) if changes else []
        for (n, row, coupling), result in zip(changes, results):
            if result.error is not None:
                failures[n.source] = _not_made_primary(n, what, result.error)
                if coupling is not None:
                    refused.add(id(coupling))
            elif coupling is not None and result.record:
                done.setdefault(id(coupling), (coupling, []))[1].append((side, n, row, result.record))
    _keep_synchronised(ctx, [entry for pair, entry in done.items() if pair not in refused])
    return failures


def _not_made_primary(n: NewContact, what: str, error: SyncError) -> SyncError:
    """The contact's follow-up error for a parent not written: one a user changed since it was read is tried again
    at the next run, however often that happens (never skipped as the same error twice in a row)."""
    if isinstance(error, ConcurrencyError):
        retried = ConcurrencyError(f"Contact {n.number}: its {what} changed while it was being made the primary "
                                   f"contact; tried again at the next run.", code=error.code, status=error.status)
        retried.skippable = False
        return retried
    return RecordError(f"Contact {n.number}: it could not be made the primary contact of its {what}: "
                       f"{error.message}", code=error.code)


def _keep_synchronised(ctx: RuleContext,
                       pairs: list[tuple[Coupling, list[tuple[Side, NewContact, Record, Record]]]]) -> None:
    """The CUSTOMER couplings of the pairs the back-fill wrote in full: each side written takes its new value into
    the coupling's snapshot, and a side that had not changed since the pair was synchronised (the version read,
    which the write was made at, is the coupling's) takes its new version too, so it stays synchronised."""
    fm = next((f for f in ctx.catalog["CUSTOMER"].fields if f.crm == "primarycontactid"), None)
    if fm is None:
        return  # the primary contact is not in CUSTOMER's snapshots
    kept: list[Coupling] = []
    customers_written: list[str] = []
    for coupling, sides in pairs:
        unchanged = False
        for side, n, row, stored in sides:
            coupling.values_on(side)[fm.key] = n.number if side is Side.BC else n.contact
            if coupling.etag_on(side) != row.etag:
                continue  # changed since synchronised: the CUSTOMER job carries that change
            unchanged = True
            if side is Side.CRM:
                coupling.crm_etag = stored.etag
            else:
                coupling.bc_etag = stored.etag
                customers_written.append(row.id)
        if unchanged:
            kept.append(coupling)
    if kept:
        ctx.keep_synchronised("CUSTOMER", kept, customers_written)


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
            account = accounts_of_companies(ctx, [company]).get(company)
            if account is None:
                return {}
            return {"parentaccountid": account, "customerid": account}
        if dst_row is None and not row.values.get("parentcontactid"):
            raise RecordError(f"opportunity '{row.values.get('name') or ''}' ({row.id}): it has no contact, and a "
                              f"Business Central opportunity needs one.", field="Contact", code="NoContact")
        return {}
