"""ext.orders: HMAC-SHA256, the order.place frame, the rate windows and the risk core, each against a plain
Python reference (hashlib/hmac, orjson over ``WsApi.signed``, the documented rules)."""

from __future__ import annotations

import hashlib
import hmac
import math
import socket
import time
from dataclasses import dataclass, field
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import bench
from engine.config import Config
from engine.feed import make_feed
from engine.keys import Credentials, Secret
from engine.latency_bench import _synced_feed
from engine.model import Instrument
from engine.venues.binance.signing import ws_payload
from ext.orders import (
    GATE_DUPLICATE,
    GATE_NOT_CONNECTED,
    GATE_RATE_LIMITED,
    GATE_SENT,
    PLACE_NOT_CONNECTED,
    PLACE_RATE_LIMITED,
    PLACE_SENT,
    RISK_ACCOUNT,
    RISK_REASONS,
    Hmac,
    OrderGate,
    OrderWire,
    RateWindows,
    RiskCore,
    hmac_sha256_hex,
    sha256_hex,
    use_sha_extensions,
)
from tests.integration.conftest import ed25519_keypair

# ---- HMAC-SHA256 -----------------------------------------------------------------------------------------------------


@pytest.fixture(params=["sha-ni", "portable"])
def sha_impl(request):
    """Both compression functions: the CPU's SHA extensions (where it has them) and the portable C."""
    if request.param == "sha-ni" and not use_sha_extensions(True):
        pytest.skip("this CPU has no SHA extensions")
    use_sha_extensions(request.param == "sha-ni")
    yield request.param
    use_sha_extensions(None)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])      # the fixture picks, once, per test
@given(data=st.binary(max_size=300))
def test_sha256_matches_hashlib(sha_impl, data: bytes) -> None:
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("n", [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000])
def test_sha256_padding_boundaries(sha_impl, n: int) -> None:
    data = bytes(range(256)) * 4
    assert sha256_hex(data[:n]) == hashlib.sha256(data[:n]).hexdigest()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.binary(min_size=1, max_size=150), msg=st.binary(max_size=400))
def test_hmac_matches_the_standard_library(sha_impl, key: bytes, msg: bytes) -> None:
    assert hmac_sha256_hex(key, msg) == hmac.new(key, msg, hashlib.sha256).hexdigest()
    assert Hmac(key).hexdigest(msg) == hmac.new(key, msg, hashlib.sha256).hexdigest()


def test_hmac_keeps_its_key_to_itself() -> None:
    h = Hmac(b"very-secret")
    assert "secret" not in repr(h)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(h)


# ---- the order.place frame ---------------------------------------------------------------------------------------

GRIDS = [("BTCUSDT", "0.10", "0.001"), ("ETHUSDT", "0.01", "0.001"), ("1000PEPEUSDT", "0.0000001", "1"),
         ("XRPUSDT", "0.0001", "0.1"), ("BTCDOMUSDT", "1", "0.001"), ("WIDEUSDT", "10", "100")]
CID = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/-", min_size=1,
              max_size=36)


def _wire(creds: Credentials) -> tuple[OrderWire, dict[str, int]]:
    wire = OrderWire(creds.api_key, None if creds.ed25519 else creds.secret.reveal(),
                     signer=creds.sign if creds.ed25519 else None, recv_window_ms=5000)
    idx = {}
    for sym, tick, step in GRIDS:
        inst = Instrument.make(sym, tick, step)
        idx[sym] = wire.add_symbol(sym, *Instrument.grid(inst.tick_size), *Instrument.grid(inst.step_size))
    return wire, idx


def _reference(creds: Credentials, inst: Instrument, buy: bool, lots: int, ticks: int | None, tif: str,
               reduce_only: bool, cid: str, rid: int, ts: int) -> bytes:
    """What the general path sends: OrderManager.params' keys and formats, WsApi.signed, orjson."""
    p: dict = {"symbol": inst.symbol, "side": "BUY" if buy else "SELL",
               "type": "LIMIT" if ticks is not None else "MARKET",
               "newClientOrderId": cid, "quantity": f"{inst.lots_to_qty(lots):.{Instrument.grid(inst.step_size)[1]}f}"}
    if ticks is not None:
        p["price"] = f"{inst.ticks_to_price(ticks):.{Instrument.grid(inst.tick_size)[1]}f}"
        p["timeInForce"] = tif
    if reduce_only:
        p["reduceOnly"] = "true"
    p.update(apiKey=creds.api_key, recvWindow=5000, timestamp=ts)
    p["signature"] = creds.sign(ws_payload(p))
    return orjson.dumps({"id": rid, "method": "order.place", "params": p})


