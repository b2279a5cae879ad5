"""API credentials: where they come from and how they are kept out of logs, journals, metrics and errors.

A ``Secret`` never shows its value in ``repr``/``str``/f-strings; only ``reveal()`` gives the bytes, and only the
signing code calls it. Credentials load from the environment (``TAPESHOT_API_KEY`` / ``TAPESHOT_API_SECRET``) or
are given explicitly (the sim's account).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.errors import ConfigError


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
    """An API key (public identifier, still kept out of metric labels) and its HMAC secret."""

    api_key: str
    secret: Secret

    def __repr__(self) -> str:
        return f"Credentials(api_key={mask(self.api_key)}, secret=****)"

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if env is None else env
        key, secret = env.get("TAPESHOT_API_KEY", ""), env.get("TAPESHOT_API_SECRET", "")
        if not key or not secret:
            raise ConfigError("TAPESHOT_API_KEY and TAPESHOT_API_SECRET must both be set")
        return cls(key, Secret(secret))


def mask(api_key: str) -> str:
    """Enough of a key to tell two apart in a log, never enough to use: 'abcd…wxyz'."""
    return f"{api_key[:4]}…{api_key[-4:]}" if len(api_key) > 12 else "****"
