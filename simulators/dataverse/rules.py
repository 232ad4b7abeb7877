"""Platform rules of single tables: what the service derives, checks and does beyond column validation.

A table opts in with `table(..., rules=SomeRules())`. The engine calls, inside the write's transaction:

    prepare(change)               before state/status, money and uniqueness are applied (derive values, refuse)
    after_write(change, row)      after the row is stored (side effects on other rows)
    before_delete(change)         before the row is removed (refuse)
    after_delete(change)          after the row and its cascaded children are gone

`change.web` tells a Web API write from an in-process one (`sim.seed/create/update/delete`). Checks that
refuse a write apply to Web API writes only, so tests can seed any state; derived values apply to both.
Derived values are written into `change.values` (and `change.targets` for lookups).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import errors
from .errors import DataverseError

WEBHOOK_CONTRACT = 8  # serviceendpoint.contract of a webhook

if TYPE_CHECKING:
    from .engine import Engine
    from .schema import Entity
    from .store import Row


class Change:
    """One write as the rules see it."""

    __slots__ = ("caller", "cascade", "changed", "engine", "entity", "old", "row_id", "targets", "values", "web")

    def __init__(self, engine: Engine, entity: Entity, values: dict, targets: dict, old: dict | None,
                 changed: dict, row_id: str, web: bool, caller: str | None, *, cascade: bool = False):
        self.engine = engine
        self.entity = entity
        self.values = values          # the row as it will be stored (on delete: as it was)
        self.targets = targets        # lookup column -> table it points into
        self.old = old                # the stored row before an update (None on create)
        self.changed = changed        # the columns this write names, in stored form
        self.row_id = row_id
        self.web = web
        self.caller = caller
        self.cascade = cascade        # a delete that follows the parent's delete

    @property
    def creating(self) -> bool:
        return self.old is None

    def touched(self, *names: str) -> bool:
        """A create, or an update naming any of these columns."""
        return self.creating or any(name in self.changed for name in names)

    def set(self, name: str, value, target: str | None = None) -> None:
        self.values[name] = value
        if target is not None and value is not None:
            self.targets[name] = target
        elif value is None:
            self.targets.pop(name, None)


class TableRules:
    def prepare(self, change: Change) -> None:
        pass

    def after_write(self, change: Change, row: Row) -> None:
        pass

    def before_delete(self, change: Change) -> None:
        pass

    def after_delete(self, change: Change) -> None:
        pass


def required(entity: str, name: str) -> DataverseError:
    return errors.invalid_argument(
        f"A value for the required attribute '{name}' of the '{entity}' entity was not provided.")


# --------------------------------------------------------------------------- currencies

class BaseCurrencyRules(TableRules):
    """A new row without a currency gets the organisation's base currency."""

    def prepare(self, change: Change) -> None:
        if change.creating and change.values.get("transactioncurrencyid") is None:
            change.set("transactioncurrencyid", change.engine.base_currency_id, "transactioncurrency")


# --------------------------------------------------------------------------- webhooks

class ServiceEndpointRules(TableRules):
    """A webhook (contract 8) posts to port 80 (http) or 443 (https) only: Dataverse refuses any other port when the
    endpoint is registered or its URL changed (unless the simulator allows any, for the local stack)."""

    def prepare(self, change: Change) -> None:
        url = change.values.get("url")
        if not change.web or change.values.get("contract") != WEBHOOK_CONTRACT or not url:
            return
        if not (change.creating or change.touched("url", "contract")) or change.engine.any_webhook_port:
            return
        try:
            parts = urlsplit(url)
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            port = None
        if port not in (80, 443):
            raise errors.invalid_argument(f"The webhook URL '{url}' is not supported: registered webhooks support "
                                          f"only port 80 for HTTP and port 443 for HTTPS.")


# --------------------------------------------------------------------------- units

def base_unit_of(engine: Engine, group_id: str | None) -> Row | None:
    return next((row for row in engine.rows("uom") if row.values.get("uomscheduleid") == group_id
                 and row.values.get("isschedulebaseuom")), None) if group_id else None


