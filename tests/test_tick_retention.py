"""Tick retention: with an environment's `tick_retention_days`, every stored tick
carries `expires_at` (the table's TTL attribute, epoch seconds), whichever path stores it (the
webhook, the webhook-DLQ re-drive), and the enricher keeps it; candle maintenance gets the
enricher's clock (`now_ms`) and, with a retention, the horizon before which it recomputes
nothing (`oldest_recomputable_ms`). Unset: no `expires_at`, every late minute recomputed.

Against moto's server, like the webhook, drain and enricher tests.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

from emulator import session
from environments.config import load_config
from functions.price_enricher import service as enricher
from functions.price_enricher.settings import Settings as EnricherSettings
from functions.shared.price_table import candles
from functions.shared.price_table.candles import DynamoCandleStore, series_name, sort_text
from functions.shared.price_table.keys import sort_key, table_definition
from functions.shared.price_table.ticks import (
    EXPIRES_AT,
    EXPIRY_MARGIN_MS,
    oldest_recomputable_ms,
    tick_expiry,
    to_item,
)
from functions.shared.price_update import PriceUpdate, dead_letter_body
from functions.webhook_processor import service as webhook
from functions.webhook_processor.signature import parse_secrets
from ops.drain_cli import run_drain
from tests.support.enricher_support import CANDLE_TABLE, Pipeline
from tests.support.webhook import SECRET, SOURCE, body_of, create_table, scan_items, url_event

DAY_MS = 86_400_000
MINUTE_MS = 60_000
NOW = 1_767_225_630.0             # 2026-01-01T00:00:30Z: a whole second, mid-minute
NOW_MS = int(NOW * 1000)
TABLE = "crypto-prices-retention"


def _expiry(item: dict[str, Any]) -> int | None:
    value = item.get(EXPIRES_AT)
    return None if value is None else int(value["N"])


# ---- the item format ------------------------------------------------------------------------------

def test_expiry_is_epoch_seconds_days_after_receipt_or_after_a_tick_dated_ahead():
    received = PriceUpdate("BTC-USD", NOW_MS - 5_000, Decimal(1), "x", "s", NOW_MS + 999)
    assert tick_expiry(received, 7) == NOW_MS // 1000 + 7 * 86_400  # seconds: the milliseconds dropped
    ahead = PriceUpdate("BTC-USD", NOW_MS + 3_600_000, Decimal(1), "x", "s", NOW_MS)
    assert tick_expiry(ahead, 1) == (NOW_MS + 3_600_000) // 1000 + 86_400
    assert _expiry(to_item(received, sort_key(received.event_ms, 0), retention_days=7)) == tick_expiry(received, 7)
    assert EXPIRES_AT not in to_item(received, sort_key(received.event_ms, 0))
    # Every tick of a minute at or after the horizon outlives now + the margin.
    horizon = oldest_recomputable_ms(NOW_MS, 7)
    assert horizon == NOW_MS - 7 * DAY_MS + EXPIRY_MARGIN_MS
    at_horizon = PriceUpdate("BTC-USD", horizon, Decimal(1), "x", "s", horizon)
    assert tick_expiry(at_horizon, 7) * 1000 >= NOW_MS + EXPIRY_MARGIN_MS


# ---- the webhook ----------------------------------------------------------------------------------

@pytest.fixture
def webhook_aws(moto_endpoint):
    return create_table(moto_endpoint, TABLE, "webhook-dlq-retention", webhook.CLIENT_CONFIG)


@pytest.mark.parametrize("retention", [7, None])
def test_webhook_items_expire_retention_days_after_receipt(webhook_aws, retention):
    dynamodb, sqs, queue_url = webhook_aws
    settings = webhook.Settings(table_name=TABLE, dlq_url=queue_url,
                                secrets=parse_secrets(json.dumps({SOURCE: [SECRET]})), tick_retention_days=retention)
    body = json.dumps([{"symbol": "BTC", "price": "50000.5", "exchange": "binance", "timestamp": NOW_MS - 90_000},
                       {"symbol": "ETH", "price": "3000", "exchange": "binance", "timestamp": NOW_MS + 3_600_000}])
    response = webhook.process(url_event(body, timestamp=int(NOW)), settings, dynamodb, sqs, NOW)
    assert body_of(response)["accepted"] == 2
    btc, eth = scan_items(dynamodb, TABLE)
    assert int(btc["received_at"]["N"]) == NOW_MS
    if retention is None:
        assert _expiry(btc) is None and _expiry(eth) is None
    else:
        # From the latest of receipt, the tick's own time and the write (here the test's clock is
        # fixed in the past, so the write's wall clock is the latest; in service they are ~equal).
        for item, own in ((btc, NOW_MS - 90_000), (eth, NOW_MS + 3_600_000)):  # eth: dated an hour ahead
            latest = max(NOW_MS, own, int(item["stored_at"]["N"]))
            assert _expiry(item) == latest // 1000 + retention * 86_400


# ---- the webhook-DLQ re-drive ---------------------------------------------------------------------

@pytest.fixture
def drain_stack(moto_endpoint) -> tuple[dict[str, Any], dict[str, str]]:
    clients = session.clients(moto_endpoint, "us-east-1", ("sqs", "dynamodb", "dynamodbstreams", "sns"))
    stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    clients["dynamodb"].create_table(**table_definition(TABLE), StreamSpecification=stream)
    outputs = {"table_name": TABLE,
               "success_topic_arn": clients["sns"].create_topic(Name="price-updates-retention")["TopicArn"],
               "webhook_dlq_url": clients["sqs"].create_queue(QueueName="webhook-dlq")["QueueUrl"],
               "enricher_dlq_url": clients["sqs"].create_queue(QueueName="enricher-dlq")["QueueUrl"]}
    return clients, outputs


@pytest.mark.parametrize("retention", [7, None])
def test_drain_redrives_webhook_updates_with_the_environments_retention(drain_stack, retention):
    """`invoke drain-dlq --queue webhook` stores with the environment's tick_retention_days; the
    item expires that many days after the re-drive, never stored already expired (its receipt
    here is in the past: a message older than the retention would be)."""
    clients, outputs = drain_stack
    received = NOW_MS - 2 * 3_600_000
    update = PriceUpdate("LATE-USD", received - 1_000, Decimal("50.5"), "x", "test", received)
    clients["sqs"].send_message(QueueUrl=outputs["webhook_dlq_url"], MessageBody=json.dumps(
        dead_letter_body(update, "ThrottlingException: rate exceeded", received + 1)))
    config = load_config("local").model_copy(update={"tick_retention_days": retention})

    report = run_drain(config, outputs, "webhook", console=Console(file=io.StringIO()), clients=clients)

    assert report.ok and report.stored == 1
    [item] = scan_items(clients["dynamodb"], TABLE)
    stored_at = int(item["stored_at"]["N"])
    assert stored_at > received
    assert _expiry(item) == (None if retention is None else stored_at // 1000 + retention * 86_400)


# ---- the enricher ---------------------------------------------------------------------------------

def test_enricher_settings_declare_the_retention_and_render_it_only_when_set():
    unset = EnricherSettings("t", "arn:topic")
    assert unset.tick_retention_days is None and "TICK_RETENTION_DAYS" not in unset.environment()
    assert EnricherSettings.from_environment(unset.environment()) == unset
    kept = EnricherSettings("t", "arn:topic", candle_table_name="c", tick_retention_days=30)
    assert kept.environment()["TICK_RETENTION_DAYS"] == "30"
    assert EnricherSettings.from_environment(kept.environment()) == kept


class MaintainSpy:
    """Wraps `candles.maintain`: what each call was given, and what it did."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict[str, Any]] = []
        self.results: list[candles.CandleWrites] = []
        real = candles.maintain

        def spy(*args: Any, **kwargs: Any) -> candles.CandleWrites:
            self.calls.append(kwargs)
            result = real(*args, **kwargs)
            self.results.append(result)
            return result

        monkeypatch.setattr(candles, "maintain", spy)


