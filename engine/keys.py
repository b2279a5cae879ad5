"""API credentials: where they come from and how they are kept out of logs, journals, metrics and errors.

A ``Secret`` never shows its value in ``repr``/``str``/f-strings; only ``reveal()`` gives the bytes, and only the
signing code calls it. Credentials come from the environment (``TAPESHOT_API_KEY`` with ``TAPESHOT_API_SECRET``
for an HMAC key, or ``TAPESHOT_API_ED25519_PEM`` naming an Ed25519 private key file), from the encrypted key file
(``KeyStore``: scrypt-derived key, Fernet encryption, mode 0600, managed by ``tapeshot keys``), or are given
explicitly (the sim's account). Binance accepts HMAC-SHA256 (hex) and Ed25519 (base64) signatures.

A key file (the encrypted one, or an Ed25519 PEM) is refused, with the ``chmod`` that fixes it, when it or the
directory holding it is open to group or others (``check_private``), as ssh refuses a loose private key. Keys the
venue refuses (``verify_with_venue``: -2014, -2015, -1022, -1002, HTTP 401) stop the start-up.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import os
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, VenueError

KEY_FILE = "keys.enc"                     # the encrypted key file's name in the engine's home
SIM_PROFILE = "sim"                       # the key file profile an external sim venue (tapeshot sim) is used with
AUTH_CODES = frozenset({-2014, -2015, -1022, -1002})   # bad key format, key refused, bad signature, unauthorized


class Secret:
    """An opaque secret value: prints as ``Secret(****)``."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        if not value:
            raise ConfigError("empty secret")
        self._value = value.encode() if isinstance(value, str) else bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Secret(****)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "****"

    def __reduce__(self):  # never pickled into a journal by accident
        raise TypeError("secrets are not serialisable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Credentials:
    """An API key (public identifier, still kept out of metric labels) and its secret: an HMAC secret, or an
    Ed25519 private key in PEM (``ed25519=True``)."""

    api_key: str
    secret: Secret
    ed25519: bool = False

    def __repr__(self) -> str:
        return f"Credentials(api_key={mask(self.api_key)}, secret=****, {'ed25519' if self.ed25519 else 'hmac'})"

    __str__ = __repr__

    def sign(self, payload: str) -> str:
        """The signature Binance expects for ``payload``: hex HMAC-SHA256, or base64 Ed25519."""
        if not self.ed25519:
            return hmac.new(self.secret.reveal(), payload.encode(), hashlib.sha256).hexdigest()
        return base64.b64encode(_ed25519_key(self.secret).sign(payload.encode())).decode()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if env is None else env
        key = env.get("TAPESHOT_API_KEY", "")
        pem_path = env.get("TAPESHOT_API_ED25519_PEM", "")
        if key and pem_path:
            check_private(Path(pem_path).expanduser())
            try:
                pem = Path(pem_path).expanduser().read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read the Ed25519 key file: {exc.strerror}") from None
            creds = cls(key, Secret(pem), ed25519=True)
            _ed25519_key(creds.secret)
            return creds
        secret = env.get("TAPESHOT_API_SECRET", "")
        if not key or not secret:
            raise ConfigError("set TAPESHOT_API_KEY with TAPESHOT_API_SECRET (HMAC) or TAPESHOT_API_ED25519_PEM, "
                              "or store keys with 'tapeshot keys add'")
        return cls(key, Secret(secret))


@functools.lru_cache(maxsize=8)
def _ed25519_key(secret: Secret):
    """The loaded private key (parsed once per secret: a PEM parse cost ~30 us of every signature)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(secret.reveal(), password=None)
    except (ValueError, TypeError):
        raise ConfigError("the Ed25519 key is not a readable unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("the key file holds a private key that is not Ed25519")
    return key


class KeyStore:
    """API keys encrypted at rest: JSON profiles, Fernet-encrypted with a key derived from a passphrase by
    scrypt (n=2**15, r=8, p=1, random salt). The file is written atomically with mode 0600."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()

    def _fernet(self, passphrase: Secret, salt: bytes):
        from cryptography.fernet import Fernet
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.reveal())
        return Fernet(base64.urlsafe_b64encode(key))

    def load(self, passphrase: Secret) -> dict[str, dict[str, str]]:
        from cryptography.fernet import InvalidToken

        if not self.path.exists():
            return {}
        check_private(self.path)
        try:
            doc = json.loads(self.path.read_text())
            plain = self._fernet(passphrase, base64.b64decode(doc["salt"])).decrypt(doc["token"].encode())
        except InvalidToken:
            raise ConfigError(f"wrong passphrase for {self.path}") from None
        except (ValueError, KeyError):
            raise ConfigError(f"{self.path} is not a Tapeshot key file") from None
        return json.loads(plain)["profiles"]

    def save(self, profiles: dict[str, dict[str, str]], passphrase: Secret) -> None:
        salt = os.urandom(16)
        token = self._fernet(passphrase, salt).encrypt(json.dumps({"profiles": profiles}).encode())
        make_private_dir(self.path.parent)
        check_private_dir(self.path.parent)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"v": 1, "kdf": "scrypt", "salt": base64.b64encode(salt).decode(), "token": token.decode()}, f)
        os.replace(tmp, self.path)

    def credentials(self, profile: str, passphrase: Secret) -> Credentials:
        p = self.load(passphrase).get(profile)
        if p is None:
            raise ConfigError(f"no key profile {profile!r} in {self.path}")
        return Credentials(p["api_key"], Secret(p["secret"]), p.get("kind") == "ed25519")

    def add(self, profile: str, api_key: str, secret: Secret, passphrase: Secret, ed25519: bool = False) -> None:
        profiles = self.load(passphrase)
        profiles[profile] = {"api_key": api_key, "secret": secret.reveal().decode(),
                             "kind": "ed25519" if ed25519 else "hmac"}
        self.save(profiles, passphrase)

    def remove(self, profile: str, passphrase: Secret) -> bool:
        profiles = self.load(passphrase)
        if profiles.pop(profile, None) is None:
            return False
        self.save(profiles, passphrase)
        return True


