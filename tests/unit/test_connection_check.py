"""The connection check's rules, without services: what the enabled mappings need, how Dataverse privileges
are read, and that a service whose sign-in fails is asked nothing more."""

from __future__ import annotations

import dataclasses

from shared.check import held_privileges
from sync.check import CREATE, READ, WRITE, reach, run_checks
from sync.errors import AuthenticationError
from sync.mappings import builtin_mappings
from sync.ports import ApplicationUser


def test_reach_follows_direction_rules_and_processes_of_enabled_mappings_only():
    mappings = {m.name: m for m in builtin_mappings()}
    needed = reach(mappings.values())
    assert needed.crm["account"][1] == {READ, CREATE, WRITE}        # CUSTOMER writes accounts
    assert needed.crm["systemuser"][1] == {READ}                     # SALESPEOPLE only reads users
    assert needed.crm["invoicedetail"][1] == {READ, CREATE, WRITE}   # posted invoice rules write the lines
    assert "CustomerCard" in needed.bc and "salesInvoiceLines" in needed.bc
    alone = reach([dataclasses.replace(m, enabled=m.name == "SALESPEOPLE") for m in mappings.values()])
    assert set(alone.crm) == {"systemuser"} and set(alone.bc) == {"salespeoplePurchasers"}


def test_held_privileges_take_the_widest_depth_and_follow_parents_and_odd_names():
    held = held_privileges([
        {"PrivilegeName": "prvWriteAccount", "Depth": "Basic"},
        {"PrivilegeName": "prvWriteAccount", "Depth": "Global"},
        {"PrivilegeName": "prvAppendToAccount", "Depth": "Local"},
        {"PrivilegeName": "prvReadInvoice", "Depth": 3},
        {"PrivilegeName": "prvReadUser", "Depth": "Deep"},
        {"PrivilegeName": "prvReadUoM", "Depth": "Global"},
    ])
    assert held["account"] == {"Write": "organization", "AppendTo": "business unit"}
    assert held["invoicedetail"] == held["invoice"] == {"Read": "organization"}
    assert held["systemuser"] == {"Read": "parent business unit"} and held["uom"] == {"Read": "organization"}


class RefusingProbe:
    """Every question fails the test except the sign-ins, which are refused."""

    def __init__(self):
        self.asked = []

    def identity(self, side):
        return "the app registration x"

    def sign_in(self, side):
        raise AuthenticationError("Could not sign in: invalid_client: AADSTS7000215 ... Fix: the secret.")

    def storage(self):
        return []

    def __getattr__(self, name):
        def ask(*args):
            self.asked.append(name)
            return ApplicationUser(found=False)
        return ask


def test_a_failed_sign_in_stops_that_service_and_keeps_the_fix_it_carries():
    probe = RefusingProbe()
    report = run_checks(builtin_mappings(), probe)
    assert [f.check for f in report.problems] == ["Dataverse sign-in", "Business Central sign-in"]
    assert all(f.fix == "" and "Fix: the secret." in f.line() for f in report.problems)
    assert probe.asked == [] and not report.ok
