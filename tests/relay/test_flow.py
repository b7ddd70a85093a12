"""End-to-end scenarios on loopback: recorded exchange frames in, the webhook stand-in out,
with exact totals."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from price_relay import Relay
from price_relay.observability import JsonFormatter
from tests.relay import frames
from tests.relay.loopback import (
    SECRET,
    SOURCE,
    AwaitSubscribe,
    Close,
    Every,
    Gate,
    ScriptedExchange,
    Send,
    WebhookStandIn,
    element_texts,
    relay_config,
    run_async,
    until,
)

EXCHANGES = ("binance", "coinbase", "kraken")


def zero_counters(**counts: int) -> dict[str, int]:
    names = ("received", "sent", "accepted", "duplicates", "queued", "set_aside", "set_aside_pruned", "dropped",
             "retried", "requests", "reconnects", "spooled", "set_aside_held")
    base = dict.fromkeys(names, 0)
    return {**base, **counts}


def opening(exchange: str) -> list[Any]:
    """What an exchange does on connect: wait for the subscribe (not Binance: URL streams),
    then acknowledge and send a first heartbeat."""
    steps: list[Any] = [] if exchange == "binance" else [AwaitSubscribe()]
    return steps + [Send(frames.ACKS[exchange] + frames.HEARTBEATS[exchange])]


def with_heartbeats(exchange: str, ticks: list[str]) -> list[str]:
    out: list[str] = []
    for index, tick in enumerate(ticks):
        out.append(tick)
        if index % 5 == 4:
            out += frames.HEARTBEATS[exchange]
    return out


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_normal_flow_forwards_every_ticker_once(tmp_path: Path, webhook: WebhookStandIn, exchange: str) -> None:
    ticks = [frames.ticker(exchange, i) for i in range(25)]
    script = opening(exchange) + [Send(with_heartbeats(exchange, ticks))]

    async def scenario() -> tuple[ScriptedExchange, dict[str, int], int, int]:
        async with ScriptedExchange([script], path="/stream") as server:
            config = relay_config(tmp_path, exchange, server.url, webhook, batch_size=10, batch_seconds=1.0)
            started_ms = int(time.time() * 1000)
            async with Relay(config) as relay:
                await until(lambda: relay.counters.sent == 25, what="25 ticks sent")
                snapshot = relay.snapshot()
            return server, snapshot, started_ms, int(time.time() * 1000)

    server, snapshot, started_ms, ended_ms = run_async(scenario())
    assert snapshot == zero_counters(received=25, sent=25, accepted=25, requests=3)
    assert [len(element_texts(body)) for body in webhook.bodies()] == [10, 10, 5]
    for request in webhook.requests:
        assert request.query == {"format": [exchange]}
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-source"] == SOURCE
    assert len(server.connections) == 1
    if exchange == "binance":
        assert server.connections[0].path == "/stream?streams=btcusdt@ticker/ethusdt@ticker"
        assert server.connections[0].inbox == []
    elif exchange == "coinbase":
        assert [json.loads(m) for m in server.connections[0].inbox] == [
            {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channels": ["ticker", "heartbeat"]}]
    else:
        assert [json.loads(m) for m in server.connections[0].inbox][:1] == [
            {"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD", "ETH/USD"]}}]
    if exchange != "kraken":
        assert webhook.stored == ticks  # byte for byte, in order
    else:
        assert len(webhook.stored) == 25
        for sent, forwarded in zip(ticks, webhook.stored, strict=True):
            stamp = json.loads(forwarded)["data"][0]["timestamp"]
            assert started_ms <= stamp <= ended_ms
            # the exchange's text, numbers untouched, with the receive time added to the row
            assert forwarded == sent[:-3] + f',"timestamp":{stamp}' + "}]}"


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_forwarded_batches_parse_with_the_project_webhook(tmp_path: Path, webhook: WebhookStandIn,
                                                          exchange: str) -> None:
    """The contract check: the relay's bodies, given to the webhook's own parser with
    ?format=<exchange>, yield every update with its exchange's event time. With
    default_event_ms=None the parser rejects an update that has no time of its own, so
    this also proves the relay stamped Kraken's rows. (This binds to the webhook's parser
    API, which is the point: the relay must change when the webhook's formats do.)"""
    from functions.webhook_processor.payloads import load_json, parse_updates

    ticks = [frames.ticker(exchange, i) for i in range(4)]

    async def scenario() -> None:
        async with ScriptedExchange([opening(exchange) + [Send(ticks)]]) as server:
            async with Relay(relay_config(tmp_path, exchange, server.url, webhook, batch_size=4)) as relay:
                await until(lambda: relay.counters.sent == 4, what="4 ticks sent")

    run_async(scenario())
    [body] = webhook.bodies()
    received_at_ms = int(time.time() * 1000) + 5_000
    accepted, rejected, batch = parse_updates(load_json(body), format_hint=exchange, source=SOURCE,
                                              received_at_ms=received_at_ms, default_event_ms=None,
                                              default_quote="USD")
    assert rejected == [] and batch is True and len(accepted) == 4
    quote = "USDT" if exchange == "binance" else "USD"
    assert [update.symbol for _, update in accepted] == [f"BTC-{quote}", f"ETH-{quote}"] * 2
    assert all(update.exchange == exchange for _, update in accepted)
    assert all(update.event_ms != received_at_ms for _, update in accepted)  # the tick's time, not the webhook's
    prices = {"binance": lambda m: m["data"]["c"], "coinbase": lambda m: m["price"],
              "kraken": lambda m: m["data"][0]["last"]}[exchange]
    assert [update.price for _, update in accepted] == [Decimal(str(prices(json.loads(t, parse_float=Decimal))))
                                                        for t in ticks]


