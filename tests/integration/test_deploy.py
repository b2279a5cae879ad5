"""deploy/ for real: the boards, rules and Alertmanager config checked by their own tools, then one scenario.

The scenario: the engine trades on its sim venue (intents filled, refused, rejected by the venue, TP/SL placed and
taken off, the kill switch tripped) while a real Prometheus scrapes it with deploy's alert rules and a real
Alertmanager, configured from deploy's file, routes what fires to a webhook receiver in this test. Then every
query of every panel of the three boards is evaluated through Prometheus's HTTP API and must return data of the
right shape, every alert expression must evaluate, the kill must have reached the receivers the routing names,
and the engine must expose the whole metric catalogue (docs/metrics.md).

Debian's ``prometheus`` and ``prometheus-alertmanager`` provide the binaries (.ci/run installs both); without them
these tests skip, except under CI=true, where they fail. Docker is not needed: the compose file, Dockerfile and
systemd units are checked for structure and for agreeing with each other.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import importlib.util
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from engine.config import Config, EngineConfig, VenueConfig
from engine.errors import TapeshotError
from engine.loop import run
from engine.metrics import serve_metrics
from engine.node import Node
from tests.integration.test_crash import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CI = os.environ.get("CI") == "true"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")
needs_prometheus = pytest.mark.skipif((PROMETHEUS is None or PROMTOOL is None) and not CI,
                                      reason="no prometheus/promtool (CI installs Debian's prometheus)")
needs_both = pytest.mark.skipif((PROMETHEUS is None or ALERTMANAGER is None) and not CI,
                                reason="no prometheus or alertmanager (CI installs Debian's packages)")

# Grafana's variables as the test evaluates them: the scrape here is 0.5 s, so 3 s holds >= 4 samples
SCRAPE_S = 0.5
RATE_INTERVAL = "3s"


def _module(name: str, path: Path):
    """Import a deploy script (deploy/ is not a package) by its path."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


checker = _module("tapeshot_check_dashboards", DEPLOY / "check_dashboards.py")
maker = _module("tapeshot_make_dashboards", DEPLOY / "grafana" / "make_dashboards.py")
CATALOGUE = checker.load_catalogue()
BOARDS = checker.boards()
RULES = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())


def _tool(*args: str) -> str:
    """Run a Prometheus tool; its output, failing the test with it when the tool says no."""
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=DEPLOY)
    assert p.returncode == 0, f"{' '.join(args)}:\n{p.stdout}\n{p.stderr}"
    return p.stdout + p.stderr


# --- the boards, rules and configs on their own ------------------------------------------------------------------

def test_the_boards_pass_our_panel_checker():
    assert set(BOARDS) == {"latency.json", "trading.json", "health.json"}
    assert checker.check_all() == []
    assert checker.main([]) == 0
    uid = checker.provisioned_uid()
    for board in BOARDS.values():
        for panel in checker.panels_of(board):
            assert panel["datasource"]["uid"] == uid and panel["fieldConfig"]["defaults"]["unit"]


def test_the_panel_checker_catches_what_it_should():
    board = {"uid": "x", "title": "x", "panels": [
        {"id": 1, "type": "timeseries", "title": "a", "description": "short", "datasource": {"uid": "other"},
         "gridPos": {"x": 20, "y": 0, "w": 8, "h": 4}, "fieldConfig": {"defaults": {}},
         "targets": [{"refId": "A", "expr": 'rate(tapeshot_nope_total[$__rate_interval]) + '
                                               'tapeshot_position{side="x"} + tapeshot_position{symbol="$sym"}'}]},
        {"id": 1, "type": "heatmap", "title": "b", "description": "d" * 50, "datasource": {"uid": "u"},
         "gridPos": {"x": 0, "y": 0, "w": 4, "h": 4}, "fieldConfig": {"defaults": {"unit": "s"}},
         "targets": [{"refId": "A", "expr": "sum by (stream) (tapeshot_loop_lag_seconds_count)"}]},
    ]}
    text = "\n".join(checker.check_board(board, CATALOGUE, "u"))
    for needle in ("not unique", "needs a description", "unit None", "datasource must be uid u", "outside the 24",
                   "tapeshot_nope_total is not in the catalogue", "no label 'side'", "$sym is neither",
                   "heatmap reads _bucket", "groups by 'stream'"):
        assert needle in text, (needle, text)


