"""The one small error hierarchy: every error Tapeshot raises on purpose is a ``TapeshotError``.

Messages never carry secrets: API keys, secrets and signatures are never formatted into an error.
"""

from __future__ import annotations


class TapeshotError(Exception):
    """Base of every deliberate Tapeshot error."""


class ConfigError(TapeshotError):
    """Bad configuration, bad command-line input or a malformed intent: the user can fix it."""


class RiskRefused(TapeshotError):
    """The pre-trade risk gateway refused an action; ``reason`` is a short machine-readable tag. A refusal by a
    limit also carries the ``limit``, the ``value`` that broke it and their ``unit`` (USDT, BTC, bps, orders)."""

    def __init__(self, reason: str, detail: str = "", *, limit: float | None = None, value: float | None = None,
                 unit: str = "") -> None:
        super().__init__(f"risk refused ({reason}){': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail
        self.limit = limit
        self.value = value
        self.unit = unit

    def record(self) -> dict:
        """The refusal as the journal keeps it."""
        return {"reason": self.reason, "detail": self.detail, "limit": self.limit, "value": self.value,
                "unit": self.unit}


class VenueError(TapeshotError):
    """The venue answered with an error. ``code`` is Binance's error code (e.g. -1021), ``status`` the HTTP one."""

    def __init__(self, code: int, msg: str, status: int = 0) -> None:
        super().__init__(f"venue error {code}: {msg}" + (f" (HTTP {status})" if status else ""))
        self.code = code
        self.msg = msg
        self.status = status


class VenueClientError(VenueError):
    """A 4xx answer: our request was wrong or refused (bad signature, filters, rate limit ...)."""


class VenueServerError(VenueError):
    """A 5xx answer or an unknown outcome: the request may or may not have been executed.

    ``sent`` is False only when we know no byte of the request left us (so it is safe to send it elsewhere)."""

    def __init__(self, code: int, msg: str, status: int = 0, sent: bool = True) -> None:
        super().__init__(code, msg, status)
        self.sent = sent


class DataError(TapeshotError):
    """A corrupt or unparseable message or recording; the offending input is identified, never guessed at."""


class StateError(TapeshotError):
    """An invalid state transition or an inconsistency between our state and the venue's."""
