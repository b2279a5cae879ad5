"""Client-side request-weight and order-rate limiting that follows the venue's own counters.

Binance USD-M counts REQUEST_WEIGHT per minute and ORDERS per 10 s and per minute in fixed windows, and reports
its counts in ``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S`` and ``X-MBX-ORDER-COUNT-1M``. The limiter keeps
its own count, takes the venue's figure whenever a response brings one (it also counts other processes sharing
the IP or key), and waits for the next window rather than send a request that would cross ``safety`` x limit.
So it never provokes a 429; if one comes anyway (or a 418), it waits out ``Retry-After`` before anything else.

A caller with a deadline passes ``max_wait_ms``: when the wait needed (the rate windows and any ban together) would
exceed it, ``acquire`` raises ``RiskRefused("deadline", ...)`` at once and charges nothing, so a request is never
held past the moment it still made sense to send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.errors import RiskRefused
from ext.orders import RateWindows


@dataclass(frozen=True)
class RateLimit:
    kind: str          # "weight" or "orders"
    window_ms: int
    limit: int
    header: str        # the response header that reports the venue's count for this window


DEFAULT_LIMITS = (
    RateLimit("weight", 60_000, 2400, "X-MBX-USED-WEIGHT-1M"),
    RateLimit("orders", 10_000, 300, "X-MBX-ORDER-COUNT-10S"),
    RateLimit("orders", 60_000, 1200, "X-MBX-ORDER-COUNT-1M"),
)


class RateLimiter:
    """Fixed-window counters per limit, synced from response headers; ``acquire`` waits instead of overrunning.

    The counters live in ``core`` (``ext.orders.RateWindows``), which the WebSocket API's order path checks and
    charges in C without coming back here."""

    def __init__(self, limits: tuple[RateLimit, ...] = DEFAULT_LIMITS, safety: float = 0.9,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.limits = limits
        self.safety = safety
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.core = RateWindows(_windows(limits), safety)
        self.waited_ms = 0          # total time spent waiting (exported as a metric)

    @property
    def banned_until_ms(self) -> int:
        return self.core.banned_until_ms

    @banned_until_ms.setter
    def banned_until_ms(self, value: int) -> None:
        self.core.banned_until_ms = value

    def configure(self, rate_limits: list[dict]) -> None:
        """Adopt the venue's own limits from exchangeInfo ``rateLimits`` (REQUEST_WEIGHT and ORDERS entries)."""
        spans = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
        headers = {("weight", 60_000): "X-MBX-USED-WEIGHT-1M", ("orders", 10_000): "X-MBX-ORDER-COUNT-10S",
                   ("orders", 60_000): "X-MBX-ORDER-COUNT-1M"}
        limits = []
        for rl in rate_limits:
            kind = {"REQUEST_WEIGHT": "weight", "ORDERS": "orders"}.get(rl.get("rateLimitType"))
            span = spans.get(rl.get("interval")) if kind else None
            if span is None:
                continue
            window = span * int(rl.get("intervalNum", 1))
            header = headers.get((kind, window), f"X-MBX-{kind.upper()}-{window}MS")
            limits.append(RateLimit(kind, window, int(rl["limit"]), header))
        if limits:
            self.limits = tuple(limits)
            self.core.configure(_windows(self.limits), self.safety)

    def delay_ms(self, weight: int, orders: int = 0) -> int:
        """How long a request of this cost must wait now (0: it may go)."""
        return self.core.delay_ms(self.clock_ms(), weight, orders)

    def charge(self, weight: int, orders: int = 0) -> None:
        """Count a request that goes now, without waiting (the caller checked ``delay_ms`` in this loop turn)."""
        self.core.add(self.clock_ms(), weight, orders)

    async def acquire(self, weight: int, orders: int = 0, max_wait_ms: int | None = None) -> None:
        """Wait until a request of this cost may go, then count it.

        ``max_wait_ms``: the longest this caller may wait (None: no bound). When the wait needed now, or what is
        left of it after waking (a window may roll into another full one, a ban may be extended), would take the
        total past it, raise ``RiskRefused("deadline", ...)`` and charge nothing."""
        start = self.clock_ms()
        if max_wait_ms is not None and max_wait_ms < 0:
            raise RiskRefused("deadline", f"the deadline passed {-max_wait_ms} ms ago; not sent")
        while (wait := self.delay_ms(weight, orders)) > 0:
            if max_wait_ms is not None:
                self._check_deadline(start, wait, max_wait_ms)
            self.waited_ms += wait
            await asyncio.sleep(wait / 1000)
        self.charge(weight, orders)

    def _check_deadline(self, start_ms: int, wait_ms: int, max_wait_ms: int) -> None:
        waited = max(0, self.clock_ms() - start_ms)
        if waited + wait_ms > max_wait_ms:
            banned = self.banned_until_ms - self.clock_ms()
            why = f" (banned by the venue for {banned} ms more)" if banned > 0 else ""
            raise RiskRefused("deadline", f"the rate limiter would hold this request {waited + wait_ms} ms{why}, "
                                          f"over its deadline of {max_wait_ms} ms; not sent")

    def update_from_headers(self, headers: Mapping[str, str]) -> None:
        now = self.clock_ms()
        for i, lim in enumerate(self.limits):
            value = headers.get(lim.header)
            if value is not None and value.isdigit():
                self.core.set_count(i, now, int(value))

    def back_off(self, retry_after_s: float) -> None:
        """A 429/418 said stop: nothing goes before ``Retry-After`` has passed."""
        self.banned_until_ms = max(self.banned_until_ms, self.clock_ms() + int(retry_after_s * 1000))

    def used(self) -> dict[str, int]:
        now = self.clock_ms()
        return {lim.header: self.core.used(i, now) for i, lim in enumerate(self.limits)}


def _windows(limits: tuple[RateLimit, ...]) -> list[tuple[bool, int, int]]:
    return [(lim.kind == "orders", lim.window_ms, lim.limit) for lim in limits]