def test_webhook_outage_spools_then_drains_exactly_once(tmp_path: Path, webhook: WebhookStandIn) -> None:
    ticks = [frames.binance_ticker(i) for i in range(25)]
    second, third = asyncio.Event(), asyncio.Event()
    script = [Send(ticks[:10]), Gate(second), Send(ticks[10:15]), Gate(third), Send(ticks[15:])]

    async def scenario() -> tuple[dict[str, int], int]:
        async with ScriptedExchange([script]) as server:
            config = relay_config(tmp_path, "binance", server.url, webhook, batch_size=5)
            async with Relay(config) as relay:
                await until(lambda: relay.counters.accepted == 10, what="first 10 accepted")
                webhook.mode = "store_then_500"     # stores the batch, answers 500: the re-send is a duplicate
                second.set()
                await until(lambda: relay.counters.retried >= 2, what="the failed batch retried")
                webhook.stop()                      # now unreachable
                retried = relay.counters.retried
                await until(lambda: relay.counters.retried >= retried + 2, what="retries against a stopped webhook")
                third.set()
                await until(lambda: relay.counters.received == 25, what="all ticks spooled")
                assert relay.spool.depth == 15 and relay.counters.sent == 10
                webhook.mode = "ok"
                webhook.start()                     # same port
                await until(lambda: relay.counters.sent == 25, what="spool drained")
                return relay.snapshot(), relay.counters.retried

    snapshot, retried = run_async(scenario())
    assert webhook.stored == ticks                  # every tick exactly once, oldest first
    # the batch stored before its 500 came again: each re-send's 5 ticks were duplicates
    resends = sum(1 for r in webhook.requests if element_texts(r.body)[0] == ticks[10]) - 1
    assert resends >= 2 and webhook.duplicates == 5 * resends
    # The relay counts what the 200s said: the batch stored under a 500 comes back as 5 duplicates.
    assert snapshot == zero_counters(received=25, sent=25, accepted=20, duplicates=5, spooled=0, retried=retried,
                                     requests=retried + 5)
    # a re-sent batch has the same body bytes
    bodies = [r.body for r in webhook.requests if element_texts(r.body)[0] == ticks[10]]
    assert len(bodies) >= 3 and len(set(bodies)) == 1


