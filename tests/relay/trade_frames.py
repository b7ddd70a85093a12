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
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from price_relay import jsontext

RECORDED: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "trade_frames.json").read_text())


def frames(exchange: str, rename: dict[str, str] | None = None, shift_ms: int = 0) -> list[str]:
    """The exchange's recorded frames; `rename` swaps symbol spellings (the e2e gives each
    scenario its own market): e.g. {"BTC": "RLTB"} turns BTCUSDT into RLTBUSDT and Binance's
    stream name btcusdt@aggTrade too. `shift_ms` (whole minutes) moves every trade time, so
    the e2e's ticks are recent and keep their windows and minutes."""
    assert shift_ms % 60_000 == 0
    out = RECORDED[exchange]["frames"]
    for old, new in (rename or {}).items():
        out = [f.replace(old, new).replace('"' + old.lower(), '"' + new.lower()) for f in out]
    return [_shifted(f, shift_ms) for f in out] if shift_ms else out


def _iso(text: str, shift_ms: int) -> str:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")) + timedelta(milliseconds=shift_ms)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _shifted(text: str, shift_ms: int) -> str:
    message = json.loads(text, parse_float=Decimal)
    data = message.get("data")
    if isinstance(data, dict) and data.get("e") == "aggTrade":
        data["T"] += shift_ms
        data["E"] += shift_ms
    elif message.get("type") in ("match", "last_match"):
        message["time"] = _iso(message["time"], shift_ms)
    elif message.get("channel") == "trade":
        for row in data:
            row["timestamp"] = _iso(row["timestamp"], shift_ms)
    else:
        return text
    return jsontext.dumps(message)


def symbols(exchange: str, rename: dict[str, str] | None = None) -> tuple[str, ...]:
    names = RECORDED[exchange]["symbols"]
    for old, new in (rename or {}).items():
        names = [s.replace(old, new) for s in names]
    return tuple(names)


def expected(exchange: str, rename: dict[str, str] | None = None, shift_ms: int = 0) -> list[dict[str, Any]]:
    """The ticks, sorted by (symbol, timestamp)."""
    ticks = [dict(t) for t in RECORDED[exchange]["expected"]]
    for tick in ticks:
        tick["timestamp"] += shift_ms
        for old, new in (rename or {}).items():
            tick["symbol"] = tick["symbol"].replace(old, new)
    return sorted(ticks, key=lambda t: (t["symbol"], t["timestamp"]))