class BusinessUnitRules(TableRules):
    """Creating a business unit creates its default team: an owner team of the same name, which a user or team
    cannot delete or leave (the root business unit's is made with the organisation)."""

    def after_write(self, change: Change, row: Row) -> None:
        if change.creating and change.row_id != change.engine.root_business_unit_id:
            team = change.engine.system_create("team", {
                "name": change.values["name"], "businessunitid": change.row_id, "teamtype": 0},
                {"businessunitid": "businessunit"}, change.caller)
            change.engine.system_update("team", team.values["teamid"], {"isdefault": True}, caller=change.caller)


class UnitGroupRules(TableRules):
    """Creating a unit group creates its base unit (named `baseuomname`, quantity 1, its own base unit);
    renaming `baseuomname` renames that unit."""

    def after_write(self, change: Change, row: Row) -> None:
        engine, values = change.engine, change.values
        if change.creating:
            unit = engine.system_create("uom", {
                "name": values.get("baseuomname") or "Primary Unit", "quantity": 1.0, "isschedulebaseuom": True,
                "uomscheduleid": change.row_id}, {"uomscheduleid": "uomschedule"}, change.caller)
            unit_id = unit.values["uomid"]
            engine.system_update("uom", unit_id, {"baseuom": unit_id}, {"baseuom": "uom"}, change.caller)
            return
        name = values.get("baseuomname")
        if "baseuomname" in change.changed and name and name != change.old.get("baseuomname"):
            base = base_unit_of(engine, change.row_id)
            if base is not None and base.values.get("name") != name:
                engine.system_update("uom", base.values["uomid"], {"name": name}, caller=change.caller)


class UnitRules(TableRules):
    """A unit belongs to one group and is based on a unit of that group; the group's base unit stays
    quantity 1 and cannot be deleted. Unit names are unique per group (a `UniqueKey` on the table)."""

    def prepare(self, change: Change) -> None:
        engine, values = change.engine, change.values
        group_id = values.get("uomscheduleid")
        is_base = bool(values.get("isschedulebaseuom"))
        if change.creating and not is_base and values.get("baseuom") is None:
            if change.web:
                raise required("uom", "baseuom")
            base = base_unit_of(engine, group_id)
            if base is not None:
                change.set("baseuom", base.values["uomid"], "uom")
        if not change.web:
            return
        if values.get("baseuom") is not None and change.touched("baseuom"):
            if is_base and values["baseuom"] != change.row_id:
                raise DataverseError(400, "0x80043b17", "Do not use a base unit as the value for a primary unit. "
                                                        "The base unit of a unit group is its own base unit.")
            based_on = engine.row("uom", values["baseuom"])
            if not is_base and (based_on is None or based_on.values.get("uomscheduleid") != group_id):
                raise DataverseError(400, "0x80043b0b", "The base unit does not belong to the schedule.")
        if is_base and not change.creating and "quantity" in change.changed and values.get("quantity") != 1.0:
            raise DataverseError(400, "0x80043b18",
                                 "Do not modify the Quantity field when you update the primary unit.")

    def before_delete(self, change: Change) -> None:
        if change.web and not change.cascade and change.values.get("isschedulebaseuom"):
            raise DataverseError(400, "0x80043b03", "The base unit of a schedule cannot be deleted.")


# --------------------------------------------------------------------------- products and prices

ACTIVE, RETIRED, DRAFT, UNDER_REVISION = 0, 1, 2, 3
PRODUCT_TRANSITIONS = {
    (DRAFT, ACTIVE),                 # publish
    (ACTIVE, RETIRED),               # retire
    (ACTIVE, UNDER_REVISION),        # revise
    (UNDER_REVISION, ACTIVE),        # publish the revision, or revert
    (UNDER_REVISION, RETIRED),       # retire
    (RETIRED, ACTIVE),               # activate a retired product
}


