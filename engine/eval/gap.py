"""The backtest-live gap, taken apart: the same intents in the in-process replay and on the live path.

*Live path*: ``tapeshot sim`` (the simulated venue) and ``tapeshot run`` (the engine) as two processes speaking
Binance's REST and WebSocket protocols over loopback, each intent sent over the engine's control socket when the
venue's exchange clock reaches the intent's time, exactly as a trader's command arrives. One venue + engine
session per intent: the venue starts ``warmup_s`` of exchange time before the intent (what precedes is applied
silently, ``tapeshot sim --start-s``), so the engine's book and signals have that much history, and the session
ends with the intent's report. The venue injects the same latency models as the replay (``--latency``), the same
queue model and the same market impact; on top of them the live path pays what no model in the replay has:
the engine's real processing, the sockets, JSON both ways, the event loop's scheduling, the REST snapshot, a
shorter warm-up, all at ``speed`` x real time (at 2x a real 1 ms costs 2 ms of exchange time).

*Replay variants*: the in-process replay (``engine.eval.runner``) with every model on, then with one model
switched off at a time, then with all three off (the naive backtest):

- latency: feed, order entry and acknowledgement ``fixed:0`` instead of the main latency;
- queue position: ``queue_model="front"``: our resting orders have no queue ahead of them;
- market impact: ``impact=False``: our taker fills do not remove displayed liquidity.

Reading: the naive backtest's gap to live (``live - naive``) is what a backtest without these models gets wrong;
``replay - replay without X`` is what model X accounts for; ``live - replay`` is what the models still miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from engine.errors import ConfigError
from engine.eval.data import SEC, DataSet, MarketPath
from engine.eval.intents import EvalIntent
from engine.eval.runner import Job, run_jobs
from engine.eval.stats import measures, summarise
from engine.model import KNOWN_INSTRUMENTS

ZERO_LATENCY = ("fixed:0", "fixed:0", "fixed:0")
VARIANTS: dict[str, dict[str, Any]] = {            # replay label -> what is switched off
    "replay": {},
    "replay, no latency": {"latency": ZERO_LATENCY},
    "replay, no queue": {"sim": {"queue_model": "front"}},
    "replay, no impact": {"sim": {"impact": False}},
    "naive replay": {"latency": ZERO_LATENCY, "sim": {"queue_model": "front", "impact": False}},
}
MODELS = {"latency": "replay, no latency", "queue position": "replay, no queue", "market impact": "replay, no impact"}
LIVE = "live"
SUBMIT_LEAD_MS = 0.0          # the intent is sent when the venue's clock reaches its time
# the replay applies no pre-trade limits: the live engine's are opened wide enough for any evaluation intent (a
# fraction of the top-5 depth), and the venue account is funded for them
LIVE_RISK = {"TAPESHOT_RISK__MAX_ORDER_NOTIONAL": "50000000", "TAPESHOT_RISK__MAX_POSITION_NOTIONAL": "50000000",
             "TAPESHOT_RISK__MAX_DRAWDOWN": "10000000", "TAPESHOT_RISK__MAX_SESSION_LOSS": "10000000",
             "TAPESHOT_RISK__MAX_DAILY_LOSS": "10000000"}
LIVE_USDT = "100000000"


@dataclass(frozen=True)
class GapSettings:
    """What the gap experiment runs: algorithms, the main latency, the live path's speed and warm-up."""

    algos: tuple[str, ...] = ("ladder", "hybrid")
    latency: tuple[str, str, str] = ("fixed:1", "fixed:1", "fixed:1")
    speed: float = 1.0
    warmup_s: float = 20.0
    seed: int = 0
    workers: int = 1
    params: dict[str, dict] | None = None
    taker_fee: float = 0.0005
    keep: str | None = None                  # keep the live sessions' logs and journals in this directory


def replay_outcomes(ds: DataSet, passes: list[list[EvalIntent]], s: GapSettings) -> dict[tuple[str, str], list]:
    """Every replay variant of every algorithm: (variant, algo) -> outcomes in intent order."""
    from engine.eval import tuned

    params = s.params if s.params is not None else tuned.params()
    base = Job(ds.files, ds.symbol, "", (), s.latency, s.seed, params)
    jobs: list[Job] = []
    for algo in s.algos:
        for label, kw in VARIANTS.items():
            jobs += [replace(base, algo=algo, intents=tuple(p), tag=label, **kw) for p in passes]
    out: dict[tuple[str, str], list] = {}
    for job, res in zip(jobs, run_jobs(jobs, s.workers), strict=True):
        out.setdefault((job.tag, job.algo), []).extend(res)
    return {k: in_intent_order(v) for k, v in out.items()}


def in_intent_order(outcomes: list[dict]) -> list[dict]:
    """Outcomes sorted by (arrival, id): the passes interleave intents, and the bootstrap resamples by position, so
    every variant must list the same intents in the same order for their intervals to be comparable."""
    return sorted(outcomes, key=lambda o: (o["time_ns"], o["id"]))


