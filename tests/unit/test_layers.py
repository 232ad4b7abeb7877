"""The domain stays pure: no Azure SDK, no HTTP library, no MSAL, no OpenTelemetry in sync/."""

import ast
from pathlib import Path

FORBIDDEN = {"azure", "msal", "requests", "httpx", "aiohttp", "urllib3", "shared", "simulators", "werkzeug",
             "opentelemetry"}


def test_sync_imports_no_adapters():
    offenders = []
    for path in Path(__file__).resolve().parents[2].joinpath("sync").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
