"""The Parquet side of ``tapeshot journal export``: the ``tapeshot.dataset/2`` schema against docs/dataset.md, the
Hive-partitioned dataset read back by pyarrow and DuckDB, the export filters, and the refuse-to-clobber rule."""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from engine.cli import main
from engine.dataset import parquet as pqmod
from engine.dataset import select as selmod
from engine.dataset.parquet import MARKER, is_dataset, read_dataset, read_intents, write_parquet
from engine.dataset.schema import (
    DEC,
    INTENT,
    METADATA_KEY,
    SCHEMA_ID,
    SCHEMAS,
    file_schema,
    from_arrow_row,
    partition_schema,
    to_arrow_row,
    to_decimal,
)
from engine.dataset.select import parse_range, parse_time, select
from engine.errors import ConfigError, DataError
from tests.unit.dataset_fixtures import DAY_MS, T0, make_decision, make_fill, make_intent, make_order, make_records

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dataset.md"
DIRS = {"intent": "intents", "order": "orders", "fill": "fills"}
TWO = [make_intent("i1", T0 + 1000), make_intent("i2", T0 + DAY_MS, "ETHUSDT", "SELL", nulls=True)]


# --- the schema against the docs ---------------------------------------------------------------------------------

_SECTIONS = {"## The intent record": "", "### `state`": "state", "### `decision`": "decision",
             "### `rationale`": "rationale", "### `outcome`": "outcome", "A **horizon row**": "outcome.horizons"}
_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "decimal": DEC, "bool": pa.bool_(),
          "list of string": pa.list_(pa.string()), "map string -> float": pa.map_(pa.string(), pa.float64())}


def _doc_intent_fields() -> dict[str, str]:
    """Every ``| field |`` table row of the intent record's sections as ``dotted.path -> type text``; list and
    struct element fields (``{`a`, `b`}``) expanded as children (type text "")."""
    fields: dict[str, str] = {}
    prefix = None
    for line in DOCS.read_text().splitlines():
        head = next((p for h, p in _SECTIONS.items() if line.startswith(h)), None)
        if head is not None:
            prefix = head
        elif line.startswith("## "):
            prefix = None
        if prefix is None or not line.startswith("| `"):
            continue
        name_cell, type_cell = (c.strip() for c in line.strip("|").split("|")[:2])
        names = re.findall(r"`([^`]+)`", name_cell)
        types = [t.strip() for t in type_cell.split(",")] if "{" not in type_cell else [type_cell]
        for i, name in enumerate(names):
            path = f"{prefix}.{name}" if prefix else name
            fields[path] = types[i] if len(types) == len(names) else types[0]
            for child in re.findall(r"`([^`]+)`", type_cell[type_cell.find("{"):]) if "{" in type_cell else ():
                fields.setdefault(f"{path}.{child}", "")
    return fields


def _doc_prose_fields(heading: str) -> set[str]:
    """The fields of a prose record section (order, fill): its backticked names outside parentheses."""
    text = DOCS.read_text()
    body = text[text.index(heading):].split("\n", 1)[1].strip().split("\n\n", 1)[0]
    return set(re.findall(r"`([^`]+)`", re.sub(r"\([^()]*\)", "", body.replace("\n", " "))))


def _sql(query: str):
    return duckdb.connect().execute(query)


def _with_ancestors(paths) -> set[str]:
    return {".".join(p.split(".")[:i]) for p in paths for i in range(1, p.count(".") + 2)}


def _flatten(fields, prefix: str = "") -> dict[str, pa.DataType]:
    out: dict[str, pa.DataType] = {}
    for f in fields:
        path, typ = prefix + f.name, f.type
        out[path] = typ
        inner = typ.value_type if pa.types.is_list(typ) else typ
        if pa.types.is_struct(inner):
            out.update(_flatten(inner, path + "."))
    return out


