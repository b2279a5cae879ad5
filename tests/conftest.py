"""Shared fixtures: the real recordings (bundled sample always; ../shared/data when present)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.feed.recording import sample_path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAPESHOT_SHARED_DATA", ROOT.parent / "shared" / "data"))
USDM = SHARED / "binance-usdm"

# Each recorded set, its files in order (read as one stream).
SETS = {
    "btcusdt_2023": ["usdm_btcusdt_20230404.dat.gz", "usdm_btcusdt_20230405.dat.gz"],
    "btcusdt_2024": ["usdm_btcusdt_20240718.gz", "usdm_btcusdt_20240719.gz"],
    "ethusdt_2024": ["usdm_ethusdt_20240718.gz", "usdm_ethusdt_20240719.gz"],
}


def shared_set(name: str) -> list[Path]:
    paths = [USDM / f for f in SETS[name]]
    if not all(p.exists() for p in paths):
        pytest.skip(f"shared recording {name} not present at {USDM}")
    return paths


@pytest.fixture(scope="session")
def sample() -> Path:
    return sample_path()
