"""The relay's tests run against this checkout's `relay/` sources (not whatever version
of price-relay may be installed), so the package directory goes first on sys.path, and
on PYTHONPATH for the CLI subprocesses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

RELAY_DIR = Path(__file__).resolve().parents[2] / "relay"
sys.path.insert(0, str(RELAY_DIR))


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for `python -m price_relay` runs: this checkout's sources, no secret."""
    env = {k: v for k, v in os.environ.items() if k != "RELAY_SECRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(RELAY_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
