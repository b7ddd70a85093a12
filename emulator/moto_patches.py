"""Fixes to moto for the embedded stack (1 and 2 found under the 20,000-update load).

1. Atomic writes. moto's server is threaded, and its writes are not atomic: a conditional
   PutItem reads, checks, then writes, and a stream record's sequence number is
   `len(records) + start`, computed before the append. Concurrent writes (the webhook
   writes symbols in parallel) got duplicate sequence numbers (seen: dozens in a
   4,000-update run), so the enricher, which keys a batch by sequence number as Lambda's
   contract allows, enriched one record twice and another never. DynamoDB's conditional
   writes are atomic and its sequence numbers unique: one lock around moto's writes
   gives the emulator both.
2. Partition- and range-sized queries. moto answers every base-table Query by sorting
   *all* the table's items and keeping those with the wanted hash key (`Table.query` →
   `Table.all_items()`), so each enricher history read cost O(table) and the load test
   went quadratic (most of its time, measured with py-spy). DynamoDB reads one
   partition, and within it only the key range asked for (a B-tree seek). This hands
   moto's own query code only that partition, and of it only the items that can be on the
   page: those the range key condition admits (a contiguous run of the partition sorted
   by moto's own key values, found by bisection), after the exclusive start key, at most
   Limit + 1 of them, and one item past the run (moto answers LastEvaluatedKey when its
   page is full and any item follows, so its answer stays moto's; one exception: where
   items outside the range would have pushed moto's page past 1 MB, moto answered a
   LastEvaluatedKey and this does not, as DynamoDB, which reads only the range). Everything
   else (the conditions themselves, paging, filters, projections, order, the 1 MB page)
   stays moto's; a start key of another partition is left to moto entirely. Without
   it a Query returning one tick of a 2,880-tick partition took 32 ms in moto (the price
   API's candle reads spent most of their time there); DynamoDB's own time does not grow
   with the partition.
3. Stream records stay in the stream. With an event source mapping on the table, moto
   tries to run the function itself on every write (it needs Docker, which these
   machines lack) and then drops the stream's records. The local runtime's poller plays
   Lambda's part instead, from the records moto keeps.
4. Attribute values written straight to JSON. moto 5.2's response serializer walks every
   DynamoDB attribute value through the API model (a `get_value` and a key-name search
   per member of `AttributeValue`): about 1.5 ms per 8-attribute item, so a Query of a day
   of 1m candles spent ~2 s in moto, and the stream's GetRecords and the enricher's
   history reads paid the same per item. An attribute value already is its wire form
   (`{"S": ...}`, `{"N": "..."}`, nested M/L, binaries as base64): this writes it as is
   and leaves the rest of every answer to moto's serializer. One difference, on purpose:
   where moto holds a binary already as base64 text (stream records' Keys), its serializer
   encoded it a second time; written as is, a client reads the bytes that were stored.
5. ECS services keep their capacity provider strategy. moto's CreateService drops the
   `capacityProviderStrategy` it is given (it keeps one for task sets only), and with it
   `enableECSManagedTags` and `availabilityZoneRebalancing`, so a service on Fargate Spot
   (the relay stack's) read back without them, and terraform planned to replace the
   service on every plan. This keeps what was sent and answers it back.
6. One directory listing, not one per request. moto's server finds the backend of every
   request while holding one global lock, and on the way lists its own package directory
   (`backends.list_of_moto_modules`: a listdir and ~150 isdir calls). Every request of
   every thread queued on that lock: sampled under the 20,000-update load it was the
   largest share of the server's time. The package does not change while it runs, so
   the listing is taken once.
7. SQS looks up one queue attribute without counting the queue. To read one attribute,
   moto builds the queue's whole attribute dict, and with it three message counts that
   each walk every message in the queue; it does so once for every message sent
   (`send_message` reads ContentBasedDeduplication) and three times for every message
   received (the retention check reads MessageRetentionPeriod through
   `get_queue_attributes`). A test subscriber that falls behind the announcements of the
   20,000-update load held thousands of messages, so each send and receive cost
   O(queue) and SQS took about a quarter of the server's time (sampled with py-spy).
   SQS itself does not count the queue to deliver a message: here the retention check reads
   its one attribute, and while a message is being sent the three counts, which nothing
   in `send_message` reads, are not computed.
8. Moving AWSCURRENT moves what GetSecretValue answers. moto's UpdateSecretVersionStage moves
   the AWSCURRENT label but keeps answering GetSecretValue (without a stage or version) from
   the version that held it before, so a change staged and then made current
   (`invoke secrets`, ops/secrets.py) was invisible to the webhook's reads. Secrets Manager
   answers the version that holds AWSCURRENT; this points moto's default version at it.

Hand-written because no moto setting covers any of them; the emulator installs them, and
tests/test_moto_patches.py checks the answers are moto's, the writes atomic and the
records kept.
"""

