"""Price enricher: indicators equal pandas, one history query per symbol, safe stream semantics."""

from __future__ import annotations

import base64
import gzip
import json
import math
from decimal import Decimal

import boto3
import pandas as pd
import pytest

from demo.price_data import SOURCE_NOTE, load_series
from functions.log_alerts import handler as log_alerts
from functions.log_alerts import service as log_alerts_service
from functions.price_enricher.indicators import Windows
from tests.support.enricher_support import Counter
from tests.support.faults import FaultInjector


def pandas_indicators(prices: list[float], windows: Windows) -> pd.DataFrame:
    """The reference: pandas over the whole series."""
    series = pd.Series(prices, dtype="float64")
    frame = pd.DataFrame({"price": series})
    for n in windows.sma:
        frame[f"sma_{n}"] = series.rolling(n).mean()
    for n in windows.ema:
        frame[f"ema_{n}"] = series.ewm(span=n, adjust=False).mean()
    log_returns = (series / series.shift(1)).apply(math.log)
    for n in windows.volatility:
        frame[f"volatility_{n}"] = log_returns.rolling(n).std(ddof=1)
    frame["change_pct"] = series.pct_change() * 100
    return frame


@pytest.mark.parametrize("symbol, limit, batch_size", [("BTC-USD", None, 7), ("EUR-USD", 300, 50)])
def test_indicators_match_pandas_on_real_prices(pipeline, symbol, limit, batch_size):
    """Real series: demo.price_data.SOURCE_NOTE (the backtesting wheel's BTC/USD and EUR/USD)."""
    assert SOURCE_NOTE
    bars = load_series(symbol, limit)
    records = [pipeline.record(pipeline.put(symbol, bar.event_ms, bar.close)) for bar in bars]
    for start in range(0, len(records), batch_size):
        assert pipeline.enrich(records[start:start + batch_size]) == {"batchItemFailures": []}

    stored = sorted(pipeline.items(symbol), key=lambda item: item["timestamp"])
    expected = pandas_indicators([float(bar.close) for bar in bars], pipeline.settings.windows)
    columns = [c for c in expected.columns if c != "price"]
    compared = 0
    for index, item in enumerate(stored):
        assert "enriched_at" in item
        for column in columns:
            reference = expected[column].iloc[index]
            if pd.isna(reference):
                assert column not in item, (index, column)  # absent, never 0
            else:
                assert float(item[column]) == pytest.approx(reference, rel=1e-9, abs=1e-12), (index, column)
                compared += 1
    assert compared > len(stored) * (len(columns) - 1)


def test_short_history_leaves_fields_absent(pipeline):
    first = pipeline.put("ETH-USD", 1_700_000_000_000, "2000")
    pipeline.enrich([pipeline.record(first)])
    [item] = pipeline.items("ETH-USD")
    assert item["ema_12"] == Decimal("2000.0") and item["ema_26"] == Decimal("2000.0")  # seeded
    assert not any(k.startswith(("sma_", "volatility_", "change_pct")) for k in item)
    second = pipeline.put("ETH-USD", 1_700_000_001_000, "2100")
    pipeline.enrich([pipeline.record(second)])
    latest = max(pipeline.items("ETH-USD"), key=lambda i: i["timestamp"])
    assert latest["change_pct"] == Decimal("5.0") and "sma_5" not in latest and "volatility_20" not in latest


def test_hundred_record_multi_symbol_batch_costs_one_query_per_symbol(pipeline):
    symbols = [f"S{i}-USD" for i in range(5)]
    for symbol in symbols:  # history that is already enriched
        history = [pipeline.record(pipeline.put(symbol, 1_600_000_000_000 + t * 1000, 100 + t)) for t in range(25)]
        pipeline.enrich(history)
    batch = [pipeline.record(pipeline.put(symbol, 1_700_000_000_000 + t * 1000, 200 + t))
             for t in range(20) for symbol in symbols]
    counter = Counter(pipeline.dynamodb)
    assert pipeline.enrich(batch) == {"batchItemFailures": []}
    assert counter.calls == {"Query": 5, "PutItem": 100}
    requests_per_record = counter.total() / len(batch)
    assert requests_per_record == pytest.approx(1.05)  # docs/candles-and-indicators.md quotes this figure
    for symbol in symbols:
        latest = max(pipeline.items(symbol), key=lambda i: i["timestamp"])
        assert latest["sma_5"] == Decimal("217.0")  # 215..219


def test_modify_and_remove_records_are_ignored(pipeline):
    item = pipeline.put("BTC-USD", 1_700_000_000_000, "37000")
    counter = Counter(pipeline.dynamodb)
    result = pipeline.enrich([pipeline.record(item, "MODIFY"), pipeline.record(item, "REMOVE")])
    assert result == {"batchItemFailures": []}
    assert counter.total() == 0 and pipeline.notifications() == []
    assert "enriched_at" not in pipeline.items("BTC-USD")[0]


