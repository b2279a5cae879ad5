"""Keys: never printed, encrypted at rest, Ed25519 and HMAC signatures verified by the sim venue."""

from __future__ import annotations

import asyncio
import io
import logging
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine import cli
from engine.errors import ConfigError, VenueClientError, VenueServerError
from engine.keys import Credentials, KeyStore, Secret, check_private, sim_credentials, verify_with_venue
from engine.venues.sim.auth import ApiAccount, SimHttpError, check_signature, strip_signature


def test_secrets_never_print(caplog):
    creds = Credentials("abcdefghijklmnopqrstuvwxyz", Secret("s3cr3t-value"))
    logging.getLogger("t").warning("creds %s %r %s", creds, creds, f"{creds.secret}")
    for text in (str(creds), repr(creds), f"{creds.secret}", caplog.text):
        assert "s3cr3t-value" not in text and "mnopqrstu" not in text
    with pytest.raises(TypeError):
        __import__("pickle").dumps(creds.secret)


def test_key_store_round_trip_and_wrong_passphrase(tmp_path):
    store = KeyStore(tmp_path / "k" / "keys.enc")
    phrase = Secret("correct horse battery")
    store.add("main", "KEY123", Secret("hmac-secret"), phrase)
    store.add("test", "KEY456", Secret("other"), phrase)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert b"hmac-secret" not in store.path.read_bytes() and b"KEY123" not in store.path.read_bytes()
    creds = store.credentials("main", phrase)
    assert creds.api_key == "KEY123" and creds.secret.reveal() == b"hmac-secret" and not creds.ed25519
    with pytest.raises(ConfigError, match="wrong passphrase"):
        store.load(Secret("wrong passphrase"))
    assert store.remove("test", phrase) and set(store.load(phrase)) == {"main"}


def test_hmac_and_ed25519_signatures_verified_by_the_venue():
    priv = Ed25519PrivateKey.generate()
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    payload = "symbol=BTCUSDT&side=BUY&timestamp=1"
    ed = Credentials("edkey", Secret(pem), ed25519=True)
    hm = Credentials("hmkey", Secret("hmsecret"))
    check_signature(ApiAccount("edkey", None, "a", pub), payload, ed.sign(payload))
    check_signature(ApiAccount("hmkey", Secret("hmsecret"), "a"), payload, hm.sign(payload))
    with pytest.raises(SimHttpError):
        check_signature(ApiAccount("edkey", None, "a", pub), payload + "&x=1", ed.sign(payload))
    from urllib.parse import quote

    qs, sig = strip_signature(f"{payload}&signature={quote(ed.sign(payload), safe='')}")
    assert qs == payload and sig == ed.sign(payload)


def test_credentials_from_env(tmp_path):
    with pytest.raises(ConfigError, match="TAPESHOT_API_KEY"):
        Credentials.from_env({})
    assert Credentials.from_env({"TAPESHOT_API_KEY": "k", "TAPESHOT_API_SECRET": "s"}).api_key == "k"
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    bad.chmod(0o600)
    with pytest.raises(ConfigError, match="not a readable"):
        Credentials.from_env({"TAPESHOT_API_KEY": "k", "TAPESHOT_API_ED25519_PEM": str(bad)})


PHRASE = "correct horse battery"


def test_a_loose_key_file_or_directory_is_refused_with_the_fix(tmp_path):
    store = KeyStore(tmp_path / "k" / "keys.enc")
    store.add("main", "KEY123", Secret("hmac-secret"), Secret(PHRASE))
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    store.path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by other users \(mode 0644\): run 'chmod 600 .*keys.enc'") as e:
        store.credentials("main", Secret(PHRASE))
    assert "hmac-secret" not in str(e.value) and PHRASE not in str(e.value)
    store.path.chmod(0o600)
    store.path.parent.chmod(0o750)
    with pytest.raises(ConfigError, match=r"open to other users \(mode 0750\): run 'chmod 700 .*k'"):
        store.credentials("main", Secret(PHRASE))
    with pytest.raises(ConfigError, match="chmod 700"):             # nor is one written into a loose directory
        store.add("other", "KEY456", Secret("x"), Secret(PHRASE))
    store.path.parent.chmod(0o700)
    assert store.credentials("main", Secret(PHRASE)).api_key == "KEY123"


