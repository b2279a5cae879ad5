"""The ``tapeshot`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from engine.errors import ConfigError, TapeshotError

DEFAULT_API_KEY = "tapeshot-sim-key"
FORMATS = ("jsonl", "parquet")            # journal export formats (docs/dataset.md)


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


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from engine import fuzz

    ok = fuzz.run(args.intents, args.depth, args.books, args.seed, [Path(f) for f in args.data or []])
    return 0 if ok else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from engine import bench

    result = bench.run(args.files or None, sockets=not args.no_sockets, model=args.model)
    if args.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        print(bench.table(result))
    return 0


def _add_sim_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulated venue")
    g.add_argument("--speed", type=float, default=1.0, help="replay speed, x real time (default 1)")
    g.add_argument("--usdt", default="100000", help="starting USDT balance of the account (default 100000)")
    g.add_argument("--leverage", type=int, default=20, help="account leverage (default 20)")
    g.add_argument("--maker-fee", default="0.0002", help="maker fee rate (default 0.0002 = 0.02%%)")
    g.add_argument("--taker-fee", default="0.0005", help="taker fee rate (default 0.0005 = 0.05%%)")
    g.add_argument("--queue", choices=("conservative", "prob", "front"), default="conservative",
                   help="queue model (front: no queue ahead of our orders, i.e. the queue model switched off)")
    g.add_argument("--no-impact", action="store_true",
                   help="our taker fills leave the displayed book as recorded (market impact switched off)")
    g.add_argument("--start-s", type=float, default=0.0, metavar="S",
                   help="start serving S seconds (exchange time) into the tape; what comes before is applied "
                        "silently (default 0)")
    g.add_argument("--feed-latency", default="fixed:0", help="fixed:<ms>, uniform:<lo>:<hi> or recorded")
    g.add_argument("--entry-latency", default="fixed:0", help="send -> match latency: fixed:<ms> or uniform:<lo>:<hi>")
    g.add_argument("--ack-latency", default="fixed:0", help="match -> answer latency")
    g.add_argument("--seed", type=int, default=0, help="seed of the latency draws")
    g.add_argument("--fault", action="append", default=[], metavar="KEY=VALUE",
                   help="set a venue fault at start, e.g. reject_orders=3, drop_market=true, ban_s=30 (repeatable; "
                        "see engine/venues/sim/faults.py and GET /sim/status)")
    g.add_argument("--faults", metavar="FILE", help="venue faults at start from a JSON or TOML (.toml) object; "
                                                    "--fault settings override it")


def _sim_configs(args: argparse.Namespace):
    from decimal import Decimal

    from engine.venues.sim import SimConfig
    from engine.venues.sim.server import SimVenueConfig

    try:
        sim = SimConfig(maker_fee=Decimal(args.maker_fee), taker_fee=Decimal(args.taker_fee), queue_model=args.queue,
                        leverage=args.leverage, seed=args.seed, feed_latency=args.feed_latency,
                        entry_latency=args.entry_latency, ack_latency=args.ack_latency,
                        impact=not getattr(args, "no_impact", False))
    except ArithmeticError as exc:
        raise ConfigError(f"bad fee rate: {exc}") from None
    if args.speed <= 0:
        raise ConfigError("--speed must be > 0")
    if getattr(args, "start_s", 0.0) < 0:
        raise ConfigError("--start-s must be >= 0")
    creds = {k: v for k in ("api_key", "api_secret") if (v := getattr(args, k, None))}
    venue = SimVenueConfig(port=getattr(args, "port", 0), speed=args.speed, usdt=Decimal(args.usdt),
                           leverage=args.leverage, loop_on_end=bool(getattr(args, "loop", False)),
                           start_s=getattr(args, "start_s", 0.0), **creds)
    return sim, venue


def _sim_faults(args: argparse.Namespace) -> dict:
    """The faults to set at start (``--faults FILE`` then each ``--fault``), validated as ``POST /sim/faults``
    validates them; a ``ConfigError`` naming the problem otherwise."""
    from engine.venues.sim.faults import FaultError, load_fault_file, parse_fault_arg, parse_faults

    try:
        faults = parse_faults(load_fault_file(args.faults)) if getattr(args, "faults", None) else {}
        for text in getattr(args, "fault", None) or ():
            key, value = parse_fault_arg(text)
            faults.update(parse_faults({key: value}))
    except FaultError as exc:
        raise ConfigError(str(exc)) from None
    return faults


def _cmd_sim(args: argparse.Namespace) -> int:
    import asyncio

    from engine.loop import run
    from engine.venues.sim import SimExchange
    from engine.venues.sim.server import SimVenue

    sim_cfg, venue_cfg = _sim_configs(args)
    faults = _sim_faults(args)
    from engine.feed.recording import sample_paths

    files = args.data or [str(p) for p in sample_paths()]

    async def main() -> None:
        ex = SimExchange(files, cfg=sim_cfg)
        venue = SimVenue(ex, venue_cfg)
        venue.on_tape_end = _say_tape_end
        await venue.start()
        venue.set_faults(faults)
        print(f"sim venue on {', '.join(files)} at {venue_cfg.speed:g}x"
              f"{' (replayed again and again: --loop)' if venue_cfg.loop_on_end else ''}")
        print(f"  symbols        {', '.join(ex.instruments)}")
        print(f"  REST           {venue.rest_url}")
        print(f"  market streams {venue.ws_url}/stream?streams=...")
        print(f"  WebSocket API  {venue.ws_api_url}")
        print(f"  api key        {venue_cfg.api_key}")
        print(f"  api secret     {venue_cfg.api_secret}   (sim account only)")
        if faults:
            print(f"  faults         {', '.join(f'{k}={orjson.dumps(v).decode()}' for k, v in faults.items())}")
        sys.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await venue.stop()

    run(main())
    return 0


def _say_tape_end(lap: int) -> None:
    if lap:
        print(f"the recorded tape has ended: replaying it again (lap {lap})", flush=True)
    else:
        print("the recorded tape has ended: nothing more is published (the account and the REST API stay up; "
              "--loop replays it)", flush=True)


def _cmd_record(args: argparse.Namespace) -> int:
    import asyncio

    import aiohttp

    from engine.feed.recorder import Recorder
    from engine.loop import run
    from engine.venues.binance.rest import MAINNET_REST, TESTNET_REST, BinanceRest
    from engine.venues.binance.streams import MAINNET_WS, TESTNET_WS

    rest_url = args.rest or (TESTNET_REST if args.testnet else MAINNET_REST)
    ws_url = args.ws or (TESTNET_WS if args.testnet else MAINNET_WS)
    symbols = [s.upper() for s in args.symbols]

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            rec = Recorder(symbols, BinanceRest(rest_url, session), ws_url, args.out, session,
                           rotate_s=args.rotate)
            task = asyncio.create_task(rec.run())
            print(f"recording {', '.join(symbols)} from {ws_url} into {args.out}", flush=True)
            try:
                if args.duration:
                    await asyncio.sleep(args.duration)
                else:
                    await asyncio.Event().wait()
            finally:
                await rec.stop()
                task.cancel()
                for path in rec.written:
                    print(f"wrote {path}")

    run(main())
    return 0


def _run_config(args: argparse.Namespace):
    import dataclasses

    from engine import config as cfgmod

    cfg = cfgmod.load(args.config) if args.config else cfgmod.load(None)
    venue = cfg.venue
    changes = {}
    if args.venue:
        changes["kind"] = args.venue
    if args.testnet:
        changes["testnet"] = True
    if args.data:
        changes["data"] = tuple(args.data)
    if args.loop:
        changes["loop"] = True
    if args.speed is not None:
        changes["speed"] = args.speed
    elif args.demo and venue.kind == "sim" and not venue.rest_url and not args.venue:
        changes["speed"] = 5.0
    if args.symbols:
        changes["symbols"] = tuple(s.upper() for s in args.symbols)
    if args.venue_url:
        changes["rest_url"] = args.venue_url
    engine = {}
    if args.home:
        engine["home"] = args.home
    if args.metrics_port is not None:
        engine["metrics_port"] = args.metrics_port
    if args.console:
        engine["console"] = args.console
    try:
        return dataclasses.replace(cfg, venue=dataclasses.replace(venue, **changes),
                                   engine=dataclasses.replace(cfg.engine, **engine))
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from engine.loop import run
    from engine.runner import run_engine

    return run(run_engine(_run_config(args), demo=args.demo))


def _control(args: argparse.Namespace):
    from pathlib import Path

    from engine import config as cfgmod
    from engine.control import ControlClient

    cfg = cfgmod.load(args.config) if args.config else cfgmod.load(None)
    home = Path(args.home or cfg.engine.home).expanduser()
    return ControlClient(Path(cfg.engine.control_socket).expanduser() if cfg.engine.control_socket
                         else home / "control.sock")


EXIT_DONE, EXIT_NOT_DONE, EXIT_ERROR, EXIT_GRAMMAR = 0, 1, 2, 3     # ``tapeshot intent``'s exit codes


def _intent_exit(report: dict | None) -> int:
    """0 when the intent ended ``done``; 1 when it ended otherwise (failed, cancelled) or has no report."""
    return EXIT_DONE if report is not None and report.get("state", "done") == "done" else EXIT_NOT_DONE


def _cmd_intent(args: argparse.Namespace) -> int:
    """Send one intent, follow it to its report and print it in the trader's units (``--json``: one JSON object
    only). Exit codes: 0 done; 1 refused (risk, or not allowed now) or ended not done (failed, cancelled);
    2 no engine / other error; 3 the words could not be read (grammar)."""
    from engine.loop import run

    client = _control(args)
    out: dict = {"id": None, "state": None}

    async def main() -> int:
        async for line in client.intent(" ".join(args.text), markouts=args.markouts, key=args.key):
            code = _intent_line(args, line, out)
            if code is not None:
                return code
        out.update(state=out["state"] or "interrupted", error="the engine closed the answer before the report")
        _say_error(args, out)
        return EXIT_NOT_DONE

    code = run(main())
    if args.json:
        sys.stdout.write(orjson.dumps(out, default=str).decode() + "\n")
    return code


def _intent_line(args: argparse.Namespace, line: dict, out: dict) -> int | None:
    """One NDJSON line of ``/intent``: printed (not with ``--json``) and folded into ``out``; the exit code once
    the answer is complete, else None."""
    from engine import words

    final = "markouts" if args.markouts else "done"
    if "error" in line:
        grammar = line.get("refusal") == "grammar"
        out.update(state="invalid" if grammar else "refused", error=line["error"],
                   **({"reason": line["reason"]} if line.get("reason") else {}))
        _say_error(args, out)
        return EXIT_GRAMMAR if grammar else EXIT_NOT_DONE
    if line.get("kind") == "submitted":
        out["id"] = line["intent_id"]
        if not args.json:
            again = f" (already received under key {args.key}: nothing new sent)" if line.get("duplicate") else ""
            print(f"intent {line['intent_id']}{again}", flush=True)
        return None
    if line.get("kind") == final and isinstance(line.get("data"), dict):
        report = line["data"]
        out.update(state=report.get("state", "done"), report=report, text=words.report_text(report, out["id"] or ""))
        if not args.json:
            print(out["text"], flush=True)
        return _intent_exit(report)
    if not args.json:
        print(f"{line.get('kind')}: {line.get('text', '')}", flush=True)
    return None


def _say_error(args: argparse.Namespace, out: dict) -> None:
    if not args.json:
        print(f"{out['state']}: {out.get('error', '')}", file=sys.stderr)


def _cmd_simple(method: str, path: str, body_of=lambda a: {}):
    def handler(args: argparse.Namespace) -> int:
        from engine.loop import run

        result = run(_control(args).call(method, path(args) if callable(path) else path, body_of(args)))
        print(result if isinstance(result, str) else orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0

    return handler


def _journal_file(args: argparse.Namespace):
    import dataclasses
    from pathlib import Path

    from engine import config as cfgmod

    cfg = cfgmod.load(args.config) if args.config else cfgmod.load(None)
    if args.home:
        cfg = dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, home=args.home))
    path = Path(args.path).expanduser() if args.path else cfgmod.journal_path(cfg)
    if not path.exists():
        raise ConfigError(f"no journal at {path}")
    return path


def _cmd_journal_export(args: argparse.Namespace, path) -> int:
    """``journal export``: the journal (filtered by ``--since``, ``--until``, ``--symbol``) as JSON lines on stdout
    or into ``--out`` (written whole, then renamed), or as a Parquet dataset in the directory ``--out``."""
    from engine.dataset.select import parse_range

    since_ms, until_ms = parse_range(args.since, args.until)
    if args.format == "parquet":
        from engine.dataset.parquet import export_parquet

        if not args.out or args.out == "-":
            raise ConfigError("--format parquet writes a directory: give it with --out DIR")
        if args.decisions:
            raise ConfigError("--decisions is for --format jsonl: the Parquet dataset has no decision records")
        counts = export_parquet(path, args.out, since_ms, until_ms, args.symbol, overwrite=args.overwrite)
        where = f" to {Path(args.out).expanduser()}"
    else:
        counts = _export_jsonl_to(path, args.out, since_ms, until_ms, args.symbol, args.decisions)
        where = f" to {Path(args.out).expanduser()}" if args.out not in (None, "-") else ""
    print("exported " + ", ".join(f"{n} {k}s" for k, n in counts.items()) + f" from {path}{where}", file=sys.stderr)
    return 0


def _export_jsonl_to(path: Path, out: str | None, since_ms: int | None, until_ms: int | None, symbol: str | None,
                     decisions: bool) -> dict[str, int]:
    """The JSON lines export on stdout (``out`` None or ``-``) or into the file ``out`` (written, then renamed)."""
    import os
    import tempfile

    from engine.dataset.select import export_selected_jsonl

    if out is None or out == "-":
        return export_selected_jsonl(path, sys.stdout, since_ms, until_ms, symbol, decisions=decisions)
    dest = Path(out).expanduser()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent if str(dest.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            counts = export_selected_jsonl(path, f, since_ms, until_ms, symbol, decisions=decisions)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return counts


def _cmd_journal(args: argparse.Namespace) -> int:
    from engine.oms.journal import Journal

    path = _journal_file(args)
    if args.action == "export":
        return _cmd_journal_export(args, path)
    print(f"journal {path}")
    j = Journal(path)
    rows = j.query("SELECT id, created_ms, state, text, report FROM intents ORDER BY created_ms DESC LIMIT ?",
                   (args.limit,))
    for r in reversed(rows):
        rep = orjson.loads(r["report"]) if r["report"] else {}
        print(f"{r['id']}  {r['state']:<11} {r['text']!r:<40} filled {rep.get('filled', '-')} avg "
              f"{rep.get('avg_price', '-')} shortfall {rep.get('shortfall_bps', '-')} bps")
        if args.decisions:
            for d in j.query("SELECT time_ms, kind, data FROM decisions WHERE intent_id=? ORDER BY seq", (r["id"],)):
                print(f"    {d['kind']}: {d['data'][:160]}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """``report ID``: an intent's execution report from the journal, read-only (the engine may run or be
    stopped); ``--plot FILE`` writes its chart as a PNG (``engine.plot``)."""
    import contextlib

    from engine import words
    from engine.dataset.export import connect_ro

    path = _journal_file(args)
    with contextlib.closing(connect_ro(path)) as conn:
        row = conn.execute("SELECT id, state, text, report FROM intents WHERE id=?", (args.intent_id,)).fetchone()
    if row is None:
        raise ConfigError(f"no intent {args.intent_id} in the journal {path} ('tapeshot journal' lists the recent "
                          "ones)")
    report = orjson.loads(row["report"]) if row["report"] else None
    if args.json:
        print(orjson.dumps({"id": row["id"], "state": row["state"], "text": row["text"], "report": report},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"{row['id']}  {row['state']}  {row['text']!r}")
        print(words.report_text(report, row["id"]))
    return _write_plot(path, args.intent_id, args.plot) if args.plot else 0


def _write_plot(journal: Path, intent_id: str, out: str) -> int:
    """Draw intent ``intent_id``'s chart into ``out`` (PNG; written whole, then renamed into place)."""
    import os
    import tempfile

    from engine.plot import chart_data, render_png

    data = chart_data(journal, intent_id)
    if data.empty:
        raise ConfigError(f"nothing to draw for {intent_id}: no order, no fill and no touch in the journal")
    png = render_png(data)
    dest = Path(out).expanduser()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent if str(dest.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(png)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"chart: {dest} ({len(png) / 1024:.0f} KB)", file=sys.stderr)
    return 0


