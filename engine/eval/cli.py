"""``tapeshot eval``: the engine's algorithms against the baselines on real recordings (see docs/eval.md)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import orjson

from engine.errors import ConfigError
from engine.eval.data import VALIDATION_FILES, dataset, shared_dir
from engine.eval.experiments import EXPERIMENTS, Settings
from engine.eval.runner import EVAL_ALGOS


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``eval`` on the ``tapeshot`` sub-command parser."""
    p = subparsers.add_parser("eval", help="replay recordings and compare our algorithms with the baselines",
                              description=__doc__)
    p.add_argument("--data", nargs="+", action="append", metavar="FILE",
                   help="the files of one recording, in order; repeat --data for more recordings "
                        "(default: the 2024-07 BTCUSDT and ETHUSDT validation sets)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--intents", type=int, default=40, metavar="N",
                   help="N uninformed and N informed intents per recording (default 40)")
    g.add_argument("--intents-file", metavar="F", help="intents written by --save-intents (one recording only)")
    p.add_argument("--save-intents", metavar="F", help="write the generated intents (one recording only)")
    p.add_argument("--seed", type=int, default=0, help="seed of intents, latency draws and bootstrap (default 0)")
    p.add_argument("--latency", default="fixed:1", metavar="MODEL",
                   help="latency of the main comparison: one model for feed, entry and ack (fixed:<ms>, "
                        "uniform:<lo>:<hi>) or three separated by commas (default fixed:1)")
    p.add_argument("--horizon", type=float, default=30.0, help="informed intents' horizon H, s (default 30)")
    p.add_argument("--informedness", default="3:12", metavar="LO:HI",
                   help="informed intents' edge: the recorded move over H they are placed on, bps, drawn "
                        "log-uniform in [LO, HI] (default 3:12; 0:0 = any non-zero move, the first evaluations' rule)")
    p.add_argument("--latencies", default="0,1,5,20,100", help="latency sweep, ms (default 0,1,5,20,100)")
    p.add_argument("--skip", default="", help=f"comma-separated experiments to skip: {','.join(EXPERIMENTS)}")
    p.add_argument("--algos", default=",".join(EVAL_ALGOS),
                   help=f"algorithms to compare (default: all {len(EVAL_ALGOS)}: {', '.join(EVAL_ALGOS)})")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="replay processes (default: CPUs)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="run the replay passes on a Ray cluster (host[:port], ray://host[:port], auto) or on a Ray "
                        "instance started here (local, --workers CPUs); every node must see the recordings at the "
                        'same paths. Needs pip install "tapeshot[cluster]"')
    p.add_argument("--models", nargs="+", default=[], metavar="MODEL",
                   help="model files (tapeshot train): the hybrid runs with each beside the kernels-only hybrid, "
                        "on one smart-vs-fast board (cost, edge kept, latency of the decision path)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--plot", metavar="DIR", help="write PNG charts into DIR")
    p.add_argument("--save-json", metavar="F", help="also write the --json object to F")
    g2 = p.add_argument_group("the backtest-live gap (--gap)")
    g2.add_argument("--gap", action="store_true",
                    help="run only the backtest-live gap: the same intents in the replay (every model on, each of "
                         "latency / queue / impact off, all off) and on the live path (tapeshot sim and tapeshot "
                         "run as processes over loopback); one recording")
    g2.add_argument("--gap-algos", default="ladder,hybrid", help="algorithms of the gap (default ladder,hybrid)")
    g2.add_argument("--gap-speed", type=float, default=1.0,
                    help="the live path's replay speed, x real time (default 1: real time)")
    g2.add_argument("--gap-warmup", type=float, default=20.0, metavar="S",
                    help="exchange seconds the live venue starts before each intent (default 20)")
    g2.add_argument("--gap-keep", metavar="DIR", help="keep the live sessions' logs and journals in DIR")
    p.add_argument("--tune", action="store_true", help="grid-search thresholds on the given (development) data "
                                                       "and print them; refuses validation sets. With --models: "
                                                       "the hybrid's grid once per model instead")
    p.set_defaults(func=run_cli)
    return p


def _settings(args: argparse.Namespace) -> Settings:
    lat = [x.strip() for x in args.latency.split(",")]
    if len(lat) not in (1, 3):
        raise ConfigError("--latency takes one model or three (feed,entry,ack)")
    algos = tuple(a.strip() for a in args.algos.split(",") if a.strip())
    unknown = [a for a in algos if a not in EVAL_ALGOS]
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    if unknown or skip - set(EXPERIMENTS):
        raise ConfigError(f"unknown algorithm or experiment: {sorted(set(unknown) | (skip - set(EXPERIMENTS)))}")
    if args.intents < 1 or args.workers < 1:
        raise ConfigError("--intents and --workers must be >= 1")
    try:
        lats = tuple(float(x) for x in args.latencies.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"bad --latencies {args.latencies!r}") from None
    try:
        lo, hi = (float(x) for x in args.informedness.split(":"))
    except ValueError:
        raise ConfigError(f"--informedness takes LO:HI in bps, got {args.informedness!r}") from None
    if not 0 <= lo <= hi or (lo == 0) != (hi == 0):
        raise ConfigError(f"--informedness needs 0 < LO <= HI (or 0:0), got {args.informedness!r}")
    if "bars" not in skip and "sniper" not in algos:
        skip.add("bars")
    return Settings(n_intents=args.intents, seed=args.seed, latency=tuple(lat * 3 if len(lat) == 1 else lat),
                    horizon_s=args.horizon, workers=args.workers, algos=algos, latencies_ms=lats,
                    experiments=frozenset(EXPERIMENTS) - skip, models=tuple(args.models), informedness=(lo, hi))


