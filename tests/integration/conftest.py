"""Fixtures that start the sim venue on real tape and connect the engine's real Binance client to it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import pytest

from engine.errors import RiskRefused
from engine.feed import make_feed
from engine.feed.live import MarketData
from engine.feed.recording import sample_path
from engine.keys import Credentials, Secret
from engine.venues.binance.rest import BinanceRest
from engine.venues.binance.streams import UserStream
from engine.venues.binance.wsapi import WsApi
from engine.venues.sim import SimConfig, SimExchange
from engine.venues.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimVenue, SimVenueConfig

CREDS = Credentials(DEFAULT_API_KEY, Secret(DEFAULT_API_SECRET))


def ed25519_keypair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (private PEM, public PEM), as Binance's key generator makes them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv = Ed25519PrivateKey.generate()
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, pub


async def wait_for(pred, timeout: float = 20.0, step: float = 0.01) -> None:
    """Poll ``pred`` until true (real sockets: things take the time they take), failing after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {getattr(pred, '__name__', pred)}")
        await asyncio.sleep(step)


class Stack:
    """A running sim venue plus the engine's client pieces pointed at it."""

    def __init__(self, venue: SimVenue, session: aiohttp.ClientSession) -> None:
        self.venue = venue
        self.session = session
        self.rest = BinanceRest(venue.rest_url, session, CREDS)
        self.ws_api = WsApi(venue.ws_api_url, session, CREDS, self.rest.now_ms, self.rest.limiter)
        self.feed = make_feed(list(venue.ex.instruments.values()))
        self.md = MarketData(self.feed, self.rest, venue.ws_url, session)
        self.tasks: list[asyncio.Task] = []
        self.users: list[UserStream] = []

    async def start_market(self) -> None:
        self.tasks.append(asyncio.create_task(self.md.run()))

    def start_user(self, events: list[dict]) -> UserStream:
        """The user data stream, every event appended to ``events``; closed with the stack."""
        user = UserStream(self.venue.ws_url, self.rest, self.session, events.append)
        self.tasks.append(asyncio.create_task(user.run()))
        self.users.append(user)
        return user

    async def close(self) -> None:
        for user in self.users:
            await user.close()
        await self.md.close()
        await self.ws_api.close()
        for t in self.tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


@contextlib.asynccontextmanager
async def stack(speed: float = 10.0, paths=None, sim_cfg: SimConfig | None = None, **venue_kw):
    ex = SimExchange(paths or [sample_path()], cfg=sim_cfg)
    venue = SimVenue(ex, SimVenueConfig(speed=speed, **venue_kw))
    await venue.start()
    session = aiohttp.ClientSession()
    st = Stack(venue, session)
    try:
        yield st
    finally:
        await st.close()
        await session.close()
        await venue.stop()


@contextlib.asynccontextmanager
async def node_with_control(cfg):
    """A started ``Node`` for ``cfg`` with its control socket: yields (node, ControlClient); stops both."""
    from engine.control import ControlClient, ControlServer
    from engine.node import Node

    node = Node(cfg)
    await node.start()
    _, sock = node.paths()
    control = ControlServer(node, sock)
    await control.start()
    try:
        yield node, ControlClient(sock)
    finally:
        await control.stop()
        await node.stop()


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def refused(node: Any, text: str) -> RiskRefused:
    """Submit ``text``; it must be refused at once (nothing registered, nothing sent)."""
    before = (len(node.runner.intents), len(node.oms.orders))
    with pytest.raises(RiskRefused) as exc:
        await node.submit(text, source="test", user="t")
    assert (len(node.runner.intents), len(node.oms.orders)) == before
    return exc.value
