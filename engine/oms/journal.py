"""The journal: intents, orders, every state change, fills, decisions, in SQLite (WAL), off the hot path.

The engine only enqueues (a ``SimpleQueue.put``); one writer thread executes and commits in batches. ``sync()``
returns once everything enqueued before it is committed: the engine awaits it before it reports anything as
done, so nothing reported can be lost by a crash. ``synchronous=FULL`` by default (durable against power loss as
well as ``kill -9``). Decimals are stored as text (exact); fills are unique by (symbol, trade id), so a
duplicated event can never count twice. Positions are not stored: they are rebuilt from the fills on load.

A journal belongs to one engine at a time (``lock``) and to one venue: its ``venue`` key names it
(``venue_id``). ``claim`` runs before the engine loads a journal: it refuses another venue's journal and moves
aside the journal of an earlier sim session.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from engine.affinity import pin_thread
from engine.errors import ConfigError, StateError
from engine.oms.orders import Fill, Order, OState
from engine.oms.positions import Book

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, source TEXT, text TEXT, data TEXT NOT NULL,
    state TEXT NOT NULL, report TEXT, updated_ms INTEGER);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY, intent_id TEXT, symbol TEXT NOT NULL, side TEXT NOT NULL, type TEXT NOT NULL,
    qty TEXT NOT NULL, price TEXT, tif TEXT, stop_price TEXT, reduce_only INTEGER, close_position INTEGER,
    purpose TEXT, state TEXT NOT NULL, venue_order_id INTEGER, filled TEXT, notional TEXT, fees TEXT,
    created_ms INTEGER, updated_ms INTEGER, reason TEXT);
CREATE TABLE IF NOT EXISTS order_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, client_order_id TEXT NOT NULL, time_ms INTEGER, event TEXT NOT NULL,
    state TEXT NOT NULL, detail TEXT);
CREATE TABLE IF NOT EXISTS fills (
    symbol TEXT NOT NULL, trade_id INTEGER NOT NULL, client_order_id TEXT NOT NULL, side TEXT NOT NULL,
    price TEXT NOT NULL, qty TEXT NOT NULL, fee TEXT NOT NULL, maker INTEGER NOT NULL, time_ms INTEGER NOT NULL,
    PRIMARY KEY (symbol, trade_id));
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, intent_id TEXT, time_ms INTEGER, kind TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, time_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (
    intent_id TEXT NOT NULL, anchor TEXT NOT NULL, h_s INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT,
    due_ms INTEGER, anchor_mid TEXT, status TEXT NOT NULL, reason TEXT, observed_ms INTEGER, mid TEXT,
    PRIMARY KEY (intent_id, anchor, h_s));
CREATE INDEX IF NOT EXISTS outcomes_by_status ON outcomes(status);
CREATE INDEX IF NOT EXISTS orders_by_intent ON orders(intent_id);
CREATE INDEX IF NOT EXISTS decisions_by_intent ON decisions(intent_id);
"""


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"not journalable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    return orjson.dumps(obj, default=_default).decode()


def _s(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


def _d(s: str | None) -> Decimal | None:
    return None if s is None else Decimal(s)


@dataclass
class JournalState:
    """What a restart finds: every intent, every order (with its trade ids), every fill, the positions."""

    intents: dict[str, dict] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    positions: Book = field(default_factory=Book)
    kv: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)      # message key -> the intent it made ("" if none)
    outcomes_pending: list[dict] = field(default_factory=list)   # horizons not resolved yet (engine.dataset)


