"""Tapeshot: a low-latency directional execution engine for a discretionary crypto trader."""

__version__ = "0.1.0"