def test_abrupt_stop_then_restart_sends_the_spool_oldest_first(tmp_path: Path, webhook: WebhookStandIn) -> None:
    old = [frames.binance_ticker(i) for i in range(12)]
    new = [frames.binance_ticker(100 + i) for i in range(5)]
    webhook.stop()  # unreachable from the start; its port is kept for the restart

    async def first_run() -> dict[str, int]:
        async with ScriptedExchange([[Send(old)]]) as server:
            relay = Relay(relay_config(tmp_path, "binance", server.url, webhook, batch_size=5))
            task = asyncio.create_task(relay.run())
            await until(lambda: relay.counters.received == 12 and relay.counters.retried >= 1, what="spooled")
            task.cancel()                            # abrupt: no drain
            with pytest.raises(asyncio.CancelledError):
                await task
            return relay.snapshot()

    async def second_run() -> dict[str, int]:
        async with ScriptedExchange([[Send(new)]]) as server:
            async with Relay(relay_config(tmp_path, "binance", server.url, webhook, batch_size=5)) as relay:
                assert relay.spool.depth == 12
                await until(lambda: relay.counters.sent == 17, what="old and new ticks sent")
                return relay.snapshot()

    first = run_async(first_run())
    assert first["received"] == 12 and first["sent"] == 0 and first["spooled"] == 12
    webhook.start()
    second = run_async(second_run())
    assert webhook.stored == old + new
    assert second == zero_counters(received=5, sent=17, accepted=17, requests=second["requests"])
    assert second["requests"] == 4                  # 5+5+2 from the spool, then the 5 new ones


def test_a_silent_stream_is_reconnected_and_continues(tmp_path: Path, webhook: WebhookStandIn) -> None:
    first = [frames.binance_ticker(i) for i in range(3)]
    second = [frames.binance_ticker(10 + i) for i in range(3)]

    async def scenario() -> tuple[ScriptedExchange, dict[str, int]]:
        async with ScriptedExchange([[Send(first)], [Send(second)]]) as server:  # then silent, connection open
            config = relay_config(tmp_path, "binance", server.url, webhook, batch_size=3, silence_seconds=0.4)
            async with Relay(config) as relay:
                await until(lambda: relay.counters.sent == 6, what="both connections' ticks sent")
                await until(lambda: server.connections[0].closed, what="the silent connection closed")
                return server, relay.snapshot()

    server, snapshot = run_async(scenario())
    assert len(server.connections) == 2
    assert snapshot == zero_counters(received=6, sent=6, accepted=6, requests=2, reconnects=1)
    assert webhook.stored == first + second


def test_heartbeats_keep_a_quiet_stream_alive(tmp_path: Path, webhook: WebhookStandIn) -> None:
    """Coinbase heartbeats every 0.1 s for 1 s, silence limit 0.4 s: no reconnect."""
    ticks = [frames.coinbase_ticker(i) for i in range(2)]
    script = opening("coinbase") + [Every(frames.COINBASE_HEARTBEAT, 0.1, 10), Send(ticks)]

    async def scenario() -> tuple[ScriptedExchange, dict[str, int]]:
        async with ScriptedExchange([script]) as server:
            config = relay_config(tmp_path, "coinbase", server.url, webhook, batch_size=2, silence_seconds=0.4)
            async with Relay(config) as relay:
                await until(lambda: relay.counters.sent == 2, what="ticks after the heartbeats")
                return server, relay.snapshot()

    server, snapshot = run_async(scenario())
    assert len(server.connections) == 1 and snapshot["reconnects"] == 0 and snapshot["accepted"] == 2


def test_server_initiated_close_reconnects_and_resubscribes(tmp_path: Path, webhook: WebhookStandIn) -> None:
    first = [frames.kraken_ticker(i) for i in range(2)]
    second = [frames.kraken_ticker(10 + i) for i in range(2)]
    scripts = [opening("kraken") + [Send(first), Close()], opening("kraken") + [Send(second)]]

    async def scenario() -> tuple[ScriptedExchange, dict[str, int]]:
        async with ScriptedExchange(scripts) as server:
            async with Relay(relay_config(tmp_path, "kraken", server.url, webhook, batch_size=2)) as relay:
                await until(lambda: relay.counters.sent == 4, what="ticks from both connections")
                return server, relay.snapshot()

    server, snapshot = run_async(scenario())
    assert len(server.connections) == 2
    assert all(json.loads(c.inbox[0])["method"] == "subscribe" for c in server.connections)
    assert snapshot == zero_counters(received=4, sent=4, accepted=4, requests=2, reconnects=1)


