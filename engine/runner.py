"""``tapeshot run``: the engine with its front ends (control socket, console, Telegram, metrics) until stopped.

It says at start which front ends are on (console, control socket, Telegram, metrics). It stops on Ctrl-C /
SIGTERM, on ``quit`` at the console, when ``--demo`` has finished, or when the sim venue's tape ends (the
embedded one's, or an external ``tapeshot sim``'s; with ``--loop`` the embedded one replays it instead); it then
prints the positions, cancels every working intent and order, confirms with the venue (a cancel-all per symbol,
then the open-orders query), journals the interrupted intents ``cancelled`` (shutdown), says what could not be
cancelled and exits, within ~10 s.
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
from engine.console import Console, progress_text
from engine.control import ControlServer
from engine.errors import TapeshotError
from engine.loop import freeze_heap
from engine.node import Node

log = logging.getLogger(__name__)


def _printer(p: Progress) -> None:
    """The demo's output: every progress event as the console shows it."""
    print(progress_text(p), flush=True)


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
    extras, telegram = await _front_ends(node, cfg)
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
    print(_fronts_line(cfg, console is not None, sock, telegram), flush=True)
    script = asyncio.create_task(_demo(node)) if demo else None
    waits += [script] if script else []
    waits.append(asyncio.create_task(node.tape_ended.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if script is not None and not script.done() and node.tape_ended.is_set():
        await asyncio.wait([script], timeout=2.0)          # its last words: the dataset's horizons
    if node.tape_ended.is_set():
        print("the recorded tape has ended: no more market data; stopping", flush=True)
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


def _fronts_line(cfg: Config, console: bool, sock: object, telegram: str) -> str:
    """The start-up line naming each front end and whether it is on."""
    port, host = cfg.engine.metrics_port, cfg.engine.metrics_host
    return (f"front ends: console {'on' if console else 'off'}; control socket {sock}; Telegram {telegram}; "
            f"metrics {f'on http://{host}:{port}/metrics (/healthz, /readyz)' if port else 'off'}")


async def _front_ends(node: Node, cfg: Config) -> tuple[list, str]:
    """Start the metrics endpoint and the Telegram bot as configured: (their stop functions, Telegram's state)."""
    stoppers = []
    if cfg.engine.metrics_port:
        from engine.metrics import serve_metrics

        stoppers.append(await serve_metrics(node, cfg.engine.metrics_port, cfg.engine.metrics_host))
    if not os.environ.get("TAPESHOT_TELEGRAM_TOKEN"):
        return stoppers, "off (TAPESHOT_TELEGRAM_TOKEN not set)"
    from engine.telegram import start_from_config

    try:
        handle = await start_from_config(node, cfg.telegram)
    except Exception as exc:                # a refused token, an unreachable Bot API: trade on, say why
        log.error("telegram: could not start: %s: %s", type(exc).__name__, exc)
        return stoppers, f"off (could not start: {type(exc).__name__}; see the log)"
    if handle is None:
        return stoppers, "off (no users configured: [telegram.users] or TAPESHOT_TELEGRAM__USERS)"
    stoppers.append(handle.stop)
    roles = list(cfg.telegram.roles().values())
    return stoppers, (f"on (@{handle.app.bot.username}: {roles.count('trader')} trader(s), "
                      f"{roles.count('viewer')} viewer(s))")


async def _demo(node: Node) -> None:
    """A scripted session on the tape, two symbols at once (BTC and ETH on the bundled tape; any first two):
    entries on both working together (the second sent while the first works), TP/SL on both, both flat, then a
    ladder on one while the other enters again, and flat. Each report printed; every intent is waited for."""
    done: dict[str, asyncio.Event] = {}
    node.subscribe(lambda p: done.setdefault(p.intent_id, asyncio.Event()).set() if p.kind == "done" else None)

    async def send(text: str) -> str:
        print(f"> {text}", flush=True)
        try:
            sub = await node.submit(text, source="demo", user="demo")
        except TapeshotError as exc:
            print(f"  refused: {exc}", flush=True)
            return ""
        return sub.intent_id

    async def together(*texts: str) -> None:
        """Send each (without waiting for the one before), then wait for all of them to end."""
        ids = [await send(t) for t in texts]
        await asyncio.gather(*(done.setdefault(i, asyncio.Event()).wait() for i in ids if i))

    await asyncio.sleep(1.0)
    terms = [_DemoTerms(node, s) for s in list(node.instruments)[:2]]
    a, others = terms[0], terms[1:]
    await together(f"long {a.base} {a.size} 20s max 8bps -- demo: bids absorbing #absorption",
                   *(f"short {t.base} {t.size} 20s max 8bps -- demo: offers stacking #stacking" for t in others))
    for t in terms:
        await together(f"tp {t.base} {t.level('1.004' if t is a else '0.996')}")
        await together(f"sl {t.base} {t.level('0.996' if t is a else '1.004')}")
    await together(*(f"flat {t.base} 10s" for t in terms))
    await together(f"short {a.base} {a.size * 2} 25s ladder max 6bps -- demo: offers stacking #stacking",
                   *(f"long {t.base} {t.size} 25s max 8bps -- demo: bids absorbing #absorption" for t in others))
    await together(*(f"flat {t.base} 10s" for t in terms))
    await _demo_outcomes(node)


async def _demo_outcomes(node: Node) -> None:
    """Wait for the decision dataset's horizons (1 s to 300 s after each intent's arrival and last fill): those
    the tape outlasts are observed, the rest are marked missing when it ends. Then say how to get them out."""
    out = node.runner.outcomes
    if out is None or not out.pending:
        return
    print(f"waiting for the market after each intent ({out.pending} horizons, up to 300 s; those past the end of "
          "the tape are marked missing, never guessed)", flush=True)
    while out.pending and not node.tape_ended.is_set():
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.2)
    print(f"dataset: {out.observed} horizons observed, {out.missing} missing; see them with 'tapeshot journal "
          "export --format parquet --out DIR' and score the calls with 'tapeshot scorecard' (the demo's calls are "
          "scripted: the scorecard shows the mechanics, not skill)", flush=True)


class _DemoTerms:
    """One symbol's demo numbers: its short name, a ~2000 USDT size at the mid, TP/SL levels around the mid."""

    def __init__(self, node: Node, symbol: str) -> None:
        self.inst = node.instruments[symbol]
        self.base = symbol.removesuffix("USDT").lower()
        self.mid = Decimal(repr(node.feed[symbol].book.mid)) * self.inst.tick_size
        self.size = max((Decimal(2000) / self.mid).quantize(self.inst.step_size), self.inst.step_size)

    def level(self, factor: str) -> Decimal:
        tick = self.inst.tick_size
        return (self.mid * Decimal(factor) / tick).quantize(Decimal(1)) * tick


def _cpus(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus or ()))
