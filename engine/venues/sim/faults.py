"""The sim venue's switchable faults: what each does, its bounds, and the strict validation of settings.

Set them with ``POST /sim/faults`` (a JSON object), ``tapeshot sim --fault KEY=VALUE`` / ``--faults FILE``, or
``SimVenue.set_faults``; ``GET /sim/status`` shows them with how often each has acted (``fault_counts``).
Counters count down as they act; the others hold until changed. Every value is validated before any is applied:
a key that is not a fault, a bool that is not a JSON ``true``/``false``, an int that is not a non-negative JSON
integer within its bound (a bool is not an int) refuses the whole setting.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

_COUNT = 1_000_000             # counters: "the next N ..."
_MS = 3_600_000                # durations in ms: at most an hour
_S = 3_600                     # durations in s: at most an hour


@dataclass
class Faults:
    """Switchable failures (all off by default); counters say how many of the next requests/events to hit."""

    skip_diffs: int = 0            # drop the next N depth diffs from the served stream (a pu gap for clients)
    drop_market: bool = False      # close every market-stream connection now (clients must reconnect)
    delay_user_ms: int = 0         # hold user data events back this long
    duplicate_user: int = 0        # send the next N user data events twice
    reorder_user: int = 0          # the next N user data events out of order: each held back, sent after the next
    garbage_user: int = 0          # N malformed frames on the user data stream, one before each of the next events
    lose_acks: int = 0             # execute the next N orders but never answer them
    http_5xx: int = 0              # answer the next N requests 503 without executing them
    http_429: int = 0              # answer the next N requests 429
    reject_orders: int = 0         # reject the next N orders (-2010)
    stall_ms: int = 0              # stall every request this long before handling it
    stall_market_ms: int = 0       # a market stall starting now: nothing published for this long (connections
                                   # stay open), then everything queued meanwhile at once; back to 0 when it ends
    ban_s: int = 0                 # an IP ban: the next request gets 418 (-1003, Retry-After: ban_s) and so does
                                   # every request (REST and WebSocket API) for ban_s s after it; once it started,
                                   # /sim/status shows the seconds left; setting 0 lifts it

    def update(self, changes: Any) -> dict[str, Any]:
        """Validate ``changes`` (see ``parse_faults``) and apply them all, or none; returns them as applied."""
        valid = parse_faults(changes)
        for k, v in valid.items():
            setattr(self, k, v)
        return valid

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


BOUNDS: dict[str, int] = {
    "skip_diffs": _COUNT, "delay_user_ms": _MS, "duplicate_user": _COUNT, "reorder_user": _COUNT,
    "garbage_user": _COUNT,
    "lose_acks": _COUNT, "http_5xx": _COUNT, "http_429": _COUNT, "reject_orders": _COUNT, "stall_ms": _MS,
    "stall_market_ms": _MS, "ban_s": _S,
}
KINDS: dict[str, type] = {f.name: bool if f.type in (bool, "bool") else int for f in fields(Faults)}


class FaultError(ValueError):
    """A fault setting that was refused (the message says which and why)."""


def parse_faults(changes: Any) -> dict[str, Any]:
    """Check a fault setting strictly; returns it unchanged when every key and value is valid.

    Raises ``FaultError`` naming the first problem: not an object, an unknown key, a value of the wrong JSON type
    (``"false"`` is not a bool; ``true`` or ``1.0`` is not an int), a negative int or one over the key's bound."""
    if not isinstance(changes, dict):
        raise FaultError("faults must be a JSON object of fault names to values")
    for key, value in changes.items():
        _check(key, value)
    return dict(changes)


def _check(key: Any, value: Any) -> None:
    kind = KINDS.get(key) if isinstance(key, str) else None
    if kind is None:
        raise FaultError(f"unknown fault {key!r}; known: {', '.join(KINDS)}")
    if kind is bool:
        if type(value) is not bool:
            raise FaultError(f"fault {key!r} takes true or false, not {_show(value)}")
        return
    if type(value) is not int:
        raise FaultError(f"fault {key!r} takes a whole number, not {_show(value)}")
    if not 0 <= value <= BOUNDS[key]:
        raise FaultError(f"fault {key!r} must be between 0 and {BOUNDS[key]}, not {value}")


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def parse_fault_arg(text: str) -> tuple[str, Any]:
    """One ``KEY=VALUE`` command-line setting; VALUE is read as JSON (``true``, ``3``), so ``"3"`` stays a
    string and is refused by ``parse_faults``."""
    import orjson

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise FaultError(f"--fault takes KEY=VALUE, not {text!r}")
    try:
        value = orjson.loads(raw.strip())
    except orjson.JSONDecodeError:
        raise FaultError(f"fault {key.strip()!r}: {raw!r} is not a value (use true/false or a whole number)") from None
    return key.strip(), value


def load_fault_file(path: str) -> dict[str, Any]:
    """A faults file: a JSON object, or a TOML table (``.toml``), of fault names to values."""
    import tomllib

    import orjson

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FaultError(f"cannot read faults file {path}: {exc.strerror or exc}") from None
    try:
        if path.endswith(".toml"):
            return tomllib.loads(data.decode())
        return orjson.loads(data)
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        kind = "TOML" if path.endswith(".toml") else "JSON"
        raise FaultError(f"faults file {path} is not valid {kind}: {exc}") from None
