"""tapeshot eval on the bundled real tape: intents, passes, no look-ahead, bars, statistics, JSON and plots."""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
from dataclasses import replace

import numpy as np
import orjson
import pytest

from engine.eval import intents as im
from engine.eval.bars import BarFeed
from engine.eval.cli import add_parser
from engine.eval.data import MS, SEC, dataset, market_path
from engine.eval.experiments import Settings, evaluate
from engine.eval.report import document, text
from engine.eval.runner import EvalReplay, Job, make_factory, run_job
from engine.eval.stats import bootstrap, summarise
from engine.feed.recording import sample_path
from strategies.sniper import Sniper

SAMPLE = (str(sample_path()),)
KEYS = ("n_intents", "mean_cost_bps", "median_cost_bps", "ci95_bps", "completion_rate", "maker_share", "edge_kept")
FAST = Settings(n_intents=3, seed=5, workers=1, algos=("immediate", "sniper"), experiments=frozenset())


@pytest.fixture(scope="module")
def ds():
    return dataset(SAMPLE)


@pytest.fixture(scope="module")
def path(ds):
    return market_path(ds.files)


@pytest.fixture(scope="module")
def result(ds, path):
    return evaluate(ds, FAST, path=path)


def test_intents_are_deterministic_per_seed_and_sized_inside_the_tape(path):
    a, b, c = (im.generate(path, 4, 4, seed) for seed in (1, 1, 2))
    assert a == b and a != c
    for it in a:
        assert path.t[0] + im.LEAD_S * SEC <= it.time_ns and it.busy_until_ns <= path.end_ns
        assert im.MIN_WINDOW_S <= it.window_s <= im.MAX_WINDOW_S and float(it.qty) > 0
        assert it.intent(path.symbol).window_s == it.window_s              # the engine's own grammar reads it


def test_informed_sides_match_the_realised_mid_move(path):
    informed = [i for i in im.generate(path, 0, 12, 3) if i.kind == im.INFORMED]
    assert len(informed) == 12
    for it in informed:
        move = path.mid_at(it.time_ns + int(it.horizon_s * SEC)) - path.mid_at(it.time_ns)
        assert move != 0 and it.sign == (1 if move > 0 else -1)
        assert it.window_s <= it.horizon_s


def test_informed_intents_carry_an_edge_in_the_drawn_range(path):
    """Each informed intent sits on a recorded move of at least its drawn edge (or the largest of its draws);
    ``0:0`` is the first evaluations' rule: any non-zero move."""
    wide = [i for i in im.generate(path, 0, 12, 3, informedness=(3.0, 12.0))]
    legacy = [i for i in im.generate(path, 0, 12, 3, informedness=(0.0, 0.0))]
    for it in wide + legacy:
        m0 = path.mid_at(it.time_ns)
        move = (path.mid_at(it.time_ns + int(it.horizon_s * SEC)) - m0) / m0 * 1e4
        assert it.sign * move > 0 and it.edge_bps == pytest.approx(abs(move), abs=1e-3)
    assert np.mean([i.edge_bps for i in wide]) > np.mean([i.edge_bps for i in legacy])
    assert sum(i.edge_bps >= 3.0 for i in wide) >= 10
    with pytest.raises(Exception, match="informedness"):
        im.generate(path, 0, 1, 3, informedness=(5.0, 2.0))


def test_eval_options_refuse_a_bad_informedness_and_baselines_on_the_live_path():
    from engine.errors import ConfigError
    from engine.eval.cli import _settings

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    for bad in ("5", "0:3", "x:y", "8:4"):
        with pytest.raises(ConfigError, match="informedness"):
            _settings(parser.parse_args(["eval", "--informedness", bad]))
    assert _settings(parser.parse_args(["eval", "--informedness", "2:20"])).informedness == (2.0, 20.0)
    args = parser.parse_args(["eval", "--gap", "--gap-algos", "immediate", "--data", *SAMPLE])
    with pytest.raises(ConfigError, match="live path runs what a trader can ask for"):
        args.func(args)