def test_the_board_files_are_what_the_generator_writes():
    assert {name: (DEPLOY / "grafana" / "dashboards" / name).read_text() for name in maker.BOARDS} == maker.render()


def test_every_histogram_has_percentiles_and_a_heatmap():
    latency = BOARDS["latency.json"]
    for metric in (m for m in CATALOGUE.values() if m.kind == "histogram"):
        kinds = {p["type"] for p in checker.panels_of(latency)
                 if any(f"{metric.name}_bucket" in t["expr"] for t in p["targets"])}
        assert {"timeseries", "heatmap"} <= kinds, metric.name
        exprs = " ".join(t["expr"] for p in checker.panels_of(latency) for t in p["targets"])
        for quantile in ("0.5", "0.9", "0.99"):
            assert f"histogram_quantile({quantile}, sum by (le" in exprs


def test_the_alert_rules_cover_the_issue_and_read_the_catalogue():
    alerts = {r["alert"]: r for g in RULES["groups"] for r in g["rules"]}
    assert set(alerts) >= {"TapeshotOrderRoundTripOverBudget", "TapeshotFeedLatencyOverBudget", "TapeshotBookStale",
                           "TapeshotHalted", "TapeshotVenueDisconnected", "TapeshotRejectSpike", "TapeshotLoopLag",
                           "TapeshotDrawdownNearLimit", "TapeshotExporterDown"}
    assert "tapeshot_drawdown_limit_usdt" in alerts["TapeshotDrawdownNearLimit"]["expr"]
    assert alerts["TapeshotHalted"]["labels"]["severity"] == "critical"
    readme = (DEPLOY / "README.md").read_text().lower()
    for name, rule in alerts.items():
        assert rule["annotations"]["runbook"].startswith(f"deploy/README.md#{name.lower()}")
        anchor = rule["annotations"]["runbook"].split("#", 1)[1].split(":", 1)[0]
        assert f"### {anchor}" in readme, f"deploy/README.md has no section for {anchor}"
    assert checker.check_rules(RULES, CATALOGUE) == []


@needs_prometheus
def test_promtool_passes_the_config_and_the_rules_and_their_unit_tests():
    assert PROMTOOL, "CI must have promtool (.ci/run installs prometheus)"
    out = _tool(PROMTOOL, "check", "config", "prometheus/prometheus.yml")
    assert "SUCCESS" in out and "rules found" in out
    _tool(PROMTOOL, "check", "rules", "prometheus/alerts.yml")
    _tool(PROMTOOL, "test", "rules", "prometheus/alerts_test.yml")


