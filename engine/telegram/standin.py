"""A local stand-in for Telegram's Bot API: tests and demos drive the real bot library against it, never Telegram.

It serves ``/bot<token>/<method>`` on loopback with the Bot API's JSON shapes: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "..."}``; a wrong token answers 401 ``Unauthorized`` and an unknown
method 404 ``Not Found``. Parameters are read from the query string, form and multipart bodies (values JSON-encoded,
as python-telegram-bot sends them) and JSON bodies.

Methods: getMe, getUpdates (offset confirmation, limit, long-polling ``timeout``, 409 ``Conflict`` for a
superseded poll), deleteWebhook/setWebhook/getWebhookInfo, sendMessage, sendPhoto (a multipart upload or a known
``file_id``; the answer's ``photo`` is a PhotoSize list, as Telegram's), editMessageText, editMessageReplyMarkup,
deleteMessage, answerCallbackQuery, sendChatAction, set/get/deleteMyCommands, logOut/close. Errors mirror
Telegram's: ``chat not found``, ``message is not modified``, ``message to edit not found``, ``message is too
long``, ``query is too old``, 403 when the bot would start a private conversation, and (on demand,
``flood_next``) 429 ``Too Many Requests`` with ``parameters.retry_after``.

Tests inject what a person would do: ``send_text`` (a message from user X in chat Y, optionally replying to a
message), ``press`` (an inline-keyboard button press), then read ``bot_messages``, ``photos`` (with the uploaded
bytes from ``photo_bytes``) and ``calls``. ``redeliver`` queues an update again that the bot already confirmed,
as ``getUpdates`` does when the bot's confirmation was lost (a crash before the next offset, a poll answer lost
in transit). The same is available over HTTP under
``/_standin/`` for demos::

    python -m engine.telegram.standin --port 8081
    curl -s localhost:8081/_standin/message -d '{"user_id": 42, "text": "long btc 0.5 30s max 8bps"}'
    curl -s 'localhost:8081/_standin/sent?chat_id=42'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PHOTO = 10 * 1024 * 1024         # the Bot API's limit for a photo upload
PHOTO_SIDES = (90, 320, 800, 1280)   # the sizes Telegram makes of a photo (its longest side), never upscaled
FILES = "_files"                     # where ``_params`` puts uploaded files' bytes, by form field
JSON_FIELDS = ("reply_markup", "reply_parameters", "allowed_updates", "commands", "scope", "entities",
               "link_preview_options")
FLOOD_METHODS = ("sendmessage", "editmessagetext")
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status = ``error_code``, ``description`` as Telegram words it."""

    def __init__(self, code: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict:
        out: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            out["parameters"] = self.parameters
        return out


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


def new_token(bot_id: int | None = None) -> str:
    """A token of Telegram's shape ``<bot id>:<35 url-safe chars>``, random each time."""
    bot_id = bot_id or 7_000_000_000 + secrets.randbelow(999_999_999)
    return f"{bot_id}:{secrets.token_urlsafe(26)[:35]}"


def _int(params: dict, key: str, default: int | None = None) -> int:
    value = params.get(key, default)
    if value is None:
        raise bad_request(f"{key} is empty" if key != "chat_id" else "chat_id is empty")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {key} specified") from None


def _decode(params: dict[str, Any]) -> dict[str, Any]:
    """Form values arrive as strings; the structured ones are JSON inside them."""
    out = dict(params)
    for key in JSON_FIELDS:
        value = out.get(key)
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {key} JSON object") from None
    return out


def _buttons(markup: dict | None) -> list[dict]:
    rows = (markup or {}).get("inline_keyboard") or []
    return [b for row in rows for b in row]


class StandIn:
    """The stand-in server: one bot (``token``), any number of users and chats, everything kept in memory."""

    def __init__(self, token: str | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 bot_username: str = "tapeshot_test_bot") -> None:
        self.token = token or new_token()
        self.host, self.port = host, port
        self.bot_user = {"id": int(self.token.split(":", 1)[0]), "is_bot": True, "first_name": "Tapeshot",
                         "username": bot_username, "can_join_groups": True,
                         "can_read_all_group_messages": False, "supports_inline_queries": False}
        self.users: dict[int, dict] = {}
        self.chats: dict[int, dict] = {}
        self.messages: dict[tuple[int, int], dict] = {}
        self.bot_message_keys: list[tuple[int, int]] = []
        self.calls: list[tuple[str, dict]] = []
        self.callback_answers: dict[str, dict] = {}
        self.commands: list[dict] = []
        self.files: dict[str, bytes] = {}             # file_id -> the bytes of an uploaded photo (its largest size)
        self._updates: list[dict] = []
        self._history: dict[int, dict] = {}          # every update ever queued, for ``redeliver``
        self._again: set[int] = set()                # redelivered ids not yet handed out: kept below the offset
        self._update_ids = itertools.count(1)
        self._msg_ids: dict[int, itertools.count] = {}
        self._open_queries: dict[str, dict] = {}
        self._changed = asyncio.Event()
        self._poll_generation = 0
        self.flood_next = 0              # answer this many of the next sends/edits 429 (flood control)
        self.flood_retry_after = 1
        self._allowed_updates: set[str] = set()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, Handler] = {
            "getme": self._get_me, "getupdates": self._get_updates, "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook, "getwebhookinfo": self._webhook_info,
            "sendmessage": self._send_message, "sendphoto": self._send_photo, "editmessagetext": self._edit_text,
            "editmessagereplymarkup": self._edit_markup, "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback, "sendchataction": self._true,
            "setmycommands": self._set_commands, "getmycommands": self._get_commands,
            "deletemycommands": self._delete_commands, "logout": self._true, "close": self._true,
        }

    # ------------------------------------------------------------------ server lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to give the bot library as its Bot API base (the token is appended to it)."""
        return f"{self.url}/bot"

    async def start(self) -> StandIn:
        app = web.Application(client_max_size=MAX_PHOTO + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_post("/_standin/message", self._http_message)
        app.router.add_post("/_standin/press", self._http_press)
        app.router.add_post("/_standin/redeliver", self._http_redeliver)
        app.router.add_get("/_standin/sent", self._http_sent)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._closing = True
        self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ the Bot API

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        name = request.match_info["method"]
        handler = self._methods.get(name.lower())
        if handler is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        try:
            params = _decode(await self._params(request))
            self.calls.append((name, params))
            if self.flood_next > 0 and name.lower() in FLOOD_METHODS:
                self.flood_next -= 1
                raise ApiError(429, f"Too Many Requests: retry after {self.flood_retry_after}",
                               {"retry_after": self.flood_retry_after})
            result = await handler(params)
        except ApiError as e:
            return web.json_response(e.body(), status=e.code)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json" and request.can_read_body:
            try:
                params.update(await request.json())
            except ValueError:
                raise bad_request("can't parse JSON body") from None
        elif request.can_read_body:
            for key, value in (await request.post()).items():
                if isinstance(value, str):
                    params[key] = value
                else:                               # an uploaded file: its name here, its bytes under FILES
                    params[key] = getattr(value, "filename", "")
                    params.setdefault(FILES, {})[key] = value.file.read()
        return params

    async def _true(self, params: dict) -> bool:
        return True

    async def _get_me(self, params: dict) -> dict:
        return dict(self.bot_user)

    async def _delete_webhook(self, params: dict) -> bool:
        if str(params.get("drop_pending_updates", "")).lower() in ("true", "1"):
            self._updates.clear()
            self._again.clear()
        return True

    async def _set_webhook(self, params: dict) -> bool:
        raise bad_request("webhooks are not supported by the stand-in; use getUpdates")

    async def _webhook_info(self, params: dict) -> dict:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    async def _get_updates(self, params: dict) -> list[dict]:
        offset = _int(params, "offset", 0)
        limit = max(1, min(100, _int(params, "limit", 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list) and allowed:   # remembered until changed, as Telegram does
            self._allowed_updates = {str(a) for a in allowed}
        self._confirm(offset)
        self._poll_generation += 1
        mine = self._poll_generation
        self._notify()                      # a poll still waiting is superseded by this one (409 below)
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._closing:
            if self._poll_generation != mine:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that only "
                                    "one bot instance is running")
            remaining = deadline - asyncio.get_running_loop().time()
            if self._updates or remaining <= 0:
                break
            changed = self._changed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
            self._confirm(0)
        batch = self._updates[:limit]
        self._again.difference_update(u["update_id"] for u in batch)
        return batch

    def _confirm(self, offset: int) -> None:
        if self._allowed_updates:
            self._updates = [u for u in self._updates if set(u) - {"update_id"} <= self._allowed_updates]
        if offset < 0:
            del self._updates[: max(0, len(self._updates) + offset)]
        elif offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset or u["update_id"] in self._again]

    async def _send_message(self, params: dict) -> dict:
        chat = self._chat_for_bot(_int(params, "chat_id"))
        text = self._text(params)
        reply_to = self._reply_target(chat["id"], params)
        msg = self._new_message(chat, self._bot_sender(), text, reply_to, params.get("reply_markup"))
        self.bot_message_keys.append((chat["id"], msg["message_id"]))
        return msg

    async def _send_photo(self, params: dict) -> dict:
        """``sendPhoto``: an upload (multipart, as python-telegram-bot sends bytes or a file) or the ``file_id`` of
        a photo sent before; answers a Message whose ``photo`` is its PhotoSize list, smallest first."""
        chat = self._chat_for_bot(_int(params, "chat_id"))
        data, file_id = self._photo_bytes(params)
        caption = str(params.get("caption") or "")
        if len(caption) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        reply_to = self._reply_target(chat["id"], params)
        msg = self._new_message(chat, self._bot_sender(), None, reply_to, params.get("reply_markup"))
        msg["photo"] = _photo_sizes(data, file_id)
        if caption:
            msg["caption"] = caption
        for size in msg["photo"]:                     # any of its sizes' ids can send it again
            self.files[size["file_id"]] = data
        self.bot_message_keys.append((chat["id"], msg["message_id"]))
        return msg

    def _photo_bytes(self, params: dict) -> tuple[bytes, str]:
        """The photo's bytes and its file id: an upload (the ``photo`` field, or the field an ``attach://``
        names), else a known file id."""
        photo = str(params.get("photo") or "")
        files = params.get(FILES) or {}
        field_name = photo.removeprefix("attach://") if photo.startswith("attach://") else "photo"
        if field_name in files:
            data = files[field_name]
            if not data:
                raise bad_request("file must be non-empty")
            if len(data) > MAX_PHOTO:
                raise ApiError(413, "Request Entity Too Large")
            if _png_size(data) is None and not data.startswith(b"\xff\xd8"):
                raise bad_request("IMAGE_PROCESS_FAILED")
            return data, f"AgAC{secrets.token_urlsafe(24)}"
        if photo in self.files:
            return self.files[photo], photo
        if not photo:
            raise bad_request("there is no photo in the request")
        raise bad_request("wrong file identifier/HTTP URL specified")

    async def _edit_text(self, params: dict) -> dict:
        msg = self._bot_message(params, "message to edit not found")
        if "text" not in msg:
            raise bad_request("there is no text in the message to edit")
        text = self._text(params)
        markup = params.get("reply_markup")
        if text == msg.get("text") and _buttons(markup) == _buttons(msg.get("reply_markup")):
            raise bad_request("message is not modified: specified new message content and reply markup are "
                              "exactly the same as a current content and reply markup of the message")
        msg["text"] = text
        self._set_markup(msg, markup)
        msg["edit_date"] = int(time.time())
        return msg

    async def _edit_markup(self, params: dict) -> dict:
        msg = self._bot_message(params, "message to edit not found")
        self._set_markup(msg, params.get("reply_markup"))
        msg["edit_date"] = int(time.time())
        return msg

    async def _delete_message(self, params: dict) -> bool:
        msg = self._bot_message(params, "message to delete not found")
        msg["deleted"] = True
        return True

    async def _answer_callback(self, params: dict) -> bool:
        qid = str(params.get("callback_query_id") or "")
        if qid not in self._open_queries:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        self._open_queries.pop(qid)
        self.callback_answers[qid] = {"text": params.get("text", ""),
                                      "show_alert": str(params.get("show_alert", "")).lower() == "true"}
        return True

    async def _set_commands(self, params: dict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("parameter \"commands\" is required")
        self.commands = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    async def _get_commands(self, params: dict) -> list[dict]:
        return list(self.commands)

    async def _delete_commands(self, params: dict) -> bool:
        self.commands = []
        return True

    # ------------------------------------------------------------------ helpers behind the methods

    def _bot_sender(self) -> dict:
        """The bot as the ``from`` of its messages (getMe's capability fields are not repeated there)."""
        return {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

    @staticmethod
    def _text(params: dict) -> str:
        text = str(params.get("text") or "")
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        return text

    def _chat_for_bot(self, chat_id: int) -> dict:
        chat = self.chats.get(chat_id)
        if chat is None:
            if chat_id in self.users:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            raise bad_request("chat not found")
        return chat

    def _reply_target(self, chat_id: int, params: dict) -> dict | None:
        rp = params.get("reply_parameters")
        mid = rp.get("message_id") if isinstance(rp, dict) else params.get("reply_to_message_id")
        if mid is None:
            return None
        target = self.messages.get((chat_id, int(mid)))
        if target is None:
            allow = isinstance(rp, dict) and rp.get("allow_sending_without_reply")
            if allow or str(params.get("allow_sending_without_reply", "")).lower() == "true":
                return None
            raise bad_request("message to be replied not found")
        return target

    def _bot_message(self, params: dict, missing: str) -> dict:
        chat_id = _int(params, "chat_id")
        msg = self.messages.get((chat_id, _int(params, "message_id")))
        if msg is None or msg.get("deleted") or msg["from"]["id"] != self.bot_user["id"]:
            if chat_id not in self.chats:
                raise bad_request("chat not found")
            raise bad_request(missing)
        return msg

    @staticmethod
    def _set_markup(msg: dict, markup: dict | None) -> None:
        if _buttons(markup):
            msg["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        else:
            msg.pop("reply_markup", None)

    def _new_message(self, chat: dict, sender: dict, text: str | None, reply_to: dict | None = None,
                     markup: dict | None = None) -> dict:
        """A message (``text`` None: a message without text, a photo)."""
        counter = self._msg_ids.setdefault(chat["id"], itertools.count(1))
        msg: dict[str, Any] = {"message_id": next(counter), "from": dict(sender), "chat": dict(chat),
                               "date": int(time.time())}
        if text is not None:
            msg["text"] = text
        if text is not None and not sender["is_bot"] and text.startswith("/"):
            command = text.split()[0]
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            msg["reply_to_message"] = {k: v for k, v in reply_to.items() if k not in ("reply_to_message", "deleted")}
        self._set_markup(msg, markup)
        self.messages[(chat["id"], msg["message_id"])] = msg
        return msg

    def _push(self, kind: str, payload: dict) -> dict:
        update = {"update_id": next(self._update_ids), kind: payload}
        self._history[update["update_id"]] = copy.deepcopy(update)
        self._updates.append(update)
        self._notify()
        return update

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ------------------------------------------------------------------ what a person does (the test API)

    def user(self, user_id: int, first_name: str | None = None, username: str | None = None) -> dict:
        """The user ``user_id`` (created on first use)."""
        if user_id not in self.users:
            self.users[user_id] = {"id": user_id, "is_bot": False, "first_name": first_name or f"user{user_id}",
                                   "username": username or f"user{user_id}", "language_code": "en"}
        return self.users[user_id]

    def chat(self, chat_id: int, title: str | None = None) -> dict:
        """The chat ``chat_id``: positive ids are private chats with that user, negative ids groups."""
        if chat_id not in self.chats:
            if chat_id > 0:
                u = self.user(chat_id)
                self.chats[chat_id] = {"id": chat_id, "type": "private", "first_name": u["first_name"],
                                       "username": u["username"]}
            else:
                kind = "supergroup" if str(chat_id).startswith("-100") else "group"
                self.chats[chat_id] = {"id": chat_id, "type": kind, "title": title or f"group {chat_id}"}
        return self.chats[chat_id]

    def send_text(self, user_id: int, text: str, chat_id: int | None = None,
                  reply_to: dict | int | None = None, date: int | None = None) -> dict:
        """User ``user_id`` writes ``text`` in ``chat_id`` (default: their private chat with the bot),
        optionally as a reply to a message (a message dict or its id in that chat) and with an explicit
        ``date`` (Unix seconds: a message delivered late). Returns the message."""
        chat = self.chat(user_id if chat_id is None else chat_id)
        target = None
        if reply_to is not None:
            mid = reply_to["message_id"] if isinstance(reply_to, dict) else int(reply_to)
            target = self.messages[(chat["id"], mid)]
        msg = self._new_message(chat, self.user(user_id), text, target)
        if date is not None:
            msg["date"] = int(date)
        self._push("message", msg)
        return msg

    def edit_text(self, message: dict, text: str) -> dict:
        """The author edits their ``message``: the bot receives an ``edited_message`` update."""
        msg = self.messages[(message["chat"]["id"], message["message_id"])]
        msg["text"], msg["edit_date"] = text, int(time.time())
        self._push("edited_message", dict(msg))
        return msg

    def press(self, user_id: int, message: dict, data: str) -> str:
        """User ``user_id`` presses the inline button carrying ``data`` on the bot's ``message``; returns the
        callback query id (answered ones appear in ``callback_answers``)."""
        current = self.messages[(message["chat"]["id"], message["message_id"])]
        if data not in [b.get("callback_data") for b in _buttons(current.get("reply_markup"))]:
            raise ValueError(f"no button with callback data {data!r} on message {current['message_id']}")
        qid = str(secrets.randbits(62))
        query = {"id": qid, "from": dict(self.user(user_id)), "message": dict(current),
                 "chat_instance": str(abs(current["chat"]["id"])), "data": data}
        self._open_queries[qid] = query
        self._push("callback_query", query)
        return qid

    @property
    def last_update_id(self) -> int:
        """The id of the update queued last (``send_text``, ``edit_text`` and ``press`` each queue one)."""
        return max(self._history, default=0)

    def redeliver(self, update_id: int) -> dict:
        """Queue update ``update_id`` again exactly as it was first queued, even if the bot confirmed it already
        (its offset moved past it): what ``getUpdates`` does when that confirmation never reached Telegram. It is
        handed out once more, in update-id order. Returns the update."""
        if update_id not in self._history:
            raise KeyError(f"no update {update_id} was ever queued")
        update = copy.deepcopy(self._history[update_id])
        self._again.add(update_id)
        self._updates.append(update)
        self._updates.sort(key=lambda u: u["update_id"])
        self._notify()
        return update

    def bot_messages(self, chat_id: int | None = None) -> list[dict]:
        """Every message the bot sent (in ``chat_id``, or anywhere), as it stands now (after edits)."""
        return [self.messages[k] for k in self.bot_message_keys
                if (chat_id is None or k[0] == chat_id) and not self.messages[k].get("deleted")]

    def photos(self, chat_id: int | None = None) -> list[dict]:
        """Every photo message the bot sent (in ``chat_id``, or anywhere), oldest first."""
        return [m for m in self.bot_messages(chat_id) if "photo" in m]

    def photo_bytes(self, message_or_file_id: dict | str) -> bytes:
        """The bytes uploaded for a photo: by its message (its largest size) or by a ``file_id``."""
        if isinstance(message_or_file_id, dict):
            message_or_file_id = message_or_file_id["photo"][-1]["file_id"]
        return self.files[message_or_file_id]

    def count(self, *methods: str) -> int:
        """How many calls of these methods the bot made."""
        wanted = {m.lower() for m in methods}
        return sum(1 for name, _ in self.calls if name.lower() in wanted)

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    # ------------------------------------------------------------------ the same over HTTP, for demos

    async def _http_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        msg = self.send_text(int(body["user_id"]), str(body["text"]), body.get("chat_id"), body.get("reply_to"))
        return web.json_response({"ok": True, "result": msg})

    async def _http_press(self, request: web.Request) -> web.Response:
        body = await request.json()
        message = self.messages.get((int(body["chat_id"]), int(body["message_id"])))
        if message is None:
            return web.json_response(bad_request("message not found").body(), status=400)
        try:
            qid = self.press(int(body["user_id"]), message, str(body["data"]))
        except ValueError as e:
            return web.json_response(bad_request(str(e)).body(), status=400)
        return web.json_response({"ok": True, "result": qid})

    async def _http_redeliver(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            update = self.redeliver(int(body["update_id"]))
        except KeyError as e:
            return web.json_response(bad_request(str(e.args[0])).body(), status=400)
        return web.json_response({"ok": True, "result": update})

    async def _http_sent(self, request: web.Request) -> web.Response:
        chat = request.query.get("chat_id")
        return web.json_response({"ok": True, "result": self.bot_messages(int(chat) if chat else None)})


def _png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's (width, height) from its IHDR chunk, or None when ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _photo_sizes(data: bytes, file_id: str) -> list[dict]:
    """The PhotoSize list Telegram answers for a photo: scaled copies whose longest side is 90, 320, 800 and
    1280 px where the photo is larger, then the largest (the original, up to 1280 px), smallest first. The
    largest carries ``file_id``; the copies get their own ids (the stand-in keeps only the original's bytes)."""
    width, height = _png_size(data) or (1280, 720)
    longest = max(width, height)
    sides = [s for s in PHOTO_SIDES if s < longest] + [min(longest, PHOTO_SIDES[-1])]
    sizes = []
    for i, side in enumerate(sides):
        scale = side / longest
        last = i == len(sides) - 1
        sizes.append({"file_id": file_id if last else f"{file_id}_{side}",
                      "file_unique_id": f"AQAD{secrets.token_urlsafe(9)}",
                      "width": max(1, round(width * scale)), "height": max(1, round(height * scale)),
                      "file_size": len(data) if last else max(1, round(len(data) * scale * scale))})
    return sizes


async def _serve(port: int, token: str | None) -> None:
    standin = await StandIn(token, port=port).start()
    print(f"base_url {standin.base_url}")
    print(f"token    {standin.token}")
    print(f"inject   curl -s {standin.url}/_standin/message -d '{{\"user_id\": 42, \"text\": \"/help\"}}'")
    print(f"read     curl -s '{standin.url}/_standin/sent?chat_id=42'", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await standin.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m engine.telegram.standin --port N``: serve on loopback until interrupted."""
    ap = argparse.ArgumentParser(prog="python -m engine.telegram.standin", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--token", default=None, help="the bot token to accept (default: a new random one)")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.token))


if __name__ == "__main__":
    main()
