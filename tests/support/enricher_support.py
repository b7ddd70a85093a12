"""Helpers: a moto table plus topic→queue subscription, and stream records built from items."""

from __future__ import annotations

import json
from decimal import Decimal

import boto3

from functions.price_enricher import service as enricher
from functions.price_enricher.indicators import Windows
from functions.shared.price_table.keys import sort_key
from functions.shared.price_table.ticks import to_item
from functions.shared.price_update import PriceUpdate
from evidence.bench import RequestCounter as Counter  # noqa: F401 - re-exported for the tests

TABLE = "crypto-prices-enrich"


class Pipeline:
    def __init__(self, endpoint: str, windows: Windows | None = None) -> None:
        self.dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        self.sns = boto3.client("sns", region_name="us-east-1", endpoint_url=endpoint)
        self.sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
        self.dynamodb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "symbol", "KeyType": "HASH"},
                       {"AttributeName": "timestamp", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "symbol", "AttributeType": "S"},
                                  {"AttributeName": "timestamp", "AttributeType": "N"}])
        self.topic = self.sns.create_topic(Name="price-updates-success-test")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn)
        self.settings = enricher.Settings(TABLE, self.topic, windows or Windows())
        self.sequence = 1000

    def put(self, symbol: str, event_ms: int, price: str | Decimal, exchange: str = "binance") -> dict:
        update = PriceUpdate(symbol, event_ms, Decimal(price), exchange, "test", event_ms)
        item = to_item(update, sort_key(event_ms, 0))
        self.dynamodb.put_item(TableName=TABLE, Item=item)
        return item

    def record(self, item: dict, event_name: str = "INSERT") -> dict:
        self.sequence += 1
        body = {"Keys": {"symbol": item["symbol"], "timestamp": item["timestamp"]},
                "SequenceNumber": str(self.sequence), "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        if event_name != "REMOVE":
            body["NewImage"] = item
        return {"eventID": str(self.sequence), "eventName": event_name, "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1", "dynamodb": body,
                "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/stream/x"}

    def enrich(self, records: list[dict]) -> dict:
        return enricher.process({"Records": records}, self.settings, self.dynamodb, self.sns)

    def items(self, symbol: str) -> list[dict]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        result = self.dynamodb.query(TableName=TABLE, KeyConditionExpression="symbol = :s",
                                     ExpressionAttributeValues={":s": {"S": symbol}})["Items"]
        return [{k: deserializer.deserialize(v) for k, v in item.items()} for item in result]

    def notifications(self) -> list[dict]:
        found = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append({"body": json.loads(envelope["Message"]),
                              "attributes": envelope.get("MessageAttributes", {})})
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
