"""The read side end to end: signed webhooks in, the Python client reads latest, a tick range
across pages and candles of every interval through the AWS_IAM function URL, equal to pandas
on what was sent; unsigned and wrongly signed reads get 403; a late tick re-driven from the
webhook DLQ corrects its candles."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from emulator import session
from emulator.fault_proxy import FaultRule
from functions.price_enricher.indicators import Windows
from functions.shared.candles import INTERVALS
from functions.shared.price_table.keys import event_ms
from ops.drain import drain
from ops.drain_cli import aws_clients
from price_client import PriceClient
from senders.webhook import signed_post
from tests.e2e.conftest import wait_until
from tests.support.candles import pandas_candles

SYMBOL = "APIE-USD"
DAY_MS = 86_400_000


def _client(stack) -> PriceClient:
    return PriceClient(stack.running.price_api_url, session=session.session(), region=stack.running.config.region)


def _send(stack, ticks: list[tuple[int, str]]) -> None:
    info = stack.running
    for start in range(0, len(ticks), 100):
        body = json.dumps([{"symbol": SYMBOL, "price": price, "exchange": "e2e", "timestamp": moment}
                           for moment, price in ticks[start:start + 100]]).encode()
        status, answer = signed_post(info.webhook_url, body, info.secret_source, info.secret)
        assert status == 200 and answer["rejected"] == [], answer


def _stored(stack) -> list[tuple[int, Decimal]]:
    """(sort key, price) of every stored tick of the symbol, read from the table itself."""
    dynamodb, found, arguments = stack.aws["dynamodb"], [], {
        "TableName": stack.running.outputs["table_name"], "KeyConditionExpression": "symbol = :s",
        "ExpressionAttributeValues": {":s": {"S": SYMBOL}}, "ConsistentRead": True}
    while True:
        page = dynamodb.query(**arguments)
        found += [(int(i["timestamp"]["N"]), Decimal(i["price"]["N"])) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return sorted(found)
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _candles_equal_pandas(stack, client: PriceClient, venue: str | None = None) -> None:
    """Every tick is the one venue's: its candles and the composite's (one venue: its price) are pandas'."""
    stored = _stored(stack)
    for interval in INTERVALS:
        got = [(c.start_ms, str(c.open), str(c.high), str(c.low), str(c.close), c.count)
               for c in client.candles(SYMBOL, interval, 0, int(time.time() * 1000) + DAY_MS, venue=venue)]
        assert got == pandas_candles(stored, interval), interval


@pytest.fixture(scope="module")
def sent(stack):
    """Three days of ticks, a few per interval, several in the same minute, sent in batches."""
    rng = random.Random(13)
    start = (int(time.time() * 1000) // DAY_MS - 3) * DAY_MS
    moments = sorted({start + rng.randrange(0, 3 * DAY_MS) for _ in range(700)}
                     | {start + DAY_MS + 7_000 + i for i in range(30)})  # a burst within one minute
    ticks = [(moment, f"{100 + rng.random() * 5:.4f}") for moment in moments]
    _send(stack, ticks)
    stack.settle()
    assert wait_until(lambda: len(_stored(stack)) == len(ticks), 60)
    return ticks


def test_candles_of_every_interval_equal_pandas_on_what_was_sent(stack, sent):
    _candles_equal_pandas(stack, _client(stack))


def test_latest_and_a_tick_range_across_pages(stack, sent):
    client = _client(stack)
    newest_moment, newest_price = sent[-1]
    latest = client.latest([SYMBOL, "NODATA-USD"])
    assert latest["NODATA-USD"] is None
    assert event_ms(latest[SYMBOL].key) == newest_moment and latest[SYMBOL].price == Decimal(newest_price)
    assert latest[SYMBOL].is_composite and latest[SYMBOL].venues == 1  # no venue named: the composite
    own = client.latest(SYMBOL, venue="e2e")[SYMBOL]
    assert own is not None and (own.key, own.venue, own.price) == (latest[SYMBOL].key, "e2e", latest[SYMBOL].price)
    assert own.sma_20 is not None  # the venue's own tick carries its indicators
    window = [t for t in sent if sent[100][0] <= t[0] < sent[350][0]]
    ticks = list(client.ticks(SYMBOL, sent[100][0], sent[350][0], page_size=60))  # 5 pages or so
    assert [(event_ms(t.key), str(t.price)) for t in ticks] == [(m, str(Decimal(p))) for m, p in window]
    assert list(client.ticks(SYMBOL, sent[100][0], sent[350][0], order="desc", page_size=70)) == ticks[::-1]


def _get(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_unsigned_and_wrongly_signed_reads_get_403(stack, sent):
    url = stack.running.price_api_url.rstrip("/") + f"/v1/latest?symbols={SYMBOL}"
    assert _get(url, {}) == 403
    wrong = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(session.ACCESS_KEY_ID, "not-the-secret"), "lambda", stack.running.config.region
              ).add_auth(wrong)
    assert _get(url, dict(wrong.headers.items())) == 403
    right = AWSRequest(method="GET", url=url)
    SigV4Auth(session.credentials(), "lambda", stack.running.config.region).add_auth(right)
    assert _get(url, dict(right.headers.items())) == 200


def test_a_late_tick_redriven_from_the_webhook_dlq_corrects_its_candles(stack, sent):
    info = stack.running
    moment = sent[200][0] + 1  # inside intervals whose candles are already materialized
    stack.proxy.add(FaultRule("DynamoDB_20120810.PutItem", "InternalServerError", 500, body_contains="99999.5"))
    # The same venue's late tick: the venue's candles (and, with one venue, the composite's) take its price.
    body = json.dumps({"symbol": SYMBOL, "price": "99999.5", "exchange": "e2e", "timestamp": moment}).encode()
    try:
        status, answer = signed_post(info.webhook_url, body, info.secret_source, info.secret)
    finally:
        stack.proxy.clear()
    assert status == 202 and answer["queued"] == 1
    report = drain("webhook", info.outputs, _windows(info), aws_clients(info.config, info.endpoint))
    assert report.ok and report.stored >= 1
    stack.settle()
    client = _client(stack)
    assert wait_until(lambda: any(c.high == Decimal("99999.5")
                                  for c in client.candles(SYMBOL, "1d", 0, None, venue="e2e")), 60)
    _candles_equal_pandas(stack, client)
    _candles_equal_pandas(stack, client, venue="e2e")


def _windows(info) -> Windows:
    return Windows.from_mapping(info.config.indicator_windows.model_dump())
