"""Latency over real loopback sockets, for ``tapeshot bench``: market wire to decision, decision to order bytes.

- ``wire_to_decision``: a sender process runs a picows WebSocket server and writes recorded messages to
  the engine's market stream one at a time, stamping ``CLOCK_MONOTONIC`` just before each write; this process
  runs the stream class of the chosen transport on uvloop, the bytes go through ``ext.feed.Feed`` and the
  sniper's fire/hold decision (as in ``engine.bench.msg_to_decision``), and the stamp after the decision minus
  the send stamp is the latency. The receiver acks each message through a pipe and the sender waits for the ack
  and a short gap before the next write, so this measures latency, not queueing. Both processes are pinned to
  one core by default (the issue's condition); ``pin=False`` lets the scheduler place them; ``poll=True`` keeps
  the receiver's loop polling between messages, as ``tapeshot run`` does while an intent works. The sender is
  spawned, not forked: a forked child shares the measuring process's memory copy-on-write, and the receiver's
  first write to each shared page then takes a page fault (about 200 per run, 10-20 µs each on our VM, in
  30-35 of the ~40 messages over 12 µs). That is a cost of the harness, not of the engine, which forks nothing.
- ``order_path``: an algorithm's ``Place`` through the node's placement code (with picows: ``OrderGate.fire``,
  the risk check, rate windows, frame, signature and ``send(2)`` in one C call; with aiohttp: risk, ``Order``,
  OMS, gateway, signing, serialisation) until the request frame's write to the socket returns (stamped in C),
  against the sim venue's WebSocket API on loopback, in-process. Each order is a 1 %-away IOC that expires at
  once; the next goes after the answer.

Medians and 99th percentiles in µs, like ``engine.bench``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import select
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from engine import affinity, bench
from engine.bus import Bus
from engine.intent_runner import IntentRunner
from engine.intents import IntentKind
from engine.lifecycle import IState, LiveIntent
from engine.loop import freeze_heap
from engine.loop import run as run_loop
from engine.node import Node
from engine.venues.binance.transport import (
    DEFAULT,
    KINDS,
    market_stream_class,
    ws_api_class,
)
from strategies.base import BUY, Place

GAP_S = 200e-6               # sender's pause after each ack: the receiver is idle again when the next write comes
ORDER_WARMUP = 20


# ---- wire to decision ------------------------------------------------------------------------------------------


def wire_to_decision(transport: str, messages: list[bytes], n: int, *, instruments: list | None = None,
                     pin: bool = True, gap_s: float = GAP_S, poll: bool = False) -> dict[str, float]:
    """p50/p99 (µs) from a recorded depth message's write in another process to this process's sniper decision.

    ``messages``: a recording's messages in order (``load_tape(...).messages``); the book is synced locally on
    the messages up to the sync point, then the next ``n`` go over the wire and the depth diffs among them are
    measured. ``instruments``: the recording's (default: the bundled sample's). ``poll``: the receiver's loop
    polls (``affinity.Spinner``) instead of sleeping between messages, as ``tapeshot run`` does while an intent
    works."""
    tape = bench.Tape([], messages, instruments if instruments is not None else bench.load_tape(None).instruments)
    start = bench._sync_point(tape)
    wire = messages[start:start + n]
    core = _engine_core() if pin else None
    ctx = multiprocessing.get_context("spawn")       # not fork: see the module's docstring
    stamps = ctx.RawArray("q", len(wire))
    ack_rx, ack_tx = ctx.Pipe(duplex=False)          # raw one-byte acks on the pipe's descriptors
    port_rx, port_tx = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_sender, args=(wire, stamps, ack_rx, port_tx, core, gap_s), daemon=True)
    proc.start()
    try:
        if not port_rx.poll(60):
            raise RuntimeError("latency bench: the sender process did not start its server")
        port = port_rx.recv()
        with _pinned(core):
            received = run_loop(_receive(transport, port, messages[:start], tape.instruments, len(wire),
                                         ack_tx.fileno(), poll))
        proc.join(30)
    finally:
        if proc.is_alive():
            proc.kill()
        for conn in (ack_rx, ack_tx, port_rx, port_tx):
            conn.close()
    lat = np.asarray(received, dtype=np.int64) - np.frombuffer(stamps, dtype=np.int64)
    return bench._pcts(lat[bench._depth_mask(wire)])


def _engine_core() -> int:
    """The core ``tapeshot run`` gives its event loop (``engine.affinity``), or the highest allowed one."""
    loop_cpus, _ = affinity.plan("auto")
    return min(loop_cpus) if loop_cpus else max(os.sched_getaffinity(0))


@contextlib.contextmanager
def _pinned(core: int | None):
    """This process on ``core`` for the block (nothing when None), its previous affinity restored after."""
    if core is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _sender(wire: list[bytes], stamps: Any, ack_rx: Any, port_tx: Any, core: int | None, gap_s: float) -> None:
    """The sender process: a picows server on loopback pushing ``wire`` to the first client, paced by acks."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    run_loop(_serve(wire, stamps, ack_rx.fileno(), port_tx, gap_s))


