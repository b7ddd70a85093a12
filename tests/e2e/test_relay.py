"""The exchange relay against the deployed stack: recorded exchange frames from a loopback
websocket server → the relay (a local process's asyncio loop) → the embedded webhook URL →
table → enricher. In each scenario the table ends with exactly the ticks the server sent,
each stored once and enriched. The ticker scenarios use `channel="ticker"`; the trade
scenario runs each exchange's recorded trade frames (tests/relay/trade_frames.json)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from price_relay import Relay
from price_relay.config import ExchangeConfig, RelayConfig, Secret
from tests.e2e.conftest import wait_until
from tests.relay import frames, trade_frames
from tests.relay.loopback import AwaitSubscribe, Gate, ScriptedExchange, Send, run_async, until

# One base asset per scenario and exchange, so each scenario counts only its own ticks.
QUOTE = {"binance": "USDT", "coinbase": "USD", "kraken": "USD"}


def _symbol(exchange: str, base: str) -> str:
    return {"binance": f"{base}USDT", "coinbase": f"{base}-USD", "kraken": f"{base}/USD"}[exchange]


def _ticker(exchange: str, base: str, index: int) -> str:
    maker = {"binance": frames.binance_ticker, "coinbase": frames.coinbase_ticker, "kraken": frames.kraken_ticker}
    return maker[exchange](index, _symbol(exchange, base), None)


def _opening(exchange: str) -> list[Any]:
    return ([] if exchange == "binance" else [AwaitSubscribe()]) + [Send(frames.ACKS[exchange])]


def _config(stack, tmp_path: Path, exchange: str, base: str, ws_url: str, *, channel: str = "ticker",
            symbols: tuple[str, ...] | None = None, **overrides: Any) -> RelayConfig:
    info = stack.running
    settings: dict[str, Any] = {
        "exchanges": (ExchangeConfig(exchange, symbols or (_symbol(exchange, base),), ws_url=ws_url,
                                     channel=channel),),
        "webhook_url": info.webhook_url, "source": info.secret_source, "secret": Secret(info.secret),
        "spool_path": tmp_path / f"{exchange}-{base}.sqlite", "batch_size": 10, "batch_seconds": 0.3,
        "silence_seconds": 30.0, "backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5,
        "http_timeout_seconds": 10.0, "drain_seconds": 5.0}
    settings.update(overrides)
    return RelayConfig(**settings)


def _stored(stack, symbol: str, exchange: str) -> list[dict[str, Any]]:
    response = stack.aws["dynamodb"].query(
        TableName=stack.running.outputs["table_name"], KeyConditionExpression="symbol = :s",
        ExpressionAttributeValues={":s": {"S": symbol}}, ConsistentRead=True)
    return [i for i in response["Items"] if i["exchange"]["S"] == exchange]


def _assert_exactly(stack, exchange: str, base: str, count: int) -> None:
    """Exactly `count` ticks stored for the scenario's market, every one enriched."""
    symbol = f"{base}-{QUOTE[exchange]}"
    stack.settle()
    assert wait_until(lambda: len(_stored(stack, symbol, exchange)) == count
                      and all("enriched_at" in i for i in _stored(stack, symbol, exchange)), 60), \
        f"{symbol}: {len(_stored(stack, symbol, exchange))} stored, {count} sent"
    keys = [i["timestamp"]["N"] for i in _stored(stack, symbol, exchange)]
    assert len(set(keys)) == count


@pytest.mark.parametrize("exchange", ["binance", "coinbase", "kraken"])
def test_normal_flow_each_tick_stored_once_and_enriched(stack, tmp_path, exchange):
    base = "RLN" + exchange[0].upper()
    ticks = [_ticker(exchange, base, i) for i in range(30)]

    async def scenario() -> dict[str, int]:
        async with ScriptedExchange([_opening(exchange) + [Send(ticks)]]) as server:
            async with Relay(_config(stack, tmp_path, exchange, base, server.url)) as relay:
                await until(lambda: relay.counters.sent == 30, timeout=60, what="30 ticks sent")
                return relay.snapshot()

    counters = run_async(scenario(), timeout=90)
    assert counters["received"] == counters["sent"] == counters["accepted"] == 30
    _assert_exactly(stack, exchange, base, 30)


