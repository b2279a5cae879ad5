"""``tapeshot fuzz``: hostile input at volume, seeded. Zero crashes, zero hangs, zero silently wrong books.

Three drills, each deterministic for a seed:

- **intents**: mutations of real traders' phrases (characters flipped, cut, repeated, huge and odd numbers,
  quotes and dashes by the thousand, non-ASCII digits) and random text through ``engine.intents.parse``. Only
  the grammar's own ``TapeshotError`` may come out; any other exception is a crash, a parse slower than
  ``hang_ms`` a hang.
- **depth**: real depth messages mutated at the byte level (flips, cuts, duplications, keys added to the
  envelope, ``u``/``pu``/``E`` moved) through the scanner (``ext.parse``) and its pure-Python reference: both
  refuse, or both read the same fields. A disagreement is a silently wrong read.
- **book**: the recording replayed through the real ``Feed`` with mutated diffs injected; after each injection
  the feed must either keep a book that the bookTicker oracle finds right, or say it is not synced (a gap, a
  resync). A feed that reports synced while refusing every later diff (a frozen book) or whose book the next
  checkable bookTickers contradict is a silently wrong book.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from engine.errors import TapeshotError

PHRASES = ("long btc 0.5 30s max 8bps", "long BTCUSDT 0.5 within 30s, max 8 bps", "short eth 5k 1m sniper",
           "buy sol $2500 20s ladder cancel limit 142.5 -- reclaiming VWAP", "flat btc", "tp btc 71250",
           "sl btc 68900", "tp btc off", "cancel btc", "status", "long btc 0.01 10s ladder limit 28150.05",
           'short btc 0.1 20s "offers stacking"', "sell btc 0.2 15s because absorption at 28k")
ODD = ("1e30", "1e999999", "9e30", "NaN", "Infinity", "-1", "+1", "1_000", "٣", "0x10", "1" * 400, "0." + "0" * 60,
       " \u201c", " --", "\u00a0", "\u200b", "$", "k", "m", "bps", "%", "\x00", "🚀")


@dataclass
class Tally:
    """One drill's counts: cases run, failures by kind, the slowest case (ms) and a few failing examples."""

    cases: int = 0
    failures: Counter = field(default_factory=Counter)
    slowest_ms: float = 0.0
    ignored: int = 0                  # harmless disagreements: refused by one side, an unused event to the other
    examples: list[str] = field(default_factory=list)

    def fail(self, kind: str, example: object) -> None:
        self.failures[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {example!r}"[:300])

    @property
    def ok(self) -> bool:
        return not self.failures


def mutate_text(rng: random.Random, base: str) -> str:
    """One hostile variant of a trader's phrase."""
    s = base
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randint(0, len(s))
        if op == 0:
            s = s[:i] + rng.choice(ODD) + s[i:]
        elif op == 1:
            s = s[:i]
        elif op == 2:
            s = s[:i] + rng.choice(ODD) * rng.randint(1, 2000) + s[i:]
        elif op == 3:
            s = s[:i] + chr(rng.randint(0, 0x2FFF)) + s[i + 1:]
        elif op == 4:
            words = s.split()
            if words:
                words[rng.randrange(len(words))] = rng.choice(ODD)
            s = " ".join(words)
        else:
            s = "".join(chr(rng.randint(32, 0x24F)) for _ in range(rng.randint(0, 60)))
    return s[:20_000]


def fuzz_intents(n: int, seed: int, hang_ms: float = 50.0) -> Tally:
    from engine.intents import parse

    rng, t = random.Random(seed), Tally()
    for _ in range(n):
        text = mutate_text(rng, rng.choice(PHRASES))
        t0 = time.perf_counter()
        try:
            parse(text)
        except TapeshotError:
            pass
        except Exception as exc:                          # anything else is a crash
            t.fail(f"crash {type(exc).__name__}", text)
        ms = (time.perf_counter() - t0) * 1e3
        t.slowest_ms = max(t.slowest_ms, ms)
        if ms > hang_ms:
            t.fail("hang", text[:80])
        t.cases += 1
    return t


def mutate_bytes(rng: random.Random, raw: bytes) -> bytes:
    """One mutated depth message: byte-level damage, or a well-formed change to the chain or the envelope."""
    op = rng.randrange(4)
    if op == 0:
        buf = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(max(len(buf), 1))
            kind = rng.randrange(3)
            if kind == 0 and buf:
                buf[i] = rng.choice(b'{}[]",:.-0123456789eE tfnxu\\')
            elif kind == 1:
                del buf[i:]
            else:
                buf[i:i] = buf[i: i + rng.randint(1, 12)]
        return bytes(buf)
    obj = orjson.loads(raw)
    ev = obj.get("data", obj)
    if op == 1:
        key = rng.choice(("u", "U", "pu", "E", "T"))
        ev[key] = rng.choice((0, -1, ev.get(key, 0) + rng.randint(1, 10**6), ev.get(key, 0) + 10**12, 10**15))
    elif op == 2:
        obj = {**obj, rng.choice(("u", "U", "pu", "E", "s", "e")): rng.choice((1, 10**13, "BTCUSDT", "trade"))}
    else:
        side = rng.choice(("b", "a"))
        if ev.get(side):
            lvl = rng.randrange(len(ev[side]))
            ev[side][lvl] = [rng.choice(("1e3", "-1", "0", "28150.05", "99999999999999999999")), ev[side][lvl][1]]
    return orjson.dumps(obj)


def fuzz_depth(messages: list[bytes], n: int, seed: int) -> Tally:
    from engine.feed.reference import parse_message
    from ext.parse import parse

    depth = [m for m in messages if b'"depthUpdate"' in m]
    rng, t = random.Random(seed), Tally()
    for _ in range(n):
        data = mutate_bytes(rng, rng.choice(depth))
        fast, ref = _read(parse, data), _read(parse_message, data)
        if fast != ref:
            if _used(fast) or _used(ref):
                t.fail("disagree", data[:200])         # one side would act on what the other reads otherwise
            else:
                t.ignored += 1                           # refused by one, an unused event to the other
        t.cases += 1
    return t


def _used(read: dict | None) -> bool:
    """A read the engine acts on (the book, the tape); refused and unused events ("other") change nothing."""
    return read is not None and read.get("kind") != "other"


def _read(fn: Callable[[bytes], dict], data: bytes) -> dict | None:
    try:
        return fn(data)
    except ValueError:
        return None


def fuzz_book(messages: list[bytes], runs: int, seed: int, inst: object) -> Tally:
    """The tape through the real feed (oracle resyncs on, as live), one mutated diff injected at a random point
    per run, then the rest of the tape. Silently wrong: still synced with no resync since the injection while
    the later diffs were refused as replays (a frozen book), or, for a message the scanner refuses, a book that
    ends different from the clean run's."""
    from ext.feed import Feed
    from ext.parse import parse

    depth_at = [i for i, m in enumerate(messages) if b'"depthUpdate"' in m]
    clean = _replay(Feed, inst, messages)
    want = (clean.book.top(0, 50), clean.book.top(1, 50))
    rng, t = random.Random(seed), Tally()
    for _ in range(runs):
        at = rng.choice(depth_at[len(depth_at) // 10:])
        bad = mutate_bytes(rng, messages[at])
        try:
            sf, diffs, resyncs = _replay(Feed, inst, messages, at, bad)
        except Exception as exc:                          # the feed never raises on input
            t.fail(f"crash {type(exc).__name__}", bad[:200])
            continue
        quiet = sf.synced and sf.n_resyncs == resyncs
        if quiet and sf.n_diffs - diffs < len([i for i in depth_at if i >= at]) // 2:
            t.fail("frozen", bad[:200])
        elif quiet and _read(parse, bad) is None and (sf.book.top(0, 50), sf.book.top(1, 50)) != want:
            t.fail("wrong book", bad[:200])
        t.cases += 1
    return t


def _replay(feed_cls: type, inst: object, messages: list[bytes], at: int = -1, bad: bytes = b"") -> object:
    """Replay ``messages`` through a new feed, ``bad`` injected before message ``at``. Without ``bad``: the
    symbol feed; with it: (the symbol feed, its diffs and resyncs just before the injection)."""
    feed = feed_cls([inst])
    sf = feed.symbols[0]
    sf.resync_on_mismatch = True
    if at < 0:
        for m in messages:
            feed.on_message(m)
        return sf
    for m in messages[:at]:
        feed.on_message(m)
    diffs, resyncs = sf.n_diffs, sf.n_resyncs
    feed.on_message(bad)
    for m in messages[at:]:
        feed.on_message(m)
    return sf, diffs, resyncs


def run(intents: int, depth: int, books: int, seed: int, files: list[Path] | None = None,
        out: Callable[[str], None] = print) -> bool:
    """All three drills; prints one line each and a verdict; True when every count is zero."""
    from engine.feed.recording import read_messages, sample_path
    from engine.model import KNOWN_INSTRUMENTS

    messages = read_messages([str(f) for f in files] if files else [sample_path()])
    results = {"intents": fuzz_intents(intents, seed), "depth": fuzz_depth(messages, depth, seed),
               "book": fuzz_book(messages, books, seed, KNOWN_INSTRUMENTS["BTCUSDT"])}
    for name, t in results.items():
        fails = " ".join(f"{k}={v}" for k, v in sorted(t.failures.items())) or "none"
        out(f"fuzz {name}: {t.cases} cases, failures: {fails}"
            + (f", slowest {t.slowest_ms:.2f} ms" if name == "intents" else "")
            + (f" ({t.ignored} refused by one side, unused by the other)" if t.ignored else ""))
        for ex in t.examples:
            out(f"  {ex}")
    ok = all(t.ok for t in results.values())
    out("PASS" if ok else "FAIL")
    return ok
