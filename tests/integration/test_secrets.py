"""No secret anywhere: a whole session with a key file, then every output and every file searched for the key.

``tapeshot sim`` runs with its own key and secret; the key file is written by ``tapeshot keys add`` from stdin;
the engine (``tapeshot run``, passphrase in its environment) trades a couple of intents sent with ``tapeshot
intent``, is killed with SIGKILL, restarted, scraped on ``--metrics-port`` and stopped; the journal is shown and
exported. Then the API key, the secret, the passphrase and the Telegram token are looked for, raw, base64
(standard and URL-safe, at every alignment), hex and URL-encoded, in: every command's stdout and stderr, the
engine's output and log lines, a SQL dump of every journal, the metrics text, the export, every file under the
engine's home and the engine's command line. The venue's own output is not searched: it is the exchange's side,
started with the key on purpose. A key the venue refuses stops the start-up, named.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import sqlite3
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import quote, quote_plus

from tests.integration.test_crash import free_port, start

API_KEY = "TsK" + secrets.token_hex(24)
API_SECRET = "s3/cr+et=" + secrets.token_urlsafe(32) + "&?%"
PASSPHRASE = "pass phrase/+=" + secrets.token_hex(8)
TG_TOKEN = "123456:" + secrets.token_urlsafe(26)
NEEDLES = {"api key": API_KEY, "api secret": API_SECRET, "passphrase": PASSPHRASE, "telegram token": TG_TOKEN}


def _b64_cores(raw: bytes) -> list[bytes]:
    """The base64 text of ``raw`` that any encoding of a longer string holding it contains, at each of the three
    alignments (the 4-character groups touched by the neighbouring bytes left out)."""
    out = []
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        for k in range(3):
            text = enc(b"\0" * k + raw).rstrip(b"=")
            out.append(text[4 if k else 0:-4])
    return out


def forms(value: str) -> dict[str, bytes]:
    """Every way the value could leak: raw, base64, hex, URL-encoded."""
    raw = value.encode()
    found = {"raw": raw, "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode(),
             "url": quote(value, safe="").encode(), "url+": quote_plus(value).encode()}
    found.update({f"base64#{i}": core for i, core in enumerate(_b64_cores(raw))})
    return found


def leaks(where: str, data: bytes) -> list[str]:
    """``what (form) in where`` for every needle found in ``data``."""
    return [f"{name} ({form}) in {where}" for name, value in NEEDLES.items()
            for form, needle in forms(value).items() if needle in data]


def tapeshot(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
    """Stop ``proc`` and return the rest of its output."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def journal_dump(home: Path) -> bytes:
    """Every row of every journal under ``home`` (archived ones too), as SQL text."""
    out = []
    for path in sorted(home.rglob("*.sqlite")):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            out.extend(conn.iterdump())
        finally:
            conn.close()
    return "\n".join(out).encode()


def home_files(home: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def test_forms_catch_a_secret_inside_longer_text():
    for prefix in (b"", b"x", b"xy", b"xyz"):
        blob = prefix + b"a=" + API_SECRET.encode() + b"&b=1"
        for encoded in (base64.b64encode(blob), base64.urlsafe_b64encode(blob), blob.hex().encode(),
                        quote(blob, safe="").encode()):
            assert leaks("test", encoded), (prefix, encoded)


def _intent(home: Path, text: str, env: dict) -> subprocess.CompletedProcess:
    result = tapeshot("intent", "--home", str(home), text, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " DONE BUY " in result.stdout or " DONE SELL " in result.stdout, result.stdout   # the report
    return result


def _engine(url: str, home: Path, metrics_port: int, env: dict, sink: list) -> subprocess.Popen:
    args = ["run", "--venue-url", url, "--home", str(home), "--console", "off", "--metrics-port", str(metrics_port)]
    proc = start(args, "tapeshot running", env=env, sink=sink)
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    sink.append(cmdline.decode(errors="replace"))                  # what ps shows
    return proc


def _refused_without_the_key(url: str, home: Path) -> None:
    """An engine with the sim's default key (no key file) on a venue that knows another one: stopped, named."""
    result = tapeshot("run", "--venue-url", url, "--home", str(home), "--console", "off")
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "the venue refused the API key" in out and "-2015" in out, out
    assert "tapeshot running" not in out
    assert not leaks("the refused engine's output", out.encode())


def test_no_secret_in_any_output_or_file(tmp_path):
    home = tmp_path / "home"
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    sim = start(["sim", "--port", str(port), "--speed", "1", "--api-key", API_KEY, "--api-secret", API_SECRET],
                "api secret")
    outputs: dict[str, str | bytes] = {}
    engine: subprocess.Popen | None = None
    try:
        _refused_without_the_key(url, tmp_path / "nokey")
        added = tapeshot("keys", "add", "sim", "--home", str(home), stdin=f"{API_KEY}\n{API_SECRET}\n{PASSPHRASE}\n")
        assert added.returncode == 0, added.stderr
        outputs["keys add"] = added.stdout + added.stderr
        env = {"TAPESHOT_KEY_PASSPHRASE": PASSPHRASE, "TAPESHOT_TELEGRAM_TOKEN": TG_TOKEN}
        listed = tapeshot("keys", "list", "--home", str(home), env=env)
        assert listed.returncode == 0 and "sim: TsK" in listed.stdout, listed.stderr
        outputs["keys list"] = listed.stdout + listed.stderr

        first: list[str] = []
        engine = _engine(url, home, metrics_port, env, first)
        for i, text in enumerate(("long btc 0.01 5s max 50bps -- secrets test",
                                  "short btc 0.01 5s max 50bps -- and back")):
            r = _intent(home, text, env)
            outputs[f"intent {i}"] = r.stdout + r.stderr
        engine.send_signal(signal.SIGKILL)
        outputs["engine (killed)"] = "".join(first) + stop(engine)

        second: list[str] = []
        engine = _engine(url, home, metrics_port, env, second)
        r = _intent(home, "long btc 0.01 5s max 50bps -- after the restart", env)
        outputs["intent after restart"] = r.stdout + r.stderr
        for cmd in (("status",), ("journal", "--decisions")):
            r = tapeshot(*cmd, "--home", str(home), env=env)
            assert r.returncode == 0, r.stderr
            outputs[" ".join(cmd)] = r.stdout + r.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
            outputs["/metrics"] = resp.read()
        assert b"tapeshot_" in outputs["/metrics"]
        outputs["engine (restarted)"] = "".join(second) + stop(engine)
        assert "stopped:" in outputs["engine (restarted)"]

        export = tapeshot("journal", "export", "--home", str(home), env=env)
        assert export.returncode == 0 and "secrets test" in export.stdout, export.stderr
        outputs["journal export"] = export.stdout + export.stderr
        outputs["journal dump"] = journal_dump(home)
        assert b"after the restart" in outputs["journal dump"]
        outputs.update(home_files(home))
        outputs.update({f"refused engine's {k}": v for k, v in home_files(tmp_path / "nokey").items()})
    finally:
        for p in (engine, sim):
            if p is not None and p.poll() is None:
                stop(p)

    found = [hit for where, data in outputs.items()
             for hit in leaks(where, data if isinstance(data, bytes) else data.encode())]
    assert found == [], found
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.rglob("*"):
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, f"{path}: {stat.S_IMODE(path.stat().st_mode):04o}"

