"""The trader's Telegram front end (``bot``) and a local Bot API stand-in for tests and demos (``standin``).

The node starts the bot with ``await start_bot(commands, token, allowed_user_ids, base_url)`` inside its running
event loop and stops it with ``await handle.stop()``; see docs/telegram.md.
"""

from engine.telegram.bot import BotHandle, start_bot, start_from_config, token_from_env

__all__ = ["BotHandle", "start_bot", "start_from_config", "token_from_env"]
