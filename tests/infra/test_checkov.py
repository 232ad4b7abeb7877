"""checkov's Bicep checks pass on infra/: no failed check, and every skipped check is skipped by an
inline comment in the Bicep that gives its reason.

checkov runs from its own virtual environment, .venv/infra (`make infra-tools`, which `make test` depends on);
BCSYNC_CHECKOV names another binary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from .bicep import INFRA, ROOT, bicep_files

CHECKOV = Path(os.environ.get("BCSYNC_CHECKOV", ROOT / ".venv" / "infra" / "bin" / "checkov"))
SKIP_COMMENT = re.compile(r"//\s*checkov:skip=(?P<check>[A-Z0-9_]+)(?::(?P<reason>[^\n]*))?")


def _inline_skips() -> list[tuple[str, str, str]]:
    """(file, check id, reason) of every checkov:skip comment in the Bicep."""
    found = []
    for path in bicep_files():
        for match in SKIP_COMMENT.finditer(path.read_text()):
            found.append((path.name, match.group("check"), (match.group("reason") or "").strip()))
    return found


@pytest.fixture(scope="module")
def report() -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make infra-tools` (make test does it)")
    done = subprocess.run(
        [str(CHECKOV), "--framework", "bicep", "--skip-download", "--directory", str(INFRA), "--output", "json"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode in (0, 1), f"checkov did not run:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"checkov printed no report:\n{done.stderr[-3000:]}"
    data = json.loads(done.stdout)
    assert isinstance(data, dict) and data.get("check_type") == "bicep", f"unexpected checkov report: {str(data)[:500]}"
    return data


def test_checkov_finds_no_failed_check(report):
    failed = report["results"].get("failed_checks", [])
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, "checkov could not parse a Bicep file"
    assert summary["failed"] == 0 and not failed, "checkov failed checks:\n" + "\n".join(
        f"{c['check_id']} {c['check_name']} on {c['resource']} ({c['file_path']}:{c['file_line_range']})"
        for c in failed)
    assert summary["passed"] > 0


def test_checkov_scans_every_resource_kind_that_it_has_checks_for(report):
    scanned = {c["resource"].rsplit(".", 1)[0] for key in ("passed_checks", "skipped_checks")
               for c in report["results"].get(key, [])}
    for kind in ("Microsoft.Web/sites", "Microsoft.Web/serverfarms", "Microsoft.Storage/storageAccounts",
                 "Microsoft.KeyVault/vaults", "Microsoft.Web/sites/config"):
        assert kind in scanned, f"checkov saw no {kind}: is the file still readable to it?"


def test_every_skip_is_an_inline_comment_with_a_reason(report):
    skipped = report["results"].get("skipped_checks", [])
    comments = _inline_skips()
    for file, check, reason in comments:
        assert len(reason) >= 20, f"{file}: checkov:skip={check} needs a one-line reason"
    # checkov honoured each comment: as many skips as comments, check by check
    assert sorted(c["check_id"] for c in skipped) == sorted(check for _, check, _ in comments)
    for result in skipped:
        assert result["check_result"].get("suppress_comment", "No comment provided") != "No comment provided"
