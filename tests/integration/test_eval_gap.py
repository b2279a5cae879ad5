"""The backtest-live gap: the same intents in the replay variants and on the live path (sim + engine processes)."""

from __future__ import annotations

from decimal import Decimal

from engine.eval import gap as gapmod
from engine.eval import intents as im
from engine.eval.data import dataset, market_path
from engine.feed.recording import sample_paths


def test_gap_runs_the_same_intents_live_and_in_every_replay_variant(tmp_path):
    files = (str(sample_paths()[0]),)
    ds, path = dataset(list(files)), market_path(files)
    intents = im.generate(path, 1, 1, seed=3)
    s = gapmod.GapSettings(algos=("ladder",), speed=4.0, warmup_s=8.0, keep=str(tmp_path))
    r = gapmod.gap(ds, path, intents, im.pack(intents), s, say=lambda m: None)
    row = r["algos"]["ladder"]
    assert not row["live_errors"], row["live_errors"]
    assert set(row["variants"]) == {"live", *gapmod.VARIANTS}
    for v, b in row["variants"].items():
        assert b["n_intents"] == 2 and b["n_errors"] == 0, v
        assert b["mean_all_in_bps"] is not None and b["edge_kept"] is not None
    # each live session really ran on its own venue and engine, and every lot of the intent filled there
    for it in intents:
        home = tmp_path / f"ladder-{it.id}"
        assert "tapeshot running" in (home / "engine.log").read_text()
    # the decomposition adds up: live - naive = the three models + their interaction + what they miss
    d = row["decomposition"]
    total = (d["latency"] + d["queue position"] + d["market impact"] + d["interaction"]
             + d["live - replay (not modelled)"])
    assert abs(total - d["live - naive replay"]) < 0.01
    # per-intent measures of every variant, in the same order, and where live and replay part ways
    ids = {v: [m["id"] for m in ms] for v, ms in row["measures"].items()}
    assert len({tuple(x) for x in ids.values()}) == 1 and sorted(ids["live"]) == sorted(it.id for it in intents)
    assert set(row["live_differs_from_replay"]) <= {it.id for it in intents}
    text = "\n".join(gapmod.table(r))
    assert "naive replay" in text and "live - replay (not modelled)" in text
    assert "live and replay differ on" in text


def test_live_sessions_fill_what_was_asked(tmp_path):
    """The live path's outcome is the engine's own report: every lot of a sniper intent filled by its deadline."""
    files = (str(sample_paths()[0]),)
    ds, path = dataset(list(files)), market_path(files)
    it = im.generate(path, 1, 0, seed=5)[0]
    s = gapmod.GapSettings(algos=("sniper",), speed=4.0, warmup_s=5.0)
    out = gapmod.live_outcomes(ds, [it], s, say=lambda m: None)["sniper"][0]
    assert out["error"] is None, out["error"]
    rep = out["report"]
    assert rep["algo"] == "sniper" and rep["complete"] and Decimal(rep["filled"]) == Decimal(it.qty)