@pytest.mark.skipif(AMTOOL is None and not CI, reason="no amtool (CI installs prometheus-alertmanager)")
def test_amtool_passes_the_alertmanager_config_as_committed_and_as_rendered(tmp_path):
    assert AMTOOL, "CI must have amtool (.ci/run installs prometheus-alertmanager)"
    _tool(AMTOOL, "check-config", "alertmanager/alertmanager.yml")
    message = _tool(AMTOOL, "template", "render", "--template.glob=alertmanager/templates/*.tmpl",
                    '--template.text={{ template "tapeshot.telegram" . }}')
    assert "<b>" in message and "•" in message
    out = tmp_path / "rendered" / "alertmanager.yml"
    env = dict(os.environ, TELEGRAM_BOT_TOKEN="123456789:AAH-fake_token-for-the-test", TELEGRAM_CHAT_ID="-100555")
    subprocess.run(["sh", str(DEPLOY / "alertmanager" / "render.sh"), str(DEPLOY / "alertmanager" / "alertmanager.yml"),
                    str(out)], check=True, env=env, timeout=10)
    _tool(AMTOOL, "check-config", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and (out.parent / "templates" / "tapeshot.tmpl").exists()
    rendered = yaml.safe_load(out.read_text())
    tg = [c for r in rendered["receivers"] for c in r.get("telegram_configs", [])]
    assert tg and all(c["bot_token"] == env["TELEGRAM_BOT_TOKEN"] and c["chat_id"] == -100555 for c in tg)


def test_render_keeps_the_placeholders_without_a_valid_token(tmp_path):
    out = tmp_path / "am.yml"
    for token, chat in (("", ""), ("123:abc", ""), ("abc|sed", "5"), ("1:2:3", "5"), ("12:ok", "-5-")):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
        env.update(TELEGRAM_BOT_TOKEN=token, TELEGRAM_CHAT_ID=chat)
        p = subprocess.run(["sh", str(DEPLOY / "alertmanager" / "render.sh"),
                            str(DEPLOY / "alertmanager" / "alertmanager.yml"), str(out)],
                           env=env, capture_output=True, text=True, timeout=10)
        assert p.returncode == 0 and "Telegram receivers will fail" in p.stderr
        assert out.read_text() == (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    tokfile = tmp_path / "token"
    tokfile.write_text("42:from-a-file\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    env.update(TELEGRAM_BOT_TOKEN_FILE=str(tokfile), TELEGRAM_CHAT_ID="77")
    p = subprocess.run(["sh", str(DEPLOY / "alertmanager" / "render.sh"), str(DEPLOY / "alertmanager" /
                        "alertmanager.yml"), str(out), "--", "sh", "-c", "echo exec-ed"], env=env, capture_output=True,
                       text=True, timeout=10)
    assert p.stdout.strip() == "exec-ed" and '"42:from-a-file"' in out.read_text() and "chat_id: 77" in out.read_text()


def test_the_alertmanager_routes_by_severity_with_telegram_and_a_webhook():
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in am["receivers"]}
    routes = {tuple(r["matchers"]): r for r in am["route"]["routes"]}
    assert routes[('severity="critical"',)]["receiver"] == "telegram-page"
    assert routes[('severity="warning"',)]["receiver"] == "telegram-notify"
    assert "telegram_configs" in receivers["telegram-page"] and "webhook_configs" in receivers["ops-webhook"]
    assert receivers["telegram-notify"]["telegram_configs"][0]["disable_notifications"] is True
    halted = [r for r in am["inhibit_rules"] if r["source_matchers"] == ['alertname="TapeshotHalted"']]
    assert halted and "TapeshotDrawdownNearLimit" in halted[0]["target_matchers"][0]


def test_no_secret_is_committed_under_deploy():
    token = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")                       # a Telegram bot token's shape
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix not in {".pyc"}:
            text = path.read_text(errors="replace")
            assert not token.search(text), path
            assert not re.search(r"(?i)(api_secret|password)\s*[:=]\s*['\"]?[A-Za-z0-9]{8,}", text), path


def _compose() -> dict:
    """deploy/docker-compose.yml, parsed."""
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _listen(args: list[str], flag: str) -> str:
    """The value of ``--flag=value`` in a command line."""
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"--{flag}="))


