"""The emulator's moto patches: queries answer exactly as moto does, and writes are atomic as DynamoDB's are."""

from __future__ import annotations

import io
import itertools
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import moto_patches
from emulator.moto_server import EmbeddedEmulator

_tables = itertools.count()
STREAM_PAGES = 20  # a test table's stream holds a few hundred records: one or two pages of 1,000

items_strategy = st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 40), st.integers(0, 3)),
                          max_size=40, unique_by=lambda item: item[:2])
query_strategy = st.fixed_dictionaries({
    "hash": st.sampled_from("ABCD"),  # D: a partition with no items
    "condition": st.sampled_from([None, "=", "<", "<=", ">", ">=", "between", "begins_with"]),
    "bound": st.integers(-1, 41),
    "forward": st.booleans(),
    "limit": st.one_of(st.none(), st.integers(1, 7)),
    "filter": st.booleans(),
    "foreign_start": st.booleans(),  # an ExclusiveStartKey of another partition (moto compares its hash too)
})


def _range_value(kind: str, number: int) -> dict:
    """A range key value: a Number, or a String or Binary whose order is not the numbers'
    ("10" < "9")."""
    return {"N": str(number)} if kind == "N" else {kind: str(number) if kind == "S" else str(number).encode()}


def _pages(client, table: str, query: dict, kind: str = "N") -> list[tuple[list[dict], dict | None]]:
    """Every page of the query, with its LastEvaluatedKey, as a client paging through sees it."""
    condition, names, values = "#h = :h", {"#h": "symbol"}, {":h": {"S": query["hash"]}}
    if query["condition"]:
        names["#r"] = "timestamp"
    if query["condition"] == "between":
        condition += " AND #r BETWEEN :lo AND :hi"
        values |= {":lo": _range_value(kind, query["bound"]), ":hi": _range_value(kind, query["bound"] + 10)}
    elif query["condition"] == "begins_with":
        condition += " AND begins_with(#r, :r)"
        values[":r"] = {kind: str(query["bound"])[:1] if kind == "S" else str(query["bound"])[:1].encode()}
    elif query["condition"]:
        condition += f" AND #r {query['condition']} :r"
        values[":r"] = _range_value(kind, query["bound"])
    arguments = {"TableName": table, "KeyConditionExpression": condition,
                 "ExpressionAttributeNames": names,
                 "ExpressionAttributeValues": values, "ScanIndexForward": query["forward"]}
    if query["limit"]:
        arguments["Limit"] = query["limit"]
    if query["filter"]:
        arguments["FilterExpression"] = "#p > :zero"
        arguments["ExpressionAttributeNames"]["#p"] = "price"
        arguments["ExpressionAttributeValues"][":zero"] = {"N": "0"}
    if query.get("foreign_start"):
        arguments["ExclusiveStartKey"] = {"symbol": {"S": "B" if query["hash"] == "A" else "A"},
                                          "timestamp": _range_value(kind, query["bound"])}
    pages = []
    while True:
        page = client.query(**arguments)
        pages.append((page["Items"], page.get("LastEvaluatedKey")))
        if "LastEvaluatedKey" not in page or len(pages) > 60:
            return pages
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture(scope="module")
def in_process_emulator():
    """In this process, so the tests can switch the patches off and on between requests."""
    with EmbeddedEmulator(in_process=True) as emulator:
        yield emulator


@pytest.fixture
def endpoint(in_process_emulator):
    in_process_emulator.reset()
    yield in_process_emulator.endpoint
    moto_patches.install()


@pytest.fixture
def moto_endpoint(endpoint):
    """The shared fixtures (`dynamodb`, tests/conftest.py) reach this module's in-process emulator."""
    return endpoint


def _create_table(dynamodb, name: str, stream: bool = False, kind: str = "N") -> None:
    extra = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "symbol", "KeyType": "HASH"},
                                     {"AttributeName": "timestamp", "KeyType": "RANGE"}],
                          AttributeDefinitions=[{"AttributeName": "symbol", "AttributeType": "S"},
                                                {"AttributeName": "timestamp", "AttributeType": kind}], **extra)


