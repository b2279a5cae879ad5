"""The bench/ suites and ``tapeshot bench`` must keep working: run each benchmark once (timings not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_suite_runs():
    proc = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "bench"), "--benchmark-disable", "-q",
                           "-p", "no:cacheprovider"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
