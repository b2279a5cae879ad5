"""Keys: never printed, encrypted at rest, Ed25519 and HMAC signatures verified by the sim venue."""

from __future__ import annotations

import logging
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.errors import ConfigError
from engine.keys import Credentials, KeyStore, Secret
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
    with pytest.raises(ConfigError, match="not a readable"):
        Credentials.from_env({"TAPESHOT_API_KEY": "k", "TAPESHOT_API_ED25519_PEM": str(bad)})
