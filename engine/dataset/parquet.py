"""``tapeshot journal export --format parquet``: the decision dataset as Hive-partitioned Parquet.

``OUT/intents/date=YYYY-MM-DD/symbol=SYM/part-0.parquet``, the same under ``orders/`` and ``fills/``, and a small
marker ``OUT/_tapeshot.json`` (the schema id and the row counts) that identifies a Tapeshot dataset. ``date`` and
``symbol`` are partition columns only: they live in the paths, not inside the files (the Hive convention, so
Spark, DuckDB and pyarrow never see the column twice); readers restore them from the paths
(``hive_partitioning = true``, ``partitioning="hive"``). Every file carries the schema id in its metadata
(``tapeshot.schema``). Decision records are JSON-lines only.

The dataset is written into a temporary directory beside ``OUT`` and renamed into place at the end, so a failed
export never leaves half a dataset. An ``OUT`` that exists and is not empty is refused, unless it is a previous
Tapeshot dataset and ``overwrite`` is set.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from engine.dataset.schema import (
    KINDS,
    SCHEMA_ID,
    SCHEMA_NAME,
    SCHEMAS,
    file_schema,
    from_arrow_row,
    partition_schema,
    to_arrow_row,
)
from engine.dataset.select import select, snapshot
from engine.errors import ConfigError, DataError

MARKER = "_tapeshot.json"
DIRS = {"intent": "intents", "order": "orders", "fill": "fills"}
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"        # the Hive spelling of a null partition value (read back as null)
ROWS_PER_GROUP = {"intent": 128, "order": 1000, "fill": 1000}   # rows per row group, per record type
MAX_BUFFERED = 2000                             # rows buffered over all partitions before every buffer is written
MAX_OPEN_FILES = 32                             # open Parquet writers; the least recently used is closed beyond
_OWN_TIME = {"intent": "created_ms", "order": "created_ms", "fill": "time_ms"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def export_parquet(journal_path: str | Path, out_dir: str | Path, since_ms: int | None = None,
                   until_ms: int | None = None, symbol: str | None = None, *, overwrite: bool = False
                   ) -> dict[str, int]:
    """The journal at ``journal_path`` (read-only, one consistent snapshot) as a Parquet dataset in ``out_dir``,
    filtered as ``engine.dataset.select.select``; returns the rows written per record type."""
    out = Path(out_dir).expanduser()
    check_target(out, overwrite)
    with snapshot(journal_path) as recs:
        return write_parquet(select(recs, since_ms, until_ms, symbol, decisions=False), out, overwrite=overwrite)


def write_parquet(records: Iterable[dict[str, Any]], out_dir: str | Path, *, overwrite: bool = False
                  ) -> dict[str, int]:
    """``records`` (JSON-style dicts with a ``type``) as a Hive-partitioned dataset in ``out_dir``, written aside
    and renamed into place; decision records are skipped, an intent of another schema than ``tapeshot.dataset/2``
    is refused (DataError). Returns the rows written per record type."""
    out = Path(out_dir).expanduser()
    check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        counts = _write_all(records, tmp)
        (tmp / MARKER).write_bytes(orjson.dumps({"schema": SCHEMA_ID, "partitioning": "hive",
                                                 "partition_columns": ["date", "symbol"], "counts": counts}))
        _swap_in(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def read_dataset(path: str | Path, kind: str = "intent", *, without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The records of one type of the dataset at ``path`` (its root, or its ``intents/`` directory for intents),
    as dicts like the JSON lines' (``type`` and the partition columns included; decimals as ``Decimal``, maps as
    dicts), by time. ``without``: top-level columns not read at all (e.g. the bulky ``state``)."""
    root = Path(path).expanduser()
    where = root / DIRS[kind] if (root / DIRS[kind]).is_dir() else root
    if not where.is_dir() or (where == root and not any(where.glob("date=*"))):
        raise ConfigError(f"no Tapeshot dataset at {root} (no {DIRS[kind]}/ directory)")
    schema = pa.unify_schemas([file_schema(kind), partition_schema()])
    dataset = ds.dataset(where, schema=schema, format="parquet",
                         partitioning=ds.partitioning(partition_schema(), flavor="hive"))
    columns = [n for n in schema.names if n not in without]
    rows = [{"type": kind, **from_arrow_row(r, SCHEMAS[kind])} for r in dataset.to_table(columns=columns).to_pylist()]
    key = _OWN_TIME[kind]
    rows.sort(key=lambda r: (r.get(key) is None, r.get(key) or 0))
    return rows


