"""The README's configuration table is the one the code declares; its requirements name what the code uses."""

import importlib
import pkgutil
import re
from pathlib import Path

import sync
from shared.settings import settings_table
from sync.mappings import builtin_mappings
from sync.model import BcTable

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_lists_every_setting_as_declared():
    assert settings_table() in README


def business_central_tables() -> list[BcTable]:
    """Every Business Central table the sync package declares (tables, rules, processes) or a mapping uses."""
    found = [m.bc for m in builtin_mappings()]
    for info in pkgutil.walk_packages(sync.__path__, "sync."):
        found += [v for v in vars(importlib.import_module(info.name)).values() if isinstance(v, BcTable)]
    return found


def test_the_requirements_name_every_entity_set_and_page_service_bcsync_uses():
    requirements = re.search(r"^## Requirements\n(.*?)^## ", README, re.S | re.M).group(1)
    tables = business_central_tables()
    services = {t.entity_set for t in tables if t.is_page} | {t.companion.service for t in tables if t.companion}
    entity_sets = {t.entity_set for t in tables if not t.is_page}
    missing = sorted(name for name in entity_sets | services if f"`{name}`" not in requirements)
    assert not missing, f"README *Requirements* does not name {missing}"
