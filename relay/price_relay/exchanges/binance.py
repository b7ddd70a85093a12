"""Binance spot: combined `<symbol>@aggTrade` streams (default) or `<symbol>@ticker`.

Documented in binance-spot-api-docs, `web-socket-streams.md`:
- combined streams are read from `/stream?streams=<a>/<b>` and wrapped as
  `{"stream": "<name>", "data": <event>}`; the streams named in the URL need no
  subscribe message;
- "Aggregate Trade Streams": `{"e": "aggTrade", "E": <event ms>, "s": "BNBBTC", "a": <aggregate
  trade id>, "p": "0.001", "q": "100", "f": <first trade id>, "l": <last trade id>,
  "T": <trade ms>, "m": true, "M": true}`; one event per taker order's fills at one price,
  so `q` is the traded base quantity and `a` increases per symbol; no snapshot is sent;
- the 24 h rolling ticker event is `{"e": "24hrTicker", "E": <event ms>, "s": "BTCUSDT", ...}`;
- a connection is valid for 24 hours only, and the server pings every 20 s (the
  websockets library answers with pongs);
- live `SUBSCRIBE` requests are answered with `{"result": null, "id": n}`, errors with
  `{"error": {"code": .., "msg": ..}, "id": n}` (or `{"code": .., "msg": ..}`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from price_relay.exchanges.base import Exchange, FrameKind, Trade, TradeFrame, number

STREAM_SUFFIX = {"trade": "aggTrade", "ticker": "ticker"}


class Binance(Exchange):
    name = "binance"
    default_ws_url = "wss://stream.binance.com:9443/stream"
    symbol_example = "BTCUSDT"
    symbol_pattern = re.compile(r"[A-Z0-9]{5,20}")
    default_max_connection_seconds = 23 * 3600 + 50 * 60   # before Binance's own cut at 24 h

    def ws_url(self, symbols: tuple[str, ...], override: str | None, channel: str = "ticker") -> str:
        """Combined-stream URL; the `streams` query is added unless the URL already has one."""
        parts = urlsplit(override or self.default_ws_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(name == "streams" for name, _ in query):
            return urlunsplit(parts)
        streams = "/".join(f"{symbol.lower()}@{STREAM_SUFFIX[channel]}" for symbol in symbols)
        # '@' and '/' are kept literal: that is how Binance documents the stream list.
        encoded = urlencode(query + [("streams", streams)], safe="@/")
        return urlunsplit(parts._replace(query=encoded))

    def subscribe_messages(self, symbols: tuple[str, ...], channel: str = "ticker") -> list[str]:
        return []  # the streams are named in the URL

    def trades(self, message: Any) -> TradeFrame | None:
        if not isinstance(message, dict):
            return None
        data = message.get("data")
        event = data if "stream" in message and isinstance(data, dict) else message
        if event.get("e") != "aggTrade":
            return None
        trade_id, time_ms = event.get("a"), event.get("T")
        if not isinstance(trade_id, int) or not isinstance(time_ms, int) or not isinstance(event.get("s"), str):
            raise ValueError("aggTrade: s, a and T are required")
        return TradeFrame((Trade(event["s"], trade_id, number(event.get("p")), number(event.get("q")), time_ms),))

    def classify(self, message: Any) -> FrameKind:
        if not isinstance(message, dict):
            return FrameKind.OTHER
        data = message.get("data")
        event = data if "stream" in message and isinstance(data, dict) else message
        if event.get("e") == "24hrTicker":
            return FrameKind.TICKER
        if "error" in message or ("code" in message and "msg" in message):
            return FrameKind.ERROR
        if "result" in message and "id" in message:
            return FrameKind.ACK
        return FrameKind.OTHER

    def stamp_event_time(self, message: dict[str, Any], received_ms: int) -> bool:
        event = message["data"] if isinstance(message.get("data"), dict) else message
        if event.get("E") is not None:
            return False
        event["E"] = received_ms
        return True


EXCHANGE = Binance()