def test_binance_connection_is_replaced_before_its_age_limit(tmp_path: Path, webhook: WebhookStandIn,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    scripts = [[Send([frames.binance_ticker(i) for i in range(2)])],
               [Send([frames.binance_ticker(10 + i) for i in range(2)])]]

    async def scenario() -> tuple[ScriptedExchange, dict[str, int]]:
        async with ScriptedExchange(scripts) as server:
            config = relay_config(tmp_path, "binance", server.url, webhook, batch_size=2, silence_seconds=30,
                                  max_connection_seconds=0.5, backoff_base_seconds=5, backoff_max_seconds=10)
            async with Relay(config) as relay:
                await until(lambda: relay.counters.sent == 4, what="ticks from the replacement connection")
                return server, relay.snapshot()

    with caplog.at_level(logging.INFO, logger="price_relay"):
        server, snapshot = run_async(scenario())
    assert len(server.connections) >= 2 and snapshot["reconnects"] >= 1 and snapshot["accepted"] == 4
    assert any(getattr(r, "event", "") == "proactive_reconnect" for r in caplog.records)
    # replaced at once (no backoff, which is 5 s here), and not for silence (30 s)
    assert not any(getattr(r, "event", "") == "silent" for r in caplog.records)


def test_kraken_gets_application_pings_and_pongs_keep_it_alive(tmp_path: Path, webhook: WebhookStandIn) -> None:
    async def scenario() -> tuple[ScriptedExchange, dict[str, int]]:
        async with ScriptedExchange([opening("kraken") + [Send([frames.kraken_ticker(1)])]], pong=True) as server:
            config = relay_config(tmp_path, "kraken", server.url, webhook, batch_size=1, kraken_ping_seconds=0.1,
                                  silence_seconds=0.35)
            async with Relay(config) as relay:
                await until(lambda: server.pings() >= 8, what="8 pings (0.8 s, twice the silence limit)")
                return server, relay.snapshot()

    server, snapshot = run_async(scenario())
    assert len(server.connections) == 1 and snapshot["reconnects"] == 0 and snapshot["accepted"] == 1
    assert {"method": "ping"} in [json.loads(m) for m in server.connections[0].inbox]


def test_a_400_sets_the_batch_aside_without_retrying(tmp_path: Path, webhook: WebhookStandIn,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    refused = [frames.binance_ticker(i) for i in range(5)]
    later = [frames.binance_ticker(10 + i) for i in range(5)]
    gate = asyncio.Event()

    async def scenario() -> tuple[dict[str, int], list[dict[str, Any]]]:
        async with ScriptedExchange([[Send(refused), Gate(gate), Send(later)]]) as server:
            async with Relay(relay_config(tmp_path, "binance", server.url, webhook, batch_size=5)) as relay:
                webhook.mode = "400"
                await until(lambda: relay.counters.set_aside == 5, what="the batch set aside")
                webhook.mode = "ok"
                gate.set()
                await until(lambda: relay.counters.sent == 5, what="later ticks sent")
                return relay.snapshot(), await relay.spool.set_aside_rows()

    with caplog.at_level(logging.INFO, logger="price_relay"):
        snapshot, rows = run_async(scenario())
    assert webhook.count(400) == 1 and webhook.count() == 2          # refused once, never retried
    assert webhook.stored == later
    assert snapshot == zero_counters(received=10, sent=5, accepted=5, set_aside=5, set_aside_held=5, requests=2)
    assert [row["payload"] for row in rows] == refused
    assert {(row["status"], row["error"]) for row in rows} == {(400, "format: refused by the test")}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and getattr(r, "event", "") == "set_aside"]
    assert len(errors) == 1 and errors[0].error == "format: refused by the test"


def test_rejected_items_of_a_200_are_set_aside_and_the_rest_accepted(tmp_path: Path, webhook: WebhookStandIn) -> None:
    ticks = [frames.binance_ticker(0), frames.binance_ticker(1, price="-1"), frames.binance_ticker(2),
             frames.binance_ticker(3)]

    async def scenario() -> tuple[dict[str, int], list[dict[str, Any]]]:
        async with ScriptedExchange([[Send(ticks)]]) as server:
            async with Relay(relay_config(tmp_path, "binance", server.url, webhook, batch_size=4)) as relay:
                await until(lambda: relay.counters.sent == 4, what="the batch acknowledged")
                return relay.snapshot(), await relay.spool.set_aside_rows()

    snapshot, rows = run_async(scenario())
    assert snapshot == zero_counters(received=4, sent=4, accepted=3, set_aside=1, set_aside_held=1, requests=1)
    assert [(row["payload"], row["status"], row["error"]) for row in rows] == [
        (ticks[1], 200, "price: must be greater than 0")]


def test_a_401_is_retried_not_set_aside_and_nothing_secret_is_logged(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A wrong secret is the relay's configuration, not the batch's fault: keep and retry."""
    webhook = WebhookStandIn({SOURCE: ["the-webhook-knows-another-secret"]}).start()
    ticks = [frames.binance_ticker(i) for i in range(3)]

    async def scenario() -> dict[str, int]:
        async with ScriptedExchange([[Send(ticks)]]) as server:
            async with Relay(relay_config(tmp_path, "binance", server.url, webhook, batch_size=3)) as relay:
                await until(lambda: relay.counters.retried >= 3, what="401s retried")
                assert relay.spool.depth == 3 and relay.counters.set_aside == 0
                webhook.secrets[SOURCE].append(SECRET)   # the rotation reaches the webhook
                await until(lambda: relay.counters.sent == 3, what="delivered after the fix")
                return relay.snapshot()

    try:
        with caplog.at_level(logging.DEBUG, logger="price_relay"):
            snapshot = run_async(scenario())
    finally:
        webhook.stop()
    assert webhook.stored == ticks and snapshot["set_aside"] == 0 and snapshot["accepted"] == 3
    retry_lines = [r for r in caplog.records if getattr(r, "event", "") == "retry"]
    assert retry_lines and all(r.levelno == logging.ERROR and r.status == 401 for r in retry_lines)
    formatter = JsonFormatter()
    assert all(SECRET not in formatter.format(r) for r in caplog.records)


def test_spool_bound_warns_at_80_percent_and_refuses_at_the_bound(tmp_path: Path, webhook: WebhookStandIn,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    webhook.stop()
    burst = [frames.binance_ticker(i) for i in range(15)]
    again = [frames.binance_ticker(100 + i) for i in range(9)]
    gate = asyncio.Event()

    def records(event: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "event", "") == event]

    async def scenario() -> dict[str, int]:
        async with ScriptedExchange([[Send(burst), Gate(gate), Send(again)]]) as server:
            config = relay_config(tmp_path, "binance", server.url, webhook, batch_size=5, spool_max=10)
            async with Relay(config) as relay:
                await until(lambda: relay.counters.received + relay.counters.dropped == 15, what="the burst handled")
                assert relay.counters.received == 10 and relay.counters.dropped == 5 and relay.spool.depth == 10
                assert len(records("spool_high")) == 1 and records("dropped")
                webhook.start()
                await until(lambda: relay.counters.sent == 10, what="the spool drained")
                await until(lambda: len(records("spool_ok")) == 1, what="back under 80%")
                webhook.stop()
                gate.set()
                await until(lambda: relay.counters.received == 19, what="9 more spooled")
                await until(lambda: len(records("spool_high")) == 2, what="the second crossing warned")
                webhook.start()
                await until(lambda: relay.counters.sent == 19, what="drained again")
                return relay.snapshot()

    with caplog.at_level(logging.INFO, logger="price_relay"):
        snapshot = run_async(scenario())
    assert snapshot["received"] == 19 and snapshot["dropped"] == 5 and snapshot["accepted"] == 19
    assert webhook.stored == burst[:10] + again                      # the newest were refused, not the oldest
    assert all(r.levelno == logging.WARNING for r in records("spool_high"))
    assert all(r.levelno == logging.ERROR for r in records("dropped"))
    assert sum(r.dropped for r in records("dropped")) == 5