def test_webhook_stopped_mid_run_then_restarted_nothing_lost(stack, tmp_path):
    exchange, base = "binance", "RLOUT"
    first, second = [_ticker(exchange, base, i) for i in range(20)], [_ticker(exchange, base, i) for i in range(20, 45)]

    async def scenario() -> dict[str, int]:
        import asyncio

        outage = asyncio.Event()
        async with ScriptedExchange([[Send(first), Gate(outage), Send(second)]]) as server:
            async with Relay(_config(stack, tmp_path, exchange, base, server.url)) as relay:
                await until(lambda: relay.counters.sent == 20, timeout=60, what="first 20 sent")
                stack.services.stop_url("webhook_processor")
                try:
                    outage.set()
                    await until(lambda: relay.counters.received == 45 and relay.counters.retried > 0, timeout=60,
                                what="second part spooled while the webhook is down")
                    assert relay.counters.sent == 20
                finally:
                    stack.services.restart_url("webhook_processor")
                await until(lambda: relay.counters.sent == 45, timeout=60, what="spool drained")
                return relay.snapshot()

    counters = run_async(scenario(), timeout=150)
    assert counters["spooled"] == 0 and counters["set_aside"] == 0
    _assert_exactly(stack, exchange, base, 45)


def test_relay_killed_with_a_full_spool_resumes_oldest_first(stack, tmp_path):
    exchange, base = "coinbase", "RLKIL"
    ticks = [_ticker(exchange, base, i) for i in range(40)]
    config = _config(stack, tmp_path, exchange, base, "ws://127.0.0.1:9/unused")

    async def fill_then_kill() -> int:
        async with ScriptedExchange([_opening(exchange) + [Send(ticks)]]) as server:
            relay = Relay(_config(stack, tmp_path, exchange, base, server.url))
            stack.services.stop_url("webhook_processor")
            try:
                await relay.start()
                await until(lambda: relay.counters.received == 40, timeout=60, what="40 received into the spool")
                spooled = relay.snapshot()["spooled"]
                await relay.abort()  # killed: nothing flushed, nothing lost
            finally:
                stack.services.restart_url("webhook_processor")
            return spooled

    assert run_async(fill_then_kill(), timeout=90) == 40

    async def restart() -> dict[str, int]:
        async with ScriptedExchange([_opening(exchange)]) as server:
            restarted = replace(config, exchanges=(ExchangeConfig(exchange, (_symbol(exchange, base),),
                                                                   ws_url=server.url, channel="ticker"),))
            async with Relay(restarted) as relay:
                await until(lambda: relay.counters.sent == 40, timeout=60, what="the spool sent after restart")
                return relay.snapshot()

    counters = run_async(restart(), timeout=90)
    assert counters["received"] == 0 and counters["spooled"] == 0
    _assert_exactly(stack, exchange, base, 40)
    stored = sorted(_stored(stack, f"{base}-USD", exchange), key=lambda i: int(i["stored_at"]["N"]))
    # Sent oldest first: the order they were stored in is the order the exchange sent them.
    assert [Decimal(i["price"]["N"]) for i in stored] == [Decimal(json.loads(t)["price"]) for t in ticks]


def test_a_silent_stream_is_reconnected(stack, tmp_path):
    exchange, base = "kraken", "RLSIL"
    before, after = [_ticker(exchange, base, i) for i in range(10)], [_ticker(exchange, base, i) for i in range(10, 25)]

    async def scenario() -> tuple[int, dict[str, int]]:
        # Connection 1 sends 10 tickers then goes silent (open, no heartbeats); connection 2 sends the rest
        # and goes silent too. Later connections (the relay keeps replacing silent ones while the webhook
        # works through the spool) send no tickers: Kraken's carry no time, so a replayed frame would be
        # stamped anew and stored as a new tick, and `sent` would step past 25 in batches of 10.
        async with ScriptedExchange([_opening(exchange) + [Send(before)],
                                     _opening(exchange) + [Send(after)],
                                     _opening(exchange)]) as server:
            async with Relay(_config(stack, tmp_path, exchange, base, server.url, silence_seconds=1.5)) as relay:
                await until(lambda: relay.counters.sent == 25, timeout=60, what="25 sent across a reconnect")
                return len(server.connections), relay.snapshot()

    connections, counters = run_async(scenario(), timeout=90)
    # At least the reconnect after the first silence (the second connection goes silent too, after its frames).
    assert connections >= 2 and counters["reconnects"] >= 1
    _assert_exactly(stack, exchange, base, 25)


