"""The one intent grammar: Telegram, the console and ``tapeshot intent`` all read the trader's words here.

    long btc 0.5 30s max 8bps                 enter: side, symbol, base size, window, slippage cap
    long BTCUSDT 0.5 within 30s, max 8 bps    the same, as a trader types it
    short eth 5k 1m sniper                    quote size (5,000 USDT), 60 s window, a named algorithm
    buy sol $2500 20s ladder cancel limit 142.5 -- reclaiming VWAP
    long btc 0.5 30s why absorption at 70k #absorption       a reason and a tag
    flat btc / exit btc   exit the whole position (short window)      close btc 0.2   exit part of it
    tp btc 71250        sl btc 68900          tp btc off             (TP/SL: the trader's own levels)
    cancel btc          cancel all            status [btc]

Sizes: a plain number is base quantity; ``5k``/``2.5m`` or ``$5000``/``5000usdt`` is quote notional in USDT.
Windows: ``30s``, ``1m``, ``45sec``, optionally after ``within``/``in``; 5 to 60 s. Slippage: ``max 8bps``,
``8 bps``, ``slip 8``. Deadline rule: ``complete`` (default: finish with a marketable order inside the cap) or
``cancel`` (cancel the rest); ``fill or cancel`` reads as ``cancel``. Algorithms: ``auto`` (default), ``sniper``,
``ladder``. Each of these is said once: two windows, two caps, two limits, two algorithms (``sniper ladder``) or
two deadline rules (``complete cancel``) are an error naming both; so is a word the grammar does not know.

Rationale: anything after ``--``, ``because``, ``why:``, the bare word ``why``, a ``#`` followed by a space, or in
quotes. Tags: ``#absorption``, ``#spoof``, ``#vacuum`` (any ``#word``: a letter, then letters, digits, ``_``
or ``-``) anywhere after the action are tags, not the start of a rationale; they are kept apart from the
rationale's text (``Intent.tags``: lower-case, without ``#``, at most ``MAX_TAGS`` of ``MAX_TAG_CHARS`` each).

Hostile input changes nothing: an intent is at most ``MAX_INTENT_CHARS`` characters (Telegram's message limit)
and ``MAX_WORDS`` words before its rationale, and reading one is linear in its length (no regex here can
backtrack). Numbers are plain ASCII decimals (no exponent, sign, NaN or Infinity) from ``MIN_NUMBER`` to
``MAX_NUMBER`` with at most ``MAX_DECIMALS`` decimals; anything else is an ``IntentError`` that names the value
and the accepted range, so nothing downstream meets a number it cannot hold.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from engine.errors import ConfigError
from engine.model import Side
from engine.words import base_asset

MIN_WINDOW_S = 5.0
MAX_WINDOW_S = 60.0
DEFAULT_WINDOW_S = 30.0
DEFAULT_EXIT_WINDOW_S = 10.0
DEFAULT_MAX_SLIPPAGE_BPS = 10.0
MAX_SLIPPAGE_BPS = 500.0
ALGOS = ("auto", "sniper", "ladder", "hybrid")
MAX_INTENT_CHARS = 4096            # Telegram's message limit; longer text is refused before it is read
MAX_WORDS = 40                     # words before the rationale (the longest real phrasing has about ten)
MAX_WORD_CHARS = 32                # the longest word of the grammar ("$1000000000usdt", a symbol) is shorter
MAX_SYMBOL_CHARS = 20
MAX_NUMBER = Decimal(1_000_000_000)    # sizes (base or USDT), limit prices and TP/SL levels
MAX_DECIMALS = 8                       # Binance's finest grid
MIN_NUMBER = Decimal(1).scaleb(-MAX_DECIMALS)
MAX_TAGS = 8                           # '#word' tags of one intent
MAX_TAG_CHARS = 32
EXAMPLE = "e.g. 'long btc 0.5 30s max 8bps sniper -- absorption at 70k #absorption'"

_ENTER = {"long": Side.BUY, "buy": Side.BUY, "short": Side.SELL, "sell": Side.SELL}
_EXIT = {"flat", "exit", "close"}
_ALIASES = {"btc": "BTCUSDT", "eth": "ETHUSDT", "xbt": "BTCUSDT"}
_QUOTES = ("USDT", "USDC", "BUSD")


class IntentError(ConfigError):
    """The trader's text could not be read; the message says what and how to write it."""


