"""``tapeshot scorecard``: the trader's calls against random calls at the same moments, and what the engine kept,
checked against plain recomputations on synthetic ``tapeshot.dataset/2`` intent records."""

from __future__ import annotations

import random
from decimal import Decimal

import orjson
import pytest

from engine.cli import main
from engine.dataset import scorecard as sc
from engine.errors import ConfigError

H = (1, 5, 30, 60, 300)
MID = Decimal("50000")
T0 = 1_721_290_000_000
PNG = b"\x89PNG\r\n\x1a\n"


def intent(n: int, *, side: str = "BUY", moves: dict | None = None, kind: str = "enter", tags=(), tags_after=(),
           symbol: str = "BTCUSDT", window_s: float = 20.0, algo: str = "ladder", qty: str = "0.010",
           slip_bps: str = "1", fee: str = "0.2", saving: float | None = 0.5, shortfall: float | None = 1.0,
           created_ms: int | None = None) -> dict:
    """A v2 intent record: filled at once at ``slip_bps`` worse than the arrival mid, ``moves`` per horizon (a
    float: observed move_bps; a string: that status); last_fill rows carry a decoy move of 999 bps."""
    sign = 1 if side == "BUY" else -1
    q, f = Decimal(qty), Decimal(fee)
    price = MID * (1 + sign * Decimal(slip_bps) / 10_000)
    rows = []
    for h in H:
        m = (moves or {}).get(h, 0.0)
        rows.append(_row(h, m, sign, q, price, f))
        rows.append({"anchor": "last_fill", "h_s": h, "status": "observed", "move_bps": 999.0, "pnl_bps": 999.0})
    created = created_ms if created_ms is not None else T0 + n * 1000
    imm = None if saving is None or shortfall is None else saving + shortfall
    return {
        "type": "intent", "schema": "tapeshot.dataset/2", "id": f"i{n:04d}", "created_ms": created,
        "updated_ms": created, "date": "2024-07-18", "symbol": symbol, "side": side, "status": "done",
        "decision": {"kind": kind, "qty": qty, "window_s": window_s, "algo": algo},
        "rationale": {"text": "", "tags": list(tags), "tags_after": list(tags_after), "entries": []},
        "outcome": {"filled_qty": qty, "shortfall_bps": shortfall, "saving_bps": saving,
                    "immediate": {"cost_bps": imm, "enough_depth": True}, "horizons": rows},
    }


def _row(h: int, m, sign: int, q: Decimal, price: Decimal, fee: Decimal) -> dict:
    if isinstance(m, str):
        return {"anchor": "arrival", "h_s": h, "status": m, "move_bps": None, "pnl_bps": None, "mid": None,
                "anchor_mid": str(MID), "exec_qty": None, "pnl_usdt": None}
    mid = MID * (1 + sign * Decimal(str(m)) / 10_000)
    pnl = sign * q * (mid - price) - fee
    return {"anchor": "arrival", "h_s": h, "status": "observed", "move_bps": m, "anchor_mid": str(MID),
            "mid": str(mid), "exec_qty": str(q), "pnl_usdt": str(pnl), "pnl_bps": float(pnl / (q * price) * 10_000)}


