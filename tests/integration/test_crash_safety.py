"""Nothing traded twice, nothing lost: the engine killed at its worst instants, stopped, banned and refused.

The sim venue and the engine run as separate processes (``tapeshot sim`` / ``tapeshot run``) as a user runs them.
Every check reads the venue (REST, as a black box would) and the journal; the venue is the truth.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from decimal import Decimal

import aiohttp
import pytest

from engine.control import ControlClient
from engine.loop import run
from engine.oms.journal import Journal
from engine.venues.binance.rest import BinanceRest
from tests.integration.conftest import CREDS
from tests.integration.test_crash import free_port
from tests.integration.test_crash import start as _start


class Stack:
    """A ``tapeshot sim`` and a ``tapeshot run`` on it, with helpers to read the venue and the journal."""

    def __init__(self, tmp_path, speed: float = 2.0) -> None:
        self.port = free_port()
        self.home = tmp_path
        self.sim = _start(["sim", "--port", str(self.port), "--speed", str(speed)], "api secret")
        self.engine: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.output: list[str] = []

    def run_engine(self, crash_at: str = "") -> None:
        env = {"TAPESHOT_CRASH_AT": crash_at} if crash_at else {}
        self.engine = _start(["run", "--venue-url", self.url, "--home", str(self.home), "--console", "off"],
                             "tapeshot running", env=env, sink=self.output)

    def faults(self, **kw) -> None:
        async def go() -> None:
            async with aiohttp.ClientSession() as s, s.post(f"{self.url}/sim/faults", json=kw) as r:
                assert r.status == 200, await r.text()
        run(go())

    def submit(self, text: str, key: str | None = None) -> dict:
        """Submit and wait for the acceptance line (or the error)."""
        async def go() -> dict:
            try:
                async for line in ControlClient(self.home / "control.sock").intent(text):
                    return line
            except aiohttp.ClientError:          # the engine died at a crash point before it answered
                pass
            rows = Journal(self.home / "sim" / "journal.sqlite").query("SELECT id FROM intents WHERE text=?",
                                                                      (text,))
            assert rows, "no answer and no intent in the journal"
            return {"intent_id": rows[0]["id"]}
        return run(asyncio.wait_for(go(), 60))

    def venue(self) -> dict:
        async def go() -> dict:
            async with aiohttp.ClientSession() as s:
                rest = BinanceRest(self.url, s, CREDS)
                await rest.sync_time()
                return {"trades": await rest.user_trades("BTCUSDT", limit=1000),
                        "orders": await rest.all_orders("BTCUSDT", limit=1000),
                        "open": await rest.open_orders("BTCUSDT"),
                        "pos": Decimal((await rest.position_risk("BTCUSDT"))[0]["positionAmt"])}
        return run(go())

    def journal(self):
        return Journal(self.home / "sim" / "journal.sqlite").load()

    def wait_intent(self, iid: str, timeout: float = 90.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rows = Journal(self.home / "sim" / "journal.sqlite").query("SELECT state FROM intents WHERE id=?", (iid,))
            if rows and rows[0]["state"] in ("done", "cancelled", "failed", "interrupted"):
                return rows[0]["state"]
            time.sleep(0.2)
        raise AssertionError(f"intent {iid} still unfinished after {timeout} s")

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.engine.wait(timeout)

    def close(self) -> None:
        for p in (self.engine, self.sim):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()


def _drain(proc: subprocess.Popen) -> str:
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def _ours(rows: list[dict], iid: str) -> list[dict]:
    return [r for r in rows if r["clientOrderId"].startswith(iid)]


def _check_truth(stack: Stack, iid: str, requested: Decimal) -> tuple[dict, object]:
    """Journal against venue: every venue fill journalled once, the position equal, nothing of ours open, and
    the venue never executed more than the intent asked for."""
    v, st = stack.venue(), stack.journal()
    journal_ids = [f.trade_id for f in st.fills]
    assert len(journal_ids) == len(set(journal_ids))                              # nothing double-counted
    assert sorted(journal_ids) == sorted(int(t["id"]) for t in v["trades"])       # nothing lost
    assert st.positions.get("BTCUSDT").qty == v["pos"]
    assert not _ours(v["open"], iid)
    executed = sum(Decimal(o["executedQty"]) for o in _ours(v["orders"], iid))
    assert executed <= requested, f"the venue executed {executed} for a {requested} intent"
    return v, st


@pytest.mark.parametrize("point", ["after_send", "on_fill"])
def test_kill_at_a_crash_point_then_restart(tmp_path, point):
    """kill -9 between the send and the journal (the order has no row), and on the first fill (the trade never
    reached the journal): the restart finds both at the venue and never trades the intent twice."""
    stack = Stack(tmp_path)
    try:
        stack.run_engine(crash_at=point)
        ack = stack.submit("short btc 1.5 30s ladder max 8bps -- crash safety")
        iid = ack["intent_id"]
        assert stack.wait_exit(60) == -signal.SIGKILL
        stack.engine = None
        stack.run_engine()
        state = stack.wait_intent(iid)
        v, st = _check_truth(stack, iid, Decimal("1.5"))
        executed = sum(Decimal(o["executedQty"]) for o in _ours(v["orders"], iid))
        print(f"{point}: intent {state}, venue executed {executed}, position {v['pos']}")
        adopted = Journal(stack.home / "sim" / "journal.sqlite").query(
            "SELECT client_order_id FROM order_events WHERE event='adopted'")
        print(f"adopted from the venue: {[r['client_order_id'] for r in adopted]}")
        if point == "after_send":     # the first order the C path wrote (it journals after the write)
            assert [r["client_order_id"] for r in adopted] == [f"{iid}-2"]
        assert {o["clientOrderId"] for o in _ours(v["orders"], iid)} <= set(st.orders)   # every venue order known
        assert state in ("done", "interrupted", "cancelled")
        assert Decimal(st.intents[iid]["report"]["filled"]) == executed
    finally:
        stack.close()


def test_sigterm_cancels_resting_orders(tmp_path):
    """SIGTERM with a ladder resting: its orders are cancelled and confirmed, the intent journalled cancelled
    (shutdown), and the engine exits within the bound."""
    stack = Stack(tmp_path)
    try:
        stack.run_engine()
        iid = stack.submit("short btc 1.5 50s ladder max 8bps -- shutdown test")["intent_id"]
        end = time.monotonic() + 20
        while time.monotonic() < end and not _ours(stack.venue()["open"], iid):
            time.sleep(0.05)
        assert _ours(stack.venue()["open"], iid), "the ladder never rested"
        t0 = time.monotonic()
        stack.engine.send_signal(signal.SIGTERM)
        out = _drain(stack.engine)
        took = time.monotonic() - t0
        assert stack.engine.returncode == 0, out[-2000:]
        print(f"SIGTERM to exit: {took:.2f} s")
        assert took < 15
        assert "nothing left working at the venue" in out, out[-2000:]
        assert not _ours(stack.venue()["open"], iid)
        row = stack.journal().intents[iid]
        assert row["state"] == "cancelled" and row["report"]["why"] == "shutdown"
        _check_truth(stack, iid, Decimal("1.5"))
    finally:
        stack.close()


def test_rejection_streak_backs_off_and_completes(tmp_path):
    """Three transient rejections no longer end the intent: it backs off inside its window and completes."""
    stack = Stack(tmp_path)
    try:
        stack.run_engine()
        stack.faults(reject_orders=3)
        iid = stack.submit("long btc 0.02 10s ladder max 30bps")["intent_id"]     # its first orders go at once
        assert stack.wait_intent(iid) == "done"
        v, st = _check_truth(stack, iid, Decimal("0.02"))
        report = st.intents[iid]["report"]
        assert Decimal(report["filled"]) == Decimal("0.02") and v["pos"] == Decimal("0.02")
        assert sum("retrying" in n for n in report["notes"]) == 3, report["notes"]
    finally:
        stack.close()


def test_ban_longer_than_the_window_sends_nothing_late(tmp_path):
    """A 418 ban longer than the intent's window: no order leaves after the deadline; the intent ends."""
    stack = Stack(tmp_path)
    try:
        stack.run_engine()
        stack.faults(ban_s=12)
        ack = stack.submit("long btc 0.02 5s sniper max 30bps")
        assert "intent_id" in ack, ack
        iid = ack["intent_id"]
        state = stack.wait_intent(iid, timeout=40)
        time.sleep(12)                                          # the ban is over: anything held would go now
        v, st = _check_truth(stack, iid, Decimal("0.02"))
        row = st.intents[iid]
        late = [o for o in _ours(v["orders"], iid) if int(o["time"]) > row["data"]["deadline_ns"] // 1_000_000]
        assert not late, late
        print(f"ban: intent {state}, {len(_ours(v['orders'], iid))} orders at the venue")
    finally:
        stack.close()


def test_an_order_the_journal_never_saw_is_adopted_and_counted(tmp_path):
    """The engine dies after an order left but before its journal row (here: an order with the intent's client id
    placed straight at the venue while the engine is down). The restart finds it in the venue's history, adopts
    it, takes its fills by order id, and resumes only for what the venue has not executed."""
    stack = Stack(tmp_path)
    try:
        stack.run_engine()
        iid = stack.submit("long btc 0.3 40s sniper max 30bps -- adoption")["intent_id"]
        stack.engine.send_signal(signal.SIGKILL)
        stack.engine.wait(10)

        async def place() -> dict:
            async with aiohttp.ClientSession() as s:
                rest = BinanceRest(stack.url, s, CREDS)
                await rest.sync_time()
                return await rest.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.100",
                                              newClientOrderId=f"{iid}-7")
        placed = run(place())
        assert placed["status"] in ("FILLED", "NEW")
        stack.run_engine()
        assert stack.wait_intent(iid) in ("done", "interrupted")
        v, st = _check_truth(stack, iid, Decimal("1.5"))
        assert f"{iid}-7" in st.orders and st.orders[f"{iid}-7"].filled == Decimal("0.100")
        adopted = Journal(stack.home / "sim" / "journal.sqlite").query(
            "SELECT client_order_id FROM order_events WHERE event='adopted'")
        assert [r["client_order_id"] for r in adopted] == [f"{iid}-7"]
        executed = sum(Decimal(o["executedQty"]) for o in _ours(v["orders"], iid))
        assert executed == Decimal(st.intents[iid]["report"]["filled"])
        print(f"adopted {iid}-7; the intent ended with {executed} executed at the venue for 0.3")
    finally:
        stack.close()


def test_sigusr1_kills_from_outside(tmp_path):
    """``kill -USR1 <pid>``: the KillSwitch without the control socket (whose handler needs the event loop):
    trading halts and the resting ladder is cancelled at the venue."""
    stack = Stack(tmp_path)
    try:
        stack.run_engine()
        iid = stack.submit("short btc 1.5 50s ladder max 8bps -- sigusr1")["intent_id"]
        end = time.monotonic() + 20
        while time.monotonic() < end and not _ours(stack.venue()["open"], iid):
            time.sleep(0.05)
        assert _ours(stack.venue()["open"], iid), "the ladder never rested"
        stack.engine.send_signal(signal.SIGUSR1)
        end = time.monotonic() + 10
        while time.monotonic() < end and _ours(stack.venue()["open"], iid):
            time.sleep(0.05)
        assert not _ours(stack.venue()["open"], iid)
        refused = stack.submit("long btc 0.01 10s")
        assert "halted" in refused.get("error", ""), refused
        kills = Journal(stack.home / "sim" / "journal.sqlite").query("SELECT data FROM decisions WHERE kind='kill'")
        assert kills and "SIGUSR1" in kills[-1]["data"]
    finally:
        stack.close()
