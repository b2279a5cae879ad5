"""The drill loop: a venue session (``tapeshot sim`` + ``tapeshot run``), runs of intent + fault + restart +
settle + checks, a line per run and a summary. Exit status 0 only when every mismatch count is zero.

Reproducible choices: the fault schedule comes from its own RNG of the seed, and each run's choices (intent,
instants, settings) from an RNG of the seed and the run's number; what the engine and the venue do in response
depends on timing, as it would live.

Speed: the sim serves the recording at ``Options.speed`` x real time (4 by default), so a run's window (exchange
time, as the engine's clock and the venue's order times are) takes a quarter of it in wall time. Every instant the
drill draws inside a window is drawn in exchange time and slept in wall time; the settle and the checks poll
instead of sleeping fixed times. The late-order allowance stays ``ROUND_TRIP_MS`` of exchange time (a quarter of
that in wall time at 4x: stricter than at 1x). The engine is started with the sim's
``--speed``, so its clock (the newest market event's time plus the time since) runs at the replay's pace; the
summary prints the latest order seen relative to its deadline, to show how much room that leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import shutil
import signal
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import aiohttp
import orjson

from engine.chaos import checks
from engine.chaos.faults import (
    BY_NAME,
    CATALOGUE,
    EXTRA_KILLS,
    PROCESS,
    RESET,
    SIM,
    SUBMIT,
    FaultKind,
    Schedule,
    min_window_s,
)
from engine.chaos.procs import ENGINE_READY, SIM_READY, Proc, engine_proc, free_port, sim_proc
from engine.chaos.venue import FaultRefused, VenueView
from engine.control import ControlClient
from engine.dataset.export import export_jsonl
from engine.errors import TapeshotError

CAPS_BPS = (3, 5, 8, 12, 20)
SPEED = 4.0                         # the sim's replay speed, x real time
WINDOW_S = (5, 10)                  # exchange time; the grammar takes 5-60 s (a fault may ask for a longer one)
SETTLE_S = 30.0                     # wall s after the deadline: at most this long for the intent to end
TRAIL_S = 1.0                       # wall s after the settle: checks repeat until clean, the last one counts
POLL_S = 0.05                       # the settle's journal poll
RECHECK_S = 0.2                     # between checks inside TRAIL_S (each reads the venue: rate-limit weight)
SETTLE_NEED_S = 10.0                # wall s a run's settle and check need before the tape ends
KILLS_PER_RUN = (1, 2)              # kill9: this many kills at random instants, a restart after each
ROUND_TRIP_MS = 20                  # engine.execution.round_trip_ms (default): the late-order allowance
MAX_NOTIONAL = Decimal(20000)       # per intent, far inside the 100k x 20 sim account's margin
MAX_POSITION = Decimal(40000)       # beyond this notional, the next intent reduces the position
CONCURRENT = 5
MISMATCHES = (*checks.KINDS, "engine_failures")


@dataclass
class Options:
    """The command line's choices."""

    seed: int = 1
    runs: int | None = None
    minutes: float | None = None
    data: list[str] | None = None
    home: str | None = None
    keep: bool = False
    faults: list[str] | None = None          # only these fault kinds (default: the whole catalogue)
    speed: float = SPEED


@dataclass
class Session:
    """One sim venue and the engine on it; offences already counted in this session."""

    sim: Proc
    engine: Proc
    home: Path
    url: str
    symbol: str
    venue: VenueView
    tape_end_ms: int
    n: int = 0
    armed: str | None = None                                         # the running engine's crash point
    step: Decimal = Decimal("0.001")
    seen: dict[str, set[str]] = field(default_factory=dict)
    requested: dict[str, Decimal] = field(default_factory=dict)      # intent id -> what the drill asked for

    @property
    def journal(self) -> Path:
        return self.home / "sim" / "journal.sqlite"

    @property
    def control(self) -> ControlClient:
        return ControlClient(self.home / "control.sock")


@dataclass
class Run:
    """One run's intent, fault and findings."""

    n: int
    fault: FaultKind
    rng: random.Random
    text: str = ""
    qty: Decimal = Decimal(0)
    window_s: int = 0
    intent_ids: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    orders: int = 0
    fills: int = 0
    killed: int = 0                                                                       # SIGKILLs it dealt
    found: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))    # seen mid-run