def product_transition_error(name: str, current: int, wanted: int) -> DataverseError:
    """The service's error for a state change the product lifecycle does not allow (apis.md A.11)."""
    if current == wanted:
        code, message = {
            ACTIVE: ("0x8004F982", "Product is already in Active State."),
            RETIRED: ("0x8004F980", "Product is already in Retired State."),
            DRAFT: ("0x8004F981", "Product is already in Draft State."),
        }.get(current, ("0x8004F913", "Product is already Under Revision."))
    elif wanted == DRAFT:
        code, message = (("0x8004F979", "It is not possible to move product from Retired to Draft State.")
                         if current == RETIRED else
                         ("0x8004F912", "You can't set a published product to the draft state."))
    elif wanted == RETIRED:
        code, message = ("0x8004F978", (f"You can't retire this product because {name} is in draft state. "
                                        f"A product should be in Active/ Under Revision state for retiring."))
    else:
        code, message = ("0x8004F913", "You can't revise a draft or a retired product.")
    return DataverseError(400, code, message)


class ProductRules(TableRules):
    """New products start in Draft; state changes follow the product lifecycle (publish, revise, retire,
    activate). The default unit must belong to the product's unit group (which it fills when empty)."""

    def prepare(self, change: Change) -> None:
        engine, values = change.engine, change.values
        if change.web and "statecode" in change.changed:
            current = DRAFT if change.creating else change.old.get("statecode")
            wanted = values.get("statecode")
            if not (change.creating and wanted == DRAFT) and (current, wanted) not in PRODUCT_TRANSITIONS:
                raise product_transition_error(values.get("name") or values.get("productnumber") or "the product",
                                               current, wanted)
        if change.touched("defaultuomid", "defaultuomscheduleid"):
            unit = engine.row("uom", values.get("defaultuomid"))
            if unit is not None:
                group_id = unit.values.get("uomscheduleid")
                if values.get("defaultuomscheduleid") is None:
                    change.set("defaultuomscheduleid", group_id, "uomschedule")
                elif group_id != values["defaultuomscheduleid"] and change.web:
                    raise DataverseError(400, "0x80043b14", "The specified unit is not valid for this product: "
                                                            "the default unit must belong to the product's unit group.")


class PriceListItemRules(TableRules):
    """A price list item copies the product number and unit group from its product, prices a unit of that
    group, and takes the price list's currency. Product + unit is unique per price list (a `UniqueKey`)."""

    def prepare(self, change: Change) -> None:
        engine, values = change.engine, change.values
        product = engine.row("product", values.get("productid"))
        if change.touched("productid"):
            change.set("productnumber", product.values.get("productnumber") if product is not None else None)
            change.set("uomscheduleid", product.values.get("defaultuomscheduleid") if product is not None else None,
                       "uomschedule")
        if change.web and product is not None and values.get("uomid") and change.touched("productid", "uomid"):
            group_id = product.values.get("defaultuomscheduleid")
            if group_id is None:
                raise DataverseError(400, "0x80043b13", "The unit schedule id of the product is missing.")
            unit = engine.row("uom", values["uomid"])
            if unit is None or unit.values.get("uomscheduleid") != group_id:
                raise DataverseError(400, "0x80043b14", "The specified unit is not valid for this product: "
                                                        "it is not a unit of the product's unit group.")
        if values.get("transactioncurrencyid") is None:
            price_list = engine.row("pricelevel", values.get("pricelevelid"))
            if price_list is not None:
                change.set("transactioncurrencyid", price_list.values.get("transactioncurrencyid"),
                           "transactioncurrency")


# --------------------------------------------------------------------------- orders and invoices

ACTIVE_DOCUMENT = 0


def read_only() -> DataverseError:
    """CannotUpdateBecauseItIsReadOnly. The service's answer to an update of a closed order or invoice is not
    documented; this code from its error list is the likeliest (a guess)."""
    return DataverseError(400, "0x8004022e", "The object cannot be updated because it is read-only.")