HMAC_CREDS = Credentials("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
                         Secret("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"))


@settings(max_examples=300)
@given(st.integers(0, len(GRIDS) - 1), st.booleans(), st.integers(1, 10**9), st.none() | st.integers(1, 10**9),
       st.sampled_from(["GTC", "IOC", "FOK", "GTX"]), st.booleans(), CID, st.integers(0, 2**53),
       st.integers(0, 2**45))
def test_frame_is_byte_identical_to_the_general_path(g, buy, lots, ticks, tif, reduce_only, cid, rid, ts) -> None:
    wire, idx = _wire(HMAC_CREDS)
    sym, tick, step = GRIDS[g]
    inst = Instrument.make(sym, tick, step)
    got = wire.frame(idx[sym], buy, lots, ticks, tif, reduce_only, cid, rid, ts)
    assert got == _reference(HMAC_CREDS, inst, buy, lots, ticks, tif, reduce_only, cid, rid, ts)


def test_ed25519_frames_match_too() -> None:
    creds = Credentials("edKey123", Secret(ed25519_keypair()[0]), ed25519=True)
    wire, idx = _wire(creds)
    inst = Instrument.make("BTCUSDT", "0.10", "0.001")
    got = wire.frame(idx["BTCUSDT"], False, 25, 700015, "GTX", True, "x-1", 9, 1_700_000_000_123)
    assert got == _reference(creds, inst, False, 25, 700015, "GTX", True, "x-1", 9, 1_700_000_000_123)


@pytest.mark.parametrize("bad", [
    dict(cid=""), dict(cid="a" * 37), dict(cid='quote"'), dict(cid="space id"), dict(lots=0), dict(lots=-1),
    dict(tif="DAY"), dict(sym=99), dict(ticks=0), dict(ticks=-5), dict(tif=None)])
def test_frame_refuses_what_it_cannot_write_plainly(bad: dict) -> None:
    """... among it a LIMIT whose price rounded to no tick or below: never written as a MARKET order."""
    wire, idx = _wire(HMAC_CREDS)
    args = dict(sym=idx["BTCUSDT"], buy=True, lots=1, ticks=1, tif="GTC", reduce_only=False, cid="ok", rid=1, ts_ms=1)
    args.update(bad)
    with pytest.raises((ValueError, IndexError)):
        wire.frame(**args)


def test_wire_refuses_bad_keys_and_shows_no_secret() -> None:
    with pytest.raises(ValueError):
        OrderWire('key"', b"s")
    with pytest.raises(ValueError):
        OrderWire("key")                                  # neither a secret nor a signer
    wire = OrderWire("key", b"topsecret")
    assert "topsecret" not in repr(wire)


class _FakeTransport:
    """What OrderWire.place needs of a picows transport; records the frames it is given. ``is_secure``: as a TLS
    connection, whose frames go through picows's own send."""

    is_disconnected = False
    is_close_frame_sent = False
    is_secure = True

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_reuse_external_bytearray(self, _kind, buf: bytearray, offset: int) -> None:
        self.sent.append(bytes(buf[offset:]))


def test_place_checks_and_charges_the_rate_windows() -> None:
    limits = RateWindows([(True, 10_000, 3)], safety=1.0)
    wire = OrderWire("key", b"secret", limits=limits)
    sym = wire.add_symbol("BTCUSDT", 1, 1, 1, 3)
    tr = _FakeTransport()
    codes = [wire.place(tr, sym, True, 1, 10, "IOC", False, f"c{i}", i, 1) for i in range(4)]
    assert codes[:3] == [PLACE_SENT] * 3 and codes[3] in (PLACE_RATE_LIMITED, PLACE_SENT)
    assert len(tr.sent) == codes.count(PLACE_SENT)
    assert orjson.loads(tr.sent[0])["params"]["newClientOrderId"] == "c0"
    tr.is_disconnected = True
    assert wire.place(tr, sym, True, 1, 10, "IOC", False, "late", 9, 1) == PLACE_NOT_CONNECTED
    assert wire.place(None, sym, True, 1, 10, "IOC", False, "late", 9, 1) == PLACE_NOT_CONNECTED


