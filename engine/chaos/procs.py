"""The drill's two processes: ``tapeshot sim`` and ``tapeshot run``, started as a user would start them.

Output goes to a log file each (never a pipe nobody reads: a full pipe would stall the engine); readiness is a
known line appearing in that file. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ENGINE_READY = "tapeshot running"
SIM_READY = "api secret"
# the drill shares a small machine: no core kept spinning, no pinning; no real Telegram bot is ever started
ENGINE_ENV = {"TAPESHOT_ENGINE__BUSY_POLL": "off", "TAPESHOT_ENGINE__CPU_PINNING": "off"}
DROP_ENV = ("TAPESHOT_TELEGRAM_TOKEN", "TAPESHOT_CRASH_AT", "TAPESHOT_API_KEY", "TAPESHOT_API_SECRET",
            "TAPESHOT_API_ED25519_PEM")


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """One ``python -m engine.cli ...`` child with its log file."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log = log
        base = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
        self.env = {**base, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.popen: subprocess.Popen | None = None
        self._offset = 0

    def start(self, ready: str, timeout_s: float = 45.0) -> None:
        """Start the process and wait (bounded) until ``ready`` appears in its output."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen([sys.executable, "-m", "engine.cli", *self.args], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                                          start_new_session=True)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if ready in self.output():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        tail = "".join(ln for ln in self.output().splitlines(True) if "secret" not in ln)[-1500:]
        self.kill()
        raise RuntimeError(f"{self.name} did not start (exit {self.popen.returncode}): {tail}")

    def output(self) -> str:
        """What this start of the process has written so far."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self._offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, sig)

    def wait(self, timeout_s: float) -> int | None:
        """Wait (bounded) for the exit; its status, or None if it is still running."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL and reap (this process only, by its pid)."""
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)
        self.wait(10)

    def stop(self, timeout_s: float = 15.0) -> float | None:
        """SIGTERM, wait up to ``timeout_s``; seconds it took, or None if it had to be killed."""
        if not self.alive():
            return 0.0
        t0 = time.monotonic()
        self.signal(signal.SIGTERM)
        if self.wait(timeout_s) is None:
            self.kill()
            return None
        return time.monotonic() - t0


def sim_proc(workdir: Path, port: int, data: list[str] | None, seed: int, speed: float = 1.0) -> Proc:
    """``tapeshot sim`` on ``port`` (``speed`` x real time, 1 ms exchange-time latency each way)."""
    args = ["sim", "--port", str(port), "--speed", f"{speed:g}", "--seed", str(seed),
            "--entry-latency", "fixed:1", "--ack-latency", "fixed:1"]
    if data:
        args += ["--data", *data]
    return Proc("sim", args, workdir / "sim.log")


def engine_proc(home: Path, venue_url: str, symbol: str, crash_at: str | None = None, speed: float = 1.0) -> Proc:
    """``tapeshot run`` against ``venue_url`` with its journal and control socket in ``home``; ``crash_at``
    arms a crash point (``engine.crashpoints``) in this process only."""
    env = dict(ENGINE_ENV)
    if crash_at:
        env["TAPESHOT_CRASH_AT"] = crash_at
    args = ["run", "--venue-url", venue_url, "--home", str(home), "--console", "off", "--symbols", symbol,
            "--speed", f"{speed:g}"]
    return Proc("engine", args, home / "engine.log", env)
