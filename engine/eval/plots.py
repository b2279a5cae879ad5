"""PNG charts of an evaluation (matplotlib, headless): shortfall distributions, the latency curve, the ablation,
the bars comparison and the smart-vs-fast board (cost against the decision's latency). One panel per data set,
titled with the set's label."""

from __future__ import annotations

from pathlib import Path

from engine.errors import ConfigError
from engine.eval.experiments import ablation_label


def _plt():
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'tapeshot[eval]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(plt, n: int, w: float = 6.0, h: float = 4.2):
    fig, axes = plt.subplots(1, n, figsize=(w * n, h), squeeze=False)
    return fig, list(axes[0])


def shortfall(results: list[dict], out: Path) -> Path:
    """Box plot of each algorithm's all-in cost over uninformed intents, per set."""
    plt = _plt()
    fig, axes = _panels(plt, len(results))
    for ax, r in zip(axes, results, strict=True):
        names = list(r["algos"])
        data = [[m["all_in"] for m in r["measures"][f"main/{a}"] if m["ok"] and m["kind"] == "uninformed"]
                for a in names]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylabel("all-in shortfall vs arrival mid, bps (fees in)")
        ax.set_title(f"{r['data']['label']}\nuninformed intents (triangle: mean)", fontsize=9)
    return _save(plt, fig, out / "shortfall.png")


def latency(results: list[dict], out: Path) -> Path:
    """Mean all-in cost of uninformed intents against injected latency, one line per algorithm."""
    plt = _plt()
    fig, axes = _panels(plt, len(results))
    for ax, r in zip(axes, results, strict=True):
        for name, pts in r["latency_sweep"].items():
            xs = [max(p["latency_ms"], 0.3) for p in pts]
            ax.plot(xs, [p["mean_all_in_bps"] for p in pts], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xticks([max(p["latency_ms"], 0.3) for p in next(iter(r["latency_sweep"].values()))],
                      [f"{p['latency_ms']:g}" for p in next(iter(r["latency_sweep"].values()))])
        ax.set_xlabel("feed = entry = ack latency, ms")
        ax.set_ylabel("mean all-in cost, bps")
        ax.set_title(f"{r['data']['label']}: smart vs fast", fontsize=9)
        ax.legend(fontsize=7)
    return _save(plt, fig, out / "latency.png")


def ablation(results: list[dict], out: Path) -> Path:
    """Change in mean all-in cost (uninformed) and in edge kept (informed) when one signal is removed."""
    plt = _plt()
    fig, axes = _panels(plt, len(results), 6.5, 4.8)
    for ax, r in zip(axes, results, strict=True):
        rows = r["ablation"]["rows"]
        names = [ablation_label(x["removed"]) for x in rows]
        ys = range(len(rows))
        ax.barh([y - 0.2 for y in ys], [x["delta_cost_bps"] or 0 for x in rows], 0.4,
                label="Δ all-in cost, bps (> 0: the signal helps)")
        ax.barh([y + 0.2 for y in ys], [x["delta_edge_kept"] or 0 for x in rows], 0.4,
                label="Δ edge kept (< 0: the signal helps)")
        ax.set_yticks(list(ys), names)
        ax.axvline(0, color="grey", lw=0.5)
        cost = r.get("signal_cost")
        shared = f"; kernel {cost['signals_ns_per_event']:.0f} ns/event, shared" if cost else ""
        ax.set_title(f"{r['data']['label']}: {r['ablation']['algo']} without one signal{shared}", fontsize=9)
        ax.legend(fontsize=7)
    return _save(plt, fig, out / "ablation.png")


def bars(results: list[dict], out: Path) -> Path:
    """The sniper's all-in cost and edge kept with signals per event and on fixed bars."""
    plt = _plt()
    fig, axes = _panels(plt, len(results), 5.0, 4.0)
    for ax, r in zip(axes, results, strict=True):
        keys = list(r["bars"])
        means = [r["bars"][k]["mean_all_in_bps"] for k in keys]
        ci = [r["bars"][k]["ci95_all_in_bps"] for k in keys]
        err = [[m - c[0] for m, c in zip(means, ci, strict=True)], [c[1] - m for m, c in zip(means, ci, strict=True)]]
        ax.bar(keys, means, yerr=err, capsize=4)
        ax.set_ylabel("sniper mean all-in cost, bps (95% CI)")
        ax.set_title(f"{r['data']['label']}: events vs bars", fontsize=9)
    return _save(plt, fig, out / "bars.png")


def pareto(results: list[dict], out: Path) -> Path:
    """Smart versus fast on one chart per set: each capacity of the hybrid at its decision path's latency (p50,
    a line to p99; log scale) against its mean all-in cost (uninformed, top) and its edge kept (informed, bottom);
    the baselines and our other algorithms as horizontal references (their decision needs no model)."""
    plt = _plt()
    fig, axes = plt.subplots(2, len(results), figsize=(6.0 * len(results), 7.5), squeeze=False)
    refs = ("immediate", "passive_chase", "ladder", "auto", "sniper")
    for k, r in enumerate(results):
        rows = r.get("pareto") or []
        for ax, key, label in ((axes[0][k], "mean_all_in_bps", "mean all-in cost, bps (uninformed)"),
                               (axes[1][k], "edge_kept", "edge kept (informed)")):
            for row in rows:
                x50, x99, y = row["decision_p50_us"], row["decision_p99_us"], row[key]
                if y is None:
                    continue
                ax.plot([x50, x99], [y, y], color="grey", lw=0.8)
                ax.plot([x50], [y], marker="o", ms=7, label=f"hybrid: {row['capacity']}")
            for i, name in enumerate(a for a in refs if a in r["algos"]):
                v = r["algos"][name].get(key)
                if v is not None:
                    ax.axhline(v, ls="--", lw=0.8, color=f"C{(i + 4) % 10}", label=name)
            ax.set_xscale("log")
            plain = plt.FuncFormatter(lambda v, _: f"{v:g}")
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(plain)
            ax.set_xlabel("bytes to decision, µs (dot p50, line to p99)")
            ax.set_ylabel(label)
            ax.legend(fontsize=7)
        axes[0][k].set_title(f"{r['data']['label']}: cost against the decision's latency", fontsize=9)
    return _save(plt, fig, out / "pareto.png")


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(results: list[dict], out: str | Path) -> list[Path]:
    """Every chart the results allow, into directory ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [shortfall(results, out)]
    if all("latency_sweep" in r for r in results):
        paths.append(latency(results, out))
    if all("ablation" in r for r in results):
        paths.append(ablation(results, out))
    if all("bars" in r for r in results):
        paths.append(bars(results, out))
    if all(r.get("pareto") for r in results):
        paths.append(pareto(results, out))
    return paths