def test_a_loose_ed25519_pem_is_refused(tmp_path):
    from tests.integration.conftest import ed25519_keypair

    pem = tmp_path / "ed.pem"
    pem.write_bytes(ed25519_keypair()[0])
    pem.chmod(0o640)
    env = {"TAPESHOT_API_KEY": "k", "TAPESHOT_API_ED25519_PEM": str(pem)}
    with pytest.raises(ConfigError, match="chmod 600"):
        Credentials.from_env(env)
    pem.chmod(0o600)
    assert Credentials.from_env(env).ed25519
    check_private(pem)


def _keys(monkeypatch, capsys, argv: list[str], stdin: str) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    monkeypatch.delenv("TAPESHOT_KEY_PASSPHRASE", raising=False)
    rc = cli.main(["keys", *argv])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_keys_add_reads_the_key_secret_and_passphrase_from_stdin(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    rc, out = _keys(monkeypatch, capsys, ["add", "main", "--home", str(home)],
                    f"APIKEY-0123456789\nthe-api-secret\n{PHRASE}\n")
    assert rc == 0 and "APIK…6789" in out
    assert "the-api-secret" not in out and PHRASE not in out and "APIKEY-0123456789" not in out
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "keys.enc").stat().st_mode) == 0o600
    creds = KeyStore(home / "keys.enc").credentials("main", Secret(PHRASE))
    assert creds.api_key == "APIKEY-0123456789" and creds.secret.reveal() == b"the-api-secret"
    rc, out = _keys(monkeypatch, capsys, ["list", "--home", str(home)], f"{PHRASE}\n")
    assert rc == 0 and "main: APIK…6789 (hmac)" in out


def test_keys_add_refuses_a_short_passphrase_and_an_empty_secret(tmp_path, monkeypatch, capsys):
    rc, out = _keys(monkeypatch, capsys, ["add", "main", "--home", str(tmp_path)], "KEY\nsecret\nshort\n")
    assert rc == 2 and "at least 8" in out and not (tmp_path / "keys.enc").exists()
    rc, out = _keys(monkeypatch, capsys, ["add", "main", "--home", str(tmp_path)], "KEY\n\n")
    assert rc == 2 and "no API secret" in out


@pytest.mark.parametrize("argv", [["--api-key", "VISIBLE-SECRET"], ["--api-secret=VISIBLE-SECRET"],
                                  ["--secret", "VISIBLE-SECRET"], ["--passphrase", "VISIBLE-SECRET"]])
def test_keys_add_refuses_secrets_on_the_command_line(tmp_path, monkeypatch, capsys, argv):
    rc, out = _keys(monkeypatch, capsys, ["add", "main", "--home", str(tmp_path), *argv], "")
    assert rc == 2 and "is not taken on the command line" in out and "stdin" in out
    assert "VISIBLE-SECRET" not in out and not (tmp_path / "keys.enc").exists()


class _Rest:
    def __init__(self, exc: Exception | None) -> None:
        self.exc = exc

    async def balance(self) -> list:
        if self.exc is not None:
            raise self.exc
        return []


@pytest.mark.parametrize("code,status", [(-2015, 401), (-2014, 400), (-1022, 400), (-1002, 401), (0, 401)])
def test_a_key_the_venue_refuses_stops_the_start_up(code, status):
    exc = VenueClientError(code, "/fapi/v2/balance: Invalid API-key, IP, or permissions for action.", status)
    with pytest.raises(ConfigError, match=r"the venue refused the API key: .*Invalid API-key") as e:
        asyncio.run(verify_with_venue(_Rest(exc)))
    assert f"code {code}" in str(e.value)


def test_other_venue_errors_do_not_stop_the_start_up():
    asyncio.run(verify_with_venue(_Rest(None)))
    asyncio.run(verify_with_venue(_Rest(VenueServerError(-1000, "busy", 503))))
    asyncio.run(verify_with_venue(_Rest(VenueClientError(-1003, "too many requests", 429))))


def test_an_external_sim_uses_only_the_key_files_sim_profile(tmp_path):
    store = KeyStore(tmp_path / "keys.enc")
    env = {"TAPESHOT_KEY_PASSPHRASE": PHRASE}
    assert sim_credentials(tmp_path, env) is None                   # no key file
    store.add("main", "REAL-ACCOUNT-KEY", Secret("real"), Secret(PHRASE))
    assert sim_credentials(tmp_path, env) is None                   # a real account's key never goes to a sim
    store.add("sim", "SIM-KEY", Secret("sim-secret"), Secret(PHRASE))
    assert sim_credentials(tmp_path, {}) is None                    # no passphrase: the sim's default key
    creds = sim_credentials(tmp_path, env)
    assert creds is not None and creds.api_key == "SIM-KEY" and creds.secret.reveal() == b"sim-secret"