class _Underlying:
    """An asyncio transport's face over one end of a socket pair (nothing buffered unless told)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffered, self.written = sock, 0, []

    def get_extra_info(self, name: str):
        return self.sock if name == "socket" else None

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _read_frame(sock: socket.socket) -> bytes:
    """One client frame off the wire, checked and unmasked as a server would (RFC 6455 5.2/5.3)."""
    head = sock.recv(2, socket.MSG_WAITALL)
    assert head[0] == 0x81 and head[1] & 0x80                      # FIN + TEXT, masked
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(sock.recv(2, socket.MSG_WAITALL), "big")
    key = sock.recv(4, socket.MSG_WAITALL)
    body = sock.recv(n, socket.MSG_WAITALL)
    return bytes(b ^ key[i % 4] for i, b in enumerate(body))


@pytest.mark.parametrize("cid", ["s", "x" * 36])
def test_place_writes_a_masked_frame_on_a_plain_socket(cid: str) -> None:
    a, b = socket.socketpair()
    with a, b:
        tr = _FakeTransport()
        tr.is_secure = False
        tr.underlying_transport = under = _Underlying(a)
        wire = OrderWire("key", b"secret")
        sym = wire.add_symbol("BTCUSDT", 1, 1, 1, 3)
        for i in range(3):
            assert wire.place(tr, sym, i % 2 == 0, 5 + i, 600_000 + i, "GTC", False, f"{cid[:-1]}{i}", i, -250) == 0
        for i in range(3):
            got = _read_frame(b)
            ts = orjson.loads(got)["params"]["timestamp"]             # this host's clock + the offset
            assert abs(ts - (time.time_ns() // 1_000_000 - 250)) < 5_000
            assert got == wire.frame(sym, i % 2 == 0, 5 + i, 600_000 + i, "GTC", False, f"{cid[:-1]}{i}", i, ts)
        assert not tr.sent
        under.buffered = 10                                          # data queued: the transport keeps the order
        wire.place(tr, sym, True, 1, 1, "GTC", False, "q", 9, 7)
        assert len(tr.sent) == 1 and orjson.loads(tr.sent[0])["params"]["newClientOrderId"] == "q"


# ---- rate windows --------------------------------------------------------------------------------------------------


class _RefWindows:
    """The limiter's rule in plain Python: fixed windows, wait when count + need > limit x safety."""

    def __init__(self, windows, safety):
        self.w, self.safety = windows, safety
        self.start = [0] * len(windows)
        self.count = [0] * len(windows)

    def _roll(self, i, now):
        s = now - now % self.w[i][1]
        if s != self.start[i]:
            self.start[i], self.count[i] = s, 0

    def delay(self, now, weight, orders):
        wait = 0
        for i, (is_orders, span, limit) in enumerate(self.w):
            self._roll(i, now)
            need = orders if is_orders else weight
            if need and self.count[i] + need > limit * self.safety:
                wait = max(wait, self.start[i] + span - now)
        return wait

    def add(self, now, weight, orders):
        for i, (is_orders, _, _) in enumerate(self.w):
            self._roll(i, now)
            self.count[i] += orders if is_orders else weight


@given(st.lists(st.tuples(st.integers(0, 200_000), st.integers(0, 20), st.integers(0, 3)), max_size=200))
def test_rate_windows_follow_the_reference(steps) -> None:
    windows = [(False, 60_000, 100), (True, 10_000, 20), (True, 60_000, 50)]
    core, ref = RateWindows(windows, 0.9), _RefWindows(windows, 0.9)
    now = 1_700_000_000_000
    for dt, weight, orders in steps:
        now += dt
        assert core.delay_ms(now, weight, orders) == ref.delay(now, weight, orders)
        if ref.delay(now, weight, orders) == 0:
            core.add(now, weight, orders)
            ref.add(now, weight, orders)
    assert [core.used(i, now) for i in range(3)] == [ref.count[i] if ref.start[i] == now - now % w[1] else 0
                                                     for i, w in enumerate(windows)]