def test_the_compose_file_brings_up_the_four_services_with_files_that_exist():
    """Structure only: docker does not run here (the deploy README says how to run it)."""
    compose = _compose()
    services = compose["services"]
    assert {"engine", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, svc in services.items():
        assert svc.get("network_mode") == "host" and "ports" not in svc, name     # loopback on the host network
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: named volume {source} is not declared"
    # the engine: built from this repository, on the embedded sim by default, its exporter where Prometheus looks
    engine = services["engine"]
    assert (DEPLOY / engine["build"]["context"] / engine["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    from engine.cli import build_parser

    args = build_parser().parse_args(engine["command"])
    assert args.func.__name__ == "_cmd_run" and args.venue is None and args.venue_url is None and args.loop
    from engine import config as cfgmod

    env = {k: v for k, v in engine["environment"].items() if k.startswith("TAPESHOT_ENGINE__")}
    cfg = cfgmod.load(None, env=env)
    assert cfg.venue.kind == "sim" and cfg.engine.console == "off"
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scrape = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert scrape["tapeshot"]["static_configs"][0]["targets"] == [f"127.0.0.1:{cfg.engine.metrics_port}"]
    # Prometheus: its config and rules mounted where its command reads them; Alertmanager where prometheus.yml sends
    p_args = services["prometheus"]["command"]
    mounts = dict(v.split(":")[:2][::-1] for v in services["prometheus"]["volumes"])
    config_in = _listen(p_args, "config.file")
    assert mounts[config_in] == "./prometheus/prometheus.yml"
    for rule_file in prom["rule_files"]:
        assert (DEPLOY / mounts[str(Path(config_in).parent / rule_file)]).exists()
    prom_addr = _listen(p_args, "web.listen-address")
    am = services["alertmanager"]
    am_args = am["entrypoint"]
    am_addr = _listen(am_args, "web.listen-address")
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [am_addr]
    assert am_addr.startswith("127.0.0.1:") and prom_addr.startswith("127.0.0.1:")
    am_mount = dict(v.split(":")[:2][::-1] for v in am["volumes"])["/etc/alertmanager/tapeshot"]
    for arg in am_args[1:3]:
        assert (DEPLOY / am_mount / Path(arg).name).exists(), arg
    assert set(am["environment"]) == {"TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"}
    assert all(v.startswith("${") for v in am["environment"].values())         # from the environment, never inline
    # Grafana: provisioning, the boards where the provider reads them, the datasource at Prometheus's address
    g = services["grafana"]
    g_mounts = dict(v.split(":")[:2][::-1] for v in g["volumes"])
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/tapeshot.yml").read_text())["providers"][0]
    assert g_mounts[provider["options"]["path"]] == "./grafana/dashboards"
    assert g_mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert next(d for d in ds if d["type"] == "prometheus")["url"] == f"http://{prom_addr}"
    home = g["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"]) and (DEPLOY / "grafana/dashboards" / Path(home).name).exists()
    assert g["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${")


def test_the_example_config_serves_metrics_where_prometheus_scrapes():
    from engine import config as cfgmod

    cfg = cfgmod.load(DEPLOY / "tapeshot.toml.example", env={})
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    target = next(j for j in prom["scrape_configs"] if j["job_name"] == "tapeshot")["static_configs"][0]["targets"]
    assert target == [f"{cfg.engine.metrics_host}:{cfg.engine.metrics_port}"]
    assert cfg.engine.home == "/var/lib/tapeshot"                   # the systemd unit's StateDirectory


def test_the_dockerfile_builds_the_extension_from_files_that_exist():
    text = (DEPLOY / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert "g++" in text and "pip wheel" in text and "/healthz" in text
    assert re.search(r"^USER tapeshot$", text, re.M) and 'ENTRYPOINT ["tapeshot"]' in text
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:].count("!ext") == 1


def _unit(path: Path) -> configparser.ConfigParser:
    """A systemd unit or drop-in, parsed (a repeated key keeps its last value, as ``ExecStart=`` resets do)."""
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    cp.optionxform = str
    cp.read_string(path.read_text())
    return cp


def test_the_systemd_units_keep_state_private():
    unit = _unit(DEPLOY / "systemd" / "tapeshot.service")["Service"]
    assert unit["UMask"] == "0077" and unit["StateDirectory"] == "tapeshot" and unit["StateDirectoryMode"] == "0700"
    assert unit["User"] == "tapeshot" and unit["NoNewPrivileges"] == "true" and " run " in unit["ExecStart"]
    am = _unit(DEPLOY / "systemd" / "prometheus-alertmanager.service.d" / "tapeshot.conf")["Service"]
    assert "127.0.0.1:9093" in am["ExecStart"] and "render.sh" in am["ExecStartPre"] and am["UMask"] == "0077"
    prom = _unit(DEPLOY / "systemd" / "prometheus.service.d" / "tapeshot.conf")["Service"]
    assert "127.0.0.1:9090" in prom["ExecStart"]


def test_ci_installs_both_prometheus_and_alertmanager():
    text = (ROOT / ".ci" / "run").read_text()
    assert "prometheus-alertmanager" in text and "warning:" in text


# --- the scenario: a real Prometheus and Alertmanager around an engine trading on the sim -------------------------

def _substitute(expr: str, range_s: int) -> str:
    """A panel's query as Grafana sends it: its variables replaced (``$symbol`` is "All")."""
    for var, value in (("$__rate_interval", RATE_INTERVAL), ("$__interval", "1s"), ("$__range", f"{range_s}s"),
                       ("${symbol}", ".*"), ("$symbol", ".*")):
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def _derived_prometheus(tmp: Path, engine_port: int, am_port: int) -> Path:
    """deploy's prometheus.yml with a fast scrape, the test's ports and deploy's rules by absolute path."""
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval=f"{int(SCRAPE_S * 1000)}ms", evaluation_interval=f"{int(SCRAPE_S * 1000)}ms")
    cfg["rule_files"] = [str(DEPLOY / "prometheus" / f) for f in cfg["rule_files"]]
    cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{am_port}"]
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "tapeshot")
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{engine_port}"]
    cfg["scrape_configs"] = [job]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _derived_alertmanager(tmp: Path, hook_port: int) -> Path:
    """deploy's alertmanager.yml, routes and inhibitions as they are, with no waiting and every receiver a webhook
    to this test (``/<receiver name>``), so where an alert lands says which route took it."""
    cfg = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    cfg["route"].update(group_wait="0s", group_interval="1s", repeat_interval="1h")
    for route in cfg["route"]["routes"]:
        route.update(group_wait="0s", group_interval="1s")
    for receiver in cfg["receivers"]:
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{"url": f"http://127.0.0.1:{hook_port}/{receiver['name']}",
                                        "send_resolved": True}]
    cfg.pop("templates", None)
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Scenario:
    """What the scenario saw: every panel query's result, every alert expression's, the rules' health, the webhook
    deliveries, the engine's exposition, and when it ran."""

    def __init__(self) -> None:
        self.panels: list[tuple[str, dict, dict, dict]] = []     # (board, panel, target, Prometheus's answer)
        self.rule_queries: dict[str, dict] = {}
        self.rules: list[dict] = []
        self.hooks: list[tuple[str, dict]] = []                  # (receiver, webhook body)
        self.exposition = ""
        self.inhibited: list[str] = []
        self.readyz: tuple[int, dict] = (0, {})
        self.seconds = 0.0


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Scenario:
    if PROMETHEUS is None or ALERTMANAGER is None:
        if not CI:
            pytest.skip("no prometheus or alertmanager (CI installs Debian's packages)")
        pytest.fail("CI must have prometheus and prometheus-alertmanager (.ci/run installs them)")
    tmp = tmp_path_factory.mktemp("deploy")
    engine_port, prom_port, am_port, hook_port = free_port(), free_port(), free_port(), free_port()
    prom_cfg = _derived_prometheus(tmp, engine_port, am_port)
    am_cfg = _derived_alertmanager(tmp, hook_port)
    logs = {name: open(tmp / f"{name}.log", "w") for name in ("prometheus", "alertmanager")}   # noqa: SIM115
    procs = [
        subprocess.Popen([ALERTMANAGER, f"--config.file={am_cfg}", f"--storage.path={tmp / 'am'}",
                          f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                         stdout=logs["alertmanager"], stderr=subprocess.STDOUT),
        subprocess.Popen([PROMETHEUS, f"--config.file={prom_cfg}", f"--storage.tsdb.path={tmp / 'prom'}",
                          f"--web.listen-address=127.0.0.1:{prom_port}"],
                         stdout=logs["prometheus"], stderr=subprocess.STDOUT),
    ]
    out = Scenario()
    t0 = time.monotonic()
    try:
        run(_scenario(out, tmp, engine_port, prom_port, am_port, hook_port))
    except BaseException:
        for name in logs:
            sys.stderr.write(f"--- {name} log\n{(tmp / f'{name}.log').read_text()[-4000:]}\n")
        raise
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs.values():
            f.close()
    out.seconds = time.monotonic() - t0
    return out


async def _scenario(out: Scenario, tmp: Path, engine_port: int, prom_port: int, am_port: int, hook_port: int):
    hooks = web.Application()

    async def receive(request: web.Request) -> web.Response:
        out.hooks.append((request.match_info["receiver"], await request.json()))
        return web.Response(text="ok")

    hooks.router.add_post("/{receiver}", receive)
    runner = web.AppRunner(hooks)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    # loop: on a slow machine the scenario may outlast the bundled tape; its refusals must be the ones it provokes
    node = Node(Config(venue=VenueConfig(speed=8, loop=True), engine=EngineConfig(home=str(tmp / "home"))))
    await node.start()
    stop = await serve_metrics(node, engine_port)
    done: dict[str, asyncio.Event] = {}
    node.subscribe(lambda p: done.setdefault(p.intent_id, asyncio.Event()).set() if p.kind == "done" else None)
    api = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        async with aiohttp.ClientSession() as s:
            async def get(path: str, **params) -> dict:
                for _ in range(100):
                    try:
                        async with s.get(f"{api}/{path}", params=params) as r:
                            return await r.json()
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)
                raise AssertionError(f"prometheus on {api} never answered")

            async def eventually(query: str, ok, timeout: float = 20.0) -> None:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    res = (await get("query", query=query)).get("data", {}).get("result", [])
                    if res and ok(float(res[0]["value"][1])):
                        return
                    await asyncio.sleep(0.1)
                raise AssertionError(f"prometheus never saw {query}")

            async def intent(text: str, timeout: float = 20.0) -> None:
                sub = await node.submit(text, source="t", user="t")
                await asyncio.wait_for(done.setdefault(sub.intent_id, asyncio.Event()).wait(), timeout)

            async def fault(**kw) -> None:
                async with s.post(f"{node.venue.rest_url}/sim/faults", json=kw) as r:
                    assert r.status == 200, await r.text()

            start = time.time()
            await eventually('up{job="tapeshot"}', lambda v: v == 1)
            # trading: a ladder and a taker on two symbols at once, TP/SL placed and taken off, a refusal
            await asyncio.gather(intent("long btc 0.2 10s max 8bps"), intent("short eth 2 10s ladder max 8bps"))
            mid = Decimal(repr(node.feed["BTCUSDT"].book.mid)) * node.instruments["BTCUSDT"].tick_size
            tick = node.instruments["BTCUSDT"].tick_size
            for kind, factor in (("tp", "1.01"), ("sl", "0.99")):
                await node.submit(f"{kind} btc {(mid * Decimal(factor) / tick).quantize(Decimal(1)) * tick}",
                                  source="t", user="t")
            await asyncio.sleep(0.5)
            await node.submit("tp btc off", source="t", user="t")
            with pytest.raises(TapeshotError):
                await node.submit("long btc 1000 30s", source="t", user="t")        # over the notional limit
            # the venue refuses an order (-2010)
            await fault(reject_orders=1)
            with contextlib.suppress(TapeshotError):
                await intent("long eth 0.5 5s max 8bps")
            # the kill switch: its alert must fire and reach the receivers the routing names
            await node.kill("deploy test", user="t")
            with pytest.raises(TapeshotError, match=r"(?i)halt"):
                await node.submit("long btc 0.01 5s", source="t", user="t")          # refused: halted
            await eventually("tapeshot_trading_state", lambda v: v == 2)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and {r for r, _ in out.hooks} < {"telegram-page", "ops-webhook"}:
                await asyncio.sleep(0.1)
            # inhibition: a drawdown warning for an instance that is also halted is held back
            alerts = [{"labels": {"alertname": name, "instance": "inhibit-test", "severity": sev}}
                      for name, sev in (("TapeshotHalted", "critical"), ("TapeshotDrawdownNearLimit", "warning"))]
            async with s.post(f"http://127.0.0.1:{am_port}/api/v2/alerts", json=alerts) as r:
                assert r.status == 200, await r.text()
            for _ in range(50):
                async with s.get(f"http://127.0.0.1:{am_port}/api/v2/alerts") as r:
                    listed = await r.json()
                out.inhibited = [a["labels"]["alertname"] for a in listed
                                 if a["labels"].get("instance") == "inhibit-test" and a["status"]["inhibitedBy"]]
                if out.inhibited:
                    break
                await asyncio.sleep(0.1)
            # every panel query over the scenario, as Grafana would send it
            await asyncio.sleep(2 * SCRAPE_S)
            end = time.time()
            range_s = math.ceil(end - start) + 1
            for bname, board in BOARDS.items():
                for panel in checker.panels_of(board):
                    for target in panel.get("targets", []):
                        res = await get("query_range", query=_substitute(target["expr"], range_s), start=f"{start:.3f}",
                                        end=f"{end:.3f}", step="1")
                        out.panels.append((bname, panel, target, res))
            for group in RULES["groups"]:
                for rule in group["rules"]:
                    out.rule_queries[rule["alert"]] = await get("query", query=rule["expr"])
            out.rules = [r for g in (await get("rules"))["data"]["groups"] for r in g["rules"]]
            async with s.get(f"http://127.0.0.1:{engine_port}/metrics") as r:
                out.exposition = await r.text()
            async with s.get(f"http://127.0.0.1:{engine_port}/readyz") as r:
                out.readyz = (r.status, await r.json(content_type=None))
    finally:
        await stop()
        await node.stop()
        await runner.cleanup()


