"""engine.affinity: where the event loop and the journal writer run."""

from __future__ import annotations

import os
import threading

import pytest

from engine import affinity
from engine.config import Config, load
from engine.errors import ConfigError
from engine.oms.journal import Journal

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")


def test_plan_gives_the_loop_its_own_cpu(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert affinity.plan("auto") == ({3}, {0, 1, 2})
    assert affinity.plan("off") == (None, None)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {5})
    assert affinity.plan("auto") == (None, None)            # one CPU: nothing to separate


def test_pin_thread_is_per_thread_and_survives_refusal(monkeypatch):
    allowed = os.sched_getaffinity(0)
    seen = {}

    def worker():
        affinity.pin_thread({min(allowed)})
        seen["worker"] = os.sched_getaffinity(0)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["worker"] == {min(allowed)} and os.sched_getaffinity(0) == allowed

    def refuse(_pid, _cpus):
        raise PermissionError("not here")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    affinity.pin_thread({0})                                   # logged, not raised: run unpinned


def test_journal_writer_runs_where_it_is_told(tmp_path):
    cpu = min(os.sched_getaffinity(0))
    j = Journal(tmp_path / "j.sqlite", cpus={cpu})
    j.start()
    try:
        j.sync_blocking()
        native = j._thread.native_id
        with open(f"/proc/self/task/{native}/status") as f:
            line = next(x for x in f if x.startswith("Cpus_allowed_list"))
        assert line.split()[-1] == str(cpu)
    finally:
        j.close()


def test_config_takes_only_known_modes(tmp_path):
    assert Config().engine.cpu_pinning == "auto"
    p = tmp_path / "t.toml"
    p.write_text('[engine]\ncpu_pinning = "sometimes"\n')
    with pytest.raises(ConfigError):
        load(p, env={})