class Drill:
    """``await Drill(options).run()`` -> exit status."""

    def __init__(self, opts: Options, say: Callable[[str], None] = print) -> None:
        self.opts = opts
        self.say = say
        self.speed = opts.speed
        kinds = tuple(BY_NAME[k] for k in opts.faults) if opts.faults else CATALOGUE
        self.schedule = Schedule(opts.seed, kinds, extra=0 if opts.faults else EXTRA_KILLS)
        self.root = Path(opts.home).expanduser() if opts.home else Path(tempfile.mkdtemp(prefix="tapeshot-chaos-"))
        self.need_ms = int((max(WINDOW_S[1], 20) + self.speed * SETTLE_NEED_S) * 1000)
        self.totals: Counter = Counter()
        self.kinds: Counter = Counter()
        self.unsupported: Counter = Counter()
        self.unreached: Counter = Counter()
        self.kills = 0
        self.kill_runs = 0
        self.latest: tuple[int, str] | None = None          # the latest order past its deadline: (ms, order)
        self.durations: list[float] = []
        self.spent: Counter = Counter()                        # wall s by phase (sessions, stops, starts, ...)
        self.worst: dict[str, float] = {}
        self.sessions = 0
        self.tape_end: int | None = None
        self.session: Session | None = None
        self.http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()

    # ---- the loop ---------------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run the drill; the exit status (0: every count zero)."""
        t0 = time.monotonic()
        end = t0 + self.opts.minutes * 60 if self.opts.minutes else None
        runs = self.opts.runs if self.opts.runs is not None else (None if end else 10)
        self.root.mkdir(parents=True, exist_ok=True)
        self.say(f"chaos seed {self.opts.seed}: work dir {self.root}, sim at {self.speed:g}x")
        n = 0
        self.http = aiohttp.ClientSession()
        try:
            while (runs is None or n < runs) and (end is None or self._room_for_a_run(end)):
                n += 1
                await self._one(n)
            await self._end_session(final=True)
        finally:
            await self._end_session()
            for task in list(self._tasks):
                task.cancel()
            await self.http.close()
            if not self.opts.keep and not self.opts.home:
                shutil.rmtree(self.root, ignore_errors=True)
        self.say(self._summary(n, time.monotonic() - t0))
        return 0 if not any(self.totals[k] for k in MISMATCHES) else 1

    def _room_for_a_run(self, end: float) -> bool:
        """Whether a typical run (the 90th percentile so far) still fits before ``end``."""
        took = sorted(self.durations)
        need = took[int(len(took) * 0.9)] if took else 0.0
        return time.monotonic() + need < end

    async def _one(self, n: int) -> None:
        kind = self.schedule.next()
        run = Run(n, kind, random.Random(f"chaos/{self.opts.seed}/{n}"))
        t0 = time.monotonic()
        try:
            await self._ensure_session(kind.crash_point)
            await self._execute(run)
        except FaultRefused as exc:
            self.unsupported[kind.name] += 1
            self.schedule.drop(kind)
            self.say(f"run {n:3d} {kind.name:<20} not supported by this sim ({exc}): skipped")
            return
        except (TimeoutError, RuntimeError, OSError, aiohttp.ClientError, TapeshotError) as exc:
            run.counts["engine_failures"] += 1
            run.details.append(f"engine_failures: {type(exc).__name__}: {exc}"[:300])
            await self._end_session()                      # start afresh next run
        self.durations.append(time.monotonic() - t0)
        run.notes.insert(0, f"{self.durations[-1]:.1f}s")
        self.kinds[kind.name] += 1
        self.kill_runs += bool(run.killed)
        self.totals.update(run.counts)
        self.say(self._line(run))
        for d in run.details:
            self.say(f"      ! {d}")

    async def _execute(self, run: Run) -> None:
        s = self.session
        assert s is not None
        kind = run.fault
        setting = kind.sim(run.rng, self.speed) if kind.how == SIM else {}
        await self._choose_intent(run, kind.algos, min_window_s(setting, self.speed))   # (before any fault is set)
        if kind.how == SIM and kind.early:
            await s.venue.set_faults(setting)
        deadline = time.monotonic() + run.window_s / self.speed + SETTLE_S
        if kind.how == SUBMIT:
            await self._concurrent(run)
        elif iid := await self._submit(run.text, run):
            run.intent_ids.append(iid)
        await self._inflict(run, kind, setting)
        async with self._timed("settle"):
            await self._settle(run, deadline)
        async with self._timed("check"):
            await self._check(run)

    @contextlib.asynccontextmanager
    async def _timed(self, phase: str) -> AsyncIterator[None]:
        """Add the wall time of the block to ``phase``."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - t0
            self.spent[phase] += took
            self.worst[phase] = max(self.worst.get(phase, 0.0), took)

    async def _sleep_ex(self, exchange_s: float) -> None:
        """Sleep ``exchange_s`` of exchange time."""
        await asyncio.sleep(exchange_s / self.speed)

    # ---- sessions ---------------------------------------------------------------------------------------------

    async def _ensure_session(self, arm: str | None) -> None:
        """A session with tape left for a run, its engine running and armed at ``arm`` (a crash point) or not."""
        s = self.session
        if s is not None and s.sim.alive():
            st = await s.venue.status()
            if not st.get("finished") and s.tape_end_ms - st["exchange_time_ns"] // 1_000_000 > self.need_ms:
                if not s.engine.alive() or s.armed != arm:
                    await self._restart(arm)
                return
        await self._end_session(final=s is not None and s.sim.alive())
        async with self._timed("session start"):
            await self._start_session(arm)

    async def _start_session(self, arm: str | None) -> None:
        from engine.feed.recording import sample_path, symbols_in

        self.sessions += 1
        home = self.root / f"session{self.sessions}"
        data = self.opts.data or [str(sample_path())]
        if self.tape_end is None:
            self.tape_end = await asyncio.to_thread(tape_end_ms, data)
        port = free_port()
        sim = sim_proc(home, port, self.opts.data, self.opts.seed, self.speed)
        await asyncio.to_thread(sim.start, SIM_READY)
        url = f"http://127.0.0.1:{port}"
        symbol = symbols_in(data)[0]
        venue = VenueView(url, self.http)
        engine = engine_proc(home, url, symbol, arm, self.speed)
        self.session = Session(sim, engine, home, url, symbol, venue, self.tape_end, self.sessions, arm)
        await venue.sync()
        info = await venue.rest.exchange_info()
        self.session.step = step_size(info, symbol)
        await asyncio.to_thread(self.session.engine.start, ENGINE_READY)

    async def _end_session(self, final: bool = False) -> None:
        """Stop the session's processes; ``final``: first a last check (what trailed the last run's)."""
        s = self.session
        if s is None:
            return
        if final and s.engine.alive():
            await self._final_check(s)
        self.session = None
        await asyncio.to_thread(s.engine.stop)
        await asyncio.to_thread(s.sim.stop)

    async def _restart(self, crash_at: str | None = None) -> None:
        """Stop the engine if it runs (SIGTERM), start it again (``crash_at``: armed at that point)."""
        s = self.session
        assert s is not None
        async with self._timed("engine stop"):
            await asyncio.to_thread(s.engine.stop)
        s.engine = engine_proc(s.home, s.url, s.symbol, crash_at, self.speed)
        s.armed = crash_at
        async with self._timed("engine start"):
            await asyncio.to_thread(s.engine.start, ENGINE_READY)

    # ---- the intent ---------------------------------------------------------------------------------------------

    async def _choose_intent(self, run: Run, algos: tuple[str, ...], min_window: int) -> None:
        s = self.session
        rng = run.rng
        mid = await self._mid()
        pos = await s.venue.position(s.symbol)
        side = rng.choice(("long", "short"))
        if abs(pos) * mid > MAX_POSITION:
            side = "short" if pos > 0 else "long"
        lots_max = max(int(MAX_NOTIONAL / mid / s.step), 1)
        lots_min = min(max(int(Decimal(50) / mid / s.step) + 1, 1), lots_max)
        run.qty = rng.randint(lots_min, lots_max) * s.step
        run.window_s = rng.randint(max(WINDOW_S[0], min_window), max(WINDOW_S[1], min_window))
        algo = rng.choice(algos)
        cap = rng.choice(CAPS_BPS)
        run.text = (f"{side} {s.symbol} {run.qty} {run.window_s}s {algo} max {cap}bps "
                    f"-- chaos {self.opts.seed}/{run.n}")

    async def _mid(self) -> Decimal:
        s = self.session
        book = await s.venue.rest.request("GET", "/fapi/v1/depth", {"symbol": s.symbol, "limit": 5}, weight=2)
        return (Decimal(book["bids"][0][0]) + Decimal(book["asks"][0][0])) / 2

    async def _submit(self, text: str, run: Run, timeout_s: float = 10.0) -> str:
        """Send one intent over the control socket; its id once accepted ("" if refused). The rest of its
        progress stream is read by a background task until the report (or the engine's end)."""
        s = self.session
        got: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def follow() -> None:
            with contextlib.suppress(Exception):
                async for line in s.control.intent(text):
                    if not got.done():
                        got.set_result(line.get("intent_id") or "" if "error" not in line else "")
                        if "error" in line:
                            run.notes.append(f"refused: {line['error']}"[:120])
            if not got.done():
                got.set_result("")

        task = asyncio.create_task(follow())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            iid = await asyncio.wait_for(asyncio.shield(got), timeout_s)
        except TimeoutError:
            iid = ""
        if iid:
            s.requested[iid] = run.qty
        return iid

    async def _concurrent(self, run: Run) -> None:
        """Several submits of the intent at once for the same symbol: at most one may be accepted."""
        ids = await asyncio.gather(*(self._submit(run.text, run) for _ in range(CONCURRENT)))
        accepted = [i for i in ids if i]
        run.intent_ids += accepted
        if len(accepted) > 1:
            run.counts["concurrent_accepts"] += len(accepted) - 1
            run.details.append(f"concurrent_accepts: {len(accepted)} of {CONCURRENT} accepted: {accepted}")

    # ---- the fault ----------------------------------------------------------------------------------------------

    async def _inflict(self, run: Run, kind: FaultKind, setting: dict) -> None:
        s = self.session
        if kind.how == SIM and not kind.early:
            await self._sleep_ex(run.rng.uniform(0.1, run.window_s / 2))
            await s.venue.set_faults(setting)
        elif kind.how == PROCESS:
            await self._process_fault(run, kind.name)
        elif kind.crash_point:
            await self._crash_fault(run, kind.crash_point)

    async def _process_fault(self, run: Run, name: str) -> None:
        s = self.session
        if name == "sigterm":
            await self._sleep_ex(run.rng.uniform(0.2, run.window_s * 0.6))
            took = await asyncio.to_thread(s.engine.stop, 15.0)
            run.notes.append("sigterm: exit in " + (f"{took:.1f}s" if took is not None else ">15s, killed"))
            await self._after_shutdown(run)
            await self._restart()
            return
        for _ in range(run.rng.randint(*KILLS_PER_RUN)):          # kill -9 at random instants, restart each time
            await self._sleep_ex(run.rng.uniform(0.0, run.window_s * 0.5))
            s.engine.signal(signal.SIGKILL)
            await asyncio.to_thread(s.engine.wait, 10)
            self.kills += 1
            run.killed += 1
            await self._restart()
        run.notes.append(f"kill -9 x{run.killed}")

    async def _after_shutdown(self, run: Run) -> None:
        """A clean shutdown leaves none of the intent's orders open at the venue and no intent working in the
        journal (checked before the restart, which would tidy up after it)."""
        s = self.session
        ex = await asyncio.to_thread(self._export)
        mine = tuple(f"{i}-" for i in run.intent_ids)
        for o in await s.venue.open_orders(s.symbol):
            if o["clientOrderId"].startswith(mine):
                run.found["orphan_orders"].add(f"order {o['clientOrderId']} left open by the shutdown")
        for item in checks.working_intents(ex):
            run.found["working_intents"].add(f"{item} after the shutdown")

    async def _crash_fault(self, run: Run, point: str) -> None:
        """Wait (bounded) for the armed engine to kill itself, or for the intent to end without reaching the
        point; restart it either way (unarmed)."""
        s = self.session
        end = time.monotonic() + run.window_s / self.speed + 2.0
        polls = 0
        while time.monotonic() < end and s.engine.alive():
            polls += 1
            if polls % 4 == 0 and await asyncio.to_thread(self._ended, run.intent_ids):
                break
            await asyncio.sleep(POLL_S / 2)
        if s.engine.alive():
            self.unreached[point] += 1
            self.schedule.make_up_kill()
            run.notes.append(f"crash point {point} not reached")
        else:
            self.kills += 1
            run.killed += 1
            run.notes.append(f"killed at {point}")
        await self._restart()

    def _ended(self, intent_ids: list[str]) -> bool:
        """Whether every one of ``intent_ids`` is in the journal and none is still active."""
        if not intent_ids or not self.session.journal.exists():
            return False
        intents = self._export().intents
        return all(i in intents and intents[i]["state"] not in checks.ACTIVE_INTENT_STATES for i in intent_ids)

    # ---- settle and check ---------------------------------------------------------------------------------------

    def _export(self) -> checks.Export:
        buf = io.StringIO()
        export_jsonl(self.session.journal, buf)
        return checks.Export.of([orjson.loads(line) for line in buf.getvalue().splitlines()])

    async def _settle(self, run: Run, deadline: float) -> None:
        """Wait (bounded) until no intent is working in the journal, then clear the faults still pending and wait
        out a ban still in force."""
        s = self.session
        while time.monotonic() < deadline:
            if not s.engine.alive():
                run.notes.append(f"engine exited ({s.engine.popen.returncode}); restarted")
                await self._restart()
            if s.journal.exists() and not checks.working_intents(await asyncio.to_thread(self._export)):
                break
            await asyncio.sleep(POLL_S)
        st = await s.venue.set_faults(RESET)
        if st.get("ban_s"):
            await asyncio.sleep(st["ban_s"])

    async def _check(self, run: Run) -> None:
        """Journal against venue, repeated (``RECHECK_S`` apart) while it finds something new, for at most
        ``TRAIL_S``: user events trailing the settle may still reach the journal; what the last check finds
        counts."""
        s = self.session
        end = time.monotonic() + TRAIL_S
        while True:
            found, orders, trades = await self._findings(run.found, run)
            if not self._new(found) or time.monotonic() >= end:
                break
            await asyncio.sleep(RECHECK_S)
        for kind, items in self._new(found).items():
            s.seen.setdefault(kind, set()).update(items)
            run.counts[kind] += len(items)
            run.details += [f"{kind}: {d}" for d in sorted(items)]
        mine = {o["orderId"] for o in orders if any(o["clientOrderId"].startswith(f"{i}-") for i in run.intent_ids)}
        run.orders = len(mine)
        run.fills = sum(1 for t in trades if t["orderId"] in mine)

    async def _findings(self, extra: dict[str, set[str]], run: Run | None = None
                        ) -> tuple[dict[str, set[str]], list[dict], list[dict]]:
        """What the checks find now (with ``extra``, found mid-run), the venue's orders and trades."""
        s = self.session
        ex = await asyncio.to_thread(self._export)
        for iid, intent in ex.intents.items():            # accepted, but the engine died before saying so
            if run is not None and intent["text"] == run.text and iid not in run.intent_ids:
                run.intent_ids.append(iid)
                s.requested[iid] = run.qty
        trades = await s.venue.trades(s.symbol)
        orders = await s.venue.orders(s.symbol, set(ex.orders), set(ex.intents) | set(s.requested), trades)
        state = checks.VenueState(s.symbol, trades, orders, await s.venue.open_orders(s.symbol),
                                  await s.venue.position(s.symbol))
        found = checks.check_all(ex, state, s.requested, ROUND_TRIP_MS)
        for kind, items in extra.items():
            found[kind] = found.get(kind, set()) | items
        self._note_latest(checks.latest_order(ex, state))
        return found, orders, trades

    def _new(self, found: dict[str, set[str]]) -> dict[str, set[str]]:
        """What ``found`` holds that this session has not counted yet."""
        seen = self.session.seen
        return {k: new for k, items in found.items() if (new := items - seen.get(k, set()))}

    def _note_latest(self, latest: tuple[int, str] | None) -> None:
        if latest is not None and (self.latest is None or latest[0] > self.latest[0]):
            self.latest = latest

    async def _final_check(self, s: Session) -> None:
        """The session's last check, after its last run's: anything that trailed it counts too."""
        try:
            await asyncio.sleep(TRAIL_S)
            found, _, _ = await self._findings({})
        except (TimeoutError, RuntimeError, OSError, aiohttp.ClientError, TapeshotError) as exc:
            self.say(f"session {s.n} end: no final check ({type(exc).__name__}: {exc})"[:300])
            return
        new = self._new(found)
        for kind, items in new.items():
            self.totals[kind] += len(items)
            self.say(f"session {s.n} end: {kind} {len(items)}")
            for d in sorted(items):
                self.say(f"      ! {kind}: {d}")

    # ---- output -------------------------------------------------------------------------------------------------

    def _line(self, run: Run) -> str:
        counts = " ".join(f"{k} {run.counts[k]}" for k in MISMATCHES)
        notes = f"  ({'; '.join(run.notes)})" if run.notes else ""
        ids = ",".join(run.intent_ids) or "-"
        return (f"run {run.n:3d} {run.fault.name:<20} {run.text!r} intent {ids} orders {run.orders} "
                f"fills {run.fills} | {counts}{notes}")

    def _summary(self, runs: int, elapsed_s: float) -> str:
        kinds = " ".join(f"{k}={n}" for k, n in sorted(self.kinds.items()))
        unsupported = " ".join(f"{k}={n}" for k, n in sorted(self.unsupported.items())) or "none"
        unreached = " ".join(f"{k}={n}" for k, n in sorted(self.unreached.items())) or "none"
        counts = " ".join(f"{k}={self.totals[k]}" for k in MISMATCHES)
        ok = not any(self.totals[k] for k in MISMATCHES)
        return (f"chaos seed {self.opts.seed}: {runs} runs in {elapsed_s / 60:.1f} min at {self.speed:g}x, "
                f"{self.sessions} venue sessions, {self.kill_runs} kill -9 runs ({self.kills} engine kills)\n"
                f"  faults: {kinds}\n  not supported by this sim: {unsupported}\n"
                f"  crash points not reached: {unreached}\n"
                f"  {self._latest_line()}\n"
                f"  wall time: {self._spent_line()}\n"
                f"  mismatches: {counts}\n  {'PASS' if ok else 'FAIL'}")

    def _spent_line(self) -> str:
        return ", ".join(f"{k} {v:.0f} s (worst {self.worst[k]:.1f})" for k, v in sorted(self.spent.items()))

    def _latest_line(self) -> str:
        """How close to its deadline the latest order reached the venue (exchange time)."""
        if self.latest is None:
            return "latest order: none had a deadline"
        ms, cid = self.latest
        return f"latest order: {ms:+d} ms from its deadline ({cid}; late beyond +{ROUND_TRIP_MS} ms)"


def tape_end_ms(paths: list[str]) -> int:
    """The exchange time (ms) of the recording's last event."""
    from engine.feed.recording import iter_lines

    last = 0
    for ln in iter_lines(paths):
        if ln.raw.startswith(b'{"stream"'):
            last = max(last, _event_ms(ln.raw))
    return last


def _event_ms(raw: bytes) -> int:
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    data = msg.get("data", msg) if isinstance(msg, dict) else {}
    return int(data.get("E") or data.get("T") or 0) if isinstance(data, dict) else 0


def step_size(info: dict, symbol: str) -> Decimal:
    """The LOT_SIZE step of ``symbol`` in an exchangeInfo answer."""
    for sym in info["symbols"]:
        if sym["symbol"] == symbol:
            for f in sym["filters"]:
                if f["filterType"] == "LOT_SIZE":
                    return Decimal(f["stepSize"])
    return Decimal("0.001")
