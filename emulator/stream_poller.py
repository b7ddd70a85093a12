"""Plays Lambda's event source mapping for the table stream on the embedded stack.

Its configuration (batch size, filter, retries, bisect, on-failure destination, response
types) is read from the deployed mapping (`list_event_source_mappings`), not copied.
Semantics follow Lambda's for DynamoDB streams: in-order per shard; a function error
fails the whole batch; with ReportBatchItemFailures, processing resumes from the lowest
failed sequence number; with bisect on, a failing batch is split in two; when the retries
are spent, Lambda's on-failure record (shard id and sequence range, no data) goes to the
destination queue and the poller moves on.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.events.models import EventPattern  # the EventBridge pattern syntax Lambda filters share

from emulator.runtime import FunctionError, LocalFunction


@dataclass(frozen=True)
class MappingConfig:
    uuid: str
    function_arn: str
    stream_arn: str
    batch_size: int
    starting_position: str
    filters: tuple[str, ...]
    maximum_retry_attempts: int
    bisect_on_error: bool
    report_item_failures: bool
    on_failure_destination: str | None

    @classmethod
    def from_api(cls, mapping: dict[str, Any]) -> MappingConfig:
        filters = tuple(f["Pattern"] for f in (mapping.get("FilterCriteria") or {}).get("Filters", []))
        destination = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        return cls(
            uuid=mapping["UUID"], function_arn=mapping["FunctionArn"], stream_arn=mapping["EventSourceArn"],
            batch_size=int(mapping.get("BatchSize") or 100),
            starting_position=mapping.get("StartingPosition") or "TRIM_HORIZON",
            filters=filters,
            maximum_retry_attempts=int(mapping["MaximumRetryAttempts"]
                                       if mapping.get("MaximumRetryAttempts") is not None else -1),
            bisect_on_error=bool(mapping.get("BisectBatchOnFunctionError")),
            report_item_failures="ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or []),
            on_failure_destination=destination,
        )


def deployed_mapping(lambda_client: Any, function_name: str) -> MappingConfig:
    # Filtered here: moto's FunctionName filter does not match a bare function name.
    mappings = [m for m in lambda_client.list_event_source_mappings()["EventSourceMappings"]
                if m["FunctionArn"].rsplit(":", 1)[-1] == function_name]
    if len(mappings) != 1:
        raise RuntimeError(f"expected one event source mapping for {function_name}, found {len(mappings)}")
    return MappingConfig.from_api(mappings[0])


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class PollerStats:
    invocations: int = 0
    records_delivered: int = 0
    records_filtered_out: int = 0
    batches_to_dlq: int = 0


class StreamPoller:
    def __init__(self, config: MappingConfig, function: LocalFunction, streams: Any, sqs: Any,
                 region: str, poll_interval: float = 0.2) -> None:
        self.config, self.function, self.streams, self.sqs = config, function, streams, sqs
        self.region, self.poll_interval = region, poll_interval
        self._patterns = [EventPattern.load(pattern) for pattern in config.filters]
        self._iterators: dict[str, str | None] = {}
        self._stop = threading.Event()
        self._passes = threading.Condition()
        self._completed_passes = 0
        self._empty_passes = 0  # consecutive passes that found nothing
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.stats = PollerStats()
        self.errors: list[str] = []

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> StreamPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until a pass that started after this call, and the one before it, found nothing new."""
        with self._passes:
            target = self._completed_passes + 2
            return self._passes.wait_for(
                lambda: self._completed_passes >= target and self._empty_passes >= 2, timeout)

    # ---- polling ---------------------------------------------------------------------------
    def _shards(self) -> list[str]:
        description = self.streams.describe_stream(StreamArn=self.config.stream_arn)["StreamDescription"]
        return [shard["ShardId"] for shard in description["Shards"]]

    def _iterator(self, shard: str) -> str | None:
        if shard not in self._iterators:
            self._iterators[shard] = self.streams.get_shard_iterator(
                StreamArn=self.config.stream_arn, ShardId=shard,
                ShardIteratorType=self.config.starting_position)["ShardIterator"]
        return self._iterators[shard]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                found = self.poll_once()
            except Exception as error:  # noqa: BLE001 - keep polling; surfaced through .errors
                self.errors.append(f"{type(error).__name__}: {error}")
                found = 0
            with self._passes:
                self._completed_passes += 1
                self._empty_passes = self._empty_passes + 1 if found == 0 else 0
                self._passes.notify_all()
            if found == 0:
                self._stop.wait(self.poll_interval)

    def poll_once(self) -> int:
        """One pass over every shard; returns how many records were read."""
        total = 0
        for shard in self._shards():
            iterator = self._iterator(shard)
            if iterator is None:
                continue
            page = self.streams.get_records(ShardIterator=iterator, Limit=self.config.batch_size)
            self._iterators[shard] = page.get("NextShardIterator")
            records = [self._lambda_record(r) for r in page.get("Records", [])]
            total += len(records)
            matching = [r for r in records if self._matches(r)]
            self.stats.records_filtered_out += len(records) - len(matching)
            if matching:
                self._deliver(shard, matching, attempt=0)
        return total

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        record = _json_safe(record)
        record.setdefault("eventSourceARN", self.config.stream_arn)
        record.setdefault("awsRegion", self.region)
        return record

    def _matches(self, record: dict[str, Any]) -> bool:
        return not self._patterns or any(p.matches_event(record) for p in self._patterns)  # type: ignore[arg-type]

    # ---- Lambda's retry semantics ----------------------------------------------------------
    def _invoke(self, batch: list[dict[str, Any]]) -> int | None:
        """Index of the first record to retry, or None when the whole batch succeeded."""
        self.stats.invocations += 1
        try:
            result = self.function.invoke({"Records": batch})
        except FunctionError:
            return 0
        failures = (result or {}).get("batchItemFailures") if self.config.report_item_failures else None
        if not failures:
            return None
        failed = {f.get("itemIdentifier") for f in failures}
        positions = [i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed]
        # An identifier that matches no record fails the whole batch, as Lambda does.
        return min(positions) if len(positions) == len(failed) else 0

    def _deliver(self, shard: str, batch: list[dict[str, Any]], attempt: int) -> None:
        retry_from = self._invoke(batch)
        if retry_from is None:
            self.stats.records_delivered += len(batch)
            return
        self.stats.records_delivered += retry_from
        remaining = batch[retry_from:]
        limit = self.config.maximum_retry_attempts
        if limit >= 0 and attempt >= limit:
            self._send_on_failure(shard, remaining, attempt + 1)
            return
        if self.config.bisect_on_error and len(remaining) > 1:
            middle = len(remaining) // 2
            self._deliver(shard, remaining[:middle], attempt + 1)
            self._deliver(shard, remaining[middle:], attempt + 1)
        else:
            self._deliver(shard, remaining, attempt + 1)

    def _send_on_failure(self, shard: str, batch: list[dict[str, Any]], invoke_count: int) -> None:
        """Lambda's on-failure record: where the records are, not the records."""
        self.stats.batches_to_dlq += 1
        destination = self.config.on_failure_destination
        if not destination:
            return
        arrivals = [r["dynamodb"].get("ApproximateCreationDateTime") for r in batch]
        record = {
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": self.config.function_arn,
                               "condition": "RetryAttemptsExhausted", "approximateInvokeCount": invoke_count},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(arrivals[0]),
                "approximateArrivalOfLastRecord": _iso(arrivals[-1]),
                "batchSize": len(batch),
                "streamArn": self.config.stream_arn,
            },
        }
        # The queue's URL from its ARN, as Lambda sends it: the execution role may SendMessage only.
        account, queue_name = destination.rsplit(":", 2)[-2:]
        queue_url = f"{self.sqs.meta.endpoint_url.rstrip('/')}/{account}/{queue_name}"
        self.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))


def _iso(epoch: float | None) -> str:
    moment = datetime.fromtimestamp(epoch, UTC) if epoch else datetime.now(UTC)
    return moment.isoformat()
