"""Named crash points: the places a ``kill -9`` hurts most, reachable on purpose by the chaos drill.

``TAPESHOT_CRASH_AT=NAME[:N]`` in the engine's environment makes the N-th time (default the first) the engine
passes ``reached(NAME)`` a SIGKILL of its own process: no handler, no flush, no ``finally``, exactly what the
kernel does to a process killed from outside. Unset (every real run), ``reached`` is one dict lookup.

The points (``POINTS``): before an order's bytes leave, between the send and the journal's commit, on the
order's acknowledgement, on the first fill of an intent, and while a ladder has orders resting.
"""

from __future__ import annotations

import os
import signal
import time

POINTS = ("before_send", "after_send", "on_ack", "on_fill", "mid_ladder")
# after_send: the order's bytes are given 50 ms to leave the machine before the kill, as in a real crash a few ms
# after the write (killed at once, the kernel resets the socket with the bytes still queued, and nothing is lost)
LINGER_S = {"after_send": 0.05}

_target, _, _count = (os.environ.get("TAPESHOT_CRASH_AT") or "").partition(":")
_left = int(_count) if _count.isdigit() and int(_count) > 0 else 1
_armed = _target in POINTS
ARMED = _armed                 # callers on the hot path test this before calling ``reached`` (unset: one load)


def reached(name: str) -> None:
    """SIGKILL this process when ``name`` is the armed crash point and its count has come round."""
    global _left, _armed
    if not _armed or name != _target:
        return
    _left -= 1
    if _left <= 0:
        _armed = False
        time.sleep(LINGER_S.get(name, 0.0))         # blocks the loop: the journal gets nothing meanwhile
        os.kill(os.getpid(), signal.SIGKILL)