async def _serve(wire: list[bytes], stamps: Any, ack_r: int, port_tx: Any, gap_s: float) -> None:
    import picows

    loop = asyncio.get_running_loop()
    client: asyncio.Future = loop.create_future()

    class Pusher(picows.WSListener):
        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            if not client.done():
                client.set_result(transport)

    server = await picows.ws_create_server(lambda _request: Pusher(), "127.0.0.1", 0)
    port_tx.send(server.sockets[0].getsockname()[1])
    transport = await asyncio.wait_for(client, 30)
    await asyncio.sleep(0.05)
    sent = _push(transport, wire, ack_r, gap_s)
    stamps[:len(sent)] = sent
    transport.send_close(picows.WSCloseCode.OK)
    await asyncio.sleep(0.05)
    transport.disconnect()
    server.close()


def _push(transport: Any, wire: list[bytes], ack_r: int, gap_s: float) -> list[int]:
    """Write each message (stamped just before the write), wait for the receiver's ack, pause; blocking on
    purpose: nothing else runs in the sender meanwhile."""
    from picows import WSMsgType

    text, clock, sent = WSMsgType.TEXT, time.monotonic_ns, []
    for data in wire:
        time.sleep(gap_s)
        sent.append(clock())
        transport.send(text, data)
        if not select.select([ack_r], [], [], 10.0)[0]:
            break
        os.read(ack_r, 1)
    return sent


class _Receiver:
    """``MarketData.on_raw`` with the sniper's decision as the update handler, stamping after the decision."""

    def __init__(self, feed: Any, decide: Callable[[Any], bool], count: int, ack_w: int) -> None:
        self.feed, self.decide, self.count, self.ack_w = feed, decide, count, ack_w
        self.stamps: list[int] = []
        self.done = asyncio.Event()

    def on_raw(self, data: bytes) -> None:
        if self.feed.on_message(data) > 0:
            self.decide(self.feed.last)
        self.stamps.append(time.monotonic_ns())
        os.write(self.ack_w, b"k")
        if len(self.stamps) == self.count:
            self.done.set()


async def _receive(transport: str, port: int, warmup: list[bytes], instruments: list, count: int,
                   ack_w: int, poll: bool = False) -> list[int]:
    import aiohttp

    from ext.feed import Feed
    from strategies.sniper import SniperTrigger

    feed = Feed(instruments)
    feed.replay(warmup)
    sf = feed.symbols[0]
    rx = _Receiver(feed, SniperTrigger(0, sf.last_event_ns, sf.last_event_ns + 10**15).decide, count, ack_w)
    async with aiohttp.ClientSession() as session:
        stream = market_stream_class(transport)(f"ws://127.0.0.1:{port}", [f"{sf.symbol.lower()}@depth@0ms"],
                                                session, rx.on_raw)
        task = asyncio.create_task(stream.run())
        if poll:
            affinity.Spinner(lambda: not rx.done.is_set()).start()
        try:
            await asyncio.wait_for(rx.done.wait(), 60 + count * 0.01)
        finally:
            await stream.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return rx.stamps


# ---- decision to bytes on the order socket -----------------------------------------------------------------------


