"""A subscriber of an SNS topic: an SQS queue, drained in the background as a real consumer would.

Draining continuously is what keeps the emulator fast, not only realistic: moto computes a
queue's attributes over every message it holds on each send and receive, so a queue left
to fill makes every SNS publish to it slower (quadratic over a 20,000-update load).
Closing unsubscribes and deletes the queue, so later publishes do not pay for it.

`raw=True` subscribes with SNS raw message delivery (the message as the SQS body, its
attributes as SQS message attributes, no subject), as a high-volume consumer would: moto
then skips building a signed envelope, which costs it a fresh X.509 certificate and an RSA
signature per notification (about 16,000 of them in the 20,000-update load test).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Notification:
    body: str
    subject: str | None
    attributes: dict[str, Any]
    received_at: float  # time.monotonic() when the subscriber read it

    def json(self) -> Any:
        return json.loads(self.body)


class TopicSubscriber:
    """Use as `with TopicSubscriber(aws, topic_arn, "name") as inbox:`."""

    def __init__(self, aws: dict[str, Any], topic_arn: str, name: str, idle_wait: float = 0.1,
                 raw: bool = False) -> None:
        self.sqs, self.sns, self.idle_wait, self.raw = aws["sqs"], aws["sns"], idle_wait, raw
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {"Attributes": {"RawMessageDelivery": "true"}} if raw else {}
        self.subscription_arn = self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn,
                                                   ReturnSubscriptionArn=True, **attributes)["SubscriptionArn"]
        self._received: list[Notification] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain_forever, daemon=True)
        self.errors: list[str] = []

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> TopicSubscriber:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
        self.sqs.delete_queue(QueueUrl=self.url)

    def __enter__(self) -> TopicSubscriber:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ---- reading ---------------------------------------------------------------------------
    def received(self) -> list[Notification]:
        """Everything read so far, oldest first."""
        with self._lock:
            return list(self._received)

    def take(self) -> list[Notification]:
        """Everything read so far, forgetting it (for a caller that counts as it goes)."""
        with self._lock:
            taken, self._received = self._received, []
            return taken

    def wait_for(self, condition: Callable[[list[Notification]], bool], timeout: float = 90.0) -> bool:
        """Poll the received notifications until the condition holds or the timeout passes."""
        deadline = time.monotonic() + timeout
        while not condition(self.received()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    # ---- the consumer ----------------------------------------------------------------------
    def _drain_forever(self) -> None:
        while not self._stop.is_set():
            try:
                count = self.drain_once()
            except Exception as error:  # noqa: BLE001 - keep consuming; surfaced through .errors
                self.errors.append(f"{type(error).__name__}: {error}")
                count = 0
            if count == 0:
                self._stop.wait(self.idle_wait)

    def drain_once(self) -> int:
        """Read and delete one batch (up to 10); returns how many were read."""
        messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                            MessageAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return 0
        now = time.monotonic()
        parsed = []
        for message in messages:
            if self.raw:  # attributes in the envelope's shape (the pipeline's are all String; moto
                # cannot deliver a Binary one raw: it hashes the value as text)
                attributes = {name: {"Type": value["DataType"], "Value": value.get("StringValue")}
                              for name, value in message.get("MessageAttributes", {}).items()}
                parsed.append(Notification(message["Body"], None, attributes, now))
                continue
            envelope = json.loads(message["Body"])
            parsed.append(Notification(envelope["Message"], envelope.get("Subject"),
                                       envelope.get("MessageAttributes", {}), now))
        with self._lock:
            self._received += parsed
        self.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return len(messages)
