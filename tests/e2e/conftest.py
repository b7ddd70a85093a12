"""One deployed local stack for the whole end-to-end session (terraform apply takes about a minute)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from tooling.local.stack import LocalStack


def wait_until(condition: Callable[[], object], timeout: float = 90.0, interval: float = 0.5):
    """Poll until the condition holds: works for the embedded target and for LocalStack."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Inbox:
    """An SQS queue subscribed to a topic, as a subscriber of the pipeline would have."""

    def __init__(self, aws: dict, topic_arn: str, name: str) -> None:
        self.sqs = aws["sqs"]
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        aws["sns"].subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
        self.received: list[dict] = []

    def drain(self) -> list[dict]:
        import json

        while True:
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return self.received
            for message in messages:
                envelope = json.loads(message["Body"])
                self.received.append({"body": envelope["Message"], "subject": envelope.get("Subject"),
                                      "attributes": envelope.get("MessageAttributes", {})})
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(scope="session")
def stack():
    target = os.environ.get("E2E_TARGET", "embedded")
    with LocalStack(target=target, stream_terraform=True) as running:
        yield running


@pytest.fixture(scope="session")
def inboxes(stack):
    outputs = stack.info.outputs
    return {"success": Inbox(stack.aws, outputs["success_topic_arn"], "e2e-success-subscriber"),
            "alerts": Inbox(stack.aws, outputs["alerts_topic_arn"], "e2e-alerts-subscriber")}
