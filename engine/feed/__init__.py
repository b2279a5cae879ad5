"""Market data: recordings, depth sync and the oracle (the hot path itself is ``ext.feed``)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.config import Config
from engine.model import Instrument


def make_feed(instruments: Sequence[Instrument], cfg: Config | None = None):
    """The one way to build an ``ext.feed.Feed``: live, on the sim venue and in replay alike."""
    from ext.feed import Feed
    from ext.timing import Timing

    cfg = cfg or Config()
    feed = Feed(list(instruments), cfg.feed.window_ticks, [Timing(cfg.signals) for _ in instruments])
    for sf in feed.symbols:
        sf.resync_on_mismatch = cfg.feed.resync_on_mismatch
    feed.set_max_pending(cfg.feed.max_pending)
    return feed
