"""Check Tapeshot's Grafana boards and alert rules against the metric catalogue: ``python deploy/check_dashboards.py``.

Every board in ``deploy/grafana/dashboards/`` must have unique panel ids, the provisioned Prometheus datasource (by
uid) on every panel and target, a description and a Grafana unit id on every panel, a sane grid position (inside
the 24 columns, no two panels overlapping), and PromQL that names only metrics of ``docs/metrics.md`` with
labels those metrics carry; heatmaps read ``_bucket`` series in Grafana's heatmap format. The alert rules in
``deploy/prometheus/alerts.yml`` are held to the same names and must each carry ``for``, a severity and their
annotations. Exit status 0 when nothing is wrong, 1 otherwise (each problem printed on its own line).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
CATALOGUE = DEPLOY.parent / "docs" / "metrics.md"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "alerts.yml"

GRID_COLUMNS = 24
PANEL_TYPES = {"timeseries", "heatmap", "stat", "gauge", "bargauge", "state-timeline", "table"}
# Grafana's unit ids as used here (packages/grafana-data/src/valueFormats/categories.ts) and its custom forms
UNITS = {"none", "short", "percent", "percentunit", "locale", "ns", "µs", "ms", "s", "m", "h", "d", "dtdurations",
         "cps", "ops", "reqps", "cpm", "opm", "bytes", "decbytes", "currencyUSD"}
CUSTOM_UNIT = re.compile(r"^(suffix|prefix|count|si|currency|time):.+$")
BUILTIN_VARS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
                "__dashboard", "__from", "__to"}
ALWAYS_LABELS = {"job", "instance"}         # added by Prometheus to every scraped series
OTHER_METRICS = {"up": set()}               # Prometheus's own per-target series, usable next to ours
SEVERITIES = {"critical", "warning", "info"}
METRIC_REF = re.compile(r"\b(tapeshot_[a-zA-Z0-9_]+|up)\b(\s*\{([^}]*)\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
VARIABLE = re.compile(r"\$(?:\{([a-zA-Z0-9_]+)(?::[a-z]+)?\}|([a-zA-Z0-9_]+))")


@dataclass(frozen=True)
class Metric:
    """One catalogue entry: its name, kind (histogram, counter, gauge) and label names."""

    name: str
    kind: str
    labels: frozenset[str] = field(default_factory=frozenset)

    def series(self) -> list[str]:
        """The series names Prometheus stores for it."""
        if self.kind == "histogram":
            return [f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"]
        return [self.name]


def load_catalogue(path: Path = CATALOGUE) -> dict[str, Metric]:
    """Every metric of the catalogue, by name: the rows of the tables (``| `tapeshot_name` | `label`, `label` = ...
    | ...``) or the list items (``- tapeshot_name{label,...}``) under its Histograms, Counters and Gauges headings."""
    kind, out = "", {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("## "):
            head = line[3:].lower()
            kind = next((k for k in ("histogram", "counter", "gauge") if head.startswith(k)), "")
            continue
        if not kind:
            continue
        row = re.match(r"^\|\s*`(tapeshot_[a-z0-9_]+)`\s*\|([^|]*(?:\\\|[^|]*)*)\|", line)
        item = re.match(r"^- (tapeshot_[a-z0-9_]+)(?:\{([^}]*)\})?", line)
        if row:
            out[row.group(1)] = Metric(row.group(1), kind, _table_labels(row.group(2)))
        elif item:
            labels = frozenset(s.strip() for s in (item.group(2) or "").split(",") if s.strip())
            out[item.group(1)] = Metric(item.group(1), kind, labels)
    return out


def _table_labels(cell: str) -> frozenset[str]:
    """The label names in a catalogue table's labels cell: the first `name` of each comma-separated part, once
    parenthesised remarks are set aside (``reason`` (`halted`, ...), `level` = `order`\\|`intent`)."""
    cell = re.sub(r"\([^()]*\)", "", cell)
    names = set()
    for part in cell.split(","):
        m = re.search(r"`([^`]*)`", part)
        if m and re.fullmatch(r"[a-z_][a-z0-9_]*", m.group(1)):
            names.add(m.group(1))
    return frozenset(names)


def series_index(catalogue: dict[str, Metric]) -> dict[str, tuple[Metric, set[str]]]:
    """Series name -> (its metric, the labels a selector on it may use)."""
    index: dict[str, tuple[Metric, set[str]]] = {}
    for metric in catalogue.values():
        for name in metric.series():
            labels = set(metric.labels) | ALWAYS_LABELS | ({"le"} if name.endswith("_bucket") else set())
            index[name] = (metric, labels)
    for name, labels in OTHER_METRICS.items():
        index[name] = (Metric(name, "gauge", frozenset(labels)), set(labels) | ALWAYS_LABELS)
    return index


def metric_names(expr: str) -> list[str]:
    """The series names an expression reads (ours and ``up``)."""
    return [m.group(1) for m in METRIC_REF.finditer(_strip_strings(expr))]


def _strip_strings(expr: str) -> str:
    """The expression with the contents of its string literals blanked (so ``"a|b"`` names no metric)."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def check_expr(expr: str, catalogue: dict[str, Metric], where: str) -> list[str]:
    """Problems with one PromQL expression: unknown series, labels a series does not carry, grouping by labels
    none of its series carries."""
    problems, index = [], series_index(catalogue)
    plain = _strip_strings(expr)
    known: set[str] = set()
    refs = list(METRIC_REF.finditer(plain))
    if not refs:
        problems.append(f"{where}: reads no metric: {expr}")
    for ref in refs:
        name = ref.group(1)
        if name not in index:
            problems.append(f"{where}: {name} is not in the catalogue (docs/metrics.md)")
            continue
        labels = index[name][1]
        known |= labels
        for label, _op in MATCHER.findall(ref.group(3) or ""):
            if label not in labels:
                problems.append(f"{where}: {name} has no label {label!r} (it has {sorted(labels)})")
    for group in GROUPING.findall(plain):
        for label in (s.strip() for s in group.split(",")):
            if label and label not in known:
                problems.append(f"{where}: groups by {label!r}, a label none of its metrics carries")
    return problems