def test_rate_windows_honour_a_ban_and_venue_counts() -> None:
    core = RateWindows([(False, 60_000, 100)], 0.9)
    core.banned_until_ms = 5_000
    assert core.delay_ms(1_000, 1) == 4_000
    core.set_count(0, 6_000, 89)
    assert core.delay_ms(6_000, 1) == 0 and core.delay_ms(6_000, 2) == 54_000
    with pytest.raises(ValueError):
        RateWindows([(False, 0, 1)])


# ---- risk ------------------------------------------------------------------------------------------------------------


@dataclass
class _RefScope:
    """One scope's limits and send times in the reference (0 turns an optional limit off)."""

    order_qty: float = 0.0
    order_notional: float = 1000.0
    min_notional: float = 0.0
    position_qty: float = 0.0
    position_notional: float = 1500.0
    band_bps: float = 150.0
    open_orders: int = 5
    per_s: int = 0
    per_10s: int = 4
    sent: list = field(default_factory=list)

    def full(self, now: float) -> str:
        for limit, window, reason in ((self.per_s, 1, "order_rate_1s"), (self.per_10s, 10, "order_rate")):
            if limit and sum(1 for t in self.sent if now - t <= window) >= limit:
                return reason
        return ""


def _ref_limits(lim: _RefScope, buy, qty, price, mid, position, reduce_only, reduces) -> str:
    """The symbol's numeric limits, in the documented order."""
    if not math.isnan(price) and not price > 0:
        return "price_tick"
    ref = mid if math.isnan(price) else price
    if math.isnan(ref) or ref <= 0:
        return "no_price"
    after = abs(position + (qty if buy else -qty))
    for bad, reason in ((not reduce_only and lim.order_qty and qty > lim.order_qty, "order_qty"),
                        (not reduce_only and qty * ref > lim.order_notional, "order_notional"),
                        (not reduce_only and qty * ref < lim.min_notional, "min_notional"),
                        (not reduces and lim.position_qty and after > lim.position_qty, "position_qty"),
                        (not reduces and after * ref > lim.position_notional, "position_notional"),
                        (not math.isnan(price) and not math.isnan(mid) and mid != 0
                         and abs(price - mid) / mid * 10_000 > lim.band_bps, "price_band")):
        if bad:
            return reason
    return ""


def _ref_risk(state, open_orders, acct: _RefScope, sym: _RefScope | None, sym_open, buy, qty, price, mid, position,
              reduce_only, synced, now) -> str:
    """The documented checks in order (engine.risk's rules), NaN meaning 'none'."""
    reduces = reduce_only or (position > 0 and not buy and qty <= position) or \
        (position < 0 and buy and qty <= -position)
    if state == 2 and not (reduce_only and ((position > 0 and not buy) or (position < 0 and buy))):
        return "halted"
    if state == 1 and not reduces:
        return "reducing"
    if not synced:
        return "book_unsynced"
    why = _ref_limits(sym or acct, buy, qty, price, mid, position, reduce_only, reduces)
    if why:
        return why
    if open_orders >= acct.open_orders or (sym is not None and sym_open >= 0 and sym_open >= sym.open_orders):
        return "open_orders"
    why = acct.full(now) or (sym.full(now) if sym is not None else "")
    if why:
        return why
    for scope in (acct, sym):
        if scope is not None:
            scope.sent.append(now)
    return ""


PRICE = st.one_of(st.just(math.nan), st.floats(1, 200), st.sampled_from([0.0, -1.0]))
ORDERS = st.lists(st.tuples(st.booleans(), st.floats(0.001, 30), PRICE, PRICE, st.floats(-20, 20), st.booleans(),
                            st.integers(0, 2), st.integers(0, 6), st.floats(0, 0.6), st.booleans(),
                            st.integers(-1, 4)), max_size=60)


