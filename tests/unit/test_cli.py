"""The ``tapeshot`` command line as a user runs it: real files, real output, real exit codes."""

from __future__ import annotations

import gzip
import subprocess
import sys

import orjson

from engine.cli import main


def _lines(sample) -> list[bytes]:
    return gzip.open(sample).read().splitlines()


def _write(tmp_path, name, lines, gz=True):
    path = tmp_path / name
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_verify_book_on_bundled_sample(sample, capsys):
    assert main(["verify-book", str(sample)]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith("checked ") and out.endswith(" bookTickers, 0 mismatches, 0 gaps")
    assert int(out.split()[1]) > 400


def test_verify_book_reads_plain_text_and_split_files(sample, tmp_path, capsys):
    lines = _lines(sample)
    half = len(lines) // 2
    a = _write(tmp_path, "part1.txt", lines[:half], gz=False)
    b = _write(tmp_path, "part2.gz", lines[half:])
    assert main(["verify-book", str(a), str(b)]) == 0
    whole = capsys.readouterr().out
    assert main(["verify-book", str(sample)]) == 0
    assert capsys.readouterr().out == whole


def test_verify_book_fails_on_a_gap(sample, tmp_path, capsys):
    lines = _lines(sample)
    depth = [i for i, ln in enumerate(lines) if b"depthUpdate" in ln]
    del lines[depth[300]]
    assert main(["verify-book", str(_write(tmp_path, "gap.gz", lines))]) == 1
    assert ", 1 gaps" in capsys.readouterr().out


def test_verify_book_fails_when_book_and_tickers_disagree(sample, tmp_path, capsys):
    lines = _lines(sample)
    for i, ln in enumerate(lines):
        if b"bookTicker" in ln:
            stamp, raw = ln.split(b" ", 1)
            msg = orjson.loads(raw)
            msg["data"]["B"] = f"{float(msg['data']['B']) + 0.001:.3f}"   # one lot more than the book holds
            lines[i] = stamp + b" " + orjson.dumps(msg)
    assert main(["verify-book", str(_write(tmp_path, "bad.gz", lines))]) == 1
    words = capsys.readouterr().out.split()
    assert words[0] == "checked" and int(words[1]) > 400 and words[3] == words[1]   # every check mismatches


def test_verify_book_reports_unreadable_lines_and_missing_files(sample, tmp_path, capsys):
    lines = _lines(sample)
    lines.insert(5000, b"1680652700000000 {not json")
    assert main(["verify-book", str(_write(tmp_path, "junk.gz", lines))]) == 1
    captured = capsys.readouterr()
    assert "1 unreadable messages" in captured.out and "junk.gz:5001" in captured.err
    assert main(["verify-book", str(tmp_path / "absent.gz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bench_json_has_the_documented_keys():
    out = subprocess.run([sys.executable, "-m", "engine.cli", "bench", "--json"], check=True,
                         capture_output=True, text=True).stdout
    result = orjson.loads(out)
    assert result["book_update_ns"] > 0 and result["replay_events_per_s"] > 0
    for key in ("msg_to_book_us", "msg_to_decision_us"):
        assert 0 < result[key]["p50"] <= result[key]["p99"]