def _cmd_scorecard(args: argparse.Namespace) -> int:
    """``scorecard [SOURCE]``: the trader's calls scored against random calls at the same moments, and what the
    execution kept (``engine.dataset.scorecard``); SOURCE is a journal, a ``.jsonl`` export or a Parquet dataset
    directory (default: the configured journal). ``--json``: the card as JSON only; ``--plot DIR``: its PNGs."""
    from engine.dataset import scorecard as sc

    source = Path(args.source).expanduser() if args.source else _journal_file(args)
    intents = sc.load_intents(source)
    if not intents:
        raise ConfigError(f"no intents in {source}")
    card = sc.scorecard(intents, seed=args.seed, pnl_horizon=args.horizon)
    counts = card["counts"]
    if not counts["enter"]:
        hint = (f" ({counts['not_v2']} of {counts['intents']} intent records are not {sc.SCHEMA})" if counts["not_v2"]
                else f" ({counts['exit']} exits, which are not scored)")
        raise ConfigError(f"no entry intents to score in {source}{hint}")
    if args.json:
        sys.stdout.write(orjson.dumps(card, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(sc.summary_text(card))
    for p in sc.plot_scorecard(card, args.plot) if args.plot else ():
        print(f"plot: {p}", file=sys.stderr)
    return 0


def _cmd_chaos(args: argparse.Namespace) -> int:
    from engine.chaos.drill import Drill, Options
    from engine.loop import run

    if args.runs is not None and args.runs < 1:
        raise ConfigError("--runs must be at least 1")
    if args.minutes is not None and args.minutes <= 0:
        raise ConfigError("--minutes must be > 0")
    opts = Options(seed=args.seed, runs=args.runs, minutes=args.minutes, data=args.data, home=args.home,
                   keep=args.keep, faults=args.fault)
    return run(Drill(opts, say=lambda line: print(line, flush=True)).run())


SECRET_OPTIONS = ("--api-key", "--api-secret", "--secret", "--passphrase")   # refused: argv shows in ps


class _Refused(argparse.Action):
    """An option that would put a secret on the command line: remembered as given (never its value) and
    refused by the command with a clear message."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.refused_option = option_string


def _ask(prompt: str) -> str:
    """One line from the terminal (not echoed) or, when stdin is not a terminal, the next line of stdin."""
    import getpass

    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def _passphrase(confirm: bool):
    """The key file's passphrase: ``TAPESHOT_KEY_PASSPHRASE``, else the terminal (twice for a new file), else
    the next line of stdin. A new key file needs at least 8 characters."""
    import os

    from engine.keys import Secret

    phrase = os.environ.get("TAPESHOT_KEY_PASSPHRASE") or _ask("key file passphrase: ")
    if not phrase:
        raise ConfigError("no passphrase: set TAPESHOT_KEY_PASSPHRASE, type it at the prompt or give it on stdin")
    if confirm and sys.stdin.isatty() and not os.environ.get("TAPESHOT_KEY_PASSPHRASE") \
            and _ask("again: ") != phrase:
        raise ConfigError("the passphrases differ")
    if confirm and len(phrase) < 8:
        raise ConfigError("use a passphrase of at least 8 characters")
    return Secret(phrase)


def _key_store(args: argparse.Namespace):
    from pathlib import Path

    from engine import config as cfgmod
    from engine.keys import KEY_FILE, KeyStore

    cfg = cfgmod.load(args.config) if args.config else cfgmod.load(None)
    return KeyStore(Path(args.file or Path(args.home or cfg.engine.home) / KEY_FILE))


def _keys_add(args: argparse.Namespace, store) -> int:
    """``keys add NAME``: the API key and its secret from the terminal or stdin (one a line), then the
    passphrase; an Ed25519 key from its PEM file (``--ed25519``, mode 0600)."""
    from pathlib import Path

    from engine.keys import Secret, check_private, mask

    api_key = _ask("API key: ").strip()
    if not api_key:
        raise ConfigError("no API key given (the terminal, or the first line of stdin)")
    if args.ed25519:
        pem = Path(args.ed25519).expanduser()
        check_private(pem)
        secret = Secret(pem.read_bytes())
    else:
        text = _ask("API secret: ").strip()
        if not text:
            raise ConfigError("no API secret given (the terminal, or the line after the key on stdin)")
        secret = Secret(text)
    store.add(args.name, api_key, secret, _passphrase(not store.path.exists()), ed25519=bool(args.ed25519))
    print(f"stored {args.name} ({mask(api_key)}) in {store.path}")
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from engine.keys import mask

    if getattr(args, "refused_option", None):
        raise ConfigError(f"keys {args.action}: {args.refused_option} is not taken on the command line (ps and "
                          "the shell history show it): keys add reads the API key, its secret and the passphrase "
                          "from the terminal, or one a line from stdin")
    store = _key_store(args)
    if args.action == "list":
        for name, p in store.load(_passphrase(False)).items():
            print(f"{name}: {mask(p['api_key'])} ({p.get('kind', 'hmac')})")
        return 0
    if not args.name:
        raise ConfigError(f"keys {args.action} needs a profile name")
    if args.action == "remove":
        print("removed" if store.remove(args.name, _passphrase(False)) else f"no profile {args.name}")
        return 0
    return _keys_add(args, store)


def _sample():
    from engine.feed.recording import sample_path

    return sample_path()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tapeshot", description="Low-latency directional execution engine.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("verify-book", help="rebuild a recording's book and check it against every bookTicker")
    v.add_argument("files", nargs="+", help="the files of one recording, in order (plain or gzipped)")
    v.add_argument("--exchange-info", metavar="FILE", help="a /fapi/v1/exchangeInfo JSON for tick/step sizes")
    v.add_argument("--window", type=int, default=32768, help="book ladder window in ticks (default 32768)")
    v.add_argument("-v", "--verbose", action="store_true", help="a line per symbol")
    v.set_defaults(func=_cmd_verify_book)

    fz = sub.add_parser("fuzz", help="hostile input at volume: intents, mutated depth messages, injected diffs")
    fz.add_argument("--intents", type=int, default=100_000, help="intent strings (default 100000)")
    fz.add_argument("--depth", type=int, default=100_000, help="mutated depth messages (default 100000)")
    fz.add_argument("--books", type=int, default=300, help="tape replays with an injected diff (default 300)")
    fz.add_argument("--seed", type=int, default=0)
    fz.add_argument("--data", nargs="+", metavar="FILE", help="a recording (default: the bundled sample)")
    fz.set_defaults(func=_cmd_fuzz)

    b = sub.add_parser("bench", help="measure the hot path on real recordings (bundled sample by default)")
    b.add_argument("files", nargs="*", help="a recording to measure on (default: the bundled sample)")
    b.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    b.add_argument("--no-sockets", action="store_true", help="skip the loopback socket measurements (~15 s)")
    b.add_argument("--model", metavar="MODEL", help="also time bytes to decision with this learned model's "
                                                     "features and predictions (tapeshot train)")
    b.set_defaults(func=_cmd_bench)

    s = sub.add_parser("sim", help="serve a recording as a Binance USD-M venue on loopback")
    s.add_argument("--data", nargs="+", metavar="FILE", help="the recordings: a symbol's files in order, several "
                   "symbols' merged by exchange time (default: the bundled BTCUSDT + ETHUSDT sample)")
    s.add_argument("--loop", action="store_true", help="when the tape ends, replay it again (default: stop there)")
    s.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    s.add_argument("--api-key", help=f"API key the venue accepts (default {DEFAULT_API_KEY})")
    s.add_argument("--api-secret", help="its secret (default printed at start-up)")
    _add_sim_options(s)
    s.set_defaults(func=_cmd_sim)

    r = sub.add_parser("record", help="record Binance USD-M public streams and snapshots into replayable files")
    r.add_argument("symbols", nargs="+", metavar="SYMBOL")
    r.add_argument("--out", required=True, metavar="DIR", help="directory for the gzip files")
    r.add_argument("--rotate", type=float, default=3600.0, help="start a new file every N seconds (default 3600)")
    r.add_argument("--duration", type=float, help="stop after N seconds (default: until Ctrl-C)")
    r.add_argument("--testnet", action="store_true", help="record the testnet instead of mainnet")
    r.add_argument("--rest", help="REST base URL (e.g. a sim venue's)")
    r.add_argument("--ws", help="WebSocket base URL (e.g. a sim venue's)")
    r.set_defaults(func=_cmd_record)

    run = sub.add_parser("run", help="run the engine (default: the embedded sim venue on the bundled real tape)")
    run.add_argument("--config", metavar="FILE", help="TOML configuration")
    run.add_argument("--venue", choices=("sim", "binance"), help="sim (embedded or --venue-url) or binance")
    run.add_argument("--venue-url", metavar="URL", help="REST base URL of a running sim venue (tapeshot sim)")
    run.add_argument("--testnet", action="store_true", help="with --venue binance: the testnet")
    run.add_argument("--data", nargs="+", metavar="FILE", help="recordings for the embedded sim venue (several "
                     "symbols' files are merged by exchange time; default: the bundled BTCUSDT + ETHUSDT sample)")
    run.add_argument("--speed", type=float, help="the sim venue's replay speed: the embedded one's (default 1; 5 "
                     "with --demo), or the --venue-url one's, so the engine's clock keeps pace with it")
    run.add_argument("--symbols", nargs="+", metavar="SYMBOL", help="symbols to trade")
    run.add_argument("--home", metavar="DIR", help="journal and control socket directory (default ~/.tapeshot)")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    run.add_argument("--console", choices=("auto", "on", "off"), help="read intents from stdin")
    run.add_argument("--demo", action="store_true", help="send a scripted series of intents, print each report")
    run.add_argument("--loop", action="store_true", help="the embedded sim venue replays its tape again when it "
                     "ends (default: the engine stops there)")
    run.set_defaults(func=_cmd_run)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE")
    common.add_argument("--home", metavar="DIR")
    it = sub.add_parser("intent", parents=[common], help="send an intent to the running engine, print its report")
    it.add_argument("text", nargs="+", help='e.g. "long btc 0.01 20s max 8bps"')
    it.add_argument("--markouts", action="store_true", help="wait for the +30 s markouts too")
    it.add_argument("--json", action="store_true", help="print one JSON object only: id, state, report, text "
                    "(the report in words), error; exit codes: 0 done, 1 refused or not done, 3 unreadable words")
    it.add_argument("--key", metavar="K", help="idempotency key (1-128 printable ASCII): the same key again, even "
                    "after a restart, sends nothing new and prints the first intent's outcome")
    it.set_defaults(func=_cmd_intent)
    st = sub.add_parser("status", parents=[common], help="the running engine's positions, intents and health")
    st.add_argument("symbol", nargs="?")
    st.set_defaults(func=_cmd_simple("GET", lambda a: "/status" + (f"?symbol={a.symbol.upper()}" if a.symbol else "")))
    k = sub.add_parser("kill", parents=[common], help="KillSwitch: cancel everything and halt trading")
    k.add_argument("reason", nargs="*")
    k.set_defaults(func=_cmd_simple("POST", "/kill", lambda a: {"reason": " ".join(a.reason) or "by hand"}))
    rd = sub.add_parser("reduce", parents=[common], help="REDUCING: only flat and TP/SL go out until resume")
    rd.add_argument("reason", nargs="*")
    rd.set_defaults(func=_cmd_simple("POST", "/reduce", lambda a: {"reason": " ".join(a.reason) or "by hand"}))
    rs = sub.add_parser("resume", parents=[common], help="resume trading after a kill")
    rs.set_defaults(func=_cmd_simple("POST", "/resume"))
    jr = sub.add_parser("journal", parents=[common], help="recent intents and their reports from the journal; "
                                                           "'journal export' writes the decision dataset (JSON "
                                                           "lines or Parquet, docs/dataset.md)")
    jr.add_argument("action", nargs="?", choices=("show", "export"), default="show",
                    help="show (default): recent intents; export: the intents, orders and fills (docs/dataset.md)")
    jr.add_argument("--path", help="journal file (default: the configured venue's; the embedded sim's without a "
                                   "config)")
    jr.add_argument("--format", choices=FORMATS, default="jsonl", help="export format (default jsonl)")
    jr.add_argument("--out", metavar="PATH", help="export into PATH: jsonl a file (default: stdout), parquet a "
                                                  "directory (required; must be absent or empty)")
    jr.add_argument("--since", metavar="T", help="export intents created at or after T: an ISO date or time (UTC "
                                                 "unless it names a zone) or ms since the epoch")
    jr.add_argument("--until", metavar="T", help="export intents created before T (as --since)")
    jr.add_argument("--symbol", metavar="S", help="export only symbol S's intents (and their orders and fills)")
    jr.add_argument("--overwrite", action="store_true", help="parquet: replace a previous Tapeshot dataset at --out")
    jr.add_argument("--limit", type=int, default=20)
    jr.add_argument("--decisions", action="store_true", help="with the decision journal of each intent (export: "
                                                             "the raw decision records, jsonl only)")
    jr.set_defaults(func=_cmd_journal)
    rp = sub.add_parser("report", parents=[common], help="an intent's execution report from the journal; --plot FILE "
                        "draws its chart (touch, our orders and fills, cap, deadline, markouts) as a PNG")
    rp.add_argument("intent_id", metavar="ID", help="the intent id (as 'tapeshot journal' lists them)")
    rp.add_argument("--plot", metavar="FILE", help="write the execution's chart into FILE (PNG)")
    rp.add_argument("--json", action="store_true", help="print the report as JSON")
    rp.add_argument("--path", help="journal file (default: the configured venue's; the embedded sim's without a "
                                   "config)")
    rp.set_defaults(func=_cmd_report)
    sc = sub.add_parser("scorecard", parents=[common], help="the trader as a baseline: the calls' hit rate and "
                        "edge per horizon against random calls at the same moments, the execution's saving, "
                        "splits by tag, symbol, window and algorithm")
    sc.add_argument("source", nargs="?", metavar="SOURCE", help="a journal, a .jsonl export or a Parquet dataset "
                    "directory (default: the configured journal)")
    sc.add_argument("--path", help="journal file when no SOURCE is given (default: the configured venue's)")
    sc.add_argument("--json", action="store_true", help="print the scorecard as one JSON object only")
    sc.add_argument("--plot", metavar="DIR", help="write the edge and cumulative PnL charts into DIR (PNG)")
    sc.add_argument("--horizon", type=int, default=60, metavar="S",
                    help="horizon of the splits and the PnL in seconds: 1, 5, 30, 60 or 300 (default 60)")
    sc.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the random calls (default 0)")
    sc.set_defaults(func=_cmd_scorecard)
    ky = sub.add_parser("keys", parents=[common], help="API keys in the encrypted key file (add / list / remove); "
                        "add reads the key, the secret and the passphrase from the terminal or stdin, one a line")
    ky.add_argument("action", choices=("add", "list", "remove"))
    ky.add_argument("name", nargs="?", help="profile name (e.g. main, testnet)")
    ky.add_argument("--ed25519", metavar="PEM", help="an Ed25519 private key file (mode 0600) instead of an HMAC "
                                                     "secret")
    ky.add_argument("--file", help="key file (default ~/.tapeshot/keys.enc)")
    for opt in SECRET_OPTIONS:                 # the key, secret and passphrase come from the terminal or stdin
        ky.add_argument(opt, nargs="?", action=_Refused, help=argparse.SUPPRESS)
    ky.set_defaults(func=_cmd_keys)
    ch = sub.add_parser("chaos", help="the fault drill: intents under kill -9, crash points, venue faults; "
                                      "journal checked against the venue")
    ch.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    span = ch.add_mutually_exclusive_group()
    span.add_argument("--minutes", type=float, help="run for this long")
    span.add_argument("--runs", type=int, help="this many runs (default 10 when neither is given)")
    ch.add_argument("--data", nargs="+", metavar="FILE", help="the recording (default: the bundled sample)")
    ch.add_argument("--home", metavar="DIR", help="work directory: journals, logs (default: a temporary one)")
    ch.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    from engine.chaos.faults import BY_NAME

    ch.add_argument("--fault", nargs="+", choices=sorted(BY_NAME), metavar="KIND",
                    help=f"only these fault kinds (default: all): {', '.join(BY_NAME)}")
    ch.set_defaults(func=_cmd_chaos)
    from engine.eval.cli import add_parser as add_eval
    from engine.learn.cli import add_parser as add_train

    add_eval(sub)
    add_train(sub)
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
    except BrokenPipeError:                      # `tapeshot journal | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
