"""The KillSwitch's action, and the watchdog thread that carries it out when the event loop cannot.

A kill, in order (``KillAction.run``): trading HALTED (at once, in the C risk gate too); every working intent
cancelled; a cancel-all per symbol at the venue (``DELETE /fapi/v1/allOpenOrders``) confirmed with the open-orders
query and the OMS's orders resolved; optionally the position flattened (``risk.kill_flatten``: ``ioc`` one
reduce-only marketable IOC inside ``kill_flatten_cap_bps``, or ``timed`` an EXIT intent through the timing
machinery inside ``kill_flatten_window_s``); TP/SL placed again for what is left (they are reduce-only
close-position orders and so allowed while halted); then a report of what was cancelled, flattened and failed to
the console and Telegram (the bus, kind ``risk``) and the journal (a ``kill`` decision), counted per trigger
(``engine.metrics.KILLS``).

``Watchdog`` is a thread with its own HTTP connection (``http.client``, requests signed with the engine's
credentials the way ``engine.venues.binance.signing`` does): the loop stamps a heartbeat every 20 ms; when a kill
is pending and the loop has not stamped for ``kill_watchdog_ms``, or the loop has been blocked for
``kill_loop_stall_ms`` while orders work (the ``loop_stall`` trigger), the thread halts the C risk gate and sends
the cancel-all itself, then asks the loop to run the full kill when it wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import orjson

from engine.errors import RiskRefused, TapeshotError, VenueError
from engine.oms.orders import Order
from engine.venues.binance.signing import query_string

log = logging.getLogger(__name__)
MS = 1_000_000


@dataclass
class KillReport:
    """What one kill did: every list holds one line per order or symbol."""

    trigger: str
    reason: str
    user: str
    cancelled: list[str] = field(default_factory=list)
    flattened: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    watchdog: list[dict] = field(default_factory=list)   # the thread's cancel-alls, if it sent any
    took_ms: float = 0.0

    def as_dict(self) -> dict:
        return {"trigger": self.trigger, "reason": self.reason, "user": self.user, "cancelled": self.cancelled,
                "flattened": self.flattened, "failed": self.failed, "watchdog": self.watchdog,
                "took_ms": round(self.took_ms, 1)}

    def text(self) -> str:
        lines = [f"KILL SWITCH ({self.trigger}): trading halted: {self.reason}",
                 f"  cancelled: {', '.join(self.cancelled) or 'nothing open'}",
                 f"  flattened: {', '.join(self.flattened) or 'no'}"]
        if self.watchdog:
            lines.append("  watchdog thread: " + ", ".join(f"{w['symbol']} cancel-all {w['status']} in "
                                                          f"{w['ms']:.0f} ms" for w in self.watchdog))
        if self.failed:
            lines.append(f"  FAILED: {'; '.join(self.failed)}")
        return "\n".join(lines)


class KillAction:
    """Carries out a kill on the event loop; collaborators handed in (see the module docstring)."""

    def __init__(self, cfg: Any, rest: Any, runner: Any, oms: Any, protect: Any, feed: Any,
                 instruments: dict[str, Any], risk: Any, watchdog: Watchdog | None = None) -> None:
        self.cfg, self.rest, self.runner, self.oms, self.protect = cfg, rest, runner, oms, protect
        self.feed, self.instruments, self.risk, self.watchdog = feed, instruments, risk, watchdog
        self._lock = asyncio.Lock()

    async def run(self, report: KillReport) -> KillReport:
        """Cancel everything at the venue, flatten if configured, put TP/SL back; fills ``report``."""
        t0 = time.monotonic()
        async with self._lock:
            self.runner.cancel(None, f"kill switch: {report.reason}")
            await self._cancel_all(report)
            if self.watchdog is not None:
                self.watchdog.done()
                report.watchdog = list(self.watchdog.fired)
            await self._flatten(report)
            await self._protect(report)
        report.took_ms = (time.monotonic() - t0) * 1000
        return report

    async def _cancel_all(self, report: KillReport) -> None:
        before = [o for o in self.oms.orders.values() if o.state.open]
        for sym in sorted(self.instruments):
            try:
                await asyncio.wait_for(self.rest.cancel_all(sym), 3.0)
                still = await asyncio.wait_for(self.rest.open_orders(sym), 3.0)
            except (VenueError, TimeoutError) as exc:
                report.failed.append(f"{sym}: cancel-all not confirmed ({exc or 'timeout'})")
                continue
            report.failed += [f"{sym}: {o.get('clientOrderId')} still open at the venue" for o in still]
        await asyncio.gather(*(self._resolve(o) for o in before))
        report.cancelled += [f"{o.client_order_id} ({o.symbol} {o.purpose} {o.side} {o.qty})"
                             for o in before if o.state.value == "CANCELED"]

    async def _resolve(self, o: Order) -> None:
        with contextlib.suppress(VenueError, TimeoutError):
            await asyncio.wait_for(self.oms.resolve(o, attempts=2), 3.0)

    async def _flatten(self, report: KillReport) -> None:
        mode = self.cfg.kill_flatten
        if mode == "off":
            return
        for sym, pos in list(self.oms.positions.positions.items()):
            if pos.qty == 0 or sym not in self.instruments:
                continue
            try:
                if mode == "ioc":
                    report.flattened.append(await self._flatten_ioc(sym, pos.qty))
                else:
                    report.flattened.append(await self._flatten_timed(sym))
            except (TapeshotError, TimeoutError) as exc:
                report.failed.append(f"{sym}: flatten failed: {exc or 'timeout'}")

    async def _flatten_ioc(self, sym: str, qty: Decimal) -> str:
        """One reduce-only marketable IOC limit inside the cap from the mid; what it filled."""
        inst, sf = self.instruments[sym], self.feed[sym]
        mid = sf.book.mid
        if mid != mid:
            raise RiskRefused("no_price", f"{sym}: no mid to cap the flatten at")
        buy = qty < 0
        cap = self.cfg.kill_flatten_cap_bps / 10_000
        ticks = int(mid * (1 + cap)) if buy else int(mid * (1 - cap)) + 1      # inside the cap
        self.risk.check_fast(sym, buy, float(abs(qty)), ticks * float(inst.tick_size), mid * float(inst.tick_size),
                             float(qty), True)
        cid = f"k{self.runner.run_id}{int(time.monotonic() * 1000) % 10**6:06d}"
        order = Order(cid, sym, "BUY" if buy else "SELL", "LIMIT", abs(qty), inst.ticks_to_price(ticks), "IOC",
                      reduce_only=True, purpose="exit")
        await self.oms.submit(order)
        if order.state.value == "REJECTED":
            raise RiskRefused("venue", f"IOC refused: {order.reason}")
        await self._resolve(order)
        return f"{sym} {order.side} {order.filled}/{abs(qty)} IOC @ <= {inst.ticks_to_price(ticks)}"

    async def _flatten_timed(self, sym: str) -> str:
        """An EXIT intent through the timing machinery inside the short window; what it filled."""
        from engine.intents import parse

        c = self.cfg
        window = int(c.kill_flatten_window_s)
        intent = parse(f"flat {sym} {window}s max {c.kill_flatten_cap_bps:g}bps", {
            "window_s": window, "max_slippage_bps": c.kill_flatten_cap_bps, "algo": "auto",
            "on_deadline": "complete"})
        sub = await self.runner.accept(intent, "killswitch", "killswitch")
        li = self.runner.intents[sub.intent_id]
        end = time.monotonic() + window + 3
        while li.state.live and time.monotonic() < end:
            await asyncio.sleep(0.05)
        r = li.report or {}
        return f"{sym} {r.get('side', '')} {r.get('filled', '?')}/{r.get('requested', '?')} ({sub.intent_id})"

    async def _protect(self, report: KillReport) -> None:
        """The cancel-all took the TP/SL orders too: put back those that still protect a position."""
        for sym in list(self.protect.levels):
            if sym in self.instruments:
                try:
                    await asyncio.wait_for(self.protect.sync_now(sym), 3.0)
                except (TapeshotError, TimeoutError) as exc:
                    report.failed.append(f"{sym}: TP/SL not placed again ({exc or 'timeout'})")


class Watchdog:
    """A thread that can cancel everything at the venue while the event loop is blocked (module docstring).

    Thread-safe entry points: ``request`` (a kill from any thread), ``beat`` (the loop's heartbeat), ``done``
    (the loop carried the kill out). ``fired`` lists the thread's cancel-alls: symbol, HTTP status, open orders
    left, and the milliseconds from the kill request to the venue's answer."""

    def __init__(self, rest_url: str, creds: Any, symbols: list[str], now_ms: Callable[[], int], core: Any,
                 watchdog_ms: int = 300, stall_ms: int = 1000, recv_window_ms: int = 5000) -> None:
        u = urlsplit(rest_url)
        self._conn_args = (u.scheme, u.hostname or "127.0.0.1", u.port, u.path.rstrip("/"))
        self.creds, self.symbols, self.now_ms, self.core = creds, symbols, now_ms, core
        self.watchdog_s, self.stall_s, self.recv_window_ms = watchdog_ms / 1000, stall_ms / 1000, recv_window_ms
        self.beat_at = time.monotonic()
        self.working = False                    # orders or intents were working at the last beat
        self.pending: tuple[str, str, float] | None = None
        self.fired: list[dict] = []
        self.on_kill: Callable[[str, str], None] = lambda trigger, reason: None   # set by the node
        self._fired_for = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tapeshot-watchdog", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def beat(self, working: bool) -> None:
        self.beat_at = time.monotonic()
        self.working = working

    async def heartbeat(self, working: Callable[[], bool], period_s: float = 0.02) -> None:
        """The loop's side: a stamp every ``period_s`` (a blocked loop stops stamping)."""
        while True:
            self.beat(working())
            await asyncio.sleep(period_s)

    def request(self, trigger: str, reason: str, *, from_loop: bool = False) -> None:
        """A kill is wanted: the C risk gate halts now; unless called by the loop's own kill, the loop is asked to
        run it (when it can); the thread cancels at the venue if the loop does not answer in time."""
        with self._lock:
            self.core.state = 2
            if self.pending is None:
                self.pending = (trigger, reason, time.monotonic())
                self.fired = []
        if not from_loop:
            self.on_kill(trigger, reason)

    def done(self) -> None:
        with self._lock:
            self.pending = None

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            now = time.monotonic()
            silent = now - self.beat_at
            if self.pending is None and self.stall_s and self.working and silent >= self.stall_s:
                self.request("loop_stall", f"the event loop has been blocked {silent * 1000:.0f} ms while "
                                           "orders work")
            pending = self.pending
            if pending is not None and pending[2] != self._fired_for and silent >= self.watchdog_s:
                self._fired_for = pending[2]
                log.warning("watchdog: the loop is blocked (%.0f ms): cancel-all from the thread", silent * 1000)
                self.fired = [self._cancel_all(sym, pending[2]) for sym in self.symbols]

    def _cancel_all(self, symbol: str, since: float) -> dict:
        """``DELETE /fapi/v1/allOpenOrders`` then ``GET /fapi/v1/openOrders`` on a connection of its own."""
        try:
            status, _ = self._call("DELETE", "/fapi/v1/allOpenOrders", symbol)
            ms = (time.monotonic() - since) * 1000
            code, still = self._call("GET", "/fapi/v1/openOrders", symbol)
            left = len(still) if code == 200 and isinstance(still, list) else -1
            return {"symbol": symbol, "status": status, "open_after": left, "ms": ms}
        except (OSError, http.client.HTTPException) as exc:
            return {"symbol": symbol, "status": f"failed: {type(exc).__name__}", "open_after": -1,
                    "ms": (time.monotonic() - since) * 1000}

    def _call(self, method: str, path: str, symbol: str) -> tuple[int, Any]:
        scheme, host, port, base = self._conn_args
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        conn = cls(host, port, timeout=2.0)
        try:
            qs = query_string([("symbol", symbol), ("recvWindow", self.recv_window_ms), ("timestamp", self.now_ms())])
            qs += "&signature=" + query_string([("s", self.creds.sign(qs))])[2:]
            conn.request(method, f"{base}{path}?{qs}", headers={"X-MBX-APIKEY": self.creds.api_key})
            resp = conn.getresponse()
            body = resp.read()
            with contextlib.suppress(orjson.JSONDecodeError):
                return resp.status, orjson.loads(body)
            return resp.status, None
        finally:
            conn.close()


def kill_callable(kill: Callable[..., Awaitable[Any]]) -> Callable[[str, str], Awaitable[Any]]:
    """``kill(trigger, reason)`` for the guards, over the cockpit's ``kill(reason, user=, trigger=)``."""
    async def fire(trigger: str, reason: str) -> Any:
        return await kill(reason, user="killswitch", trigger=trigger)
    return fire
