"""CPU placement for the engine's threads: the event loop alone on one core, I/O threads on the others.

The event loop carries the hot path (market bytes to decision to order bytes); the journal's writer thread
commits with ``fsync``, whose work in the kernel and the block driver otherwise lands in the loop core's caches
just before the next decision. Measured on the 2-core development VM (``tapeshot bench``, order path over the
WebSocket API, 1000 orders): p50 ~27.6 µs unpinned, ~22 with the loop on CPU 1 and ~20 on CPU 0.

``cpu_pinning = "auto"`` (``engine`` section): with two or more CPUs allowed, the loop thread takes the one that
has served the fewest device interrupts (``/proc/interrupts``: on the development VM every block-device
completion lands on CPU 1, so the loop goes to CPU 0 and the fsyncing writer beside its disk's interrupts; the
highest CPU on a tie) and I/O threads the rest; with one, nothing is pinned. ``"off"`` leaves placement to the
scheduler (use it when an outer tool, ``taskset``/``CPUAffinity=``, already places the process, or the host is
shared). Threads started later by libraries inherit the loop thread's CPU.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

PINNING_MODES = ("auto", "off")


def plan(mode: str) -> tuple[set[int] | None, set[int] | None]:
    """(CPUs for the event loop thread, CPUs for I/O threads), or (None, None) for no pinning."""
    if mode == "off" or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    irqs = device_interrupts()
    loop = min(reversed(cpus), key=lambda c: irqs.get(c, 0))
    return {loop}, set(cpus) - {loop}


def busy_poll(mode: str, loop_cpus: set[int] | None) -> bool:
    """Whether the event loop polls instead of sleeping while intents work (``engine.busy_poll``): ``on``;
    ``off``; ``auto``: when ``plan`` gave the loop a core of its own, so the polling takes nothing from the
    journal writer or anything else the machine runs there."""
    return mode == "on" or (mode == "auto" and bool(loop_cpus))


class Spinner:
    """Keeps the running event loop polling while ``keep()`` holds: a callback re-queued every loop iteration,
    so the loop asks epoll with a zero timeout instead of sleeping. The core never idles, so the host does not
    take it away between events, and the next event's code, data and the kernel's socket path stay in its
    caches. ``keep`` is checked every 1024 turns, so polling ends within a few ms of it turning false."""

    def __init__(self, keep: Callable[[], bool]) -> None:
        self.keep = keep
        self.spins = 0                     # loop iterations spent polling
        self.running = False

    def start(self) -> None:
        """Start polling (when ``keep()`` holds and it is not already going); from inside the loop."""
        if not self.running and self.keep():
            self.running = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        self.spins += 1
        if (self.spins & 1023) == 0 and not self.keep():
            self.running = False
            return
        asyncio.get_running_loop().call_soon(self._turn)


def device_interrupts(text: str | None = None) -> dict[int, int]:
    """Device interrupts served so far per CPU, from ``/proc/interrupts`` (numbered lines only: timers, IPIs and
    the like are everywhere alike). Empty when the file cannot be read."""
    if text is None:
        try:
            with open("/proc/interrupts") as f:
                text = f.read()
        except OSError:
            return {}
    lines = text.splitlines()
    if not lines:
        return {}
    cols = [int(name[3:]) for name in lines[0].split() if name.startswith("CPU") and name[3:].isdigit()]
    out = dict.fromkeys(cols, 0)
    for line in lines[1:]:
        fields = line.split()
        if not fields or not fields[0].rstrip(":").isdigit():
            continue
        for cpu, value in zip(cols, fields[1:], strict=False):
            if value.isdigit():
                out[cpu] += int(value)
    return out


def pin_thread(cpus: set[int] | None) -> None:
    """Restrict the calling thread (Linux: ``sched_setaffinity(0)`` is per thread) to ``cpus``; None: no change."""
    if not cpus:
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:                      # a container may forbid it: run unpinned rather than not at all
        log.warning("cannot pin a thread to CPUs %s: %s", sorted(cpus), exc)