class Journal:
    def __init__(self, path: str | Path, synchronous: str = "FULL", cpus: set[int] | None = None) -> None:
        """``cpus``: where the writer thread runs (``engine.affinity``; None: wherever it is started)."""
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous
        self.cpus = cpus
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.failed: BaseException | None = None
        self.writes = 0
        self.commits = 0
        with contextlib.closing(self._connect()) as conn:
            conn.executescript(SCHEMA)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise StateError(f"journal {path} has schema {version}, this engine reads {SCHEMA_VERSION}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        """A connection in WAL mode; the journal file (and so its -wal and -shm, which SQLite creates with the
        database's mode) is 0600: the intents, rationales and fills are the trader's alone."""
        private_files(self.path)
        with private_umask():
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    # ---- the writer thread ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        pin_thread(self.cpus)
        conn = self._connect()
        try:
            while True:
                batch = [self._q.get()]
                while True:
                    try:
                        batch.append(self._q.get_nowait())
                    except queue.Empty:
                        break
                if not self._write(conn, batch):
                    return
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list) -> bool:
        barriers, stop = [], False
        try:
            conn.execute("BEGIN")
            for op in batch:
                if op is None:
                    stop = True
                elif isinstance(op, concurrent.futures.Future):
                    barriers.append(op)
                else:
                    conn.execute(*op)
                    self.writes += 1
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            log.error("journal write failed: %s", exc)
            self.failed = exc
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for b in barriers:
                if b.set_running_or_notify_cancel():            # a waiter that gave up (cancelled) is skipped
                    b.set_exception(StateError(f"journal write failed: {exc}"))
            return not stop
        for b in barriers:
            if b.set_running_or_notify_cancel():                # else the writer thread would die on it
                b.set_result(None)
        return not stop

    def _put(self, sql: str, params: tuple) -> None:
        if self.failed is not None:
            raise StateError(f"journal is failing ({self.failed}); refusing to continue unjournaled")
        self._q.put((sql, params))

    def flush_future(self) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if self._thread is None:
            fut.set_exception(StateError("journal writer not started"))
        else:
            self._q.put(fut)
        return fut

    async def sync(self) -> None:
        """Wait until everything enqueued so far is committed."""
        await asyncio.wrap_future(self.flush_future())

    def sync_blocking(self, timeout: float | None = 10.0) -> None:
        self.flush_future().result(timeout)

    def close(self) -> None:
        if self._thread is not None:
            self.sync_blocking()
            self._q.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    # ---- records ----------------------------------------------------------------------------------------------

    def intent(self, intent_id: str, created_ms: int, source: str, text: str, data: dict, state: str) -> None:
        self._put("INSERT INTO intents (id, created_ms, source, text, data, state, updated_ms) VALUES "
                  "(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET data=excluded.data, state=excluded.state, "
                  "updated_ms=excluded.updated_ms",
                  (intent_id, created_ms, source, text, dumps(data), state, created_ms))

    def intent_state(self, intent_id: str, state: str, now_ms: int, report: dict | None = None) -> None:
        self._put("UPDATE intents SET state=?, updated_ms=?, report=COALESCE(?, report) WHERE id=?",
                  (state, now_ms, dumps(report) if report is not None else None, intent_id))

    def order(self, o: Order) -> None:
        self._put("INSERT INTO orders (client_order_id, intent_id, symbol, side, type, qty, price, tif, stop_price, "
                  "reduce_only, close_position, purpose, state, venue_order_id, filled, notional, fees, created_ms, "
                  "updated_ms, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(client_order_id) "
                  "DO UPDATE SET state=excluded.state, venue_order_id=excluded.venue_order_id, "
                  "filled=excluded.filled, notional=excluded.notional, fees=excluded.fees, "
                  "updated_ms=excluded.updated_ms, reason=excluded.reason",
                  (o.client_order_id, o.intent_id, o.symbol, o.side, o.type, str(o.qty), _s(o.price), o.tif,
                   _s(o.stop_price), int(o.reduce_only), int(o.close_position), o.purpose, o.state.value,
                   o.venue_order_id, str(o.filled), str(o.notional), str(o.fees), o.created_ms, o.updated_ms,
                   o.reason))

    def order_event(self, client_order_id: str, time_ms: int, event: str, state: str,
                    detail: dict | None = None) -> None:
        self._put("INSERT INTO order_events (client_order_id, time_ms, event, state, detail) VALUES (?,?,?,?,?)",
                  (client_order_id, time_ms, event, state, dumps(detail) if detail else None))

    def fill(self, f: Fill) -> None:
        self._put("INSERT OR IGNORE INTO fills (symbol, trade_id, client_order_id, side, price, qty, fee, maker, "
                  "time_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                  (f.symbol, f.trade_id, f.client_order_id, f.side, str(f.price), str(f.qty), str(f.fee),
                   int(f.maker), f.time_ms))

    def decision(self, intent_id: str | None, time_ms: int, kind: str, data: dict) -> None:
        self._put("INSERT INTO decisions (intent_id, time_ms, kind, data) VALUES (?,?,?,?)",
                  (intent_id, time_ms, kind, dumps(data)))

    def outcome_plan(self, intent_id: str, symbol: str, side: str, anchor: str, rows: list[tuple[int, int | None]],
                     anchor_mid: str | None, status: str = "pending", reason: str = "") -> None:
        """An intent's horizons after ``anchor`` (``engine.dataset.outcomes``): ``rows`` of (h_s, due_ms),
        inserted ``status`` (pending, or n/a); never overwrites one already there."""
        for h_s, due_ms in rows:
            self._put("INSERT OR IGNORE INTO outcomes (intent_id, anchor, h_s, symbol, side, due_ms, anchor_mid, "
                      "status, reason) VALUES (?,?,?,?,?,?,?,?,?)",
                      (intent_id, anchor, h_s, symbol, side, due_ms, anchor_mid, status, reason))

    def outcome(self, intent_id: str, anchor: str, h_s: int, status: str, observed_ms: int | None = None,
                mid: str | None = None, reason: str = "") -> None:
        """A pending horizon resolved: ``observed`` (the mid at ``observed_ms``) or ``missing`` (why)."""
        self._put("UPDATE outcomes SET status=?, observed_ms=?, mid=?, reason=? WHERE intent_id=? AND anchor=? "
                  "AND h_s=? AND status='pending'", (status, observed_ms, mid, reason, intent_id, anchor, h_s))

    def seen(self, key: str, time_ms: int) -> None:
        """A handled message key (a Telegram update id): it is not handled again, even after a restart."""
        self._put("INSERT OR IGNORE INTO seen (key, time_ms) VALUES (?, ?)", (key, time_ms))

    def kv_set(self, key: str, value: Any) -> None:
        self._put("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                  (key, dumps(value)))

    # ---- reading ----------------------------------------------------------------------------------------------

    def load(self) -> JournalState:
        """Everything needed to resume after a crash (safe while the writer runs: WAL readers see commits)."""
        st = JournalState()
        with contextlib.closing(self._connect()) as conn:
            conn.row_factory = sqlite3.Row
            for r in conn.execute("SELECT * FROM intents ORDER BY created_ms"):
                st.intents[r["id"]] = {**dict(r), "data": orjson.loads(r["data"]),
                                       "report": orjson.loads(r["report"]) if r["report"] else None}
            for r in conn.execute("SELECT * FROM orders ORDER BY created_ms"):
                st.orders[r["client_order_id"]] = _order(r)
            for r in conn.execute("SELECT * FROM fills ORDER BY time_ms, trade_id"):
                f = Fill(r["trade_id"], r["client_order_id"], r["symbol"], r["side"], Decimal(r["price"]),
                         Decimal(r["qty"]), Decimal(r["fee"]), bool(r["maker"]), r["time_ms"])
                st.fills.append(f)
                st.positions.apply(f.symbol, f.side, f.price, f.qty, f.fee)
                if f.client_order_id in st.orders:
                    st.orders[f.client_order_id].trade_ids.add(f.trade_id)
            for r in conn.execute("SELECT key, value FROM kv"):
                st.kv[r["key"]] = orjson.loads(r["value"])
            for r in conn.execute("SELECT key FROM seen"):
                st.keys[r["key"]] = ""
            st.outcomes_pending = [dict(r) for r in conn.execute(
                "SELECT * FROM outcomes WHERE status='pending' ORDER BY due_ms")]
        for iid, row in st.intents.items():                 # an intent's key is in its own row: one commit
            if row["data"].get("key"):
                st.keys[row["data"]["key"]] = iid
        return st

    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        """Read-only queries for tools (``tapeshot journal``)."""
        with contextlib.closing(self._connect()) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, params)]


EMBEDDED_SIM = "sim (embedded)"
KEEP_ARCHIVED = 20


def venue_id(rest_url: str, sim: bool, embedded: bool) -> str:
    """What a journal is marked with: the REST base URL of a real venue, ``sim <url>`` for a sim venue."""
    return EMBEDDED_SIM if embedded else f"sim {rest_url.rstrip('/')}" if sim else rest_url.rstrip("/")


def _sim(venue: str) -> bool:
    return venue.startswith("sim ")


FILE_MODE = 0o600


@contextlib.contextmanager
def private_umask() -> Any:
    """``umask 077`` while files are created (process-wide: held only around the creating call)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def private_files(path: Path) -> None:
    """Create the journal at ``path`` with mode 0600 if missing; its existing -wal, -shm and the file itself
    opened to group or others (an older engine made them 0644) go back to 0600."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        _chmod_private(p)


def _chmod_private(path: Path) -> None:
    """``chmod 600`` a file of ours that group or others can reach; not ours: a warning (nothing to do)."""
    try:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, FILE_MODE)
    except FileNotFoundError:
        return
    except PermissionError:
        log.warning("%s is open to other users and not ours to chmod", path)


def lock(path: str | Path) -> int:
    """Hold the journal at ``path`` for this process: an exclusive ``flock`` on ``<journal>.lock``, which the
    kernel drops when the process ends (``kill -9`` included). A second engine on the same journal would
    reconcile the first one's live orders as a crashed run's; it gets a ``ConfigError`` instead. Returns the
    descriptor: closing it lets go."""
    from engine.keys import make_private_dir

    path = Path(path)
    make_private_dir(path.parent)
    with private_umask():
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"another engine is running on the journal {path}: one engine per journal") from None
    return fd


def owner(path: str | Path) -> tuple[str | None, bool]:
    """The venue a journal file belongs to (None: not marked) and whether it holds anything (orders, fills,
    intents)."""
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                return None, False
            if not {"kv", "orders", "fills", "intents"} <= tables:
                raise StateError(f"{path} is not a Tapeshot journal")
            row = conn.execute("SELECT value FROM kv WHERE key='venue'").fetchone()
            used = any(conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in ("orders", "fills", "intents"))
    except sqlite3.DatabaseError as exc:
        raise StateError(f"cannot read the journal {path}: {exc}") from None
    return (orjson.loads(row[0]) if row else None), used


def claim(path: str | Path, venue: str) -> Path | None:
    """Make the journal at ``path`` ``venue``'s before it is loaded; returns where an earlier sim session's
    journal was moved, if one was.

    - no file, an empty one, or one marked for ``venue`` (not the embedded sim): kept, the engine resumes it;
    - an unmarked journal with content, for a real venue: kept (journals written before the mark existed);
    - for a sim venue, another sim session's journal (always, for the embedded one: its orders and positions
      ended with its run) is archived beside it as ``journal-<time>.sqlite``, the newest 20 kept;
    - anything else belongs to another venue (a real account's journal is never moved): ``ConfigError``."""
    path = Path(path)
    if not path.exists():
        return None
    private_files(path)
    marked, used = owner(path)
    if (not used and marked is None) or marked == venue != EMBEDDED_SIM:
        return None
    if _sim(venue):
        if marked is not None and _sim(marked):
            return archive(path)
    elif marked is None:
        return None
    held = ("a journal not marked with its venue" if marked is None else
            f"the journal of {'an earlier ' if _sim(marked) else ''}{marked}")
    raise ConfigError(f"{path} holds {held}, not {venue}'s: give this venue its own journal "
                      "(engine.journal or --home), or move that file away")


def archive(path: Path) -> Path:
    """Move a journal (after folding its WAL into it) to ``journal-<modified time>.sqlite`` beside it (0600)."""
    private_files(path)
    with private_umask(), contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")             # no -wal / -shm left behind to mismatch
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    dest = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
    n = 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.stem}-{stamp}-{n}{path.suffix}")
    os.replace(path, dest)
    _chmod_private(dest)
    for old in sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))[:-KEEP_ARCHIVED]:
        old.unlink()
    return dest


def _order(r: sqlite3.Row) -> Order:
    return Order(
        client_order_id=r["client_order_id"], symbol=r["symbol"], side=r["side"], type=r["type"],
        qty=Decimal(r["qty"]), price=_d(r["price"]), tif=r["tif"], stop_price=_d(r["stop_price"]),
        reduce_only=bool(r["reduce_only"]), close_position=bool(r["close_position"]), intent_id=r["intent_id"],
        purpose=r["purpose"] or "entry", state=OState(r["state"]), venue_order_id=r["venue_order_id"],
        filled=Decimal(r["filled"] or "0"), notional=Decimal(r["notional"] or "0"), fees=Decimal(r["fees"] or "0"),
        created_ms=r["created_ms"] or 0, updated_ms=r["updated_ms"] or 0, reason=r["reason"] or "",
    )

