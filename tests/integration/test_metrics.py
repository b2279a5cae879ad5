"""A real Prometheus scrapes the engine's exporter; the alert rules load; nothing secret reaches a metric."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import aiohttp
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
                await eventually("tapeshot_order_round_trip_seconds_count", lambda v: v >= 1)
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