class ClosingMessages:
    """States a plain update may not set: the platform wants the table's own message for them (WinOpportunity,
    FulfillSalesOrder, ...). The wording is the one seen for a won opportunity."""

    def __init__(self, table: str, messages: dict[int, tuple[str, str]], code: str):
        self.table = table            # how the message names the table
        self.messages = messages      # state -> (how the message names it, the message to use)
        self.code = code

    def check(self, change: Change) -> None:
        wanted = change.values.get("statecode")
        if not change.web or "statecode" not in change.changed or wanted not in self.messages:
            return
        if not change.creating and change.old.get("statecode") == wanted:
            return
        state, message = self.messages[wanted]
        raise DataverseError(400, self.code, (
            f"This message can not be used to set the state of {self.table} to {state}. In order to set state of "
            f"{self.table} to {state}, use the {message} message instead."))


class OpportunityRules(BaseCurrencyRules):
    """Won and Lost are reached with WinOpportunity and LoseOpportunity only (CannotUseOpportunitySetStateMessage)."""

    closing = ClosingMessages("opportunity", {1: ("won", "won"), 2: ("lost", "lose")}, "0x80100005")

    def prepare(self, change: Change) -> None:
        super().prepare(change)
        self.closing.check(change)


class DocumentRules(BaseCurrencyRules):
    """Orders and invoices: only Active documents are editable ("Only active orders can be edited"). A closed
    one accepts a change of its state alone: when an update carries columns too, the platform applies them
    first, while the document still has its old state, so they are refused even when the update re-activates
    it. `closing` names states that need their own message; with `through_active`, a closed document reaches
    another closed state or status only by being re-activated first (Business Central re-activates a Sales
    invoice before it changes its paid status; that the service insists on it is a guess)."""

    def __init__(self, closing: ClosingMessages | None = None, through_active: bool = False):
        self.closing = closing
        self.through_active = through_active

    def prepare(self, change: Change) -> None:
        super().prepare(change)
        if self.closing is not None:
            self.closing.check(change)
        if change.creating or not change.web:
            return
        state = change.old.get("statecode")
        if state in (ACTIVE_DOCUMENT, None):
            return
        if any(name not in ("statecode", "statuscode") for name in change.changed):
            raise read_only()
        if self.through_active and change.values.get("statecode") != ACTIVE_DOCUMENT:
            raise read_only()


