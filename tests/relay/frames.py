"""Recorded websocket frames, in each exchange's documented message format.

Sources (the examples in these pages, copied field for field; tickers are then varied in
price and time only):
- Binance: binance-spot-api-docs, `web-socket-streams.md`, "Individual Symbol Ticker
  Streams" (`<symbol>@ticker`, the `24hrTicker` event) and "combined streams"
  (`{"stream": ..., "data": ...}`); "Live Subscribing/Unsubscribing" for the
  `{"result": null, "id": 1}` answer and the error shape.
- Coinbase Exchange: docs.cdp.coinbase.com/exchange/websocket-feed, "Overview"
  (subscribe, the `subscriptions` answer, `error`) and "Channels" (`heartbeat`,
  `ticker`).
- Kraken: docs.kraken.com, Spot WebSocket v2: "ticker" (subscribe ack, snapshot and
  update), "heartbeat", "ping" (pong), "status", and the error answer of a subscribe.
"""

from __future__ import annotations

import json
from typing import Any


def compact(message: dict[str, Any]) -> str:
    """How the exchanges send frames: compact JSON text."""
    return json.dumps(message, separators=(",", ":"))


# -- Binance ----------------------------------------------------------------------------

BINANCE_TICKER_EVENT = {
    "e": "24hrTicker", "E": 1672515782136, "s": "BNBBTC", "p": "0.0015", "P": "250.00", "w": "0.0018",
    "x": "0.0009", "c": "0.0025", "Q": "10", "b": "0.0024", "B": "10", "a": "0.0026", "A": "100",
    "o": "0.0010", "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18", "O": 0, "C": 86400000,
    "F": 0, "L": 18150, "n": 18151,
}
BINANCE_COMBINED_TICKER = compact({"stream": "bnbbtc@ticker", "data": BINANCE_TICKER_EVENT})
BINANCE_SUBSCRIBE_RESULT = compact({"result": None, "id": 1})
BINANCE_ERROR = compact({"error": {"code": 2, "msg": "Invalid request: unknown variable"}, "id": 1})


def binance_ticker(index: int, symbol: str = "BTCUSDT", price: str | None = None) -> str:
    """The documented ticker for `symbol`, with event time and last price varied by index."""
    event = dict(BINANCE_TICKER_EVENT, s=symbol, E=1_700_000_000_000 + index * 1000,
                 c=price or f"{42000 + index}.{index % 100:02d}", L=18150 + index, n=18151 + index)
    return compact({"stream": f"{symbol.lower()}@ticker", "data": event})


# -- Coinbase Exchange ------------------------------------------------------------------

COINBASE_SUBSCRIPTIONS = compact({"type": "subscriptions", "channels": [
    {"name": "ticker", "product_ids": ["BTC-USD", "ETH-USD"], "account_ids": None},
    {"name": "heartbeat", "product_ids": ["BTC-USD", "ETH-USD"], "account_ids": None}]})
COINBASE_HEARTBEAT = compact({"type": "heartbeat", "sequence": 90, "last_trade_id": 20, "product_id": "BTC-USD",
                              "time": "2014-11-07T08:19:28.464459Z"})
COINBASE_TICKER_EXAMPLE = {
    "type": "ticker", "sequence": 37475248783, "product_id": "ETH-USD", "price": "1285.22", "open_24h": "1310.79",
    "volume_24h": "245532.79269678", "low_24h": "1280.52", "high_24h": "1313.8", "volume_30d": "9788783.60117027",
    "best_bid": "1285.04", "best_bid_size": "0.46688654", "best_ask": "1285.27", "best_ask_size": "1.56637040",
    "side": "buy", "time": "2022-10-19T23:28:22.061769Z", "trade_id": 370843401, "last_size": "11.4396987",
}
COINBASE_ERROR = compact({"type": "error", "message": "Failed to subscribe",
                          "reason": "BTC-USDX is not a valid product"})


def coinbase_ticker(index: int, product: str = "BTC-USD", price: str | None = None) -> str:
    """The documented ticker for `product`, with time, sequence and price varied by index."""
    seconds = index % 60
    ticker = dict(COINBASE_TICKER_EXAMPLE, product_id=product, sequence=37475248783 + index,
                  trade_id=370843401 + index, price=price or f"{64000 + index}.{index % 100:02d}",
                  time=f"2024-05-01T12:{index // 60 % 60:02d}:{seconds:02d}.{index:06d}Z")
    return compact(ticker)


# -- Kraken v2 ----------------------------------------------------------------------------

KRAKEN_STATUS = compact({"channel": "status", "type": "update", "data": [
    {"api_version": "v2", "connection_id": 12393906104898154338, "system": "online", "version": "2.0.0"}]})
KRAKEN_SUBSCRIBE_ACK = compact({"method": "subscribe", "result": {"channel": "ticker", "snapshot": True,
                                                                  "symbol": "ALGO/USD"},
                                "success": True, "time_in": "2023-09-25T09:04:31.742599Z",
                                "time_out": "2023-09-25T09:04:31.742648Z"})
KRAKEN_HEARTBEAT = compact({"channel": "heartbeat"})
KRAKEN_PONG = compact({"method": "pong", "time_in": "2023-09-24T14:10:23.799685Z",
                       "time_out": "2023-09-24T14:10:23.799703Z"})
KRAKEN_ERROR = compact({"error": "Currency pair not in ISO 4217-A3 format ALGO/USDX", "method": "subscribe",
                        "success": False, "time_in": "2023-09-25T09:04:31.742599Z",
                        "time_out": "2023-09-25T09:04:31.742648Z"})
# Written out as text: Kraken sends numbers, and these keep their digits (740.0, 0.10035).
KRAKEN_TICKER_SNAPSHOT = ('{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,'
                          '"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,'
                          '"volume":997038.98383185,"vwap":0.10148,"low":0.09979,"high":0.10285,'
                          '"change":-0.00017,"change_pct":-0.17}]}')


def kraken_ticker(index: int, symbol: str = "BTC/USD", last: str | None = None) -> str:
    """A v2 ticker update in the documented shape (no timestamp), varied by index."""
    last = last or f"{63000 + index}.{index % 10}"
    return ('{"channel":"ticker","type":"update","data":[{"symbol":"' + symbol + '","bid":' + last
            + ',"bid_qty":740.0,"ask":' + last + ',"ask_qty":1361.44813783,"last":' + last
            + ',"volume":997038.98383185,"vwap":0.10148,"low":0.09979,"high":0.10285,"change":-0.00017,'
            '"change_pct":-0.17}]}')


# -- per exchange, for parametrized scenarios ---------------------------------------------

SYMBOLS = {"binance": ("BTCUSDT", "ETHUSDT"), "coinbase": ("BTC-USD", "ETH-USD"), "kraken": ("BTC/USD", "ETH/USD")}
ACKS = {"binance": [], "coinbase": [COINBASE_SUBSCRIPTIONS], "kraken": [KRAKEN_STATUS, KRAKEN_SUBSCRIBE_ACK]}
HEARTBEATS = {"binance": [], "coinbase": [COINBASE_HEARTBEAT], "kraken": [KRAKEN_HEARTBEAT, KRAKEN_PONG]}


def ticker(exchange: str, index: int, price: str | None = None) -> str:
    """Ticker number `index` of `exchange`, alternating between its two symbols."""
    symbol = SYMBOLS[exchange][index % 2]
    return {"binance": binance_ticker, "coinbase": coinbase_ticker, "kraken": kraken_ticker}[exchange](
        index, symbol, price)
