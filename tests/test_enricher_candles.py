"""The enricher maintains each symbol's candles as the stream flows."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from functions.price_enricher.settings import Settings
from functions.shared.price_table.candles import Candle, candle_from_item, series_name, sort_text
from tests.support.enricher_support import CANDLE_TABLE, Counter, MetricsRecorder, Pipeline
from tests.support.faults import FaultInjector

MINUTE = 1_699_999_980_000  # a minute boundary (epoch ms)


pytestmark = pytest.mark.pipeline(candles=True)  # the `pipeline` fixture (tests/conftest.py) with candle table


def minute_batch(pipeline: Pipeline, symbol: str) -> list[dict]:
    """Four ticks in one minute, and one in the next, which closes the first."""
    ticks = [(1_000, "100"), (10_000, "105"), (20_000, "98"), (50_000, "101"), (65_000, "102")]
    return [pipeline.record(pipeline.put(symbol, MINUTE + offset, price)) for offset, price in ticks]


def candle(pipeline: Pipeline, symbol: str, interval: str, start: int) -> dict | None:
    return pipeline.dynamodb.get_item(TableName=CANDLE_TABLE, ConsistentRead=True, Key={
        "series": {"S": series_name(symbol, interval)}, "sk": {"S": sort_text(start)}}).get("Item")


def candle_table(pipeline: Pipeline) -> list[dict]:
    """Every candle, and each registry record without its bookkeeping (compare-and-set version,
    digests of the batches applied, the wall clock of the last step): what a reader sees."""
    items = pipeline.dynamodb.scan(TableName=CANDLE_TABLE, ConsistentRead=True)["Items"]
    seen = [{k: v for k, v in item.items() if k not in ("version", "batches", "maintained_ms")} for item in items]
    return sorted(seen, key=lambda item: (item["series"]["S"], item["sk"]["S"]))


def test_a_batch_flowing_through_process_maintains_its_1m_candle(pipeline, caplog):
    batch = minute_batch(pipeline, "BTC-USD")
    metrics, counter = MetricsRecorder(), Counter(pipeline.dynamodb)
    with caplog.at_level(logging.INFO, logger="price_enricher"):
        assert pipeline.enrich(batch, metrics) == {"batchItemFailures": []}
    requests = counter.total()
    assert metrics.values["DynamoDBRequests"] == requests  # candle requests counted too
    [line] = [r for r in caplog.records if r.getMessage() == "batch enriched"]
    assert line.candle_reads >= 2 and line.candle_writes >= 2  # registry + ticks; the candle + registry
    assert line.dynamodb_reads + line.dynamodb_writes == requests
    item = candle(pipeline, "BTC-USD", "1m", MINUTE)
    assert item is not None
    assert candle_from_item(item) == Candle(MINUTE, Decimal(100), Decimal(105), Decimal(98), Decimal(101), 4)
    assert candle(pipeline, "BTC-USD", "1m", MINUTE + 60_000) is None  # still forming


def test_a_retried_batch_does_not_change_candles(pipeline):
    batch = minute_batch(pipeline, "ETH-USD")
    assert pipeline.enrich(batch) == {"batchItemFailures": []}
    before = candle_table(pipeline)
    assert pipeline.enrich(batch) == {"batchItemFailures": []}   # Lambda retries the whole batch
    assert pipeline.enrich(batch[2:]) == {"batchItemFailures": []}  # or from a failed record on
    assert candle_table(pipeline) == before


def test_a_candle_failure_fails_only_that_symbols_records(pipeline):
    btc, eth = minute_batch(pipeline, "BTC-USD"), minute_batch(pipeline, "ETH-USD")

    def fail_btc_candles(_, request):
        body = request.body if isinstance(request.body, bytes) else request.body.encode()
        return ("AccessDeniedException", 400) if CANDLE_TABLE.encode() in body and b"BTC-USD" in body else None

    injector = FaultInjector(fail_btc_candles).attach(pipeline.dynamodb, "GetItem")
    result = pipeline.enrich(btc + eth)
    pipeline.dynamodb.meta.events.unregister("before-send.dynamodb.GetItem", injector)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in btc)
    assert candle(pipeline, "ETH-USD", "1m", MINUTE) is not None
    assert candle(pipeline, "BTC-USD", "1m", MINUTE) is None
    assert all("enriched_at" in item for item in pipeline.items("BTC-USD"))  # enrichment itself was stored


def test_the_retry_of_a_failed_symbol_maintains_its_candles(pipeline):
    btc = minute_batch(pipeline, "BTC-USD")
    injector = FaultInjector(lambda n, _: ("AccessDeniedException", 400)).attach(pipeline.dynamodb, "GetItem")
    assert len(pipeline.enrich(btc)["batchItemFailures"]) == len(btc)
    pipeline.dynamodb.meta.events.unregister("before-send.dynamodb.GetItem", injector)
    assert pipeline.enrich(btc) == {"batchItemFailures": []}
    assert candle(pipeline, "BTC-USD", "1m", MINUTE)["count"] == {"N": "4"}


def test_the_candle_table_is_part_of_the_settings_contract():
    environ = {"TABLE_NAME": "t", "SUCCESS_TOPIC_ARN": "arn:topic"}
    assert Settings.from_environment(environ).candle_table_name == ""  # optional: no candles maintained
    settings = Settings.from_environment({**environ, "CANDLE_TABLE_NAME": "price-candles-prod"})
    assert settings.candle_table_name == "price-candles-prod"
    assert settings.environment()["CANDLE_TABLE_NAME"] == "price-candles-prod"


def test_without_a_candle_table_nothing_is_maintained(moto_endpoint):
    pipeline = Pipeline(moto_endpoint)
    counter = Counter(pipeline.dynamodb)
    assert pipeline.enrich(minute_batch(pipeline, "BTC-USD")) == {"batchItemFailures": []}
    assert set(counter.calls) == {"Query", "PutItem"}