def mask(api_key: str) -> str:
    """Enough of a key to tell two apart in a log, never enough to use: 'abcd…wxyz'."""
    return f"{api_key[:4]}…{api_key[-4:]}" if len(api_key) > 12 else "****"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_private_dir(directory: Path) -> None:
    """Refuse a directory holding a key file that group or others can read, list or write into."""
    mode = _mode(directory)
    if mode & 0o077:
        raise ConfigError(f"the directory {directory} holding a key file is open to other users (mode {mode:04o}): "
                          f"run 'chmod 700 {shlex.quote(str(directory))}'")


def check_private(path: Path) -> None:
    """Refuse a key file (or its directory) readable or writable by group or others, naming the fix."""
    mode = _mode(path)
    if mode & 0o077:
        raise ConfigError(f"the key file {path} is readable by other users (mode {mode:04o}): "
                          f"run 'chmod 600 {shlex.quote(str(path))}'")
    check_private_dir(path.parent)


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` and every missing parent with mode 0700 (an existing one is left as it is)."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)                                 # whatever the umask was


def sim_credentials(home: str | Path, env: Mapping[str, str] | None = None) -> Credentials | None:
    """The key file's ``sim`` profile, for an external sim venue started with its own key (``tapeshot sim
    --api-key``): used only when the key file exists, ``TAPESHOT_KEY_PASSPHRASE`` is set and the profile is
    there, so a real account's key is never sent to a sim venue. None otherwise (the sim's default key)."""
    env = os.environ if env is None else env
    store = KeyStore(Path(home).expanduser() / KEY_FILE)
    phrase = env.get("TAPESHOT_KEY_PASSPHRASE")
    if not phrase or not store.path.exists():
        return None
    profile = store.load(Secret(phrase)).get(SIM_PROFILE)
    if profile is None:
        return None
    return Credentials(profile["api_key"], Secret(profile["secret"]), profile.get("kind") == "ed25519")


async def verify_with_venue(rest: Any) -> None:
    """One signed request (the balance) before anything else is signed: a key the venue refuses stops the
    start-up with a ``ConfigError`` carrying the venue's code and message, never the key. Any other refusal
    (a 5xx, a rate limit) is not about the key: logged, and the start-up goes on."""
    try:
        await rest.balance()
    except VenueError as exc:
        if exc.code in AUTH_CODES or exc.status == 401:
            raise ConfigError(f"the venue refused the API key: {exc.msg} (code {exc.code}"
                              f"{f', HTTP {exc.status}' if exc.status else ''}); check the key, its secret, "
                              "its permissions (futures trading) and its IP whitelist") from None
        logging.getLogger(__name__).warning("key check: the venue answered %s; going on", exc)
