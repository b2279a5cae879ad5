"""CI slice of ``tapeshot chaos``: a short seeded drill with the real engine and sim venue as processes, one run of
every fault kind (one round of the schedule, ~40-60 s with the sim at 4x). The long soak is opt-in:
``tapeshot chaos --seed 1 --minutes 10 --data ../shared/data/...``.

It asserts what the drill promises: exit 0 only when every mismatch count is zero, a line per run and the
summary's shape. A failure prints the drill's whole output (the run lines name every mismatch).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from engine.chaos.checks import KINDS
from engine.chaos.faults import BY_NAME

CI_FAULTS = tuple(BY_NAME)              # named, so the round has no extra kill runs: each kind exactly once
RUN_LINE = re.compile(r"^run +\d+ (\S+) +'.*' intent \S+ orders \d+ fills \d+ \| (.*?)(  \(.*\))?$")


@pytest.fixture(scope="module")
def drill(tmp_path_factory) -> subprocess.CompletedProcess:
    home = tmp_path_factory.mktemp("chaos")
    env = {k: v for k, v in os.environ.items() if k != "TAPESHOT_CRASH_AT"}
    return subprocess.run([sys.executable, "-m", "engine.cli", "chaos", "--seed", "3", "--runs", str(len(CI_FAULTS)),
                           "--home", str(home), "--fault", *CI_FAULTS],
                          capture_output=True, text=True, timeout=400, env=env)


def test_chaos_ci_slice_every_count_is_zero(drill):
    assert drill.returncode == 0, drill.stdout + drill.stderr[-3000:]


def test_chaos_ci_slice_prints_a_line_per_run_and_the_summary(drill):
    lines = drill.stdout.splitlines()
    runs = [m for ln in lines if (m := RUN_LINE.match(ln))]
    assert len(runs) == len(CI_FAULTS), drill.stdout
    assert {m.group(1) for m in runs} == set(CI_FAULTS)          # one round of the rotation covers each once
    for m in runs:
        counts = dict(re.findall(r"(\w+) (\d+)", m.group(2)))
        assert set(KINDS) | {"engine_failures"} <= counts.keys()
    head = f"chaos seed 3: {len(CI_FAULTS)} runs"
    summary = "\n".join(lines[lines.index(next(ln for ln in lines if ln.startswith(head))):])
    assert "faults: " in summary and "not supported by this sim: " in summary
    assert re.search(r"mismatches: " + " ".join(rf"{k}=\d+" for k in (*KINDS, "engine_failures")), summary)
    assert summary.rstrip().endswith(("PASS", "FAIL"))
    assert "secret" not in drill.stdout