def live_outcomes(ds: DataSet, intents: list[EvalIntent], s: GapSettings, say=print) -> dict[str, list[dict]]:
    """Every algorithm on the live path: algo -> outcomes (one venue + engine session per intent, in turn)."""
    from engine.venues.sim.tape import load_tape

    first_ns = load_tape(list(ds.files)).events[0].time_ns
    root = Path(s.keep) if s.keep else Path(tempfile.mkdtemp(prefix="tapeshot-gap-"))
    out: dict[str, list[dict]] = {}
    try:
        for algo in s.algos:
            out[algo] = []
            for k, it in enumerate(intents):
                say(f"  live {algo} {k + 1}/{len(intents)}: {it.text(ds.symbol)}")
                out[algo].append(asyncio.run(live_one(ds, it, algo, s, first_ns, root / f"{algo}-{it.id}")))
    finally:
        if not s.keep:
            shutil.rmtree(root, ignore_errors=True)
    return out


async def live_one(ds: DataSet, it: EvalIntent, algo: str, s: GapSettings, first_ns: int, home: Path) -> dict:
    """One intent on the live path: a venue and an engine started for it, the intent sent at its time."""
    from engine.chaos.procs import ENGINE_ENV, ENGINE_READY, SIM_READY, Proc, free_port
    from engine.config import Config

    start_s = max(0.0, (it.time_ns - first_ns) / SEC - s.warmup_s)
    port = free_port()
    feed, entry, ack = s.latency
    sim = Proc("sim", ["sim", "--data", *ds.files, "--port", str(port), "--speed", f"{s.speed:g}",
                       "--seed", str(s.seed), "--feed-latency", feed, "--entry-latency", entry, "--ack-latency", ack,
                       "--start-s", f"{start_s:.3f}", "--usdt", LIVE_USDT], home / "sim.log")
    url = f"http://127.0.0.1:{port}"
    engine = Proc("engine", ["run", "--venue-url", url, "--home", str(home), "--console", "off", "--symbols",
                             ds.symbol, "--speed", f"{s.speed:g}"], home / "engine.log", {**ENGINE_ENV, **LIVE_RISK})
    o = {"id": it.id, "kind": it.kind, "algo": algo, "chosen": None, "tag": LIVE, "error": None, "report": None,
         "window_s": it.window_s, "round_trip_s": Config().execution.round_trip_ms / 1e3, "time_ns": it.time_ns,
         "sign": it.sign, "horizon_s": it.horizon_s}
    try:
        await asyncio.to_thread(sim.start, SIM_READY)
        await asyncio.to_thread(engine.start, ENGINE_READY)
        async with aiohttp.ClientSession() as http:
            late_ms = await _wait_until(http, url, it.time_ns - int(SUBMIT_LEAD_MS * 1e6), s.speed)
        o["submit_late_ms"] = late_ms
        o.update(await _submit(home, f"{it.side} {ds.symbol} {it.qty} {it.window_s}s {algo} max {it.max_bps:g}bps",
                               timeout_s=(it.window_s + 30) / s.speed + 30))
    except (RuntimeError, OSError, aiohttp.ClientError, TimeoutError) as exc:
        o["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        await asyncio.to_thread(engine.stop)
        await asyncio.to_thread(sim.stop)
    return o


async def _wait_until(http: aiohttp.ClientSession, url: str, t_ns: int, speed: float) -> float:
    """Sleep until the venue's exchange clock reaches ``t_ns``; how late (exchange ms) the wake-up was."""
    while True:
        async with http.get(f"{url}/sim/status") as r:
            now = (await r.json())["exchange_time_ns"]
        left = t_ns - now
        if left <= 0:
            return -left / 1e6
        await asyncio.sleep(min(left / 1e9 / speed, 0.5) if left > 2_000_000 * speed else 0.0005)


async def _submit(home: Path, text: str, timeout_s: float) -> dict:
    """Send the intent over the control socket; its report (or the error) once it is done."""
    from engine.control import ControlClient

    got: dict = {"report": None, "error": None, "chosen": None}

    async def follow() -> None:
        async for line in ControlClient(home / "control.sock").intent(text):
            if "error" in line:
                got["error"] = str(line["error"])[:300]
                return
            if line.get("kind") == "done":
                got["report"] = line.get("data")
                got["chosen"] = (line.get("data") or {}).get("algo")
                return

    try:
        await asyncio.wait_for(follow(), timeout_s)
    except TimeoutError:
        got["error"] = f"no report within {timeout_s:.0f} s"
    if got["report"] is None and got["error"] is None:
        got["error"] = "the engine ended the stream without a report"
    return got


def gap(ds: DataSet, path: MarketPath, intents: list[EvalIntent], passes: list[list[EvalIntent]], s: GapSettings,
        say=print) -> dict:
    """The whole experiment on one recording: per algorithm, one row per variant and the decomposition."""
    t0 = time.perf_counter()
    replays = replay_outcomes(ds, passes, s)
    lives = live_outcomes(ds, intents, s, say)
    tick = (path.inst or KNOWN_INSTRUMENTS[ds.symbol]).tick_size
    rows: dict[str, dict] = {}
    for algo in s.algos:
        variants = {LIVE: in_intent_order(lives[algo]), **{v: replays[(v, algo)] for v in VARIANTS}}
        per = {v: [measures(o, path, tick, s.taker_fee) for o in outs] for v, outs in variants.items()}
        summ = {v: summarise(ms, s.seed) for v, ms in per.items()}
        late = [o["submit_late_ms"] for o in lives[algo] if "submit_late_ms" in o]
        rows[algo] = {"variants": {v: _brief(sm) for v, sm in summ.items()},
                      "decomposition": decompose({v: sm["mean_all_in_bps"] for v, sm in summ.items()}),
                      "decomposition_edge": decompose({v: sm["edge_kept"] for v, sm in summ.items()}),
                      "live_errors": [o["error"] for o in lives[algo] if o["error"]],
                      "submit_late_ms_max": round(max(late), 2) if late else None,
                      "live_differs_from_replay": differing(per[LIVE], per["replay"]),
                      "measures": per}
    return {"data": ds.as_json(), "seed": s.seed, "latency": "/".join(s.latency), "speed": s.speed,
            "warmup_s": s.warmup_s, "n_intents": len(intents), "algos": rows,
            "runtime_s": round(time.perf_counter() - t0, 1)}


def differing(live: list[dict], replay: list[dict], tol_bps: float = 1e-6) -> list[int]:
    """Ids of the intents whose all-in cost differs between the two lists (same intents, same order), or whose
    outcome failed on one side only: where the live path did what the replay did not."""
    return [a["id"] for a, b in zip(live, replay, strict=True)
            if a["ok"] != b["ok"] or (a["all_in"] is not None and b["all_in"] is not None
                                      and abs(a["all_in"] - b["all_in"]) > tol_bps)
            or (a["all_in"] is None) != (b["all_in"] is None)]


def decompose(v: dict[str, float | None]) -> dict[str, float | None]:
    """The naive backtest's gap to live split into what each model accounts for, their interaction (switching
    all three off is not the sum of switching each off), and what the models still miss (``live - replay``)."""
    def d(a: str, b: str) -> float | None:
        return None if v.get(a) is None or v.get(b) is None else round(v[a] - v[b], 3)

    parts = {name: d("replay", off) for name, off in MODELS.items()}
    total = d("replay", "naive replay")
    known = [p for p in parts.values() if p is not None]
    return {"live - naive replay": d(LIVE, "naive replay"), **parts,
            "interaction": None if total is None or len(known) < len(parts) else round(total - sum(known), 3),
            "live - replay (not modelled)": d(LIVE, "replay")}


def _brief(sm: dict) -> dict:
    keys = ("n_intents", "n_errors", "mean_all_in_bps", "ci95_all_in_bps", "completion_rate", "maker_share",
            "edge_kept")
    return {k: sm.get(k) for k in keys}


def table(result: dict) -> list[str]:
    """The gap experiment as text: one block per algorithm."""
    out = [f"== backtest-live gap: {result['data']['label']}; {result['n_intents']} intents; latency "
           f"{result['latency']}; live path at {result['speed']:g}x with {result['warmup_s']:g} s warm-up; "
           f"{result['runtime_s']:.0f} s"]
    for algo, r in result["algos"].items():
        out += ["", f"[{algo}] mean all-in cost of uninformed intents, bps; edge kept of informed intents",
                f"{'variant':<20} {'n':>3} {'all-in':>7} {'95% CI':>16} {'compl':>6} {'maker':>6} {'edge':>7}"]
        for v, b in r["variants"].items():
            ci = b["ci95_all_in_bps"]
            ci_s = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci and None not in ci else "-"
            out.append(f"{v:<20} {b['n_intents'] - b['n_errors']:>3} {_f(b['mean_all_in_bps'], 2):>7} {ci_s:>16} "
                       f"{_f(b['completion_rate'], 3):>6} {_f(b['maker_share'], 2):>6} {_f(b['edge_kept'], 3):>7}")
        out.append(f"{'split of the gap':<20} {'cost':>7} {'edge':>7}")
        for k, c in r["decomposition"].items():
            out.append(f"{k:<28} {_f(c, 3):>7} {_f(r['decomposition_edge'][k], 3):>7}")
        diff = r.get("live_differs_from_replay")
        if diff is not None:
            out.append(f"live and replay differ on {len(diff)} of {r['variants'][LIVE]['n_intents']} intents"
                       + (f" (intent ids {', '.join(map(str, diff))}; per-intent numbers in --json under "
                          f"algos.{algo}.measures)" if diff else ""))
        if r["live_errors"]:
            out.append(f"live errors: {len(r['live_errors'])}: {r['live_errors'][0]}")
    return out


def _f(x: float | None, nd: int) -> str:
    return "-" if x is None or x != x else f"{x:.{nd}f}"


def check_settings(s: GapSettings) -> None:
    """A ``ConfigError`` for settings the live path cannot run."""
    if s.speed <= 0 or s.warmup_s < 0:
        raise ConfigError("--gap-speed must be > 0 and --gap-warmup >= 0")
    with contextlib.suppress(ValueError):
        if any(float(x.split(":")[1]) < 0 for x in s.latency if x.startswith("fixed:")):
            raise ConfigError("latency must be >= 0")
