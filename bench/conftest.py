"""The real tape every hot-path benchmark runs on: the bundled sample, or TAPESHOT_BENCH_DATA (files, ':'-separated)."""

from __future__ import annotations

import os

import pytest

from engine import bench


@pytest.fixture(scope="session")
def tape() -> bench.Tape:
    env = os.environ.get("TAPESHOT_BENCH_DATA")
    return bench.load_tape(env.split(":") if env else None)


@pytest.fixture(scope="session")
def synced(tape):
    """(index of the first message after which the books are synced, depth-message mask of the rest)."""
    start = bench._sync_point(tape)
    return start, bench._depth_mask(tape.messages[start:])
