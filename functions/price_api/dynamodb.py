"""The price API's two DynamoDB calls, Query and GetItem, sent without botocore's per-call pipeline.

Why hand-written. A `latest` request is 20 Queries, and botocore spends ~2.5 ms of CPU on
each call on this project's machine (measured: 51 ms of CPU for latest of 20 symbols;
parameter validation, serialization, endpoint rules, event hooks, user-agent assembly,
urllib3 via http.client, then the response's walk through the model). At the API's
256 MB of Lambda memory a function gets a fraction of a vCPU, so that is several times
longer there, on every request. This sends the same JSON-protocol request and reads the
answer with `json.loads` (DynamoDB's wire items already are the low-level client's
answer), and keeps what must not be hand-written with botocore: the SigV4 signer
(`SigV4Auth`), the credential chain (a refreshable credential refreshes itself in
`get_frozen_credentials`), the endpoint (resolved once by a botocore client: the emulator's
`AWS_ENDPOINT_URL` included) and `ClientError`, so the service's error handling is
unchanged. urllib3 (botocore's own transport) keeps the connections alive.

Retries follow botocore's standard mode for the errors a read can meet: throttling, 5xx,
broken connections and an answer whose `x-amz-crc32` does not match: `ATTEMPTS` tries
with full-jitter exponential backoff (base 50 ms, DynamoDB's SDK default, instead of
botocore's 1 s, so a retried read still answers within the function's 15 s timeout).
A request's several reads share its deadline (`DynamoReads.until`, from the Lambda's remaining
time): no attempt or backoff is started that cannot end before it, each attempt's timeouts
are cut to the time left, and a read that runs out of time raises `DeadlineExceeded` (the
service's 503, retry later) instead of the function running into its timeout (a bare 502).
Binary attributes are base64 on the wire both ways, as botocore sends and answers them
(a LastEvaluatedKey passed back holds bytes). tests/test_price_api_dynamodb.py compares
every answer with botocore's.
"""

from __future__ import annotations

import base64
import json
import random
import time
import zlib
from typing import Any

from botocore.exceptions import ChecksumError, ClientError, NoCredentialsError

ATTEMPTS = 3
BASE_DELAY_SECONDS = 0.05
CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS = 1.0, 3.0
# DynamoDB's "too much, slow down" codes: retried here, and the service's 503 when retries run out.
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                              "RequestLimitExceeded", "LimitExceededException"})
RETRIED_CODES = THROTTLING_CODES | {"InternalServerError", "ServiceUnavailable"}
# Kept back from a request's deadline for answering after the last read gives up: the 503's JSON,
# the request's log line, Powertools' metrics flush and the return through the runtime API are
# a few ms of CPU, but at 256 MB the function has about a seventh of a vCPU (tens of ms, more
# with a GC pause), and the remaining time is measured when the handler starts. 500 ms is an
# order of magnitude above that and costs 3% of the 15 s timeout.
DEADLINE_RESERVE_SECONDS = 0.5
# No attempt is started with less time left than this (a healthy in-Region read answers in a few
# ms, a keep-alive connection needs no connect), and an attempt that fails with less left is out
# of time: there is no room for another.
MIN_ATTEMPT_SECONDS = 0.05
_TARGET = "DynamoDB_20120810."
_BINARY_KEY = b'"B'  # a B or BS member (or an attribute named so): decoded by _decode_binaries


def _decode_binaries(value: Any) -> Any:
    """An attribute value with its binaries as bytes (B, BS; nested in M and L), as botocore answers them."""
    if isinstance(value, dict):
        decoded: dict[str, Any] = {}
        for key, member in value.items():
            if key == "B" and isinstance(member, str):
                decoded[key] = base64.b64decode(member)
            elif key == "BS" and isinstance(member, list):
                decoded[key] = [base64.b64decode(item) for item in member]
            else:
                decoded[key] = _decode_binaries(member)
        return decoded
    if isinstance(value, list):
        return [_decode_binaries(member) for member in value]
    return value


def _encode_binary(value: Any) -> str:
    """json.dumps' fallback: a B or BS member's bytes as base64 text, as botocore sends them."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not an attribute value")


def _crc32_mismatch(headers: Any, data: bytes) -> tuple[str, str] | None:
    """(expected, actual) when DynamoDB's x-amz-crc32 does not match the body (botocore retries it)."""
    expected = headers.get("x-amz-crc32")
    if expected is None or int(expected) == zlib.crc32(data) & 0xFFFFFFFF:
        return None
    return expected, str(zlib.crc32(data) & 0xFFFFFFFF)


class DeadlineExceeded(Exception):
    """A read could not be finished before its request's deadline (less DEADLINE_RESERVE_SECONDS)."""

    def __init__(self, operation: str) -> None:
        super().__init__(f"{operation}: out of time before the request's deadline")
        self.operation = operation


