"""``tapeshot intent`` against a running engine (the embedded sim venue): the intent id, the full report in the
trader's units, ``--json`` as one JSON object only, and exit codes a script can act on (0 done, 1 refused or not
done, 3 unreadable words)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

from engine.config import Config, EngineConfig, VenueConfig
from engine.loop import run
from tests.integration.conftest import node_with_control


@contextlib.asynccontextmanager
async def engine(tmp_path):
    cfg = Config(venue=VenueConfig(speed=8.0), engine=EngineConfig(home=str(tmp_path)))
    async with node_with_control(cfg) as pair:
        yield pair


async def tapeshot(tmp_path, *args: str) -> tuple[int, str, str]:
    """Run ``tapeshot intent --home tmp_path ARGS`` as its own process: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "engine.cli", "intent", "--home",
                                                str(tmp_path), *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def test_the_intent_id_the_report_and_exit_codes(tmp_path):
    async def main():
        async with engine(tmp_path) as (node, _client):
            code, out, err = await tapeshot(tmp_path, "long btc 0.01 10s why cli test #cli")
            assert code == 0, err
            lines = out.splitlines()
            iid = next(iter(node.intents))
            assert lines[0] == f"intent {iid}"
            assert any(ln.startswith("accepted: LONG 0.01 BTC of BTCUSDT") for ln in lines)
            report = out[out.index(f"{iid} DONE BUY BTCUSDT"):]
            assert "filled 0.010 BTC of 0.010 BTC" in report and "fees in" in report and " USDT" in report
            assert "None" not in out and "Decimal(" not in out and "{" not in out

            code, out, err = await tapeshot(tmp_path, "long btc 1000 10s")            # over the order limit
            assert code == 1 and out == ""
            assert err.startswith("refused: risk refused (order_notional)") and "250,000 USDT" in err

            code, out, err = await tapeshot(tmp_path, "long btc 0.5 30s twap")        # a word it cannot read
            assert code == 3 and out == ""
            assert err.startswith("invalid: unknown word 'twap'") and "auto, sniper, ladder" in err

    run(main())


def test_json_is_one_object_only(tmp_path):
    async def main():
        async with engine(tmp_path) as (node, _client):
            code, out, _ = await tapeshot(tmp_path, "--json", "long btc 0.01 10s")
            assert code == 0
            doc = json.loads(out)                                  # the whole of stdout is one object
            assert doc["id"] == next(iter(node.intents)) and doc["state"] == "done"
            assert doc["report"]["filled"] == "0.010" and doc["text"].startswith(f"{doc['id']} DONE")

            code, out, _ = await tapeshot(tmp_path, "--json", "long btc 1000 10s")
            doc = json.loads(out)
            assert code == 1 and doc["state"] == "refused" and doc["reason"] == "order_notional" and doc["id"] is None

            code, out, _ = await tapeshot(tmp_path, "--json", "long btc 0.5 30s sniper ladder")
            doc = json.loads(out)
            assert code == 3 and doc["state"] == "invalid" and "conflicting words" in doc["error"]

            await node.kill("test", user="t")
            code, out, _ = await tapeshot(tmp_path, "--json", "long btc 0.01 10s")
            doc = json.loads(out)
            assert code == 1 and doc["reason"] == "halted"

    run(main())
