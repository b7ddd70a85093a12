"""Shared fixtures. The CDKTF synth is done once per session: importing the provider
bindings costs ~12 s and ~1 GB, so every stack test reads the same synthesized JSON."""

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
def moto_server():
    """moto's HTTP server on 127.0.0.1 (a free port), shared by the session; tests reset it."""
    from emulator.moto_server import EmbeddedEmulator

    with EmbeddedEmulator() as emulator:
        yield emulator


@pytest.fixture
def moto_endpoint(moto_server):
    moto_server.reset()
    return moto_server.endpoint


@pytest.fixture
def service_log(caplog):
    """The webhook service's log records (the reason of a 401 is only there)."""
    from tests.support.webhook import capture_service_log

    yield from capture_service_log(caplog)
