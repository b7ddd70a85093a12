"""The price API's Query and GetItem (functions.price_api.dynamodb) answer exactly as botocore's
client does, sign as SigV4 requires, and retry what botocore's standard mode retries."""

from __future__ import annotations

import json
import random
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ChecksumError, ClientError, NoCredentialsError

from emulator.sigv4 import verify_sigv4
from functions.price_api import dynamodb as reads_module
from functions.price_api.dynamodb import (
    ATTEMPTS,
    BASE_DELAY_SECONDS,
    DEADLINE_RESERVE_SECONDS,
    MIN_ATTEMPT_SECONDS,
    DeadlineExceeded,
    DynamoReads,
)
from functions.shared.price_table.keys import table_definition

TABLE = "api-reads"
REGION = "us-east-1"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
EVERY_TYPE = {
    "symbol": {"S": "BTC-USD"}, "timestamp": {"N": "1700000000000000"}, "price": {"N": "43123.456789012345678901"},
    "flag": {"BOOL": True}, "nothing": {"NULL": True}, "tags": {"SS": ["a", "b"]}, "sizes": {"NS": ["1", "2.5"]},
    "nested": {"M": {"list": {"L": [{"S": "x"}, {"N": "-1E-7"}, {"M": {}}]}, "text": {"S": 'a "B": quote'}}},
}


@pytest.fixture
def clients(moto_endpoint):
    plain = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint)
    plain.create_table(**table_definition(TABLE))
    yield plain, DynamoReads(moto_endpoint, REGION, CREDENTIALS)
    plain.delete_table(TableName=TABLE)


def _answers(client, **query):
    """Every Query page and two GetItems, without the response metadata (request ids differ)."""
    pages, arguments = [], {"TableName": TABLE, "KeyConditionExpression": "symbol = :s", "Limit": 2,
                            "ExpressionAttributeValues": {":s": {"S": "BTC-USD"}}, **query}
    while True:
        page = client.query(**arguments)
        page.pop("ResponseMetadata")
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            break
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    found = client.get_item(TableName=TABLE, Key={"symbol": {"S": "BTC-USD"}, "timestamp": {"N": "1700000000000000"}},
                            ConsistentRead=True)
    missing = client.get_item(TableName=TABLE, Key={"symbol": {"S": "NONE"}, "timestamp": {"N": "1"}})
    for answer in (found, missing):
        answer.pop("ResponseMetadata")
    return pages, found, missing


def test_every_attribute_type_reads_as_botocore_parses_it(clients):
    plain, reads = clients
    for n in range(5):
        plain.put_item(TableName=TABLE, Item={**EVERY_TYPE, "timestamp": {"N": str(1700000000000000 + n)}})
    expected = _answers(plain, ReturnConsumedCapacity="TOTAL", ScanIndexForward=False)
    assert _answers(reads, ReturnConsumedCapacity="TOTAL", ScanIndexForward=False) == expected
    assert len(expected[0]) == 3 and expected[0][0]["Count"] == 2 and "ConsumedCapacity" in expected[0][0]


def test_binaries_are_bytes_as_botocore_answers_them(clients):
    plain, reads = clients
    plain.put_item(TableName=TABLE, Item={**EVERY_TYPE, "blob": {"B": b"\x00\xff"}, "blobs": {"BS": [b"\x01"]},
                                          "deep": {"M": {"inner": {"L": [{"B": b"\x02"}]}}}})
    answers = _answers(reads)
    assert answers == _answers(plain)
    assert answers[1]["Item"]["blob"] == {"B": b"\x00\xff"} and answers[1]["Item"]["blobs"] == {"BS": [b"\x01"]}


def test_a_binary_key_is_sent_back_as_botocore_sends_it(moto_endpoint):
    """Paging a partition with Binary sort keys: each LastEvaluatedKey (bytes) is passed back."""
    plain = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint)
    plain.create_table(TableName="api-binary", BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "h", "KeyType": "HASH"},
                                  {"AttributeName": "r", "KeyType": "RANGE"}],
                       AttributeDefinitions=[{"AttributeName": "h", "AttributeType": "S"},
                                             {"AttributeName": "r", "AttributeType": "B"}])
    try:
        for key in (b"\x00", b"\x01\xff", b"\x02"):
            plain.put_item(TableName="api-binary", Item={"h": {"S": "x"}, "r": {"B": key}})

        def keys(client) -> list[bytes]:
            found, arguments = [], {"TableName": "api-binary", "KeyConditionExpression": "h = :h", "Limit": 1,
                                    "ExpressionAttributeValues": {":h": {"S": "x"}}}
            while True:
                page = client.query(**arguments)
                found += [item["r"]["B"] for item in page["Items"]]
                if "LastEvaluatedKey" not in page:
                    return found
                arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

        assert keys(DynamoReads(moto_endpoint, REGION, CREDENTIALS)) == keys(plain) == [b"\x00", b"\x01\xff", b"\x02"]
    finally:
        plain.delete_table(TableName="api-binary")


def test_no_credentials_is_botocores_error_and_sends_nothing(fake_dynamodb):
    endpoint, recorder = fake_dynamodb
    with pytest.raises(NoCredentialsError):
        DynamoReads(endpoint, REGION, None).get_item(TableName=TABLE, Key={"a": {"S": "b"}})
    assert recorder.received == []


