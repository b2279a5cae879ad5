"""The Arrow schema of the decision dataset (``tapeshot.dataset/2``, ``docs/dataset.md``), and the conversion of a
JSON-style record (decimal strings, nested dicts, maps as dicts) into values pyarrow accepts.

One logical schema per record type (``intent``, ``order``, ``fill``) holds every documented field, the partition
columns ``date`` and ``symbol`` included; the Parquet files hold the same schema without the partition columns,
which live in the Hive paths (``date=YYYY-MM-DD/symbol=SYM``). ``tests/unit/test_dataset_parquet.py`` checks these
field lists against the tables of ``docs/dataset.md`` both ways, so the two cannot drift apart.

Exact money fields are ``decimal128(38, 18)``, bps / ratios / signals ``float64``, times and counts ``int64``.
Every field is nullable: a field that cannot be known is null, never guessed.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pyarrow as pa

from engine.errors import DataError

SCHEMA_NAME = "tapeshot.dataset"
SCHEMA_VERSION = 2
SCHEMA_ID = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
METADATA_KEY = "tapeshot.schema"
PARTITION_COLUMNS = ("date", "symbol")
KINDS = ("intent", "order", "fill")

DEC = pa.decimal128(38, 18)
INT = pa.int64()
FLOAT = pa.float64()
STR = pa.string()
BOOL = pa.bool_()
SIGNALS = pa.map_(STR, FLOAT)
_SCALE = Decimal(1).scaleb(-DEC.scale)
_LIMIT = Decimal(10) ** (DEC.precision - DEC.scale)
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_CTX = decimal.Context(prec=DEC.precision + 30, rounding=decimal.ROUND_HALF_EVEN)


def _struct(*fields: tuple[str, pa.DataType]) -> pa.StructType:
    return pa.struct([pa.field(n, t) for n, t in fields])


def _list_of(*fields: tuple[str, pa.DataType]) -> pa.ListType:
    return pa.list_(_struct(*fields))


def _same(t: pa.DataType, *names: str) -> list[tuple[str, pa.DataType]]:
    return [(n, t) for n in names]


_LEVELS = _list_of(("price", DEC), ("qty", DEC))
_TRADE = [("time_ms", INT), ("price", DEC), ("qty", DEC), ("aggressor", STR)]

TAPE = _struct(
    ("window_s", FLOAT), ("count", INT), ("kept", INT), ("covered_s", FLOAT),
    *_same(DEC, "buy_qty", "sell_qty", "buy_notional", "sell_notional", "vwap"), ("runs", INT),
    ("longest_run", INT), ("longest_run_side", STR), ("longest_run_qty", DEC),
    ("last_run", INT), ("last_run_side", STR), ("last_run_qty", DEC),
    ("largest", _struct(*_TRADE)),
)
CONTEXT = _struct(
    ("symbol", STR), *_same(DEC, "mid", "bid", "ask"), ("spread_bps", FLOAT), ("signals", SIGNALS),
    *_same(FLOAT, "move_5s_bps", "move_30s_bps", "move_300s_bps"), ("synced", BOOL),
)
STATE = _struct(
    ("exchange_ms", INT), ("local_ms", INT), *_same(DEC, "mid", "bid", "ask", "bid_qty", "ask_qty"),
    ("spread_bps", FLOAT), ("book", _struct(("bids", _LEVELS), ("asks", _LEVELS))),
    ("trades", _list_of(*_TRADE, ("trade_id", INT))), ("tape", TAPE), ("signals", SIGNALS),
    ("mark", _struct(*_same(DEC, "mark_price", "index_price", "funding_rate"), ("next_funding_ms", INT),
                     ("time_ms", INT))),
    ("context", CONTEXT),
)
ACTION = [("time_ms", INT), *_same(STR, "action", "client_order_id", "tag", "reason", "order_type", "tif"),
          ("price", DEC), ("qty", DEC)]
DECISION = _struct(
    *_same(STR, "text", "source", "user", "kind"), ("qty", DEC), ("notional", DEC), ("window_s", FLOAT),
    ("max_slippage_bps", FLOAT), ("cap", DEC), ("limit", DEC), ("deadline_ms", INT), ("on_deadline", STR),
    ("reduce_only", BOOL), *_same(STR, "algo_requested", "algo", "algo_why"), ("actions", _list_of(*ACTION)),
    ("notes", pa.list_(STR)), ("refusals", pa.list_(STR)),
)
RATIONALE = _struct(
    ("text", STR), ("tags", pa.list_(STR)), ("tags_after", pa.list_(STR)),
    ("entries", _list_of(("text", STR), ("tags", pa.list_(STR)), ("when", STR), ("time_ms", INT),
                         ("after_arrival_s", FLOAT), ("user", STR), ("skipped", BOOL))),
)
HORIZON = _struct(
    ("anchor", STR), ("h_s", INT), ("due_ms", INT), ("status", STR), ("reason", STR), ("observed_ms", INT),
    ("anchor_mid", DEC), ("mid", DEC), ("move_bps", FLOAT), ("exec_qty", DEC), ("pnl_usdt", DEC),
    ("pnl_bps", FLOAT),
)
OUTCOME = _struct(
    *_same(DEC, "filled_qty", "avg_price", "notional", "fees"), ("maker_share", FLOAT), ("complete", BOOL),
    ("n_fills", INT), ("first_fill_ms", INT), ("last_fill_ms", INT), ("time_to_fill_s", FLOAT),
    ("shortfall_bps", FLOAT),
    ("immediate", _struct(("avg_price", DEC), ("cost_bps", FLOAT), ("levels", INT), ("enough_depth", BOOL))),
    ("saving_bps", FLOAT), ("horizons", pa.list_(HORIZON)),
)

_METADATA = {METADATA_KEY: SCHEMA_ID}
INTENT = pa.schema([
    ("schema", STR), ("id", STR), ("created_ms", INT), ("updated_ms", INT), ("date", STR), ("symbol", STR),
    ("side", STR), ("status", STR), ("state", STATE), ("decision", DECISION), ("rationale", RATIONALE),
    ("outcome", OUTCOME),
], metadata=_METADATA)
ORDER = pa.schema([
    ("client_order_id", STR), ("venue_order_id", INT), ("intent_id", STR), ("symbol", STR), ("side", STR),
    ("order_type", STR), ("tif", STR), ("qty", DEC), ("price", DEC), ("stop_price", DEC), ("reduce_only", BOOL),
    ("close_position", BOOL), ("state", STR), ("filled", DEC), ("avg_price", DEC), ("fees", DEC),
    ("created_ms", INT), ("updated_ms", INT), ("purpose", STR), ("tag", STR), ("reason", STR), ("date", STR),
], metadata=_METADATA)
FILL = pa.schema([
    ("trade_id", INT), ("client_order_id", STR), ("intent_id", STR), ("symbol", STR), ("side", STR),
    ("price", DEC), ("qty", DEC), ("fee", DEC), ("fee_asset", STR), ("maker", BOOL), ("time_ms", INT),
    ("date", STR),
], metadata=_METADATA)
SCHEMAS: dict[str, pa.Schema] = {"intent": INTENT, "order": ORDER, "fill": FILL}


def file_schema(kind: str) -> pa.Schema:
    """The schema of the Parquet files of a record type: the logical one without the partition columns."""
    schema = SCHEMAS[kind]
    for name in PARTITION_COLUMNS:
        schema = schema.remove(schema.get_field_index(name))
    return schema


def partition_schema() -> pa.Schema:
    """The Hive partition columns, both strings (``date=2024-07-18``, ``symbol=BTCUSDT``)."""
    return pa.schema([(name, STR) for name in PARTITION_COLUMNS])


def to_arrow_row(record: Mapping[str, Any], schema: pa.Schema | None = None) -> dict[str, Any]:
    """``record`` (a JSON-style dict) as a row of ``schema`` (default: its ``type``'s logical schema).

    Decimal fields become ``Decimal`` rounded (half-even) to 18 places; maps become key/value pairs; a missing
    field becomes None; keys the schema does not know are dropped. A value of the wrong shape raises DataError
    naming the field, never passes as null."""
    if schema is None:
        kind = record.get("type")
        if kind not in SCHEMAS:
            raise DataError(f"no Parquet schema for a record of type {kind!r}")
        schema = SCHEMAS[kind]
    return {f.name: _convert(record.get(f.name), f.type, f.name) for f in schema}


def from_arrow_row(row: Mapping[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """A row read back from Parquet (``to_pylist``) with its maps as dicts again."""
    return {f.name: _restore(row.get(f.name), f.type) for f in schema if f.name in row}


def _convert(value: Any, typ: pa.DataType, path: str) -> Any:
    if value is None:
        return None
    if pa.types.is_struct(typ):
        if not isinstance(value, Mapping):
            raise DataError(f"{path}: expected an object, got {type(value).__name__}")
        return {f.name: _convert(value.get(f.name), f.type, f"{path}.{f.name}") for f in typ}
    if pa.types.is_map(typ):
        if not isinstance(value, Mapping):
            raise DataError(f"{path}: expected an object (a map), got {type(value).__name__}")
        return [(str(k), _convert(v, typ.item_type, f"{path}[{k}]")) for k, v in value.items()]
    if pa.types.is_list(typ):
        if not isinstance(value, list | tuple):
            raise DataError(f"{path}: expected a list, got {type(value).__name__}")
        return [_convert(v, typ.value_type, f"{path}[]") for v in value]
    return _SCALARS[typ.id](value, path)


def _restore(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_struct(typ):
        return {f.name: _restore(value.get(f.name), f.type) for f in typ}
    if pa.types.is_map(typ):
        return {k: _restore(v, typ.item_type) for k, v in value}
    if pa.types.is_list(typ):
        return [_restore(v, typ.value_type) for v in value]
    return value


def to_decimal(value: Any, path: str = "value") -> Decimal:
    """An exact decimal value (a decimal string, an int or a Decimal; a float by its shortest repr) rounded
    half-even to the 18 places of ``decimal128(38, 18)``; DataError when not a finite number or too large."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise DataError(f"{path}: expected a decimal, got {type(value).__name__}")
    try:
        d = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except decimal.InvalidOperation:
        raise DataError(f"{path}: not a decimal number: {value!r}") from None
    if not d.is_finite():
        raise DataError(f"{path}: not a finite number: {value!r}")
    q = d.quantize(_SCALE, context=_CTX) if d.copy_abs() < _LIMIT else d
    if q.copy_abs() >= _LIMIT:
        raise DataError(f"{path}: {value!r} does not fit decimal128(38, 18)")
    return q


def _int(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value)
    raise DataError(f"{path}: expected an integer, got {value!r}")


def _float(value: Any, path: str) -> float | None:
    """A float; NaN and infinities become null, as in the JSON lines (orjson writes them as null)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise DataError(f"{path}: expected a number, got {type(value).__name__}")
    try:
        f = float(value)
    except ValueError:
        raise DataError(f"{path}: not a number: {value!r}") from None
    return f if math.isfinite(f) else None


def _bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise DataError(f"{path}: expected true or false, got {value!r}")


def _str(value: Any, path: str) -> str:
    if isinstance(value, Mapping | list | tuple):
        raise DataError(f"{path}: expected a string, got {type(value).__name__}")
    return value if isinstance(value, str) else str(value)


_SCALARS = {DEC.id: to_decimal, INT.id: _int, FLOAT.id: _float, BOOL.id: _bool, STR.id: _str}