def panels_of(board: dict) -> Iterator[dict]:
    """Every panel, those inside collapsed rows too."""
    for p in board.get("panels", []):
        yield p
        yield from p.get("panels", [])


def check_board(board: dict, catalogue: dict[str, Metric], datasource_uid: str) -> list[str]:
    """Problems with one dashboard (an empty list when it is sound)."""
    name = board.get("uid") or board.get("title") or "?"
    problems: list[str] = []
    if not board.get("uid") or not board.get("title"):
        problems.append(f"{name}: the board needs a uid and a title")
    variables = {v.get("name") for v in board.get("templating", {}).get("list", [])}
    for v in board.get("templating", {}).get("list", []):
        ds = v.get("datasource")
        if v.get("type") == "query" and (not isinstance(ds, dict) or ds.get("uid") != datasource_uid):
            problems.append(f"{name}: variable {v.get('name')} must use datasource uid {datasource_uid}")
    ids: set[int] = set()
    boxes: list[tuple[str, dict]] = []
    panels = list(panels_of(board))
    if not panels:
        problems.append(f"{name}: no panels")
    for p in panels:
        where = f"{name} panel {p.get('id')} {p.get('title')!r}"
        pid = p.get("id")
        if not isinstance(pid, int) or pid in ids:
            problems.append(f"{where}: panel id missing or not unique")
        ids.add(pid)
        if p.get("type") == "row":
            continue
        if p.get("type") not in PANEL_TYPES:
            problems.append(f"{where}: panel type {p.get('type')!r} is not one of {sorted(PANEL_TYPES)}")
        if not p.get("title"):
            problems.append(f"{where}: no title")
        if len(str(p.get("description", "")).strip()) < 40:
            problems.append(f"{where}: needs a description (what it shows and what is healthy)")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if not unit or not (unit in UNITS or CUSTOM_UNIT.match(unit)):
            problems.append(f"{where}: fieldConfig.defaults.unit {unit!r} is not a Grafana unit id")
        if (p.get("datasource") or {}).get("uid") != datasource_uid:
            problems.append(f"{where}: datasource must be uid {datasource_uid}")
        problems += _check_grid(where, p.get("gridPos"))
        if isinstance(p.get("gridPos"), dict):
            boxes.append((where, p["gridPos"]))
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no queries")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"{where}: refIds missing or repeated: {refs}")
        for t in targets:
            tw = f"{where} query {t.get('refId')}"
            expr = t.get("expr", "")
            if not expr.strip():
                problems.append(f"{tw}: empty expr")
                continue
            if t.get("datasource") is not None and t["datasource"].get("uid") != datasource_uid:
                problems.append(f"{tw}: datasource must be uid {datasource_uid}")
            problems += check_expr(expr, catalogue, tw)
            for m in VARIABLE.finditer(expr):
                var = m.group(1) or m.group(2)
                if var not in variables and var not in BUILTIN_VARS:
                    problems.append(f"{tw}: ${var} is neither a board variable nor a Grafana one")
            if p.get("type") == "heatmap" and (t.get("format") != "heatmap" or "_bucket" not in expr
                                               or not re.search(r"\bby \(le\)", expr)):
                problems.append(f"{tw}: a heatmap reads _bucket series by le in the heatmap format")
    problems += _overlaps(boxes)
    return problems


