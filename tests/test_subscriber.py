"""The emulator's SNS topic subscriber: signed envelopes or raw delivery read the same way."""

from __future__ import annotations

import json

import pytest

from emulator import session
from emulator.subscriber import TopicSubscriber


@pytest.mark.parametrize("raw", [False, True])
def test_a_notification_reads_the_same_with_or_without_raw_delivery(moto_endpoint, raw):
    aws = session.clients(moto_endpoint, names=("sns", "sqs"))
    topic = aws["sns"].create_topic(Name="prices")["TopicArn"]
    with TopicSubscriber(aws, topic, f"reader-{raw}", raw=raw) as inbox:
        aws["sns"].publish(TopicArn=topic, Message=json.dumps({"symbol": "BTC-USD", "price": "37000.5"}),
                           Subject="price", MessageAttributes={"symbol": {"DataType": "String",
                                                                         "StringValue": "BTC-USD"}})
        assert inbox.wait_for(lambda received: len(received) == 1, timeout=20)
        [notification] = inbox.received()
    assert notification.json() == {"symbol": "BTC-USD", "price": "37000.5"}
    assert notification.attributes["symbol"]["Value"] == "BTC-USD"
    assert notification.subject == (None if raw else "price")  # raw delivery carries no subject
    assert inbox.errors == []
