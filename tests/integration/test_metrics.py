"""A real Prometheus scrapes the engine's exporter; the alert rules load; nothing secret reaches a metric."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import aiohttp
import orjson
import pytest

from engine.config import Config, EngineConfig, VenueConfig
from engine.loop import run
from engine.metrics import serve_metrics
from engine.node import Node
from tests.integration.test_crash import free_port

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None and os.environ.get("CI") != "true",
                                      reason="no prometheus binary (CI installs Debian's)")


@needs_prometheus
def test_prometheus_scrapes_the_engine(tmp_path):
    assert PROMETHEUS, "CI must have a prometheus binary (.ci/run installs it)"
    port, prom_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{ROOT / 'deploy/prometheus/alerts.yml'}]\n"
        f"scrape_configs: [{{job_name: tapeshot, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}]\n")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    async def main():
        node = Node(Config(venue=VenueConfig(speed=8), engine=EngineConfig(home=str(tmp_path / "home"))))
        await node.start()
        stop = await serve_metrics(node, port)
        try:
            await node.submit("long btc 0.2 10s max 8bps", source="t", user="t")
            api = f"http://127.0.0.1:{prom_port}/api/v1"
            async with aiohttp.ClientSession() as s:
                async def value(q: str) -> float | None:
                    async with s.get(f"{api}/query", params={"query": q}) as r:
                        res = (await r.json())["data"]["result"]
                    return float(res[0]["value"][1]) if res else None

                async def eventually(q: str, ok) -> float:
                    for _ in range(150):
                        try:
                            v = await value(q)
                        except aiohttp.ClientError:
                            v = None
                        if v is not None and ok(v):
                            return v
                        await asyncio.sleep(0.2)
                    raise AssertionError(f"prometheus never saw {q}")

                await eventually('up{job="tapeshot"}', lambda v: v == 1)
                await eventually('tapeshot_feed_messages_total{kind="diffs",symbol="BTCUSDT"}', lambda v: v > 100)
                await eventually('tapeshot_book_health{check="synced",symbol="BTCUSDT"}', lambda v: v == 1)
                await eventually("sum(tapeshot_order_round_trip_seconds_count)", lambda v: v >= 1)
                await eventually('tapeshot_position{symbol="BTCUSDT"}', lambda v: v == 0.2)
                async with s.get(f"{api}/rules") as r:
                    groups = (await r.json())["data"]["groups"]
                assert {rule["name"] for g in groups for rule in g["rules"]} >= {"TapeshotHalted", "TapeshotBookStale"}
                async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                    text = await r.text()
                assert "tapeshot_msg_to_decision_seconds_bucket" in text
                assert "tapeshot-sim-key" not in text and "secret" not in text.lower()
        finally:
            await stop()
            await node.stop()

    try:
        run(main())
    finally:
        prom.terminate()
        prom.wait(10)


# ---- the exporter without Prometheus: the whole catalogue, bounded labels, no secret, /healthz and /readyz --------

CATALOGUE = {     # name as exposed -> (type, label names): docs/metrics.md, the contract deploy/ builds on
    "tapeshot_feed_latency_seconds": ("histogram", {"symbol", "stream"}),
    "tapeshot_msg_to_decision_seconds": ("histogram", {"symbol"}),
    "tapeshot_decision_to_send_seconds": ("histogram", set()),
    "tapeshot_order_round_trip_seconds": ("histogram", {"type"}),
    "tapeshot_cancel_round_trip_seconds": ("histogram", set()),
    "tapeshot_loop_lag_seconds": ("histogram", set()),
    "tapeshot_feed_messages_total": ("counter", {"symbol", "kind"}),
    "tapeshot_intents_total": ("counter", {"outcome"}),
    "tapeshot_orders_total": ("counter", {"type", "result"}),
    "tapeshot_fills_total": ("counter", {"symbol", "liquidity"}),
    "tapeshot_venue_rejects_total": ("counter", {"code"}),
    "tapeshot_risk_refused_total": ("counter", {"reason", "level"}),
    "tapeshot_kills_total": ("counter", {"trigger"}),
    "tapeshot_telegram_commands_total": ("counter", {"command", "outcome"}),
    "tapeshot_reconcile_differences_total": ("counter", {"kind"}),
    "tapeshot_position": ("gauge", {"symbol"}),
    "tapeshot_notional_usdt": ("gauge", {"symbol"}),
    "tapeshot_realised_pnl_usdt": ("gauge", {"symbol"}),
    "tapeshot_unrealised_pnl_usdt": ("gauge", {"symbol"}),
    "tapeshot_equity_usdt": ("gauge", set()),
    "tapeshot_drawdown_usdt": ("gauge", set()),
    "tapeshot_drawdown_limit_usdt": ("gauge", set()),
    "tapeshot_open_orders": ("gauge", {"symbol"}),
    "tapeshot_orders": ("gauge", {"state"}),
    "tapeshot_working_intents": ("gauge", set()),
    "tapeshot_trading_state": ("gauge", set()),
    "tapeshot_book_health": ("gauge", {"symbol", "check"}),
    "tapeshot_book_age_seconds": ("gauge", {"symbol"}),
    "tapeshot_venue_connected": ("gauge", {"socket"}),
    "tapeshot_ready": ("gauge", set()),
    "tapeshot_venue_clock_offset_ms": ("gauge", set()),
    "tapeshot_metrics_info": ("gauge", {"version"}),
}
CHECKS = {"started", "books_synced", "venue_reachable", "user_stream", "not_halted"}


def _allowed(symbols: set[str]) -> dict[str, set[str]]:
    """Every bounded label's values (a label not here is checked by its metric: code, command, feed kind)."""
    from engine import __version__, metrics
    from engine.oms.orders import OState
    from engine.risk import REFUSAL_REASONS

    return {"symbol": symbols, "stream": set(metrics.STREAMS), "type": set(metrics.ORDER_TYPES),
            "result": set(metrics.ORDER_RESULTS), "liquidity": {"maker", "taker"},
            "reason": REFUSAL_REASONS | {"other"}, "level": {"order", "intent"}, "trigger": set(metrics.KILL_TRIGGERS),
            "state": {s.value for s in OState}, "check": {"synced", "crossed"}, "socket": set(metrics.SOCKETS),
            "version": {__version__}}


