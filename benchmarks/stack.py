"""The local stack in a process of its own for `make bench`: its admin routes (seed, update, latency,
request counts) and the CPU time of its processes (the simulators, and Azurite's node process under it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

TICKS = os.sysconf("SC_CLK_TCK")
SEED_CHUNK = 5000


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def descendants(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                children.append(int(entry.name))
    return children + [grandchild for child in children for grandchild in descendants(child)]


class BenchStack:
    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="bcsync-bench-"))
        self.settings_file = self.folder / "settings.json"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "simulators", "serve", "--ephemeral", "--folder", str(self.folder),
             "--settings-file", str(self.settings_file)],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "stack.log", "wb"))
        for _ in range(480):
            if (self.folder / "ready").exists():
                break
            if self.process.poll() is not None:
                break
            time.sleep(0.25)
        else:
            self.stop()
            raise SystemExit(f"the stack did not start; see {self.folder / 'stack.log'}")
        if self.process.poll() is not None:
            raise SystemExit(f"the stack stopped; see {self.folder / 'stack.log'}")
        self.info = json.loads((self.folder / "stack.json").read_text())
        self.session = requests.Session()
        self.ca = self.info["ca_file"]  # per request: REQUESTS_CA_BUNDLE would override a session's own
        self.azurite = [pid for pid in descendants(self.process.pid)
                        if b"azurite" in Path(f"/proc/{pid}/cmdline").read_bytes()]

    def base(self, service: str) -> str:
        return self.info["dataverse"] if service == "Dataverse" else self.info["business_central"].split("/v2.0/")[0]

    def admin(self, service: str, path: str, body: dict | None = None) -> dict:
        url = f"{self.base(service)}/_sim/{path}"
        response = self.session.request("POST" if body is not None else "GET", url, json=body, verify=self.ca,
                                        timeout=600)
        response.raise_for_status()
        return response.json()

    def seed(self, service: str, entity: str, rows: list[dict]) -> list[str]:
        ids = []
        for start in range(0, len(rows), SEED_CHUNK):
            ids += self.admin(service, "seed", {"entity": entity, "rows": rows[start:start + SEED_CHUNK]})["ids"]
        return ids

    def rows(self, service: str, entity: str) -> list[dict]:
        return self.admin(service, f"rows/{entity}")["value"]

    def set_latency(self, ms: int) -> None:
        for service in ("Dataverse", "Business Central"):
            self.admin(service, "faults", {"latency_ms": ms})

    def request_counts(self) -> dict[str, dict[str, int]]:
        return {service: self.admin(service, "requests") for service in ("Dataverse", "Business Central")}

    def cpu(self) -> dict[str, float]:
        return {"simulators": cpu_seconds(self.process.pid), "azurite": sum(cpu_seconds(pid) for pid in self.azurite)}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        shutil.rmtree(self.folder, ignore_errors=True)