def test_passes_never_overlap_and_keep_every_intent(path):
    intents = im.generate(path, 6, 6, 4)
    passes = im.pack(intents)
    assert sorted(i.id for p in passes for i in p) == sorted(i.id for i in intents)
    for p in passes:
        for x, y in itertools.pairwise(p):
            assert x.busy_until_ns <= y.time_ns


def test_evaluation_is_deterministic_and_accounts_for_every_intent(ds, path, result):
    again = evaluate(ds, FAST, path=path)
    assert again["measures"] == result["measures"] and again["algos"] == result["algos"]
    for algo in FAST.algos:
        ms = result["measures"][f"main/{algo}"]
        assert sorted(m["id"] for m in ms) == list(range(2 * FAST.n_intents))
        assert all(m["ok"] for m in ms)
        assert result["algos"][algo]["n_intents"] == 2 * FAST.n_intents
    imm = result["algos"]["immediate"]
    assert imm["completion_rate"] == 1.0 and imm["maker_share"] == 0.0 and imm["mean_cost_bps"] > 4.9  # taker fee


def test_bootstrap_interval_contains_the_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 50)
    lo, hi = bootstrap(x, seed=1)
    assert lo < x.mean() < hi and bootstrap(x, seed=1) == (lo, hi)
    sm = summarise([{"id": i, "kind": "uninformed", "ok": True, "cost": v, "all_in": v, "complete": True,
                     "filled_all": True, "overrun_ms": 0.0, "ttf": 1.0, "filled": 1.0, "maker": 0.0, "marks": {},
                     "edge_num": None, "edge_den": None} for i, v in enumerate(x)])
    assert sm["ci95_bps"][0] <= sm["mean_cost_bps"] <= sm["ci95_bps"][1]


class Probe(Sniper):
    """A sniper that records what it was shown at every call."""

    seen: list

    def step(self, sf, now):
        self.seen.append((now, sf.last_event_ns, sf.timing.py_score(self.spec.side, now)))
        return super().step(sf, now)


def probe_factory(seen: list):
    inner = make_factory({})

    def factory(name, spec, sf, now, new_id):
        algo = Probe(spec, new_id)
        algo.seen = seen
        return (algo, name) if name == "sniper" else inner(name, spec, sf, now, new_id)
    return factory


def test_no_algorithm_sees_a_message_before_its_exchange_time_plus_feed_latency(ds, path):
    seen: list = []
    intents = tuple(i for i in im.generate(path, 3, 0, 7))
    job = Job(ds.files, ds.symbol, "sniper", intents[:1], ("fixed:5", "fixed:2", "fixed:2"))
    [out] = run_job(job, probe_factory(seen))
    assert out["report"] is not None and len(seen) > 10
    assert all(last + 5 * MS <= now for now, last, _ in seen)


