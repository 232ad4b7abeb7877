"""`bcsync serve` for the webhook benchmark: the same command (bcsync's CLI), in a process of its own, that also
writes on SIGUSR1 how many Table Storage requests its app has sent so far, the receivers' and the targeted jobs'
(which only this process knows), in all and by operation, table and partition, as JSON to the file named first:

    python -m benchmarks.served COUNTS_FILE --settings FILE serve --port PORT
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from bcsync.cli import main


def tell(counts: Path) -> None:
    import function_app  # imported by `serve` before it serves

    partial = counts.with_suffix(".partial")
    storage = function_app.services().storage
    partial.write_text(json.dumps({"storage_requests": storage.requests_sent,
                                   "by_purpose": [[*key, n] for key, n in storage.requests_by_purpose.items()]}))
    os.replace(partial, counts)  # the reader never sees half a file


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, lambda *_: tell(Path(sys.argv[1])))
    sys.exit(main(sys.argv[2:]))
