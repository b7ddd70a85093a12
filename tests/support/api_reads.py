"""The price API's reads as its handler makes them (functions.price_api.dynamodb), pointed at a test's moto."""

from __future__ import annotations

from typing import Any

from emulator.session import credentials
from functions.price_api.dynamodb import DynamoReads


def reads_for(client: Any) -> DynamoReads:
    """Query and GetItem to the endpoint and region of a test's botocore client."""
    return DynamoReads(client.meta.endpoint_url, client.meta.region_name, credentials())
