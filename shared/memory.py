"""How the worker process asks glibc's allocator to keep its memory.

A job's thread, the thread reading its next page and the write and storage pools all allocate a page's worth of
parsed JSON and records. glibc gives each thread that allocates at once an arena of its own (up to eight per
core) and keeps what is freed in each arena for reuse by that arena, so the resident size grows towards the
sum of every arena's high-water mark rather than what is live. Large buffers (a page's answer and its text, tens
of MB at 20,000 rows) are mapped on their own only below a threshold that glibc raises each time one is freed,
after which they too stay in the arenas. Two arenas and a fixed threshold keep the resident size near what
the process holds, at no measurable CPU cost."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

ARENAS = 2
MAPPED_FROM = 1 << 20  # bytes: allocations this large are mapped apart and given back when freed
_M_ARENA_MAX, _M_MMAP_THRESHOLD = -8, -3  # mallopt's parameter numbers (malloc.h)


def keep_memory_compact() -> None:
    """Tunes glibc's malloc for a process with several threads allocating pages; elsewhere (musl, macOS, Windows)
    nothing happens. Arenas made before the call stay, so it is called before jobs start."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return  # no C library found, or one without mallopt: not glibc
    if not (mallopt(_M_ARENA_MAX, ARENAS) and mallopt(_M_MMAP_THRESHOLD, MAPPED_FROM)):
        log.debug("malloc did not take the arena or mapping settings")