def order_path(transport: str, n: int, *, pinning: str = "auto", busy_poll: str = "auto") -> dict[str, float]:
    """p50/p99 (µs) from a ``Place`` entering ``IntentRunner.place`` to the return of the request's write. With picows
    the whole path is synchronous (one ``ext.orders.OrderGate.fire``: risk and the request in C); aiohttp's WebSocket
    API has no synchronous send, so its path includes a task hop. Threads are placed as ``tapeshot run`` places
    them (``engine.affinity``, ``pinning`` as ``engine.cpu_pinning``): the loop on one core, the journal writer
    (which commits with fsync) on the other; the loop busy-polls between orders as it does while an intent works
    (``busy_poll`` as ``engine.busy_poll``: by default when it has a core of its own)."""
    loop_cpus, io_cpus = affinity.plan(pinning)
    with _pinned(min(loop_cpus) if loop_cpus else None):
        return run_loop(_order_path(transport, n, io_cpus, affinity.busy_poll(busy_poll, loop_cpus)))


class _StampWrites:
    """Stands between aiohttp's WebSocket writer and its transport: stamps ``CLOCK_MONOTONIC`` after each write."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.last_write_ns = 0

    def write(self, data: Any) -> None:
        self._inner.write(data)
        self.last_write_ns = time.monotonic_ns()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _write_clock(ws_api: Any) -> Callable[[], int]:
    """A function returning the monotonic time right after the WebSocket API's last frame write."""
    if hasattr(ws_api, "last_write_ns"):
        return lambda: ws_api.last_write_ns
    writer = getattr(getattr(ws_api, "_ws", None), "_writer", None)
    if writer is None or not hasattr(writer, "transport"):
        raise RuntimeError("cannot find aiohttp's WebSocket writer to time its writes")
    writer.transport = stamp = _StampWrites(writer.transport)
    return lambda: stamp.last_write_ns


async def _order_path(transport: str, n: int, io_cpus: set[int] | None, spin: bool) -> dict[str, float]:
    import aiohttp

    from engine.feed.recording import sample_path
    from engine.venues.sim import SimExchange
    from engine.venues.sim.auth import Limits
    from engine.venues.sim.server import SimVenue, SimVenueConfig

    venue = SimVenue(SimExchange([sample_path()]),
                     SimVenueConfig(speed=1000.0, limits=Limits(orders_per_10s=10**6, orders_per_min=10**7)))
    await venue.start()
    await asyncio.wait_for(venue.finished.wait(), 60)          # the tape is replayed: the venue is quiet now
    with tempfile.TemporaryDirectory() as tmp:
        async with aiohttp.ClientSession() as session:
            rig = await _OrderRig.open(transport, venue, session, Path(tmp), io_cpus, spin)
            freeze_heap()                                       # as ``tapeshot run`` does once started
            try:
                ns = [await rig.one(i) for i in range(n + ORDER_WARMUP)]
            finally:
                gc.unfreeze()
                await rig.close()
    await venue.stop()
    return bench._pcts(np.asarray(ns[ORDER_WARMUP:], dtype=np.int64))


