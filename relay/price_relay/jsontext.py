"""JSON text that keeps numbers exactly as the exchange wrote them.

Only used when the relay must change a ticker (to add its receive time): the message is
parsed with `parse_float=Decimal` and written back here. The stdlib encoder cannot emit
a Decimal verbatim (it would go through float and could drop digits the webhook stores
exactly); simplejson can, but a 20-line encoder is smaller than a dependency.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def loads(text: str) -> Any:
    """Parse a frame, floats as Decimal (exact)."""
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any) -> str:
    """Compact JSON; Decimals are written with their own digits (e.g. 0.10035, 1E-7)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("NaN and infinities are not JSON")
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value, allow_nan=False)
