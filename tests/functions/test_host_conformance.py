"""What the Functions host will see: the bindings the decorators produce, and azure-functions-doctor's
diagnosis of the deployable folder with the local.settings.json that `make up` writes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import function_app
from sync.notifications import BC_ROUTE, CRM_ROUTE
from tests.support import functions_of

ROOT = Path(__file__).resolve().parents[2]

# Warnings the doctor gives about this machine, not the project, each with why it is not ours to fix.
ACCEPTED_WARNINGS = {
    "check_venv": "the copy under test has no virtual environment; the project's is .venv",
    "check_func_cli": "Core Tools cannot be installed here (it downloads binaries)",
    "check_func_core_tools_version": "as above",
    "check_native_dependency_risk": "cryptography ships manylinux wheels and Flex Consumption builds on Linux",
    "check_app_insights": "telemetry is optional on the local stack; infra/ sets the connection string",
}


def test_bindings_name_settings_and_levels_the_host_can_resolve():
    bindings = {f.get_function_name(): json.loads(f.get_function_json())["bindings"]
                for f in functions_of(function_app.app)}
    [timer] = bindings["scheduled_sync"]
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "%BCSYNC_SCHEDULE%" and not timer["runOnStartup"]
    [queue] = bindings["run_job"]
    assert queue["queueName"] == "%BCSYNC_QUEUE_NAME%" and queue["connection"] == "AzureWebJobsStorage"
    http = [b[0] for b in bindings.values() if b[0]["type"] == "httpTrigger"]
    # keys mode: read and change; the services' notification receivers are anonymous (their handler checks a key)
    assert http and {b["authLevel"] for b in http} == {"FUNCTION", "ADMIN", "ANONYMOUS"}
    assert {b["route"] for b in http if b["authLevel"] == "ANONYMOUS"} == {BC_ROUTE, CRM_ROUTE}


def deployable_copy(target: Path) -> Path:
    """The files a deployment ships (.funcignore applied), as Core Tools or azd would package them."""
    ignored = [line.strip() for line in (ROOT / ".funcignore").read_text().splitlines() if line.strip()]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        if any(name == i or name.startswith(i.rstrip("/") + "/") for i in ignored) or not (ROOT / name).is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


def test_azure_functions_doctor_finds_nothing_to_fix(stack, tmp_path):
    app = deployable_copy(tmp_path / "app")
    assert (app / "function_app.py").exists() and not (app / "tests").exists()
    stack.write_settings_file(app / "local.settings.json")
    run = subprocess.run([str(Path(sys.executable).parent / "azure-functions-doctor"), "doctor", "--path", str(app),
                          "--profile", "full", "--format", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    findings = {item["rule_id"]: f"{item['status']}: {item.get('value', '')}"
                for section in report["results"] for item in section["items"]
                if item["status"] not in ("pass", "skip")}
    assert report["metadata"]["programming_model"] == "v2"
    unexpected = {rule: text for rule, text in findings.items() if rule not in ACCEPTED_WARNINGS
                  or not text.startswith("warn")}
    assert unexpected == {}
