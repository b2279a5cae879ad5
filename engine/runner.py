"""``tapeshot run``: the engine with its front ends (control socket, console, Telegram, metrics) until stopped.

It stops on Ctrl-C / SIGTERM, on ``quit`` at the console, when ``--demo`` has finished, or when the embedded sim
venue's tape ends; it then prints the positions, cancels every working intent and order, confirms with the venue
(a cancel-all per symbol, then the open-orders query), journals the interrupted intents ``cancelled`` (shutdown),
says what could not be cancelled and exits, within ~10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from decimal import Decimal

from engine import affinity
from engine.commands import Progress
from engine.config import Config, ensure_home
from engine.console import Console
from engine.control import ControlServer
from engine.errors import TapeshotError
from engine.loop import freeze_heap
from engine.node import Node

log = logging.getLogger(__name__)


def _printer(p: Progress) -> None:
    label = p.intent_id or p.kind
    print(f"[{label}] {p.kind}: {p.text}", flush=True)


async def run_engine(cfg: Config, demo: bool = False) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    node = Node(cfg)
    loop_cpus, node.io_cpus = affinity.plan(cfg.engine.cpu_pinning)
    affinity.pin_thread(loop_cpus)
    node.busy_poll = affinity.busy_poll(cfg.engine.busy_poll, loop_cpus)
    try:
        ensure_home(cfg)                        # 0700 before the journal, its lock or the socket exist
        await node.start()
    except (TapeshotError, OSError) as exc:
        print(f"tapeshot: cannot start: {exc}", file=sys.stderr)
        with contextlib.suppress(Exception):
            await node.stop()
        return 2
    _, sock = node.paths()
    control = ControlServer(node, sock)
    await control.start()
    venue = "embedded sim venue" if node.venue else node.rest.base_url
    print(f"tapeshot running on {venue}: {', '.join(node.instruments)}; control socket {sock}", flush=True)
    if loop_cpus:
        spin = " (busy-polls while intents work)" if node.busy_poll else ""
        print(f"event loop on CPU {min(loop_cpus)}{spin}, journal writer on CPU {_cpus(node.io_cpus)}", flush=True)
    if node.archived_journal is not None:
        print(f"journal {node.paths()[0]}: a new one for this sim session; the previous session's is now "
              f"{node.archived_journal}", flush=True)
    for line in node.reconciliation:
        print(f"reconcile: {line}", flush=True)
    extras = await _front_ends(node, cfg)
    if node.reconciliation:             # the restart, visible where the trader looks (Telegram too)
        node.bus.emit_all("risk", "reconciliation with the venue at start-up:\n" + "\n".join(node.reconciliation))
    freeze_heap()                       # the collector never walks the started engine again (62 ms -> 2 µs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    _kill_on_sigusr1(node)
    waits = [asyncio.create_task(stop.wait())]
    console = None
    if cfg.engine.console == "on" or (cfg.engine.console == "auto" and sys.stdin.isatty() and not demo):
        console = Console(node)
        waits.append(asyncio.create_task(console.run()))
    else:
        node.subscribe(_printer)
    if demo:
        waits.append(asyncio.create_task(_demo(node)))
    if node.venue is not None:
        waits.append(asyncio.create_task(node.venue.finished.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if node.venue is not None and node.venue.finished.is_set():
        print("the recorded tape has ended", flush=True)
    for t in waits:
        t.cancel()
    print(await node.status(), flush=True)
    print("stopping: cancelling working orders and confirming with the venue", flush=True)
    problems = await node.stop()                # first: the front ends still carry its report to the trader
    for line in problems:
        print(f"shutdown: {line}", flush=True)
    print("stopped: " + ("nothing left working at the venue" if not problems else
                         f"{len(problems)} problem(s) above: check the venue"), flush=True)
    for stopper in extras:
        with contextlib.suppress(Exception):
            await stopper()
    await control.stop()
    return 0


def _kill_on_sigusr1(node: Node) -> None:
    """``kill -USR1 <pid>``: the KillSwitch from outside, even while the event loop is blocked. The handler runs
    between bytecodes on the main thread (not through the loop) and hands the kill to the watchdog thread, which
    cancels at the venue with its own connection if the loop does not answer in time."""
    watchdog = getattr(node, "watchdog", None)
    if watchdog is None:
        return
    signal.signal(signal.SIGUSR1, lambda *_: watchdog.request("signal", "SIGUSR1 (a kill from outside)"))


async def _front_ends(node: Node, cfg: Config) -> list:
    stoppers = []
    if cfg.engine.metrics_port:
        from engine.metrics import serve_metrics

        stoppers.append(await serve_metrics(node, cfg.engine.metrics_port))
    token = os.environ.get("TAPESHOT_TELEGRAM_TOKEN")
    if token:
        try:
            from engine.keys import Secret
            from engine.telegram import start_bot
        except ImportError:
            log.warning("TAPESHOT_TELEGRAM_TOKEN is set but the Telegram front end is not available")
        else:
            if not cfg.telegram.allowed_user_ids:
                log.warning("Telegram: no allowed_user_ids configured: the bot would refuse everyone; not started")
            else:
                handle = await start_bot(node, Secret(token), set(cfg.telegram.allowed_user_ids),
                                         cfg.telegram.base_url or None, set(cfg.telegram.allowed_chat_ids) or None)
                stoppers.append(handle.stop)
    return stoppers


async def _demo(node: Node) -> None:
    """A short scripted session on the tape: entry with TP/SL, exit, a ladder, flat; each report printed."""
    done: dict[str, asyncio.Event] = {}
    node.subscribe(lambda p: done.setdefault(p.intent_id, asyncio.Event()).set() if p.kind == "done" else None)

    async def go(text: str) -> None:
        print(f"> {text}", flush=True)
        try:
            sub = await node.submit(text, source="demo", user="demo")
        except TapeshotError as exc:
            print(f"  refused: {exc}", flush=True)
            return
        if sub.intent_id:
            await done.setdefault(sub.intent_id, asyncio.Event()).wait()

    await asyncio.sleep(1.0)
    sym = next(iter(node.instruments))
    inst = node.instruments[sym]
    base = sym.removesuffix("USDT").lower()
    mid = Decimal(repr(node.feed[sym].book.mid)) * inst.tick_size
    size = (Decimal(2000) / mid).quantize(inst.step_size)
    await go(f"long {base} {size} 20s max 8bps -- demo: bids absorbing")
    await go(f"tp {base} {(mid * Decimal('1.004') / inst.tick_size).quantize(Decimal(1)) * inst.tick_size}")
    await go(f"sl {base} {(mid * Decimal('0.996') / inst.tick_size).quantize(Decimal(1)) * inst.tick_size}")
    await go(f"flat {base} 10s")
    await go(f"short {base} {size * 2} 25s ladder max 6bps -- demo: offers stacking")
    await go(f"flat {base} 10s")


def _cpus(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus or ()))