def test_intent_schema_has_exactly_the_documented_fields():
    docs = _with_ancestors(_doc_intent_fields())
    code = set(_flatten(INTENT))
    assert docs - code == set(), "documented but not in the Arrow schema"
    assert code - docs == set(), "in the Arrow schema but not documented"


@pytest.mark.parametrize("kind,heading", [("order", "## The order record"), ("fill", "## The fill record")])
def test_order_and_fill_schemas_have_exactly_the_documented_fields(kind, heading):
    assert set(SCHEMAS[kind].names) == _doc_prose_fields(heading)


def test_intent_field_types_are_the_documented_ones():
    code = _flatten(INTENT)
    checked = 0
    for path, text in _doc_intent_fields().items():
        base = text.removesuffix(" or null")
        if base in _TYPES:
            assert code[path] == _TYPES[base], path
            checked += 1
        elif base.startswith("list of"):
            assert pa.types.is_list(code[path]), path
        elif base.startswith("{") or base == "struct":
            assert pa.types.is_struct(code[path]), path
    assert checked >= 90


def test_schema_name_version_and_file_schemas():
    for schema in SCHEMAS.values():
        assert schema.metadata == {METADATA_KEY.encode(): b"tapeshot.dataset/2"}
        assert all(f.nullable for f in schema)
    assert SCHEMA_ID == "tapeshot.dataset/2"
    for kind in SCHEMAS:
        assert "date" not in file_schema(kind).names and "symbol" not in file_schema(kind).names
        assert file_schema(kind).metadata == SCHEMAS[kind].metadata


# --- conversion --------------------------------------------------------------------------------------------------

def test_to_arrow_row_converts_drops_unknown_keys_and_nulls_missing_ones():
    rec = make_intent("i1", T0, "ETHUSDT", "SELL")
    rec["extra"] = {"anything": 1}
    del rec["status"]
    rec["state"]["tape"].pop("vwap")
    row = to_arrow_row(rec)
    assert "extra" not in row and "type" not in row and row["status"] is None
    assert row["state"]["tape"]["vwap"] is None
    assert row["state"]["mid"] == Decimal("3400.05") and str(row["state"]["mid"]).endswith("0" * 16)
    assert row["state"]["signals"] == [("ofi_5s", 0.5), ("imbalance", 0.125), ("micro_bps", -0.75)]
    assert from_arrow_row(row, INTENT)["state"]["signals"] == rec["state"]["signals"]
    assert pa.Table.from_pylist([row], schema=INTENT).num_rows == 1


def test_decimals_are_exact_to_18_places_and_refused_beyond_decimal128():
    assert to_decimal("0.000000000000000001") == Decimal("1e-18")
    assert to_decimal("1.0000000000000000005") == Decimal(1)                 # half-even below the 18th place
    assert to_decimal("99999999999999999999.999999999999999999") == Decimal("99999999999999999999.999999999999999999")
    assert to_decimal(5) == Decimal(5)
    for bad in ("1e20", "NaN", "Infinity", "12,5", True, [1]):
        with pytest.raises(DataError):
            to_decimal(bad, "outcome.fees")


@pytest.mark.parametrize("path,value", [("created_ms", "soon"), ("state", "a string"), ("state.signals", [1]),
                                        ("outcome.horizons", {"not": "a list"}), ("outcome.complete", "yes"),
                                        ("state.spread_bps", True), ("decision.notes", "one note")])
def test_wrong_shapes_raise_naming_the_field(path, value):
    rec = make_intent("i1", T0)
    *parents, leaf = path.split(".")
    node = rec
    for p in parents:
        node = node[p]
    node[leaf] = value
    with pytest.raises(DataError, match=re.escape(path)):
        to_arrow_row(rec)


def test_nan_floats_become_null_and_integral_floats_ints():
    rec = make_intent("i1", T0)
    rec["state"]["spread_bps"] = float("nan")
    rec["created_ms"] = float(T0)
    row = to_arrow_row(rec)
    assert row["state"]["spread_bps"] is None and row["created_ms"] == T0 and isinstance(row["created_ms"], int)


