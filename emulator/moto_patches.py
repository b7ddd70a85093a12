"""Fixes to moto for the embedded stack (1 and 2 found under the 20,000-update load).

1. Atomic writes. moto's server is threaded, and its writes are not atomic: a conditional
   PutItem reads, checks, then writes, and a stream record's sequence number is
   `len(records) + start`, computed before the append. Concurrent writes (the webhook
   writes symbols in parallel) got duplicate sequence numbers (seen: dozens in a
   4,000-update run), so the enricher, which keys a batch by sequence number as Lambda's
   contract allows, enriched one record twice and another never. DynamoDB's conditional
   writes are atomic and its sequence numbers unique: one lock around moto's writes
   gives the emulator both.
2. Partition-sized queries. moto answers every base-table Query by sorting *all* the
   table's items and keeping those with the wanted hash key (`Table.query` →
   `Table.all_items()`), so each enricher history read cost O(table) and the load test
   went quadratic (most of its time, measured with py-spy). DynamoDB reads one
   partition: this hands moto's own query code only that partition; everything else
   (key conditions, paging, filters, projections, order) stays moto's.
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

Hand-written because no moto setting covers any of them; the emulator installs them, and
tests/test_moto_patches.py checks the answers are moto's, the writes atomic and the
records kept.
"""

from __future__ import annotations

import base64
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from moto import backends
from moto.awslambda.models import LambdaBackend
from moto.core.serialize import JSONSerializer
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.ecs.responses import EC2ContainerServiceResponse

# ---- 1. atomic writes ---------------------------------------------------------------------------
WRITE_METHODS = ("put_item", "update_item", "delete_item", "transact_write_items", "execute_statement",
                 "batch_execute_statement")
_writes = threading.RLock()  # re-entrant: a transaction's writes call put_item/update_item themselves
_original_writes: dict[str, Callable[..., Any]] = {name: getattr(DynamoDBBackend, name) for name in WRITE_METHODS}


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> Any:
        with _writes:
            return method(*args, **kwargs)
    return write


# ---- 2. partition-sized queries -----------------------------------------------------------------
_partition = threading.local()  # the hash key of the base-table Query running on this thread
_original_query = Table.query
_original_all_items = Table.all_items
# Position of index_name in Table.query's parameters after (self, hash_key); moto passes it by position.
_INDEX_NAME_POSITION = list(inspect.signature(_original_query).parameters).index("index_name") - 2


def _all_items(self: Table) -> list[Any]:
    hash_key = getattr(_partition, "hash_key", None)
    if hash_key is None or not self.range_key_attr:
        return _original_all_items(self)
    # .get() so a miss does not add a key to moto's defaultdict. Unsorted: moto's query sorts
    # what it keeps by range key itself.
    return list(self.items.get(hash_key, {}).values())


@functools.wraps(_original_query)
def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = args[_INDEX_NAME_POSITION] if len(args) > _INDEX_NAME_POSITION else kwargs.get("index_name")
    if index_name is not None or hash_key is None:
        return _original_query(self, hash_key, *args, **kwargs)
    # Under the write lock, as DynamoDB reads whole items: moto's UpdateItem changes an item in
    # place, and the query deep-copies the items it returns.
    with _writes:
        _partition.hash_key = hash_key
        try:
            return _original_query(self, hash_key, *args, **kwargs)
        finally:
            _partition.hash_key = None


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


# ---- switch -------------------------------------------------------------------------------------
def install() -> None:
    """Idempotent: writes become atomic, queries partition-sized, stream records stay,
    attribute values are written as they are, ECS services keep their strategy, and
    moto's module list is taken once."""
    for name, method in _original_writes.items():
        setattr(DynamoDBBackend, name, _serialized(method))
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
    LambdaBackend.send_dynamodb_items = _leave_records_in_the_stream  # type: ignore[method-assign]
    JSONSerializer._serialize_type_structure = _serialize_attribute_values  # type: ignore[method-assign, assignment]
    EC2ContainerServiceResponse.create_service = _create_service_keeping_strategy  # type: ignore[method-assign]
    backends.list_of_moto_modules = _listed_once


def uninstall() -> None:
    for name, method in _original_writes.items():
        setattr(DynamoDBBackend, name, method)
    Table.query = _original_query  # type: ignore[method-assign]
    Table.all_items = _original_all_items  # type: ignore[method-assign]
    LambdaBackend.send_dynamodb_items = _original_send_dynamodb_items  # type: ignore[method-assign]
    JSONSerializer._serialize_type_structure = _original_serialize_structure  # type: ignore[method-assign]
    EC2ContainerServiceResponse.create_service = _original_create_service  # type: ignore[method-assign]
    backends.list_of_moto_modules = _original_list_of_moto_modules
