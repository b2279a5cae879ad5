"""The local control endpoint: HTTP over a Unix socket (mode 0600: closed to other users), and its client.

``POST /intent {"text", "key"?, "markouts"?}`` answers with NDJSON: ``{"kind": "submitted", "intent_id", "text",
"duplicate"}``, then one line per progress event of that intent until its report (``{"kind": "done", "data":
{...}}``; with ``"markouts": true`` until the report with markouts), or one ``{"error": ..., "refusal": ...}``
line (``refusal``: ``grammar``, ``risk`` with the ``reason``, or ``invalid``).

``key`` (optional, 1-128 printable ASCII characters) makes the submit idempotent: the same key again, also after
an engine restart, submits nothing; it answers ``"duplicate": true`` with the first submission's intent and then
that intent's outcome: its remaining progress while it works, or its report (``commands.report``) if it is done.
So a client that lost its connection can send the same request again and get the same outcome.

Also ``POST /preview``, ``GET /status``, ``POST /kill``, ``POST /reduce``, ``POST /resume``, ``POST /rationale``,
``GET /report/{id}``. The caller's uid (SO_PEERCRED) is recorded as the user. Request bodies are JSON objects of at
most ``MAX_BODY`` bytes (413 beyond); a malformed one is a 400. Both answer ``{"error": "..."}``.

Errors: a refused request (a bad intent, a risk refusal: any ``TapeshotError``) answers 400 with the reason; a
failure of the engine itself answers 500 ``{"error": "internal error (<type>); see the engine log"}`` and is
logged with its traceback. Both are JSON, and ``/intent`` ends its NDJSON answer with the same error line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from engine.commands import Commands, Progress, Submitted
from engine.errors import ConfigError, RiskRefused, TapeshotError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024              # bytes of a request body
MAX_KEY = 128                     # characters of an idempotency key
DUPLICATE_FOLLOW_S = 150.0        # how long a duplicate follows an intent that has no report yet
REPORT_POLL_S = 1.0               # ... checking for its report this often


def _error(exc_cls: type[web.HTTPException], message: str, *args: Any) -> web.HTTPException:
    """An HTTP error whose body is ``{"error": message}`` (one NDJSON line too, for the intent client)."""
    return exc_cls(*args, text=orjson.dumps({"error": message}).decode(), content_type="application/json")


def _internal(exc: BaseException, what: str) -> str:
    """Log an unexpected failure with its traceback; the message the client gets (no detail that could leak)."""
    log.error("control: %s failed", what, exc_info=exc)
    return f"internal error ({type(exc).__name__}); see the engine log"


def valid_key(value: object) -> str | None:
    """A request's idempotency key: absent (None), or a string of 1-128 printable ASCII characters."""
    if value is None:
        return None
    if isinstance(value, str) and 1 <= len(value) <= MAX_KEY and value.isascii() and value.isprintable():
        return value
    raise _error(web.HTTPBadRequest, f"key must be a string of 1-{MAX_KEY} printable ASCII characters")


def _text(body: dict) -> str:
    text = body.get("text", "")
    if not isinstance(text, str):
        raise _error(web.HTTPBadRequest, "text must be a string")
    return text


def refusal(exc: TapeshotError) -> dict:
    """The error line of a refused submit: the message, and ``refusal``: ``grammar`` (the words could not be
    read: ``IntentError``), ``risk`` (not allowed now: ``RiskRefused``, with its ``reason``) or ``invalid``."""
    from engine.intents import IntentError

    if isinstance(exc, IntentError):
        return {"error": str(exc), "refusal": "grammar"}
    if isinstance(exc, RiskRefused):
        return {"error": str(exc), "refusal": "risk", "reason": exc.reason}
    return {"error": str(exc), "refusal": "invalid"}


def _submitted(sub: Submitted) -> dict:
    return {"kind": "submitted", "intent_id": sub.intent_id, "text": sub.echo, "duplicate": sub.duplicate}


def _progress(p: Progress) -> dict:
    return {"kind": p.kind, "text": p.text, "data": p.data}