@settings(max_examples=200)
@given(ORDERS, st.booleans())
def test_risk_core_agrees_with_the_reference(orders, per_symbol) -> None:
    """Every limit, for the account alone (``sym`` -1: the defaults) and for a symbol with its own, tighter ones."""
    acct = _RefScope(min_notional=2.0, position_qty=25.0, per_s=3)
    core = RiskCore(1000.0, 1500.0, 5, 150.0, 4, max_orders_per_s=3, max_position_qty=25.0, min_notional=2.0)
    sym, idx = None, -1
    if per_symbol:
        sym = _RefScope(order_qty=8.0, order_notional=800.0, min_notional=3.0, position_qty=12.0,
                        position_notional=1200.0, band_bps=100.0, open_orders=3, per_s=2, per_10s=3)
        idx = core.add_symbol("BTCUSDT", max_order_qty=8.0, max_order_notional=800.0, min_notional=3.0,
                              max_position_qty=12.0, max_position_notional=1200.0, price_band_bps=100.0,
                              max_open_orders=3, max_orders_per_s=2, max_orders_per_10s=3)
    now = 0.0
    for buy, qty, price, mid, position, reduce_only, state, open_orders, dt, healthy, sym_open in orders:
        now += dt
        core.state, core.open_orders = state, open_orders
        got = core.check(buy, qty, price, mid, position, reduce_only, healthy, False, False, now, idx, sym_open)
        assert RISK_REASONS[got] == _ref_risk(state, open_orders, acct, sym, sym_open, buy, qty, price, mid,
                                              position, reduce_only, healthy, now)


def test_risk_core_says_which_limit_broke_and_whose() -> None:
    core = RiskCore(1000.0, 1500.0, 5, 150.0, 4)
    btc = core.add_symbol("BTCUSDT", max_order_qty=2.0, max_open_orders=2)
    assert RISK_REASONS[core.check(True, 3.0, 100.0, 100.0, 0.0, False, sym=btc)] == "order_qty"
    assert (core.last_limit, core.last_value, core.last_sym) == (2.0, 3.0, btc)
    assert RISK_REASONS[core.check(True, 1.0, 100.0, 100.0, 0.0, False, sym=btc, sym_open_orders=2)] == "open_orders"
    assert (core.last_limit, core.last_value, core.last_sym) == (2.0, 2.0, btc)
    core.open_orders = 5
    assert RISK_REASONS[core.check(True, 1.0, 100.0, 100.0, 0.0, False, sym=btc)] == "open_orders"
    assert core.last_sym == RISK_ACCOUNT == -1
    with pytest.raises(ValueError, match="account"):
        core.add_symbol("ETHUSDT", max_open_orders=6)                 # looser than the account's: refused
    assert core.symbol("BTCUSDT", 5.0) == btc and core.limits(btc)["min_notional"] == 5.0   # the venue's floor
    assert core.symbol("SOLUSDT") == btc + 1 and core.limits(btc + 1)["max_order_qty"] == 0.0   # the defaults
    with pytest.raises(IndexError):
        core.check(True, 1.0, 100.0, 100.0, 0.0, False, sym=7)


def test_risk_core_reads_the_book() -> None:
    sf = _synced_feed(make_feed(bench.load_tape(None).instruments, Config())).symbols[0]
    core = RiskCore(1e9, 1e9, 50, 300.0, 100)
    tick, step = float(sf.instrument.tick_size), float(sf.instrument.step_size)
    mid = int(sf.book.mid)
    now = sf.last_book_ns
    assert core.check_order(sf, True, 10, mid, tick, step, 0.0, False, 0, now, 10**9) == 0
    assert RISK_REASONS[core.check_order(sf, True, 10, mid, tick, step, 0.0, False, 0, now + 2 * 10**9,
                                         10**9)] == "book_stale"
    assert RISK_REASONS[core.check_order(sf, True, 10, int(mid * 1.05), tick, step, 0.0, False, 0, now,
                                         10**9)] == "price_band"
    assert core.check_order(sf, True, 10, None, tick, step, 0.0, False, 0, now, 10**9) == 0  # market: the mid
    for ticks in (0, -3):                                    # a limit below one tick is no price, never a market
        assert RISK_REASONS[core.check_order(sf, True, 10, ticks, tick, step, 0.0, False, 0, now,
                                             10**9)] == "price_tick"
    assert RISK_REASONS[core.check_order(sf, True, 10, mid, tick, step, 0.0, False, 50, now, 10**9)] == "open_orders"


class _Pos:
    qty_f = 0.0


class _Clock:
    time_offset_ms = -250