@settings(max_examples=80)  # ~25 requests per example over HTTP; CI's 400 would cost a minute
@given(items=items_strategy, queries=st.lists(query_strategy, min_size=1, max_size=4), kind=st.sampled_from("NSB"))
def test_patched_query_answers_exactly_as_moto_does(dynamodb, items, queries, kind):
    """Number, String and Binary range keys (their orders differ), every key condition,
    paging (from a start key of another partition too), order, limits and filters: page for
    page what unpatched moto answers."""
    table = f"prices-{next(_tables)}"
    _create_table(dynamodb, table, kind=kind)
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {"symbol": {"S": h}, "timestamp": _range_value(kind, r), "price": {"N": str(p)}}}}
            for h, r, p in items[start:start + 25]]})
    for query in queries:
        if query["condition"] == "begins_with" and kind == "N":
            continue  # DynamoDB refuses begins_with on a Number
        moto_patches.uninstall()
        expected = _pages(dynamodb, table, query, kind)
        moto_patches.install()
        assert _pages(dynamodb, table, query, kind) == expected


def test_the_patch_reads_one_partition_not_the_table(dynamodb, monkeypatch):
    """The speedup itself: a base-table query no longer walks every item of the table."""
    _create_table(dynamodb, "wide")
    dynamodb.batch_write_item(RequestItems={"wide": [
        {"PutRequest": {"Item": {"symbol": {"S": f"S{n % 5}"}, "timestamp": {"N": str(n)}}}} for n in range(25)]})
    walked = []
    original = moto_patches._original_all_items
    monkeypatch.setattr(moto_patches, "_original_all_items", lambda table: walked.append(1) or original(table))
    moto_patches.install()
    assert len(dynamodb.query(TableName="wide", KeyConditionExpression="symbol = :s",
                              ExpressionAttributeValues={":s": {"S": "S1"}})["Items"]) == 5
    assert walked == []
    moto_patches.uninstall()
    dynamodb.query(TableName="wide", KeyConditionExpression="symbol = :s",
                   ExpressionAttributeValues={":s": {"S": "S1"}})
    assert walked == [1]


def test_the_patch_hands_moto_only_the_range_and_the_item_after_it(dynamodb, monkeypatch):
    """The second speedup: within the partition, only the items that can be on the page."""
    _create_table(dynamodb, "deep")
    for start in range(0, 200, 25):
        dynamodb.batch_write_item(RequestItems={"deep": [
            {"PutRequest": {"Item": {"symbol": {"S": "DEEP"}, "timestamp": {"N": str(n)}}}}
            for n in range(start, start + 25)]})
    handed = []
    original = moto_patches._slice
    monkeypatch.setattr(moto_patches, "_slice",
                        lambda table, query: handed.append(original(table, query)) or handed[-1])

    def query(**extra):
        handed.clear()
        answer = dynamodb.query(TableName="deep", KeyConditionExpression="symbol = :s AND #t BETWEEN :a AND :b",
                                ExpressionAttributeNames={"#t": "timestamp"}, **extra,
                                ExpressionAttributeValues={":s": {"S": "DEEP"}, ":a": {"N": "50"}, ":b": {"N": "52"}})
        return [int(item["timestamp"]["N"]) for item in answer["Items"]], answer.get("LastEvaluatedKey"), \
            [int(item.range_key.value) for item in handed[0]]

    # The range, and one item past it in the Query's direction (moto's LastEvaluatedKey rule).
    assert query() == ([50, 51, 52], None, [50, 51, 52, 53])
    assert query(Limit=2) == ([50, 51], {"symbol": {"S": "DEEP"}, "timestamp": {"N": "51"}}, [50, 51, 52])
    assert query(Limit=1, ScanIndexForward=False)[::2] == ([52], [51, 52])
    assert query(ScanIndexForward=False)[::2] == ([52, 51, 50], [49, 50, 51, 52])
    assert query(ExclusiveStartKey={"symbol": {"S": "DEEP"}, "timestamp": {"N": "50"}})[::2] == ([51, 52],
                                                                                                   [51, 52, 53])


