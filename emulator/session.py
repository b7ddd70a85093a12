"""The one place that knows the emulator's dummy credentials: sessions, clients and the
environment variables every emulator client (terraform, local functions, tasks) uses.

moto and LocalStack accept any key; fixed values keep every client, and moto's account
id, the same.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.credentials import Credentials

ACCESS_KEY_ID = "test"
SECRET_ACCESS_KEY = "test"  # noqa: S105 - the emulator's dummy key, not a credential
DEFAULT_REGION = "us-east-1"
SERVICES = ("dynamodb", "dynamodbstreams", "sqs", "sns", "lambda", "logs", "secretsmanager")


def credentials() -> Credentials:
    """The credentials an emulator client signs with (the function URL stand-in verifies them)."""
    return Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)


def session(region: str = DEFAULT_REGION) -> boto3.session.Session:
    """A session with the emulator's credentials, whatever the shell's AWS settings are."""
    return boto3.session.Session(aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
                                 region_name=region)


def client(service: str, endpoint: str, region: str = DEFAULT_REGION, **kwargs: Any) -> Any:
    return session(region).client(service, endpoint_url=endpoint, **kwargs)  # type: ignore[call-overload]


def clients(endpoint: str, region: str = DEFAULT_REGION, names: tuple[str, ...] = SERVICES) -> dict[str, Any]:
    emulator = session(region)
    return {name: emulator.client(name, endpoint_url=endpoint) for name in names}  # type: ignore[call-overload]


def clients_for(endpoint: str | None, region: str, names: tuple[str, ...] = SERVICES) -> dict[str, Any]:
    """The same code for the emulator and for AWS: with an endpoint, the emulator's clients;
    without one, the default credential chain (profile, role, environment)."""
    if endpoint:
        return clients(endpoint, region, names)
    real = boto3.session.Session(region_name=region)
    return {name: real.client(name) for name in names}  # type: ignore[call-overload]


def environment(endpoint: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    """Variables that point an AWS SDK or terraform at the emulator.

    AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled: botocore >= 1.44.4 otherwise builds account-based
    endpoints that moto's Streams API does not answer.
    """
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}