class IntentKind(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    TP = "tp"
    SL = "sl"
    CANCEL = "cancel"
    STATUS = "status"


@dataclass(frozen=True)
class Intent:
    """A parsed instruction. Exactly one of ``qty`` (base) / ``notional`` (USDT) is set for sized entries;
    an exit with neither means the whole position."""

    kind: IntentKind
    symbol: str | None
    side: Side | None = None
    qty: Decimal | None = None
    notional: Decimal | None = None
    window_s: float = DEFAULT_WINDOW_S
    max_slippage_bps: float = DEFAULT_MAX_SLIPPAGE_BPS
    algo: str = "auto"
    on_deadline: str = "complete"
    limit_price: Decimal | None = None
    price: Decimal | None = None           # TP/SL level; None with kind TP/SL means "remove it"
    rationale: str = ""
    raw: str = field(default="", compare=False)
    tags: tuple[str, ...] = ()             # '#word' tags, lower-case, without '#'

    def describe(self) -> str:
        """A one-line echo of what was understood, for the trader's confirmation."""
        if self.kind is IntentKind.ENTER:
            size = (f"{self.qty:f} {base_asset(self.symbol)} of" if self.qty is not None
                    else f"{self.notional:f} USDT of")
            extra = f", limit {self.limit_price:f}" if self.limit_price is not None else ""
            return (f"{'LONG' if self.side is Side.BUY else 'SHORT'} {size} {self.symbol} within {self.window_s:g}s, "
                    f"max {self.max_slippage_bps:g} bps, {self.algo}, {self.on_deadline} at deadline{extra}")
        if self.kind is IntentKind.EXIT:
            size = ("all" if self.qty is None and self.notional is None
                    else f"{self.qty:f} {base_asset(self.symbol)}" if self.qty is not None
                    else f"{self.notional:f} USDT")
            return f"EXIT {size} of {self.symbol} within {self.window_s:g}s, max {self.max_slippage_bps:g} bps"
        if self.kind in (IntentKind.TP, IntentKind.SL):
            return f"{self.kind.value.upper()} {self.symbol} " + (f"at {self.price:f}" if self.price else "removed")
        if self.kind is IntentKind.CANCEL:
            return f"CANCEL {self.symbol or 'all'}"
        return f"STATUS {self.symbol or 'all'}"


# A rationale starts at the first whitespace followed by a marker, or at the first whitespace followed by an opening
# quote when the text ends with a closing one. Each pattern matches a fixed few characters at a position, so a
# search is linear; the closing quote is found with rstrip, never by backtracking. A '#' followed by a letter is a
# tag (_TAG), not a marker.
_MARKER = re.compile(r"\s(?:--|(?-i:\#(?![A-Za-z]))|because\b|why:|why\b)", re.IGNORECASE)
_TAG = re.compile(r"(?<![^\s,])\#([A-Za-z][A-Za-z0-9_\-]*)")
_OPEN_QUOTE = re.compile(r"\s[\"“]")
_CLOSE_QUOTES = ('"', "”")
_NUM = r"[0-9]+(?:\.[0-9]+)?"
_PLAIN = re.compile(_NUM)
_WINDOW = re.compile(rf"({_NUM})(s|sec|secs|second|seconds|m|min|mins|minute)")
_BPS = re.compile(rf"({_NUM})(bps|bp)")
_NOTIONAL = re.compile(rf"\$?({_NUM})(k|m)?(usdt|usd|\$)?")
_SYMBOL = re.compile(r"[A-Z0-9]+")
_WORDS = re.compile(r"[\s,]+")


def parse(text: str, defaults: dict | None = None) -> Intent:
    """Read one intent; raises IntentError with a precise message."""
    if not isinstance(text, str):
        raise IntentError(f"an intent is text, not {type(text).__name__}")
    if len(text) > MAX_INTENT_CHARS:
        raise IntentError(f"intent too long: {len(text)} characters, at most {MAX_INTENT_CHARS}")
    raw = text.strip()
    if not raw:
        raise IntentError("empty intent: try 'long btc 0.5 30s max 8bps'")
    body, rationale = _split_rationale(" " + raw)
    body, rationale, tags = _split_tags(body, rationale)
    words = _words(body)
    head, rest = words[0], words[1:]
    it = _read(head, rest, rationale, raw, defaults or {})
    return dataclasses.replace(it, tags=tags) if tags else it


def _read(head: str, rest: list[str], rationale: str, raw: str, defaults: dict) -> Intent:
    """The intent an action word and the words after it make."""
    if head in _ENTER:
        return _enter(_ENTER[head], rest, rationale, raw, defaults)
    if head in _EXIT:
        return _exit(rest, rationale, raw, defaults)
    if head in ("tp", "sl"):
        return _level(IntentKind(head), rest, rationale, raw)
    if head == "cancel":
        return _cancel(rest, raw)
    if head in ("status", "pos", "position", "positions"):
        if len(rest) > 1:
            raise IntentError(f"status takes one symbol or none, got {_cut(' '.join(rest))!r}")
        return Intent(IntentKind.STATUS, symbol(rest[0]) if rest else None, raw=raw)
    raise IntentError(f"unknown action {_show(head)}: start with long, short, flat (or exit, close), tp, sl, "
                      f"cancel or status; {EXAMPLE}")


def split_tags(text: str) -> tuple[str, tuple[str, ...]]:
    """(``text`` without its ``#word`` tags, the tags): the grammar's tag rule for a rationale given on its own
    (a reply to the why-now question, ``/why``)."""
    _, rest, tags = _split_tags("", text)
    return rest, tags


def _split_tags(body: str, rationale: str) -> tuple[str, str, tuple[str, ...]]:
    """(body, rationale, tags): the ``#word`` tags taken out of both, lower-case, in order, each once.
    At most ``MAX_TAGS`` tags of at most ``MAX_TAG_CHARS`` characters, else an IntentError. Linear."""
    found = (_TAG.findall(body) if "#" in body else []) + (_TAG.findall(rationale) if "#" in rationale else [])
    if not found:
        return body, rationale, ()
    if len(found) > MAX_TAGS:
        raise IntentError(f"too many tags: {len(found)}, at most {MAX_TAGS}")
    for t in found:
        if len(t) > MAX_TAG_CHARS:
            raise IntentError(f"tag {_show('#' + t)} is too long: at most {MAX_TAG_CHARS} characters")
    tags = tuple(dict.fromkeys(t.lower() for t in found))
    return _TAG.sub(" ", body), _without_tags(rationale), tags


def _without_tags(text: str) -> str:
    """``text`` with its (at most MAX_TAGS) tags taken out, one space where one stood between words."""
    pieces = _TAG.split(text)[0::2]            # text, tag, text, tag, ...: the texts
    out = pieces[0]
    for piece in pieces[1:]:
        out = out.rstrip() + (" " if out.strip() and piece.strip() else "") + piece.lstrip()
    return out.strip()


def _words(body: str) -> list[str]:
    """The words before the rationale, lower-cased: 1 to MAX_WORDS of at most MAX_WORD_CHARS characters each.
    The split stops after MAX_WORDS + 1 separators, so a long body costs no more than a short one."""
    words = [w for w in _WORDS.split(body.strip().lower(), maxsplit=MAX_WORDS + 1) if w]
    if not words:
        raise IntentError("empty intent: try 'long btc 0.5 30s max 8bps'")
    if len(words) > MAX_WORDS:
        raise IntentError(f"intent too long: more than {MAX_WORDS} words before the rationale "
                          "(put the reason after '--')")
    for w in words:
        if len(w) > MAX_WORD_CHARS:
            raise IntentError(f"{_show(w)} is too long for one word (at most {MAX_WORD_CHARS} characters); "
                              f"{_accepted('a size or price')}")
    return words


def _split_rationale(text: str) -> tuple[str, str]:
    """(body, rationale): split at the earliest marker (``--``, ``#`` but not a ``#word`` tag, ``because``,
    ``why:``, ``why``) or opening quote
    whose closing quote ends the text; a marker wins a tie. Linear in ``len(text)``."""
    marker = _marker(text)
    quote = _quoted_from(text, marker.start() if marker else len(text))
    if quote is not None:
        start, end = quote
        return text[:start], text[start + 2:end].strip()
    if marker is None:
        return text, ""
    return text[:marker.start()], text[marker.end():].strip()


def _marker(text: str) -> re.Match | None:
    """``_MARKER.search``, skipped when none of its literals occurs at all (C-speed substring tests first: a
    long text without any is the common case, and the regex's per-whitespace attempts cost ~0.3 ms on 4 kB).
    ``casefold`` covers what the regex's IGNORECASE folds onto the letters of ``why`` and ``because``."""
    if "--" not in text and "#" not in text:
        folded = text.casefold()
        if "why" not in folded and "because" not in folded:
            return None
    return _MARKER.search(text)


def _quoted_from(text: str, before: int) -> tuple[int, int] | None:
    """(start, closing quote index) of a quoted rationale starting before ``before``, or None."""
    if '"' not in text and "\u201c" not in text:
        return None
    opening = _OPEN_QUOTE.search(text, 0, min(before, len(text)) + 1)
    if opening is None or opening.start() >= before:
        return None
    end = len(text.rstrip()) - 1
    if end < opening.start() + 2 or text[end] not in _CLOSE_QUOTES:
        return None
    return opening.start(), end


def symbol(word: str) -> str:
    """``btc`` / ``BTC`` / ``btcusdt`` / ``BTC-USDT`` -> ``BTCUSDT``."""
    w = word.replace("-", "").replace("/", "").replace("_", "").upper()
    if not 0 < len(w) <= MAX_SYMBOL_CHARS or not _SYMBOL.fullmatch(w):
        raise IntentError(f"{_show(word)} is not a symbol: letters and digits, at most {MAX_SYMBOL_CHARS}")
    w = _ALIASES.get(w.lower(), w)
    return w if w.endswith(_QUOTES) else w + "USDT"


def _cut(word: str, keep: int = 24) -> str:
    """``word`` for a message: cut to ``keep`` characters, with its length, when longer."""
    return word if len(word) <= keep else f"{word[:keep]}... ({len(word)} characters)"


def _show(word: str, keep: int = 24) -> str:
    """``word`` quoted for a message, cut to ``keep`` characters (with its length) when longer."""
    return repr(word) if len(word) <= keep else f"{word[:keep]!r}... ({len(word)} characters)"


def _accepted(what: str, top: Decimal = MAX_NUMBER) -> str:
    return f"{what} is a plain number from {MIN_NUMBER:f} to {top:f} with at most {MAX_DECIMALS} decimals"


def _dec(word: str, what: str, top: Decimal = MAX_NUMBER) -> Decimal:
    """A plain decimal in [MIN_NUMBER, top] with at most MAX_DECIMALS decimals, else a clear IntentError."""
    if not _PLAIN.fullmatch(word):
        if word.startswith("-") and _PLAIN.fullmatch(word[1:]):
            raise IntentError(f"{what} must be positive, got {_show(word)}; {_accepted(what, top)}")
        raise IntentError(f"can't read {_show(word)} as {what}; {_accepted(what, top)}")
    whole, _, frac = word.partition(".")
    if len(frac) > MAX_DECIMALS:
        raise IntentError(f"{what} {_show(word)} has {len(frac)} decimals; {_accepted(what, top)}")
    if len(whole.lstrip("0")) > len(str(int(top))):
        raise IntentError(f"{what} {_show(word)} is too large; {_accepted(what, top)}")
    d = Decimal(word)
    if d <= 0:
        raise IntentError(f"{what} must be positive, got {_show(word)}; {_accepted(what, top)}")
    if d > top:
        raise IntentError(f"{what} {_show(word)} is too large; {_accepted(what, top)}")
    return d


def _size(word: str) -> tuple[Decimal | None, Decimal | None]:
    """(base qty, quote notional) from one size word."""
    m = _NOTIONAL.fullmatch(word)
    if m and (m.group(2) or m.group(3) or word.startswith("$")):
        mult = {"k": 1000, "m": 1_000_000}.get(m.group(2) or "", 1)
        value = _dec(m.group(1), "a USDT size", MAX_NUMBER / mult) * mult
        return None, value
    return _dec(word, "a size"), None


def _window(word: str) -> float | None:
    m = _WINDOW.fullmatch(word)
    if not m:
        return None
    number = m.group(1)
    seconds = float(number[:16]) * (60 if m.group(2).startswith("m") else 1) if len(number) <= 16 else float("inf")
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        hint = " (USDT millions: write $2.5m)" if m.group(2).startswith("m") else ""
        raise IntentError(f"window {_cut(word)} is outside {MIN_WINDOW_S:g}-{MAX_WINDOW_S:g} s{hint}")
    return seconds


_CONNECTIVES = frozenset({"within", "in", "window", "max", "cap", "slip", "slippage", "limit", "lim", "at", "@",
                          "deadline", "then", "or", "and", "by"})
_COMPLETE = frozenset({"complete", "fill", "finish"})
_CANCEL = frozenset({"cancel", "kill"})
_WHAT = {"window": "the window", "cap": "the slippage cap", "algo": "the algorithm", "deadline": "the deadline rule",
         "limit": "the limit price"}


class _Opts:
    """The options shared by entries and exits, read word by word. Each option is said once: a second, different
    word for the same option is an error naming both (``_said``)."""

    def __init__(self, window_s: float, defaults: dict) -> None:
        self.window_s = float(defaults.get("window_s", window_s))
        self.max_bps = float(defaults.get("max_slippage_bps", DEFAULT_MAX_SLIPPAGE_BPS))
        self.algo = defaults.get("algo", "auto")
        self.on_deadline = defaults.get("on_deadline", "complete")
        self.limit: Decimal | None = None
        self.sizes: list[str] = []
        self._words: dict[str, tuple[str, object]] = {}      # option -> (the word that set it, its value)

    def _said(self, option: str, word: str, value: object) -> None:
        """Record that ``word`` set ``option`` to ``value``; a different earlier one is a conflict."""
        before = self._words.get(option)
        if before is not None and before[1] != value:
            raise IntentError(f"conflicting words {before[0]!r} and {_cut(word)!r}: both set {_WHAT[option]}; "
                              f"say it once, {EXAMPLE}")
        self._words[option] = (_cut(word), value)

    def read(self, words: list[str]) -> None:
        i = 0
        while i < len(words):
            w, nxt = words[i], words[i + 1] if i + 1 < len(words) else None
            i += 1
            if w in _COMPLETE and nxt == "or" and i + 1 < len(words) and words[i + 1] in _CANCEL:
                self._deadline("cancel", f"{w} or {words[i + 1]}")    # "fill or cancel": cancel the rest
                i += 2
            elif w in _CONNECTIVES:
                i = self._keyword(w, nxt, words, i)
            elif (win := _window(w)) is not None:
                self._said("window", w, win)
                self.window_s = win
            elif m := _BPS.fullmatch(w):
                self._cap(m.group(1), w)
            elif w in ALGOS:
                self._said("algo", w, w)
                self.algo = w
            elif w in _COMPLETE or w in _CANCEL:
                self._deadline("complete" if w in _COMPLETE else "cancel", w)
            elif w.startswith("@") and len(w) > 1:
                self._limit(w[1:], w)
            else:
                self.sizes.append(w)

    def _deadline(self, rule: str, word: str) -> None:
        self._said("deadline", word, rule)
        self.on_deadline = rule

    def _cap(self, number: str, word: str) -> None:
        value = self._bps(number)
        self._said("cap", word, value)
        self.max_bps = value

    def _limit(self, number: str, word: str) -> None:
        value = _dec(number, "a limit price")
        self._said("limit", word, value)
        self.limit = value

    def _keyword(self, w: str, nxt: str | None, words: list[str], i: int) -> int:
        if w in ("max", "cap", "slip", "slippage") and nxt is not None:
            if nxt in ("bps", "bp"):
                raise IntentError("slippage cap needs a number: 'max 8bps'")
            m = _BPS.fullmatch(nxt)
            self._cap(m.group(1) if m else nxt, f"{w} {nxt}")
            i += 1
            if not m and i < len(words) and words[i] in ("bps", "bp"):
                i += 1
            return i
        if w in ("limit", "lim", "at", "@") and nxt is not None and nxt[0].isdigit():
            self._limit(nxt, f"{w} {nxt}")
            return i + 1
        return i            # connective words ("within", "or", "then" ...) carry no meaning of their own

    @staticmethod
    def _bps(number: str) -> float:
        """A slippage cap in bps: a plain number in (0, MAX_SLIPPAGE_BPS]."""
        if not _PLAIN.fullmatch(number):
            raise IntentError(f"can't read {_show(number)} as a slippage cap in bps; it is a plain number in "
                              f"0-{MAX_SLIPPAGE_BPS:g}")
        v = float(number) if len(number) <= 16 else float("inf")
        if not 0 < v <= MAX_SLIPPAGE_BPS:
            raise IntentError(f"slippage cap {_cut(number)} bps is outside 0-{MAX_SLIPPAGE_BPS:g}")
        return v

    def size_word(self, sym: str, required: bool) -> str | None:
        """The one size word among the words no option took, or a clear error: an unknown word is named (with
        the algorithms when it could be one), two sizes are named."""
        sizes = [w for w in self.sizes if _sizelike(w)]
        others = [w for w in self.sizes if not _sizelike(w)]
        if others and (sizes or len(others) > 1 or not required):
            raise _unknown(others[0])
        if len(sizes) > 1:
            raise IntentError(f"can't tell the size from {_cut(' '.join(sizes))!r}: give one size "
                              f"(0.5 {base_asset(sym)} or 5k USDT); {EXAMPLE}")
        if sizes or others:
            return (sizes or others)[0]
        if required:
            raise IntentError(f"how much {sym}? give a base size (0.5) or USDT (5k, $2500); {EXAMPLE}")
        return None


def _sizelike(word: str) -> bool:
    """A word that is meant as a size: it starts with a digit, '$', '.', or a sign."""
    return word[0] in "0123456789$.+-"


def _unknown(word: str) -> IntentError:
    """The error for a word the grammar does not know."""
    if word.isalpha():
        return IntentError(f"unknown word {_show(word)}: not an algorithm or an option; the algorithms are "
                           f"{', '.join(ALGOS)}; put a reason after 'why' or '--'; {EXAMPLE}")
    return IntentError(f"unknown word {_show(word)}: not a size, window (30s), cap (8bps), limit (@142.5), "
                       f"algorithm ({', '.join(ALGOS)}) or deadline rule (complete, cancel); {EXAMPLE}")


def _enter(side: Side, words: list[str], rationale: str, raw: str, defaults: dict) -> Intent:
    if not words:
        raise IntentError("which symbol? e.g. 'long btc 0.5 30s'")
    sym = symbol(words[0])
    opts = _Opts(DEFAULT_WINDOW_S, defaults)
    opts.read(words[1:])
    qty, notional = _size(opts.size_word(sym, required=True) or "")
    return Intent(IntentKind.ENTER, sym, side, qty, notional, opts.window_s, opts.max_bps, opts.algo,
                  opts.on_deadline, opts.limit, rationale=rationale, raw=raw)


def _exit(words: list[str], rationale: str, raw: str, defaults: dict) -> Intent:
    if not words:
        raise IntentError("flat which symbol? e.g. 'flat btc' or 'exit btc'")
    sym = symbol(words[0])
    opts = _Opts(DEFAULT_EXIT_WINDOW_S, {k: v for k, v in defaults.items() if k != "window_s"})
    opts.read(words[1:])
    opts.sizes = [s for s in opts.sizes if s not in ("all", "everything", "position")]
    word = opts.size_word(sym, required=False)
    qty, notional = _size(word) if word else (None, None)
    return Intent(IntentKind.EXIT, sym, None, qty, notional, opts.window_s, opts.max_bps, opts.algo,
                  opts.on_deadline, opts.limit, rationale=rationale, raw=raw)


def _level(kind: IntentKind, words: list[str], rationale: str, raw: str) -> Intent:
    if not words:
        raise IntentError(f"{kind.value} which symbol? e.g. '{kind.value} btc 71250'")
    sym = symbol(words[0])
    if len(words) < 2:
        raise IntentError(f"{kind.value} {sym} at what price? e.g. '{kind.value} btc 71250' (or 'off')")
    if len(words) > 2:
        raise IntentError(f"{kind.value} takes a symbol and one price, got {' '.join(words)!r}")
    if words[1] in ("off", "none", "remove", "clear", "cancel"):
        return Intent(kind, sym, price=None, rationale=rationale, raw=raw)
    return Intent(kind, sym, price=_dec(words[1].lstrip("@"), "a price"), rationale=rationale, raw=raw)


def _cancel(words: list[str], raw: str) -> Intent:
    if not words or words[0] == "all":
        return Intent(IntentKind.CANCEL, None, raw=raw)
    if len(words) > 1:
        raise IntentError(f"cancel takes one symbol or 'all', got {' '.join(words)!r}")
    return Intent(IntentKind.CANCEL, symbol(words[0]), raw=raw)
