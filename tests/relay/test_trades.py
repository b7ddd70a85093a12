"""Trade channels: each exchange's recorded trade frames become at most one tick per symbol
and window, with the last trade's price, the exact sum of the quantities as `volume` and the
trade count; acks, heartbeats, snapshots and replays add nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from price_relay import Relay
from price_relay.config import ConfigError, ExchangeConfig
from price_relay.exchanges import get_exchange
from price_relay.exchanges.base import Trade, TradeFrame
from price_relay.trades import TradeAggregator
from tests.relay import trade_frames
from tests.relay.loopback import (
    SOURCE,
    AwaitSubscribe,
    ScriptedExchange,
    Send,
    WebhookStandIn,
    relay_config,
    run_async,
    until,
)

EXCHANGES = ("binance", "coinbase", "kraken")


def _ticks(payloads: list[str]) -> list[dict[str, Any]]:
    ticks = [json.loads(p) for p in payloads]
    return sorted(ticks, key=lambda t: (t["symbol"], t["timestamp"]))


def _same(ticks: list[dict[str, Any]], expected: list[dict[str, Any]], exchange: str) -> None:
    assert [(t["symbol"], t["timestamp"], Decimal(t["price"]), Decimal(t["volume"]), t["trades"], t["exchange"])
            for t in ticks] == \
        [(e["symbol"], e["timestamp"], Decimal(e["price"]), Decimal(e["volume"]), e["trades"], exchange)
         for e in expected]


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_recorded_trade_frames_become_one_tick_per_window_with_the_summed_quantity(exchange):
    spec = get_exchange(exchange)
    config = ExchangeConfig(exchange, trade_frames.symbols(exchange))
    aggregator = TradeAggregator(exchange, config.stored_symbols, 1000)
    out: list[str] = []
    for text in trade_frames.frames(exchange):
        frame = spec.trades(json.loads(text, parse_float=Decimal))
        if frame is not None:
            out += aggregator.add(frame)
    out += aggregator.flush()
    _same(_ticks(out), trade_frames.expected(exchange), exchange)


def test_the_volume_is_the_exact_decimal_sum():
    aggregator = TradeAggregator("kraken", {"BTC/USD": "BTC-USD"}, 1000)
    trades = [Trade("BTC/USD", i, Decimal("100"), Decimal("0.1"), 1_700_000_000_000 + i) for i in range(1, 11)]
    aggregator.add(TradeFrame(tuple(trades)))
    [tick] = aggregator.flush()
    assert json.loads(tick)["volume"] == "1.0"  # ten float 0.1s would not make 1.0


def test_a_late_trade_joins_the_next_tick_and_never_times_it_before_the_previous():
    aggregator = TradeAggregator("binance", {"BTCUSDT": "BTC-USDT"}, 1000, grace_ms=0)
    aggregator.add(TradeFrame((Trade("BTCUSDT", 1, Decimal("10"), Decimal("1"), 1_700_000_000_500),)))
    [first] = aggregator.due(1_700_000_001_000)
    aggregator.add(TradeFrame((Trade("BTCUSDT", 2, Decimal("11"), Decimal("2"), 1_700_000_000_400),)))  # late
    [second] = aggregator.flush()
    first_tick, second_tick = json.loads(first), json.loads(second)
    assert first_tick["timestamp"] == 1_700_000_000_500 and first_tick["volume"] == "1"
    assert second_tick["timestamp"] == 1_700_000_000_501 and second_tick["volume"] == "2"


def test_after_a_reconnect_the_snapshot_fills_the_gap_and_skips_what_was_counted():
    spec = get_exchange("kraken")
    aggregator = TradeAggregator("kraken", {"BTC/USD": "BTC-USD"}, 1000)

    def frame(kind: str, *ids: int) -> TradeFrame:
        rows = ",".join('{"symbol":"BTC/USD","side":"buy","price":100.5,"qty":0.25,"ord_type":"limit",'
                        f'"trade_id":{i},"timestamp":"2024-05-01T12:00:0{i}.000000Z"' + "}" for i in ids)
        text = '{"channel":"trade","type":"' + kind + '","data":[' + rows + "]}"
        parsed = spec.trades(json.loads(text, parse_float=Decimal))
        assert parsed is not None
        return parsed

    out = aggregator.add(frame("snapshot", 1, 2))   # first connection: before our time
    out += aggregator.add(frame("update", 3))
    out += aggregator.add(frame("snapshot", 2, 3, 4, 5))   # after a reconnect: 4 and 5 happened in the gap
    ticks = [json.loads(t) for t in out + aggregator.flush()]
    assert sum(t["trades"] for t in ticks) == 3 and sum(Decimal(t["volume"]) for t in ticks) == Decimal("0.75")


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_the_relay_subscribes_to_trades_and_the_webhook_stores_each_tick_with_its_volume(
        tmp_path: Path, webhook: WebhookStandIn, exchange: str) -> None:
    from functions.webhook_processor.payloads import load_json, parse_updates

    expected = trade_frames.expected(exchange)
    script = ([] if exchange == "binance" else [AwaitSubscribe()]) + [Send(trade_frames.frames(exchange))]

    async def scenario() -> ScriptedExchange:
        async with ScriptedExchange([script], path="/stream") as server:
            config = relay_config(tmp_path, exchange, server.url, webhook, channel="trade", batch_size=10)
            config = type(config)(**{**config.__dict__, "exchanges": (
                ExchangeConfig(exchange, trade_frames.symbols(exchange), ws_url=server.url, channel="trade"),)})
            async with Relay(config) as relay:
                await until(lambda: relay.counters.sent == len(expected), what="the ticks sent")
            return server

    server = run_async(scenario())
    inbox = [json.loads(m) for m in server.connections[0].inbox]
    if exchange == "binance":
        assert server.connections[0].path == "/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade"
    elif exchange == "coinbase":
        assert inbox == [{"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"],
                          "channels": ["matches", "heartbeat"]}]
    else:
        assert inbox[0] == {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD", "ETH/USD"],
                                                              "snapshot": True}}
    assert all("format" not in request.query for request in webhook.requests)  # generic ticks, read by shape
    updates = []
    for body in webhook.bodies():
        accepted, rejected, _ = parse_updates(load_json(body), format_hint=None, source=SOURCE,
                                              received_at_ms=1_800_000_000_000, default_event_ms=None,
                                              default_quote="USD")
        assert rejected == []
        updates += [update for _, update in accepted]
    updates.sort(key=lambda u: (u.symbol, u.event_ms))
    assert [(u.symbol, u.event_ms, u.price, u.volume, u.trades, u.exchange, u.volume_24h) for u in updates] == \
        [(e["symbol"], e["timestamp"], Decimal(e["price"]), Decimal(e["volume"]), e["trades"], exchange, None)
         for e in expected]


def test_the_trade_channel_is_the_default_and_the_ticker_channel_an_option():
    assert ExchangeConfig("binance", ("BTCUSDT",)).channel == "trade"
    assert ExchangeConfig("binance", ("BTCUSDT",), channel="ticker").channel == "ticker"
    with pytest.raises(ConfigError, match="binance.channel: must be one of trade, ticker"):
        ExchangeConfig("binance", ("BTCUSDT",), channel="trades")


@pytest.mark.parametrize(("exchange", "symbol", "reason"), [
    ("binance", "ADAFDUSD", "ambiguous"),            # a real Binance pair the webhook always refuses
    ("binance", "BTCPLN", "no quote asset"),         # would be stored as BTCPLN-<default quote>
    ("kraken", "XBT/BTC", "must differ"),            # Kraken's XBT is BTC
])
def test_a_symbol_the_webhook_would_refuse_is_refused_at_start(exchange, symbol, reason):
    with pytest.raises(ConfigError, match=f"{exchange}.symbols: .*{reason}"):
        ExchangeConfig(exchange, (symbol,))


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_shifted_and_renamed_frames_still_make_the_expected_ticks(exchange):
    """The e2e's variant of the recordings (its own market, recent times) keeps their windows."""
    rename, shift = {"BTC": "RTBQ", "ETH": "RTEQ"}, 60_000 * 1_000_000
    config = ExchangeConfig(exchange, trade_frames.symbols(exchange, rename))
    spec, aggregator = get_exchange(exchange), TradeAggregator(exchange, config.stored_symbols, 1000)
    out: list[str] = []
    for text in trade_frames.frames(exchange, rename, shift):
        frame = spec.trades(json.loads(text, parse_float=Decimal))
        out += aggregator.add(frame) if frame is not None else []
    _same(_ticks(out + aggregator.flush()), trade_frames.expected(exchange, rename, shift), exchange)
