"""A tick item's attributes and its stream record: the one owner of their names.

Standard library only, because the read API imports it on its cold-start path
(`reads.tick_from_item`); the codec functions that need boto3's type (de)serializer live in
`ticks` (`to_item`, `update_from_item`, `plain_item`).
"""

from __future__ import annotations

from typing import Any

from functions.shared.price_table.keys import PARTITION_KEY, SORT_KEY

# The optional numbers a tick may carry, stored only when the sender knows them:
# volume: traded base quantity since this venue's previous tick (summed into candles).
# volume_24h: the venue's own rolling 24 h figure, stored as sent and never summed.
# trades: how many trades the tick aggregates (the relay's trade channels), an integer.
OPTIONAL_NUMBERS = ("volume", "bid", "ask", "volume_24h", "trades")

VENUE = "exchange"
"""The item attribute that names a tick's venue (the normalized exchange id): a series is
(symbol, venue), and the per-venue reads filter on it."""

INDICATOR_PREFIXES = ("sma_", "ema_", "volatility_")
CHANGE_PCT = "change_pct"
ENRICHED_AT = "enriched_at"
CORRECTED_AT = "corrected_at"
CORRECTED_BY = "corrected_by"

STREAM_VIEW = "NEW_AND_OLD_IMAGES"


def is_indicator(name: str) -> bool:
    """Whether an attribute is an indicator (`sma_<n>`, `ema_<n>`, `volatility_<n>`, `change_pct`):
    the windows are configurable per environment, so a correction replaces, and the API shows,
    exactly these, whatever windows stored them."""
    if name == CHANGE_PCT:
        return True
    return any(name.startswith(prefix) and name[len(prefix):].isdigit() for prefix in INDICATOR_PREFIXES)


def stream_record(item: dict[str, Any], sequence: int, stream_arn: str = "",
                  event_name: str = "INSERT") -> dict[str, Any]:
    """The table stream's record of `item` (typed DynamoDB JSON) as Lambda hands it to the
    enricher: what the drain re-runs, the benchmarks feed and the tests build. A REMOVE record
    carries the keys only."""
    body: dict[str, Any] = {"Keys": {PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: item[SORT_KEY]},
                            "SequenceNumber": str(sequence), "StreamViewType": STREAM_VIEW}
    if event_name != "REMOVE":
        body["NewImage"] = item
    record: dict[str, Any] = {"eventID": str(sequence), "eventName": event_name, "eventSource": "aws:dynamodb",
                              "dynamodb": body}
    if stream_arn:
        record["eventSourceARN"] = stream_arn
        record["awsRegion"] = stream_arn.split(":")[3]
    return record
