"""The SQLite spool: fixed batches with stable bytes, the bound, set-aside, durability
settings; the batch timer; and the throughput measurement."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from price_relay import Relay
from price_relay.bench import measure
from price_relay.spool import Spool
from tests.relay import frames
from tests.relay.loopback import SECRET, SOURCE, ScriptedExchange, Send, WebhookStandIn, relay_config, run_async, until


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_batch_is_fixed_and_reloads_byte_identical_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"

    async def scenario() -> tuple[bytes, bytes, int]:
        spool = Spool(path, max_ticks=100)
        await spool.open()
        await spool.add([("binance", frames.binance_ticker(i), now_ms()) for i in range(7)])
        batch, _ = await spool.take_batch("binance", 5, 1_000_000, 10_000)
        assert batch is not None and batch.size == 5
        await spool.add([("binance", frames.binance_ticker(99), now_ms() - 60_000)])  # later, even if "older"
        await spool.close()
        reopened = Spool(path, max_ticks=100)
        await reopened.open()
        again, _ = await reopened.take_batch("binance", 5, 1_000_000, 10_000)
        assert again is not None and again.id == batch.id
        depth = reopened.depth
        await reopened.close()
        return batch.body, again.body, depth

    first, second, depth = run_async(scenario())
    assert first == second
    assert first == ("[" + ",".join(frames.binance_ticker(i) for i in range(5)) + "]").encode()
    assert depth == 8


def test_batches_form_at_the_count_or_the_age_and_respect_the_byte_limit(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.db", max_ticks=100)
        await spool.open()
        try:
            assert await spool.take_batch("kraken", 5, 1_000_000, 1000) == (None, None)
            await spool.add([("kraken", frames.kraken_ticker(i), now_ms()) for i in range(3)])
            batch, wait = await spool.take_batch("kraken", 5, 1_000_000, 1000)
            assert batch is None and wait is not None and 0 < wait <= 1.0          # too few, too young
            batch, _ = await spool.take_batch("kraken", 3, 1_000_000, 1000)       # enough
            assert batch is not None and batch.size == 3
            await spool.acknowledge(batch, [], 200)
            await spool.add([("kraken", frames.kraken_ticker(10 + i), now_ms() - 5000) for i in range(4)])
            size = len(frames.kraken_ticker(10))
            batch, _ = await spool.take_batch("kraken", 100, 2 + 2 * (size + 1), 1000)  # old: due; bytes: 2 fit
            assert batch is not None and batch.size == 2
            assert spool.depth == 4 and await spool.pending_total() == 2
        finally:
            await spool.close()

    run_async(scenario())


def test_the_bound_refuses_the_newest_ticks(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.db", max_ticks=10)
        await spool.open()
        try:
            result = await spool.add([("coinbase", frames.coinbase_ticker(i), now_ms()) for i in range(12)])
            assert result.added == {"coinbase": 10} and result.dropped == {"coinbase": 2} and result.depth == 10
            batch, _ = await spool.take_batch("coinbase", 10, 1_000_000, 1000)
            assert batch is not None and batch.body.decode().count('"type":"ticker"') == 10
            assert frames.coinbase_ticker(10) not in batch.body.decode()
            aside, _ = await spool.set_aside(batch, 400, "format: refused")
            assert aside == 10 and spool.depth == 0
            rows = await spool.set_aside_rows()
            assert len(rows) == 10 and rows[0]["payload"] == frames.coinbase_ticker(0)
        finally:
            await spool.close()

    run_async(scenario())


def test_the_spool_is_wal_with_full_sync(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.db", max_ticks=10, synchronous="FULL")
        await spool.open()
        try:
            modes = await spool._call(lambda: (spool._conn.execute("PRAGMA journal_mode").fetchone()[0],
                                               spool._conn.execute("PRAGMA synchronous").fetchone()[0]))
            assert modes == ("wal", 2)  # 2 = FULL
        finally:
            await spool.close()

    run_async(scenario())
    assert sqlite3.connect(tmp_path / "spool.db").execute("SELECT COUNT(*) FROM ticks").fetchone()[0] == 0


def test_a_partial_batch_waits_for_batch_seconds(tmp_path: Path) -> None:
    webhook = WebhookStandIn({SOURCE: [SECRET]}).start()

    async def scenario() -> float:
        async with ScriptedExchange([[Send([frames.binance_ticker(i) for i in range(3)])]]) as server:
            config = relay_config(tmp_path, "binance", server.url, webhook, batch_size=100, batch_seconds=0.6)
            async with Relay(config) as relay:
                await until(lambda: relay.counters.received == 3, what="3 ticks spooled")
                received_at = time.monotonic()
                await until(lambda: relay.counters.sent == 3, what="the partial batch sent")
                return time.monotonic() - received_at

    try:
        waited = run_async(scenario())
    finally:
        webhook.stop()
    assert webhook.count() == 1 and len(webhook.stored) == 3
    assert waited >= 0.45   # held for batch_seconds (0.6 s from the first tick), not sent at once


def test_measure_reports_throughput(tmp_path: Path) -> None:
    result = measure(400, batch_size=100, timeout=10)
    assert result["ticks"] == 400 and result["ticks_received_by_webhook"] == 400
    assert result["webhook_requests"] == 4 and result["webhook_requests_per_tick"] == pytest.approx(0.01)
    assert result["ticks_per_second"] > 0 and result["counters"]["sent"] == 400
    assert result["spool_synchronous"] == "FULL"


def test_set_aside_rows_are_bounded_keeping_the_newest(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.db", max_ticks=100, set_aside_max=5)
        await spool.open()
        try:
            pruned_total = 0
            for round_ in range(3):
                await spool.add([("binance", frames.binance_ticker(round_ * 4 + i), now_ms()) for i in range(4)])
                batch, _ = await spool.take_batch("binance", 4, 1_000_000, 0)
                assert batch is not None
                aside, pruned = await spool.set_aside(batch, 400, "symbol: refused")
                assert aside == 4
                pruned_total += pruned
            rows = await spool.set_aside_rows()
            assert spool.set_aside_held == len(rows) == 5 and pruned_total == 7
            assert [r["payload"] for r in rows] == [frames.binance_ticker(i) for i in range(7, 12)]
        finally:
            await spool.close()

    run_async(scenario())


def test_set_aside_rows_older_than_the_age_limit_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"

    async def fill() -> None:
        spool = Spool(path, max_ticks=100)
        await spool.open()
        await spool.add([("kraken", frames.kraken_ticker(i), now_ms()) for i in range(3)])
        batch, _ = await spool.take_batch("kraken", 3, 1_000_000, 0)
        assert batch is not None
        await spool.set_aside(batch, 400, "refused")
        await spool.close()

    run_async(fill())
    with sqlite3.connect(path) as db:  # two of them were set aside 8 days ago
        db.execute("UPDATE set_aside SET set_aside_ms = set_aside_ms - 8 * 86400000 WHERE id <= 2")

    async def reopen() -> tuple[int, int]:
        spool = Spool(path, max_ticks=100, set_aside_max_age_ms=7 * 86_400_000)
        await spool.open()
        try:
            return spool.set_aside_held, len(await spool.set_aside_rows())
        finally:
            await spool.close()

    assert run_async(reopen()) == (1, 1)


def test_a_refusing_webhook_leaves_at_most_the_bound_of_set_aside_rows_and_the_status_counts_them(
        tmp_path: Path) -> None:
    webhook = WebhookStandIn({SOURCE: [SECRET]}).start()
    webhook.mode = "400"
    try:
        ticks = [frames.binance_ticker(i) for i in range(30)]

        async def scenario() -> tuple[dict[str, int], str]:
            async with ScriptedExchange([[Send(ticks)]]) as server:
                config = relay_config(tmp_path, "binance", server.url, webhook, batch_size=10, set_aside_max=12)
                async with Relay(config) as relay:
                    await until(lambda: relay.counters.set_aside == 30, what="30 set aside")
                    return relay.snapshot(), relay.status_text()

        snapshot, status = run_async(scenario())
    finally:
        webhook.stop()
    assert snapshot["set_aside_held"] == 12 and snapshot["set_aside_pruned"] == 18
    assert "set-aside 30 (held 12, pruned 18)" in status
