"""Binance-style request authentication and rate limiting for the sim venue (the server side of ``signing``).

- API key in ``X-MBX-APIKEY`` (REST) or ``apiKey`` (WebSocket API); unknown key: -2015, HTTP 401.
- HMAC-SHA256 over ``totalParams`` = query string + body, both as sent, without the ``signature`` param;
  bad signature: -1022. ``timestamp`` must satisfy ``timestamp < serverTime + 1000`` and
  ``serverTime - timestamp <= recvWindow`` (recvWindow default 5000, at most 60000): -1021 otherwise.
- Weights per minute and order counts per 10 s and per minute in fixed windows, reported in Binance's headers;
  over the limit: HTTP 429 with ``Retry-After`` and -1003 / -1015; another request during that back-off: 418.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

from engine.keys import Secret
from engine.venues.binance import codes
from engine.venues.binance.signing import verify


class SimHttpError(Exception):
    """An error the venue answers with: HTTP status, Binance code and message, extra headers."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}


def strip_signature(raw: str) -> tuple[str, str | None]:
    """Remove ``signature=...`` from a raw query/body string; returns (the rest as sent, the signature)."""
    parts = raw.split("&") if raw else []
    sig = None
    kept = []
    for p in parts:
        if p.startswith("signature="):
            sig = unquote(p[len("signature="):])
        else:
            kept.append(p)
    return "&".join(kept), sig


@dataclass
class ApiAccount:
    """A key the venue accepts: an HMAC secret, or (``ed25519_public``) an Ed25519 public key in PEM."""

    api_key: str
    secret: Secret | None
    account: str
    ed25519_public: bytes | None = None

    def verify(self, payload: str, signature: str) -> bool:
        if self.ed25519_public is None:
            return self.secret is not None and verify(self.secret, payload, signature)
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            load_pem_public_key(self.ed25519_public).verify(base64.b64decode(signature), payload.encode())
        except (InvalidSignature, ValueError):
            return False
        return True


def check_timestamp(params: dict[str, str], now_ms: int) -> None:
    try:
        ts = int(params["timestamp"])
    except KeyError:
        raise SimHttpError(400, codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                           codes.MESSAGES[codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED].format(param="timestamp")) from None
    except (TypeError, ValueError):
        raise SimHttpError(400, codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                           "Illegal characters found in parameter 'timestamp'.") from None
    try:
        window = int(params.get("recvWindow", 5000))
    except (TypeError, ValueError):
        raise SimHttpError(400, codes.INVALID_PARAMETER,
                           "Illegal characters found in parameter 'recvWindow'.") from None
    if window <= 0 or window > 60000:
        raise SimHttpError(400, codes.INVALID_PARAMETER, "recvWindow must be less than 60000")
    if not (ts < now_ms + 1000 and now_ms - ts <= window):
        raise SimHttpError(400, codes.INVALID_TIMESTAMP, codes.MESSAGES[codes.INVALID_TIMESTAMP])


def check_signature(acct: ApiAccount, payload: str, signature: object) -> None:
    """-1102 without a signature or with one that is not a string (a WebSocket API JSON value); -1022 when it
    does not verify, also when it is not ASCII (no HMAC or base64 signature is)."""
    if not signature or not isinstance(signature, str):
        raise SimHttpError(400, codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                           codes.MESSAGES[codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED].format(param="signature"))
    if not signature.isascii() or not acct.verify(payload, signature):
        raise SimHttpError(400, codes.INVALID_SIGNATURE, codes.MESSAGES[codes.INVALID_SIGNATURE])


@dataclass
class Limits:
    weight_per_min: int = 2400
    orders_per_10s: int = 300
    orders_per_min: int = 1200
    ban_s: int = 120                      # the 418 back-off after hammering through a 429


@dataclass
class _Window:
    start: int = 0
    count: int = 0


@dataclass
class RateCounter:
    """Per-client (API key or address) fixed-window counters with Binance's 429 -> 418 escalation."""

    limits: Limits = field(default_factory=Limits)
    clock_ms: object = None
    weight: _Window = field(default_factory=_Window)
    o10: _Window = field(default_factory=_Window)
    o60: _Window = field(default_factory=_Window)
    blocked_until_ms: int = 0
    banned: bool = False

    def _now(self) -> int:
        return self.clock_ms() if self.clock_ms else time.time_ns() // 1_000_000

    @staticmethod
    def _roll(w: _Window, now: int, size: int) -> None:
        start = now - now % size
        if w.start != start:
            w.start, w.count = start, 0

    def charge(self, weight: int, orders: int) -> dict[str, str]:
        """Count one request; returns the headers to send, or raises the 429/418 SimHttpError."""
        now = self._now()
        if now < self.blocked_until_ms:
            self.banned = True
            self.blocked_until_ms = max(self.blocked_until_ms, now + self.limits.ban_s * 1000)
            retry = str(max(1, (self.blocked_until_ms - now + 999) // 1000))
            raise SimHttpError(418, codes.TOO_MANY_REQUESTS,
                               f"Way too many requests; IP banned until {self.blocked_until_ms}.",
                               {"Retry-After": retry})
        self._roll(self.weight, now, 60_000)
        self._roll(self.o10, now, 10_000)
        self._roll(self.o60, now, 60_000)
        self.weight.count += weight
        self.o10.count += orders
        self.o60.count += orders
        headers = self.headers()
        if self.weight.count > self.limits.weight_per_min:
            self._block(self.weight.start + 60_000)
            raise SimHttpError(429, codes.TOO_MANY_REQUESTS, codes.MESSAGES[codes.TOO_MANY_REQUESTS].format(
                limit=self.limits.weight_per_min), {**headers, "Retry-After": self._retry(now)})
        for w, lim, span, size in ((self.o10, self.limits.orders_per_10s, "10s", 10_000),
                                   (self.o60, self.limits.orders_per_min, "1m", 60_000)):
            if orders and w.count > lim:
                self._block(w.start + size)
                raise SimHttpError(429, codes.TOO_MANY_ORDERS,
                                   f"Too many new orders; current limit is {lim} orders per {span}.",
                                   {**headers, "Retry-After": self._retry(now)})
        return headers

    def _block(self, until: int) -> None:
        self.blocked_until_ms = max(self.blocked_until_ms, until)

    def _retry(self, now: int) -> str:
        return str(max(1, (self.blocked_until_ms - now + 999) // 1000))

    def headers(self) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(self.weight.count), "X-MBX-ORDER-COUNT-10S": str(self.o10.count),
                "X-MBX-ORDER-COUNT-1M": str(self.o60.count)}

    def rate_limits(self) -> list[dict]:
        """The same counts in the WebSocket API's ``rateLimits`` shape."""
        return [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": self.limits.weight_per_min, "count": self.weight.count},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": self.limits.orders_per_10s, "count": self.o10.count},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
             "limit": self.limits.orders_per_min, "count": self.o60.count},
        ]
