"""Binance USD-M futures connector: signed REST, market streams, user data stream, WebSocket API order entry."""