def _gate(wire: OrderWire, sf, live: set, orders: dict, core: RiskCore | None = None) -> OrderGate:
    inst = sf.instrument
    sym = wire.add_symbol(inst.symbol, *Instrument.grid(inst.tick_size), *Instrument.grid(inst.step_size))
    return OrderGate(core or RiskCore(1e9, 1e9, 50, 300.0, 100), wire, sf, sym, float(inst.tick_size),
                     float(inst.step_size), _Pos(), live, orders, _Clock(), 10**9)


def test_gate_checks_risk_then_sends_what_the_wire_writes() -> None:
    """One call: the risk check on the live book, then the same frame ``OrderWire.frame`` writes, on the socket,
    with the next id of the wire's one sequence; refusals and duplicates send nothing."""
    sf = _synced_feed(make_feed(bench.load_tape(None).instruments, Config())).symbols[0]
    mid, now = int(sf.book.mid), sf.last_book_ns
    a, b = socket.socketpair()
    with a, b:
        tr = _FakeTransport()
        tr.is_secure = False
        tr.underlying_transport = _Underlying(a)
        wire = OrderWire("key", b"secret", limits=RateWindows([(True, 10_000, 2)], safety=1.0))
        live, orders = {"open1"}, {"old": object()}
        gate = _gate(wire, sf, live, orders)
        assert gate.fire(True, 10, mid, "IOC", False, "a1", now) == GATE_NOT_CONNECTED     # no connection yet
        wire.transport = tr
        assert next(wire) == 2                                   # the general path shares the id sequence
        assert gate.fire(True, 10, mid, "IOC", False, "a2", now) == GATE_SENT and gate.rid == 3
        got = _read_frame(b)
        ts = orjson.loads(got)["params"]["timestamp"]
        assert abs(ts - (time.time_ns() // 1_000_000 - 250)) < 5_000
        assert got == wire.frame(0, True, 10, mid, "IOC", False, "a2", 3, ts)
        assert wire.last_write_ns <= time.monotonic_ns()
        assert gate.fire(True, 10, mid, "IOC", False, "old", now) == GATE_DUPLICATE
        with pytest.raises(ValueError):
            gate.fire(True, 10, mid, "DAY", False, "a7", now)
        with pytest.raises(ValueError):                          # unwritable: raised before anything is sent
            gate.fire(True, 10, mid, "IOC", False, "bad id!", now)
        assert RISK_REASONS[gate.fire(True, 10, int(mid * 1.05), "IOC", False, "a3", now)] == "price_band"
        assert RISK_REASONS[gate.fire(True, 10, mid, "IOC", False, "a4", now + 2 * 10**9)] == "book_stale"
        assert RISK_REASONS[gate.fire(False, 10, 0, "GTC", True, "a0", now)] == "price_tick"   # not a MARKET
        assert gate.fire(False, 10, None, None, True, "a5", now) == GATE_SENT           # market, reduce-only
        assert orjson.loads(_read_frame(b))["params"]["type"] == "MARKET"
        assert gate.fire(True, 10, mid, "IOC", False, "a6", now) == GATE_RATE_LIMITED    # the venue's window


def test_gate_counts_open_orders_and_position_when_it_fires() -> None:
    sf = _synced_feed(make_feed(bench.load_tape(None).instruments, Config())).symbols[0]
    mid, now = int(sf.book.mid), sf.last_book_ns
    core = RiskCore(1e9, 1e9, 2, 300.0, 100)
    live: set = set()
    gate = _gate(OrderWire("key", b"secret"), sf, live, {}, core)
    assert gate.fire(True, 10, mid, "IOC", False, "b1", now) == GATE_NOT_CONNECTED      # passed risk
    live.update({"x", "y"})
    assert RISK_REASONS[gate.fire(True, 10, mid, "IOC", False, "b2", now)] == "open_orders"
    live.clear()
    core.state = 1                                               # reducing: only what lowers the position
    assert RISK_REASONS[gate.fire(True, 10, mid, "IOC", False, "b3", now)] == "reducing"
    _Pos.qty_f = -1.0                                            # read when it fires: a short, so a buy reduces
    try:
        assert gate.fire(True, 10, mid, "IOC", False, "b4", now) == GATE_NOT_CONNECTED
    finally:
        _Pos.qty_f = 0.0


def test_decimal_grids_used_by_the_wire() -> None:
    assert Instrument.grid(Decimal("0.10")) == (1, 1) and Instrument.grid(Decimal("10")) == (10, 0)
