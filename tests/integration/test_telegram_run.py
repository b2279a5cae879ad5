"""``tapeshot run`` as a process with its Telegram front end configured from the environment only
(``TAPESHOT_TELEGRAM_TOKEN``, ``TAPESHOT_TELEGRAM__USERS``, ``TAPESHOT_TELEGRAM__BASE_URL``,
``TAPESHOT_TELEGRAM__CONFIRM_ABOVE_USDT``), talking to the Bot API stand-in run as its own process
(``python -m engine.telegram.standin``), driven over the stand-in's HTTP test endpoints as a trader would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

from engine.telegram.standin import new_token
from engine.telegram.text import VIEWER_ONLY
from tests.integration.test_crash import free_port, start
from tests.integration.test_secrets import stop

TRADER, VIEWER = 1001, 1002


class Chat:
    """The stand-in's test endpoints: a user's message in, the bot's messages out, a button press."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())["result"]

    def say(self, user: int, text: str) -> dict:
        return self._call("/_standin/message", {"user_id": user, "text": text})

    def press(self, user: int, message: dict, data: str) -> str:
        return self._call("/_standin/press", {"user_id": user, "chat_id": message["chat"]["id"],
                                              "message_id": message["message_id"], "data": data})

    def sent(self, chat: int) -> list[dict]:
        return self._call(f"/_standin/sent?chat_id={chat}")

    def wait(self, chat: int, pred: Callable[[dict], bool], timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = [m for m in self.sent(chat) if pred(m)]
            if found:
                return found[-1]
            time.sleep(0.1)
        raise AssertionError(f"no such message in chat {chat}: {[m.get('text') for m in self.sent(chat)]}")


def test_tapeshot_run_serves_its_traders_and_viewers_from_the_environment(tmp_path):
    port, token = free_port(), new_token()
    standin = subprocess.Popen([sys.executable, "-m", "engine.telegram.standin", "--port", str(port),
                                "--token", token], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "base_url" in standin.stdout.readline()
        env = {"TAPESHOT_TELEGRAM_TOKEN": token, "TAPESHOT_TELEGRAM__USERS": f"{TRADER}:trader,{VIEWER}:viewer",
               "TAPESHOT_TELEGRAM__BASE_URL": f"http://127.0.0.1:{port}/bot",
               "TAPESHOT_TELEGRAM__CONFIRM_ABOVE_USDT": "1000"}
        lines: list[str] = []
        engine = start(["run", "--home", str(tmp_path), "--console", "off", "--speed", "4"], "tapeshot running",
                       env=env, sink=lines)
        try:
            chat = Chat(port)
            chat.say(VIEWER, "long btc 0.01 10s")
            chat.wait(VIEWER, lambda m: m.get("text") == VIEWER_ONLY)
            chat.say(TRADER, "long btc 0.05 10s -- bids absorbing")
            ask = chat.wait(TRADER, lambda m: "Large intent" in m.get("text", ""))
            assert "0.050 BTC" in ask["text"] and "would be accepted" in ask["text"]
            chat.press(TRADER, ask, ask["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
            report = chat.wait(TRADER, lambda m: m.get("text", "").startswith("🏁 i"))
            assert "filled 0.050 BTC of 0.050 BTC" in report["text"]
            chat.say(VIEWER, "/pnl")
            pnl = chat.wait(VIEWER, lambda m: "unrealised" in m.get("text", ""))
            assert "+0.050 BTC" in pnl["text"]
        finally:
            out = "".join(lines) + stop(engine)
        assert token not in out and "stopped:" in out, out
    finally:
        standin.terminate()
        standin.wait(10)