def test_a_poison_record_is_reported_and_the_rest_stored(pipeline):
    good = [pipeline.record(pipeline.put("BTC-USD", 1_700_000_000_000 + t, 100 + t)) for t in range(3)]
    poison = pipeline.record({"symbol": {"S": "BTC-USD"}, "timestamp": {"N": "1700000000001500"},
                              "price": {"S": "not a number"}})
    no_image = pipeline.record(pipeline.put("ETH-USD", 1_700_000_000_000, 5))
    del no_image["dynamodb"]["NewImage"]
    result = pipeline.enrich([good[0], poison, good[1], no_image, good[2]])
    assert result == {"batchItemFailures": [{"itemIdentifier": poison["dynamodb"]["SequenceNumber"]},
                                            {"itemIdentifier": no_image["dynamodb"]["SequenceNumber"]}]}
    assert all("enriched_at" in item for item in pipeline.items("BTC-USD"))
    assert len(pipeline.notifications()) == 3


def test_a_repeated_batch_gives_identical_items(pipeline):
    records = [pipeline.record(pipeline.put("BTC-USD", 1_700_000_000_000 + t * 1000, 100 + t * 3)) for t in range(30)]
    pipeline.enrich(records[:10])
    pipeline.enrich(records[10:])
    first = pipeline.items("BTC-USD")
    pipeline.enrich(records[10:])  # Lambda retries from the lowest failed sequence number
    pipeline.enrich(records)
    assert pipeline.items("BTC-USD") == first


def test_an_item_deleted_before_enrichment_is_not_resurrected(pipeline):
    kept, deleted = (pipeline.record(pipeline.put("BTC-USD", 1_700_000_000_000 + t, 100 + t)) for t in range(2))
    pipeline.dynamodb.delete_item(TableName=pipeline.settings.table_name, Key=deleted["dynamodb"]["Keys"])
    assert pipeline.enrich([kept, deleted]) == {"batchItemFailures": []}
    assert [item["timestamp"] for item in pipeline.items("BTC-USD")] == [
        int(kept["dynamodb"]["Keys"]["timestamp"]["N"])]
    assert len(pipeline.notifications()) == 1


def test_a_retried_record_keeps_and_announces_its_first_enrichment(pipeline):
    """A retry recomputes from a history that may have changed; what was stored first stands."""
    records = [pipeline.record(pipeline.put("ADA-USD", 1_700_000_000_000 + t * 1000, 10 + t)) for t in range(1, 8)]
    pipeline.enrich(records)
    first = {item["timestamp"]: item for item in pipeline.items("ADA-USD")}
    first_messages = {m["body"]["timestamp"]: m["body"] for m in pipeline.notifications()}
    pipeline.put("ADA-USD", 1_700_000_000_000, "1000")  # an older tick arrives: a recompute would differ
    assert pipeline.enrich(records[-1:]) == {"batchItemFailures": []}  # Lambda retries the last record
    assert {item["timestamp"]: item for item in pipeline.items("ADA-USD") if item["price"] != 1000} == first
    [again] = [m["body"] for m in pipeline.notifications()]
    assert again == first_messages[again["timestamp"]]  # same indicators, same enriched_at


def test_a_late_record_is_enriched_from_the_history_before_it(pipeline):
    """Late-record corrections changed the second half: the later items are now corrected (they were
    left as enriched without the late tick, which skewed every later EMA for good)."""
    records = {t: pipeline.record(pipeline.put("SOL-USD", 1_700_000_000_000 + t * 1000, 10 + t))
               for t in range(0, 10) if t != 5}
    pipeline.enrich([records[t] for t in sorted(records)])
    before = {item["timestamp"]: item for item in pipeline.items("SOL-USD")}
    late = pipeline.record(pipeline.put("SOL-USD", 1_700_000_000_000 + 5 * 1000, "15"))
    pipeline.enrich([late])
    after = {item["timestamp"]: item for item in pipeline.items("SOL-USD")}
    late_item = after[int(late["dynamodb"]["NewImage"]["timestamp"]["N"])]
    assert late_item["sma_5"] == Decimal("13.0")   # 11, 12, 13, 14, 15
    assert float(late_item["change_pct"]) == pytest.approx(1 / 14 * 100, rel=1e-12)
    expected = pandas_indicators([10.0 + t for t in range(10)], pipeline.settings.windows)
    for index, (timestamp, item) in enumerate(sorted(after.items())):
        for column in ("sma_5", "ema_12", "ema_26", "change_pct"):
            reference = expected[column].iloc[index]
            if pd.isna(reference):
                assert column not in item, (index, column)
            else:
                assert float(item[column]) == pytest.approx(reference, rel=1e-12), (index, column)
        if timestamp in before and timestamp > int(late["dynamodb"]["NewImage"]["timestamp"]["N"]):
            assert item["enriched_at"] == before[timestamp]["enriched_at"] and "corrected_at" in item  # corrected
        elif timestamp in before:
            assert item == before[timestamp]  # the items before the late tick are untouched


