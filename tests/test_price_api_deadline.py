"""A price API request ends by its deadline (the Lambda's remaining time, less a reserve): a slow
or stuck DynamoDB makes it answer 503 with Retry-After before the function times out (the
function URL's bare 502), however many reads the request makes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials

from functions.price_api import service as api
from functions.price_api.dynamodb import DEADLINE_RESERVE_SECONDS, DeadlineExceeded, DynamoReads
from tests.test_price_api import SETTINGS, event

ROOT = Path(__file__).resolve().parents[1]
CREDENTIALS = Credentials("AKIDEXAMPLE", "secret")
DEADLINE_SECONDS = 1.5  # each request here gives up at about 1.0 s (the deadline less the reserve)
SYMBOLS = ",".join(f"S{n}-USD" for n in range(100))


class _Slow(BaseHTTPRequestHandler):
    """Answers every Query with an empty page and every GetItem without an item, `delay` seconds late."""

    protocol_version = "HTTP/1.1"
    delay = 0.0
    received = 0
    lock = threading.Lock()
    released = threading.Event()

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        with type(self).lock:
            type(self).received += 1
        type(self).released.wait(type(self).delay)  # set at teardown: a stalled answer ends at once
        answer = {"Items": [], "Count": 0, "ScannedCount": 0} if self.headers["X-Amz-Target"].endswith("Query") else {}
        data = json.dumps(answer).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up on this answer

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_dynamodb():
    """A loopback DynamoDB that answers `_Slow.delay` seconds late (set by the test)."""
    _Slow.delay, _Slow.received, _Slow.released = 0.0, 0, threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Slow.released.set()
    server.shutdown()
    server.server_close()


def _timed(reads: Any, path: str, query: dict[str, str]) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    response = api.process(event(path, query), SETTINGS, reads, time.time())
    return response, time.monotonic() - started


def test_a_stuck_read_gives_up_at_the_deadline_with_its_read_timeout_cut(slow_dynamodb):
    """Unbounded, the first attempt alone waits its 3 s read timeout; bound, it ends at the deadline."""
    _Slow.delay = 30
    reads = DynamoReads(slow_dynamodb, "us-east-1", CREDENTIALS)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        reads.until(started + DEADLINE_SECONDS).get_item(TableName="t", Key={"a": {"S": "b"}})
    elapsed = time.monotonic() - started
    assert DEADLINE_SECONDS - DEADLINE_RESERVE_SECONDS - 0.1 < elapsed < DEADLINE_SECONDS
    assert _Slow.received == 1  # no attempt started after the cut one


@pytest.mark.parametrize(("path", "query"), [
    ("/v1/candles/BTC-USD", {"interval": "1m"}),
    ("/v1/latest", {"symbols": "BTC-USD,ETH-USD"}),
])
def test_a_request_to_a_stuck_dynamodb_is_a_503_before_its_deadline(slow_dynamodb, path, query):
    _Slow.delay = 30
    reads = DynamoReads(slow_dynamodb, "us-east-1", CREDENTIALS)
    response, elapsed = _timed(reads.until(time.monotonic() + DEADLINE_SECONDS), path, query)
    assert response["statusCode"] == 503 and response["headers"]["Retry-After"] == "1"
    assert json.loads(response["body"]) == {"error": "service: busy, retry after a second"}
    assert elapsed < DEADLINE_SECONDS


def test_many_reads_that_each_answer_in_time_still_end_by_the_deadline(slow_dynamodb):
    """latest of 100 is 13 waves of 8 Queries; at 0.2 s each that is 2.6 s, past the deadline,
    though no single read is slow enough to time out."""
    _Slow.delay = 0.2
    reads = DynamoReads(slow_dynamodb, "us-east-1", CREDENTIALS)
    response, elapsed = _timed(reads.until(time.monotonic() + DEADLINE_SECONDS), "/v1/latest", {"symbols": SYMBOLS})
    assert response["statusCode"] == 503 and response["headers"]["Retry-After"] == "1"
    assert elapsed < DEADLINE_SECONDS
    assert _Slow.received < 100


def test_a_request_with_time_to_spare_is_answered(slow_dynamodb):
    _Slow.delay = 0.02
    reads = DynamoReads(slow_dynamodb, "us-east-1", CREDENTIALS)
    response, _ = _timed(reads.until(time.monotonic() + 30), "/v1/latest", {"symbols": SYMBOLS})
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["latest"] == dict.fromkeys(SYMBOLS.split(","))
    assert _Slow.received == 100


HANDLER = """
import json, sys, time
from botocore.credentials import Credentials
import functions.price_api.handler as h
from emulator.bootstrap import Context
from functions.price_api.dynamodb import DynamoReads
from functions.price_api.settings import Settings

h._runtime = lambda: (Settings(table_name="ticks", candle_table_name="candles"),
                      DynamoReads(sys.argv[1], "us-east-1", Credentials("AKIDEXAMPLE", "secret")))
event = {"version": "2.0", "rawPath": "/v1/candles/BTC-USD", "queryStringParameters": {"interval": "1m"},
         "headers": {}, "requestContext": {"http": {"method": "GET"}, "requestId": "req-1"}}
started = time.monotonic()
response = h.handler(event, Context("req-1", time.time() + float(sys.argv[2])))
print("RESULT", json.dumps({"status": response["statusCode"], "seconds": time.monotonic() - started}))
"""


def test_the_handler_bounds_a_request_by_the_functions_remaining_time(slow_dynamodb):
    """In its own process: the handler's Powertools logger reconfigures the service's logger."""
    _Slow.delay = 30
    result = subprocess.run([sys.executable, "-c", HANDLER, slow_dynamodb, str(DEADLINE_SECONDS)], cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=20,
                            env={"PYTHONPATH": str(ROOT), "AWS_DEFAULT_REGION": "us-east-1"})
    [line] = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    answer = json.loads(line.removeprefix("RESULT "))
    assert answer["status"] == 503 and answer["seconds"] < DEADLINE_SECONDS
