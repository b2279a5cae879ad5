"""File modes: the engine's home 0700, the journal, its WAL files, lock and archives and the control socket 0600,
whatever the umask; a loose key file or key directory stops the start-up with the chmod that fixes it."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from engine.config import Config, EngineConfig, VenueConfig, ensure_home
from engine.control import ControlServer
from engine.errors import ConfigError
from engine.keys import KeyStore, Secret, make_private_dir
from engine.oms.journal import Journal, archive, claim, lock


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def loose_umask():
    """The usual umask 022, under which files are 0644 and directories 0755 unless made otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def cfg(home: Path, kind: str = "sim") -> Config:
    return Config(venue=VenueConfig(kind=kind), engine=EngineConfig(home=str(home), cpu_pinning="off"))


def test_every_missing_directory_is_created_0700(tmp_path):
    make_private_dir(tmp_path / "a" / "b" / "c")
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3


def test_the_home_is_created_0700(tmp_path):
    home = ensure_home(cfg(tmp_path / "new" / "home"))
    assert mode(home) == mode(home / "sim") == mode(home.parent) == 0o700
    assert not (ensure_home(cfg(tmp_path / "live", kind="binance")) / "sim").exists()


def test_an_open_home_without_keys_is_tightened(tmp_path, caplog):
    home = tmp_path / "home"
    (home / "sim").mkdir(parents=True)
    home.chmod(0o755)
    ensure_home(cfg(home))
    assert mode(home) == mode(home / "sim") == 0o700
    assert "now 0700" in caplog.text


def test_an_open_home_holding_the_key_file_is_refused(tmp_path):
    home = tmp_path / "home"
    KeyStore(home / "keys.enc").add("main", "KEY", Secret("secret"), Secret("passphrase"))
    home.chmod(0o755)
    with pytest.raises(ConfigError, match=f"open to other users \\(mode 0755\\): run 'chmod 700 {home}'"):
        ensure_home(cfg(home))
    assert mode(home) == 0o755                                        # refused, not changed behind the user's back
    home.chmod(0o700)
    (home / "keys.enc").chmod(0o644)
    with pytest.raises(ConfigError, match=f"run 'chmod 600 {home / 'keys.enc'}'"):
        ensure_home(cfg(home, kind="binance"))


def _journal(path: Path) -> Journal:
    j = Journal(path)
    j.start()
    j.kv_set("venue", "sim http://127.0.0.1:1")
    j.intent("i1", 1, "cli", "long btc 0.01 10s -- private reasons", {"x": 1}, "done")
    j.sync_blocking()
    return j


def test_the_journal_its_wal_and_its_lock_are_0600(tmp_path):
    path = tmp_path / "h" / "sim" / "journal.sqlite"
    fd = lock(path)
    try:
        j = _journal(path)
        files = [path, path.with_name("journal.sqlite-wal"), path.with_name("journal.sqlite-shm"),
                 path.with_name("journal.sqlite.lock")]
        assert all(p.exists() for p in files)
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        assert mode(path.parent) == mode(path.parent.parent) == 0o700
        j.close()
    finally:
        os.close(fd)


def test_an_older_engines_open_journal_is_closed_at_start(tmp_path):
    path = tmp_path / "journal.sqlite"
    _journal(path).close()
    for p in tmp_path.iterdir():
        p.chmod(0o644)
    os.close(lock(path))
    assert claim(path, "sim http://127.0.0.1:1") is None
    assert {p.name: mode(p) for p in tmp_path.iterdir()} == {p.name: 0o600 for p in tmp_path.iterdir()}


def test_an_archived_journal_is_0600(tmp_path):
    path = tmp_path / "journal.sqlite"
    _journal(path).close()
    path.chmod(0o644)
    dest = archive(path)
    assert mode(dest) == 0o600


def test_the_control_socket_is_0600(tmp_path):
    sock = tmp_path / "run" / "control.sock"

    async def main() -> None:
        server = ControlServer(object(), sock)
        await server.start()
        try:
            assert stat.S_ISSOCK(sock.stat().st_mode) and mode(sock) == 0o600
            assert mode(sock.parent) == 0o700
        finally:
            await server.stop()

    asyncio.run(main())


def test_the_engine_refuses_to_start_on_a_loose_key_file(tmp_path, capsys):
    from engine.runner import run_engine

    home = tmp_path / "home"
    KeyStore(home / "keys.enc").add("main", "KEY", Secret("secret"), Secret("passphrase"))
    (home / "keys.enc").chmod(0o604)
    assert asyncio.run(run_engine(cfg(home, kind="binance"))) == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and "chmod 600" in err and str(home / "keys.enc") in err
    assert not (home / "journal.sqlite").exists()
