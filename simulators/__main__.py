"""Run the local stack as a process (`make up`), or seed the sample company into a running one.

    python -m simulators serve [--folder .local] [--settings-file local.settings.json]
    python -m simulators seed-sample [--folder .local]
    python -m simulators seed-orders [--folder .local]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from . import sample
from .stack import LocalStack, Ports


def serve(args) -> int:
    folder = Path(args.folder)
    stack = LocalStack(folder, Ports() if args.ephemeral else Ports.documented()).start()
    stack.write_settings_file(Path(args.settings_file))
    (folder / "stack.json").write_text(json.dumps(stack.describe(), indent=2) + "\n")
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    (folder / "ready").write_text("ready\n")
    print(f"local stack ready: settings in {args.settings_file}, details in {folder / 'stack.json'}", flush=True)
    stopped.wait()
    (folder / "ready").unlink(missing_ok=True)
    stack.stop()
    return 0


def seed_sample(args) -> int:
    info = json.loads((Path(args.folder) / "stack.json").read_text())
    counts = sample.seed(sample.AdminClient(info["dataverse"], info["ca_file"]),
                         sample.AdminClient(info["business_central"].split("/v2.0/")[0], info["ca_file"]))
    print("sample company seeded: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def seed_orders(args) -> int:
    info = json.loads((Path(args.folder) / "stack.json").read_text())
    counts = sample.seed_orders(sample.AdminClient(info["dataverse"], info["ca_file"]))
    print("sample orders seeded: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run Azurite and the simulators on the documented ports")
    s.add_argument("--folder", default=".local")
    s.add_argument("--settings-file", default="local.settings.json")
    s.add_argument("--ephemeral", action="store_true", help="any free ports (benchmarks, parallel stacks)")
    s.set_defaults(func=serve)
    s = sub.add_parser("seed-sample", help="seed the sample company into the running stack")
    s.add_argument("--folder", default=".local")
    s.set_defaults(func=seed_sample)
    s = sub.add_parser("seed-orders", help="submit sample sales orders in Sales (after a full synchronisation)")
    s.add_argument("--folder", default=".local")
    s.set_defaults(func=seed_orders)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