def _trade_scenario(exchange: str) -> tuple[dict[str, str], int]:
    """Each exchange's own markets (RTB<x>, RTE<x>) and recent times (whole minutes moved)."""
    letter = exchange[0].upper()
    rename = {"BTC": f"RTB{letter}", "ETH": f"RTE{letter}"}
    recorded = min(t["timestamp"] for t in trade_frames.expected(exchange))
    shift = (int(time.time() * 1000) - 120_000 - recorded) // 60_000 * 60_000
    return rename, shift


def _run_trades(stack, tmp_path: Path, exchange: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rename, shift = _trade_scenario(exchange)
    expected = trade_frames.expected(exchange, rename, shift)
    script = ([] if exchange == "binance" else [AwaitSubscribe()]) + [Send(trade_frames.frames(exchange, rename,
                                                                                              shift))]

    async def scenario() -> dict[str, int]:
        async with ScriptedExchange([script]) as server:
            config = _config(stack, tmp_path, exchange, "RT", server.url, channel="trade",
                             symbols=trade_frames.symbols(exchange, rename))
            async with Relay(config) as relay:
                await until(lambda: relay.counters.sent == len(expected), timeout=60, what="the trade ticks sent")
                return relay.snapshot()

    return expected, run_async(scenario(), timeout=90)


@pytest.mark.parametrize("exchange", ["binance", "coinbase", "kraken"])
def test_trade_channels_store_each_tick_once_with_the_trades_summed_volume(stack, tmp_path, exchange):
    expected, counters = _run_trades(stack, tmp_path, exchange)
    assert counters["received"] == counters["sent"] == counters["accepted"] == len(expected)
    assert counters["set_aside"] == 0
    stack.settle()
    got = []
    for symbol in sorted({t["symbol"] for t in expected}):
        assert wait_until(lambda symbol=symbol: all("enriched_at" in i for i in _stored(stack, symbol, exchange)), 60)
        for item in _stored(stack, symbol, exchange):
            got.append((symbol, int(item["timestamp"]["N"]) // 1000, Decimal(item["price"]["N"]),
                        Decimal(item["volume"]["N"]), int(item["trades"]["N"]), "volume_24h" in item))
    # each tick once (no duplicate key), with the last trade's price and the exact sum of the quantities
    assert sorted(got) == [(t["symbol"], t["timestamp"], Decimal(t["price"]), Decimal(t["volume"]), t["trades"],
                            False) for t in expected]


@pytest.mark.parametrize("exchange", ["binance", "coinbase", "kraken"])
def test_trade_channel_candles_carry_the_trades_summed_volume(stack, tmp_path, exchange):
    """Candle rows' `volume` (the contract's Candle.volume) is the exact sum of the trades."""
    from emulator import session
    from price_client import PriceClient

    expected, _ = _run_trades(stack, tmp_path, exchange)
    client = PriceClient(stack.running.price_api_url, session=session.session(), region=stack.running.config.region)
    stack.settle()
    for symbol in sorted({t["symbol"] for t in expected}):
        want = sum((Decimal(t["volume"]) for t in expected if t["symbol"] == symbol), Decimal(0))
        start = min(t["timestamp"] for t in expected) // 60_000 * 60_000

        def volume(symbol: str = symbol, start: int = start) -> Decimal:
            return sum((c.volume for c in client.candles(symbol, "1m", start, start + 3_600_000)), Decimal(0))

        assert wait_until(lambda want=want: volume() == want, 60), f"{symbol}: candle volume {volume()} != {want}"