# --- the dataset: written, read back by pyarrow and DuckDB --------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "ds"
    assert write_parquet(make_records(), out) == {"intent": 6, "order": 7, "fill": 6}
    return out


def _expected(kind: str) -> list[dict]:
    return [{"type": kind, **from_arrow_row(to_arrow_row(r), SCHEMAS[kind])} for r in make_records()
            if r["type"] == kind]


def test_layout_marker_and_file_metadata(dataset):
    files = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*.parquet"))
    assert "intents/date=2024-07-18/symbol=BTCUSDT/part-0.parquet" in files
    assert "fills/date=2024-07-19/symbol=BTCUSDT/part-0.parquet" in files          # the stop-loss fill
    assert len([f for f in files if f.startswith("intents/")]) == 6
    assert orjson.loads((dataset / MARKER).read_bytes())["schema"] == SCHEMA_ID and is_dataset(dataset)
    for f in dataset.rglob("*.parquet"):
        kind = {v: k for k, v in DIRS.items()}[f.relative_to(dataset).parts[0]]
        schema = pq.read_schema(f)
        assert schema.metadata[METADATA_KEY.encode()] == SCHEMA_ID.encode()
        assert schema.remove_metadata() == file_schema(kind).remove_metadata()    # no date / symbol inside


@pytest.mark.parametrize("kind", ["intent", "order", "fill"])
def test_round_trip_every_field_typed_and_equal(dataset, kind):
    got = read_dataset(dataset, kind)
    want = _expected(kind)
    key = {"intent": "id", "order": "client_order_id", "fill": "trade_id"}[kind]
    assert sorted(got, key=lambda r: r[key]) == sorted(want, key=lambda r: r[key])
    table = ds.dataset(dataset / DIRS[kind], partitioning="hive").to_table()
    for field in SCHEMAS[kind]:
        assert table.schema.field(field.name).type == field.type, field.name


def test_decimals_and_nulls_survive_exactly(dataset):
    by_id = {r["id"]: r for r in read_intents(dataset)}
    assert [r["id"] for r in read_intents(dataset)] == ["i1", "i2", "i3", "i4", "i5", "i6"]
    i1, i2, i4 = by_id["i1"], by_id["i2"], by_id["i4"]
    assert i1["state"]["mark"]["funding_rate"] == Decimal("0.0001") and i1["date"] == "2024-07-18"
    assert i1["outcome"]["horizons"][0]["pnl_usdt"] == Decimal("0.010") * Decimal("0.1") - Decimal("0.0128")
    assert i1["state"]["context"] is None and i2["state"]["context"]["signals"] == {"ofi_5s": 0.25,
                                                                                    "imbalance": -0.1}
    assert i2["state"]["mark"]["mark_price"] is None and i2["state"]["tape"]["vwap"] is None
    assert i2["state"]["trades"] == [] and i2["rationale"]["entries"] == [] and i2["decision"]["limit"] is None
    assert i4["outcome"]["avg_price"] is None and i4["outcome"]["horizons"][9]["status"] == "n/a"
    assert i4["outcome"]["horizons"][9]["due_ms"] is None and len(i4["outcome"]["horizons"]) == 10


def test_the_docs_duckdb_example_runs_and_gives_the_right_numbers(dataset):
    sql = re.search(r"```sql\n(.*?)```", DOCS.read_text(), re.S).group(1)
    sql = sql.replace("'ds/", f"'{dataset.as_posix()}/")
    got = {sym: (n, avg) for sym, n, avg in _sql(sql).fetchall()}
    want: dict[str, list[float]] = {}
    for r in _expected("intent"):
        for h in r["outcome"]["horizons"]:
            if h["anchor"] == "arrival" and h["h_s"] == 60 and h["status"] == "observed":
                want.setdefault(r["symbol"], []).append(h["move_bps"])
    assert set(got) == {"BTCUSDT", "ETHUSDT"}
    for sym, moves in want.items():
        assert got[sym][0] == len(moves) and got[sym][1] == pytest.approx(sum(moves) / len(moves), rel=1e-12)