def test_an_answer_failing_its_crc32_is_retried_then_raised(fake_dynamodb):
    endpoint, recorder = fake_dynamodb
    reads = DynamoReads(endpoint, REGION, CREDENTIALS, rng=random.Random(1))
    good = {"Item": {"a": {"S": "b"}}}
    right = str(zlib.crc32(json.dumps(good).encode()))
    recorder.answers = [(200, good, {"x-amz-crc32": "1"}), (200, good, {"x-amz-crc32": right})]
    answer = reads.get_item(TableName=TABLE, Key={"a": {"S": "b"}})
    assert answer["Item"] == good["Item"] and answer["ResponseMetadata"]["RetryAttempts"] == 1
    recorder.answers = [(200, good, {"x-amz-crc32": "1"})] * ATTEMPTS
    with pytest.raises(ChecksumError):
        reads.get_item(TableName=TABLE, Key={"a": {"S": "b"}})
    assert len(recorder.received) == 2 + ATTEMPTS


def test_errors_are_client_errors_with_the_services_code(clients):
    _, reads = clients
    with pytest.raises(ClientError) as raised:
        reads.query(TableName="no-such-table", KeyConditionExpression="symbol = :s",
                    ExpressionAttributeValues={":s": {"S": "X"}})
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert raised.value.operation_name == "Query"


class _Recorder(BaseHTTPRequestHandler):
    """Answers the queued (status, body[, extra headers]) in turn and keeps what it received."""

    protocol_version = "HTTP/1.1"
    answers: list[tuple] = []
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers.items()), body))
        status, answer, *extra = type(self).answers.pop(0)
        data = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in (extra[0] if extra else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_dynamodb(monkeypatch):
    monkeypatch.setattr(reads_module.time, "sleep", lambda seconds: None)
    _Recorder.answers, _Recorder.received = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder
    server.shutdown()


THROTTLED = (400, {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                   "message": "slow down"})


def test_requests_carry_a_valid_sigv4_signature_for_dynamodb(fake_dynamodb):
    endpoint, recorder = fake_dynamodb
    recorder.answers = [(200, {"Items": [], "Count": 0, "ScannedCount": 0})]
    DynamoReads(endpoint, REGION, CREDENTIALS).query(TableName=TABLE, KeyConditionExpression="symbol = :s",
                                                     ExpressionAttributeValues={":s": {"S": "X"}})
    [(headers, body)] = recorder.received
    assert headers["X-Amz-Target"] == "DynamoDB_20120810.Query"
    assert json.loads(body)["TableName"] == TABLE
    assert verify_sigv4("POST", endpoint + "/", headers, body, CREDENTIALS, REGION, "dynamodb")
    assert not verify_sigv4("POST", endpoint + "/", headers, body + b" ", CREDENTIALS, REGION, "dynamodb")


def test_throttling_and_5xx_are_retried_then_raised(fake_dynamodb):
    endpoint, recorder = fake_dynamodb
    reads = DynamoReads(endpoint, REGION, CREDENTIALS, rng=random.Random(1))
    recorder.answers = [THROTTLED, (500, {"__type": "InternalServerError"}), (200, {"Item": {"a": {"S": "b"}}})]
    answer = reads.get_item(TableName=TABLE, Key={"a": {"S": "b"}})
    assert answer["Item"] == {"a": {"S": "b"}} and answer["ResponseMetadata"]["RetryAttempts"] == 2
    recorder.answers = [THROTTLED] * ATTEMPTS
    with pytest.raises(ClientError) as raised:
        reads.get_item(TableName=TABLE, Key={"a": {"S": "b"}})
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert len(recorder.received) == 3 + ATTEMPTS


def test_a_validation_error_is_not_retried(fake_dynamodb):
    endpoint, recorder = fake_dynamodb
    recorder.answers = [(400, {"__type": "com.amazon.coral.validate#ValidationException", "message": "bad"})]
    with pytest.raises(ClientError) as raised:
        DynamoReads(endpoint, REGION, CREDENTIALS).query(TableName=TABLE)
    assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": "bad"}
    assert len(recorder.received) == 1


class _Longest(random.Random):
    """Every backoff its longest."""

    def uniform(self, a, b):
        return b


def test_no_backoff_or_attempt_starts_that_cannot_end_before_the_deadline(fake_dynamodb, monkeypatch):
    endpoint, recorder = fake_dynamodb
    slept = []
    monkeypatch.setattr(reads_module.time, "sleep", slept.append)
    reads = DynamoReads(endpoint, REGION, CREDENTIALS, rng=_Longest())
    key = {"TableName": TABLE, "Key": {"a": {"S": "b"}}}
    recorder.answers = [THROTTLED, (200, {"Item": {"a": {"S": "b"}}})]
    answer = reads.until(time.monotonic() + 30).get_item(**key)
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1 and slept == [BASE_DELAY_SECONDS]
    # Time for one attempt, but not for the backoff (50 ms) and another attempt after it.
    recorder.answers = [THROTTLED] * ATTEMPTS
    deadline = time.monotonic() + DEADLINE_RESERVE_SECONDS + MIN_ATTEMPT_SECONDS + BASE_DELAY_SECONDS / 2
    with pytest.raises(DeadlineExceeded):
        reads.until(deadline).get_item(**key)
    assert len(recorder.received) == 3 and slept == [BASE_DELAY_SECONDS]
    # Within the reserve nothing is sent.
    with pytest.raises(DeadlineExceeded):
        reads.until(time.monotonic() + DEADLINE_RESERVE_SECONDS).get_item(**key)
    assert len(recorder.received) == 3
