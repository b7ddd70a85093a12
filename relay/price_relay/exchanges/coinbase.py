"""Coinbase Exchange market data feed (`wss://ws-feed.exchange.coinbase.com`).

Documented in Coinbase's Exchange WebSocket Feed pages (overview and channels):
- subscribe with `{"type": "subscribe", "product_ids": [...], "channels": [...]}` within
  5 s of connecting; the answer is `{"type": "subscriptions", "channels": [...]}`;
- `ticker` messages carry `product_id`, `price`, `best_bid`, `best_ask`, `volume_24h`
  and `time` (ISO-8601); the webhook reads `time` as the event time;
- the `heartbeat` channel sends `{"type": "heartbeat", "sequence", "last_trade_id",
  "product_id", "time"}` every second per product. This feed names it `heartbeat`; the
  plural `heartbeats` belongs to the separate Advanced Trade feed. The heartbeats keep a
  quiet product's subscription busy and feed the relay's silence detector;
- errors are `{"type": "error", "message": ..., "reason": ...}`;
- the `matches` channel (the default here): one `{"type": "match", "trade_id", "sequence",
  "maker_order_id", "taker_order_id", "time", "product_id", "size", "price", "side"}` per
  trade, `size` in base units, `trade_id` increasing per product; right after subscribing,
  one `last_match` of the same shape per product (the trade before the subscription).
"""

from __future__ import annotations

import json
import re
from typing import Any

from price_relay.exchanges.base import Exchange, FrameKind, Trade, TradeFrame, iso_ms, number

CHANNELS = {"ticker": ("ticker", "heartbeat"), "trade": ("matches", "heartbeat")}


class Coinbase(Exchange):
    name = "coinbase"
    default_ws_url = "wss://ws-feed.exchange.coinbase.com"
    symbol_example = "BTC-USD"
    symbol_pattern = re.compile(r"[A-Z0-9]{2,10}-[A-Z0-9]{2,10}")

    def subscribe_messages(self, symbols: tuple[str, ...], channel: str = "ticker") -> list[str]:
        return [json.dumps({"type": "subscribe", "product_ids": list(symbols), "channels": list(CHANNELS[channel])})]

    def trades(self, message: Any) -> TradeFrame | None:
        if not isinstance(message, dict) or message.get("type") not in ("match", "last_match"):
            return None
        trade_id = message.get("trade_id")
        if not isinstance(trade_id, int) or not isinstance(message.get("product_id"), str):
            raise ValueError("match: product_id and trade_id are required")
        trade = Trade(message["product_id"], trade_id, number(message.get("price")), number(message.get("size")),
                      iso_ms(message.get("time")))
        return TradeFrame((trade,), snapshot=message["type"] == "last_match")

    def classify(self, message: Any) -> FrameKind:
        if not isinstance(message, dict):
            return FrameKind.OTHER
        kind = message.get("type")
        if kind == "ticker" and "product_id" in message:
            return FrameKind.TICKER
        if kind == "subscriptions":
            return FrameKind.ACK
        if kind == "heartbeat":
            return FrameKind.HEARTBEAT
        if kind == "error":
            return FrameKind.ERROR
        return FrameKind.OTHER

    def stamp_event_time(self, message: dict[str, Any], received_ms: int) -> bool:
        if message.get("time") is not None:
            return False
        message["time"] = received_ms
        return True

    @staticmethod
    def describe_error(message: Any) -> str:
        if isinstance(message, dict):
            return f"{message.get('message')}: {message.get('reason')}"[:300]
        return str(message)[:300]


EXCHANGE = Coinbase()
