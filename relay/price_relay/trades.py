"""Trades in, at most one tick per symbol per window out.

A tick's `volume` is the traded base quantity since this venue's previous tick (the
pipeline's volume semantics), so the relay sums the trades' quantities exactly (Decimal)
over a window of the exchange's own trade time (`window_ms`, default 1 s):
- price: the last trade's price (greatest trade time, then trade id);
- volume: the sum of the window's quantities; trades: how many trades it holds;
- timestamp: the last trade's time, so a re-sent tick is the same update (a duplicate).

Each trade counts once: trade ids increase per symbol on all three exchanges, and a
trade at or below the last id seen is skipped (a reconnect's replay). Snapshot trades
(Kraken's snapshot, Coinbase's `last_match`) happened before the subscription: on the
first connection they only set the last id seen; after a reconnect, those above it are
the gap's trades and are counted.

A window closes when a trade of a later window arrives, or `grace_ms` after its end on
the local clock (a late trade then joins the next tick: at most one tick per window,
and a tick is never timed before the previous one). The open window lives in memory:
a crash loses at most one window of trades; a stop sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from price_relay import jsontext
from price_relay.exchanges.base import TradeFrame

DEFAULT_GRACE_MS = 500


@dataclass
class _Window:
    bucket: int
    quantity: Decimal
    count: int
    price: Decimal
    time_ms: int
    last_id: int


class TradeAggregator:
    """Aggregates one exchange's trades; `symbols` maps the exchange's spelling to the
    stored BASE-QUOTE symbol (checked against the webhook's rules at start)."""

    def __init__(self, exchange: str, symbols: dict[str, str], window_ms: int,
                 grace_ms: int = DEFAULT_GRACE_MS) -> None:
        self.exchange = exchange
        self.symbols = symbols
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.trades_counted = 0
        self.trades_skipped = 0
        self._open: dict[str, _Window] = {}
        self._last_id: dict[str, int] = {}
        self._last_bucket: dict[str, int] = {}
        self._last_time: dict[str, int] = {}

    def add(self, frame: TradeFrame) -> list[str]:
        """Take a frame's trades; returns the payloads of the windows they closed."""
        out: list[str] = []
        # Symbols with no trade seen before this snapshot: the whole snapshot is before our time.
        unseen = {t.symbol.upper() for t in frame.trades if t.symbol.upper() not in self._last_id} \
            if frame.snapshot else set()
        for trade in frame.trades:
            symbol = trade.symbol.upper()
            if symbol not in self.symbols:
                self.trades_skipped += 1
                continue
            last_id = self._last_id.get(symbol)
            if symbol in unseen:
                self._last_id[symbol] = max(trade.trade_id, last_id or trade.trade_id)  # a watermark only
                continue
            if last_id is not None and trade.trade_id <= last_id:
                self.trades_skipped += 1
                continue
            self._last_id[symbol] = trade.trade_id
            bucket = max(trade.time_ms // self.window_ms, self._last_bucket.get(symbol, -1) + 1)
            window = self._open.get(symbol)
            if window is not None and bucket > window.bucket:
                out.append(self._close(symbol))
                window = None
            if window is None:
                self._open[symbol] = _Window(bucket, trade.quantity, 1, trade.price, trade.time_ms, trade.trade_id)
            else:
                with localcontext() as exact:
                    exact.prec = 80  # far beyond any sum of exchange quantities: the addition is exact
                    window.quantity += trade.quantity
                window.count += 1
                if (trade.time_ms, trade.trade_id) >= (window.time_ms, window.last_id):
                    window.price, window.time_ms, window.last_id = trade.price, trade.time_ms, trade.trade_id
            self.trades_counted += 1
        return out

    def due(self, now_ms: int) -> list[str]:
        """Payloads of the windows whose end plus the grace has passed on the local clock."""
        ready = [symbol for symbol, window in self._open.items()
                 if now_ms >= (window.bucket + 1) * self.window_ms + self.grace_ms]
        return [self._close(symbol) for symbol in ready]

    def flush(self) -> list[str]:
        """Every open window's payload (the relay is stopping)."""
        return [self._close(symbol) for symbol in list(self._open)]

    def _close(self, symbol: str) -> str:
        window = self._open.pop(symbol)
        time_ms = max(window.time_ms, self._last_time.get(symbol, -1) + 1)
        self._last_bucket[symbol] = window.bucket
        self._last_time[symbol] = time_ms
        return jsontext.dumps({"symbol": self.symbols[symbol], "exchange": self.exchange, "price": str(window.price),
                               "volume": str(window.quantity), "trades": window.count, "timestamp": time_ms})
