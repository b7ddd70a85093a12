"""One deployed local stack for the whole end-to-end session (terraform apply takes about a minute)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import pytest

from delivery.local import LocalDeployment
from delivery.paths import BUILD_DIR
from emulator.subscriber import TopicSubscriber
from tests.support.variant import e2e_config


def wait_until(condition: Callable[[], object], timeout: float = 90.0, interval: float = 0.5):
    """Poll until the condition holds: works for the embedded target and for LocalDeployment."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "destroys_stack: runs after every other end-to-end test (it tears "
                                       "down the session's deployed stack)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that destroy the session's stack run last, in their collected order: the order is
    the marker's, not the file name's, so a new e2e file never lands after the destroy."""
    items.sort(key=lambda item: item.get_closest_marker("destroys_stack") is not None)  # stable


@pytest.fixture(scope="session")
def stack():
    target = os.environ.get("E2E_TARGET", "embedded")
    # On the embedded emulator the relay stack is applied too (tests/e2e/test_relay_stack.py
    # runs its task); LocalStack's community image has no ECS.
    config = e2e_config() if target == "embedded" else None
    with LocalDeployment(target=target, stream_terraform=True, config=config) as running:
        try:
            yield running
        finally:
            write_iam_record(running)


IAM_RECORD = BUILD_DIR / "iam" / "calls.json"


def write_iam_record(running: LocalDeployment) -> None:
    """Every (role, action, resource) the session's functions called, with the verdict and the
    statements that allowed it (emulator/iam_gate.py), for review and tests/test_least_privilege*."""
    if running.services is None:
        return
    IAM_RECORD.parent.mkdir(parents=True, exist_ok=True)
    IAM_RECORD.write_text(json.dumps(running.services.gate.record(), indent=1) + "\n")


@pytest.fixture(scope="session")
def inboxes(stack):
    outputs = stack.info.outputs
    with TopicSubscriber(stack.aws, outputs["success_topic_arn"], "e2e-success-subscriber") as success, \
            TopicSubscriber(stack.aws, outputs["alerts_topic_arn"], "e2e-alerts-subscriber") as alerts:
        yield {"success": success, "alerts": alerts}