def _check_models(models: tuple[str, ...], sets) -> None:
    """Every ``--models`` file read and fitted to every recording's symbol before any replay runs (a
    ``ConfigError`` naming it); a warning on stderr when a model was trained on a file being evaluated."""
    if not models:
        return
    from engine.learn.runtime import cached_model
    from engine.learn.train import sha256_of

    for ds in sets:
        shas = None
        for m in models:
            files = (cached_model(m, ds.symbol).meta.get("training") or {}).get("files") or []
            trained = {f.get("sha256") for f in files if isinstance(f, dict)}
            shas = shas if shas is not None else {sha256_of(f): Path(f).name for f in ds.files}
            seen = [name for sha, name in shas.items() if sha in trained]
            if seen:
                print(f"warning: {Path(m).name} was trained on {', '.join(seen)}: its numbers on {ds.label} are "
                      f"in-sample", file=sys.stderr)


def _recordings(args: argparse.Namespace) -> list[list[str]]:
    if args.data:
        return args.data
    shared = shared_dir()
    return [[str(shared / f) for f in pair] for pair in VALIDATION_FILES]


def run_cli(args: argparse.Namespace) -> int:
    """Every replay inside one backend session (``--workers`` processes, or ``--cluster``: engine.eval.cluster)."""
    from engine.eval.cluster import session

    _settings(args)                     # bad arguments fail before any cluster is joined
    with session(args.workers, args.cluster):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from engine.eval import intents as intents_mod
    from engine.eval.experiments import evaluate
    from engine.eval.report import document, text

    s = _settings(args)
    if args.gap and s.models:
        raise ConfigError("--gap runs what a trader can ask for on the live path, which reads the model from the "
                          "engine's [model] configuration: --models belongs to the board, not to --gap")
    sets = [dataset(files) for files in _recordings(args)]
    _check_models(s.models, sets)
    if args.tune:
        return _tune(sets, s)
    if args.gap:
        return _gap(args, sets, s)
    if (args.intents_file or args.save_intents) and len(sets) != 1:
        raise ConfigError("--intents-file / --save-intents work with one recording")
    given = intents_mod.load(args.intents_file) if args.intents_file else None
    results = []
    for ds in sets:
        print(f"evaluating {ds.label} ...", file=sys.stderr, flush=True)
        path = None
        if args.save_intents:
            from engine.eval.data import market_path

            path = market_path(ds.files)
            given = intents_mod.generate(path, s.n_intents, s.n_intents, s.seed, s.horizon_s,
                                         informedness=s.informedness)
            intents_mod.save(given, args.save_intents)
        results.append(evaluate(ds, s, given, path))
    if args.plot:
        from engine.eval.plots import write_all

        for p in write_all(results, args.plot):
            print(f"wrote {p}", file=sys.stderr)
    doc = orjson.dumps(document(results, s), option=orjson.OPT_SERIALIZE_NUMPY)
    if args.save_json:
        Path(args.save_json).write_bytes(doc + b"\n")
    if args.json:
        sys.stdout.write(doc.decode() + "\n")
    else:
        print(text(results, s))
    return 0


def _tune(sets, s: Settings) -> int:
    from engine.eval.tune import tune, tune_models

    if len(sets) != 1:
        raise ConfigError("--tune takes one (development) recording")
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    doc = {"set": sets[0].label, "files": [Path(f).name for f in sets[0].files], "seed": s.seed,
           "intents_per_kind": s.n_intents}
    if s.models:                     # the hybrid per model, on top of the tuned parameters of everything else
        doc["models"] = tune_models(sets[0], replace(s, experiments=frozenset()), log=log)
    else:
        doc["params"] = tune(sets[0], replace(s, experiments=frozenset()), log=log)
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _gap(args: argparse.Namespace, sets, s: Settings) -> int:
    from engine.eval import intents as intents_mod
    from engine.eval.data import market_path
    from engine.eval.gap import GapSettings, check_settings, gap, table

    if len(sets) != 1:
        raise ConfigError("--gap takes one recording")
    from engine.intents import ALGOS

    algos = tuple(a.strip() for a in args.gap_algos.split(",") if a.strip())
    if not algos or set(algos) - set(ALGOS):
        raise ConfigError(f"--gap-algos: the live path runs what a trader can ask for ({', '.join(ALGOS)}); "
                          f"got {args.gap_algos!r}")
    gs = GapSettings(algos=algos, latency=s.latency, speed=args.gap_speed, warmup_s=args.gap_warmup, seed=s.seed,
                     workers=s.workers, params=s.params, keep=args.gap_keep)
    check_settings(gs)
    ds = sets[0]
    path = market_path(ds.files)
    its = intents_mod.load(args.intents_file) if args.intents_file else \
        intents_mod.generate(path, s.n_intents, s.n_intents, s.seed, s.horizon_s, informedness=s.informedness)
    print(f"backtest-live gap on {ds.label}: {len(its)} intents x {len(algos)} algorithms ...", file=sys.stderr,
          flush=True)
    result = gap(ds, path, its, intents_mod.pack(its), gs, say=lambda m: print(m, file=sys.stderr, flush=True))
    doc = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
    if args.save_json:
        Path(args.save_json).write_bytes(doc + b"\n")
    if args.json:
        sys.stdout.write(doc.decode() + "\n")
    else:
        print("\n".join(table(result)))
    return 0
