"""Shared fixtures. The CDKTF synth is done once per session: importing the provider
bindings costs ~12 s and ~1 GB, so every stack test reads the same synthesized JSON.

The moto-backed fixtures (`dynamodb`, `pipeline`, `aws`) are defined here once; a test
module that needs its own table names or settings says so with a marker (`tables`,
`pipeline`, `webhook`, registered below), so each module keeps its tables apart without a
copy of the fixture."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from emulator.session import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from environments.config import ENVIRONMENT_NAMES, load_config

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# Tests never reach AWS: the emulator's dummy credentials (one owner: emulator.session), and
# botocore >= 1.44.4 needs the endpoint mode for moto's Streams.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_ACCESS_KEY_ID"] = ACCESS_KEY_ID
os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
os.environ.pop("AWS_PROFILE", None)

settings.register_profile("quick", max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("ci", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    for line in ("tables(ticks=None, candles=None): the `dynamodb` fixture creates these tables",
                 "pipeline(**options): options of the `pipeline` fixture's tests.support Pipeline (candles=True)",
                 "webhook(table, secrets=None): the `aws` fixture's table name and secrets document"):
        config.addinivalue_line("markers", line)


def require_tool(name: str, found: bool) -> None:
    """A missing tool skips loudly on a laptop; in CI (CI=true) it fails, because CI must not skip."""
    if found:
        return
    message = f"{name} is not installed: this test cannot run without it"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must run it)")
    pytest.skip("SKIPPED LOUDLY: " + message)


@pytest.fixture(scope="session")
def artifacts():
    from delivery.build import LAMBDA_ARM64, build_all

    return build_all(LAMBDA_ARM64)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory, artifacts):
    """Every environment file, synthesized once with a real App (cross-stack references resolved)."""
    from delivery.synth import synth_environment

    base = tmp_path_factory.mktemp("synth")
    apps = {name: synth_environment(load_config(name), base / name, artifacts) for name in ENVIRONMENT_NAMES}
    apps["dev-pr42"] = synth_environment(load_config("dev").with_suffix("pr42"), base / "dev-pr42", artifacts)
    return apps


@pytest.fixture(scope="session")
def variant(tmp_path_factory, artifacts):
    """local.yaml with every optional feature on (tests/support/variant.py), synthesized once per session."""
    from tests.support.variant import synthesized_variant

    return synthesized_variant(tmp_path_factory.getbasetemp(), artifacts)


@pytest.fixture(scope="session")
def moto_server():
    """moto's HTTP server on 127.0.0.1 (a free port), shared by the session; tests reset it."""
    from emulator.moto_server import EmbeddedEmulator

    with EmbeddedEmulator() as emulator:
        yield emulator


@pytest.fixture
def moto_endpoint(moto_server):
    moto_server.reset()
    return moto_server.endpoint


def _marker(request: pytest.FixtureRequest, name: str) -> pytest.Mark | None:
    return request.node.get_closest_marker(name)


@pytest.fixture
def dynamodb(moto_endpoint, request):
    """A DynamoDB client on moto, with the tables of the test's `tables` marker (none without one)."""
    import boto3

    from functions.shared.price_table import candles
    from functions.shared.price_table.keys import table_definition

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    marker = _marker(request, "tables")
    if marker and marker.kwargs.get("ticks"):
        client.create_table(**table_definition(marker.kwargs["ticks"]))
    if marker and marker.kwargs.get("candles"):
        client.create_table(**candles.table_definition(marker.kwargs["candles"]))
    return client


@pytest.fixture
def pipeline(moto_endpoint, request):
    """The enricher's tables and topic on moto (tests.support.enricher_support.Pipeline), with the
    options of the test's `pipeline` marker."""
    from tests.support.enricher_support import Pipeline

    marker = _marker(request, "pipeline")
    return Pipeline(moto_endpoint, **(marker.kwargs if marker else {}))


@pytest.fixture
def aws(moto_endpoint, request):
    """The webhook's table, DLQ and settings on moto: (dynamodb, sqs, settings). The test's
    `webhook` marker names the table and the secrets document (default: SOURCE's two HMAC
    secrets, the current and the rotated one)."""
    import json

    from functions.webhook_processor import service as webhook
    from functions.webhook_processor.signature import parse_secrets
    from tests.support.webhook import ROTATED, SECRET, SOURCE, create_table

    marker = _marker(request, "webhook")
    if marker is None:
        raise pytest.UsageError("the aws fixture needs a `webhook(table, secrets=None)` marker on the test or module")
    table, secrets = marker.args[0], marker.kwargs.get("secrets") or {SOURCE: [SECRET, ROTATED]}
    dynamodb, sqs, queue = create_table(moto_endpoint, table, f"{table}-dlq", webhook.CLIENT_CONFIG)
    settings = webhook.Settings(table_name=table, dlq_url=queue, secrets=parse_secrets(json.dumps(secrets)),
                                default_quote="USD", max_skew_seconds=300)
    return dynamodb, sqs, settings


@pytest.fixture
def service_log(caplog):
    """The webhook service's log records (the reason of a 401 is only there)."""
    from tests.support.webhook import capture_service_log

    yield from capture_service_log(caplog)
