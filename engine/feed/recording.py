"""Reading recorded market data: ``<local_receive_ts> <raw JSON>`` lines, plain or gzipped.

This is the format of ``shared/data/binance-usdm`` and of ``tapeshot record``: one message per line, the local
receive stamp (ns, or µs in older files) first, then the exchange's bytes untouched. The files of one recording
are read in the order given, as one stream. Lines in the cryptofeed layout (``<unix float>: <json>``, with a
header line) are read too.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from engine.errors import DataError

SAMPLE_NAME = "usdm_btcusdt_sample.gz"                 # BTCUSDT alone, 2023-04-04 (tests, bench, fuzz, chaos)
SAMPLE_PAIR = ("usdm_btcusdt_20240718_sample.gz", "usdm_ethusdt_20240718_sample.gz")   # the same minutes, 2024-07-18


@dataclass(frozen=True, slots=True)
class Line:
    """One recorded message: where it came from, its local stamp as recorded, and the raw exchange bytes."""

    path: str
    lineno: int
    local_ts: int
    raw: bytes
    symbol: str = ""      # set when the line names its symbol outside the JSON (a cryptofeed REST line)


def open_maybe_gzip(path: str | Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, transparently un-gzipping when it starts with gzip's magic bytes."""
    f = open(path, "rb")  # noqa: SIM115 - returned to the caller
    magic = f.peek(2)[:2] if hasattr(f, "peek") else b""
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    return f


def iter_lines(paths: list[str | Path]) -> Iterator[Line]:
    """Yield every message of the given files in order. A line that is not ``<stamp> <json>`` raises DataError
    naming the file and line; blank lines and a cryptofeed header line are skipped."""
    for path in paths:
        with open_maybe_gzip(path) as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                rec = _split(str(path), lineno, line)
                if rec is not None:
                    yield rec


def _split(path: str, lineno: int, line: bytes) -> Line | None:
    stamp, sep, raw = line.partition(b" ")
    if stamp.endswith(b":"):                      # cryptofeed: "<unix float>: <json>"
        stamp = stamp[:-1]
    raw = raw.lstrip()
    if sep and raw[:1] in (b"{", b"[") and stamp:
        try:
            if b"." in stamp:
                return Line(path, lineno, round(float(stamp) * 1e9), raw)
            return Line(path, lineno, int(stamp), raw)
        except ValueError:
            pass
    if b" <-> " in line:                          # cryptofeed connection header
        return None
    if b" -> " in line:                           # cryptofeed REST line: "<url> -> <ts>: <json>"
        url, _, rest = line.partition(b" -> ")
        ts, _, raw = rest.partition(b": ")
        sym = url.partition(b"symbol=")[2].partition(b"&")[0].decode("ascii", "replace").upper()
        try:
            if raw[:1] == b"{":
                return Line(path, lineno, round(float(ts) * 1e9), raw, sym)
        except ValueError:
            pass
    raise DataError(f"{path}:{lineno}: not '<stamp> <json>': {line[:80]!r}")


def file_lines(path: str | Path) -> list[Line]:
    """Every message of one file; a bare REST snapshot line (``{"lastUpdateId": ...}``, no symbol) is given the
    file's symbol when the file's messages name exactly one (several: left bare, the reader must tell)."""
    lines = list(iter_lines([path]))
    if not any(ln.raw.startswith(b'{"lastUpdateId"') and not ln.symbol for ln in lines):
        return lines
    syms = set(symbols_in([path], limit=len(lines)))
    if len(syms) != 1:
        return lines
    sym = syms.pop()
    return [replace(ln, symbol=sym) if not ln.symbol and ln.raw.startswith(b'{"lastUpdateId"') else ln
            for ln in lines]


def read_messages(paths: list[str | Path]) -> list[bytes]:
    """Every message's raw bytes, in order (for benchmarks: the whole recording in memory)."""
    return [ln.raw for ln in iter_lines(paths)]


def sample_path() -> Path:
    """The real recording bundled in the package (trimmed from Binance USD-M BTCUSDT, see engine/data/LICENSE)."""
    return Path(str(resources.files("engine.data").joinpath(SAMPLE_NAME)))


def sample_paths() -> list[Path]:
    """The bundled BTCUSDT and ETHUSDT recordings of the same three minutes (2024-07-18 23:57-00:00 UTC, each with
    its own REST snapshot): what the default sim venue replays, both symbols at once."""
    return [Path(str(resources.files("engine.data").joinpath(name))) for name in SAMPLE_PAIR]


def symbols_in(paths: list[str | Path], limit: int = 2000) -> list[str]:
    """The symbols named by the first ``limit`` messages (order of first appearance)."""
    import orjson

    seen: dict[str, None] = {}
    for i, ln in enumerate(iter_lines(paths)):
        if i >= limit:
            break
        try:
            obj = orjson.loads(ln.raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            data = obj.get("data", obj)
            sym = data.get("s") if isinstance(data, dict) else None
            if isinstance(sym, str):
                seen.setdefault(sym, None)
    return list(seen)
