"""The ``tapeshot`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import orjson

from engine.errors import TapeshotError


def _cmd_verify_book(args: argparse.Namespace) -> int:
    from engine.feed.verify import verify

    result = verify(args.files, exchange_info=args.exchange_info, window=args.window)
    if args.verbose or len(result.symbols) > 1:
        for s in result.symbols:
            state = "" if s.synced else "  NEVER SYNCED"
            print(f"{s.symbol}: checked {s.checks} bookTickers, {s.mismatches} mismatches, "
                  f"{s.gaps + s.snapshot_too_old} gaps ({s.diffs} diffs, {s.unchecked} tickers not checkable, "
                  f"{s.bad} bad){state}")
    for err in result.first_errors:
        print(f"error: {err}", file=sys.stderr)
    print(result.summary() + (f", {result.errors} unreadable messages" if result.errors else ""))
    for s in result.symbols:
        if not s.synced:
            print(f"{s.symbol}: the book never synced (no snapshot bracketed by the diffs)", file=sys.stderr)
    return 0 if result.ok else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from engine import bench

    result = bench.run(args.files or None)
    if args.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        print(bench.table(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tapeshot", description="Low-latency directional execution engine.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("verify-book", help="rebuild a recording's book and check it against every bookTicker")
    v.add_argument("files", nargs="+", help="the files of one recording, in order (plain or gzipped)")
    v.add_argument("--exchange-info", metavar="FILE", help="a /fapi/v1/exchangeInfo JSON for tick/step sizes")
    v.add_argument("--window", type=int, default=32768, help="book ladder window in ticks (default 32768)")
    v.add_argument("-v", "--verbose", action="store_true", help="a line per symbol")
    v.set_defaults(func=_cmd_verify_book)

    b = sub.add_parser("bench", help="measure the hot path on real recordings (bundled sample by default)")
    b.add_argument("files", nargs="*", help="a recording to measure on (default: the bundled sample)")
    b.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    b.set_defaults(func=_cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except TapeshotError as exc:
        print(f"tapeshot: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"tapeshot: no such file: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
