"""Items read straight from DynamoDB's JSON, without botocore's per-value model walk.

botocore parses a response by walking it through the service model: every attribute value
of every item is a structure whose members it looks up one by one (`_handle_structure`).
A day of 1m candles or a 1,000-tick page holds ~5,000-15,000 attribute values, and that
walk was 60 % of the price API's CPU (measured with cProfile: ~35 ms of a 1,440-candle
answer's ~85 ms on this machine; at the API's small Lambda memory, several times that).

DynamoDB's wire format for an item already *is* the low-level client's answer:
`{"price": {"N": "1.5"}, "symbol": {"S": "BTC-USD"}}`, text for S and N, booleans, nested
M and L. The one member botocore changes is a binary (B, BS: base64 text on the wire,
bytes in the answer). So a `before-parse` handler (botocore's own extension point; its S3
customizations rewrite responses the same way) takes `Items`, `Item` and
`LastEvaluatedKey` out of the JSON body with `json.loads` (C code) and hands them to the
answer as they are; botocore parses what is left (Count, ScannedCount, ConsumedCapacity)
as usual. A body with any binary member is left whole to botocore, so the answer is
always exactly botocore's (tests/test_raw_items.py compares them).
"""

from __future__ import annotations

import json
import re
from typing import Any

LIFTED = ("Items", "Item", "LastEvaluatedKey")
OPERATIONS = ("Query", "GetItem")
# `"B":` or `"BS":` as a JSON key. A string *value* holding those characters is escaped on
# the wire (`\"B\":`), so it does not match; an attribute *named* B or BS does, which only
# sends that body down botocore's own path.
_BINARY_KEY = re.compile(rb'"BS?"\s*:')


def _lift(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    if response_dict.get("status_code") != 200:
        return  # errors are botocore's to parse into a ClientError
    body = response_dict.get("body")
    if not isinstance(body, bytes | bytearray) or _BINARY_KEY.search(body):
        return
    document = json.loads(body)
    if not isinstance(document, dict):
        return
    lifted = {name: document.pop(name) for name in LIFTED if name in document}
    if not lifted:
        return
    customized_response_dict.update(lifted)
    response_dict["body"] = json.dumps(document).encode()


def lift_items(client: Any) -> Any:
    """Register the handler on a DynamoDB client (Query and GetItem answers); returns the client."""
    events = client.meta.events
    for operation in OPERATIONS:
        events.register(f"before-parse.dynamodb.{operation}", _lift, unique_id=f"raw-items-{operation}")
    return client
