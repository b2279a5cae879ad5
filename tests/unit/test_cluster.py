"""Scale: ``--workers`` and ``--cluster`` (engine.eval.cluster) give exactly the single-process results.

On a slice of the bundled sample (its first 15,000 messages, cut into two files so that a recording of several
files is exercised): featurization (chunked scans, recordings as tasks) and training (parallel fits) on a fork
pool and on a local Ray instance equal the in-process run bit for bit, and so do the eval replay passes. One Ray
instance serves the whole module (its start costs several seconds). Without Ray the Ray tests skip, except under
CI=true where Ray is part of the test extra and its absence is a failure.
"""

from __future__ import annotations

import gzip
import os
import socket
import sys
from dataclasses import replace

import numpy as np
import pytest

from engine.cli import main
from engine.errors import ConfigError
from engine.eval import cluster
from engine.eval import intents as im
from engine.eval.data import dataset, market_path
from engine.eval.runner import Job, run_job, run_jobs
from engine.feed.recording import sample_path, sample_paths
from engine.feed.verify import _symbols_and_snapshots, merged_lines
from engine.learn.features import (
    FILL_T_S,
    HORIZONS_S,
    WARMUP_S,
    Featurized,
    _featurize_task,
    combine_scans,
    featurize,
    featurize_many,
    scan_lines,
)
from engine.learn.modelfile import read
from engine.learn.train import train

SLICE_LINES, CUT = 15_000, 5_000


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> list[str]:
    """The sample's first 15,000 messages as a recording of two files (plain text, the recorder's format)."""
    with gzip.open(sample_path()) as f:
        lines = f.read().splitlines(keepends=True)[:SLICE_LINES]
    d = tmp_path_factory.mktemp("slice")
    a, b = d / "slice_a.txt", d / "slice_b.txt"
    a.write_bytes(b"".join(lines[:CUT]))
    b.write_bytes(b"".join(lines[CUT:]))
    return [str(a), str(b)]


@pytest.fixture(scope="module")
def eth() -> list[str]:
    """A second recording (another symbol): the bundled 2024-07-18 ETHUSDT sample."""
    return [str(sample_paths()[1])]


