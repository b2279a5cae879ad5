"""The seeded slice of ``tapeshot fuzz``: zero crashes, hangs, disagreements and silently wrong books."""

from __future__ import annotations

import subprocess
import sys

import orjson

from engine import fuzz
from engine.feed.recording import read_messages, sample_path
from engine.model import KNOWN_INSTRUMENTS
from ext.feed import Feed


def test_intent_fuzz_slice_has_no_crash_and_no_hang():
    t = fuzz.fuzz_intents(5_000, seed=7)
    assert t.cases == 5_000 and t.ok, t.examples


def test_depth_fuzz_slice_scanner_and_reference_agree():
    t = fuzz.fuzz_depth(read_messages([sample_path()]), 10_000, seed=7)
    assert t.cases == 10_000 and t.ok, t.examples


def test_book_fuzz_slice_never_freezes_or_goes_silently_wrong():
    t = fuzz.fuzz_book(read_messages([sample_path()]), 60, seed=7, inst=KNOWN_INSTRUMENTS["BTCUSDT"])
    assert t.cases == 60 and t.ok, t.examples


def test_the_fuzz_drill_would_catch_a_frozen_book():
    """The check is real: a forged forward jump in u, injected by hand, is what 'frozen' names; the feed now
    turns it into a gap, so the run passes, and a feed that kept it synced would be counted."""
    msgs = read_messages([sample_path()])
    at = [i for i, m in enumerate(msgs) if b'"depthUpdate"' in m][500]
    obj = orjson.loads(msgs[at])
    obj["data"]["u"] += 10**12
    sf, _diffs, _resyncs = fuzz._replay(Feed, KNOWN_INSTRUMENTS["BTCUSDT"], msgs, at, orjson.dumps(obj))
    assert not sf.synced and sf.n_gaps >= 1


def test_tapeshot_fuzz_command_prints_each_drill_and_passes():
    out = subprocess.run([sys.executable, "-m", "engine.cli", "fuzz", "--intents", "2000", "--depth", "2000",
                          "--books", "10", "--seed", "3"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "fuzz intents: 2000 cases, failures: none" in out.stdout and out.stdout.strip().endswith("PASS")