def informed(n: int = 40, seed: int = 1) -> list[dict]:
    """Calls with an edge: moves mostly the call's way, some ties, one missing and one pending row, two exits."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        moves = {h: round(rnd.gauss(4.0, 3.0), 2) for h in H}
        if i % 10 == 3:
            moves[30] = 0.0                                     # a tie: not a hit
        out.append(intent(i, side=rnd.choice(("BUY", "SELL")), moves=moves, tags=("breakout",) if i % 2 else (),
                          tags_after=("lucky",), symbol="BTCUSDT" if i % 3 else "ETHUSDT",
                          window_s=(5.0, 20.0, 45.0, 120.0)[i % 4], algo=("ladder", "snipe")[i % 2],
                          saving=round(rnd.gauss(0.8, 1.0), 3), shortfall=round(rnd.gauss(1.5, 1.0), 3)))
    out[0]["outcome"]["horizons"][6] = _row(60, "missing", 1, Decimal(1), MID, Decimal(0))
    out[1]["outcome"]["horizons"][8] = _row(300, "pending", 1, Decimal(1), MID, Decimal(0))
    out.append(intent(900, kind="exit", moves={h: 50.0 for h in H}))
    out.append(intent(901, kind="exit", moves={h: 50.0 for h in H}))
    return out


def uninformed(n: int = 40, seed: int = 2) -> list[dict]:
    """Calls without an edge: the moves come in +m / -m pairs, so the mean edge is exactly zero."""
    rnd = random.Random(seed)
    out = []
    for i in range(0, n, 2):
        mag = {h: round(abs(rnd.gauss(0, 3.0)) + 0.1, 2) for h in H}
        out.append(intent(i, side=rnd.choice(("BUY", "SELL")), moves=mag))
        out.append(intent(i + 1, side=rnd.choice(("BUY", "SELL")), moves={h: -m for h, m in mag.items()}))
    return out


def observed(recs: list[dict], h: int) -> list[float]:
    return [r["move_bps"] for x in recs if x["decision"]["kind"] == "enter" for r in x["outcome"]["horizons"]
            if r["anchor"] == "arrival" and r["h_s"] == h and r["status"] == "observed"]


def by_h(card: dict, h: int) -> dict:
    return next(x for x in card["horizons"] if x["h_s"] == h)


@pytest.fixture(scope="module")
def card() -> dict:
    return sc.scorecard(informed(), seed=7)


def test_direction_matches_a_plain_recomputation(card):
    recs = informed()
    assert card["counts"]["enter"] == 40 and card["counts"]["exit"] == 2
    for h in H:
        moves = observed(recs, h)
        got = by_h(card, h)
        assert got["n"] == len(moves)
        assert got["hit_rate"] == pytest.approx(sum(m > 0 for m in moves) / len(moves), abs=1e-4)
        assert got["edge_bps"] == pytest.approx(sum(moves) / len(moves), abs=1e-3)
        pnls = [r["pnl_bps"] for x in recs if x["decision"]["kind"] == "enter" for r in x["outcome"]["horizons"]
                if r["anchor"] == "arrival" and r["h_s"] == h and r["status"] == "observed"]
        assert got["edge_kept_bps"] == pytest.approx(sum(pnls) / len(pnls), abs=1e-3)
    ties = by_h(card, 30)
    assert ties["hit_rate"] == pytest.approx(sum(m > 0 for m in observed(recs, 30)) / 40, abs=1e-4)
    assert sum(m == 0 for m in observed(recs, 30)) == 4           # ties exist and were counted as misses


def test_missing_and_pending_are_excluded_and_counted(card):
    assert (by_h(card, 60)["n"], by_h(card, 60)["missing"], by_h(card, 60)["pending"]) == (39, 1, 0)
    assert (by_h(card, 300)["n"], by_h(card, 300)["missing"], by_h(card, 300)["pending"]) == (39, 0, 1)
    assert by_h(card, 1)["n"] == 40 and by_h(card, 1)["missing"] == by_h(card, 1)["pending"] == 0


def test_execution_matches_a_plain_recomputation(card):
    entries = [x for x in informed() if x["decision"]["kind"] == "enter"]
    sav = [x["outcome"]["saving_bps"] for x in entries]
    sf = [x["outcome"]["shortfall_bps"] for x in entries]
    e = card["execution"]
    assert e["n"] == 40
    assert e["saving_bps"] == pytest.approx(sum(sav) / 40, abs=1e-3)
    assert e["shortfall_bps"] == pytest.approx(sum(sf) / 40, abs=1e-3)
    assert e["immediate_cost_bps"] == pytest.approx(sum(s + f for s, f in zip(sav, sf, strict=True)) / 40, abs=2e-3)


def test_intervals_hold_the_estimate_and_are_deterministic(card):
    again = sc.scorecard(informed(), seed=7)
    assert again == card
    for h in card["horizons"]:
        for est, ci in ((h["edge_bps"], h["edge_ci"]), (h["hit_rate"], h["hit_rate_ci"]),
                        (h["edge_kept_bps"], h["edge_kept_ci"])):
            assert ci[0] <= est <= ci[1]
    e = card["execution"]
    assert e["saving_ci"][0] <= e["saving_bps"] <= e["saving_ci"][1]
    assert sc.scorecard(informed(), seed=8)["horizons"][0]["edge_ci"] != card["horizons"][0]["edge_ci"]


def test_control_separates_informed_from_random(card):
    for h in card["horizons"]:
        ctl = h["control"]
        assert abs(ctl["edge_bps"]) < 0.5 and abs(ctl["hit_rate"] - 0.5) < 0.1
        assert ctl["edge_band_bps"][0] < 0 < ctl["edge_band_bps"][1]
        assert ctl["p_value"] < 0.01
    assert "carry information" in card["verdict"]["direction"]
    rand = sc.scorecard(uninformed(), seed=7)
    for h in rand["horizons"]:
        assert h["edge_bps"] == pytest.approx(0, abs=1e-9)
        assert h["control"]["p_value"] > 0.2
    assert "not distinguishable from random" in rand["verdict"]["direction"]
    assert rand["verdict"]["informative_h_s"] == []


def test_control_uses_the_raw_move_at_the_same_moments():
    """A control draw is a sign flip of the raw move: with every move +1 bps up, whatever the trader's side, the
    random calls' mean edge is the share of +1 signs minus the share of -1 signs."""
    recs = [intent(i, side=("BUY", "SELL")[i % 2], moves={h: (1.0 if i % 2 == 0 else -1.0) for h in H})
            for i in range(10)]
    card = sc.scorecard(recs, draws=500)
    h = by_h(card, 1)
    assert h["edge_bps"] == 0 and h["hit_rate"] == 0.5
    assert h["control"]["hit_rate"] == pytest.approx(0.5, abs=0.05)
    assert -1 <= h["control"]["edge_band_bps"][0] < 0 < h["control"]["edge_band_bps"][1] <= 1


