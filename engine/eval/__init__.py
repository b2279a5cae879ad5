"""``tapeshot eval``: micro-timing measured honestly on real recordings with the algorithm code that runs live.

Recordings replay through the sim venue's matching (queue and latency models on) inside ``engine.replay``; the
engine's own feed, signals and algorithms run on them; baselines (immediate, TWAP, passive join then chase) and
ours (sniper, ladder, auto) execute exactly the same intents. Modules: ``data`` (recordings, roles, the true
market path), ``intents`` (generation, packing into passes), ``runner`` (replay passes, worker processes),
``bars`` (bar-sampled signals), ``stats`` (costs, edge kept, bootstrap), ``experiments`` (main comparison,
latency sweep, ablation, bars), ``cost`` (signal compute cost), ``tuned``/``tune`` (thresholds chosen on the
development set), ``report`` (tables, JSON), ``plots`` (PNG), ``cli`` (the sub-command). Method: docs/eval.md.
"""