def test_duckdb_reads_decimals_exactly_and_sees_each_column_once(dataset):
    glob = f"{dataset.as_posix()}/fills/**/*.parquet"
    cols = [r[0] for r in _sql(f"DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
            .fetchall()]
    assert cols == [*file_schema("fill").names, "date", "symbol"]
    fees = _sql(f"SELECT sum(fee) FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()[0][0]
    assert fees == Decimal("0.0128") * 6


def test_partition_pruning_by_date_and_symbol(dataset, tmp_path):
    out = Path(shutil.copytree(dataset, tmp_path / "ds"))
    _first, *others = sorted((out / "intents").rglob("*.parquet"))   # the first one: the readers' schema sample
    for f in others:                                                  # every other partition but one unreadable
        if "date=2024-07-19/symbol=ETHUSDT" not in f.as_posix():
            f.write_bytes(b"not parquet")
    glob = f"{(out / 'intents').as_posix()}/**/*.parquet"
    rows = _sql(f"SELECT id, date, symbol FROM read_parquet('{glob}', hive_partitioning = true) "
                      "WHERE date = '2024-07-19' AND symbol = 'ETHUSDT'").fetchall()
    assert [(i, str(d), s) for i, d, s in rows] == [("i4", "2024-07-19", "ETHUSDT")]
    dset = ds.dataset(out / "intents", format="parquet", partitioning=ds.partitioning(partition_schema(),
                                                                                      flavor="hive"))
    table = dset.to_table(columns=["id"], filter=(ds.field("date") == "2024-07-19") & (ds.field("symbol") ==
                                                                                        "ETHUSDT"))
    assert table.column("id").to_pylist() == ["i4"]


def test_many_partitions_roll_over_to_new_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(pqmod, "MAX_OPEN_FILES", 1)
    monkeypatch.setattr(pqmod, "ROWS_PER_GROUP", {"intent": 1, "order": 1, "fill": 1})
    recs = [make_intent(f"i{n}", T0 + n, ("BTCUSDT", "ETHUSDT")[n % 2]) for n in range(6)]
    write_parquet(recs, tmp_path / "ds")
    parts = sorted(p.name for p in (tmp_path / "ds/intents/date=2024-07-18/symbol=BTCUSDT").iterdir())
    assert parts == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    assert [r["id"] for r in read_intents(tmp_path / "ds")] == [f"i{n}" for n in range(6)]


def test_many_small_partitions_never_buffer_more_than_the_bound(tmp_path, monkeypatch):
    """A year of days and symbols, each with a few intents: the buffers are written once the bound is hit, so
    memory stays bounded, and every row is still read back."""
    monkeypatch.setattr(pqmod, "MAX_BUFFERED", 5)
    seen: list[int] = []
    real_flush = pqmod._Partitions._flush

    def flush(self, key):
        seen.append(self.buffered)
        real_flush(self, key)

    monkeypatch.setattr(pqmod._Partitions, "_flush", flush)
    recs = [make_intent(f"i{n:03d}", T0 + n * 86_400_000, ("BTCUSDT", "ETHUSDT")[n % 2]) for n in range(23)]
    write_parquet(recs, tmp_path / "ds")
    assert max(seen) <= 5
    assert [r["id"] for r in read_intents(tmp_path / "ds")] == [f"i{n:03d}" for n in range(23)]
    assert all("state" not in r for r in read_intents(tmp_path / "ds", without=("state",)))


def test_decisions_are_skipped_unknown_types_refused_and_empty_exports_readable(tmp_path):
    assert write_parquet([make_decision(1, None, T0)], tmp_path / "a") == {"intent": 0, "order": 0, "fill": 0}
    assert read_intents(tmp_path / "a") == []
    with pytest.raises(DataError, match="unknown type"):
        write_parquet([{"type": "trade"}], tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_intents_of_another_schema_are_refused(tmp_path):
    rec = {**make_intent("i1", T0), "schema": None, "qty": "0.010"}                  # a v1 line, say
    with pytest.raises(DataError, match=re.escape("i1: schema None, not tapeshot.dataset/2")):
        write_parquet([rec], tmp_path / "ds")


def test_null_partition_values_read_back_as_null(tmp_path):
    intent = {**make_intent("i1", T0), "symbol": None}
    order = {**make_order("o-1", None, T0), "date": None, "created_ms": None}
    write_parquet([intent, order], tmp_path / "ds")
    assert read_intents(tmp_path / "ds")[0]["symbol"] is None
    assert read_dataset(tmp_path / "ds", "order")[0]["date"] is None
    glob = f"{(tmp_path / 'ds/orders').as_posix()}/**/*.parquet"
    assert _sql(f"SELECT date, symbol FROM read_parquet('{glob}', hive_partitioning = true)").fetchall() == [
        (None, "BTCUSDT")]


def test_unsafe_symbols_never_name_a_path(tmp_path):
    rec = make_intent("i1", T0)
    rec["symbol"] = "../../etc"
    with pytest.raises(DataError, match="cannot name a partition"):
        write_parquet([rec], tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


# --- the target directory: never clobbered, never half-written ----------------------------------------------------

def test_refuses_a_non_empty_directory_and_a_file(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        write_parquet(make_records(), tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        write_parquet(make_records(), tmp_path / "file")
    (tmp_path / "empty").mkdir()
    assert write_parquet(TWO, tmp_path / "empty")["intent"] == 2


def test_a_previous_dataset_is_replaced_only_with_overwrite(tmp_path):
    out = tmp_path / "ds"
    write_parquet(TWO, out)
    with pytest.raises(ConfigError, match="--overwrite"):
        write_parquet([make_intent("i9", T0)], out)
    assert len(read_intents(out)) == 2
    assert write_parquet([make_intent("i9", T0)], out, overwrite=True)["intent"] == 1
    assert [r["id"] for r in read_intents(out)] == ["i9"]
    (out / "stray.txt").write_text("not ours")
    assert not is_dataset(out)
    with pytest.raises(ConfigError, match="not empty"):
        write_parquet([], out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]                 # no temp directory left


def test_a_failed_export_leaves_no_half_dataset(tmp_path):
    def failing():
        yield from [*TWO, make_order("i1-1", "i1", T0 + 4)]
        raise RuntimeError("journal went away")

    with pytest.raises(RuntimeError):
        write_parquet(failing(), tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []
    write_parquet(TWO[:1], tmp_path / "ds")
    with pytest.raises(RuntimeError):
        write_parquet(failing(), tmp_path / "ds", overwrite=True)
    assert len(read_intents(tmp_path / "ds")) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# --- filters -------------------------------------------------------------------------------------------------------

def _ids(recs) -> dict[str, list]:
    out: dict[str, list] = {"intent": [], "order": [], "fill": [], "decision": []}
    for r in recs:
        out[r["type"]].append(r.get("id") or r.get("client_order_id") if r["type"] in ("intent", "order")
                              else r.get("trade_id") if r["type"] == "fill" else r["seq"])
    return out


def test_select_by_time_symbol_and_following_the_intent():
    day2, day3 = T0 + DAY_MS, T0 + 2 * DAY_MS
    got = _ids(select(make_records(), day2, day3))
    assert got == {"intent": ["i3", "i4"], "order": ["i3-1", "i4-1", "sl-1"], "fill": [5002, 6000],
                   "decision": [3, 4, 99]}
    got = _ids(select(make_records(), symbol="ethusdt"))
    assert got == {"intent": ["i2", "i4", "i6"], "order": ["i2-1", "i4-1", "i6-1"], "fill": [5001, 5005],
                   "decision": [2, 4, 6, 99]}                # the kill decision names no symbol
    got = _ids(select(make_records(), since_ms=day3, symbol="BTCUSDT", decisions=False))
    assert got == {"intent": ["i5"], "order": ["i5-1"], "fill": [5004], "decision": []}
    assert _ids(select(make_records(), until_ms=T0 + 1000)) == {"intent": [], "order": [], "fill": [],
                                                                "decision": []}


def test_select_an_order_follows_its_intent_even_across_the_bounds():
    recs = [make_intent("i1", T0 + 1000), make_order("i1-1", "i1", T0 + DAY_MS),
            make_fill(1, "i1-1", "i1", T0 + 2 * DAY_MS), make_order("x-1", "gone", T0 + 5, "ETHUSDT"),
            {**make_order("sl-1", None, T0), "created_ms": None}]
    assert _ids(select(recs, T0, T0 + 2000)) == {"intent": ["i1"], "order": ["i1-1", "x-1"], "fill": [1],
                                                 "decision": []}
    assert _ids(select(recs))["order"] == ["i1-1", "x-1", "sl-1"]          # no bound: a record with no time stays


@pytest.mark.parametrize("text,ms", [("2024-07-18", T0), ("2024-07-18T00:00:00", T0), ("2024-07-18T00:00:00Z", T0),
                                     ("2024-07-18 02:00:00.250+02:00", T0 + 250), (str(T0), T0), (" 0 ", 0),
                                     ("2024-07-19T00:00:00.0005", T0 + DAY_MS)])
def test_parse_time(text, ms):
    assert parse_time(text) == ms


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "", "1.5e12", "-5", "18/07/2024", "2024-07-18T25:00"])
def test_parse_time_names_the_bad_value(text):
    with pytest.raises(ConfigError, match=re.escape(repr(text))):
        parse_time(text)


def test_parse_range():
    assert parse_range(None, None) == (None, None)
    assert parse_range("2024-07-18", "2024-07-19") == (T0, T0 + DAY_MS)
    with pytest.raises(ConfigError, match="not before"):
        parse_range("2024-07-19", "2024-07-18")


# --- the command line (records() faked: the real journal is the lead's test) -----------------------------------

class _FakeConn:
    def execute(self, sql: str) -> None:
        assert sql in ("BEGIN", "COMMIT")

    def close(self) -> None:
        pass


@pytest.fixture
def journal(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(selmod, "connect_ro", lambda path: _FakeConn())
    monkeypatch.setattr(selmod, "records", lambda conn, decisions=False: iter(
        [r for r in make_records() if decisions or r["type"] != "decision"]))
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"")
    return path


def test_cli_export_parquet_with_filters(journal, tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["journal", "export", "--format", "parquet", "--path", str(journal), "--out", str(out)]
    assert main([*args, "--since", "2024-07-19", "--symbol", "btcusdt"]) == 0
    assert "exported 2 intents, 3 orders, 3 fills from" in capsys.readouterr().err
    assert [r["id"] for r in read_intents(out)] == ["i3", "i5"]
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0 and len(read_intents(out)) == 6
    assert main(args[:-2]) == 2 and "--out" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--decisions"]) == 2
    assert main([*args, "--overwrite", "--since", "tomorrow"]) == 2 and "'tomorrow'" in capsys.readouterr().err


def test_cli_export_jsonl_with_filters_and_decisions(journal, tmp_path, capsys):
    base = ["journal", "export", "--path", str(journal)]
    assert main([*base, "--until", str(T0 + DAY_MS)]) == 0
    out = capsys.readouterr()
    assert [r["type"] for r in map(orjson.loads, out.out.splitlines())].count("decision") == 0
    assert "exported 2 intents, 2 orders, 2 fills from" in out.err
    dest = tmp_path / "x.jsonl"
    assert main([*base, "--symbol", "ETHUSDT", "--decisions", "--out", str(dest)]) == 0
    rows = [orjson.loads(line) for line in dest.read_text().splitlines()]
    assert [r["type"] for r in rows].count("decision") == 4 and {r.get("symbol") for r in rows} == {"ETHUSDT", None}
    assert "4 decisions" in capsys.readouterr().err