def _check_grid(where: str, g: object) -> list[str]:
    """A panel's gridPos: integers, inside the grid."""
    if not isinstance(g, dict) or not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
        return [f"{where}: gridPos needs integer x, y, w, h"]
    if g["x"] < 0 or g["y"] < 0 or g["w"] < 1 or g["h"] < 1 or g["x"] + g["w"] > GRID_COLUMNS:
        return [f"{where}: gridPos {g} is outside the {GRID_COLUMNS}-column grid"]
    return []


def _overlaps(boxes: list[tuple[str, dict]]) -> list[str]:
    """Every pair of panels whose boxes intersect."""
    out = []
    for i, (wa, a) in enumerate(boxes):
        for wb, b in boxes[i + 1:]:
            if (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                    and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]):
                out.append(f"{wa} overlaps {wb}")
    return out


def check_rules(rules: dict, catalogue: dict[str, Metric]) -> list[str]:
    """Problems with the alert rules: names outside the catalogue, and each alert's for, severity and
    annotations (summary, description, runbook)."""
    problems = []
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record") or "?"
            problems += check_expr(str(rule.get("expr", "")), catalogue, f"rule {name}")
            if "alert" not in rule:
                continue
            if "for" not in rule:
                problems.append(f"rule {name}: no for:")
            if rule.get("labels", {}).get("severity") not in SEVERITIES:
                problems.append(f"rule {name}: severity label must be one of {sorted(SEVERITIES)}")
            missing = {"summary", "description", "runbook"} - set(rule.get("annotations", {}))
            if missing:
                problems.append(f"rule {name}: annotations missing {sorted(missing)}")
    return problems


def provisioned_uid(path: Path = DATASOURCES) -> str:
    """The uid of the provisioned Prometheus datasource."""
    sources = yaml.safe_load(Path(path).read_text())["datasources"]
    return next(s["uid"] for s in sources if s["type"] == "prometheus")


def boards(directory: Path = DASHBOARDS) -> dict[str, dict]:
    """Every board file in the provisioned directory, by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))}


def check_all(directory: Path = DASHBOARDS, catalogue_path: Path = CATALOGUE, rules_path: Path | None = RULES,
              datasources: Path = DATASOURCES) -> list[str]:
    """Every problem with every board (and the alert rules, unless ``rules_path`` is None)."""
    catalogue, uid = load_catalogue(catalogue_path), provisioned_uid(datasources)
    found = boards(directory)
    problems = [] if found else [f"{directory}: no boards"]
    uids: dict[str, str] = {}
    for fname, board in found.items():
        problems += [f"{fname}: {p}" for p in check_board(board, catalogue, uid)]
        if board.get("uid") in uids:
            problems.append(f"{fname}: uid {board.get('uid')} is also {uids[board['uid']]}'s")
        uids[board.get("uid")] = fname
    if rules_path is not None:
        problems += check_rules(yaml.safe_load(Path(rules_path).read_text()), catalogue)
    return problems


def main(argv: Iterable[str] | None = None) -> int:
    """Print every problem; 0 when there are none."""
    args = list(sys.argv[1:] if argv is None else argv)
    directory = Path(args[0]) if args else DASHBOARDS
    problems = check_all(directory)
    for p in problems:
        print(p)
    n = len(boards(directory))
    print(f"{n} board(s), {sum(len(list(panels_of(b))) for b in boards(directory).values())} panels: "
          + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
