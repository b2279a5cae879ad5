"""The Cython scanner against the orjson reference: real recordings, generated messages, and fuzzed bytes."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.feed.recording import read_messages
from engine.feed.reference import parse_message
from ext.parse import parse
from tests.conftest import SETS, shared_set


def both(data: bytes):
    try:
        fast = parse(data)
    except ValueError:
        fast = None
    try:
        ref = parse_message(data)
    except ValueError:
        ref = None
    return fast, ref


def test_bundled_sample_parses_identically(sample):
    msgs = read_messages([sample])
    kinds: dict[str, int] = {}
    for raw in msgs:
        fast = parse(raw)
        assert fast == parse_message(raw)
        kinds[fast["kind"]] = kinds.get(fast["kind"], 0) + 1
    assert kinds["depthUpdate"] > 1000 and kinds["trade"] > 1000 and kinds["bookTicker"] > 1000
    assert kinds["snapshot"] == 1


@pytest.mark.parametrize("name", list(SETS))
def test_shared_recordings_parse_identically(name):
    n = 0
    for raw in read_messages(shared_set(name)):
        assert parse(raw) == parse_message(raw)
        n += 1
    print(f"{name}: {n} messages agree")


def test_aggtrade_and_100ms_depth_from_multi_symbol_recording():
    from tests.conftest import SHARED

    path = SHARED / "binance-usdm-multi" / "BINANCE_FUTURES.ws.1.0"
    if not path.exists():
        pytest.skip("multi-symbol recording absent")
    kinds = set()
    for raw in read_messages([path]):
        fast = parse(raw)
        assert fast == parse_message(raw)
        kinds.add(fast["kind"])
    assert {"aggTrade", "depthUpdate", "bookTicker", "other"} <= kinds


DEC = st.builds(
    lambda w, f: f"{w}.{f}" if f else str(w),
    st.integers(0, 10**9),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=8)),
)
LEVELS = st.lists(st.tuples(DEC, DEC).map(list), max_size=30)
WS = st.sampled_from(["", " ", "\n", "\t ", "  "])


def _event(draw) -> dict:
    kind = draw(st.sampled_from(["depthUpdate", "bookTicker", "trade", "aggTrade", "markPriceUpdate"]))
    ids = st.integers(0, 2**62)
    ev = {"e": kind, "E": draw(ids), "s": draw(st.sampled_from(["BTCUSDT", "ETHUSDT"]))}
    if kind == "depthUpdate":
        ev.update(T=draw(ids), U=draw(ids), u=draw(ids), pu=draw(ids), b=draw(LEVELS), a=draw(LEVELS))
    elif kind == "bookTicker":
        ev.update(u=draw(ids), b=draw(DEC), B=draw(DEC), a=draw(DEC), A=draw(DEC), T=draw(ids))
    elif kind == "trade":
        ev.update(T=draw(ids), t=draw(ids), p=draw(DEC), q=draw(DEC), X=draw(st.sampled_from(["MARKET", "ADL"])),
                  m=draw(st.booleans()))
    elif kind == "aggTrade":
        ev.update(a=draw(ids), p=draw(DEC), q=draw(DEC), f=draw(ids), l=draw(ids), T=draw(ids), m=draw(st.booleans()))
    else:
        ev.update(p=draw(DEC), i=draw(DEC), P=draw(DEC), r=draw(DEC), T=draw(ids))
    if draw(st.booleans()):  # unknown keys of every JSON type must be skipped
        ev["zz"] = draw(st.recursive(st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.text(max_size=5),
                                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                                          max_size=3),
                                     max_leaves=6))
    return ev


def _dump(obj, draw) -> str:
    """JSON with the keys in a random order and random insignificant whitespace."""
    if isinstance(obj, dict):
        items = list(obj.items())
        random.Random(draw(st.integers(0, 2**32))).shuffle(items)
        parts = [f"{draw(WS)}{orjson.dumps(k).decode()}{draw(WS)}:{draw(WS)}{_dump(v, draw)}" for k, v in items]
        return "{" + ",".join(parts) + draw(WS) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(draw(WS) + _dump(v, draw) + draw(WS) for v in obj) + "]"
    return orjson.dumps(obj).decode()


@st.composite
def messages(draw) -> bytes:
    ev = _event(draw)
    shape = draw(st.sampled_from(["envelope", "bare", "snapshot"]))
    if shape == "snapshot":
        obj = {"lastUpdateId": draw(st.integers(0, 2**62)), "E": 1, "T": 2, "bids": draw(LEVELS),
               "asks": draw(LEVELS)}
    elif shape == "envelope":
        obj = {"stream": f"{ev['s'].lower()}@x", "data": ev}
    else:
        obj = ev
    return _dump(obj, draw).encode()


@settings(max_examples=600, deadline=None)
@given(messages())
def test_generated_messages_parse_identically(data):
    fast, ref = both(data)
    assert ref is not None, data
    assert fast == ref


@settings(max_examples=1500, deadline=None)
@given(messages(), st.data())
def test_fuzzed_bytes_never_crash_and_never_disagree(data, draw):
    buf = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        op = draw.draw(st.sampled_from(["flip", "cut", "dup"]))
        i = draw.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[i] = draw.draw(st.sampled_from(b'{}[]",:.-0123456789eE tfnx\\'))
        elif op == "cut":
            del buf[i:]
        elif buf:
            buf[i:i] = buf[i: i + draw.draw(st.integers(1, 10))]
    fast, ref = both(bytes(buf))
    if fast is not None and ref is not None:
        assert fast == ref


@pytest.mark.parametrize(
    "raw",
    [
        b'{"e":"depthUpdate","E":1,"T":1,"s":"X","U":1,"u":2,"pu":0,"b":[["1.5e3","1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"T":1,"s":"X","U":1,"u":2,"pu":0,"b":[["-1.5","1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"T":1,"s":"X","U":1,"u":2,"pu":0,"b":[["1.","1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"T":1,"s":"X","U":1,"u":2,"pu":0,"b":[[".5","1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"T":1,"s":"X","U":1,"u":2,"pu":0,"b":[["1234567890123456789","1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"T":1,"s":"X","U":1,"u":2,"b":[["1","1"]]}',
        b'{"e":"depthUpdate","E":1.5,"T":1,"s":"X","U":1,"u":2,"pu":0,"b":[],"a":[]}',
        b'{"e":"trade","E":1,"T":1,"s":"X","t":1,"p":"1","q":"1","m":"yes"}',
        b'{"e":"bookTicker","u":1,"s":"X","b":"1","B":"1","a":"2"}',
        b'{"stream":"x","data":{"e":"trade"',
        b'not json',
        b'',
        b'{"e":"trade","E":1,"T":1,"s":"X","t":1,"p":"1","q":"1","m":true} trailing',
    ],
)
def test_malformed_input_is_refused_by_both(raw):
    fast, ref = both(raw)
    assert fast is None and ref is None


def test_absent_optional_fields_read_as_zero_not_as_the_previous_message():
    from ext.feed import Feed  # noqa: F401 - the feed shares the scanner's record across messages

    first = b'{"e":"depthUpdate","E":777,"T":888,"s":"BTCUSDT","U":5,"u":6,"pu":4,"b":[],"a":[]}'
    second = b'{"e":"depthUpdate","s":"BTCUSDT","U":7,"u":8,"pu":6,"b":[],"a":[]}'
    parse(first)
    assert parse(second) == parse_message(second) and parse(second)["E"] == parse(second)["T"] == 0


def test_partial_depth_stream_is_not_a_diff():
    raw = (b'{"stream":"btcusdt@depth20@100ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT",'
           b'"U":1,"u":2,"pu":0,"b":[["1.0","1"]],"a":[]}}')
    assert parse(raw)["kind"] == "partialDepth" == parse_message(raw)["kind"]


def test_subscription_answer_is_other():
    assert parse(b'{"result":null,"id":1}') == {"kind": "other"} == parse_message(b'{"result":null,"id":1}')


def test_envelope_keys_beside_data_are_not_the_event(sample):
    """In a combined-stream envelope (its first key "stream"), only ``data`` is the event: a top-level "u" (or any
    event key) before or after ``data`` changes nothing, in the scanner and the reference alike."""
    raw = next(m for m in read_messages([sample]) if b'"depthUpdate"' in m)
    env = orjson.loads(raw)
    assert next(iter(env)) == "stream"
    want = parse(raw)
    for extra in ({"u": 1}, {"U": 5, "pu": 7}, {"s": "ETHUSDT", "E": 10**12}, {"b": [["1", "1"]], "e": "trade"},
                  {"u": ""}, {"T": "x"}):
        for before_data in (True, False):
            obj = ({"stream": env["stream"], **extra, "data": env["data"]} if before_data
                   else {"stream": env["stream"], "data": env["data"], **extra})
            data = orjson.dumps(obj)
            assert parse(data) == want == parse_message(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["u", "U", "pu", "E", "T"]), st.integers(0, 10**13), max_size=4)
       | st.dictionaries(st.sampled_from(["s", "e", "x"]), st.text(max_size=12), max_size=3),
       st.booleans())
def test_envelope_mutations_agree_with_the_reference(sample, extra, first):
    raw = next(m for m in read_messages([sample]) if b'"depthUpdate"' in m)
    env = orjson.loads(raw)
    obj = {**extra, **env} if first else {**env, **extra}
    fast, ref = both(orjson.dumps(obj))
    assert fast == ref
    if not first:                                       # still an envelope: the event read is data's, unchanged
        assert fast == parse(raw)
