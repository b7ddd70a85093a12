"""The price API's items taken straight from DynamoDB's JSON answer exactly as botocore's parse does."""

from __future__ import annotations

import boto3
import botocore.parsers
import pytest
from botocore.exceptions import ClientError

from functions.shared.price_table.raw_items import lift_items

TABLE = "raw-items"
EVERY_TYPE = {
    "symbol": {"S": "BTC-USD"}, "timestamp": {"N": "1700000000000000"}, "price": {"N": "43123.456789012345678901"},
    "flag": {"BOOL": True}, "nothing": {"NULL": True}, "tags": {"SS": ["a", "b"]}, "sizes": {"NS": ["1", "2.5"]},
    "nested": {"M": {"list": {"L": [{"S": "x"}, {"N": "-1E-7"}, {"M": {}}]}, "text": {"S": 'a "B": quote'}}},
}


@pytest.fixture
def clients(moto_endpoint):
    plain = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    lifted = lift_items(boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint))
    plain.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "symbol", "KeyType": "HASH"},
                                  {"AttributeName": "timestamp", "KeyType": "RANGE"}],
                       AttributeDefinitions=[{"AttributeName": "symbol", "AttributeType": "S"},
                                             {"AttributeName": "timestamp", "AttributeType": "N"}])
    yield plain, lifted
    plain.delete_table(TableName=TABLE)


def _answers(client, **query):
    """Every Query page and a GetItem, without the request ids that differ per call."""
    pages, arguments = [], {"TableName": TABLE, "KeyConditionExpression": "symbol = :s", "Limit": 2,
                            "ExpressionAttributeValues": {":s": {"S": "BTC-USD"}}, **query}
    while True:
        page = client.query(**arguments)
        page.pop("ResponseMetadata")
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            break
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    got = client.get_item(TableName=TABLE, Key={"symbol": {"S": "BTC-USD"}, "timestamp": {"N": "1700000000000000"}})
    got.pop("ResponseMetadata")
    missing = client.get_item(TableName=TABLE, Key={"symbol": {"S": "NONE"}, "timestamp": {"N": "1"}})
    missing.pop("ResponseMetadata")
    return pages, got, missing


def test_every_attribute_type_reads_as_botocore_parses_it(clients):
    plain, lifted = clients
    for n in range(5):
        plain.put_item(TableName=TABLE, Item={**EVERY_TYPE, "timestamp": {"N": str(1700000000000000 + n)}})
    expected = _answers(plain, ReturnConsumedCapacity="TOTAL")
    assert _answers(lifted, ReturnConsumedCapacity="TOTAL") == expected
    assert len(expected[0]) == 3 and expected[0][0]["Count"] == 2 and "ConsumedCapacity" in expected[0][0]


def test_a_binary_attribute_is_left_to_botocore_which_decodes_it(clients):
    plain, lifted = clients
    plain.put_item(TableName=TABLE, Item={**EVERY_TYPE, "blob": {"B": b"\x00\xff"}, "blobs": {"BS": [b"\x01"]}})
    answers = _answers(lifted)
    assert answers == _answers(plain)
    assert answers[1]["Item"]["blob"] == {"B": b"\x00\xff"}


def test_errors_are_still_client_errors(clients):
    _, lifted = clients
    with pytest.raises(ClientError) as raised:
        lifted.query(TableName="no-such-table", KeyConditionExpression="symbol = :s",
                     ExpressionAttributeValues={":s": {"S": "X"}})
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_lifted_items_skip_botocores_walk_of_every_attribute_value(clients, monkeypatch):
    """The point of it: no AttributeValue structure goes through botocore's parser."""
    plain, lifted = clients
    plain.put_item(TableName=TABLE, Item=EVERY_TYPE)
    walked = []
    original = botocore.parsers.BaseJSONParser._handle_structure

    def counting(self, shape, value):
        walked.append(shape.name)
        return original(self, shape, value)

    monkeypatch.setattr(botocore.parsers.BaseJSONParser, "_handle_structure", counting)
    _answers(lifted)
    assert "AttributeValue" not in walked
    _answers(plain)
    assert "AttributeValue" in walked
