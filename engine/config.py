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
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.risk import RiskConfig
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
class VenueConfig:
    """Where to trade. ``sim`` (default) starts a simulated Binance venue in-process on ``data`` (the bundled
    tape when empty) unless ``rest_url`` names a running one; ``binance`` is the real exchange (mainnet, or
    ``testnet = true``) with keys from TAPESHOT_API_KEY / TAPESHOT_API_SECRET."""

    kind: str = "sim"
    testnet: bool = False
    rest_url: str = ""
    ws_url: str = ""
    ws_api_url: str = ""
    data: tuple[str, ...] = ()
    speed: float = 1.0
    loop: bool = False                 # the embedded sim: replay the tape again when it ends (False: stop there)
    symbols: tuple[str, ...] = ()
    use_ws_api: bool = True
    transport: str = "picows"          # WebSocket implementation: picows (measured faster) or aiohttp
    key_profile: str = "main"          # profile in the encrypted key file when the environment has no key
    recv_window_ms: int = 5000
    countdown_cancel_ms: int = 60000   # dead man's switch: the venue cancels our orders if we go quiet (0: off)
    time_sync_s: float = 300.0         # re-measure the venue's clock this often (and at once after a -1021)

    def __post_init__(self) -> None:
        _require(self.kind in ("sim", "binance"), f"venue.kind must be sim or binance, got {self.kind!r}")
        _require(self.speed > 0, "venue.speed must be > 0")
        _require(self.transport in ("picows", "aiohttp"), "venue.transport must be picows or aiohttp")
        _require(self.countdown_cancel_ms == 0 or self.countdown_cancel_ms >= 10000,
                 "venue.countdown_cancel_ms must be 0 or >= 10000")
        _require(self.time_sync_s >= 10, "venue.time_sync_s must be >= 10")


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Local files and endpoints of the running engine."""

    home: str = "~/.tapeshot"                 # journal and control socket live here unless set below
    journal: str = ""
    control_socket: str = ""
    metrics_port: int = 0                     # Prometheus exporter, /healthz and /readyz (0: off)
    metrics_host: str = "127.0.0.1"           # the address it listens on (0.0.0.0 in a container)
    timer_ms: int = 20                        # algorithm timer (deadlines fire even when the market is quiet)
    console: str = "auto"                     # read intents from stdin: auto (when it is a terminal), on, off
    cpu_pinning: str = "auto"                 # tapeshot run: event loop on its own core, journal writer elsewhere
    busy_poll: str = "auto"                   # poll instead of sleeping while intents work: auto (on a core of
                                              # its own, see cpu_pinning), on, off

    def __post_init__(self) -> None:
        _require(self.timer_ms >= 1, "engine.timer_ms must be >= 1")
        _require(self.cpu_pinning in ("auto", "off"), "engine.cpu_pinning must be auto or off")
        _require(self.busy_poll in ("auto", "on", "off"), "engine.busy_poll must be auto, on or off")
        _require(self.console in ("auto", "on", "off"), "engine.console must be auto, on or off")


@dataclasses.dataclass(frozen=True)
class ExecutionConfig:
    """Defaults for intents that leave them out, and the order round trip the deadline rule allows for."""

    window_s: float = 30.0
    max_slippage_bps: float = 10.0
    algo: str = "auto"
    on_deadline: str = "complete"
    round_trip_ms: float = 20.0
    taker_fee_bps: float = 5.0         # the account's taker fee for cost estimates (Binance USD-M VIP 0: 0.05%)

    def __post_init__(self) -> None:
        _require(5 <= self.window_s <= 60, "execution.window_s must be within 5-60")
        _require(self.algo in ("auto", "sniper", "ladder", "hybrid"),
                 "execution.algo must be auto, sniper, ladder or hybrid")
        _require(self.on_deadline in ("complete", "cancel"), "execution.on_deadline must be complete or cancel")


ROLES = ("trader", "viewer")


@dataclasses.dataclass(frozen=True)
class TelegramConfig:
    """The bot runs when TAPESHOT_TELEGRAM_TOKEN is set. ``users``: Telegram user id -> role (``trader`` trades,
    ``viewer`` only reads); in TOML a table (``[telegram.users]`` ``1001 = "trader"``), in the environment
    ``TAPESHOT_TELEGRAM__USERS="1001:trader,1002:viewer"``. ``allowed_user_ids`` (older configs) are traders.
    ``allowed_chat_ids`` (optional) also limits the chats served. ``base_url``: the Bot API's address (a local
    stand-in in tests). Intents worth at least ``confirm_above_usdt`` are previewed and wait for a Confirm
    press, for at most ``confirm_s`` seconds."""

    users: dict[str, str] = dataclasses.field(default_factory=dict)
    allowed_user_ids: tuple[int, ...] = ()
    allowed_chat_ids: tuple[int, ...] = ()
    base_url: str = ""
    confirm_above_usdt: Decimal = Decimal("10000")
    confirm_s: float = 30.0
    max_age_s: float = 60.0

    def __post_init__(self) -> None:
        for uid, role in self.users.items():
            _require(uid.lstrip("-").isdigit(), f"telegram.users: {uid!r} is not a Telegram user id (a number)")
            _require(role in ROLES, f"telegram.users: user {uid} has role {role!r}; roles are trader, viewer")
        _require(self.confirm_above_usdt >= 0, "telegram.confirm_above_usdt must be >= 0")
        _require(5 <= self.confirm_s <= 600, "telegram.confirm_s must be within 5-600")
        _require(self.max_age_s > 0, "telegram.max_age_s must be > 0")

    def roles(self) -> dict[int, str]:
        """Every served user id with its role (``allowed_user_ids`` are traders unless ``users`` says otherwise)."""
        out = {int(u): "trader" for u in self.allowed_user_ids}
        out.update({int(u): r for u, r in self.users.items()})
        return out


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """The decision dataset (``docs/dataset.md``). ``context_symbol``: whose state every intent on another
    symbol records beside its own (its mid, spread, signals and recent moves); the engine subscribes it for
    that when it does not trade it. "" turns the context off."""

    context_symbol: str = "BTCUSDT"

    def __post_init__(self) -> None:
        s = self.context_symbol
        _require(s == "" or (s.isalnum() and s.upper() == s), "dataset.context_symbol must be a symbol like "
                 "BTCUSDT (upper case) or empty")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A learned timing model (``tapeshot train``, ``engine.learn``): the ``.npz`` file to load, "" for none. The
    engine refuses a file trained for another symbol or feature set (``engine.learn.runtime.ModelRuntime``)."""

    path: str = ""

    def __post_init__(self) -> None:
        _require(self.path == "" or (self.path.strip() == self.path and self.path.endswith(".npz")),
                 f"model.path must be empty or a .npz model file (tapeshot train --out), got {self.path!r}")


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration; each field is a section."""

    feed: FeedConfig = dataclasses.field(default_factory=FeedConfig)
    signals: TimingParams = dataclasses.field(default_factory=TimingParams)
    venue: VenueConfig = dataclasses.field(default_factory=VenueConfig)
    engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)
    execution: ExecutionConfig = dataclasses.field(default_factory=ExecutionConfig)
    risk: RiskConfig = dataclasses.field(default_factory=RiskConfig)
    telegram: TelegramConfig = dataclasses.field(default_factory=TelegramConfig)
    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)


def journal_path(cfg: Config) -> Path:
    """``engine.journal``, else ``<home>/journal.sqlite`` for a real venue and ``<home>/sim/journal.sqlite``
    for a sim venue (embedded or ``tapeshot sim``): a sim session never shares a journal with a real account."""
    e = cfg.engine
    if e.journal:
        return Path(e.journal).expanduser()
    home = Path(e.home).expanduser()
    return home / "sim" / "journal.sqlite" if cfg.venue.kind == "sim" else home / "journal.sqlite"


def ensure_home(cfg: Config) -> Path:
    """Make the engine's home (and the sim journals' directory in it) private before anything is written there.

    Missing, each is created with mode 0700 (every missing parent too). Existing with group or other
    permissions: tightened to 0700 with a warning in the log (these directories are the engine's own), except a
    home holding the key file: a loose key file or home is refused with the ``chmod`` to run
    (``engine.keys.check_private``), as is a directory the engine cannot tighten (not ours)."""
    from engine.keys import KEY_FILE, check_private, make_private_dir

    home = Path(cfg.engine.home).expanduser()
    for d in (home, home / "sim") if cfg.venue.kind == "sim" else (home,):
        make_private_dir(d)
        if (d / KEY_FILE).exists():
            check_private(d / KEY_FILE)                      # the file, then its directory
        else:
            _tighten(d)
    return home


def _tighten(directory: Path) -> None:
    """Drop group and other permissions from one of the engine's directories (a warning says so)."""
    import logging
    import stat

    mode = stat.S_IMODE(directory.stat().st_mode)
    if not mode & 0o077:
        return
    try:
        os.chmod(directory, 0o700)
    except OSError:
        raise ConfigError(f"{directory} is open to other users (mode {mode:04o}) and cannot be tightened: "
                          f"run 'chmod 700 {directory}' as its owner") from None
    logging.getLogger(__name__).warning("%s was open to other users (mode %04o): now 0700", directory, mode)


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
        elif typing.get_origin(kind) is dict and not dataclasses.is_dataclass(typing.get_args(kind)[1]):
            kwargs[name] = _plain_table(value, where, f"{prefix}{name}")
        elif typing.get_origin(kind) is dict:
            kwargs[name] = _build_table(typing.get_args(kind)[1], value, where, f"{prefix}{name}")
        else:
            kwargs[name] = _coerce(value, kind, f"{prefix}{name}", where)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, ConfigError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _build_table(kind: type, raw: Any, where: str, key: str) -> dict[str, Any]:
    """A table of tables, each a ``kind`` (``[risk.symbols.BTCUSDT]``): name -> ``kind``."""
    if isinstance(raw, _EnvValue) or not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {key} must be a table of tables ([{key}.<NAME>]), got {str(raw)!r}")
    return {name: _build(kind, value, where, f"{key}.{name}.") for name, value in raw.items()}


def _plain_table(raw: Any, where: str, key: str) -> dict[str, str]:
    """A table of names to strings: ``[key]`` ``name = "value"`` in TOML, ``name:value,name:value`` from the
    environment."""
    if isinstance(raw, _EnvValue):
        pairs = [p.strip() for p in str(raw).split(",") if p.strip()]
        out = {}
        for p in pairs:
            name, sep, value = p.partition(":")
            if not sep or not name.strip() or not value.strip():
                raise ConfigError(f"{raw.env_name}: {key} is a list of name:value pairs separated by commas "
                                  f"(e.g. 1001:trader,1002:viewer), got {p!r}")
            out[name.strip()] = value.strip()
        return out
    if not isinstance(raw, Mapping) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError(f"{where}: {key} must be a table of names to strings ([{key}] name = \"value\")")
    return {str(k): v for k, v in raw.items()}


def _coerce(value: Any, kind: Any, key: str, where: str) -> Any:
    if isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind):   # optional: a value is one
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    origin = typing.get_origin(kind)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        items = str(value).split(",") if isinstance(value, _EnvValue) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        return tuple(_coerce(_EnvValue(getattr(value, "env_name", key), str(v).strip()) if isinstance(value, _EnvValue)
                             else v, item, key, where) for v in items if str(v).strip() != "")
    if kind is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where}: {key} must be a decimal number, got {value!r}")
        try:
            return Decimal(str(value).replace("_", ""))
        except ArithmeticError:
            raise ConfigError(f"{where}: {key} must be a decimal number, got {value!r}") from None
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
