"""The recordings an evaluation runs on, their roles (development / validation), and the true market path.

``MarketPath`` samples the *recorded* book (the venue's view, exchange time) on a fixed grid. It is the oracle:
intent sizes and informed sides are chosen from it, and horizon mids are read from it, but no algorithm ever sees
it (algorithms see only their own latency-delayed feed inside the replay).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.venues.sim import SimExchange
from engine.venues.sim.tape import load_tape

SEC = 1_000_000_000
MS = 1_000_000
DATA_ENV = "TAPESHOT_DATA_DIR"


def shared_dir() -> Path:
    """Where the shared recordings are: ``$TAPESHOT_DATA_DIR``, else ``../shared/data/binance-usdm`` beside the
    checkout this package runs from, else beside the current directory (a ``ConfigError`` names all three when
    none exists; ``--data FILE...`` needs none of them)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    tried = [Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance-usdm",
             Path.cwd().parent / "shared" / "data" / "binance-usdm"]
    for p in tried:
        if p.is_dir():
            return p
    raise ConfigError(f"no recordings found: set {DATA_ENV}, or pass --data FILE... (looked in "
                      f"{', '.join(str(p) for p in tried)})")
DEV_FILES = ("usdm_btcusdt_20230404.dat.gz", "usdm_btcusdt_20230405.dat.gz")
VALIDATION_FILES = (("usdm_btcusdt_20240718.gz", "usdm_btcusdt_20240719.gz"),
                    ("usdm_ethusdt_20240718.gz", "usdm_ethusdt_20240719.gz"))
DEPTH_LEVELS = 5


# a file whose name starts with one of these is held-out data: the recordings themselves and anything cut from them
# (the bundled ``usdm_btcusdt_20240718_sample.gz`` is three minutes of the BTCUSDT validation recording)
VALIDATION_STEMS = tuple(sorted({name.split(".")[0] for pair in VALIDATION_FILES for name in pair}))


def file_role(name: str) -> str:
    """``development``, ``validation`` or ``other`` for one file, by its name: validation when it is one of the
    held-out recordings or named after one (a trimmed or renamed copy), development when it is one of DEV_FILES."""
    name = Path(name).name
    if name.startswith(VALIDATION_STEMS):
        return "validation"
    return "development" if name in DEV_FILES else "other"


def role_of(files: tuple[str, ...]) -> str:
    """The role of a recording (its files in order): ``validation`` when any file is held-out data (a set with
    one validation file in it is not development data), ``development`` for exactly the tuning set, else
    ``other``."""
    roles = [file_role(f) for f in files]
    if "validation" in roles:
        return "validation"
    return "development" if tuple(Path(f).name for f in files) == DEV_FILES else "other"


def refuse_validation(files, what: str) -> None:
    """``ConfigError`` when any of ``files`` is held-out data: nothing is tuned or trained on what it is judged on."""
    for f in files:
        if file_role(str(f)) == "validation":
            raise ConfigError(f"{f} is validation data ({Path(f).name}): {what} on development data "
                              f"({', '.join(DEV_FILES)}) or another recording; validation sets are only scored")


@dataclass(frozen=True)
class DataSet:
    """One recording (its files in order): what every number produced on it is labelled with."""

    files: tuple[str, ...]
    symbol: str
    start_utc: str
    span_s: float
    role: str

    @property
    def label(self) -> str:
        """E.g. ``BTCUSDT 2024-07-18 (validation)``."""
        return f"{self.symbol} {self.start_utc[:10]} ({self.role})"

    def as_json(self) -> dict:
        return {"label": self.label, "files": [Path(f).name for f in self.files], "symbol": self.symbol,
                "start_utc": self.start_utc, "span_s": round(self.span_s, 1), "role": self.role}


def dataset(files: list[str] | tuple[str, ...]) -> DataSet:
    """Describe a recording; it must carry exactly one symbol."""
    files = tuple(str(f) for f in files)
    for f in files:
        if not Path(f).is_file():
            raise ConfigError(f"no such recording: {f}")
    tape = load_tape(list(files))
    if len(tape.symbols) != 1:
        raise ConfigError(f"eval needs one symbol per recording, {files} has {list(tape.symbols)}")
    t0, t1 = tape.events[0].time_ns, tape.events[-1].time_ns
    start = dt.datetime.fromtimestamp(t0 / SEC, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return DataSet(files, tape.symbols[0], start, (t1 - t0) / SEC, role_of(files))


@dataclass
class MarketPath:
    """The recorded book on a ``step_ns`` grid from the first synced instant: touch, sizes, top-N depth."""

    symbol: str
    t: np.ndarray            # int64 ns, exchange time
    bid: np.ndarray          # ticks
    ask: np.ndarray
    bid_qty: np.ndarray      # lots at the touch
    ask_qty: np.ndarray
    bid_depth: np.ndarray    # lots in the best DEPTH_LEVELS levels
    ask_depth: np.ndarray
    end_ns: int
    inst: Any = None         # the symbol's Instrument (the venue's table, else inferred from the tape)

    @property
    def mid(self) -> np.ndarray:
        return (self.bid + self.ask) / 2.0

    def index(self, t_ns: int) -> int:
        """Index of the last sample at or before ``t_ns`` (clamped to the path)."""
        i = int(np.searchsorted(self.t, t_ns, side="right")) - 1
        return min(max(i, 0), len(self.t) - 1)

    def mid_at(self, t_ns: int) -> float:
        i = self.index(t_ns)
        return float(self.bid[i] + self.ask[i]) / 2.0

    def far_depth(self, t_ns: int, buy: bool) -> int:
        """Lots in the best levels of the side a buy (asks) or a sell (bids) would take."""
        i = self.index(t_ns)
        return int(self.ask_depth[i] if buy else self.bid_depth[i])


def market_path(files: tuple[str, ...], step_ns: int = 100 * MS) -> MarketPath:
    """Walk the recording through the sim venue (no orders) and sample its recorded book every ``step_ns``."""
    ex = SimExchange(list(files))
    sym = ex.tape.symbols[0]
    t, end = ex.tape.events[0].time_ns, ex.tape.events[-1].time_ns
    rows: list[tuple[int, ...]] = []
    while t <= end:
        ex.advance(t)
        if ex.synced(sym):
            bids, asks = ex.book(sym, 0, DEPTH_LEVELS, served=False), ex.book(sym, 1, DEPTH_LEVELS, served=False)
            if bids and asks:
                rows.append((t, bids[0][0], asks[0][0], bids[0][1], asks[0][1], sum(q for _, q in bids),
                             sum(q for _, q in asks)))
        t += step_ns
    if not rows:
        raise ConfigError(f"{files}: the book never synced")
    a = np.array(rows, dtype=np.int64)
    return MarketPath(sym, a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5], a[:, 6], int(end),
                      ex.instruments[sym])
