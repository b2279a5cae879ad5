"""The local control endpoint: HTTP over a Unix socket (mode 0600: closed to other users), and its client.

``POST /intent {"text"}`` answers with NDJSON: one line per progress event of that intent until its report
(``{"kind": "done", "data": {...}}``), or one ``{"error": ...}`` line. Also ``POST /preview``, ``GET /status``,
``POST /kill``, ``POST /resume``, ``POST /rationale``, ``GET /report/{id}``. The caller's uid (SO_PEERCRED) is
recorded as the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from engine.commands import Commands, Progress
from engine.errors import ConfigError, TapeshotError


def _peer_user(request: web.Request) -> str:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    with contextlib.suppress(OSError, AttributeError, struct.error):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return f"uid:{uid}"
    return "local"


class ControlServer:
    def __init__(self, commands: Commands, path: str | Path) -> None:
        self.commands = commands
        self.path = Path(path)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.exists():
            if await _alive(self.path):
                raise ConfigError(f"another engine is running on {self.path}")
            self.path.unlink()
        app = web.Application()
        app.add_routes([web.post("/intent", self._intent), web.post("/preview", self._preview),
                        web.get("/status", self._status), web.post("/kill", self._kill),
                        web.post("/resume", self._resume), web.post("/rationale", self._rationale),
                        web.get("/report/{id}", self._report)])
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        old = os.umask(0o177)
        try:
            await web.UnixSite(self._runner, str(self.path)).start()
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @staticmethod
    async def _body(request: web.Request) -> dict:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") \
                from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='{"error": "body must be an object"}', content_type="application/json")
        return body

    async def _intent(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        wait_markouts = bool(body.get("markouts"))
        queue: asyncio.Queue[Progress] = asyncio.Queue()
        unsubscribe = self.commands.subscribe(queue.put_nowait)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        try:
            try:
                sub = await self.commands.submit(str(body.get("text", "")), source="control",
                                                 user=_peer_user(request))
            except TapeshotError as exc:
                await resp.write(orjson.dumps({"error": str(exc)}) + b"\n")
                return resp
            await resp.write(orjson.dumps({"kind": "submitted", "intent_id": sub.intent_id, "text": sub.echo}) + b"\n")
            if not sub.intent_id:
                return resp
            while True:
                p = await queue.get()
                if p.intent_id != sub.intent_id:
                    continue
                await resp.write(orjson.dumps({"kind": p.kind, "text": p.text, "data": p.data},
                                              default=str) + b"\n")
                if p.kind == ("markouts" if wait_markouts else "done"):
                    return resp
        finally:
            unsubscribe()

    async def _preview(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return await _answer(self.commands.preview(str(body.get("text", ""))))

    async def _status(self, request: web.Request) -> web.Response:
        return await _answer(self.commands.status(request.query.get("symbol")))

    async def _kill(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return await _answer(self.commands.kill(str(body.get("reason") or "by hand"), user=_peer_user(request)))

    async def _resume(self, request: web.Request) -> web.Response:
        return await _answer(self.commands.resume(user=_peer_user(request)))

    async def _rationale(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return await _answer(self.commands.add_rationale(str(body.get("intent_id", "")), str(body.get("text", "")),
                                                         user=_peer_user(request)))

    async def _report(self, request: web.Request) -> web.Response:
        return await _answer(self.commands.report(request.match_info["id"]))


async def _answer(awaitable) -> web.Response:
    try:
        result = await awaitable
    except TapeshotError as exc:
        return web.json_response({"error": str(exc)}, status=400, dumps=lambda o: orjson.dumps(o).decode())
    return web.json_response({"result": result}, dumps=lambda o: orjson.dumps(o, default=str).decode())


async def _alive(path: Path) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        return False
    writer.close()
    return True


# ---- the client side (tapeshot intent / status / kill / resume) ----------------------------------------------

class ControlClient:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _session(self) -> aiohttp.ClientSession:
        if not self.path.exists():
            raise ConfigError(f"no engine is running (no control socket at {self.path}); start one with 'tapeshot run'")
        return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.path)))

    async def intent(self, text: str, markouts: bool = False) -> AsyncIterator[dict]:
        async with self._session() as s, s.post("http://engine/intent",
                                                json={"text": text, "markouts": markouts}) as resp:
            async for line in resp.content:
                if line.strip():
                    yield orjson.loads(line)

    async def call(self, method: str, path: str, body: dict | None = None):
        async with self._session() as s, s.request(method, f"http://engine{path}", json=body or {}) as resp:
            data = await resp.json(loads=orjson.loads)
        if "error" in data:
            raise TapeshotError(data["error"])
        return data["result"]
