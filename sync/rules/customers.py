"""CUSTOMER: an account deactivated in Sales blocks its customer; a customer blocked in Business Central
deactivates its account.

- Sales -> Business Central, as Business Central does it: an Inactive account blocks its customer with
  Blocked = All, and only when the customer was not blocked at all (a customer blocked for Ship or
  Invoice stays so). Re-activating the account leaves the customer blocked.
- Business Central -> Sales: Blocked = All makes the account Inactive, unblocking it makes it Active
  again; Ship and Invoice leave the account Active. Blocked decides: an account a Sales user re-activates
  while its customer stays blocked is made Inactive again the next time the customer is synchronised
  (to re-activate it, unblock the customer).
- Only a coupled pair crosses these states: an uncoupled blocked customer or inactive account creates
  nothing (as the mapping's filters did), but a coupled one that becomes blocked or inactive is still
  synchronised once more, so that the change reaches the other side. That is why the filters do not name
  Blocked and statecode.
"""

from __future__ import annotations

from typing import Any

from ..model import Direction, Side
from ..ports import Record
from . import IGNORE, MappingRules, RuleContext

ACTIVE, INACTIVE = 0, 1
STATUS_OF = {ACTIVE: 1, INACTIVE: 2}
ALL = "All"


def not_blocked(customer: Record) -> bool:
    return not (customer.values.get("blocked") or "").strip()


class CustomerRules(MappingRules):
    extra_fields = {Side.BC: ("blocked",), Side.CRM: ("statecode", "statuscode")}
    update_only = ("statecode", "statuscode")  # a new account is Active: only a coupled one is deactivated
    source_owned = ("statecode", "statuscode")   # the customer's Blocked decides the account's state

    def accept(self, ctx: RuleContext, row: Record, coupling) -> Any:
        if coupling is not None:
            return None
        if ctx.direction is Direction.TO_CRM:
            return None if not_blocked(row) else IGNORE
        return None if row.values.get("statecode") == ACTIVE else IGNORE

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        if ctx.direction is Direction.TO_CRM:
            state = INACTIVE if row.values.get("blocked") == ALL else ACTIVE
            return {"statecode": state, "statuscode": STATUS_OF[state]}
        if row.values.get("statecode") == INACTIVE and dst_row is not None and not_blocked(dst_row):
            return {"blocked": ALL}
        return {}
