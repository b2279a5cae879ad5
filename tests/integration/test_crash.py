"""kill -9 of the engine mid-intent, then a restart: nothing lost or double-counted, the position matches the venue.

The sim venue and the engine run as separate processes (``tapeshot sim`` / ``tapeshot run``) exactly as a user
would run them; the engine is killed with SIGKILL while a ladder has orders resting at the venue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal

import aiohttp

from engine.control import ControlClient
from engine.loop import run
from engine.oms.journal import Journal
from engine.venues.binance.rest import BinanceRest
from tests.integration.conftest import CREDS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], ready: str, timeout: float = 40.0, env: dict | None = None,
          sink: list | None = None) -> subprocess.Popen:
    """``tapeshot ARGS`` as a process, returned once it printed ``ready`` (its lines so far into ``sink``)."""
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    end, lines = time.monotonic() + timeout, []
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if ready in line:
            if sink is not None:
                sink.extend(lines)
            return proc
    proc.kill()
    raise AssertionError(f"{args[0]} did not start: {''.join(lines)[-3000:]}")


def stop_all(*procs: subprocess.Popen) -> None:
    """SIGTERM each process still running, then SIGKILL what has not stopped 15 s later."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def test_kill_9_mid_intent_then_restart(tmp_path):
    port = free_port()
    sim = start(["sim", "--port", str(port), "--speed", "2"], "api secret")
    home = str(tmp_path)
    run_args = ["run", "--venue-url", f"http://127.0.0.1:{port}", "--home", home, "--console", "off"]
    engine = start(run_args, "tapeshot running")
    try:
        client = ControlClient(tmp_path / "control.sock")

        async def accepted() -> str:
            async for line in client.intent("short btc 1.5 50s ladder max 8bps -- crash test"):
                if line["kind"] == "submitted":
                    return line["intent_id"]
            raise AssertionError("the intent was not accepted")

        async def resting(iid: str) -> bool:
            async with aiohttp.ClientSession() as s:
                rest = BinanceRest(f"http://127.0.0.1:{port}", s, CREDS)
                await rest.sync_time()
                for _ in range(200):
                    if any(o["clientOrderId"].startswith(iid) for o in await rest.open_orders("BTCUSDT")):
                        return True
                    await asyncio.sleep(0.02)
            return False

        iid = run(asyncio.wait_for(accepted(), 60))
        assert run(resting(iid))                 # the ladder's rungs are resting at the venue: now kill it
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
        engine = start(run_args, "tapeshot running")

        async def settle() -> tuple[list, list, list]:
            async with aiohttp.ClientSession() as s:
                rest = BinanceRest(f"http://127.0.0.1:{port}", s, CREDS)
                await rest.sync_time()
                for _ in range(600):
                    j = Journal(tmp_path / "sim" / "journal.sqlite")
                    if j.query("SELECT state FROM intents WHERE id=?", (iid,))[0]["state"] != "working":
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)
                return (await rest.user_trades("BTCUSDT"), await rest.position_risk("BTCUSDT"),
                        await rest.open_orders("BTCUSDT"))

        venue_fills, venue_pos, still_open = run(settle())
        st = Journal(tmp_path / "sim" / "journal.sqlite").load()
        journal_ids = [f.trade_id for f in st.fills]
        assert len(journal_ids) == len(set(journal_ids))                              # nothing double-counted
        assert sorted(journal_ids) == sorted(int(f["id"]) for f in venue_fills)       # nothing lost
        assert st.positions.get("BTCUSDT").qty == Decimal(venue_pos[0]["positionAmt"])
        assert not [o for o in still_open if o["clientOrderId"].startswith(iid)]     # no orphan rungs
        state = st.intents[iid]["state"]
        print(f"after kill -9 and restart: intent {state}, position {st.positions.get('BTCUSDT').qty}, "
              f"{len(journal_ids)} fills, all at the venue")
        assert state in ("done", "interrupted")
        if state == "done":                                                            # resumed and completed
            assert st.positions.get("BTCUSDT").qty == Decimal("-1.5")
    finally:
        stop_all(engine, sim)
