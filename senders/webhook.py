"""POST a signed webhook the way an integrator does (see docs/webhook-contract.md)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from functions.webhook_processor.signature import signature_header


def signed_post(url: str, body: bytes, source: str, secret: str, query: str = "",
                timestamp: int | None = None) -> tuple[int, dict[str, Any]]:
    """Sign `body` with `secret` for `source` and POST it; (status, decoded JSON answer)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    request = urllib.request.Request(url + (f"?{query}" if query else ""), data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Source": source,
        "X-Signature": signature_header([secret], stamp, body)})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
