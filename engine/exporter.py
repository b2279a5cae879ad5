"""The metrics port: ``/metrics`` (Prometheus text), ``/healthz`` and ``/readyz`` (JSON), 404 for anything else.

A stdlib ``ThreadingHTTPServer`` in its own thread. It only reads the node: plain attributes, ``asyncio.Event``
flags and snapshots of the containers it walks (``engine.metrics.NodeCollector``); nothing it does takes a lock
the event loop holds or runs on the loop.

- ``/healthz``: the process is alive and its event loop turns: 200 ``{"status": "ok", "uptime_s": ...}``; 503
  ``{"status": "stalled", ...}`` when the loop has not run the exporter's heartbeat for ``STALL_S``.
- ``/readyz``: 200 ``{"ready": true, "checks": {...}}`` when every check holds, else 503 with ``"ready": false``;
  each check is ``{"ok": bool, "detail": str}`` (``Readiness``): started, books_synced, venue_reachable,
  user_stream, not_halted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from engine.metrics import NodeCollector

STALL_S = 5.0              # /healthz answers 503 when the loop has been silent this long
BEAT_S = 0.25              # the loop stamps the exporter's heartbeat this often


class Readiness:
    """The /readyz checks over a node's state, each ``(ok, detail)``; read-only, safe from another thread."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def checks(self) -> dict[str, dict[str, Any]]:
        """Every check by name: ``{"ok": bool, "detail": str}``."""
        n = self.node
        if not n.started.is_set():
            return {"started": _check(False, "the engine is starting (or failed to start)")}
        out = {"started": _check(True, "the engine has started")}
        for name, probe in (("books_synced", _books), ("venue_reachable", _venue), ("user_stream", _user),
                            ("not_halted", _not_halted)):
            out[name] = _check(*probe(n))
        return out

    def ready(self) -> bool:
        return all(c["ok"] for c in self.checks().values())


def _check(ok: bool, detail: str) -> dict[str, Any]:
    return {"ok": bool(ok), "detail": detail}


def _books(n: Any) -> tuple[bool, str]:
    """Every traded symbol's book synced (the diff chain unbroken) and its market data still coming."""
    bad = [f"{sf.symbol} {sf.unavailable or sf.state_name}" for sf in n.feed.symbols
           if sf.symbol in n.instruments and (sf.unavailable or not sf.synced)]
    return (False, "not synced: " + "; ".join(bad)) if bad else (True, f"{', '.join(n.instruments)} synced")


def _venue(n: Any) -> tuple[bool, str]:
    """The market stream connected, and an order path: the WebSocket API's socket, or REST answering."""
    up = n.connections()
    orders = up.get("order", False) or up["rest"]
    detail = ", ".join(f"{name} {'up' if ok else 'DOWN'}" for name, ok in up.items() if name != "user")
    return up["market"] and orders, detail


def _user(n: Any) -> tuple[bool, str]:
    """The user data stream connected (order events and fills arrive)."""
    user = n.user
    last = getattr(user, "last_event_s", 0.0)
    ago = f"; last event {time.monotonic() - last:.0f} s ago" if last else "; no event yet"
    return (True, "connected" + ago) if user.connected.is_set() else (False, "not connected" + ago)


def _not_halted(n: Any) -> tuple[bool, str]:
    state = n.risk.state.value
    why = n.killswitch.tripped
    return state != "HALTED", f"trading {state}" + (f" ({why})" if why and state == "HALTED" else "")


class Exporter:
    """The HTTP server on the metrics port, its thread and the loop heartbeat /healthz reads."""

    def __init__(self, node: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.node, self.host, self.port = node, host, port
        self.readiness = Readiness(node)
        self.registry = CollectorRegistry()
        self.registry.register(NodeCollector(node, self.readiness.ready))
        self.started_s = time.monotonic()
        self.beat_s = self.started_s
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._beat: asyncio.Task | None = None

    async def start(self) -> None:
        """Bind the port (``port`` 0: any free one, then in ``self.port``) and serve from a daemon thread."""
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="tapeshot-metrics", daemon=True)
        self._thread.start()
        self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            self.beat_s = time.monotonic()
            await asyncio.sleep(BEAT_S)

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self._server is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._server.shutdown)
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def health(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of /healthz."""
        now = time.monotonic()
        silent = now - self.beat_s
        body = {"status": "ok" if silent <= STALL_S else "stalled", "uptime_s": round(now - self.started_s, 3),
                "loop_silent_s": round(silent, 3)}
        return (200 if silent <= STALL_S else 503), body

    def ready(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of /readyz."""
        checks = self.readiness.checks()
        ok = all(c["ok"] for c in checks.values())
        return (200 if ok else 503), {"ready": ok, "checks": checks}

    def metrics(self) -> bytes:
        return generate_latest(self.registry)


def _handler(exporter: Exporter) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``exporter``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "tapeshot"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, exporter.metrics(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                status, body = exporter.health() if path == "/healthz" else exporter.ready()
                self._send(status, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, json.dumps({"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]})
                           .encode(), "application/json")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """No access log (nothing of a request is worth keeping)."""

    return Handler


__all__ = ["Exporter", "Readiness"]
