"""The bot token: read from the environment, handed to python-telegram-bot only as a placeholder, swapped into
the request URL at the last moment, and scrubbed from the ``httpx`` log line and from errors."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from telegram.error import NetworkError, TelegramError
from telegram.request import HTTPXRequest

from engine.errors import ConfigError
from engine.keys import Secret

TOKEN_ENV = "TAPESHOT_TELEGRAM_TOKEN"
PLACEHOLDER_TOKEN = "0:tapeshot-token-withheld"  # what python-telegram-bot sees instead of the token


def token_from_env(env: dict[str, str] | None = None) -> Secret:
    """The bot token from ``TAPESHOT_TELEGRAM_TOKEN`` (BotFather's ``<bot id>:<secret>``)."""
    value = (os.environ if env is None else env).get(TOKEN_ENV, "")
    if not value:
        raise ConfigError(f"{TOKEN_ENV} is not set")
    return Secret(value)


def redact(text: str, secrets_: Iterable[str]) -> str:
    for s in secrets_:
        if s:
            text = text.replace(s, "****")
    return text


class _Redactor(logging.Filter):
    """Removes live tokens from records of the logger it is attached to (``httpx`` logs every request URL)."""

    def __init__(self) -> None:
        super().__init__("tapeshot-redactor")
        self.tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.tokens:
            message = record.getMessage()
            clean = redact(message, self.tokens)
            if clean != message:
                record.msg, record.args = clean, None
        return True


_REDACTOR = _Redactor()
_REDACTED_LOGGERS = ("httpx",)   # its INFO line names the URL; httpcore's traces do not (checked by the tests)


def guard_logs(token: str, on: bool) -> None:
    if on:
        _REDACTOR.tokens.add(token)
    else:
        _REDACTOR.tokens.discard(token)
    for name in _REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR.tokens and _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
        elif not _REDACTOR.tokens:
            logger.removeFilter(_REDACTOR)


class TokenRequest(HTTPXRequest):
    """python-telegram-bot's httpx transport, holding the real token: the library builds URLs with
    ``PLACEHOLDER_TOKEN`` (so its reprs, debug logs and InvalidToken messages never see the token) and this
    swaps the token in just before the request, scrubbing it from any error that comes back."""

    def __init__(self, token: Secret, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._secret = token

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        real = self._secret.reveal().decode()
        try:
            return await super().do_request(url.replace(PLACEHOLDER_TOKEN, real), method, *args, **kwargs)
        except TelegramError as e:
            if real in str(e) or real in str(e.__cause__ or ""):
                raise NetworkError(redact(str(e), [real])) from None
            raise