def test_splits_by_tag_symbol_window_algo(card):
    recs = [x for x in informed() if x["decision"]["kind"] == "enter"]
    tags = {r["key"]: r for r in card["splits"]["tag"]}
    assert set(tags) == {"breakout", "(none)"}                   # "lucky" is only in tags_after
    moves = [r["move_bps"] for x in recs if x["rationale"]["tags"] for r in x["outcome"]["horizons"]
             if r["anchor"] == "arrival" and r["h_s"] == 60 and r["status"] == "observed"]
    assert tags["breakout"]["n"] == 20 and tags["breakout"]["n_obs"] == len(moves)
    assert tags["breakout"]["edge_bps"] == pytest.approx(sum(moves) / len(moves), abs=1e-3)
    assert tags["breakout"]["hit_rate"] == pytest.approx(sum(m > 0 for m in moves) / len(moves), abs=1e-4)
    sav = [x["outcome"]["saving_bps"] for x in recs if x["rationale"]["tags"]]
    assert tags["breakout"]["saving_bps"] == pytest.approx(sum(sav) / len(sav), abs=1e-3)
    assert {r["key"]: r["n"] for r in card["splits"]["symbol"]} == {"BTCUSDT": 26, "ETHUSDT": 14}
    assert [r["key"] for r in card["splits"]["window"]] == ["≤10 s", "≤30 s", "≤60 s", ">60 s"]
    assert [r["n"] for r in card["splits"]["window"]] == [10, 10, 10, 10]
    assert {r["key"] for r in card["splits"]["algo"]} == {"ladder", "snipe"}


def test_an_intent_with_several_tags_counts_in_each():
    card = sc.scorecard([intent(0, tags=("a", "b"), moves={60: 2.0}), intent(1, tags=("a",), moves={60: -1.0})])
    tags = {r["key"]: r for r in card["splits"]["tag"]}
    assert (tags["a"]["n"], tags["b"]["n"]) == (2, 1)
    assert tags["a"]["edge_bps"] == 0.5 and tags["b"]["edge_ci"] is None


def test_cumulative_pnl_is_direction_plus_execution():
    recs = [intent(2, side="SELL", moves={60: 3.0}, created_ms=T0 + 5),
            intent(1, side="BUY", moves={60: -2.0}, created_ms=T0 + 1),
            intent(3, side="BUY", moves={60: "missing"}, created_ms=T0 + 3)]
    p = sc.scorecard(recs)["pnl"]
    assert [s["id"] for s in p["series"]] == ["i0001", "i0002"] and p["n_skipped"] == 1
    # by hand: BUY 0.01 at 50005 (1 bps worse), mid 49990 at 60 s, fee 0.2; SELL 0.01 at 49995, mid 49985
    d1, e1 = Decimal("0.01") * (Decimal(49990) - MID), Decimal("0.01") * (MID - Decimal(50005)) - Decimal("0.2")
    d2, e2 = -Decimal("0.01") * (Decimal(49985) - MID), -Decimal("0.01") * (MID - Decimal(49995)) - Decimal("0.2")
    assert p["series"][0]["direction_usdt"] == float(d1) and p["series"][0]["execution_usdt"] == float(e1)
    assert p["series"][1]["cum_direction_usdt"] == float(d1 + d2)
    assert p["series"][1]["cum_execution_usdt"] == float(e1 + e2)
    assert p["total_usdt"] == float(d1 + d2 + e1 + e2)
    for s in sc.scorecard(informed())["pnl"]["series"]:
        assert s["cum_pnl_usdt"] == pytest.approx(s["cum_direction_usdt"] + s["cum_execution_usdt"], abs=1e-9)
        assert s["pnl_usdt"] == pytest.approx(s["direction_usdt"] + s["execution_usdt"], abs=2e-6)


