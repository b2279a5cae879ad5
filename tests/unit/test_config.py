"""Configuration: TOML plus environment, strictly typed, unknown keys refused with the key named."""

from __future__ import annotations

import pytest

from engine.config import Config, load
from engine.errors import ConfigError


def write(tmp_path, text: str):
    p = tmp_path / "tapeshot.toml"
    p.write_text(text)
    return p


def test_defaults_without_a_file():
    cfg = load(None, env={})
    assert cfg == Config()
    assert cfg.feed.window_ticks == 32768 and cfg.signals.tau_ofi_ns == 1_000_000_000


def test_file_and_environment_override_in_that_order(tmp_path):
    p = write(tmp_path, "[feed]\nstale_ms = 2500\nwindow_ticks = 4096\n[signals]\nw_ofi = 1\n")
    cfg = load(p, env={"TAPESHOT_FEED__STALE_MS": "750", "TAPESHOT_SIGNALS__RUN_GAP_NS": "1_000_000",
                       "TAPESHOT_FEED__RESYNC_ON_MISMATCH": "false", "OTHER": "x"})
    assert cfg.feed.stale_ms == 750 and cfg.feed.window_ticks == 4096 and cfg.feed.resync_on_mismatch is False
    assert cfg.signals.w_ofi == 1.0 and isinstance(cfg.signals.w_ofi, float)
    assert cfg.signals.run_gap_ns == 1_000_000


@pytest.mark.parametrize("text, needle", [
    ("[feed]\nstale_msec = 1\n", "unknown key feed.stale_msec"),
    ("[fed]\nstale_ms = 1\n", "unknown key fed"),
    ("[feed]\nstale_ms = '5'\n", "feed.stale_ms must be int"),
    ("[feed]\nstale_ms = true\n", "feed.stale_ms must be int"),
    ("[feed]\nstale_ms = -1\n", "feed.stale_ms must be > 0"),
    ("[feed]\nwindow_ticks = 8\n", "window_ticks must be >= 64"),
    ("[signals]\ntau_ofi_ns = 0\n", "tau_ofi_ns must be > 0"),
    ("feed = 3\n", "[feed] must be a table"),
    ("[feed\n", "not valid TOML"),
])
def test_bad_config_is_refused_with_the_key_named(tmp_path, text, needle):
    with pytest.raises(ConfigError) as exc:
        load(write(tmp_path, text), env={})
    assert needle in str(exc.value) and "tapeshot.toml" in str(exc.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match=r"TAPESHOT_FEED__STALE_MS: feed\.stale_ms must be int"):
        load(None, env={"TAPESHOT_FEED__STALE_MS": "soon"})
    with pytest.raises(ConfigError, match=r"unknown key feed\.nope"):
        load(None, env={"TAPESHOT_FEED__NOPE": "1"})


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "absent.toml", env={})