def _pipeline(endpoint: str, retention: int | None) -> Pipeline:
    pipeline = Pipeline(endpoint, candles=True)
    pipeline.settings = EnricherSettings(pipeline.table, pipeline.topic, pipeline.settings.windows,
                                         CANDLE_TABLE, tick_retention_days=retention)
    return pipeline


def _enrich(pipeline: Pipeline, records: list[dict], now: float) -> None:
    result = enricher.process({"Records": records}, pipeline.settings, pipeline.dynamodb, pipeline.sns, now)
    assert result == {"batchItemFailures": []}


@pytest.mark.parametrize("retention", [7, None])
def test_enricher_gives_maintenance_its_clock_and_the_retention_horizon(moto_endpoint, monkeypatch, retention):
    spy = MaintainSpy(monkeypatch)
    pipeline = _pipeline(moto_endpoint, retention)
    _enrich(pipeline, [pipeline.record(pipeline.put("BTC-USD", NOW_MS - 1_000, "100"))], NOW)
    [call] = spy.calls
    assert call["now_ms"] == NOW_MS
    assert call["oldest_recomputable_ms"] == (
        None if retention is None else NOW_MS - retention * DAY_MS + EXPIRY_MARGIN_MS)


def test_a_tick_dated_ahead_does_not_move_the_watermark_past_now(moto_endpoint, monkeypatch):
    """Without the enricher's clock, a tick dated 10 minutes ahead would close the minutes up to
    its own and make every tick of the real present late (recomputed from ticks, paid in writes)."""
    spy = MaintainSpy(monkeypatch)
    pipeline = _pipeline(moto_endpoint, None)
    minute = NOW_MS - NOW_MS % MINUTE_MS
    first = [pipeline.record(pipeline.put("BTC-USD", minute - 2 * MINUTE_MS + 5_000, "100")),
             pipeline.record(pipeline.put("BTC-USD", NOW_MS + 10 * MINUTE_MS, "101"))]
    _enrich(pipeline, first, NOW)
    state = DynamoCandleStore(pipeline.dynamodb, CANDLE_TABLE, pipeline.table).read_state("BTC-USD", True)
    assert state is not None and state.watermark == minute <= NOW_MS

    _enrich(pipeline, [pipeline.record(pipeline.put("BTC-USD", NOW_MS + 1_000, "102"))], NOW + 1)
    assert spy.results[-1].late_minutes == 0  # the present is not late