async def _line(resp: web.StreamResponse, obj: dict) -> None:
    await resp.write(orjson.dumps(obj, default=str) + b"\n")


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
        from engine.keys import make_private_dir

        make_private_dir(self.path.parent)                   # every directory it creates: 0700
        if self.path.exists():
            if await _alive(self.path):
                raise ConfigError(f"another engine is running on {self.path}")
            self.path.unlink()
        app = web.Application(client_max_size=MAX_BODY)
        app.add_routes([web.post("/intent", self._intent), web.post("/preview", self._preview),
                        web.get("/status", self._status), web.post("/kill", self._kill),
                        web.post("/resume", self._resume), web.post("/reduce", self._reduce),
                        web.post("/rationale", self._rationale),
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
        too_big = f"request body over {MAX_BODY} bytes"
        if (request.content_length or 0) > MAX_BODY:
            raise _error(web.HTTPRequestEntityTooLarge, too_big, MAX_BODY)
        try:
            body = orjson.loads(await request.read() or b"{}")
        except web.HTTPRequestEntityTooLarge:
            raise _error(web.HTTPRequestEntityTooLarge, too_big, MAX_BODY) from None
        except orjson.JSONDecodeError:
            raise _error(web.HTTPBadRequest, "body must be JSON") from None
        if not isinstance(body, dict):
            raise _error(web.HTTPBadRequest, "body must be an object")
        return body

    async def _intent(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        text, key = _text(body), valid_key(body.get("key"))
        final = "markouts" if body.get("markouts") else "done"
        queue: asyncio.Queue[Progress] = asyncio.Queue()
        unsubscribe = self.commands.subscribe(queue.put_nowait)      # before submit: no event can be missed
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        try:
            try:
                sub = await self.commands.submit(text, source="control", user=_peer_user(request), key=key)
            except TapeshotError as exc:
                await _line(resp, refusal(exc))
                return resp
            except Exception as exc:            # the engine failed, not the request: say so, keep the server up
                await _line(resp, {"error": _internal(exc, "submit")})
                return resp
            await _line(resp, _submitted(sub))
            if sub.duplicate and sub.intent_id:
                await self._follow_duplicate(resp, sub.intent_id, queue, final)
            elif sub.intent_id:
                await _follow(resp, sub.intent_id, queue, final)
            return resp
        finally:
            unsubscribe()

    async def _follow_duplicate(self, resp: web.StreamResponse, intent_id: str, queue: asyncio.Queue[Progress],
                                final: str) -> None:
        """The outcome of an intent first submitted by an earlier request: its report if it is done, else its
        remaining progress until it is. Bounded: an intent that never reports (interrupted by a restart) ends
        the answer with an error line after ``DUPLICATE_FOLLOW_S``."""
        loop = asyncio.get_running_loop()
        end, reported = loop.time() + DUPLICATE_FOLLOW_S, False
        while loop.time() < end:
            report = None if reported else await self.commands.report(intent_id)
            if report is not None:
                await _line(resp, {"kind": "done", "text": "", "data": report})
                reported = True
                if final == "done" or report.get("markouts_final"):
                    return
            with contextlib.suppress(TimeoutError):
                p = await asyncio.wait_for(queue.get(), REPORT_POLL_S)
                if p.intent_id == intent_id and not (reported and p.kind == "done"):
                    await _line(resp, _progress(p))
                    reported = reported or p.kind == "done"
                    if p.kind == final:
                        return
        await _line(resp, {"error": f"{intent_id} has no report after {DUPLICATE_FOLLOW_S:g} s (interrupted by a "
                                    "restart?); see tapeshot status / tapeshot journal"})

    async def _preview(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return await _answer(self.commands.preview(str(body.get("text", ""))))

    async def _status(self, request: web.Request) -> web.Response:
        return await _answer(self.commands.status(request.query.get("symbol")))

    async def _kill(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return await _answer(self.commands.kill(str(body.get("reason") or "by hand"), user=_peer_user(request)))

    async def _reduce(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return await _answer(self.commands.reduce(str(body.get("reason") or "by hand"), user=_peer_user(request)))

    async def _resume(self, request: web.Request) -> web.Response:
        return await _answer(self.commands.resume(user=_peer_user(request)))

    async def _rationale(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return await _answer(self.commands.add_rationale(str(body.get("intent_id", "")), str(body.get("text", "")),
                                                         user=_peer_user(request)))

    async def _report(self, request: web.Request) -> web.Response:
        return await _answer(self.commands.report(request.match_info["id"]))


async def _follow(resp: web.StreamResponse, intent_id: str, queue: asyncio.Queue[Progress], final: str) -> None:
    """Stream ``intent_id``'s progress until its ``final`` event (done, or markouts)."""
    while True:
        p = await queue.get()
        if p.intent_id != intent_id:
            continue
        await _line(resp, _progress(p))
        if p.kind == final:
            return


async def _answer(awaitable: Awaitable[Any]) -> web.Response:
    """``{"result": ...}``; a refusal (``TapeshotError``) is a 400, any other failure a logged 500, both JSON."""
    try:
        result = await awaitable
    except TapeshotError as exc:
        return web.json_response({"error": str(exc)}, status=400, dumps=lambda o: orjson.dumps(o).decode())
    except Exception as exc:
        return web.json_response({"error": _internal(exc, "request")}, status=500,
                                 dumps=lambda o: orjson.dumps(o).decode())
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

    async def intent(self, text: str, markouts: bool = False, key: str | None = None) -> AsyncIterator[dict]:
        """Submit ``text`` (idempotently under ``key`` when given) and yield each NDJSON line of the answer."""
        body: dict = {"text": text, "markouts": markouts}
        if key is not None:
            body["key"] = key
        async with self._session() as s, s.post("http://engine/intent", json=body) as resp:
            async for line in resp.content:
                if line.strip():
                    yield orjson.loads(line)

    async def call(self, method: str, path: str, body: dict | None = None):
        async with self._session() as s, s.request(method, f"http://engine{path}", json=body or {}) as resp:
            data = await resp.json(loads=orjson.loads)
        if "error" in data:
            raise TapeshotError(data["error"])
        return data["result"]