class _OrderRig:
    """The node's order-entry objects wired as ``Node.start`` wires them, against the sim venue."""

    def __init__(self, node: Any, li: Any, write_clock: Callable[[], int], answered: dict[str, asyncio.Event]) -> None:
        self.node, self.li, self.write_clock, self.answered = node, li, write_clock, answered

    @classmethod
    async def open(cls, transport: str, venue: Any, session: Any, tmp: Path,
                   io_cpus: set[int] | None = None, spin: bool = False) -> _OrderRig:
        from engine.config import Config
        from engine.feed import make_feed
        from engine.feed.instruments import from_exchange_info
        from engine.keys import Credentials, Secret
        from engine.oms.journal import Journal
        from engine.oms.manager import OrderManager
        from engine.venues.binance.gateway import OrderGateway
        from engine.venues.binance.rest import BinanceRest
        from engine.venues.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET

        creds = Credentials(DEFAULT_API_KEY, Secret(DEFAULT_API_SECRET))
        rest = BinanceRest(venue.rest_url, session, creds)
        await rest.sync_time()
        info = await rest.exchange_info()
        rest.limiter.configure(info.get("rateLimits", []))
        inst = from_exchange_info(info)["BTCUSDT"]
        ws_api = ws_api_class(transport)(venue.ws_api_url, session, creds, rest.now_ms, rest.limiter)
        await ws_api.connect()
        cfg = Config()
        cfg = replace(cfg, risk=replace(cfg.risk, max_orders_per_10s=10**6))
        node = Node(cfg)
        node.feed = _synced_feed(make_feed([inst], cfg))
        sf = node.feed.symbols[0]
        node.clock = lambda: sf.last_event_ns
        journal = Journal(tmp / "journal.sqlite", cpus=io_cpus)
        journal.start()
        answered: dict[str, asyncio.Event] = {}
        node.oms = OrderManager(OrderGateway(rest, ws_api), journal, {inst.symbol: inst},
                                lambda o, f: answered[o.client_order_id].set() if o.state.final else None,
                                rest.now_ms)
        node.ws_api, node.journal = ws_api, journal
        node.runner = IntentRunner(cfg, Bus(), journal, node.oms, node.risk, node.feed, {inst.symbol: inst},
                                   node.clock, "bench", on_armed=node._spinner.start)
        far = SimpleNamespace(spec=SimpleNamespace(deadline_ns=2**62), expire=lambda *a: None)
        li = LiveIntent("bench", SimpleNamespace(kind=IntentKind.ENTER), "bench", "bench", state=IState.WORKING,
                        algo=far, inst=inst, sf=sf, position=node.oms.positions.get(inst.symbol),
                        tracker=SimpleNamespace(orders=[], order_times={}))
        node.runner.active[inst.symbol] = [li]               # a working intent, as the runner sees one
        node.busy_poll = spin
        node._spinner.start()
        return cls(node, li, _write_clock(ws_api), answered)

    async def one(self, i: int) -> int:
        """Place one far IOC through the node's placement path; ns from entry to the write's return."""
        inst, sf = self.li.inst, self.node.feed.symbols[0]
        price = int(sf.book.mid * 0.99)
        act = Place(f"lat{i}", BUY, inst.qty_to_lots(Decimal("0.010")), price, "IOC", tag="snipe")
        self.answered[act.cid] = done = asyncio.Event()
        t0 = time.monotonic_ns()
        self.node.runner.place(self.li, act)
        await asyncio.wait_for(done.wait(), 10)
        written = self.write_clock()
        if written < t0:
            raise RuntimeError(f"order {act.cid} was answered without a write being seen")
        await self.node.journal.sync()             # the journal's thread idle again, as between real decisions
        await asyncio.sleep(0.001)
        return written - t0

    async def close(self) -> None:
        self.node.busy_poll = False
        await self.node.ws_api.close()
        self.node.journal.close()


def _synced_feed(feed: Any) -> Any:
    """The feed with the bundled tape replayed a little past its sync point."""
    tape = bench.load_tape(None)
    feed.replay(tape.messages[:bench._sync_point(tape) + 2000])
    if not all(sf.synced for sf in feed.symbols):
        raise RuntimeError("the bundled tape did not sync the bench's book")
    return feed


# ---- for tapeshot bench ---------------------------------------------------------------------------------------------


def latency(tape: bench.Tape, n_wire: int = 6000, n_orders: int = 1000) -> dict[str, dict[str, float]]:
    """Every latency figure for ``engine.bench.run``: the default transport's (targets apply) and the other's."""
    out: dict[str, dict[str, float]] = {}
    for kind in (DEFAULT, *[k for k in KINDS if k != DEFAULT]):
        key = "wire_to_decision_us" if kind == DEFAULT else f"wire_to_decision_{kind}_us"
        pinned = wire_to_decision(kind, tape.messages, n_wire, instruments=tape.instruments)
        free = wire_to_decision(kind, tape.messages, n_wire, instruments=tape.instruments, pin=False)
        out[key] = {**pinned, "p50_unpinned": free["p50"], "p99_unpinned": free["p99"]}
        if kind == DEFAULT:
            polling = wire_to_decision(kind, tape.messages, n_wire, instruments=tape.instruments, poll=True)
            out[key] |= {"p50_polling": polling["p50"], "p99_polling": polling["p99"]}
    out["order_path_us"] = order_path(DEFAULT, n_orders)
    for kind in KINDS:
        if kind != DEFAULT:
            out[f"order_path_{kind}_us"] = order_path(kind, n_orders)
    return out