def _candle(pipeline: Pipeline, start: int) -> dict | None:
    return pipeline.dynamodb.get_item(TableName=CANDLE_TABLE, ConsistentRead=True, Key={
        "series": {"S": series_name("ETH-USD", "1m")}, "sk": {"S": sort_text(start)}}).get("Item")


def test_late_minutes_beyond_the_retention_horizon_are_not_recomputed(moto_endpoint, monkeypatch):
    """With a one-day retention, a late tick older than the horizon (now - 1 day + the margin) in
    a minute whose candle counted a tick TTL has deleted is left out: the candle stays as it is,
    not recomputed from what is left. One in a minute without a candle (nothing to make smaller:
    a backfill) is computed, and one inside the horizon is recomputed."""
    spy = MaintainSpy(monkeypatch)
    pipeline = _pipeline(moto_endpoint, 1)

    def put(event_ms: int, price: str, received_ms: int) -> dict:
        update = PriceUpdate("ETH-USD", event_ms, Decimal(price), "binance", "test", received_ms)
        item = to_item(update, sort_key(event_ms, 0), received_ms, retention_days=1)  # as the webhook stores it
        pipeline.dynamodb.put_item(TableName=pipeline.table, Item=item)
        return item

    expired = NOW_MS - DAY_MS + 10 * MINUTE_MS    # before the horizon (now - 1 day + 1 hour)
    backfill = expired - 5 * MINUTE_MS            # before it too, in a minute without a candle
    kept = NOW_MS - DAY_MS + 2 * 3_600_000        # after it
    gone = put(expired - 1_000, "8", expired - 1_000)  # received on time: expires 10 minutes from now
    _enrich(pipeline, [pipeline.record(gone), pipeline.record(put(NOW_MS - 2 * MINUTE_MS, "10", NOW_MS)),
                       pipeline.record(put(NOW_MS - 1_000, "11", NOW_MS))], NOW)
    assert _candle(pipeline, expired - expired % MINUTE_MS)["count"] == {"N": "1"}
    pipeline.dynamodb.delete_item(TableName=pipeline.table,  # as TTL does once it expires
                                  Key={"symbol": gone["symbol"], "timestamp": gone["timestamp"]})
    _enrich(pipeline, [pipeline.record(put(backfill, "7", NOW_MS)), pipeline.record(put(expired, "9", NOW_MS)),
                       pipeline.record(put(kept, "12", NOW_MS))], NOW + 1)
    result = spy.results[-1]
    # Each late tick's minute and the next (the composite's carry-in); the expired one's own minute is left out.
    assert (result.late_minutes, result.skipped_minutes) == (5, 1)
    assert _candle(pipeline, kept - kept % MINUTE_MS) is not None
    assert _candle(pipeline, backfill - backfill % MINUTE_MS) is not None
    assert _candle(pipeline, expired - expired % MINUTE_MS)["count"] == {"N": "1"}  # as it was


def test_enrichment_and_corrections_keep_expires_at(moto_endpoint):
    """The enricher's put is the stream's full image plus indicators, and a correction the item
    as read with its indicators replaced: `expires_at` stays on both."""
    pipeline = _pipeline(moto_endpoint, 7)

    def put(event_ms: int, price: str) -> dict:
        update = PriceUpdate("SOL-USD", event_ms, Decimal(price), "binance", "test", NOW_MS)
        item = to_item(update, sort_key(event_ms, 0), NOW_MS, retention_days=7)
        pipeline.dynamodb.put_item(TableName=pipeline.table, Item=item)
        return pipeline.record(item)

    start = NOW_MS - 10 * MINUTE_MS
    _enrich(pipeline, [put(start, "100"), put(start + 2_000, "102")], NOW)
    _enrich(pipeline, [put(start + 1_000, "90")], NOW + 1)  # late: the item after it is corrected
    items = sorted(pipeline.items("SOL-USD"), key=lambda item: item["timestamp"])
    assert all("enriched_at" in item for item in items)
    assert "corrected_at" in items[2]
    assert [item[EXPIRES_AT] for item in items] == [NOW_MS // 1000 + 7 * 86_400] * 3


def test_the_wholeness_check_assumes_no_retention_shorter_than_the_environment_files_least():
    """Late minutes newer than the shortest allowed retention are recomputed unchecked: no tick
    can have expired there, whatever retention it was written with."""
    from environments.config import EnvironmentConfig

    [bound] = [rule.ge for rule in EnvironmentConfig.model_fields["tick_retention_days"].metadata
               if hasattr(rule, "ge")]
    assert candles.MIN_RETENTION_DAYS == bound
    assert candles.wholeness_horizon(None, NOW_MS) == oldest_recomputable_ms(NOW_MS, bound)
    assert candles.wholeness_horizon(oldest_recomputable_ms(NOW_MS, 7), NOW_MS) == oldest_recomputable_ms(NOW_MS, 1)