def _families(text: str) -> dict[str, object]:
    """The exposition's families by exposed name (a counter's with its ``_total``)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(f.name + "_total" if f.type == "counter" else f.name): f for f in text_string_to_metric_families(text)}


def _value(fams: dict, name: str, suffix: str = "", **labels: str) -> float:
    """The sum of ``name``'s samples (a histogram's ``suffix``: ``_count``) with these labels."""
    return sum(s.value for s in fams[name].samples if s.name == name + suffix and all(s.labels.get(k) == v
                                                                                        for k, v in labels.items()))


async def _get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def _until(cond, what: str, limit_s: float = 30.0) -> None:
    for _ in range(int(limit_s / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


def _sim_node(tmp_path) -> Node:
    return Node(Config(venue=VenueConfig(speed=8), engine=EngineConfig(home=str(tmp_path / "home"))))


def test_every_catalogued_metric_is_exported_after_an_intent_with_bounded_labels_and_no_secret(tmp_path):
    from engine.metrics import INTENT_OUTCOMES, RECONCILE_KINDS, TELEGRAM_OUTCOMES
    from engine.venues.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET
    from tests.integration.test_secrets import forms

    async def main():
        node = _sim_node(tmp_path)
        await node.start()
        port = free_port()
        stop = await serve_metrics(node, port)
        try:
            await node.submit("long btc 0.2 10s max 8bps", source="t", user="t")
            await _until(lambda: node.runner.ended, "the intent ended")
            status, text = await _get(port, "/metrics")
            bodies = [text.encode(), *[(await _get(port, p))[1].encode() for p in ("/healthz", "/readyz")]]
        finally:
            await stop()
            await node.stop()
        assert status == 200
        fams = _families(text)
        allowed = _allowed({sf.symbol for sf in node.feed.symbols})
        for name, (kind, labels) in CATALOGUE.items():
            assert name in fams and fams[name].type == kind, name
            samples = fams[name].samples
            assert samples, f"{name} has no sample"
            for s in samples:
                assert set(s.labels) - {"le"} == labels, (name, s.labels)
                for label, value in s.labels.items():
                    assert label not in allowed or value in allowed[label], (name, label, value)
        assert {s.labels["outcome"] for s in fams["tapeshot_intents_total"].samples} == set(INTENT_OUTCOMES)
        assert {s.labels["kind"] for s in fams["tapeshot_reconcile_differences_total"].samples} == set(RECONCILE_KINDS)
        assert {s.labels["outcome"] for s in fams["tapeshot_telegram_commands_total"].samples} <= set(TELEGRAM_OUTCOMES)
        assert all(s.labels["code"] == "other" or s.labels["code"].lstrip("-").isdigit()
                   for s in fams["tapeshot_venue_rejects_total"].samples)
        assert _value(fams, "tapeshot_intents_total", outcome="filled") == 1
        assert _value(fams, "tapeshot_fills_total", symbol="BTCUSDT") >= 1
        assert _value(fams, "tapeshot_orders_total", result="filled") >= 1
        assert _value(fams, "tapeshot_order_round_trip_seconds", "_count") >= 1
        assert _value(fams, "tapeshot_msg_to_decision_seconds", "_count") >= 1
        assert _value(fams, "tapeshot_feed_latency_seconds", "_count", symbol="BTCUSDT") >= 1
        assert _value(fams, "tapeshot_position", symbol="BTCUSDT") == 0.2
        pos = node.oms.positions.get("BTCUSDT")                     # realised is net of fees: only fees so far
        assert _value(fams, "tapeshot_realised_pnl_usdt", symbol="BTCUSDT") == float(pos.realized - pos.fees) < 0
        assert _value(fams, "tapeshot_ready") == 1 and _value(fams, "tapeshot_trading_state") == 0
        for secret in (DEFAULT_API_KEY, DEFAULT_API_SECRET):
            for form, needle in forms(secret).items():
                assert all(needle not in body for body in bodies), f"the sim's credential ({form}) is exported"

    run(main())


def test_healthz_and_readyz_name_what_is_wrong(tmp_path):
    from engine.errors import RiskRefused
    from engine.exporter import Exporter

    async def readyz(port: int) -> tuple[int, dict]:
        status, body = await _get(port, "/readyz")
        return status, orjson.loads(body)

    async def main():
        node = _sim_node(tmp_path)
        await node.start()
        exp = Exporter(node, port=0)
        await exp.start()
        port = exp.port
        try:
            status, body = await _get(port, "/healthz")
            assert status == 200 and orjson.loads(body)["status"] == "ok" and orjson.loads(body)["uptime_s"] >= 0
            status, ready = await readyz(port)
            assert status == 200 and ready["ready"] is True and set(ready["checks"]) == CHECKS
            assert all(c["ok"] and c["detail"] for c in ready["checks"].values())
            for path in ("/", "/metricsx", "/readyz/x", "/favicon.ico"):
                assert (await _get(port, path))[0] == 404, path

            sf = node.feed["BTCUSDT"]                   # the book withheld: unsynced, no snapshot will come
            sf.unavailable = "withheld by the test"
            sf.request_resync()
            status, ready = await readyz(port)
            books = ready["checks"]["books_synced"]
            assert status == 503 and ready["ready"] is False and not books["ok"] and "BTCUSDT" in books["detail"]
            assert all(c["ok"] for name, c in ready["checks"].items() if name != "books_synced")
            assert "tapeshot_ready 0.0" in (await _get(port, "/metrics"))[1]
            sf.unavailable = ""                         # market data again: the next diff fetches a snapshot
            await _until(lambda: sf.synced, "the book resynced")
            assert (await readyz(port))[0] == 200

            await node.kill("drill", user="t")
            status, ready = await readyz(port)
            halted = ready["checks"]["not_halted"]
            assert status == 503 and not halted["ok"] and "HALTED" in halted["detail"]
            with pytest.raises(RiskRefused, match="HALTED"):
                await node.submit("long btc 0.1 10s", source="t", user="t")
            fams = _families((await _get(port, "/metrics"))[1])
            assert _value(fams, "tapeshot_risk_refused_total", reason="halted", level="intent") == 1
            assert _value(fams, "tapeshot_intents_total", outcome="refused") == 1
            assert _value(fams, "tapeshot_kills_total", trigger="manual") >= 1
            assert _value(fams, "tapeshot_trading_state") == 2 and _value(fams, "tapeshot_ready") == 0

            exp._beat.cancel()                          # the loop stops stamping the heartbeat: a stalled loop
            exp.beat_s -= 60
            status, body = await _get(port, "/healthz")
            assert status == 503 and orjson.loads(body)["status"] == "stalled"
        finally:
            await exp.stop()
            await node.stop()

    run(main())


def test_the_ops_documentation_lists_every_metric_and_check():
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for name in [*CATALOGUE, *CHECKS, "/healthz", "/readyz"]:
        assert f"`{name}`" in doc, name
    assert "realised PnL is net of fees" in doc
