"""The one event loop: uvloop when installed (it is a dependency), asyncio's own otherwise."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        return asyncio.run(coro)
    return uvloop.run(coro)


def freeze_heap() -> float:
    """Collect once, then move every live object into the collector's permanent generation (``gc.freeze``), so
    that no later collection walks the started engine's long-lived state on the event loop. Measured on a
    started node on the embedded venue (~190k tracked objects, 2-vCPU VM): a full collection took 62 ms before
    the freeze and 2 µs after. Call it once everything long-lived exists; returns the collection's ms."""
    t0 = time.perf_counter_ns()
    gc.collect()
    gc.freeze()
    return (time.perf_counter_ns() - t0) / 1e6
