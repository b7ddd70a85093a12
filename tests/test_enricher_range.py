"""The enricher's half of number limits: an indicator DynamoDB cannot store is left out and
counted, instead of failing its record on every delivery."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.support.enricher_support import MetricsRecorder


def test_an_indicator_out_of_dynamodbs_range_is_left_out_and_counted(pipeline):
    """1E-10 then 1E+120 (both valid prices): change_pct = 1E+132 %, beyond DynamoDB's 1E+125."""
    tiny = pipeline.record(pipeline.put("JUMP-USD", 1_700_000_000_000, "1E-10"))
    huge = pipeline.record(pipeline.put("JUMP-USD", 1_700_000_001_000, "1E+120"))
    metrics = MetricsRecorder()
    assert pipeline.enrich([tiny, huge], metrics) == {"batchItemFailures": []}
    latest = max(pipeline.items("JUMP-USD"), key=lambda item: item["timestamp"])
    assert "change_pct" not in latest                       # absent, like an undefined one
    assert latest["ema_12"] > 0 and "enriched_at" in latest  # the storable indicators are kept
    assert metrics.values["IndicatorsOutOfRange"] == 1
    [message] = [m["body"] for m in pipeline.notifications() if m["body"]["timestamp"] == latest["timestamp"]]
    assert "change_pct" not in message["indicators"] and "ema_12" in message["indicators"]


def test_a_redelivered_record_with_an_out_of_range_indicator_succeeds(pipeline):
    records = [pipeline.record(pipeline.put("JUMP-USD", 1_700_000_000_000 + i * 1000, p))
               for i, p in enumerate(["1E+120", "1E-10"])]  # change = -100 %: storable; the reverse jump is not
    records.append(pipeline.record(pipeline.put("JUMP-USD", 1_700_000_002_000, "9E+120")))
    for _ in range(2):
        assert pipeline.enrich(records) == {"batchItemFailures": []}
    latest = max(pipeline.items("JUMP-USD"), key=lambda item: item["timestamp"])
    assert "change_pct" not in latest and "sma_5" not in latest


@pytest.mark.parametrize("value, expected", [
    ("0", True), ("1E-130", True), ("9.9999999999999999999999999999999999999E+125", True), ("-2.5E+10", True),
    ("1E-131", False), ("1E+126", False), ("1E+132", False), ("1.23456789012345678901234567890123456789", False),
    ("Infinity", False), ("NaN", False),
])
def test_storable_follows_dynamodbs_number_rules(value, expected):
    from functions.price_enricher.indicators import storable

    assert storable(Decimal(value)) is expected
