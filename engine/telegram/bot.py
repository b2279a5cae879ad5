"""The Telegram front end: the trader's chat in, ``Commands`` calls out, progress, reports and charts back.

The bot holds no trading logic. Its parts: ``auth`` (who: user ids with a role, ``trader`` or ``viewer``;
strangers refused and counted), ``front`` (the handlers: intents as text or ``/long``/``/short``/``/flat``, the
large-intent preview with Confirm/Cancel, the why-now question, ``/status``, ``/pos``, ``/orders``, ``/pnl``,
``/limits``, ``/preview``, ``/report``, ``/kill`` behind a confirm button, ``/reduce``, ``/resume``, ``/why``),
``outbox`` (everything said on the bot's own initiative, paced, one worker), ``text`` (the words), ``token``
(the token kept out of the library, the logs and the errors). The engine never awaits Telegram.

Security: only registered Telegram *user* ids (optionally also chat ids) are served; everything else gets one
polite refusal and a log line without the message's content. The bot token is a ``Secret``: python-telegram-bot
only ever holds a placeholder, the real token is put into the URL at the last moment by the request object,
and the ``httpx`` request log line (which carries the URL) is redacted.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from telegram import BotCommand
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from engine.commands import Commands
from engine.errors import ConfigError
from engine.keys import Secret
from engine.telegram.auth import Auth, Role, parse_users
from engine.telegram.front import Options, TelegramFront
from engine.telegram.text import COMMAND_MENU, GENERIC_FAILURE, REFUSAL, WHY_NOW, fmt_report, fmt_submitted
from engine.telegram.token import PLACEHOLDER_TOKEN, TOKEN_ENV, TokenRequest, guard_logs, token_from_env

log = logging.getLogger(__name__)
TELEGRAM_BASE_URL = "https://api.telegram.org/bot"


@dataclass
class BotHandle:
    """A running bot: ``await handle.stop()`` stops polling, drains the outbox and closes the HTTP clients."""

    app: Application
    front: TelegramFront
    unsubscribe: Callable[[], None]
    token_text: str = field(repr=False)

    async def stop(self) -> None:
        self.unsubscribe()
        try:
            if self.app.updater is not None and self.app.updater.running:
                await self.app.updater.stop()
            if self.app.running:
                await self.app.stop()
            await self.front.outbox.close()
            await self.app.shutdown()
        finally:
            guard_logs(self.token_text, on=False)
            plot = sys.modules.get("engine.plot")        # the chart worker, if a chart was drawn
            if plot is not None:
                plot.stop_worker()


def _build_app(token: Secret, base_url: str | None) -> Application:
    kw = {"connect_timeout": 10.0, "read_timeout": 10.0, "write_timeout": 20.0, "pool_timeout": 5.0}
    base = base_url or TELEGRAM_BASE_URL
    return (ApplicationBuilder().token(PLACEHOLDER_TOKEN).base_url(base).base_file_url(base)
            .request(TokenRequest(token, connection_pool_size=8, **kw))
            .get_updates_request(TokenRequest(token, connection_pool_size=1, **kw))
            .job_queue(None).build())


def _users(users: set[int] | Mapping[Any, str] | str) -> dict[int, Role]:
    """A set of ids (all traders, as older configs gave them) or a mapping/spec of id -> role."""
    if isinstance(users, set | frozenset | list | tuple):
        return {int(u): Role.TRADER for u in users}
    return parse_users(users)


async def start_bot(commands: Commands, token: Secret, users: set[int] | Mapping[Any, str] | str,
                    base_url: str | None = None, allowed_chat_ids: set[int] | None = None, *,
                    poll_timeout: float = 10.0, edit_interval: float = 0.5, max_age_s: float = 60.0,
                    confirm_above_usdt: Decimal | float = Decimal("10000"), confirm_s: float = 30.0) -> BotHandle:
    """Start the bot inside the running event loop (long polling) and subscribe it to ``commands``' progress.

    ``users``: Telegram user id -> ``trader``/``viewer`` (a plain set of ids: all traders). ``base_url`` is the Bot
    API base the token is appended to (default Telegram's ``https://api.telegram.org/bot``; tests give the
    stand-in's). Intents worth ``confirm_above_usdt`` or more wait for a Confirm press (0: never). Raises
    ``ConfigError`` without users to serve, and python-telegram-bot's ``InvalidToken`` (showing only a
    placeholder) when the server refuses the token.
    """
    roles = _users(users)
    if not roles:
        raise ConfigError("telegram: no users configured; the bot would serve nobody")
    if not isinstance(token, Secret):
        raise ConfigError("telegram: the token must be a Secret")
    token_text = token.reveal().decode()
    guard_logs(token_text, on=True)
    app = _build_app(token, base_url)
    chats = frozenset(int(c) for c in allowed_chat_ids) if allowed_chat_ids else None
    options = Options(edit_interval, max_age_s, Decimal(str(confirm_above_usdt)), confirm_s)
    front = TelegramFront(app, commands, Auth(roles, chats), options)
    front.install()
    try:
        await app.initialize()
        await _set_menu(app)
        await app.start()
        front.outbox.start()
        await app.updater.start_polling(timeout=poll_timeout, drop_pending_updates=False,
                                        allowed_updates=["message", "edited_message", "callback_query"])
    except BaseException:
        with contextlib.suppress(Exception):
            await _abort(app, front)
        guard_logs(token_text, on=False)
        raise
    unsubscribe = commands.subscribe(front.on_progress)
    traders = sum(1 for r in roles.values() if r is Role.TRADER)
    log.info("telegram: bot @%s polling, %d traders, %d viewers", app.bot.username, traders, len(roles) - traders)
    return BotHandle(app, front, unsubscribe, token_text)


async def start_from_config(commands: Commands, cfg: Any, env: Mapping[str, str] | None = None) -> BotHandle | None:
    """The bot as ``[telegram]`` (``engine.config.TelegramConfig``) and ``TAPESHOT_TELEGRAM_TOKEN`` say; None (with
    a warning) when no user is configured."""
    roles = cfg.roles()
    if not roles:
        log.warning("telegram: no users configured ([telegram] users or TAPESHOT_TELEGRAM__USERS): not started")
        return None
    return await start_bot(commands, token_from_env(env), {u: str(r) for u, r in roles.items()},
                           cfg.base_url or None, set(cfg.allowed_chat_ids) or None, max_age_s=cfg.max_age_s,
                           confirm_above_usdt=cfg.confirm_above_usdt, confirm_s=cfg.confirm_s)


async def _set_menu(app: Application) -> None:
    try:
        await app.bot.set_my_commands([BotCommand(n, d) for n, d in COMMAND_MENU])
    except TelegramError as e:
        log.warning("telegram: could not set the command menu: %s", type(e).__name__)


async def _abort(app: Application, front: TelegramFront) -> None:
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await front.outbox.close(drain_s=0)
    await app.shutdown()


__all__ = ["GENERIC_FAILURE", "PLACEHOLDER_TOKEN", "REFUSAL", "TOKEN_ENV", "WHY_NOW", "BotHandle", "fmt_report",
           "fmt_submitted", "start_bot", "start_from_config", "token_from_env"]