@pytest.fixture(scope="module")
def ray_backend():
    """One local Ray instance (2 CPUs) for the module, shut down at its end."""
    if os.environ.get("CI") == "true":      # part of the test extra: its absence fails under CI
        import ray
    else:
        ray = pytest.importorskip("ray", reason='Ray not installed: pip install "tapeshot[cluster]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield cluster.Ray(cluster.LOCAL, 2)          # reuses the instance started here
    finally:
        ray.shutdown()


def assert_same_rows(a: Featurized, b: Featurized) -> None:
    """Every row, label, time and recorded series equal bit for bit (timings in ``stats`` aside)."""
    assert a.X.tobytes() == b.X.tobytes()
    assert list(a.y) == list(b.y) and all(a.y[k].tobytes() == b.y[k].tobytes() for k in a.y)
    for f in ("t_ns", "side", "upd"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes()
    for part in ("series", "trades"):
        pa, pb = getattr(a, part), getattr(b, part)
        assert all(getattr(pa, k).tobytes() == getattr(pb, k).tobytes() for k in vars(pa))
    assert (a.symbol, a.files, a.step_ms) == (b.symbol, b.files, b.step_ms)
    assert {k: a.stats[k] for k in ("messages", "samples", "rows")} == \
        {k: b.stats[k] for k in ("messages", "samples", "rows")}


def assert_same_model(a, b) -> None:
    """Same targets, parameters, stored arrays and scores."""
    assert list(a.models) == list(b.models)
    for t in a.models:
        assert a.models[t].params() == b.models[t].params()
        xa, xb = a.models[t].to_arrays(), b.models[t].to_arrays()
        assert list(xa) == list(xb) and all(np.array_equal(xa[k], xb[k]) for k in xa)
    assert a.meta["scores"] == b.meta["scores"]
    assert {k: v for k, v in a.meta["training"].items() if k != "featurize"} == \
        {k: v for k, v in b.meta["training"].items() if k != "featurize"}


# ---- local backend, chunked scans ------------------------------------------------------------------------------


def test_local_backend_keeps_item_order():
    assert cluster.Local(1).map(abs, [-3, 2, -1]) == [3, 2, 1]
    assert cluster.Local(2).map(abs, [-i for i in range(7)]) == list(range(7))
    assert isinstance(cluster.current(3), cluster.Local) and cluster.current(0).workers == 1
    with pytest.raises(ConfigError, match="--workers"):
        cluster.open_backend(0)


def test_chunk_scans_combine_into_the_one_scan(rec):
    """Any line chunking gives load_tape's symbols and snapshots, also when the snapshot is a bare REST line."""
    real = merged_lines(rec)[:6000]
    pair = merged_lines([str(p) for p in sample_paths()])[:6000]  # two symbols, their snapshots named
    bare = [replace(ln, symbol="") for ln in merged_lines([sample_paths()[0]])[:3000]]
    for lines in (real, pair, bare):
        want = _symbols_and_snapshots(lines)
        assert want[1]                                                # there is a snapshot to find
        for n in (2, 5):
            got = combine_scans([scan_lines(lines[len(lines) * k // n:len(lines) * (k + 1) // n])
                                 for k in range(n)])
            assert (got.symbols, got.snapshots) == want


def test_featurize_on_workers_equals_one_process(rec, eth):
    """One recording on two workers (chunked scan, then the replay) and two recordings on three (both paths)."""
    ref = [featurize(rec), featurize(eth)]
    assert len(ref[0]) > 1000
    assert_same_rows(featurize_many([rec], backend=cluster.Local(2))[0], ref[0])
    for got, want in zip(featurize_many([rec, eth], backend=cluster.Local(3)), ref, strict=True):
        assert_same_rows(got, want)


def test_train_on_workers_equals_one_process(rec, eth):
    """Featurization of the training and validation recordings and the five fits (trees: one task per target)."""
    one, *_ = train(rec, "trees", validate_sets=[eth], backend=cluster.Local(1))
    two, *_ = train(rec, "trees", validate_sets=[eth], backend=cluster.Local(2))
    assert_same_model(one, two)


# ---- Ray -------------------------------------------------------------------------------------------------------


def test_featurize_on_ray_equals_local(rec, eth, ray_backend):
    assert ray_backend.workers == 2
    ref = [featurize(rec), featurize(eth)]
    assert_same_rows(featurize_many([rec], backend=ray_backend)[0], ref[0])
    for got, want in zip(featurize_many([rec, eth], backend=ray_backend), ref, strict=True):
        assert_same_rows(got, want)


def test_train_on_ray_equals_local(rec, eth, ray_backend):
    for capacity, vals in (("trees", [eth]), ("mlp", [])):
        local, *_ = train(rec, capacity, validate_sets=vals, backend=cluster.Local(1))
        on_ray, *_ = train(rec, capacity, validate_sets=vals, backend=ray_backend)
        assert_same_model(local, on_ray)


def test_train_cli_with_cluster_local(rec, ray_backend, tmp_path, capsys):
    """``tapeshot train --cluster local`` joins the running instance and writes the single-process model."""
    out = tmp_path / "m.npz"
    assert main(["train", "--data", *rec, "--out", str(out), "--capacity", "mlp", "--cluster", "local",
                 "--workers", "2"]) == 0
    local, *_ = train(rec, "mlp", backend=cluster.Local(1))
    got = read(out)
    assert list(got.models) == list(local.models) and got.meta["scores"] == local.meta["scores"]
    rows = featurize(rec).X[:200]
    for t, m in local.models.items():
        assert np.array_equal(got.models[t].predict(rows), m.predict(rows))
    assert "wrote" in capsys.readouterr().out


def test_eval_passes_on_ray_equal_local(rec, ray_backend):
    """Every replay pass of a small evaluation (two algorithms, four intents) gives the same outcomes on Ray,
    directly and through run_jobs inside a --cluster session."""
    ds = dataset(rec)
    intents = im.generate(market_path(ds.files), 2, 2, 5)
    jobs = [Job(ds.files, ds.symbol, algo, tuple(p), seed=5, tag=f"main/{algo}")
            for algo in ("immediate", "sniper") for p in im.pack(intents)]
    local = [run_job(j) for j in jobs]
    assert sum(len(x) for x in local) == 2 * len(intents)
    assert ray_backend.map(run_job, jobs) == local
    with cluster.session(2, "local") as b:
        assert isinstance(b, cluster.Ray) and run_jobs(jobs, 2) == local
    assert cluster.current(2).workers == 2 and isinstance(cluster.current(2), cluster.Local)


def test_a_task_error_on_ray_is_the_tapeshot_error(ray_backend):
    """A node without the recording answers with the featurizer's own ConfigError."""
    with pytest.raises(ConfigError, match="no such recording"):
        ray_backend.map(_featurize_task, [(("/nowhere/x.gz",), 100, HORIZONS_S, FILL_T_S, WARMUP_S, None)])


# ---- error paths -----------------------------------------------------------------------------------------------


def test_without_ray_cluster_is_a_config_error_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)                     # import ray -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "tapeshot\[cluster\]"'):
        cluster.open_backend(2, "local")
    assert main(["eval", "--data", str(sample_path()), "--cluster", "local"]) != 0
    assert 'pip install "tapeshot[cluster]"' in capsys.readouterr().err


def test_unreachable_or_malformed_address_is_a_config_error():
    with socket.socket() as s:                                        # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        cluster.probe(f"127.0.0.1:{port}")                           # what Ray(address) does first
    for bad in ("host:port", ":6379", "host:0"):
        with pytest.raises(ConfigError, match="bad --cluster address"):
            cluster.parse_address(bad)
    assert cluster.parse_address("head") == ("head", cluster.GCS_PORT)
    assert cluster.parse_address("ray://head:7") == ("head", 7)
    assert cluster.parse_address("ray://head") == ("head", cluster.CLIENT_PORT)
    try:
        cluster.import_ray()
    except ConfigError:
        return
    with pytest.raises(ConfigError, match="cannot reach the Ray cluster"):  # through the backend, in seconds
        cluster.open_backend(2, f"127.0.0.1:{port}")
