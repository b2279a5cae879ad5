"""A learned model in the running engine: ``tapeshot train`` on the bundled tape, ``[model] path`` loads it at
start, the hybrid executes on the sim with its predictions (its notes quote them), and a model trained for
another symbol stops the start with the reason."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from engine.cli import main
from engine.config import Config, EngineConfig, ModelConfig, VenueConfig
from engine.errors import ConfigError
from engine.feed.recording import sample_path, sample_paths
from engine.loop import run
from engine.node import Node
from tests.integration.conftest import node_with_control, wait_for


@pytest.fixture(scope="module")
def btc_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "btc.npz"
    assert main(["train", "--data", str(sample_path()), "--out", str(out), "--capacity", "linear"]) == 0
    return out


def test_the_hybrid_trades_on_the_models_predictions(tmp_path, btc_model):
    cfg = Config(venue=VenueConfig(speed=8.0, symbols=("BTCUSDT",)), engine=EngineConfig(home=str(tmp_path)),
                 model=ModelConfig(str(btc_model)))

    async def main_() -> None:
        async with node_with_control(cfg) as (node, _c):
            assert list(node.runner.models) == ["BTCUSDT"]                       # loaded at start, watching
            assert node.md.on_update == node.runner.on_update_observing        # its history at every depth update
            await asyncio.sleep(1.0)                      # the model's 0.5 s history fills
            sub = await node.submit("long btc 0.3 15s hybrid max 8bps", source="test", user="t")
            live = node.intents[sub.intent_id]
            assert type(live.algo.predictor).__name__ == "function"            # the model's, not the kernels'
            await wait_for(lambda: live.state.value in ("done", "cancelled", "failed"), 60)
            assert live.state.value == "done", live.algo.log
            assert live.report["filled"] == "0.300"
            take, _wait, move, p = live.algo.last
            assert 0.0 <= p <= 1.0 and take > 0 and move == move         # real numbers from the model
            print("hybrid with the model:", live.algo.log, live.report["maker_share"], live.report["shortfall_bps"])

    run(main_())


def test_a_model_for_another_symbol_stops_the_start(tmp_path, btc_model):
    cfg = Config(venue=VenueConfig(speed=8.0, data=(str(sample_paths()[1]),), symbols=("ETHUSDT",)),
                 engine=EngineConfig(home=str(tmp_path)), model=ModelConfig(str(btc_model)))

    async def main_() -> None:
        node = Node(cfg)
        try:
            with pytest.raises(ConfigError, match="trained for 'BTCUSDT', not 'ETHUSDT'"):
                await node.start()
        finally:
            await node.stop()

    run(main_())
    assert dataclasses.asdict(cfg.model) == {"path": str(btc_model)}
