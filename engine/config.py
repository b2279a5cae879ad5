"""Typed, validated configuration: a TOML file, then ``TAPESHOT_<SECTION>__<KEY>`` environment overrides.

Every section is a frozen dataclass; unknown sections or keys, and values of the wrong type, are errors that
name the file and the key. Secrets never live here (see ``engine.keys``).

Example ``tapeshot.toml``::

    [feed]
    window_ticks = 32768
    stale_ms = 5000

    [signals]
    tau_ofi_ns = 1_000_000_000
    w_ofi = 0.3
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.signals_ref import TimingParams

ENV_PREFIX = "TAPESHOT_"


@dataclasses.dataclass(frozen=True)
class FeedConfig:
    """Market data: book ladder width, staleness, resync behaviour."""

    window_ticks: int = 32768       # flat ladder width per side; levels outside go to an ordered map
    stale_ms: int = 5000            # a book with no diff for this long (exchange time) is stale
    max_pending: int = 50000        # diffs buffered while waiting for a snapshot (oldest dropped beyond)
    resync_on_mismatch: bool = True  # a bookTicker that contradicts the book triggers a resync

    def __post_init__(self) -> None:
        _require(self.window_ticks >= 64, "feed.window_ticks must be >= 64")
        _require(self.stale_ms > 0, "feed.stale_ms must be > 0")
        _require(self.max_pending > 0, "feed.max_pending must be > 0")


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration; each field is a section."""

    feed: FeedConfig = dataclasses.field(default_factory=FeedConfig)
    signals: TimingParams = dataclasses.field(default_factory=TimingParams)


def _require(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (optional), apply environment overrides, validate everything."""
    raw: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    _apply_env(raw, os.environ if env is None else env)
    return _build(Config, raw, where, "")


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{name}: [{section}] is not a section")
        raw[section][key] = _EnvValue(name, value)


class _EnvValue(str):
    """A string from the environment: converted to the field's type rather than type-checked."""

    def __new__(cls, name: str, value: str) -> _EnvValue:
        obj = super().__new__(cls, value)
        obj.env_name = name  # type: ignore[attr-defined]
        return obj


def _build(cls: type, raw: Mapping[str, Any], where: str, prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [{prefix.rstrip('.')}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(prefix + k for k in unknown)} (known: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in raw.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, where, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, kind, f"{prefix}{name}", where)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, ConfigError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _coerce(value: Any, kind: Any, key: str, where: str) -> Any:
    if isinstance(value, _EnvValue):
        return _from_env(value, kind, key)
    base = _base(kind)
    ok = (isinstance(value, bool) if base is bool
          else isinstance(value, int | float) and not isinstance(value, bool) if base is float
          else isinstance(value, base) and not (base is int and isinstance(value, bool)))
    if not ok:
        raise ConfigError(f"{where}: {key} must be {base.__name__}, got {value!r}")
    return float(value) if base is float else value


def _from_env(value: _EnvValue, kind: Any, key: str) -> Any:
    base = _base(kind)
    text = str(value).strip()
    try:
        if base is bool:
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        if base is int:
            return int(text.replace("_", ""))
        if base is float:
            return float(text)
        return text
    except ValueError:
        raise ConfigError(f"{value.env_name}: {key} must be {base.__name__}, got {text!r}") from None


def _base(kind: Any) -> type:
    if isinstance(kind, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind if isinstance(kind, type) else str
