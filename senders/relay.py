"""`invoke relay`: the exchange relay (the `price_relay` package) pointed at an environment.

The package takes a webhook URL, a source id and a secret; this module finds them for an
environment: for `local`, the webhook URL of a running `invoke local` (it writes where it
listens to build/local/running.json) and the dev-only secret of environments/local.yaml;
elsewhere, the stack outputs and the secrets store. The secret reaches the relay through a
mapping standing in for its environment, never through argv or a file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from delivery.paths import BUILD_DIR
from environments.config import EnvironmentConfig
from errors import PipelineError

RUNNING_LOCAL = BUILD_DIR / "local" / "running.json"
SECRET_VARIABLE = "RELAY_SECRET"  # noqa: S105 - the variable's name, not a secret


class RelaySetupError(PipelineError):
    """The relay cannot be pointed at the environment (nothing running, no secret, bad option)."""


def write_running_local(webhook_url: str, endpoint: str, price_api_url: str | None,
                        path: Path = RUNNING_LOCAL) -> Path:
    """Where a running `invoke local` listens (no secret: the dev-only one is in local.yaml)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"webhook_url": webhook_url, "endpoint": endpoint, "price_api_url": price_api_url}))
    return path


def read_running_local(path: Path = RUNNING_LOCAL) -> dict[str, Any]:
    if not path.is_file():
        raise RelaySetupError("no running local stack: start `invoke local` in another terminal first")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def relay_settings(config: EnvironmentConfig, outputs: Mapping[str, Any] | None, secret_lookup: Any,
                   *, source: str | None, exchange: str | None, symbols: str | None, ws_url: str | None,
                   config_file: str | None, spool: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The relay's configuration mapping and the environment holding its secret.

    `secret_lookup(source) -> str` reads a source's current secret from the environment's
    secrets store (unused for `local`).
    """
    from price_relay.config import read_config_file

    if config_file:
        data = read_config_file(config_file)
    elif exchange and symbols:
        entry: dict[str, Any] = {"exchange": exchange, "symbols": [s for s in symbols.split(",") if s]}
        if ws_url:
            entry["ws_url"] = ws_url
        data = {"exchanges": [entry]}
    else:
        raise RelaySetupError("give --exchange and --symbols, or --config FILE")
    data.setdefault("spool", spool or str(BUILD_DIR / "relay" / f"{config.name}-{config.suffix}.sqlite"))
    if config.local_webhook_secrets is not None:
        running = read_running_local()
        local_source, local_secret = config.local_source("hmac") or ("", "")
        data.setdefault("webhook_url", running["webhook_url"])
        data.setdefault("source", source or local_source)
        secret = local_secret if data["source"] == local_source else None
    else:
        if not outputs or "webhook_url" not in outputs:
            raise RelaySetupError(f"no webhook_url in the outputs of {config.name}: run `invoke outputs`")
        if not source and "source" not in data:
            raise RelaySetupError("--source is required: the relay's source id in the webhook secrets")
        data.setdefault("webhook_url", outputs["webhook_url"])
        data.setdefault("source", source)
        secret = secret_lookup(data["source"])
    if not secret:
        raise RelaySetupError(f"no secret for source {data['source']!r} in {config.name}'s secrets store")
    data["secret_env"] = SECRET_VARIABLE
    return data, {SECRET_VARIABLE: secret}


def run_relay(data: dict[str, Any], environ: Mapping[str, str]) -> int:
    """Validate (one-line errors) and run until SIGINT/SIGTERM; the relay's exit code."""
    from price_relay import run
    from price_relay.config import ConfigError, RelayConfig

    try:
        relay_config = RelayConfig.from_mapping(data, environ=environ)
    except ConfigError as error:
        raise RelaySetupError(str(error)) from None
    return run(relay_config)