from __future__ import annotations

import base64
import contextvars
import functools
import inspect
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto import backends
from moto.awslambda.models import LambdaBackend
from moto.core.serialize import JSONSerializer
from moto.core.utils import unix_time
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend
from moto.sqs.models import Queue, SQSBackend

# ---- 1. atomic writes ---------------------------------------------------------------------------
WRITE_METHODS = ("put_item", "update_item", "delete_item", "transact_write_items", "execute_statement",
                 "batch_execute_statement")
_writes = threading.RLock()  # re-entrant: a transaction's writes call put_item/update_item themselves
_original_writes: dict[str, Callable[..., Any]] = {name: getattr(DynamoDBBackend, name) for name in WRITE_METHODS}


_write_count = [0]  # bumped by every write: a query's sorted partition is reused only until the next one


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> Any:
        with _writes:
            _write_count[0] += 1
            return method(*args, **kwargs)
    return write


# ---- 2. partition-sized queries -----------------------------------------------------------------
_partition = threading.local()  # the hash key of the base-table Query running on this thread
_original_query = Table.query
_original_all_items = Table.all_items


_QUERY_PARAMETERS = inspect.signature(_original_query)
# Range key comparisons answered by bisecting the sorted partition: (low side, high side) of
# the slice, each "left" / "right" of the bound value, or None for the partition's end.
_BISECTED = {"EQ": ("left", "right"), "LT": (None, "left"), "LE": (None, "right"), "GT": ("right", None),
             "GE": ("left", None), "BETWEEN": ("left", "right")}
