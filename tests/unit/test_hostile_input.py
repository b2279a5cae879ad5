"""Hostile user-data-stream frames change nothing: the real ``UserStream.handle`` in front of the real
``OrderManager.on_user_event`` counts, logs (without the listenKey) and skips every malformed event, and the
next good event is applied as if nothing had happened. Hypothesis mutates a real ORDER_TRADE_UPDATE field by field.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import DataError
from engine.oms.journal import Journal
from engine.oms.manager import OrderManager
from engine.oms.orders import Order, OState, Trigger
from engine.venues.binance.gateway import OrderGateway
from engine.venues.binance.streams import UserStream, read_order_update

LISTEN_KEY = "LkSeCrEt0123456789listenKeyThatMustNeverBeLogged"
CID = "i1-1"


def trade(tid: int = 7, qty: str = "0.010", z: str = "0.010", x: str = "TRADE") -> dict[str, Any]:
    """An ORDER_TRADE_UPDATE as the sim venue (and Binance) sends it, for order ``CID``."""
    return {"e": "ORDER_TRADE_UPDATE", "E": 1680000000123, "T": 1680000000120,
            "o": {"s": "BTCUSDT", "c": CID, "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.020", "p": "28000.0",
                  "ap": "28000.0", "sp": "0", "x": x, "X": "PARTIALLY_FILLED", "i": 4242, "l": qty, "z": z,
                  "L": "28000.0", "N": "USDT", "n": "0.0112", "T": 1680000000120, "t": tid, "b": "0", "a": "0",
                  "m": True, "R": False, "wt": "CONTRACT_PRICE", "ot": "LIMIT", "ps": "BOTH", "cp": False,
                  "rp": "0", "pP": False, "si": 0, "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0}}


def with_o(**fields: Any) -> bytes:
    ev = trade()
    ev["o"].update(fields)
    return orjson.dumps(ev)


HOSTILE: list[bytes] = [
    b"not json",
    b"",
    b"\xff\xfe\x00",
    b"[]",
    b'[{"e": "ORDER_TRADE_UPDATE"}]',
    b"42",
    b'"ORDER_TRADE_UPDATE"',
    b"null",
    b'{"e":"ORDER_TRADE_UPDATE"}',
    b'{"e":"ORDER_TRADE_UPDATE","o":null}',
    b'{"e":"ORDER_TRADE_UPDATE","o":[1,2]}',
    b'{"e":"ORDER_TRADE_UPDATE","o":"x"}',
    with_o(z="abc"),
    with_o(z=None, L=None),
    with_o(L=None),
    with_o(L="NaN"),
    with_o(l="-1"),
    with_o(l="0"),
    with_o(z="1e999999"),
    with_o(z="9" * 40),
    with_o(t="7"),
    with_o(t=None),
    with_o(t=True),
    with_o(t=-1),
    with_o(i="abc"),
    with_o(i=1.5),
    with_o(c=["i1-1"]),
    with_o(c={"a": 1}),
    with_o(x=5),
    with_o(m="yes"),
    with_o(n={"fee": 1}),
    with_o(T="soon"),
]


@pytest.fixture
def oms(tmp_path: Path) -> Iterator[OrderManager]:
    """A real OrderManager on a real journal with one working order, ``CID`` (0.020 BTCUSDT)."""
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start()
    manager = OrderManager(OrderGateway(None), journal, {})  # type: ignore[arg-type]
    o = Order(CID, "BTCUSDT", "BUY", "LIMIT", Decimal("0.020"), Decimal("28000.0"), "GTC")
    o.apply(Trigger.SUBMIT)
    o.apply(Trigger.ACK)
    manager.orders[CID] = o
    manager.live.add(CID)
    try:
        yield manager
    finally:
        journal.close()


def user_stream(oms: OrderManager) -> UserStream:
    """The real user stream class, its handler the OMS's; never connected (frames go to ``handle``)."""
    user = UserStream("ws://127.0.0.1:9", None, None, oms.on_user_event)  # type: ignore[arg-type]
    user.listen_key = LISTEN_KEY
    return user


def state(oms: OrderManager) -> tuple:
    o = oms.orders[CID]
    return o.state, o.filled, o.venue_order_id, dict(oms.venue_filled), oms.positions.get("BTCUSDT").qty


