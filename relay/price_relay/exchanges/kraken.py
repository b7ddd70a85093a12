"""Kraken spot websocket v2 (`wss://ws.kraken.com/v2`).

Documented in Kraken's Spot WebSocket v2 reference (ticker, heartbeat, ping, status):
- subscribe: `{"method": "subscribe", "params": {"channel": "ticker", "symbol": [...]}}`,
  acknowledged per symbol by `{"method": "subscribe", "result": {...}, "success": true}`
  or refused with `"success": false, "error": "..."`;
- tickers: `{"channel": "ticker", "type": "snapshot"|"update", "data": [{"symbol": "BTC/USD",
  "bid", "bid_qty", "ask", "ask_qty", "last", "volume", "vwap", "low", "high", "change",
  "change_pct"}]}`. The documented rows have no event time, so the relay adds the
  receive time in epoch ms as `timestamp` in each row (where the webhook reads it);
- `{"channel": "heartbeat"}` about once a second without other traffic;
- application ping `{"method": "ping"}`, answered with `{"method": "pong", ...}`; Kraken
  drops connections idle for about a minute, so the relay pings at an interval;
- `{"channel": "status", ...}` on connect: ignored;
- trade (the default here): subscribe with `"channel": "trade", "snapshot": true`; frames
  `{"channel": "trade", "type": "snapshot"|"update", "data": [{"symbol", "side", "price",
  "qty", "ord_type", "trade_id", "timestamp"}]}`, several trades per frame possible,
  `trade_id` a sequence number per book, `timestamp` RFC 3339; the snapshot holds the
  most recent 50 trades (used only to fill a reconnect's gap).
"""

from __future__ import annotations

import json
import re
from typing import Any

from price_relay.exchanges.base import Exchange, FrameKind, Trade, TradeFrame, iso_ms, number


class Kraken(Exchange):
    name = "kraken"
    default_ws_url = "wss://ws.kraken.com/v2"
    symbol_example = "BTC/USD"
    symbol_pattern = re.compile(r"[A-Z0-9]{2,10}/[A-Z0-9]{2,10}")
    default_app_ping_seconds = 20.0

    def subscribe_messages(self, symbols: tuple[str, ...], channel: str = "ticker") -> list[str]:
        params: dict[str, Any] = {"channel": channel, "symbol": list(symbols)}
        if channel == "trade":
            params["snapshot"] = True
        return [json.dumps({"method": "subscribe", "params": params})]

    def trades(self, message: Any) -> TradeFrame | None:
        if not isinstance(message, dict) or message.get("channel") != "trade" \
                or message.get("type") not in ("snapshot", "update"):
            return None
        rows = message.get("data")
        if not isinstance(rows, list):
            raise ValueError("trade: data must be a list")
        trades = []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("trade_id"), int) \
                    or not isinstance(row.get("symbol"), str):
                raise ValueError("trade: each row needs symbol and trade_id")
            trades.append(Trade(row["symbol"], row["trade_id"], number(row.get("price")), number(row.get("qty")),
                                iso_ms(row.get("timestamp"))))
        return TradeFrame(tuple(trades), snapshot=message["type"] == "snapshot")

    def app_ping(self) -> str | None:
        return json.dumps({"method": "ping"})

    def classify(self, message: Any) -> FrameKind:
        if not isinstance(message, dict):
            return FrameKind.OTHER
        channel = message.get("channel")
        if channel == "ticker" and message.get("type") in ("snapshot", "update") \
                and isinstance(message.get("data"), list):
            return FrameKind.TICKER
        if channel == "heartbeat" or message.get("method") == "pong":
            return FrameKind.HEARTBEAT
        if message.get("success") is False or ("error" in message and "method" in message):
            return FrameKind.ERROR
        if message.get("method") == "subscribe" and message.get("success") is True:
            return FrameKind.ACK
        return FrameKind.OTHER

    def stamp_event_time(self, message: dict[str, Any], received_ms: int) -> bool:
        changed = False
        for row in message.get("data") or []:
            if isinstance(row, dict) and row.get("timestamp") is None:
                row["timestamp"] = received_ms
                changed = True
        return changed

    @staticmethod
    def describe_error(message: Any) -> str:
        if isinstance(message, dict):
            return f"{message.get('method')}: {message.get('error')}"[:300]
        return str(message)[:300]


EXCHANGE = Kraken()