def test_every_enriched_update_is_announced_with_a_symbol_attribute(pipeline):
    records = [pipeline.record(pipeline.put(symbol, 1_700_000_000_000 + t, 50 + t))
               for t in range(12) for symbol in ("BTC-USD", "ETH-USD")]
    pipeline.enrich(records)
    messages = pipeline.notifications()
    assert len(messages) == 24
    assert sorted((m["body"]["symbol"], m["body"]["timestamp"]) for m in messages) == sorted(
        (r["dynamodb"]["NewImage"]["symbol"]["S"], int(r["dynamodb"]["NewImage"]["timestamp"]["N"])) for r in records)
    for message in messages:
        assert message["attributes"]["symbol"]["Value"] == message["body"]["symbol"]
        assert "ema_12" in message["body"]["indicators"] and message["body"]["price"]


def test_failed_notifications_are_reported_for_retry(pipeline):
    records = [pipeline.record(pipeline.put("BTC-USD", 1_700_000_000_000 + t, 50 + t)) for t in range(3)]
    FaultInjector(lambda n, _: ("InternalError", 500)).attach(pipeline.sns, "PublishBatch")
    pipeline.sns.meta.config.retries = {"max_attempts": 1}
    result = pipeline.enrich(records)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in records)


def test_history_read_failure_fails_only_that_symbols_records(pipeline):
    btc = [pipeline.record(pipeline.put("BTC-USD", 1_700_000_000_000 + t, 50 + t)) for t in range(2)]
    eth = [pipeline.record(pipeline.put("ETH-USD", 1_700_000_000_000 + t, 50 + t)) for t in range(2)]

    def fail_btc(_, request):
        return ("AccessDeniedException", 400) if b"BTC-USD" in request.body else None

    FaultInjector(fail_btc).attach(pipeline.dynamodb, "Query")
    result = pipeline.enrich(btc + eth)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in btc)
    assert all("enriched_at" in item for item in pipeline.items("ETH-USD"))


# ---- log alerts ----------------------------------------------------------------------------

def awslogs_event(lines: list[str], group: str = "/aws/lambda/price-enricher-test") -> dict:
    payload = {"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": group,
               "logStream": "2026/11/22/[$LATEST]abc", "subscriptionFilters": ["price-enricher-error-lines-test"],
               "logEvents": [{"id": str(i), "timestamp": 1_700_000_000_000 + i, "message": line}
                             for i, line in enumerate(lines)]}
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}


def test_log_alerts_decodes_a_real_gzip_payload_and_publishes_one_concise_alert(moto_endpoint, monkeypatch):
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_endpoint)
    topic = sns.create_topic(Name="pipeline-alerts-test")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    monkeypatch.setenv("ALERTS_TOPIC_ARN", topic)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    log_alerts._runtime.cache_clear()
    lines = [json.dumps({"level": "ERROR", "message": "records failed enrichment", "failed": 2,
                         "x-signature": "t=1,v1=" + "ab" * 32})] + \
            ["[ERROR] upstream said x-signature=t=1,v1=" + "cd" * 32] + \
            [f"[ERROR] line {i} " + "x" * 500 for i in range(6)]

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "log-alerts-test", 128, "r1"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:log-alerts-test"

    assert log_alerts.handler(awslogs_event(lines), Context()) == {"published": 1}
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    alert = json.loads(message["Body"])
    assert alert["Subject"] == "[alert] 8 error line(s) in price-enricher-test"
    text = alert["Message"]
    assert "8 error line(s) in /aws/lambda/price-enricher-test" in text and "(+3 more)" in text
    assert "records failed enrichment" in text and "[redacted]" in text
    assert "ab" * 32 not in text and "cd" * 32 not in text
    assert max(len(line) for line in text.splitlines()) < 320


def test_log_alerts_ignores_control_messages():
    payload = {"messageType": "CONTROL_MESSAGE", "logEvents": []}
    assert log_alerts_service.build_alert(payload) is None


def test_a_stored_non_price_does_not_block_the_symbols_later_records(pipeline):
    first = pipeline.record(pipeline.put("BTC-USD", 1_700_000_000_000, "10"))
    bad = {"symbol": {"S": "BTC-USD"}, "timestamp": {"N": "1700000000001000"}, "price": {"S": "oops"}}
    pipeline.dynamodb.put_item(TableName="crypto-prices-enrich", Item=bad)
    bad_record = pipeline.record(bad)
    later = pipeline.record(pipeline.put("BTC-USD", 1_700_000_002_000, "11"))
    result = pipeline.enrich([first, bad_record, later])
    assert result["batchItemFailures"] == [{"itemIdentifier": bad_record["dynamodb"]["SequenceNumber"]}]
    latest = max(pipeline.items("BTC-USD"), key=lambda i: i["timestamp"])
    assert latest["change_pct"] == Decimal("10.0")
