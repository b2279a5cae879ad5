"""Who may do what: Telegram user ids with a role (``trader`` trades, ``viewer`` only reads), and the wrapper
every handler goes through (strangers refused and counted, viewers kept to reading, errors shown briefly)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from telegram import Update

from engine.errors import ConfigError, TapeshotError
from engine.metrics import TELEGRAM
from engine.telegram.text import GENERIC_FAILURE, VIEWER_ONLY, fmt_error

log = logging.getLogger(__name__)
H = TypeVar("H", bound=Callable[..., Awaitable[None]])


class Role(StrEnum):
    TRADER = "trader"
    VIEWER = "viewer"


def parse_users(users: Mapping[Any, str] | str) -> dict[int, Role]:
    """``{1001: "trader"}`` or ``"1001:trader,1002:viewer"`` -> ``{1001: Role.TRADER, ...}``; a bad id or role is
    a ``ConfigError`` naming it."""
    if isinstance(users, str):
        pairs = [p.partition(":")[::2] for p in users.split(",") if p.strip()]
    else:
        pairs = list(users.items())
    out: dict[int, Role] = {}
    for uid, role in pairs:
        try:
            out[int(str(uid).strip())] = Role(str(role).strip().lower())
        except ValueError:
            raise ConfigError(f"telegram users: {uid}:{role} is not '<user id>:trader' or '<user id>:viewer'") from None
    return out


@dataclass
class Auth:
    """Registered Telegram *user* ids and their roles (never chat ids alone: a group shares one chat id);
    ``chat_ids``, when set, also limits the chats served."""

    users: dict[int, Role]
    chat_ids: frozenset[int] | None = None

    @property
    def user_ids(self) -> frozenset[int]:
        return frozenset(self.users)

    def role(self, update: Update) -> Role | None:
        """The sender's role, or None for a stranger (or a registered user in a chat not served)."""
        user, chat = update.effective_user, update.effective_chat
        if user is None or user.id not in self.users:
            return None
        if self.chat_ids is not None and (chat is None or chat.id not in self.chat_ids):
            return None
        return self.users[user.id]

    def allows(self, update: Update) -> bool:
        return self.role(update) is not None


def count(command: str, outcome: str) -> None:
    """One Telegram command for the metrics (bounded labels: the bot's own command names and three outcomes)."""
    TELEGRAM[(command, outcome)] = TELEGRAM.get((command, outcome), 0) + 1


def authorised(command: str, need: Role = Role.VIEWER) -> Callable[[H], H]:
    """Wrap a handler: strangers get one polite refusal and nothing about the account; a viewer asking for a
    trader's command is told their role; TapeshotErrors are shown in one line, anything else hidden and logged.
    Then the update is remembered as handled (durably), so a redelivery of it stops at the gate. An update whose
    handling was cut short (cancelled, or the process died) is not remembered: a redelivery runs it again, and
    an intent in it is then caught by its own key."""

    def wrap(handler: H) -> H:
        @functools.wraps(handler)
        async def wrapper(self: Any, update: Update, context: Any) -> None:
            role = self.auth.role(update)
            if role is None:
                count(command, "stranger")
                await self.refuse(update)
                return
            self.note_chat(update)
            if need is Role.TRADER and role is not Role.TRADER:
                count(command, "forbidden")
                await self.tell_role(update)
                await self.handled(update)
                return
            count(command, "ok")
            await _run(self, handler, update, context)
            await self.handled(update)

        return wrapper  # type: ignore[return-value]

    return wrap


async def _run(front: Any, handler: Callable[..., Awaitable[None]], update: Update, context: Any) -> None:
    try:
        await handler(front, update, context)
    except TapeshotError as e:
        await front.answer(update, fmt_error(e))
    except TimeoutError:
        await front.answer(update, "⚠️ no answer from the engine in time; check /status before retrying")
    except Exception:
        log.exception("telegram: handler %s failed", getattr(handler, "__name__", "?"))
        await front.answer(update, GENERIC_FAILURE)


__all__ = ["VIEWER_ONLY", "Auth", "Role", "authorised", "count", "parse_users"]
