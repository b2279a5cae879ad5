"""The simulated Binance USD-M venue: a deterministic matching core replaying real recordings.

``SimExchange`` (matching) replays a recorded tape (``tape``) and matches our orders against the recorded book with
the queue and latency models of ``models``; accounts, fees and PnL live in ``account``. No I/O besides reading the
recording, no asyncio: the protocol server and the eval harness drive it with explicit exchange time.
"""

from engine.venues.sim.matching import SimExchange
from engine.venues.sim.models import (
    LatencyModel,
    MarketMsg,
    SimBalance,
    SimConfig,
    SimFill,
    SimOrder,
    SimPosition,
    SimReject,
    SimUnavailable,
)
from engine.venues.sim.tape import Tape, TapeEvent, load_tape

__all__ = [
    "LatencyModel",
    "MarketMsg",
    "SimBalance",
    "SimConfig",
    "SimExchange",
    "SimFill",
    "SimOrder",
    "SimPosition",
    "SimReject",
    "SimUnavailable",
    "Tape",
    "TapeEvent",
    "load_tape",
]
