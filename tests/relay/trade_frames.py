"""Recorded trade-channel frames (tests/relay/trade_frames.json), one connection per exchange,
in the exchanges' documented formats, with the ticks they must become.

Sources (the documented examples, field for field; ids, prices, sizes and times varied):
- Binance: binance-spot-api-docs `web-socket-streams.md`, "Aggregate Trade Streams"
  (`<symbol>@aggTrade`), combined streams, and the `{"result": null, "id": 1}` answer.
- Coinbase Exchange: docs.cdp.coinbase.com/exchange/websocket-feed, "Overview" (the
  `subscriptions` answer) and "Channels" (`matches`: `last_match` then `match`; `heartbeat`).
- Kraken: docs.kraken.com Spot WebSocket v2 "trade" (subscribe ack with `snapshot`, the
  snapshot of recent trades, updates with several trades), "status", "heartbeat", "ping".
Each connection also carries a replayed trade id (skipped) and, for Coinbase and Kraken,
trades from before the subscription (`last_match`, the snapshot: not counted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDED: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "trade_frames.json").read_text())


def frames(exchange: str, rename: dict[str, str] | None = None) -> list[str]:
    """The exchange's recorded frames; `rename` swaps symbol spellings (the e2e gives each
    scenario its own market): e.g. {"BTC": "RLTB"} turns BTCUSDT into RLTBUSDT, btcusdt too."""
    out = RECORDED[exchange]["frames"]
    for old, new in (rename or {}).items():
        out = [f.replace(old, new).replace(old.lower(), new.lower()) for f in out]
    return out


def symbols(exchange: str, rename: dict[str, str] | None = None) -> tuple[str, ...]:
    names = RECORDED[exchange]["symbols"]
    for old, new in (rename or {}).items():
        names = [s.replace(old, new) for s in names]
    return tuple(names)


def expected(exchange: str, rename: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The ticks, sorted by (symbol, timestamp)."""
    ticks = [dict(t) for t in RECORDED[exchange]["expected"]]
    for tick in ticks:
        for old, new in (rename or {}).items():
            tick["symbol"] = tick["symbol"].replace(old, new)
    return sorted(ticks, key=lambda t: (t["symbol"], t["timestamp"]))