def test_bars_change_only_at_bar_boundaries(ds, path):
    seen: list = []
    it = im.generate(path, 1, 0, 8)[0]
    it = replace(it, window_s=30, max_bps=0.5)              # a tight cap: the sniper waits and keeps reading
    job = Job(ds.files, ds.symbol, "sniper", (it,), bar_ns=100 * MS)
    [out] = run_job(job, probe_factory(seen))
    assert out["report"] is not None and len(seen) > 50
    by_bar: dict[int, set] = {}
    for now, _, score in seen:
        by_bar.setdefault(now // (100 * MS), set()).add(score)
    assert all(len(v) == 1 for v in by_bar.values())            # constant inside a bar
    assert len({next(iter(v)) for v in by_bar.values()}) > 1     # and it does move between bars


def test_bar_feed_samples_the_kernel_at_the_boundary(ds):
    from engine.config import Config
    from engine.venues.sim import SimConfig
    from engine.venues.sim.tape import load_tape

    rp = EvalReplay(load_tape(list(ds.files)), SimConfig(), Config(), make_factory({}), bar_ns=SEC)
    assert isinstance(rp.feed, BarFeed)
    rp.run([])
    bt = rp.feed[ds.symbol].timing
    assert bt.samples > 100 and bt.bar * SEC <= rp.now


def test_json_document_has_the_keys_and_names_the_data(result):
    doc = orjson.loads(orjson.dumps(document([result], FAST)))
    for algo in FAST.algos:
        assert all(k in doc[algo] for k in KEYS)
        lo, hi = doc[algo]["ci95_bps"]
        assert lo <= doc[algo]["mean_cost_bps"] <= hi
    assert doc["data"]["seed"] == FAST.seed
    assert doc["data"]["sets"][0]["files"] == ["usdm_btcusdt_sample.gz"]
    assert "BTCUSDT 2023-04-04" in text([result], FAST)


def test_cli_json_and_plots(tmp_path):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", "--data", *SAMPLE, "--intents", "2", "--seed", "3", "--algos",
                              "immediate,sniper", "--latencies", "0,5", "--skip", "ablation,cost", "--workers", "1",
                              "--json", "--plot", str(tmp_path)])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        assert args.func(args) == 0
    doc = orjson.loads(buf.getvalue())
    assert doc["sniper"]["n_intents"] == 4 and not math.isnan(doc["immediate"]["mean_cost_bps"])
    sweep = doc["sets"]["BTCUSDT 2023-04-04 (other)"]["latency_sweep"]["sniper"]
    assert [p["latency_ms"] for p in sweep] == [0, 5]
    for name in ("shortfall.png", "latency.png", "bars.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_the_smart_vs_fast_board_has_a_row_per_capacity_with_its_latency(ds, path, tmp_path):
    """The kernels-only hybrid and the hybrid on a model trained here, on the same intents: cost, edge kept,
    completion and the decision path's latency, and the latency sweep per capacity, in the JSON and the text."""
    from engine.cli import main

    model = tmp_path / "lin.npz"
    assert main(["train", "--data", SAMPLE[0], "--out", str(model), "--capacity", "linear"]) == 0
    s = replace(FAST, algos=("immediate", "hybrid"), models=(str(model),), latencies_ms=(1, 20),
                experiments=frozenset({"latency"}))
    r = evaluate(ds, s, path=path)
    rows = {row["capacity"]: row for row in r["pareto"]}
    assert set(rows) == {"kernels", "lin"}
    for row in rows.values():
        assert row["completion_rate"] == 1.0 and row["decision_p50_us"] > 0
        assert [p["latency_ms"] for p in row["sweep"]] == [1, 20]
    assert rows["kernels"]["mean_all_in_bps"] == r["algos"]["hybrid"]["mean_all_in_bps"]
    assert "smart vs fast" in text([r], s) and "lin" in text([r], s)
    from engine.eval.plots import write_all

    png = [p for p in write_all([r], tmp_path / "plots") if p.name == "pareto.png"]
    assert png and png[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tune_searches_the_hybrid_per_model_and_refuses_validation_data(ds, tmp_path, monkeypatch):
    """``eval --tune --models``: the hybrid's grid once per model on the same intents, the lowest objective
    chosen and reported with its cost; a validation recording is refused before anything runs."""
    from engine.cli import main
    from engine.errors import ConfigError
    from engine.eval import tuned
    from engine.eval.tune import tune_models

    model = tmp_path / "lin.npz"
    assert main(["train", "--data", SAMPLE[0], "--out", str(model), "--capacity", "linear"]) == 0
    monkeypatch.setitem(tuned.GRID, "hybrid", {"cross_bps": [0.0, 5.0], "horizon_s": [1.0]})
    lines: list[str] = []
    s = replace(FAST, algos=("hybrid",), models=(str(model),))
    got = tune_models(ds, s, log=lines.append)
    assert set(got) == {"kernels", "lin"} and got["lin"]["params"]["cross_bps"] in (0.0, 5.0)
    assert got["kernels"]["params"] == tuned.params()["hybrid"] and got["kernels"]["mean_all_in_bps"] is not None
    assert got["lin"]["candidates_tied"] in (0, 1)
    scored = [float(x.rsplit("-> ", 1)[1].split()[0]) for x in lines if "-> " in x]
    assert len(scored) == 3 and got["lin"]["objective"] == pytest.approx(min(scored[1:]), abs=1e-3)
    if got["lin"]["candidates_tied"]:                   # a tie keeps the threshold in force (5), not the first
        assert got["lin"]["params"]["cross_bps"] == 5.0
    assert all("npz" not in x for x in lines)           # the model is named by its label, not its path
    held_out = replace(ds, files=("/any/where/usdm_btcusdt_20240719.gz",))      # one file of a validation pair
    with pytest.raises(ConfigError, match="is validation data"):
        tune_models(held_out, s)


def test_validation_data_is_recognised_file_by_file_trimmed_copies_included():
    """One guard for tune and train: any held-out file, alone, in a set, or trimmed (the bundled 2024-07-18
    samples are cut from the validation recordings), is validation data; the tuning set is development."""
    from engine.errors import ConfigError
    from engine.eval.data import DEV_FILES, file_role, refuse_validation, role_of
    from engine.feed.recording import sample_paths

    for f in sample_paths():                                  # the bundled 2024-07-18 BTCUSDT and ETHUSDT samples
        assert file_role(str(f)) == "validation"
    assert file_role("usdm_ethusdt_20240719.gz") == "validation" and file_role(SAMPLE[0]) == "other"
    assert role_of(DEV_FILES) == "development" and role_of(DEV_FILES[:1]) == "other"
    assert role_of((*DEV_FILES, "usdm_btcusdt_20240718.gz")) == "validation"
    with pytest.raises(ConfigError, match="tune on development data"):
        refuse_validation([SAMPLE[0], str(sample_paths()[0])], "tune")
    refuse_validation([SAMPLE[0], *DEV_FILES], "tune")        # development and other data pass


def test_gap_replay_variants_list_outcomes_in_intent_order(ds, path):
    """The bootstrap resamples by position: every gap variant (and the live list) must hold the same intents in
    the same order, whatever order the replay passes interleave them in."""
    from engine.eval import gap as gapmod

    intents = im.generate(path, 4, 4, seed=0)
    passes = im.pack(intents)
    flat = [it.id for p in passes for it in p]
    want = [it.id for it in sorted(intents, key=lambda x: (x.time_ns, x.id))]
    assert flat != want                                     # the passes interleave: concatenating breaks the order
    s = gapmod.GapSettings(algos=("immediate",), workers=1)
    out = gapmod.replay_outcomes(ds, passes, s)
    assert set(out) == {(v, "immediate") for v in gapmod.VARIANTS}
    for key, outs in out.items():
        assert [o["id"] for o in outs] == want, key


def test_eval_checks_model_files_before_any_replay_and_warns_when_in_sample(tmp_path, capsys):
    """A missing or non-model --models file and --models with --gap are one-line errors before anything runs; a
    model evaluated on its own training file says its numbers are in-sample."""
    from engine.cli import main

    base = ["eval", "--data", *SAMPLE, "--intents", "1", "--skip", "ablation,bars,cost,latency", "--workers", "1"]
    junk = tmp_path / "junk.npz"
    junk.write_text("not a model")
    for extra, said in ((["--models", str(tmp_path / "missing.npz")], "cannot read the model file"),
                        (["--models", str(junk)], "not the .npz zip archive"),
                        (["--gap", "--models", str(junk)], "--models belongs to the board")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and err.count("\n") == 1, err
    model = tmp_path / "lin.npz"
    assert main(["train", "--data", SAMPLE[0], "--out", str(model), "--capacity", "linear"]) == 0
    capsys.readouterr()
    assert main([*base, "--algos", "immediate,hybrid", "--models", str(model), "--json"]) == 0
    assert "lin.npz was trained on usdm_btcusdt_sample.gz" in capsys.readouterr().err