def test_decimal_objects_work_like_strings():
    recs = informed(12)
    as_dec = orjson.loads(orjson.dumps(recs))
    for x in as_dec:
        for r in x["outcome"]["horizons"]:
            for k in ("anchor_mid", "mid", "exec_qty", "pnl_usdt"):
                if r.get(k) is not None:
                    r[k] = Decimal(r[k])
    assert sc.scorecard(as_dec) == sc.scorecard(recs)


def test_small_samples_say_too_few():
    card = sc.scorecard([intent(0, moves={h: 5.0 for h in H})])
    h = by_h(card, 30)
    assert h["n"] == 1 and h["edge_ci"] is None and h["hit_rate_ci"] is None
    assert card["execution"]["saving_ci"] is None
    text = sc.summary_text(card)
    assert "too few" in text and "carry information" not in text


def test_summary_is_short_and_truncates_splits():
    recs = [intent(i, tags=(f"t{i}",), moves={h: 1.0 + i % 3 for h in H}) for i in range(30)]
    text = sc.summary_text(sc.scorecard(recs, draws=200))
    assert len(text) < 3000
    assert "… and 25 more" in text and "bps" in text and "USDT" in text and "ties" in text


def test_loads_jsonl_and_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    ds = pytest.importorskip("pyarrow.dataset")
    recs = informed(12)
    jl = tmp_path / "intents.jsonl"
    lines = [*recs, {"type": "order", "client_order_id": "x"}, {"type": "fill", "trade_id": 1}]
    jl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    assert sc.load_intents(jl) == [{**r, "state": None} for r in orjson.loads(orjson.dumps(recs))]   # not read
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "type"} for r in _with_decimals(recs)])
    ds.write_dataset(table, tmp_path / "ds" / "intents", format="parquet", partitioning=["date", "symbol"],
                     partitioning_flavor="hive")
    loaded = sc.load_intents(tmp_path / "ds")
    assert len(loaded) == 14 and isinstance(loaded[0]["outcome"]["horizons"][0]["mid"], Decimal)
    assert {r["symbol"] for r in loaded} == {"BTCUSDT", "ETHUSDT"}
    a, b = sc.scorecard(loaded), sc.scorecard(recs)
    assert a["horizons"] == b["horizons"] and a["pnl"]["total_usdt"] == b["pnl"]["total_usdt"]


def _with_decimals(recs: list[dict]) -> list[dict]:
    out = orjson.loads(orjson.dumps(recs))
    for x in out:
        for r in x["outcome"]["horizons"]:
            for k in ("anchor_mid", "mid", "exec_qty", "pnl_usdt"):
                r[k] = None if r.get(k) is None else Decimal(r[k]).quantize(Decimal("1e-18"))
    return out


def test_loads_a_journal_through_export_records(tmp_path, monkeypatch):
    from engine.dataset import export
    from engine.oms.journal import Journal

    j = Journal(tmp_path / "journal.sqlite")
    j.start()
    j.close()
    rec = intent(0, moves={60: 1.0})
    monkeypatch.setattr(export, "records", lambda conn: iter([rec, {"type": "order", "client_order_id": "x"}]))
    assert sc.load_intents(tmp_path / "journal.sqlite") == [{**rec, "state": None}]     # the scorecard's part


def test_unreadable_sources_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        sc.load_intents(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "intent"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2"):
        sc.load_intents(bad)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError):
        sc.load_intents(junk)
    with pytest.raises(ConfigError, match="horizon"):
        sc.scorecard(informed(4), pnl_horizon=7)


def test_plots_are_pngs(tmp_path, card):
    pytest.importorskip("matplotlib")
    paths = sc.plot_scorecard(card, tmp_path / "plots")
    assert [p.name for p in paths] == ["scorecard_edge.png", "scorecard_pnl.png"]
    assert all(p.read_bytes().startswith(PNG) for p in paths)
    assert sc.plot_png(sc.scorecard([intent(0, kind="exit")])).startswith(PNG)     # both panels, empty ones too


def test_cli_prints_json_and_text(tmp_path, capsys):
    jl = tmp_path / "intents.jsonl"
    jl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in informed(12)))
    assert main(["scorecard", str(jl), "--json", "--seed", "3", "--horizon", "30"]) == 0
    out = capsys.readouterr().out
    card = orjson.loads(out)
    assert card["params"]["pnl_horizon"] == 30 and card["counts"]["enter"] == 12
    assert main(["scorecard", str(jl)]) == 0
    assert "Verdict:" in capsys.readouterr().out
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["scorecard", str(empty), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no intents" in captured.err
