"""``tapeshot train``: learn a timing model from a development recording and write a versioned model file.

Features and labels: ``engine.learn.features``; capacities: ``engine.learn.models``; the file:
``engine.learn.modelfile``. The validation sets are refused as training data (score on them with --validate).
"""

from __future__ import annotations

import argparse
import os
import sys

from engine.errors import ConfigError
from engine.learn import CAPACITIES


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` on the ``tapeshot`` sub-command parser."""
    p = subparsers.add_parser("train", help="learn a timing model (moves over 0.5-5 s, passive fill within 2 s) "
                                            "from a development recording", description=__doc__)
    p.add_argument("--data", nargs="+", metavar="FILE",
                   help="the files of one development recording, in order (default: the shared development set)")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write (.npz)")
    p.add_argument("--capacity", choices=CAPACITIES, default="linear",
                   help="linear (ridge + logistic), trees (boosted, depth 3) or mlp (16 tanh units); default linear")
    p.add_argument("--validate", nargs="+", action="append", metavar="FILE",
                   help="the files of one recording to score the model on (never fitted on); repeat for more")
    p.add_argument("--step-ms", type=int, default=100, metavar="N",
                   help="at most one sample per N ms of exchange time (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the MLP's initialisation and batches (default 0)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="processes featurizing the recordings and fitting the targets (default: CPUs); the model "
                        "does not depend on it")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="featurize and fit on a Ray cluster (host[:port], ray://host[:port], auto) or on a Ray "
                        "instance started here (local); every node must see the recordings at the same paths. "
                        'Needs pip install "tapeshot[cluster]"')
    p.set_defaults(func=run_cli)
    return p


def _default_data() -> list[str]:
    from engine.eval.data import DEV_FILES, shared_dir

    shared = shared_dir()
    return [str(shared / f) for f in DEV_FILES]


def _fmt(target: str, s: dict | None) -> str:
    if not s:
        return "-"
    if target.startswith("fill_"):
        return f"AUC {_n(s.get('auc'), '.3f')} (base {_n(s.get('base'), '.2f')})"
    return f"IC {_n(s.get('ic'), '+.3f')} hit {_n(s.get('hit'), '.2f')}"


def _n(x: float | None, spec: str) -> str:
    return "n/a" if x is None or x != x else format(x, spec)


def table(meta: dict) -> str:
    """The short report: rows, features, per target the scores (tail, each validation set) and the cost."""
    tr = meta["training"]
    fz = tr.get("featurize", {})
    vals = meta["scores"].get("validation", [])
    heads = ["tail"] + [f"{v['symbol']} {'+'.join(v['files'])} ({v['role']})" for v in vals]
    gap = tr["rows"] - tr["rows_fit"] - tr["rows_tail"]
    lines = [f"{meta['capacity']} model for {meta['symbol']}: {tr['rows']} rows ({tr['rows_fit']} fitted, "
             f"{tr['rows_tail']} held out" + (f", {gap} left out between them so no label crosses into the tail"
                                               if gap > 0 else "")
             + f"), {len(meta['features'])} features (set {meta['feature_set_id']}), "
             f"step {meta['step_ms']} ms; featurized {fz.get('rows_per_s', 0):,} rows/s",
             "  IC: rank correlation of predicted and realised move; hit: share of the predicted sign right; "
             "AUC: of the fill probability",
             *(f"  validation {i + 1}: {h} ({v['rows']} rows)" for i, (h, v) in enumerate(zip(heads[1:], vals,
                                                                                              strict=True))),
             ""]
    cols = ["tail"] + [f"validation {i + 1}" for i in range(len(vals))]
    lines.append(f"{'target':<11}" + "".join(f"{c:<26}" for c in cols) + "predict_one ns p50/p99")
    for target in meta["targets"]:
        cells = [_fmt(target, meta["scores"]["tail"].get(target))]
        cells += [_fmt(target, v["scores"].get(target)) for v in vals]
        cost = meta.get("inference_ns", {}).get(target, {})
        lines.append(f"{target:<11}" + "".join(f"{c:<26}" for c in cells)
                     + f"{_n(cost.get('p50'), '.0f')} / {_n(cost.get('p99'), '.0f')}")
    return "\n".join(lines)


def run_cli(args: argparse.Namespace) -> int:
    from engine.eval.cluster import session
    from engine.eval.data import refuse_validation
    from engine.learn.bench import inference_ns
    from engine.learn.modelfile import save
    from engine.learn.train import train

    data = args.data or _default_data()
    refuse_validation(data, "train")
    if args.step_ms <= 0:
        raise ConfigError(f"--step-ms must be > 0, got {args.step_ms}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    print(f"training {args.capacity} on {len(data)} file(s) ...", file=sys.stderr, flush=True)
    with session(args.workers, args.cluster) as backend:
        tm, fz, tail = train(data, args.capacity, args.step_ms, args.seed, args.validate, backend)
    tm.meta["inference_ns"] = {t: inference_ns(m, fz.X[tail]) for t, m in tm.models.items()}
    path = save(args.out, tm)
    print(table(tm.meta))
    print(f"\nwrote {path}")
    return 0