class ReadsUntil:
    """`query` and `get_item` of a DynamoReads that all end by one `time.monotonic()` deadline.

    One per request and immutable, so the threads of a request (latest) share it safely.
    """

    __slots__ = ("_reads", "deadline")

    def __init__(self, reads: DynamoReads, deadline: float) -> None:
        self._reads, self.deadline = reads, deadline

    def query(self, **kwargs: Any) -> dict[str, Any]:
        return self._reads._call("Query", kwargs, self.deadline)

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._reads._call("GetItem", kwargs, self.deadline)


class DynamoReads:
    """`query(**kwargs)` and `get_item(**kwargs)` with the low-level client's arguments and
    answers (Items, Count, ScannedCount, LastEvaluatedKey, ConsumedCapacity; Item)."""

    def __init__(self, endpoint_url: str, region: str, credentials: Any, max_connections: int = 20,
                 rng: random.Random | None = None) -> None:
        self.endpoint_url = endpoint_url.rstrip("/") + "/"
        self.region = region
        # Imported here, not at module level: the handler's import stays as light as before
        # (a botocore client loaded the same modules on the first request too).
        import urllib3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        self._signer, self._request, self._http_error = SigV4Auth, AWSRequest, urllib3.exceptions.HTTPError
        self._credentials, self._timeout_type = credentials, urllib3.Timeout
        self._timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)
        self._pool = urllib3.PoolManager(maxsize=max_connections, timeout=self._timeout, retries=False)
        self._rng = rng or random.Random()

    @classmethod
    def for_session(cls, session: Any, endpoint_url: str | None = None, max_connections: int = 20) -> DynamoReads:
        """Reads with a boto3 session's credentials and region, to the endpoint a DynamoDB
        client of that session resolves (AWS_ENDPOINT_URL included) unless one is given."""
        resolved = endpoint_url or session.client("dynamodb").meta.endpoint_url
        return cls(resolved, session.region_name, session.get_credentials(), max_connections)

    def query(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("Query", kwargs)

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("GetItem", kwargs)

    def until(self, deadline: float) -> ReadsUntil:
        """These reads for one request that must answer by `deadline` (a `time.monotonic()` instant)."""
        return ReadsUntil(self, deadline)

    def _call(self, operation: str, arguments: dict[str, Any], deadline: float | None = None) -> dict[str, Any]:
        body = json.dumps(arguments, default=_encode_binary).encode()
        # The time an attempt or backoff may still use; infinite without a deadline.
        cutoff = float("inf") if deadline is None else deadline - DEADLINE_RESERVE_SECONDS
        for attempt in range(ATTEMPTS):
            last = attempt == ATTEMPTS - 1
            left = cutoff - time.monotonic()
            if left < MIN_ATTEMPT_SECONDS:
                raise DeadlineExceeded(operation)
            # Connect and read together end by the cutoff (urllib3's total caps both).
            timeout = self._timeout if deadline is None else self._timeout_type(
                connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS, total=left)
            try:
                status, headers, data = self._send(operation, body, timeout)
            except self._http_error as failure:
                if cutoff - time.monotonic() < MIN_ATTEMPT_SECONDS:  # cut short by the deadline, or no time left
                    raise DeadlineExceeded(operation) from failure
                if last:
                    raise
            else:
                mismatch = _crc32_mismatch(headers, data)
                if mismatch is not None:
                    if last:
                        raise ChecksumError(checksum_type="crc32", expected_checksum=mismatch[0],
                                            actual_checksum=mismatch[1])
                elif status == 200:
                    answer: dict[str, Any] = json.loads(data)
                    if _BINARY_KEY in data:
                        answer = _decode_binaries(answer)
                    answer["ResponseMetadata"] = {"HTTPStatusCode": 200, "RetryAttempts": attempt}
                    return answer
                else:
                    error = self._error(operation, status, data, attempt)
                    if last or not (status >= 500 or error.response["Error"]["Code"] in RETRIED_CODES):
                        raise error
            delay = self._rng.uniform(0, BASE_DELAY_SECONDS * 2 ** attempt)
            if cutoff - time.monotonic() - delay < MIN_ATTEMPT_SECONDS:
                raise DeadlineExceeded(operation)  # no room for the backoff and another attempt
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(self, operation: str, body: bytes, timeout: Any) -> tuple[int, Any, bytes]:
        if self._credentials is None:
            raise NoCredentialsError()  # as botocore's client raises it, before sending anything
        request = self._request("POST", self.endpoint_url, data=body, headers={
            "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": _TARGET + operation})
        self._signer(self._credentials.get_frozen_credentials(), "dynamodb", self.region).add_auth(request)
        response = self._pool.request("POST", self.endpoint_url, body=body, headers=dict(request.headers.items()),
                                      timeout=timeout)
        return response.status, response.headers, response.data

    @staticmethod
    def _error(operation: str, status: int, data: bytes, attempt: int) -> ClientError:
        try:
            document = json.loads(data)
        except ValueError:
            document = {}
        if not isinstance(document, dict):
            document = {}
        code = str(document.get("__type", "")).rsplit("#", 1)[-1] or str(status)
        message = str(document.get("message") or document.get("Message") or "")
        answer: Any = {"Error": {"Code": code, "Message": message},
                       "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": attempt}}
        return ClientError(answer, operation)