def _exposed(exposition: str) -> tuple[set[str], set[str]]:
    """(metric families declared by # TYPE, series names with at least one sample)."""
    declared, sampled = set(), set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
        elif line and not line.startswith("#"):
            sampled.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return declared, sampled


def _produced(expr: str, sampled: set[str]) -> bool:
    """Whether every series a query reads had a sample in the engine's last exposition."""
    return all(name in sampled for name in checker.metric_names(expr) if name.startswith("tapeshot_"))


@needs_both
def test_the_engine_exposes_the_whole_catalogue(scenario):
    declared, sampled = _exposed(scenario.exposition)
    missing = []
    for metric in CATALOGUE.values():
        names = {metric.name, metric.name.removesuffix("_total")}
        if not names & declared and not set(metric.series()) & sampled:
            missing.append(metric.name)
    assert not missing, f"the exporter does not expose {missing} (docs/metrics.md lists them)"
    ours = {n for n in declared if n.startswith("tapeshot_")}
    known = {n for m in CATALOGUE.values() for n in (m.name, m.name.removesuffix("_total"), *m.series())}
    assert ours <= known, f"exposed but not in docs/metrics.md: {sorted(ours - known)}"
    # and each with the labels the catalogue (so the boards' selectors and legends) gives it
    index = checker.series_index(CATALOGUE)
    for family in text_string_to_metric_families(scenario.exposition):
        for sample in family.samples:
            if sample.name.startswith("tapeshot_"):
                metric, allowed = index[sample.name]
                assert set(sample.labels) <= allowed, (sample.name, sample.labels, metric.labels)
                if not metric.labels <= set(sample.labels):
                    pytest.fail(f"{sample.name} lacks labels {sorted(metric.labels - set(sample.labels))}")


