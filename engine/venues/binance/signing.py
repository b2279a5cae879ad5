"""Request signing as Binance documents it.

- REST: HMAC-SHA256 (hex) over the exact query string sent (``totalParams``), key ``X-MBX-APIKEY`` in a header.
- WebSocket API: the same HMAC over every param except ``signature``, sorted by name, joined ``k=v&...``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from engine.keys import Secret


def encode_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def query_string(params: Iterable[tuple[str, object]]) -> str:
    """URL-encode in the given order (Binance signs the bytes exactly as sent)."""
    return "&".join(f"{k}={quote(encode_value(v), safe='-_.~')}" for k, v in params)


def sign(secret: Secret, payload: str) -> str:
    return hmac.new(secret.reveal(), payload.encode(), hashlib.sha256).hexdigest()


def ws_payload(params: Mapping[str, object]) -> str:
    """The WebSocket API signature payload: all params but ``signature``, sorted by name."""
    return "&".join(f"{k}={encode_value(params[k])}" for k in sorted(params) if k != "signature")


def verify(secret: Secret, payload: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, payload), signature)