def test_every_hostile_frame_is_counted_logged_without_secrets_and_skipped(oms, caplog):
    user = user_stream(oms)
    before = state(oms)
    caplog.set_level(logging.DEBUG)
    secret_frames = [b'{"e":"ORDER_TRADE_UPDATE","listenKey":"' + LISTEN_KEY.encode() + b'","o":5}',
                     b'{"listenKey":"' + LISTEN_KEY.encode() + b'"',
                     b'["' + LISTEN_KEY.encode() + b'"]']

    async def main() -> None:
        for frame in HOSTILE + secret_frames:
            await user.handle(frame)

    asyncio.run(main())
    assert user.bad_events == len(HOSTILE) + len(secret_frames)
    assert state(oms) == before                        # nothing changed
    assert LISTEN_KEY not in caplog.text
    assert caplog.text.count("malformed event skipped") == user.bad_events
    asyncio.run(user.handle(orjson.dumps(trade())))    # the next good event is applied as ever
    o = oms.orders[CID]
    assert (o.filled, o.venue_order_id, o.state) == (Decimal("0.010"), 4242, OState.PARTIALLY_FILLED)
    assert user.bad_events == len(HOSTILE) + len(secret_frames)


def test_an_event_for_an_unknown_order_or_of_another_kind_is_not_malformed(oms):
    user = user_stream(oms)
    ev = trade()
    ev["o"]["c"] = "someone-else"

    async def main() -> None:
        await user.handle(orjson.dumps(ev))
        await user.handle(b'{"e":"ACCOUNT_UPDATE","a":{"m":"ORDER"}}')
        await user.handle(b'{"e":"TRADE_LITE","x":1}')
        await user.handle(b'{"no":"e"}')

    asyncio.run(main())
    assert (user.bad_events, oms.unknown_events) == (0, 1)


def test_a_handler_failure_is_counted_and_the_stream_goes_on(caplog):
    seen: list[dict] = []

    def handler(ev: dict) -> None:
        if ev.get("boom"):
            raise KeyError("boom")
        seen.append(ev)

    user = UserStream("ws://127.0.0.1:9", None, None, handler)  # type: ignore[arg-type]
    asyncio.run(user.handle(b'{"e":"X","boom":1}'))
    asyncio.run(user.handle(b'{"e":"X"}'))
    assert user.bad_events == 1 and seen == [{"e": "X"}]
    assert "'X' event failed in its handler: KeyError" in caplog.text


@pytest.mark.parametrize("fields, needle", [
    ({"z": "abc"}, "o.z is str 'abc', not a decimal string"),
    ({"L": None}, "o.L is NoneType None, not a decimal string"),
    ({"l": "0"}, "o.l is str '0', not a positive decimal"),
    ({"t": "7"}, "o.t is str '7', not a non-negative integer"),
    ({"i": True}, "o.i is bool True, not a non-negative integer"),
    ({"c": 5}, "o.c is int 5, not a string"),
    ({"m": "yes"}, "o.m is str 'yes', not a bool"),
    ({"z": "9" * 40}, "o.z is str '" + "9" * 23 + "..., not a decimal string"),
])
def test_read_order_update_names_the_bad_field(fields, needle):
    ev = trade()
    ev["o"].update(fields)
    with pytest.raises(DataError) as exc:
        read_order_update(ev)
    assert needle in str(exc.value)


def test_read_order_update_reads_binance_fields():
    up = read_order_update(trade())
    assert (up.cid, up.order_id, up.executed, up.kind, up.trade_id, up.price, up.qty, up.fee, up.maker,
            up.time_ms) == (CID, 4242, Decimal("0.010"), "TRADE", 7, Decimal("28000.0"), Decimal("0.010"),
                            Decimal("0.0112"), True, 1680000000120)
    rebate = trade()
    rebate["o"]["n"] = "-0.0010"
    assert read_order_update(rebate).fee == Decimal("-0.0010")
    new = trade(x="NEW")
    del new["o"]["t"], new["o"]["L"]
    assert read_order_update(new).kind == "NEW"


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                     | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=30) | st.sampled_from(["0", "-1", "NaN", "1e30", "0.010", "", "TRADE", "NEW"]),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                 max_size=3),
                     max_leaves=6)
_KEYS = st.sampled_from(["c", "i", "x", "z", "l", "L", "n", "m", "t", "T", "X", "s", "S", "q", "p"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_KEYS, st.one_of(_JSON, st.just(...))), min_size=1, max_size=4),
       st.sampled_from(["TRADE", "NEW", "CANCELED", "EXPIRED", "AMENDMENT"]))
def test_mutated_real_events_never_escape_the_handler(oms, mutations, kind):
    """Each field of a real event replaced by arbitrary JSON (or removed): applied or counted, never raised."""
    user = user_stream(oms)
    ev = copy.deepcopy(trade(x=kind))
    for key, value in mutations:
        if value is ...:
            ev["o"].pop(key, None)
        else:
            ev["o"][key] = value
    asyncio.run(user.handle(json.dumps(ev).encode()))   # the stdlib writes ints past 64 bits, as a venue could
    try:
        read_order_update(ev)
    except DataError:
        assert user.bad_events == 1
    else:
        assert user.bad_events == 0