def read_intents(path: str | Path, *, without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The intent records of the dataset at ``path`` (see ``read_dataset``), by ``created_ms``."""
    return read_dataset(path, "intent", without=without)


def is_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a directory this module wrote: its marker names the schema, and it holds nothing else
    than the marker and the record types' directories."""
    p = Path(path).expanduser()
    try:
        marker = orjson.loads((p / MARKER).read_bytes())
        names = {e.name for e in p.iterdir()}
    except (OSError, orjson.JSONDecodeError):
        return False
    return (isinstance(marker, dict) and str(marker.get("schema", "")).startswith(SCHEMA_NAME + "/")
            and names <= {MARKER, *DIRS.values()})


def check_target(out: Path, overwrite: bool) -> None:
    """ConfigError unless ``out`` is free: absent, an empty directory, or (with ``overwrite``) a previous
    Tapeshot dataset."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory: the Parquet export writes a directory")
    if not any(out.iterdir()):
        return
    if not is_dataset(out):
        raise ConfigError(f"{out} exists and is not empty (and is not a Tapeshot dataset): choose another --out")
    if not overwrite:
        raise ConfigError(f"{out} holds a previous Tapeshot dataset: --overwrite replaces it")


def _swap_in(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished dataset ``tmp`` to ``out``, replacing an empty directory or an old dataset there."""
    check_target(out, overwrite)                         # again: it may have changed while we wrote
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, old / "dataset")
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old / "dataset", out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _write_all(records: Iterable[dict[str, Any]], root: Path) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    for kind in KINDS:
        (root / DIRS[kind]).mkdir()
    with _Partitions(root) as parts:
        for rec in records:
            kind = rec.get("type")
            if kind == "decision":
                continue
            if kind not in DIRS:
                raise DataError(f"a record of unknown type {kind!r} (expected intent, order, fill or decision)")
            if kind == "intent" and rec.get("schema") != SCHEMA_ID:
                raise DataError(f"intent {rec.get('id')}: schema {rec.get('schema')!r}, not {SCHEMA_ID}: the Parquet "
                                "dataset holds only records of its own schema")
            parts.add(kind, _partition(rec, kind), to_arrow_row(rec, file_schema(kind)))
            counts[kind] += 1
    return counts


def _partition(rec: dict[str, Any], kind: str) -> tuple[str, str]:
    """``(date, symbol)`` of a record as path values: its ``date`` (else the UTC date of its own time) and its
    ``symbol``; a null one as ``__HIVE_DEFAULT_PARTITION__``."""
    date = rec.get("date")
    t = rec.get(_OWN_TIME[kind])
    if date is None and isinstance(t, int) and not isinstance(t, bool):
        date = (_EPOCH + timedelta(milliseconds=t)).date().isoformat()
    symbol = rec.get("symbol")
    if date is not None and not _DATE.fullmatch(str(date)):
        raise DataError(f"{kind} {_key(rec, kind)}: bad date {date!r} (expected YYYY-MM-DD)")
    if symbol is not None and (not _SAFE.fullmatch(str(symbol)) or str(symbol) == HIVE_NULL):
        raise DataError(f"{kind} {_key(rec, kind)}: symbol {symbol!r} cannot name a partition")
    return (HIVE_NULL if date is None else str(date)), (HIVE_NULL if symbol is None else str(symbol))


def _key(rec: dict[str, Any], kind: str) -> Any:
    return rec.get({"intent": "id", "order": "client_order_id", "fill": "trade_id"}[kind])


class _Partitions:
    """One Parquet writer per partition, rows buffered into row groups of ``ROWS_PER_GROUP``. At most
    ``MAX_OPEN_FILES`` files are open: beyond, the least recently used is closed, and its partition's next rows
    go to a new ``part-N.parquet`` (sorted input, as the journal export yields it, makes that rare)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.buffers: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.writers: OrderedDict[tuple[str, str, str], pq.ParquetWriter] = OrderedDict()
        self.parts: dict[tuple[str, str, str], int] = {}
        self.buffered = 0

    def __enter__(self) -> _Partitions:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                for key in list(self.buffers):
                    self._flush(key)
        finally:
            for writer in self.writers.values():
                writer.close()
            self.writers.clear()

    def add(self, kind: str, partition: tuple[str, str], row: dict[str, Any]) -> None:
        """Buffer ``row`` for its partition; write a row group when the buffer is full."""
        key = (kind, *partition)
        rows = self.buffers.setdefault(key, [])
        rows.append(row)
        self.buffered += 1
        if len(rows) >= ROWS_PER_GROUP[kind]:
            self._flush(key)
        if self.buffered >= MAX_BUFFERED:           # many small partitions: memory stays bounded all the same
            for k in list(self.buffers):
                self._flush(k)

    def _flush(self, key: tuple[str, str, str]) -> None:
        rows = self.buffers.pop(key, None)
        if not rows:
            return
        self.buffered -= len(rows)
        schema = file_schema(key[0])
        self._writer(key, schema).write_table(pa.Table.from_pylist(rows, schema=schema))

    def _writer(self, key: tuple[str, str, str], schema: pa.Schema) -> pq.ParquetWriter:
        if key in self.writers:
            self.writers.move_to_end(key)
            return self.writers[key]
        while len(self.writers) >= MAX_OPEN_FILES:
            self.writers.popitem(last=False)[1].close()
        kind, date, symbol = key
        part = self.parts.get(key, -1) + 1
        self.parts[key] = part
        folder = self.root / DIRS[kind] / f"date={date}" / f"symbol={symbol}"
        folder.mkdir(parents=True, exist_ok=True)
        writer = pq.ParquetWriter(folder / f"part-{part}.parquet", schema, compression="zstd")
        self.writers[key] = writer
        return writer
