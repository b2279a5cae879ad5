"""The metrics' building blocks: histograms, bounded labels, the market-data path's sampling, risk refusal levels."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine import bench
from engine.feed.live import SAMPLE, MarketData
from engine.metrics import (
    BUCKETS,
    HISTOGRAMS,
    ORDER_TYPES,
    Histogram,
    HistogramFamily,
    intent_outcome,
    order_kind,
    reject_code,
)
from engine.oms.reconcile import Reconciliation
from engine.risk import RiskGateway
from ext.feed import Feed


def test_buckets_span_a_microsecond_to_ten_seconds():
    assert BUCKETS[0] == 1e-6 and BUCKETS[-1] == 10.0 and list(BUCKETS) == sorted(set(BUCKETS))


def test_a_histogram_is_consistent_when_exposed():
    h = Histogram("tapeshot_test_seconds", "test")
    for v in (3e-6, 0.002, 0.002, 42.0, -1.0):                  # a negative sample (clocks apart) counts as 0
        h.observe(v)
    fam = h.family()
    buckets = {s.labels["le"]: s.value for s in fam.samples if s.name.endswith("_bucket")}
    assert buckets["1e-06"] == 1 and buckets["5e-06"] == 2 and buckets["0.0025"] == 4 and buckets["10.0"] == 4
    assert buckets["+Inf"] == 5 and sum(h.counts) == 5 and h.total == pytest.approx(42.004003)


def test_a_labelled_histogram_keeps_one_child_per_label_set_and_sums_them():
    fam = HistogramFamily("tapeshot_test2_seconds", "test", ("type",))
    a, b = fam.labels("limit_ioc"), fam.labels("market")
    assert fam.labels("limit_ioc") is a
    a.observe(0.001)
    b.observe(0.01)
    b.observe(0.02)
    assert sum(fam.counts) == 3 and fam.total == pytest.approx(0.031) and fam.buckets == BUCKETS
    counts = {s.labels["type"]: s.value for s in fam.family().samples if s.name.endswith("_count")}
    assert counts == {"limit_ioc": 1, "market": 2}


def test_order_round_trip_has_every_type_from_the_start():
    assert set(HISTOGRAMS["order_round_trip"].children) >= {(t,) for t in ORDER_TYPES}


@pytest.mark.parametrize(("type_", "tif", "kind"), [
    ("LIMIT", "IOC", "limit_ioc"), ("LIMIT", "FOK", "limit_ioc"), ("LIMIT", "GTX", "limit_gtx"),
    ("LIMIT", "GTC", "limit_gtc"), ("LIMIT", None, "limit_gtc"), ("MARKET", None, "market"),
    ("STOP_MARKET", None, "stop"), ("STOP", "GTC", "stop"), ("TRAILING_STOP_MARKET", None, "stop"),
    ("TAKE_PROFIT_MARKET", None, "take_profit"), ("TAKE_PROFIT", "GTC", "take_profit")])
def test_order_types_map_to_the_bounded_set(type_, tif, kind):
    assert order_kind(type_, tif) == kind and kind in ORDER_TYPES


def test_reject_codes_are_bounded():
    assert reject_code(-2019) == "-2019" and reject_code(-1021) == "-1021"
    assert reject_code(-987654) == "other" and reject_code(12345) == "other"


def test_intent_outcomes():
    assert intent_outcome("done", 10, 10) == "filled"
    assert intent_outcome("done", 4, 10) == "partial"
    assert intent_outcome("done", 0, 10) == "expired"
    assert intent_outcome("cancelled", 4, 10) == "cancelled"
    assert intent_outcome("failed", 0, 10) == intent_outcome("interrupted", 3, 10) == "failed"


def test_risk_refusals_are_counted_by_reason_and_level():
    gw = RiskGateway()
    gw.count_refusal("halted", "intent")
    gw.count_refusal("order_rate")
    gw.count_refusal("something new", "intent")
    assert gw.refused_levels == {("halted", "intent"): 1, ("order_rate", "order"): 1, ("other", "intent"): 1}
    assert gw.refused == {"halted": 1, "order_rate": 1, "something new": 1}


def test_reconciliation_differences_are_counted_by_kind():
    rec = Reconciliation()
    rec.differ("order", "order x: SUBMITTED -> FILLED")
    rec.differ("order", "venue has an order we did not place")
    rec.differ("position", "position BTCUSDT: journal 0 vs venue 1")
    assert rec.differences == {"order": 2, "position": 1} and len(rec.notes) == 3


class _NoStream:
    def __init__(self, *_args: object) -> None:
        pass


def _market_data(metrics: bool) -> tuple[MarketData, list[bytes]]:
    tape = bench.load_tape(None)
    start = bench._sync_point(tape)
    feed = Feed(tape.instruments)
    feed.replay(tape.messages[:start])
    sf = feed.symbols[0]
    md = MarketData(feed, None, "ws://127.0.0.1:1", None, lambda kind, s: None, kinds=(), stream_cls=_NoStream,
                    clock=lambda: sf.last_event_ns + 2_000_000, metrics=metrics)     # everything 2 ms late
    return md, tape.messages[start:]


def _samples(name: str, stream: str | None = None) -> float:
    """The histogram's sample count (feed latency: of one stream, or of every stream but mark)."""
    reg = CollectorRegistry()

    class Only:
        def collect(self):
            yield HISTOGRAMS[name].family()

    reg.register(Only())
    fams = text_string_to_metric_families(generate_latest(reg).decode())
    return sum(s.value for f in fams for s in f.samples if s.name.endswith("_count")
               and (s.labels.get("stream", "") != "mark" if stream is None else s.labels.get("stream") == stream))


def test_the_market_data_path_samples_one_message_in_sample():
    md, messages = _market_data(metrics=True)
    before, lat_before, marks = _samples("msg_to_decision"), _samples("feed_latency"), _samples("feed_latency", "mark")
    for m in messages[:SAMPLE * 20]:
        md.on_raw(m)
    timed = _samples("msg_to_decision") - before
    assert 0 < timed <= 20                                   # the sampled messages that changed a book
    assert _samples("feed_latency") - lat_before == timed    # and their latency, by stream
    n_marks = sum(b"markPriceUpdate" in m for m in messages[:SAMPLE * 20])
    assert _samples("feed_latency", "mark") - marks == n_marks > 0          # every markPriceUpdate
    depth = HISTOGRAMS["feed_latency"].labels(md.feed.symbols[0].symbol, "depth")
    assert depth.counts[BUCKETS.index(2.5e-3)] >= 1          # 2 ms late lands in the <= 2.5 ms bucket


def test_the_market_data_path_without_metrics_measures_nothing():
    md, messages = _market_data(metrics=False)
    before, lat_before, marks = _samples("msg_to_decision"), _samples("feed_latency"), _samples("feed_latency", "mark")
    for m in messages[:SAMPLE * 20]:
        md.on_raw(m)
    assert _samples("msg_to_decision") == before and _samples("feed_latency") == lat_before
    assert _samples("feed_latency", "mark") == marks
    assert md.feed.symbols[0].synced