@needs_both
def test_every_panel_query_returns_data_of_the_right_shape(scenario):
    _, sampled = _exposed(scenario.exposition)
    n_queries = sum(len(p.get("targets", [])) for b in BOARDS.values() for p in checker.panels_of(b))
    assert len(scenario.panels) == n_queries > 50
    problems, empty_ok = [], []
    for bname, panel, target, res in scenario.panels:
        where = f"{bname} #{panel['id']} {panel['title']!r} {target['refId']}: {target['expr']}"
        if res.get("status") != "success" or res["data"]["resultType"] != "matrix":
            problems.append(f"{where}: {res.get('error') or res}")
            continue
        series = res["data"]["result"]
        if not series:
            if _produced(target["expr"], sampled):
                problems.append(f"{where}: no data, though the engine exposes every metric it reads")
            else:
                empty_ok.append(where)
            continue
        if not any(math.isfinite(float(v)) for s in series for _, v in s["values"]):
            problems.append(f"{where}: only NaN/Inf")
        if panel["type"] == "heatmap" and not all("le" in s["metric"] for s in series):
            problems.append(f"{where}: a heatmap series without le")
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
            if not all(label in s["metric"] for s in series):
                problems.append(f"{where}: legend {{{{{label}}}}} but a series has no {label}")
    assert not problems, "\n".join(problems)
    # and they show what happened: the kill, the refusals (one while halted), the venue's reject, the fills
    peak = _peak_values(scenario)
    assert peak["health", "Kill switch activations by trigger"].get(("manual",), 0) >= 1
    refusals = peak["health", "Risk refusals by reason"]
    assert refusals.get(("intent", "order_notional"), 0) >= 1 and refusals.get(("intent", "halted"), 0) >= 1, refusals
    assert peak["health", "Venue rejects by error code"].get(("-2010",), 0) > 0
    outcomes = peak["trading", "Intents since start by outcome"]
    assert outcomes.get(("filled",), 0) >= 2 and outcomes.get(("refused",), 0) >= 2, outcomes
    assert peak["trading", "Trading state"] == {(): 2.0}
    assert peak["trading", "Rejected orders by type"] and max(peak["trading", "Rejected orders by type"].values()) > 0
    assert set(peak["trading", "Fills since start by symbol and liquidity"]) >= {("BTCUSDT", "taker")}
    # only panels of metrics this scenario cannot produce (no Telegram user, no restart to reconcile) may be empty
    for where in empty_ok:
        assert "tapeshot_telegram_commands_total" in where or "tapeshot_reconcile_differences_total" in where, where


