"""The relay's tests run against this checkout's `relay/` sources (not whatever version
of price-relay may be installed), so the package directory goes first on sys.path, and
on PYTHONPATH for the CLI subprocesses (with the project root, for the webhook's symbol rules)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELAY_DIR = ROOT / "relay"
sys.path.insert(0, str(RELAY_DIR))


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for `python -m price_relay` runs: this checkout's sources, no secret."""
    env = {k: v for k, v in os.environ.items() if k != "RELAY_SECRET"}
    # The project root too: the relay checks its symbols with the webhook's own module.
    env["PYTHONPATH"] = os.pathsep.join([str(RELAY_DIR), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture
def webhook() -> Iterator[Any]:
    """The webhook's loopback stand-in (tests/relay/loopback.py), accepting SOURCE signed with SECRET."""
    from tests.relay.loopback import SECRET, SOURCE, WebhookStandIn

    stand_in = WebhookStandIn({SOURCE: [SECRET]}).start()
    yield stand_in
    stand_in.stop()
