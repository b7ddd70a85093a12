"""Throughput of the relay on loopback, for the project's benchmark.

A websocket server on 127.0.0.1 emits `ticks` Binance combined-stream tickers as fast as
it can; the webhook stand-in (`price_relay.loopback`, the one the relay's tests use) checks
each request's signature and elements and answers as the webhook does.
The relay runs in-process with a fresh spool (SQLite, synchronous=FULL as in production)
and the figure is ticks forwarded per second, from the first tick sent to the last tick
acknowledged, plus webhook requests per tick. Loopback only; it stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from price_relay.config import ExchangeConfig, RelayConfig, Secret
from price_relay.loopback import WebhookStandIn
from price_relay.relay import Relay

_SECRET = "bench-only-loopback-secret"  # noqa: S105 - known to the loopback stand-in alone
_SOURCE = "bench"
_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")


def binance_ticker(index: int, symbol: str, event_ms: int) -> str:
    """A Binance combined-stream 24hrTicker frame (shape of the documented example)."""
    price = f"{50000 + index * 0.01:.2f}"
    data = {"e": "24hrTicker", "E": event_ms, "s": symbol, "p": "1.00", "P": "0.002", "w": price, "x": price,
            "c": price, "Q": "0.001", "b": price, "B": "1.5", "a": price, "A": "2.5", "o": price, "h": price,
            "l": price, "v": "1234.5", "q": "61725000.0", "O": event_ms - 86_400_000, "C": event_ms,
            "F": 1, "L": 1 + index, "n": 1 + index}
    return json.dumps({"stream": f"{symbol.lower()}@ticker", "data": data}, separators=(",", ":"))


async def forward(frames: list[str], symbols: tuple[str, ...], webhook_url: str, source: str, secret: str, *,
                  batch_size: int = 100, timeout: float = 120.0) -> tuple[float, dict[str, int], RelayConfig]:
    """Send `frames` (Binance tickers) from a loopback websocket through a real relay to
    `webhook_url`: (seconds from the first frame to the last tick sent, counters, config).
    Shared by `measure` and the project's benchmark against its embedded stack."""
    started: dict[str, float] = {}

    async def emit(connection: ServerConnection) -> None:
        started.setdefault("t", time.perf_counter())
        for frame in frames:
            await connection.send(frame)
        await connection.wait_closed()

    async with serve(emit, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        with tempfile.TemporaryDirectory(prefix="relay-bench-") as directory:
            config = RelayConfig(
                exchanges=(ExchangeConfig("binance", symbols, ws_url=f"ws://127.0.0.1:{port}/stream",
                                          channel="ticker"),),
                webhook_url=webhook_url, source=source, secret=Secret(secret),
                spool_path=Path(directory) / "spool.db", batch_size=batch_size, batch_seconds=0.2,
                silence_seconds=60, drain_seconds=0, stats_seconds=3600)
            relay = Relay(config)
            await relay.start()
            try:
                deadline = time.monotonic() + timeout
                while relay.counters.sent < len(frames):
                    if time.monotonic() > deadline or relay.failed is not None:
                        raise TimeoutError(f"only {relay.counters.sent} of {len(frames)} ticks forwarded "
                                           f"in {timeout} s")
                    await asyncio.sleep(0.005)
                return time.perf_counter() - started["t"], relay.snapshot(), config
            finally:
                await relay.stop(drain_seconds=0)


async def ameasure(ticks: int = 10_000, *, batch_size: int = 100, timeout: float = 120.0) -> dict[str, Any]:
    """See `measure`; for callers already in an event loop."""
    if ticks < 1:
        raise ValueError("ticks must be at least 1")
    webhook = WebhookStandIn({_SOURCE: [_SECRET]}).start()
    frames = [binance_ticker(i, _SYMBOLS[i % len(_SYMBOLS)], 1_700_000_000_000 + i) for i in range(ticks)]
    try:
        elapsed, snapshot, config = await forward(frames, _SYMBOLS, webhook.url, _SOURCE, _SECRET,
                                                  batch_size=batch_size, timeout=timeout)
    finally:
        webhook.stop()
    requests = webhook.count(200)
    return {
        "ticks": ticks,
        "seconds": round(elapsed, 3),
        "ticks_per_second": round(ticks / elapsed, 1),
        "webhook_requests": requests,
        "webhook_requests_per_tick": round(requests / ticks, 4),
        "ticks_received_by_webhook": len(webhook.stored) + webhook.duplicates,
        "batch_size": batch_size,
        "spool_synchronous": config.spool_synchronous,
        "counters": snapshot,
        "python": platform.python_version(),
    }


def measure(ticks: int = 10_000, *, batch_size: int = 100, timeout: float = 120.0) -> dict[str, Any]:
    """Forward `ticks` loopback Binance tickers through a real relay and report
    ticks_per_second and webhook_requests_per_tick (see module docstring)."""
    return asyncio.run(ameasure(ticks, batch_size=batch_size, timeout=timeout))


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
