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


INTERRUPTS = """\
           CPU0       CPU1       CPU2       CPU3
 26:          0         13          0          0  IO-APIC   4-edge      ttyS0
 36:          0     638697          0          0  PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 42:        120          0       1000          0  PCI-MSIX-0000:00:04.0   2-edge      virtio3-tx
LOC:    1212481    2128482    2000000    9999999   Local timer interrupts
"""


def test_device_interrupts_per_cpu():
    assert affinity.device_interrupts(INTERRUPTS) == {0: 120, 1: 638710, 2: 1000, 3: 0}
    assert affinity.device_interrupts("") == {}


def test_plan_gives_the_loop_the_quietest_cpu(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    real = affinity.device_interrupts
    monkeypatch.setattr(affinity, "device_interrupts", lambda: real(INTERRUPTS))
    assert affinity.plan("auto") == ({3}, {0, 1, 2})                    # no device interrupts on 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert affinity.plan("auto") == ({0}, {1})                          # the disk's interrupts go to 1
    monkeypatch.setattr(affinity, "device_interrupts", dict)
    assert affinity.plan("auto") == ({1}, {0})                          # nothing known: the highest
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


def test_clock_stalls_reports_rates_and_the_longest_gap():
    from ext.parse import clock_stalls

    n10, n20, n40, longest = clock_stalls(50_000_000)
    assert n10 >= n20 >= n40 >= 0 and longest >= 0
    assert (longest > 10) == (n10 > 0)


def test_busy_poll_only_where_the_loop_has_a_core_of_its_own_unless_told(tmp_path):
    assert Config().engine.busy_poll == "auto"
    assert affinity.busy_poll("auto", {0}) and not affinity.busy_poll("auto", None)
    assert affinity.busy_poll("on", None) and not affinity.busy_poll("off", {0})
    p = tmp_path / "t.toml"
    p.write_text('[engine]\nbusy_poll = "always"\n')
    with pytest.raises(ConfigError):
        load(p, env={})


def test_freeze_heap_moves_the_live_heap_out_of_the_collectors_reach():
    import gc

    from engine.loop import freeze_heap

    state = [{"level": i} for i in range(50_000)]              # long-lived state, as a started engine holds
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(state) and gc.isenabled()
        assert not any(o is state for o in gc.get_objects())     # no generation walks it any more
    finally:
        gc.unfreeze()


def test_a_spinner_polls_while_told_and_stops_within_1024_turns():
    import asyncio

    from engine.affinity import Spinner

    async def main():
        keep = [True]
        spinner = Spinner(lambda: keep[0])
        spinner.start()
        spinner.start()                                          # once running, a second start adds nothing
        await asyncio.sleep(0.02)
        assert spinner.running and spinner.spins > 100           # the loop turned without anything to do
        keep[0] = False
        at = spinner.spins
        await asyncio.sleep(0.05)
        assert not spinner.running and spinner.spins - at <= 1024
        stopped = spinner.spins
        await asyncio.sleep(0.01)
        assert spinner.spins == stopped

    asyncio.run(main())
