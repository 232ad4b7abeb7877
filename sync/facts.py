"""Facts about the services' set-up, kept across runs in the state store.

A scheduled run may start in a worker that ran nothing before (Functions scale to zero between runs), and
each job would read the same set-up again: who bcsync acts as in Dataverse, the Business Central company's
name, its local currency. Such a fact is kept with the time it was read and used while younger than the
time to live; a job reads all kept facts once, in one query, with its other first reads (the passes it runs
within itself share them, KeptFacts).

Reference rows that mappings write or couple (a currency, a price list) are facts only as long as nothing
changes them: a job of a mapping that may change one drops it when it wrote (`MappingRules.stales`), and a fact
found wrong (a request built from it refused as unknown) is dropped, with a note in the job log, so that
the next run reads it afresh.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from .ports import Clock, Fact, StateStore

INTEGRATION_USER = "dataverse.integration-user"  # systemuserid bcsync acts as (WhoAmI)
OWNING_TEAM = "dataverse.owning-team"             # default team of its business unit (team ownership model)
BC_COMPANY_NAME = "bc.company-name"               # addresses the company's published pages
BC_COMPANY_INFORMATION = "bc.company-information"  # local currency code and display name
BC_WRITE_IN_PRODUCT = "bc.write-in-product"       # Sales & Receivables Setup: the write-in item or resource
LCY_CURRENCY = "dataverse.lcy-currency"           # the Sales currency row of the local currency
DEFAULT_PRICE_LIST = "dataverse.default-price-list"  # "<company> Default Price List"
UNIT_MODE = "bcsync.unit-mode"                    # the unit mode found free of the other mode's couplings
PRICING = "bcsync.pricing"                        # the pricing experience found free of the other one's couplings
# facts a request is built from, and what of each a refusal of that request names
REFUSABLE: dict[str, Callable[[Any], str]] = {BC_COMPANY_NAME: str, OWNING_TEAM: str,
                                              LCY_CURRENCY: lambda row: row["id"],
                                              DEFAULT_PRICE_LIST: lambda row: row["id"]}

_running: contextvars.ContextVar["Facts | None"] = contextvars.ContextVar("bcsync_facts", default=None)


class KeptFacts:
    """The kept facts as read for one job and the passes it runs within itself (None: not read yet): what one of them
    saves or drops the others see."""

    def __init__(self):
        self.facts: dict[str, Fact] | None = None


class Facts:
    """The facts one job sees: the kept ones, read once (at the job's start, or when first needed; `kept`, shared with
    the job that runs this one within itself), and those it reads afresh."""

    def __init__(self, state: StateStore, clock: Clock, ttl: dt.timedelta, note: Callable[[str], None],
                 kept: KeptFacts | None = None):
        self.state, self.clock, self.ttl, self.note = state, clock, ttl, note
        self.kept = kept or KeptFacts()
        self._read: set[str] = set()
        self._used = False  # whether this job looked at the kept facts

    def _facts(self) -> dict[str, Fact]:
        self._used = True
        if self.kept.facts is None:
            self.kept.facts = self.state.facts() if self.ttl > dt.timedelta(0) else {}
        return self.kept.facts

    def get(self, name: str, read: Callable[[], Any], fits: Callable[[Any], bool] = lambda value: True) -> Any:
        """The fact `name`: as kept while it is fresh (and `fits` it, where it derives from another fact),
        else `read()` now and kept from now on."""
        fact = self._facts().get(name)
        # read in this job: fresh for the rest of it, so the clock is not asked (a job asks for some per record)
        stale = fact is None or (name not in self._read and self.clock.now() - fact.read_at >= self.ttl)
        if stale or not fits(fact.value):
            now = self.clock.now()
            fact = self._facts()[name] = Fact(read(), now)
            self._read.add(name)  # fresh for the rest of the job, however short the time to live
            if self.ttl > dt.timedelta(0):
                self.state.save_fact(name, fact)
        return fact.value

    def drop(self, names: Sequence[str], why: str = "") -> None:
        """Forget these facts here and in the store, so that they are read afresh; `why` goes to the job log."""
        kept = [name for name in names if name in self._facts()]
        if not kept:
            return
        for name in kept:
            del self._facts()[name]
            self._read.discard(name)
        self.state.drop_facts(kept)
        if why:
            self.note(why)

    def refused(self, message: str) -> list[str]:
        """A service refused a request as unknown or bad: a kept fact it names (a company, a reference row)
        is wrong and dropped. Returns what was dropped, as told in the job log."""
        kept = (self.kept.facts if self._used else None) or {}  # a job that used no fact was not built from one
        told = []
        for name, value in [(n, named(kept[n].value)) for n, named in REFUSABLE.items() if n in kept]:
            if value and value.lower() in message.lower():
                told.append(f"the kept {name} {value!r} was refused, so it is read afresh next time")
                self.drop([name], told[-1])
        return told

    @contextmanager
    def in_use(self) -> Iterator["Facts"]:
        """Makes these the facts the adapters see while a job runs (threads started with the context too)."""
        token = _running.set(self)
        try:
            yield self
        finally:
            _running.reset(token)


def running() -> Facts | None:
    """The running job's facts, for an adapter that needs one to address a service; None outside a job."""
    return _running.get()
