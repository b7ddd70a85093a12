"""One extra synth, shared by the stack tests and the static checks: the local environment with
every optional feature on (tick retention, the relay stack), so that the optional
resources are covered by the property tests, the IAM scan, terraform validate (the local
stacks validate offline) and checkov, while the four committed environment files keep
them off.

Memoized here rather than in a fixture: a fixture imported into two test modules would be
two fixtures and two synths (each ~15-30 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from environments.config import EnvironmentConfig, load_config

TICK_RETENTION_DAYS = 30
_CACHE: dict[str, Any] = {}


def variant_config() -> EnvironmentConfig:
    """local.yaml plus every optional section, validated like a file would be."""
    data = load_config("local").model_dump(mode="json", exclude_none=True)
    data.update(OPTIONAL_SECTIONS)
    return EnvironmentConfig.model_validate(data)


RELAY_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/price-relay:0.1.0"
OPTIONAL_SECTIONS: dict[str, Any] = {
    "tick_retention_days": TICK_RETENTION_DAYS,
    "relay": {
        "image": RELAY_IMAGE,
        "source": "binance-relay",
        "exchanges": [{"exchange": "binance", "symbols": ["BTCUSDT", "ETHUSDT"]},
                      {"exchange": "kraken", "symbols": ["BTC/USD"]}],
        "vpc_id": "vpc-0123456789abcdef0",
        "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    },
}


# The relay as the end-to-end session deploys it into the emulator: the default-VPC shape (no
# network ids, which moto makes up at run time) and one exchange, whose frames the test serves.
E2E_RELAY_SYMBOL = "ECSUSDT"


def e2e_config() -> EnvironmentConfig:
    """local.yaml plus a relay section, so that `relay-local` is applied into the emulator too."""
    data = load_config("local").model_dump(mode="json", exclude_none=True)
    config = EnvironmentConfig.model_validate(data)
    source = config.local_source("hmac")
    assert source is not None, "local.yaml has an hmac source"
    data["relay"] = {"image": RELAY_IMAGE, "source": source[0],
                     "exchanges": [{"exchange": "binance", "symbols": [E2E_RELAY_SYMBOL]}]}
    return EnvironmentConfig.model_validate(data)


def synthesized_variant(base: Path, artifacts: Any) -> Any:
    """The variant's synthesized app, synthesized once per test session."""
    if "app" not in _CACHE:
        from delivery.synth import synth_environment

        _CACHE["app"] = synth_environment(variant_config(), base / "local-variant", artifacts)
    return _CACHE["app"]