def test_a_write_between_two_queries_is_seen_by_the_second(dynamodb):
    """The sorted partition is kept between queries only until the next write: a new item, a
    replaced one and an updated one all show."""
    _create_table(dynamodb, "kept")
    dynamodb.put_item(TableName="kept", Item={"symbol": {"S": "K"}, "timestamp": {"N": "1"}, "v": {"S": "a"}})

    def values():
        return [(int(item["timestamp"]["N"]), item["v"]["S"]) for item in dynamodb.query(
            TableName="kept", KeyConditionExpression="symbol = :s AND #t >= :z",
            ExpressionAttributeNames={"#t": "timestamp"},
            ExpressionAttributeValues={":s": {"S": "K"}, ":z": {"N": "0"}})["Items"]]

    assert values() == [(1, "a")]
    dynamodb.put_item(TableName="kept", Item={"symbol": {"S": "K"}, "timestamp": {"N": "0"}, "v": {"S": "b"}})
    assert values() == [(0, "b"), (1, "a")]
    dynamodb.put_item(TableName="kept", Item={"symbol": {"S": "K"}, "timestamp": {"N": "1"}, "v": {"S": "c"}})
    assert values() == [(0, "b"), (1, "c")]
    dynamodb.update_item(TableName="kept", Key={"symbol": {"S": "K"}, "timestamp": {"N": "0"}},
                         UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": "d"}})
    assert values() == [(0, "d"), (1, "c")]
    dynamodb.delete_item(TableName="kept", Key={"symbol": {"S": "K"}, "timestamp": {"N": "1"}})
    assert values() == [(0, "d")]


@pytest.fixture
def frequent_thread_switches():
    """Switch threads every 10 µs so that races in the server show within a few hundred writes."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


def _concurrent_writes(dynamodb, table: str) -> tuple[int, list[str]]:
    """16 threads: each tries to create the same 20 keys, then writes 20 keys of its own.

    Returns how many conditional creates succeeded, and the stream's sequence numbers.
    """
    barrier = threading.Barrier(16)

    def writer(thread: int) -> int:
        barrier.wait()
        created = 0
        for n in range(20):
            try:
                dynamodb.put_item(TableName=table, Item={"symbol": {"S": "SHARED"}, "timestamp": {"N": str(n)}},
                                  ConditionExpression="attribute_not_exists(#ts)",
                                  ExpressionAttributeNames={"#ts": "timestamp"})
                created += 1
            except ClientError as error:
                assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"
            dynamodb.put_item(TableName=table, Item={"symbol": {"S": f"OWN{thread}"}, "timestamp": {"N": str(n)}})
        return created

    with ThreadPoolExecutor(16) as pool:
        created = sum(pool.map(writer, range(16)))
    return created, [record["dynamodb"]["SequenceNumber"] for record in _stream_records(dynamodb, table)]


def _stream_records(dynamodb, table: str) -> list[dict]:
    streams = boto3.client("dynamodbstreams", endpoint_url=dynamodb.meta.endpoint_url, region_name="us-east-1")
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        # Bounded: unpatched moto's duplicate sequence numbers can send an iterator back to
        # records it already returned, forever (the last CI run hung here for 80 minutes).
        for _ in range(STREAM_PAGES):
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator")
            if not page["Records"] or not iterator:
                break
    return records


def test_concurrent_writes_are_atomic_with_unique_sequence_numbers(dynamodb, frequent_thread_switches):
    _create_table(dynamodb, "contended", stream=True)
    created, sequence_numbers = _concurrent_writes(dynamodb, "contended")
    assert created == 20  # each shared key created exactly once
    assert len(sequence_numbers) == 20 + 16 * 20
    assert len(set(sequence_numbers)) == len(sequence_numbers)


def test_unpatched_moto_shows_the_race_the_patch_removes(dynamodb, frequent_thread_switches):
    """Proves the test above can fail: the same writes through unpatched moto break its promises."""
    _create_table(dynamodb, "contended-unpatched", stream=True)
    moto_patches.uninstall()
    created, sequence_numbers = _concurrent_writes(dynamodb, "contended-unpatched")
    assert created > 20 or len(set(sequence_numbers)) < len(sequence_numbers)


def _table_with_a_mapped_function(endpoint: str, dynamodb) -> None:
    _create_table(dynamodb, "mapped", stream=True)
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    role = iam.create_role(RoleName="enricher", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lambda_client = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    lambda_client.create_function(FunctionName="enricher", Runtime="python3.12", Role=role,
                                  Handler="handler.handler", Code={"ZipFile": archive.getvalue()})
    lambda_client.create_event_source_mapping(
        FunctionName="enricher", StartingPosition="TRIM_HORIZON",
        EventSourceArn=dynamodb.describe_table(TableName="mapped")["Table"]["LatestStreamArn"])
    for n in range(3):
        dynamodb.put_item(TableName="mapped", Item={"symbol": {"S": "BTC-USD"}, "timestamp": {"N": str(n)}})


def test_a_mapped_table_keeps_its_stream_records_for_the_local_poller(endpoint, dynamodb):
    _table_with_a_mapped_function(endpoint, dynamodb)
    assert [r["dynamodb"]["Keys"]["timestamp"]["N"] for r in _stream_records(dynamodb, "mapped")] == ["0", "1", "2"]


def test_unpatched_moto_drops_the_records_of_a_mapped_table(endpoint, dynamodb):
    """Proves the test above can fail: without the patch moto tries to run the function and drops them."""
    moto_patches.uninstall()
    _table_with_a_mapped_function(endpoint, dynamodb)
    assert len(_stream_records(dynamodb, "mapped")) < 3


# ---- 4. attribute values written as they are -----------------------------------------------------
_scalars = st.one_of(
    st.builds(lambda text: {"S": text}, st.text(max_size=12)),
    st.builds(lambda number: {"N": str(number)}, st.decimals(allow_nan=False, allow_infinity=False, places=4,
                                                            min_value=-10**9, max_value=10**9)),
    st.builds(lambda data: {"B": data}, st.binary(min_size=1, max_size=12)),
    st.builds(lambda flag: {"BOOL": flag}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda texts: {"SS": sorted(texts)}, st.sets(st.text(min_size=1, max_size=5), min_size=1, max_size=3)),
    st.builds(lambda numbers: {"NS": sorted(map(str, numbers))}, st.sets(st.integers(-99, 99), min_size=1, max_size=3)),
    st.builds(lambda blobs: {"BS": sorted(blobs)}, st.sets(st.binary(min_size=1, max_size=4), min_size=1, max_size=3)),
)
attribute_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.builds(lambda members: {"L": members}, st.lists(inner, max_size=3)),
    st.builds(lambda members: {"M": members}, st.dictionaries(st.text("abcxyz", min_size=1, max_size=3), inner,
                                                              max_size=3))), max_leaves=8)


def _answers(dynamodb, table: str) -> list:
    """What a client reads back: GetItem, Query, Scan and the stream's records."""
    key = {"symbol": {"S": "X"}, "timestamp": {"N": "0"}}
    records = _stream_records(dynamodb, table)
    return [dynamodb.get_item(TableName=table, Key=key)["Item"],
            dynamodb.query(TableName=table, KeyConditionExpression="symbol = :s",
                           ExpressionAttributeValues={":s": {"S": "X"}})["Items"],
            dynamodb.scan(TableName=table)["Items"],
            [(record["eventName"], record["dynamodb"].get("NewImage")) for record in records]]


@settings(max_examples=60)  # ~10 requests per example over HTTP
@given(attributes=st.dictionaries(st.text("abcdefgh", min_size=1, max_size=4), attribute_values, max_size=5))
def test_attribute_values_are_answered_exactly_as_moto_does_and_as_they_were_written(dynamodb, attributes):
    table = f"values-{next(_tables)}"
    _create_table(dynamodb, table, stream=True)
    item = {**attributes, "symbol": {"S": "X"}, "timestamp": {"N": "0"}}
    dynamodb.put_item(TableName=table, Item=item)
    moto_patches.install()
    patched = _answers(dynamodb, table)
    moto_patches.uninstall()
    assert patched == _answers(dynamodb, table)
    moto_patches.install()
    assert patched[0] == item  # round trip: what was written, binaries and nesting included


def test_with_the_patch_no_attribute_value_goes_through_moto_shape_walk(dynamodb, monkeypatch):
    """The speedup itself: with the patch, no attribute value goes through moto's shape walk."""
    _create_table(dynamodb, "walked")
    dynamodb.put_item(TableName="walked", Item={"symbol": {"S": "X"}, "timestamp": {"N": "0"}, "p": {"N": "1"}})
    walked: list[str] = []
    original = moto_patches._original_serialize_structure

    def counting(self, serialized, value, shape, key):
        walked.append(shape.name)
        return original(self, serialized, value, shape, key)

    monkeypatch.setattr(moto_patches, "_original_serialize_structure", counting)
    moto_patches.install()
    dynamodb.get_item(TableName="walked", Key={"symbol": {"S": "X"}, "timestamp": {"N": "0"}})
    assert "AttributeValue" not in walked
    moto_patches.uninstall()
    monkeypatch.setattr(moto_patches.JSONSerializer, "_serialize_type_structure", counting)
    dynamodb.get_item(TableName="walked", Key={"symbol": {"S": "X"}, "timestamp": {"N": "0"}})
    assert "AttributeValue" in walked


# ---- 5. ECS services keep their capacity provider strategy ----------------------------------------
def _service_strategy(endpoint: str) -> list:
    ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1")
    ecs.create_cluster(clusterName="relay", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(family="relay", containerDefinitions=[{"name": "relay", "image": "relay:1"}],
                                 requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512")
    strategy = [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    sent = {"capacityProviderStrategy": strategy, "enableECSManagedTags": True,
            "availabilityZoneRebalancing": "DISABLED"}
    created = ecs.create_service(cluster="relay", serviceName="relay", taskDefinition="relay", desiredCount=1,
                                 **sent)["service"]
    described = ecs.describe_services(cluster="relay", services=["relay"])["services"][0]
    return [{member: answer.get(member) for member in sent} for answer in (created, described)] + [sent]


def test_an_ecs_service_answers_the_capacity_provider_strategy_it_was_created_with(endpoint):
    created, described, sent = _service_strategy(endpoint)
    assert created == described == sent


def test_unpatched_moto_drops_the_capacity_provider_strategy(endpoint):
    moto_patches.uninstall()
    created, described, _ = _service_strategy(endpoint)
    assert created["capacityProviderStrategy"] is None and described["capacityProviderStrategy"] is None


# ---- 6. moto's module list, listed once ------------------------------------------------------------
def _listings_during_requests(dynamodb, monkeypatch) -> int:
    """How many times moto's server listed its package directory while answering 5 requests."""
    import os

    import moto

    package, listed, original = os.path.dirname(moto.__file__), [], os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": (listed.append(path) if path == package else None)
                        or original(path))
    for _ in range(5):
        dynamodb.list_tables()
    monkeypatch.setattr(os, "listdir", original)
    return len(listed)


def test_the_server_lists_moto_modules_once_not_per_request(dynamodb, monkeypatch):
    moto_patches.install()
    dynamodb.list_tables()  # the one listing, if not taken yet
    assert _listings_during_requests(dynamodb, monkeypatch) == 0


def test_unpatched_moto_lists_its_modules_on_every_request(dynamodb, monkeypatch):
    moto_patches.uninstall()
    assert _listings_during_requests(dynamodb, monkeypatch) >= 5


def test_a_binary_key_in_a_stream_record_reads_as_stored_where_moto_encoded_it_twice(dynamodb):
    dynamodb.create_table(TableName="binary-keys", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "B"}],
                          StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    dynamodb.put_item(TableName="binary-keys", Item={"k": {"B": b"key"}})
    moto_patches.install()
    assert [r["dynamodb"]["Keys"] for r in _stream_records(dynamodb, "binary-keys")] == [{"k": {"B": b"key"}}]
    moto_patches.uninstall()
    assert [r["dynamodb"]["Keys"] for r in _stream_records(dynamodb, "binary-keys")] == [{"k": {"B": b"a2V5"}}]


# ---- 7. one SQS attribute without counting the queue ---------------------------------------------
@pytest.fixture
def sqs(endpoint):
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")


def _visibility_checks_for_one_send_and_receive(sqs, monkeypatch, waiting: int) -> int:
    """How many times moto asks a message whether it is visible, to send and receive one
    message of a queue already holding `waiting` in flight (received, not yet deleted)."""
    from moto.sqs.models import Message

    url = sqs.create_queue(QueueName=f"counted-{next(_tables)}")["QueueUrl"]
    for start in range(0, waiting, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m"}
                                                      for i in range(min(10, waiting - start))])
    while sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages"):
        pass
    checks = [0]
    visible = Message.visible

    def counted(self) -> bool:
        checks[0] += 1
        return visible.fget(self)

    monkeypatch.setattr(Message, "visible", property(counted))
    sqs.send_message(QueueUrl=url, MessageBody="new")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["new"]
    monkeypatch.setattr(Message, "visible", visible)
    return checks[0]


def test_sending_and_receiving_a_message_does_not_count_the_queue(sqs, monkeypatch):
    moto_patches.install()
    # the receive walks the queue once, as moto's queue does, and nothing counts it besides
    assert _visibility_checks_for_one_send_and_receive(sqs, monkeypatch, waiting=100) <= 101 + 5


def test_unpatched_moto_counts_the_whole_queue_on_every_send_and_receive(sqs, monkeypatch):
    moto_patches.uninstall()
    assert _visibility_checks_for_one_send_and_receive(sqs, monkeypatch, waiting=100) >= 4 * 100


def _retention_scenario(sqs, monkeypatch, patched: bool) -> tuple:
    """Counts, a receive past the queue's retention, and one after: what a client sees."""
    import moto.sqs.models

    (moto_patches.install if patched else moto_patches.uninstall)()
    url = sqs.create_queue(QueueName=f"kept-{next(_tables)}", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    first = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1,
                                                   VisibilityTimeout=600)["Messages"]]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    later = moto.sqs.models.unix_time() + 61
    with monkeypatch.context() as clock:
        clock.setattr(moto_patches if patched else moto.sqs.models, "unix_time", lambda: later)
        expired = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    after = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
    return (first, counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"],
            expired, after)


def test_queue_counts_and_the_retention_check_answer_as_moto_does(sqs, monkeypatch):
    patched = _retention_scenario(sqs, monkeypatch, patched=True)
    assert patched[1:4] == ("2", "1", [])  # counted right; past its retention nothing is delivered
    assert patched == _retention_scenario(sqs, monkeypatch, patched=False)