def _peak_values(scenario: Scenario) -> dict[tuple[str, str], dict[tuple[str, ...], float]]:
    """(board, panel title) -> {a series' label values (legend order): its largest finite value over the scenario},
    from the panel's first query."""
    out: dict[tuple[str, str], dict[tuple[str, ...], float]] = {}
    for bname, panel, target, res in scenario.panels:
        key = (bname.removesuffix(".json"), panel["title"])
        if key in out or res.get("status") != "success":
            continue
        labels = re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", ""))
        values = {}
        for s in res["data"]["result"]:
            finite = [float(v) for _, v in s["values"] if math.isfinite(float(v))]
            if finite:
                values[tuple(s["metric"].get(label, "") for label in labels)] = max(finite)
        out[key] = values
    return out


@needs_both
def test_every_alert_expression_evaluates_and_every_rule_is_healthy(scenario):
    for name, res in scenario.rule_queries.items():
        assert res.get("status") == "success", (name, res)
    names = {g_rule["name"] for g_rule in scenario.rules}
    assert names == set(scenario.rule_queries)
    for rule in scenario.rules:
        assert rule["health"] == "ok" and not rule.get("lastError"), rule


@needs_both
def test_a_kill_switch_trip_fires_its_alert_and_alertmanager_delivers_it(scenario):
    received = {}
    for receiver, body in scenario.hooks:
        for alert in body["alerts"]:
            labels = alert["labels"]
            if (labels["alertname"], labels.get("instance"), alert["status"]) == ("TapeshotHalted", "tapeshot-main",
                                                                                  "firing"):
                received[receiver] = alert
    assert set(received) == {"telegram-page", "ops-webhook"}, [r for r, _ in scenario.hooks]
    alert = received["telegram-page"]
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["job"] == "tapeshot"
    assert "Kill switch tripped" in alert["annotations"]["summary"]
    assert alert["annotations"]["runbook"].startswith("deploy/README.md#tapeshothalted")
    assert "telegram-notify" not in {r for r, b in scenario.hooks
                                     if any(a["labels"]["alertname"] == "TapeshotHalted" for a in b["alerts"])}
    assert scenario.inhibited == ["TapeshotDrawdownNearLimit"]
    status, body = scenario.readyz
    assert status == 503 and body["ready"] is False and body["checks"]["not_halted"]["ok"] is False


@needs_both
def test_the_scenario_is_quick(scenario):
    assert scenario.seconds < 45, scenario.seconds
