"""Learned timing models (engine.learn, ext.learn): features, labels, capacities, model files, the CLI."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import orjson
import pytest

from engine.bench import load_tape
from engine.cli import main
from engine.config import load as load_config
from engine.errors import ConfigError
from engine.eval.data import VALIDATION_FILES
from engine.feed.recording import sample_path
from engine.learn import models as M
from engine.learn.features import (
    FEATURE_SET_ID,
    FEATURES,
    KIND,
    feature_set_id,
    features_now,
    featurize,
    new_state,
    targets,
)
from engine.learn.metrics import auc, spearman
from engine.learn.modelfile import FORMAT, TimingModel, load_model, read, save
from engine.learn.runtime import ModelRuntime
from ext import learn as K
from ext.feed import Feed

SEC = 1_000_000_000


@pytest.fixture(scope="module")
def fz():
    return featurize([sample_path()])


@pytest.fixture(scope="module")
def tape():
    return load_tape([sample_path()])


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


# ---- features ------------------------------------------------------------------------------------------------


def test_feature_list_is_the_kernels_and_documented():
    assert tuple(K.FEATURE_NAMES) == FEATURES and len(set(FEATURES)) == len(FEATURES)
    assert set(KIND.values()) <= {"-", "S", "P", "N"}
    assert feature_set_id() == FEATURE_SET_ID and len(FEATURE_SET_ID) == 12
    assert feature_set_id((*FEATURES[:-1], "other")) != FEATURE_SET_ID
    import engine.learn.features as F

    for name in FEATURES:                          # every feature has a row in the module's table
        assert f" {name} " in F.__doc__


def test_batch_rows_equal_live_rows_bit_for_bit(fz, tape):
    """The live path (features_now at every synced depth update) reproduces every batch row exactly."""
    feed = Feed(tape.instruments)
    sf = feed.symbols[0]
    st = new_state(fz.step_ms)
    live: dict[tuple[int, int], np.ndarray] = {}
    for m in tape.messages:
        if feed.on_message(m) == 1 and sf.synced and sf.book.best_bid < sf.book.best_ask:
            t, before = sf.last_book_ns, st.n_pushed
            buy = features_now(sf, t, 1, st)
            sell = features_now(sf, t, -1, st)
            if st.n_pushed > before:
                live[(t, 1)], live[(t, -1)] = buy, sell
    assert len(fz) > 1000
    got = np.array([live[(int(t), int(s))] for t, s in zip(fz.t_ns, fz.side, strict=True)])
    assert np.array_equal(_bits(got), _bits(fz.X))


def test_kernel_features_are_the_snapshot_signals(tape):
    """Spot checks against timing.snapshot and the book, computed in Python from their definitions."""
    feed = Feed(tape.instruments)
    sf = feed.symbols[0]
    st = new_state()
    checked = depth = 0
    for m in tape.messages:
        if feed.on_message(m) != 1 or not sf.synced:
            continue
        depth += 1
        if depth % 499:
            continue
        now = sf.last_book_ns + 37_000_000                  # between events: everything decays to now
        snap = sf.timing.snapshot(now)
        (pb, qb), (pa, qa) = sf.book.best(0), sf.book.best(1)
        for side in (1, -1):
            x = features_now(sf, now, side, st)
            f = dict(zip(FEATURES, x.tolist(), strict=True))
            own, opp = ("bid", "ask") if side == 1 else ("ask", "bid")
            assert f["side"] == side
            assert f["ofi_norm"] == np.float32(side * snap["ofi_norm"])
            assert f["tape_imb_slow"] == np.float32(side * snap["tape_imb_slow"])
            assert f["micro_drift"] == np.float32(side * snap["micro_drift"])
            assert f["queue_imb"] == np.float32(side * (qb - qa) / (qb + qa))
            assert f["queue_own_log"] == np.float32(math.log1p(qb if side == 1 else qa))
            assert f["vacuum_own"] == np.float32(snap[f"vacuum_{own}"])
            assert f["pulled_opp"] == np.float32(snap[f"pulled_{opp}"])
            assert f["band_own_log"] == np.float32(math.log1p(snap[f"band_depth_{own}"]))
            a = snap[f"absorption_{own}"]
            assert f["absorption_own"] == np.float32(a / (1 + a))
            flow = snap["buy_vol_fast" if side == 1 else "sell_vol_fast"]
            assert f["flow_with_log"] == np.float32(math.log1p(flow))
            assert f["spread_ticks"] == pa - pb
            assert f["spread_avg"] == np.float32(snap["spread_avg"])
            assert 0 <= f["trade_age_s"] <= 10
        checked += 1
    assert checked >= 3


def test_unusable_book_gives_nan_and_bad_side_is_refused(tape):
    feed = Feed(tape.instruments)
    sf = feed.symbols[0]
    st = new_state()
    assert np.isnan(features_now(sf, 0, 1, st)).all()          # nothing synced yet
    with pytest.raises(ValueError):
        features_now(sf, 0, 0, st)
    with pytest.raises(ValueError):
        K.features_into(sf, 0, 1, st, np.empty(3, np.float32))


# ---- labels --------------------------------------------------------------------------------------------------


def _raw_trades(tape) -> list[tuple[int, int, int, bool]]:
    sym = tape.instruments[0]
    out = []
    for m in tape.messages:
        d = orjson.loads(m)
        d = d.get("data", d)
        if d.get("e") == "trade" and d.get("X", "MARKET") == "MARKET":
            out.append((d["T"] * 1_000_000, sym.price_to_ticks(d["p"]), sym.qty_to_lots(d["q"]), bool(d["m"])))
    return out


def _by_hand(fz, trades, r: int) -> tuple[list[float], bool]:
    ser, u, side = fz.series, int(fz.upd[r]), int(fz.side[r])
    t, mid0 = int(ser.t[u]), (int(ser.bid[u]) + int(ser.ask[u])) / 2
    moves = []
    for h in (0.5, 1, 2, 5):
        j = next(k for k in range(len(ser.t)) if ser.t[k] >= t + h * SEC)
        moves.append(side * ((int(ser.bid[j]) + int(ser.ask[j])) / 2 - mid0) / mid0 * 1e4)
    price = int(ser.bid[u]) if side == 1 else int(ser.ask[u])
    queue = int(ser.bid_qty[u]) if side == 1 else int(ser.ask_qty[u])
    at, through = 0, False
    for tt, px, q, sell in trades:
        if t < tt <= t + 2 * SEC and sell == (side == 1):
            through |= px < price if side == 1 else px > price
            at += q if px == price else 0
    book = any((int(ser.ask[k]) <= price if side == 1 else int(ser.bid[k]) >= price)
               for k in range(len(ser.t)) if t < ser.t[k] <= t + 2 * SEC)
    return moves, through or at > queue or book


def test_labels_match_a_hand_computation(fz, tape):
    trades = _raw_trades(tape)
    fills = fz.y["fill_2s"]
    rows = [*np.flatnonzero(fills == 1)[::97][:5], *np.flatnonzero(fills == 0)[::211][:5], 0, len(fz) - 1]
    assert len({int(fz.side[r]) for r in rows}) == 2
    for r in rows:
        moves, fill = _by_hand(fz, trades, int(r))
        for name, want in zip(targets()[:4], moves, strict=True):
            assert fz.y[name][r] == pytest.approx(want, rel=1e-12, abs=1e-12), (r, name)
        assert bool(fz.y["fill_2s"][r]) == fill, r
    assert 0.05 < fills.mean() < 0.95
    for name in targets()[:4]:                                # a sell's move is the buy's, negated
        y = fz.y[name]
        assert np.array_equal(y[0::2], -y[1::2])
    assert fz.t_ns[-1] + 5 * SEC <= fz.series.t[-1]           # no label past the tape's end


# ---- capacities ----------------------------------------------------------------------------------------------


def _rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _ones(model: M.Model, X: np.ndarray) -> np.ndarray:
    return np.array([model.predict_one(x) for x in X])


def test_linear_recovers_coefficients_and_kernel_is_exact():
    X = _rows(3000, 4)
    y = X.astype(np.float64) @ np.array([1.5, -2.0, 0.0, 0.25]) + 0.7
    y += np.random.default_rng(1).normal(0, 0.05, len(y))
    m = M.Linear(alpha=1e-6).fit(X, y)
    assert m.w == pytest.approx([1.5, -2.0, 0.0, 0.25], abs=0.01) and m.b == pytest.approx(0.7, abs=0.01)
    assert np.array_equal(_ones(m, X), m.predict(X))             # bit for bit
    with pytest.raises(ValueError):
        m.predict_one(np.zeros(3, np.float32))
    with pytest.raises(ValueError):
        m.predict_one(np.zeros(4, np.float64))


def test_logistic_separates_and_kernel_agrees():
    X = _rows(3000, 3)
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.2 * np.random.default_rng(2).normal(size=3000) > 0).astype(float)
    m = M.Logistic().fit(X, y)
    assert auc(y, m.predict(X)) > 0.8
    assert np.array_equal(np.array([m.kernel.score(x) for x in X]), m.score(X))     # the score: bit for bit
    assert np.max(np.abs(_ones(m, X) - m.predict(X))) <= 1e-12                      # after libm vs numpy exp


def test_trees_fit_a_step_and_kernel_is_exact():
    X = _rows(4000, 3)
    y = np.where(X[:, 1] > 0.3, 2.0, -1.0) + np.random.default_rng(3).normal(0, 0.05, 4000)
    m = M.Trees(n_trees=60, lr=0.3).fit(X, y)
    assert np.mean(np.abs(m.predict(X) - np.where(X[:, 1] > 0.3, 2.0, -1.0))) < 0.1
    assert np.array_equal(_ones(m, X), m.predict(X))
    assert m.kernel.depth <= 3
    c = M.Trees(task=M.CLASSIFICATION, n_trees=30).fit(X, (X[:, 0] > 0).astype(float))
    assert auc(X[:, 0] > 0, c.predict(X)) > 0.95
    assert np.array_equal(np.array([c.kernel.score(x) for x in X]), c.score(X))


def test_mlp_fits_xor_and_kernel_agrees():
    X = np.random.default_rng(4).uniform(-1, 1, (3000, 2)).astype(np.float32)
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(float)
    m = M.MLP(task=M.CLASSIFICATION, epochs=60, lr=1e-2, early_frac=0).fit(X, y)
    assert np.mean((m.predict(X) > 0.5) == y) > 0.9
    assert np.max(np.abs(_ones(m, X) - m.predict(X))) <= 1e-12       # numpy tanh vs libm tanh: within 1e-12
    r = M.MLP(epochs=30).fit(X, X[:, 0] * X[:, 1] * 4)
    assert spearman(r.predict(X), X[:, 0] * X[:, 1]) > 0.8


def test_trees_kernel_refuses_malformed_arrays():
    with pytest.raises(ValueError):
        K.TreesKernel(np.array([0], np.int32), np.zeros(1), np.array([5], np.int32), np.array([5], np.int32),
                      np.zeros(1), np.array([0], np.int32), 0.0, 2)
    with pytest.raises(ValueError):                    # a cycle
        K.TreesKernel(np.array([0, 0], np.int32), np.zeros(2), np.array([1, 0], np.int32),
                      np.array([1, 0], np.int32), np.zeros(2), np.array([0], np.int32), 0.0, 2)


# ---- model files ---------------------------------------------------------------------------------------------


def _model(capacity: str, symbol: str = "BTCUSDT") -> TimingModel:
    X = _rows(600, len(FEATURES), 5)
    y = X[:, 1] - X[:, 9] + np.random.default_rng(6).normal(0, 0.5, 600)
    models = {"move_1s": M.make(capacity, M.REGRESSION).fit(X, y),
              "fill_2s": M.make(capacity, M.CLASSIFICATION).fit(X, (y > 0).astype(float))}
    for m in models.values():
        if isinstance(m, M.Trees | M.MLP):
            assert m.params()                                   # early stopping ran or was skipped cleanly
    meta = {"capacity": capacity, "symbol": symbol, "feature_set_id": FEATURE_SET_ID, "features": list(FEATURES),
            "targets": {t: {"task": m.task, "kind": m.name, "params": m.params()} for t, m in models.items()},
            "step_ms": 100, "lag_ms": 500, "scores": {"tail": {"x": float("nan")}}}
    return TimingModel(meta, models)


@pytest.mark.parametrize("capacity", M.CAPACITIES)
def test_model_file_round_trip(capacity, tmp_path):
    tm = _model(capacity)
    path = save(tmp_path / "m", tm)
    assert path.suffix == ".npz"
    back = load_model(path, "BTCUSDT")
    assert back.meta["format"] == FORMAT and back.capacity == capacity and back.targets == tm.targets
    assert back.meta["scores"]["tail"]["x"] is None                  # NaN is stored as null
    X = _rows(50, len(FEATURES), 7)
    for t in tm.targets:
        assert np.array_equal(back.models[t].predict(X), tm.models[t].predict(X))
        assert np.array_equal(_ones(back.models[t], X), _ones(tm.models[t], X))


def _rewrite_meta(path, **changes) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"][()]))
    meta.update(changes)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def test_load_refuses_wrong_symbol_feature_set_format_and_garbage(tmp_path):
    path = save(tmp_path / "m.npz", _model("linear"))
    with pytest.raises(ConfigError, match="trained for 'BTCUSDT', not 'ETHUSDT'"):
        load_model(path, "ETHUSDT")
    with pytest.raises(ConfigError, match="feature set"):
        load_model(path, "BTCUSDT", feature_set_id="0123456789ab")
    _rewrite_meta(path, feature_set_id="0123456789ab")
    with pytest.raises(ConfigError, match="feature set '0123456789ab'"):
        load_model(path, "BTCUSDT")
    _rewrite_meta(path, format="tapeshot.model/2")
    with pytest.raises(ConfigError, match=r"unknown model format 'tapeshot\.model/2'"):
        load_model(path, "BTCUSDT")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ConfigError, match="not a readable model file"):
        load_model(junk, "BTCUSDT")
    with pytest.raises(ConfigError, match="not found"):
        read(tmp_path / "missing.npz")


# ---- CLI, runtime, bench, config -----------------------------------------------------------------------------


def test_train_refuses_a_validation_recording(tmp_path, capsys):
    name = VALIDATION_FILES[0][0]
    copy = tmp_path / name
    shutil.copy(sample_path(), copy)
    assert main(["train", "--data", str(copy), "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert name in err and "train on development data" in err
    assert not (tmp_path / "m.npz").exists()


def test_train_end_to_end_on_the_bundled_sample(tmp_path, capsys, tape):
    out = tmp_path / "btc.npz"
    assert main(["train", "--data", str(sample_path()), "--out", str(out), "--capacity", "linear"]) == 0
    text = capsys.readouterr().out
    assert "fill_2s" in text and "AUC" in text and "IC" in text and f"wrote {out}" in text
    rt = ModelRuntime(out, "BTCUSDT")
    meta = rt.model.meta
    assert meta["training"]["files"][0]["sha256"] and meta["training"]["rows"] > 1000
    assert set(meta["scores"]["tail"]) == set(targets()) and meta["inference_ns"]["fill_2s"]["p50"] > 0
    assert 0.5 < meta["scores"]["tail"]["fill_2s"]["auc"] <= 1
    feed = Feed(tape.instruments)
    sf = feed.symbols[0]
    twin = new_state()                                   # advanced exactly like the runtime's own state
    for m in tape.messages[: len(tape.messages) // 2]:
        if feed.on_message(m) == 1 and sf.synced:
            rt.observe(sf, sf.last_book_ns)
            features_now(sf, sf.last_book_ns, 1, twin)
    now = sf.last_event_ns
    got = rt.predict(sf, now, -1)
    assert set(got) == set(targets()) and all(np.isfinite(v) for v in got.values())
    assert 0 <= got["fill_2s"] <= 1
    assert rt.model.predict_row(features_now(sf, now, -1, twin)) == got          # the same kernels, exactly
    move, p = rt.predictor(2.0)(sf, now, 1)                                     # Hybrid's side: 1 is a sell
    assert move == got["move_2s"] and p == got["fill_2s"]
    with pytest.raises(ConfigError, match="ETHUSDT"):
        ModelRuntime(out, "ETHUSDT")
    from ext.timing import Timing

    other = Feed(tape.instruments, timings=[Timing(tau_ofi_ns=2 * SEC)]).symbols[0]
    with pytest.raises(ConfigError, match="tau_ofi_ns"):
        ModelRuntime(out, "BTCUSDT").predict(other, now, 1)


def test_bench_functions(tape):
    from engine.learn.bench import decision_with_model_ns, inference_ns

    tm = _model("trees")
    cost = inference_ns(tm.models["fill_2s"], _rows(300, len(FEATURES)))
    assert cost["n"] == 300 and cost["p50"] >= 0 and cost["p99"] >= cost["p50"]
    short = type(tape)(tape.paths, tape.messages[:6000], tape.instruments)
    res = decision_with_model_ns(short, tm)
    assert {"p50", "p99", "base_p50", "base_p99"} <= set(res) and res["p50"] > 0


def test_model_config(tmp_path):
    assert load_config(env={}).model.path == ""
    assert load_config(env={"TAPESHOT_MODEL__PATH": "/x/btc.npz"}).model.path == "/x/btc.npz"
    with pytest.raises(ConfigError, match=r"model\.path"):
        load_config(env={"TAPESHOT_MODEL__PATH": "/x/btc.txt"})
