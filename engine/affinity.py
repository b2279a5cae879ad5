"""CPU placement for the engine's threads: the event loop alone on one core, I/O threads on the others.

The event loop carries the hot path (market bytes to decision to order bytes); the journal's writer thread
commits with ``fsync``, whose work in the kernel and the block driver otherwise lands in the loop core's caches
just before the next decision. Measured on the 2-core development VM (``tapeshot bench``, order path over the
WebSocket API, 1000 orders): p50 ~32 -> ~26 µs with the writer on the other core.

``cpu_pinning = "auto"`` (``engine`` section): with two or more CPUs allowed, the loop thread takes the highest
and I/O threads the rest; with one, nothing is pinned. ``"off"`` leaves placement to the scheduler (use it when
an outer tool, ``taskset``/``CPUAffinity=``, already places the process, or the host is shared). Threads started
later by libraries inherit the loop thread's CPU.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

PINNING_MODES = ("auto", "off")


def plan(mode: str) -> tuple[set[int] | None, set[int] | None]:
    """(CPUs for the event loop thread, CPUs for I/O threads), or (None, None) for no pinning."""
    if mode == "off" or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def pin_thread(cpus: set[int] | None) -> None:
    """Restrict the calling thread (Linux: ``sched_setaffinity(0)`` is per thread) to ``cpus``; None: no change."""
    if not cpus:
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:                      # a container may forbid it: run unpinned rather than not at all
        log.warning("cannot pin a thread to CPUs %s: %s", sorted(cpus), exc)