class LineRules(TableRules):
    """Lines of an order or invoice: an existing product with a unit of its group, or a write-in with a
    description; amounts the client leaves out are computed; lines of a closed document are read-only; the
    parent's `totallineitemamount` is the sum of its lines' `baseamount`."""

    def __init__(self, parent: str):
        self.parent = parent
        self.parent_column = f"{parent}id"

    def _parent(self, change: Change) -> Row | None:
        return change.engine.row(self.parent, change.values.get(self.parent_column))

    def _check_open(self, change: Change, parent: Row | None) -> None:
        if parent is not None and parent.values.get("statecode") not in (0, None):
            label = change.engine.schema[self.parent].state_attr().options.get(parent.values.get("statecode"))
            raise DataverseError(400, "0x80043b09", (
                f"The parent is read only and cannot be edited: the {self.parent} is {label}, so its lines cannot "
                f"be created, changed or deleted."))

    def prepare(self, change: Change) -> None:
        engine, values = change.engine, change.values
        parent = self._parent(change)
        if change.web:
            self._check_open(change, parent)
        if change.creating and values.get("transactioncurrencyid") is None and parent is not None:
            change.set("transactioncurrencyid", parent.values.get("transactioncurrencyid"), "transactioncurrency")
        if change.web and change.touched("productid", "uomid", "isproductoverridden", "productdescription"):
            self._check_product(change)
        if change.creating and values.get("sequencenumber") is None:
            siblings = [row.values.get("sequencenumber") or 0 for row in engine.rows(change.entity.logical_name)
                        if row.values.get(self.parent_column) == values.get(self.parent_column)]
            values["sequencenumber"] = max(siblings, default=0) + 1
        self._amounts(change)

    @staticmethod
    def _check_product(change: Change) -> None:
        engine, values = change.engine, change.values
        product_id = values.get("productid")
        if values.get("isproductoverridden"):
            if product_id is not None:
                raise errors.invalid_argument(
                    "A write-in product (isproductoverridden = true) cannot reference an existing product (productid).")
            if not (values.get("productdescription") or "").strip():
                raise errors.invalid_argument(
                    "A write-in product (isproductoverridden = true) needs its name in productdescription.")
            return
        if product_id is None:
            raise errors.invalid_argument(
                "A line needs an existing product (productid and uomid) or a write-in product "
                "(isproductoverridden = true with a productdescription).")
        if values.get("uomid") is None:
            raise required(change.entity.logical_name, "uomid")
        product = engine.row("product", product_id)
        unit = engine.row("uom", values["uomid"])
        group_id = product.values.get("defaultuomscheduleid") if product is not None else None
        if group_id is not None and (unit is None or unit.values.get("uomscheduleid") != group_id):
            raise DataverseError(400, "0x80043b14", "The specified unit is not valid for this product: it is not a "
                                                    "unit of the product's unit group.")

    @staticmethod
    def _amounts(change: Change) -> None:
        """baseamount = priceperunit × quantity; extendedamount = baseamount − manualdiscountamount
        − volumediscountamount × quantity (a per-unit discount) + tax. Values the write names are kept."""
        values, changed = change.values, change.changed
        places = change.engine.currency_places(values.get("transactioncurrencyid"))
        price, quantity = values.get("priceperunit"), values.get("quantity")
        recomputed = False
        if "baseamount" not in changed and change.touched("priceperunit", "quantity") and (
                price is not None and quantity is not None):
            values["baseamount"] = round(price * quantity, places)
            recomputed = True
        base = values.get("baseamount")
        if base is None or "extendedamount" in changed:
            return
        if recomputed or change.touched("baseamount", "manualdiscountamount", "volumediscountamount", "tax",
                                        "quantity"):
            extended = (base - (values.get("manualdiscountamount") or 0.0)
                        - (values.get("volumediscountamount") or 0.0) * (quantity or 0.0) + (values.get("tax") or 0.0))
            values["extendedamount"] = round(extended, places)

    def _total(self, change: Change, parent_id: str | None) -> None:
        engine = change.engine
        parent = engine.row(self.parent, parent_id)
        if parent is None:
            return
        total = sum(row.values.get("baseamount") or 0.0 for row in engine.rows(change.entity.logical_name)
                    if row.values.get(self.parent_column) == parent_id)
        total = round(total, engine.currency_places(parent.values.get("transactioncurrencyid")))
        if parent.values.get("totallineitemamount") != total:
            engine.system_update(self.parent, parent_id, {"totallineitemamount": total}, caller=change.caller)

    def after_write(self, change: Change, row: Row) -> None:
        self._total(change, change.values.get(self.parent_column))

    def before_delete(self, change: Change) -> None:
        if change.web and not change.cascade:
            self._check_open(change, self._parent(change))

    def after_delete(self, change: Change) -> None:
        self._total(change, change.values.get(self.parent_column))


# --------------------------------------------------------------------------- notes

class NoteRules(TableRules):
    """A note records the table of the row it is attached to (`objecttypecode`) and the size of its
    attachment (`filesize`, bytes of the base64 `documentbody`)."""

    def prepare(self, change: Change) -> None:
        values = change.values
        if change.touched("objectid"):
            values["objecttypecode"] = change.targets.get("objectid") if values.get("objectid") else None
        if change.creating or "documentbody" in change.changed:
            body = values.get("documentbody")
            if body:
                try:
                    values["filesize"] = len(base64.b64decode(body, validate=False))
                except (binascii.Error, ValueError):
                    values["filesize"] = len(body)
                values["isdocument"] = True
            else:
                values["filesize"] = 0