_SPELLED = {"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}


@dataclass(frozen=True)
class _PageOfInterest:
    """What of a base-table Query decides which items can be on its page."""

    hash_key: Any
    comparison: str | None
    bounds: tuple[Any, ...]
    start: Any               # the exclusive start key's range value, or None
    forward: bool
    limit: int | None


def _sorted_partition(table: Table, hash_key: Any) -> tuple[list[Any], list[tuple[Any, int, Any]]]:
    """The partition's range key values and (value, position, item), in key order; kept on the
    table until the next write anywhere (reads between writes, such as a reader's pages, then
    skip the sort). Called under the write lock."""
    cache: dict[Any, tuple[int, list[Any], list[tuple[Any, int, Any]]]] = table.__dict__.setdefault(
        "_emulator_sorted_partitions", {})
    cached = cache.get(hash_key)
    if cached is not None and cached[0] == _write_count[0]:
        return cached[1], cached[2]
    # (key, position, item): positions are unique, so tuple order never compares items and
    # the sort runs in C, without a key function. .get() so a miss does not add a key to
    # moto's defaultdict.
    partition = table.items.get(hash_key, {})
    keyed = sorted([(item.range_key.cast_value, n, item) for n, item in enumerate(partition.values())
                    if item.range_key is not None])
    keys = [key for key, _, _ in keyed]
    if len(cache) > 1000:
        cache.clear()
    cache[hash_key] = (_write_count[0], keys, keyed)
    return keys, keyed


def _slice(table: Table, query: _PageOfInterest) -> list[Any] | None:
    """The partition's items the page can hold, in key order (moto sorts them again), or None
    for a condition this does not know (moto then walks the whole partition).

    Matching keys are one contiguous run of the sorted partition for every key condition
    DynamoDB allows (a prefix too). One item past the run, in the Query's direction, is kept:
    unpatched moto answers LastEvaluatedKey when its page is full and *any* item follows, so
    the answer stays moto's exactly (tests/test_moto_patches.py compares them).
    """
    keys, keyed = _sorted_partition(table, query.hash_key)
    low, high = 0, len(keyed)
    comparison = _SPELLED.get(query.comparison or "", query.comparison)
    if comparison in _BISECTED:
        low_side, high_side = _BISECTED[comparison]
        values = [bound.cast_value for bound in query.bounds]
        if low_side is not None:
            low = (bisect_left if low_side == "left" else bisect_right)(keys, values[0])
        if high_side is not None:
            high = (bisect_left if high_side == "left" else bisect_right)(keys, values[-1])
    elif comparison == "BEGINS_WITH":
        prefix = query.bounds[0].cast_value
        low = high = bisect_left(keys, prefix)
        while high < len(keys) and isinstance(keys[high], (str, bytes)) and keys[high].startswith(prefix):
            high += 1
    elif comparison is not None:
        return None
    if query.start is not None:
        start = query.start.cast_value
        if query.forward:
            low = max(low, bisect_right(keys, start))
        else:
            high = min(high, bisect_left(keys, start))
    if query.limit is not None and high - low > query.limit:
        low, high = (low, low + query.limit + 1) if query.forward else (high - query.limit - 1, high)
    elif query.forward:
        high = min(len(keyed), max(low, high) + 1)
    else:
        low = max(0, min(low, high) - 1)
    return [item for _, _, item in keyed[low:max(low, high)]]


def _all_items(self: Table) -> list[Any]:
    query: _PageOfInterest | None = getattr(_partition, "query", None)
    if query is None or not self.range_key_attr:
        return _original_all_items(self)
    sliced = _slice(self, query)
    # .get() so a miss does not add a key to moto's defaultdict.
    return list(self.items.get(query.hash_key, {}).values()) if sliced is None else sliced


@functools.wraps(_original_query)
def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    bound = _QUERY_PARAMETERS.bind(self, hash_key, *args, **kwargs)
    arguments = bound.arguments
    filters = arguments.get("filter_kwargs") or {}
    if (arguments.get("index_name") is not None or hash_key is None or filters
            or len(arguments.get("range_key_conditions") or ()) > 1):
        return _original_query(self, hash_key, *args, **kwargs)
    start_key = arguments.get("exclusive_start_key")
    if start_key and DynamoType(start_key.get(self.hash_key_attr, {"NULL": True})) != hash_key:
        return _original_query(self, hash_key, *args, **kwargs)  # another partition's key: moto's answer
    start = None
    if start_key and self.range_key_attr in start_key:
        start = DynamoType(start_key[self.range_key_attr])
    query = _PageOfInterest(hash_key, arguments.get("range_comparison"), tuple(arguments.get("range_objs") or ()),
                            start, arguments.get("scan_index_forward") is not False, arguments.get("limit"))
    # Under the write lock, as DynamoDB reads whole items: moto's UpdateItem changes an item in
    # place, and the query deep-copies the items it returns.
    with _writes:
        _partition.query = query
        try:
            return _original_query(self, hash_key, *args, **kwargs)
        finally:
            _partition.query = None


# ---- 3. stream records stay for the local poller ------------------------------------------------
_original_send_dynamodb_items = LambdaBackend.send_dynamodb_items


def _leave_records_in_the_stream(self: LambdaBackend, function_arn: str, items: list[Any], source: str) -> str:
    return ""  # falsy: moto keeps the records (StreamShard.add empties the shard on a truthy result)


# ---- 4. attribute values as they are -----------------------------------------------------------
_original_serialize_structure = JSONSerializer._serialize_type_structure
ATTRIBUTE_VALUE_SHAPE = "AttributeValue"
ATTRIBUTE_VALUE_SERVICES = ("dynamodb", "dynamodbstreams")  # the shape name alone is not unique


def _wire(value: Any) -> Any:
    """An attribute value's JSON: bytes become base64 text (moto keeps nested binaries as
    bytes); maps and lists recurse; every other member is already text, a bool or a list."""
    if isinstance(value, dict):
        return {key: _wire(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_wire(member) for member in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return value


def _serialize_attribute_values(self: JSONSerializer, serialized: Any, value: Any, shape: Any, key: str) -> None:
    if (key and shape.name == ATTRIBUTE_VALUE_SHAPE and isinstance(value, dict)
            and self.operation_model.service_model.service_name in ATTRIBUTE_VALUE_SERVICES):
        serialized[key] = _wire(value)
        return
    _original_serialize_structure(self, serialized, value, shape, key)


# ---- 5. ECS services keep their capacity provider strategy ---------------------------------------
_original_create_service = EC2ContainerServiceResponse.create_service


# CreateService members moto drops, and the attribute its serializer answers each from.
KEPT_SERVICE_MEMBERS = {"capacityProviderStrategy": "capacity_provider_strategy",
                        "enableECSManagedTags": "enable_ecs_managed_tags",
                        "availabilityZoneRebalancing": "availability_zone_rebalancing"}


def _create_service_keeping_strategy(self: EC2ContainerServiceResponse) -> Any:
    result = _original_create_service(self)
    answer: Any = result.result
    for member, attribute in KEPT_SERVICE_MEMBERS.items():
        value = self._get_param(member)
        if value is not None:
            setattr(answer["service"], attribute, value)
    return result


# ---- 6. moto's module list, listed once -------------------------------------------------------
_original_list_of_moto_modules = backends.list_of_moto_modules


@functools.cache
def _listed_once() -> tuple[str, ...]:
    return tuple(_original_list_of_moto_modules())


# ---- 7. one SQS attribute without counting the queue --------------------------------------------
QUEUE_COUNTS = ("approximate_number_of_messages", "approximate_number_of_messages_delayed",
                "approximate_number_of_messages_not_visible")
_original_counts: dict[str, property] = {name: getattr(Queue, name) for name in QUEUE_COUNTS}
_original_send_message = SQSBackend.send_message
_original_retention_check = SQSBackend.is_message_valid_based_on_retention_period
_sending = contextvars.ContextVar("sending", default=False)  # per request thread


def _count_unless_sending(count: property) -> property:
    def get(self: Queue) -> int:
        # send_message builds the attribute dict for ContentBasedDeduplication only: the
        # counts it also holds are never read there
        return 0 if _sending.get() else count.fget(self)  # type: ignore[misc]
    return property(get)


def _send_message_without_counts(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
    token = _sending.set(True)
    try:
        return _original_send_message(self, *args, **kwargs)
    finally:
        _sending.reset(token)


def _within_retention(self: SQSBackend, queue_name: str, message: Any) -> bool:
    # moto's check, reading the one attribute instead of get_queue_attributes' whole dict
    retention: int = self.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
    retain_until = retention + message.sent_timestamp / 1000
    return bool(retain_until > unix_time())


# ---- 8. AWSCURRENT moved by UpdateSecretVersionStage -------------------------------------------
_original_update_stage = SecretsManagerBackend.update_secret_version_stage


def _update_stage_moving_current(self: SecretsManagerBackend, secret_id: str, version_stage: str,
                                 remove_from_version_id: str, move_to_version_id: str) -> tuple[str, str]:
    answer = _original_update_stage(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
    secret = self.secrets[secret_id]
    if version_stage == "AWSCURRENT" and move_to_version_id and isinstance(secret, FakeSecret):
        secret.set_default_version_id(move_to_version_id)
    return answer


# ---- switch -------------------------------------------------------------------------------------
def install() -> None:
    """Idempotent: writes become atomic, queries partition-sized, stream records stay,
    attribute values are written as they are, ECS services keep their strategy,
    moto's module list is taken once, SQS reads one attribute without counting the queue, and
    moving AWSCURRENT moves what GetSecretValue answers."""
    for name, method in _original_writes.items():
        setattr(DynamoDBBackend, name, _serialized(method))
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
    LambdaBackend.send_dynamodb_items = _leave_records_in_the_stream  # type: ignore[method-assign]
    JSONSerializer._serialize_type_structure = _serialize_attribute_values  # type: ignore[method-assign, assignment]
    EC2ContainerServiceResponse.create_service = _create_service_keeping_strategy  # type: ignore[method-assign]
    backends.list_of_moto_modules = _listed_once
    for name, count in _original_counts.items():
        setattr(Queue, name, _count_unless_sending(count))
    SQSBackend.send_message = _send_message_without_counts  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]
    SecretsManagerBackend.update_secret_version_stage = _update_stage_moving_current  # type: ignore[method-assign]


def uninstall() -> None:
    for name, method in _original_writes.items():
        setattr(DynamoDBBackend, name, method)
    Table.query = _original_query  # type: ignore[method-assign]
    Table.all_items = _original_all_items  # type: ignore[method-assign]
    LambdaBackend.send_dynamodb_items = _original_send_dynamodb_items  # type: ignore[method-assign]
    JSONSerializer._serialize_type_structure = _original_serialize_structure  # type: ignore[method-assign]
    EC2ContainerServiceResponse.create_service = _original_create_service  # type: ignore[method-assign]
    backends.list_of_moto_modules = _original_list_of_moto_modules
    for name, count in _original_counts.items():
        setattr(Queue, name, count)
    SQSBackend.send_message = _original_send_message  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = _original_retention_check  # type: ignore[method-assign]
    SecretsManagerBackend.update_secret_version_stage = _original_update_stage  # type: ignore[method-assign]
