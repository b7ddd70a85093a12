"""`invoke drain-dlq --queue enricher`: a message is deleted only after every record of its
sequence range was read, the enricher's retry of the whole range succeeded (indicators, candles,
announcements) and each item is verified enriched in the table.

Against moto's server (table, stream, queues, topic). The Streams client is wrapped by
`ShapedStreams`, which serves pages the way DynamoDB Streams may: empty pages while the
iterator is still set, pages shorter than `Limit`, a trimmed range.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from emulator import session
from environments.config import load_config
from functions.price_enricher.indicators import Windows
from functions.price_enricher.service import Settings as EnricherSettings
from functions.price_enricher.service import process as enrich_batch
from functions.shared.price_table import candles, ticks
from functions.shared.price_table.keys import PARTITION_KEY, SORT_KEY, table_definition
from functions.shared.price_update import PriceUpdate, dead_letter_body
from ops.drain import DrainReport, Lookup, drain
from ops.drain_cli import exit_code, run_drain

TABLE = "crypto-prices-drain"
HOUR_MS = 3_600_000


# ---- a small stack on moto's server -----------------------------------------------------------------

@dataclass
class Stack:
    clients: dict[str, Any]
    outputs: dict[str, str]
    stream_arn: str

    def drain(self, queue: str, streams: Any = None, **options: Any) -> DrainReport:
        clients = dict(self.clients, dynamodbstreams=streams or self.clients["dynamodbstreams"])
        clients.update(options.pop("clients", {}))
        return drain(queue, self.outputs, Windows(), clients, **options)

    def waiting(self, queue: str = "enricher") -> int:
        """Messages in the queue, visible or not: a released message counts, a deleted one does not."""
        attributes = self.clients["sqs"].get_queue_attributes(
            QueueUrl=self.outputs[f"{queue}_dlq_url"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(value) for value in attributes.values())

    def store(self, symbol: str, count: int, received_at_ms: int | None = None) -> list[tuple[str, int]]:
        """Store ticks the webhook's way (`store_update`); their keys."""
        now = int(time.time() * 1000)
        keys = []
        for i in range(count):
            update = PriceUpdate(symbol, 1_700_000_000_000 + i * 1000, Decimal(100 + i), "x", "test",
                                 received_at_ms if received_at_ms is not None else now)
            keys.append((symbol, ticks.store_update(self.clients["dynamodb"], TABLE, update)[1]))
        return keys

    def records(self) -> list[dict[str, Any]]:
        """Every record the stream holds, in order."""
        streams = self.clients["dynamodbstreams"]
        shard = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        found: list[dict[str, Any]] = []
        while True:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                return found
            found += page["Records"]
            iterator = page["NextShardIterator"]

    def inserts_of(self, symbol: str) -> list[dict[str, Any]]:
        return [r for r in self.records()
                if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"][PARTITION_KEY]["S"] == symbol]

    def fail(self, batch: list[dict[str, Any]], **changes: Any) -> None:
        """Put Lambda's on-failure record of `batch` (as emulator/stream_poller.py builds it) in the DLQ."""
        streams = self.clients["dynamodbstreams"]
        shard = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        arrivals = [r["dynamodb"]["ApproximateCreationDateTime"] for r in batch]
        info = {"shardId": shard, "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": arrivals[0].astimezone(UTC).isoformat(),
                "approximateArrivalOfLastRecord": arrivals[-1].astimezone(UTC).isoformat(),
                "batchSize": len(batch), "streamArn": self.stream_arn, **changes}
        body = {"requestContext": {"requestId": "r-1", "condition": "RetryAttemptsExhausted",
                                   "approximateInvokeCount": 3},
                "responseContext": {"statusCode": 200, "functionError": "Unhandled"}, "version": "1.0",
                "timestamp": datetime.now(UTC).isoformat(), "DDBStreamBatchInfo": info}
        self.clients["sqs"].send_message(QueueUrl=self.outputs["enricher_dlq_url"], MessageBody=json.dumps(body))

    def items(self, symbol: str) -> list[dict[str, Any]]:
        return self.clients["dynamodb"].query(
            TableName=TABLE, ConsistentRead=True, KeyConditionExpression="#k = :s",
            ExpressionAttributeNames={"#k": PARTITION_KEY}, ExpressionAttributeValues={":s": {"S": symbol}})["Items"]

    def enriched(self, symbol: str) -> list[bool]:
        return ["enriched_at" in item for item in self.items(symbol)]


@pytest.fixture
def stack(moto_endpoint: str) -> Stack:
    clients = session.clients(moto_endpoint, "us-east-1", ("sqs", "dynamodb", "dynamodbstreams", "sns"))
    description = clients["dynamodb"].create_table(
        **table_definition(TABLE), StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    outputs = {"table_name": TABLE,
               "success_topic_arn": clients["sns"].create_topic(Name="price-updates-success")["TopicArn"],
               "webhook_dlq_url": clients["sqs"].create_queue(QueueName="webhook-dlq")["QueueUrl"],
               "enricher_dlq_url": clients["sqs"].create_queue(QueueName="enricher-dlq")["QueueUrl"]}
    return Stack(clients, outputs, description["TableDescription"]["LatestStreamArn"])


@dataclass
class ShapedStreams:
    """The real Streams client, answering as DynamoDB Streams may.

    `empty_first`: empty pages (NextShardIterator still set) before the first page of each
    iterator chain; `empty_after_first_page`: one empty page after the first real page;
    `page_size`: fewer records than Limit; `always_empty`: the range is never reached;
    `trimmed`: GetShardIterator says the range is gone (older than 24 h); `expire_second_page`:
    the iterator of the second page has expired (they last 15 minutes); `throttle_second_page`: the
    shard's read limit is hit once (Lambda reads the shard too).
    """

    real: Any
    empty_first: int = 0
    empty_after_first_page: bool = False
    page_size: int | None = None
    always_empty: bool = False
    trimmed: bool = False
    expire_second_page: bool = False
    throttle_second_page: bool = False
    calls: list[int] = field(default_factory=list)  # records per GetRecords answer
    _pending_empty: dict[str, int] = field(default_factory=dict)
    _real_pages: int = 0

    def get_shard_iterator(self, **arguments: Any) -> dict[str, Any]:
        if self.trimmed:
            raise ClientError({"Error": {"Code": "TrimmedDataAccessException", "Message": "trimmed"}},
                              "GetShardIterator")
        answer = self.real.get_shard_iterator(**arguments)
        self._pending_empty[answer["ShardIterator"]] = self.empty_first
        return answer

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        assert 1 <= Limit <= 1000
        if self.always_empty or self._pending_empty.get(ShardIterator, 0) > 0:
            self._pending_empty[ShardIterator] = self._pending_empty.get(ShardIterator, 0) - 1
            self.calls.append(0)
            return {"Records": [], "NextShardIterator": ShardIterator}
        if self.throttle_second_page and self._real_pages == 1:
            self.throttle_second_page = False
            raise ClientError({"Error": {"Code": "LimitExceededException", "Message": "slow down"}}, "GetRecords")
        if self.expire_second_page and self._real_pages == 1:
            self.expire_second_page = False
            raise ClientError({"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}, "GetRecords")
        page = self.real.get_records(ShardIterator=ShardIterator, Limit=min(Limit, self.page_size or Limit))
        self._real_pages += 1
        if self.empty_after_first_page and self._real_pages == 1 and page.get("NextShardIterator"):
            self._pending_empty[page["NextShardIterator"]] = 1
        self.calls.append(len(page["Records"]))
        return page


# ---- the stream path ------------------------------------------------------------------------

def test_empty_first_pages_are_read_past(stack: Stack) -> None:
    stack.store("EMPTY-USD", 3)
    stack.fail(stack.inserts_of("EMPTY-USD"))
    streams = ShapedStreams(stack.clients["dynamodbstreams"], empty_first=2)

    report = stack.drain("enricher", streams)

    assert stack.enriched("EMPTY-USD") == [True, True, True]
    assert streams.calls[:2] == [0, 0]                  # the range was reached after two empty pages
    assert report.ok and report.processed == 1 and report.enriched == 3 and report.verified == 3
    assert report.paths == {"stream": 1} and stack.waiting() == 0


def test_range_longer_than_one_page_is_read_to_its_end(stack: Stack) -> None:
    """Seven INSERTs, with the enricher's own MODIFY records of another symbol between them: the range
    spans pages of at most two records, and one page in the middle is empty."""
    [other] = stack.store("OTHER-USD", 1)
    for i in range(7):
        stack.store(f"PAGE{i}-USD", 1)
        if i in (2, 4):   # the live enricher's writes land inside the range (MODIFY, filtered out of the batch)
            stack.clients["dynamodb"].update_item(
                TableName=TABLE, Key={PARTITION_KEY: {"S": other[0]}, SORT_KEY: {"N": str(other[1])}},
                UpdateExpression="SET enriched_at = :e", ExpressionAttributeValues={":e": {"N": str(i)}})
    batch = [r for r in stack.records()
             if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"][PARTITION_KEY]["S"].startswith("PAGE")]
    assert len(batch) == 7
    stack.fail(batch)
    streams = ShapedStreams(stack.clients["dynamodbstreams"], page_size=2, empty_after_first_page=True)

    report = stack.drain("enricher", streams)

    assert all(stack.enriched(f"PAGE{i}-USD") == [True] for i in range(7))
    assert 0 in streams.calls[1:] and max(streams.calls) == 2   # several pages, an empty one among them
    assert report.ok and report.enriched == 7 and report.verified == 7 and stack.waiting() == 0


@pytest.mark.parametrize("fault", ["expire_second_page", "throttle_second_page"])
def test_expired_or_throttled_read_goes_on_from_the_last_record(stack: Stack, fault: str) -> None:
    stack.store("EXPIRED-USD", 5)
    stack.fail(stack.inserts_of("EXPIRED-USD"))
    streams = ShapedStreams(stack.clients["dynamodbstreams"], page_size=2, **{fault: True})

    report = stack.drain("enricher", streams)

    assert stack.enriched("EXPIRED-USD") == [True] * 5
    assert report.ok and report.enriched == 5 and report.verified == 5 and stack.waiting() == 0


# ---- the table fallback ---------------------------------------------------------------------

@pytest.mark.parametrize("received_ago_ms", [5 * HOUR_MS, 40_000], ids=["webhook-dlq-redrive-5h", "slow-request-40s"])
def test_trimmed_stream_finds_items_by_their_store_time(stack: Stack, received_ago_ms: int) -> None:
    """Updates received hours ago, stored now by the webhook-DLQ re-drive (or late in a large request);
    their stream range is gone by the time the enricher DLQ is drained."""
    received = int(time.time() * 1000) - received_ago_ms
    for i in range(3):
        update = PriceUpdate("LATE-USD", 1_700_000_000_000 + i * 1000, Decimal(50 + i), "x", "test", received)
        body = dead_letter_body(update, "ThrottlingException: rate exceeded", received + 1)
        stack.clients["sqs"].send_message(QueueUrl=stack.outputs["webhook_dlq_url"], MessageBody=json.dumps(body))
    assert stack.drain("webhook").stored == 3
    stack.fail(stack.inserts_of("LATE-USD"))

    report = stack.drain("enricher", ShapedStreams(stack.clients["dynamodbstreams"], trimmed=True),
                         lookup=Lookup(symbols=("LATE-USD",)))

    assert stack.enriched("LATE-USD") == [True, True, True]
    assert report.ok and report.paths == {"table": 1} and report.verified >= 3 and stack.waiting() == 0


# ---- nothing is deleted unverified ----------------------------------------------------------

def _never_reached(stack: Stack) -> ShapedStreams:
    stack.store("LOST-USD", 2)
    stack.fail(stack.inserts_of("LOST-USD"))
    return ShapedStreams(stack.clients["dynamodbstreams"], always_empty=True)


def _trimmed_and_nothing_stored_then(stack: Stack) -> ShapedStreams:
    stack.store("LOST-USD", 2)
    day_ago = datetime.fromtimestamp(time.time() - 86_400, UTC).isoformat()
    stack.fail(stack.inserts_of("LOST-USD"), approximateArrivalOfFirstRecord=day_ago,
               approximateArrivalOfLastRecord=day_ago)
    return ShapedStreams(stack.clients["dynamodbstreams"], trimmed=True)


def _trimmed_symbols_unknown(stack: Stack) -> ShapedStreams:
    stack.store("LOST-USD", 2)
    stack.fail(stack.inserts_of("LOST-USD"))
    return ShapedStreams(stack.clients["dynamodbstreams"], trimmed=True)


def _fewer_records_than_the_batch(stack: Stack) -> ShapedStreams:
    stack.store("LOST-USD", 2)
    stack.fail(stack.inserts_of("LOST-USD"), batchSize=5)
    return ShapedStreams(stack.clients["dynamodbstreams"])


def _item_gone_before_the_redrive(stack: Stack) -> ShapedStreams:
    keys = stack.store("LOST-USD", 2)
    stack.fail(stack.inserts_of("LOST-USD"))
    symbol, timestamp = keys[0]
    stack.clients["dynamodb"].delete_item(TableName=TABLE, Key={PARTITION_KEY: {"S": symbol},
                                                                SORT_KEY: {"N": str(timestamp)}})
    return ShapedStreams(stack.clients["dynamodbstreams"])


@pytest.mark.parametrize("setup, reason", [
    (_never_reached, "empty pages"), (_trimmed_and_nothing_stored_then, "stored"),
    (_fewer_records_than_the_batch, "batchSize"), (_item_gone_before_the_redrive, "no longer in the table"),
    (_trimmed_symbols_unknown, "--symbols")],
    ids=["stream-only-empty-pages", "trimmed-nothing-in-window", "count-short-of-batchSize", "item-gone",
         "trimmed-symbols-unknown"])
def test_unverified_message_stays_and_report_is_not_ok(stack: Stack, setup: Callable[[Stack], ShapedStreams],
                                                              reason: str) -> None:
    streams = setup(stack)

    report = stack.drain("enricher", streams, lookup=Lookup(symbols=("LOST-USD",) if "nothing" in setup.__name__
                                                            else ()))

    assert stack.waiting() == 1, "the message was deleted without its range verified enriched"
    assert not report.ok and report.processed == 0 and exit_code(report, dry_run=False) == 1
    [left] = report.left
    assert reason in left


def test_cli_report_says_what_stayed_and_why_exit_1(stack: Stack) -> None:
    streams = _never_reached(stack)
    console = Console(record=True, width=200)

    report = run_drain(load_config("local"), stack.outputs, "enricher", console=console,
                       clients=dict(stack.clients, dynamodbstreams=streams))

    text = console.export_text()
    assert stack.waiting() == 1 and exit_code(report, dry_run=False) == 1
    assert "NOT OK" in text and "exit 1" in text and "left" in text and "empty pages" in text
    assert "secret" not in text.lower()


def test_redrive_twice_enriches_once_and_second_drain_verifies(stack: Stack) -> None:
    """A copy of a message whose range is already enriched is verified and deleted; nothing is re-driven
    twice (a second re-drive would announce the items again)."""
    stack.store("TWICE-USD", 2)
    stack.fail(stack.inserts_of("TWICE-USD"))
    stack.fail(stack.inserts_of("TWICE-USD"))

    report = stack.drain("enricher", ShapedStreams(stack.clients["dynamodbstreams"], empty_first=1))

    assert stack.enriched("TWICE-USD") == [True, True]
    assert report.ok and report.processed == 2 and report.enriched == 2 and report.verified == 4
    assert stack.waiting() == 0


# ---- a range whose indicators were stored but whose candles or announcements failed ------------------

CANDLES = "crypto-candles-drain"
MINUTE_MS = 60_000
T0 = 28_333_334 * MINUTE_MS           # a whole minute


class Failing:
    """A client whose calls fail as AWS fails them: `table` any call on that table (a throttled
    candle step; only those naming `symbol`, when given), or `publish` every PublishBatch (SNS
    refusing). Every other call is the real one."""

    def __init__(self, real: Any, table: str | None = None, publish: bool = False, symbol: str = "") -> None:
        self.real, self.table, self.publish, self.symbol = real, table, publish, symbol

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            on_table = self.table and kwargs.get("TableName") == self.table and self.symbol in json.dumps(kwargs)
            if on_table or (self.publish and name == "publish_batch"):
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "rate exceeded"}}, name)
            return method(*args, **kwargs)
        return call


def _with_candles(stack: Stack) -> None:
    stack.clients["dynamodb"].create_table(**candles.table_definition(CANDLES))
    stack.outputs["candle_table_name"] = CANDLES


def _tick(stack: Stack, symbol: str, at_ms: int, price: int) -> tuple[str, int]:
    update = PriceUpdate(symbol, at_ms, Decimal(price), "x", "test", int(time.time() * 1000))
    return symbol, ticks.store_update(stack.clients["dynamodb"], TABLE, update)[1]


def _enrich(stack: Stack, records: list[dict[str, Any]], dynamodb: Any = None, sns: Any = None) -> dict[str, Any]:
    """The stream attempt: the enricher's `process` over the records, with the clients given."""
    settings = EnricherSettings(table_name=TABLE, topic_arn=stack.outputs["success_topic_arn"], windows=Windows(),
                                candle_table_name=stack.outputs.get("candle_table_name", ""))
    return enrich_batch({"Records": records}, settings, dynamodb or stack.clients["dynamodb"],
                        sns or stack.clients["sns"])


def _minute(stack: Stack, symbol: str, start_ms: int) -> Any:
    found, _ = candles.read_candles(stack.clients["dynamodb"], CANDLES, TABLE, symbol, "1m", start_ms,
                                    start_ms + MINUTE_MS, 10)
    return found[0] if found else None


def _late_tick_whose_candle_step_fails(stack: Stack, symbol: str) -> tuple[str, int]:
    """Minutes 0..2 enriched with their candles; then a late tick in minute 0 (a new high) whose
    indicators are stored while every candle call is throttled: its range ends in the DLQ."""
    _with_candles(stack)
    for offset, price in ((0, 100), (10_000, 101), (MINUTE_MS, 102), (2 * MINUTE_MS, 103), (3 * MINUTE_MS, 104)):
        _tick(stack, symbol, T0 + offset, price)
    assert not _enrich(stack, stack.inserts_of(symbol))["batchItemFailures"]
    assert _minute(stack, symbol, T0).count == 2
    late = _tick(stack, symbol, T0 + 30_000, 150)
    [record] = [r for r in stack.inserts_of(symbol) if int(r["dynamodb"]["Keys"][SORT_KEY]["N"]) == late[1]]
    throttled = Failing(stack.clients["dynamodb"], table=CANDLES)
    assert _enrich(stack, [record], dynamodb=throttled)["batchItemFailures"]
    assert stack.enriched(symbol) == [True] * 6      # the indicators were written: only the candle step failed
    stack.fail([record])
    return late


def test_throttled_candle_step_is_redone_before_the_message_goes(stack: Stack) -> None:
    _late_tick_whose_candle_step_fails(stack, "CANDLE-USD")

    report = stack.drain("enricher")

    minute = _minute(stack, "CANDLE-USD", T0)
    assert (minute.count, minute.high, minute.close) == (3, Decimal(150), Decimal(150)), \
        "the late tick never reached its candle"
    assert report.ok and report.processed == 1 and stack.waiting() == 0


def _subscriber(stack: Stack) -> str:
    sqs = stack.clients["sqs"]
    url = sqs.create_queue(QueueName="announcements")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.clients["sns"].subscribe(TopicArn=stack.outputs["success_topic_arn"], Protocol="sqs", Endpoint=arn,
                                   Attributes={"RawMessageDelivery": "true"})
    return url


def _announced(stack: Stack, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while batch := stack.clients["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found += [json.loads(message["Body"]) for message in batch]
        for message in batch:
            stack.clients["sqs"].delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_announcements_that_failed_are_sent_before_the_message_goes(stack: Stack) -> None:
    """SNS refuses every attempt: the items are enriched, nothing was announced. The drain announces
    each of them (at least once: an update announced before a later step failed goes out again)."""
    url = _subscriber(stack)
    keys = stack.store("SNS-USD", 3)
    batch = stack.inserts_of("SNS-USD")
    assert _enrich(stack, batch, sns=Failing(stack.clients["sns"], publish=True))["batchItemFailures"]
    assert stack.enriched("SNS-USD") == [True] * 3 and _announced(stack, url) == []
    stack.fail(batch)

    report = stack.drain("enricher")

    announced = _announced(stack, url)
    assert sorted((m["symbol"], m["timestamp"]) for m in announced) == sorted(keys)
    assert report.ok and report.processed == 1 and stack.waiting() == 0


# ---- a trimmed range is looked up in its symbols' partitions, not the whole table --------------------

class Counting:
    """The real DynamoDB client, counting the items each read touches (Query/Scan: ScannedCount,
    what is billed before a filter; GetItem/BatchGetItem: items returned), and noting each Scan
    and each line the drain prints in `events`, in order."""

    def __init__(self, real: Any) -> None:
        self.real, self.items_read, self.events = real, 0, []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            answer = method(*args, **kwargs)
            if name in ("query", "scan"):
                self.items_read += int(answer.get("ScannedCount", 0))
                self.events.append(name)
            elif name == "get_item":
                self.items_read += "Item" in answer
            elif name == "batch_get_item":
                self.items_read += sum(len(items) for items in answer.get("Responses", {}).values())
            return answer
        return call


def _trimmed_ranges_in_a_big_table(stack: Stack, others: int, symbols: list[str]) -> ShapedStreams:
    """`others` ticks of other symbols, then one failed range of 3 ticks per symbol of `symbols`."""
    client = stack.clients["dynamodb"]
    now = int(time.time() * 1000)
    rows = [ticks.to_item(PriceUpdate(f"BIG{i % 20}-USD", 1_600_000_000_000 + i * 1000, Decimal(1), "x", "test", now),
                          (1_600_000_000_000 + i * 1000) * 1000, now) for i in range(others)]
    for start in range(0, len(rows), 25):
        client.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": row}} for row in rows[start:start + 25]]})
    for symbol in symbols:
        stack.store(symbol, 3)
        stack.fail(stack.inserts_of(symbol))
    return ShapedStreams(stack.clients["dynamodbstreams"], trimmed=True)


def test_trimmed_ranges_read_their_symbols_partitions_not_the_table(stack: Stack) -> None:
    """Three messages on a table of 6,000 other ticks: each reads its symbols' partitions (the
    whole-table Scan read every item once per message: 18,009 items)."""
    symbols = ["TRIM0-USD", "TRIM1-USD", "TRIM2-USD"]
    streams = _trimmed_ranges_in_a_big_table(stack, 6_000, symbols)
    counting = Counting(stack.clients["dynamodb"])

    report = stack.drain("enricher", streams, clients={"dynamodb": counting}, lookup=Lookup(symbols=tuple(symbols)))

    assert all(stack.enriched(symbol) == [True] * 3 for symbol in symbols)
    assert report.ok and report.processed == 3 and stack.waiting() == 0
    assert "scan" not in counting.events
    assert report.items_read == 3 * 9          # each message: the three partitions of 3 items
    assert counting.items_read < 300, counting.items_read   # look-up, the enricher's re-run and the checks


def test_whole_table_scan_only_when_asked_and_its_cost_printed_first(stack: Stack) -> None:
    streams = _trimmed_ranges_in_a_big_table(stack, 500, ["SCAN-USD"])
    counting = Counting(stack.clients["dynamodb"])

    refused = stack.drain("enricher", streams, clients={"dynamodb": counting})

    assert counting.events == [] and counting.items_read == 0 and stack.waiting() == 1
    [left] = refused.left
    assert "--symbols" in left and "--scan-table" in left and "read units" in left

    said: list[str] = []
    lookup = Lookup(scan_table=True, say=lambda line: (said.append(line), counting.events.append("say")))
    report = stack.drain("enricher", streams, clients={"dynamodb": counting}, lookup=lookup)

    assert counting.events.index("say") < counting.events.index("scan"), "the cost was not printed before the Scan"
    assert "items" in said[0] and "read units" in said[0]
    assert report.ok and report.paths == {"table scan": 1} and report.items_read == 503 and stack.waiting() == 0


# ---- what cannot be restored is named; a poison item can be set aside ------------------------------

def test_each_item_not_restored_is_named_with_its_reason(stack: Stack) -> None:
    late = _late_tick_whose_candle_step_fails(stack, "POISON-USD")
    console = Console(record=True, width=400)

    report = run_drain(load_config("local"), stack.outputs, "enricher", console=console,
                       clients=dict(stack.clients, dynamodb=Failing(stack.clients["dynamodb"], table=CANDLES)))

    [left] = report.left
    assert f"POISON-USD/{late[1]}: candles failed" in left and "ThrottlingException" in left and CANDLES in left
    [item] = report.unrestored
    assert item.split(": ", 1)[1].startswith(f"POISON-USD/{late[1]}: candles failed")
    text = console.export_text()
    assert f"not restored {item}" in text and "--set-aside" in text and stack.waiting() == 1


def test_poison_item_set_aside_is_recorded_and_the_rest_drains(stack: Stack, tmp_path: Any) -> None:
    late = _late_tick_whose_candle_step_fails(stack, "POISON-USD")
    stack.store("FINE-USD", 2)
    stack.fail(stack.inserts_of("FINE-USD"))
    record = tmp_path / "set-aside.jsonl"
    throttled = {"dynamodb": Failing(stack.clients["dynamodb"], table=CANDLES, symbol="POISON-USD")}  # every time

    report = stack.drain("enricher", clients=throttled, set_aside={f"POISON-USD/{late[1]}"}, set_aside_log=record)

    assert report.ok and report.processed == 2 and stack.waiting() == 0
    assert stack.enriched("FINE-USD") == [True, True]
    [entry] = [json.loads(line) for line in record.read_text().splitlines()]
    assert entry["items"] == [f"POISON-USD/{late[1]}"] and "candles failed" in entry["reason"]
    assert json.loads(entry["body"])["DDBStreamBatchInfo"]["batchSize"] == 1    # enough to re-send it
    assert len(stack.items("POISON-USD")) == 6                                   # the tick is not deleted
    assert [line.split(": ", 1)[1].split(":")[0] for line in report.set_aside] == [f"POISON-USD/{late[1]}"]


def test_webhook_message_set_aside_by_its_item_name(stack: Stack, tmp_path: Any) -> None:
    good = PriceUpdate("GOOD-USD", 1_700_000_000_000, Decimal(1), "x", "test", 1)
    bad = dead_letter_body(PriceUpdate("BAD-USD", 1_700_000_000_000, Decimal(1), "x", "test", 1), "x", 2)
    bad["update"]["price"] = "not a number"
    for body in (dead_letter_body(good, "x", 2), bad):
        stack.clients["sqs"].send_message(QueueUrl=stack.outputs["webhook_dlq_url"], MessageBody=json.dumps(body))
    record = tmp_path / "set-aside.jsonl"

    left = stack.drain("webhook", set_aside=set(), set_aside_log=record)
    assert [line.split(": ")[1] for line in left.left] == ["BAD-USD/1700000000000"] and left.stored == 1

    report = stack.drain("webhook", set_aside={"BAD-USD/1700000000000"}, set_aside_log=record)

    assert report.ok and report.processed == 1 and stack.waiting("webhook") == 0
    [entry] = [json.loads(line) for line in record.read_text().splitlines()]
    assert entry["queue"] == "webhook" and entry["items"] == ["BAD-USD/1700000000000"]
    assert json.loads(entry["body"])["update"]["price"] == "not a number"


# ---- AWS out of reach ---------------------------------------------------------------------------------

def test_unreachable_aws_is_one_line(stack: Stack) -> None:
    from botocore.config import Config

    from errors import PipelineError

    nowhere = session.session().client("sqs", endpoint_url="http://127.0.0.1:9",
                                       config=Config(retries={"max_attempts": 1}, connect_timeout=1))

    with pytest.raises(PipelineError) as raised:
        stack.drain("enricher", clients={"sqs": nowhere})

    message = str(raised.value)
    assert "\n" not in message and "cannot reach AWS" in message and "127.0.0.1:9" in message
    assert "invoke local" in message
