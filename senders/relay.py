"""`invoke relay`: the exchange relay (the `price_relay` package) pointed at an environment.

The package takes a webhook URL, a source id and a secret; this module finds them for an
environment: for `local`, the webhook URL of a running `invoke local` (delivery/local_session.py
reads where it listens) and the dev-only secret of environments/local.yaml;
elsewhere, the stack outputs and the secrets store. The secret reaches the relay through a
mapping standing in for its environment, never through argv or a file.

With `--config FILE`, the rule is `python -m price_relay`'s: options given on the command
line (`--source`, `--spool`) override the file's values, and `--exchange`, `--symbols` and
`--ws-url` cannot be combined with a file's `exchanges`. The environment (`--env`) decides
the webhook URL and the secret: a file's `webhook_url` must be that URL, and its
`secret_env`/`secret_file` give way to the secret read from the environment.

Every failure is a RelaySetupError (a PipelineError; NoLocalSession when no `invoke local` runs):
one line, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from delivery.local_session import read_running_local
from delivery.paths import BUILD_DIR
from environments.config import EnvironmentConfig
from errors import PipelineError

SPOOL_DIR = BUILD_DIR / "relay"  # the default spools' directory, created on first use
SECRET_VARIABLE = "RELAY_SECRET"  # noqa: S105 - the variable's name, not a secret

# `secret_lookup(source)`: the source's entry in the environment's secrets document (the
# webhook's format, functions/webhook_processor/signature.py), or None without one.
SecretLookup = Callable[[str], Any]


class RelaySetupError(PipelineError):
    """The relay cannot be pointed at the environment (nothing running, no secret, bad option)."""


def hmac_secret(config: EnvironmentConfig, source: str, entry: Any) -> str:
    """The newest secret of an HMAC source's entry in the secrets document.

    The relay signs every request (X-Signature); a `token` source's secret would be
    answered 401, which the relay retries forever, so a token source is refused here."""
    from functions.webhook_processor.signature import parse_secrets

    if entry is None:
        raise RelaySetupError(f"no secret for source {source!r} in {config.name}'s secrets store")
    try:
        auth = parse_secrets(json.dumps({source: entry}))[source]
    except ValueError as error:  # the parser's messages never quote a secret
        raise RelaySetupError(f"source {source!r} in {config.name}'s secrets store: {error}") from None
    if auth.mode != "hmac":
        raise RelaySetupError(f"source {source!r} is a {auth.mode} source; the relay signs with HMAC: create one "
                              f"with `invoke secrets --env {config.name} --action add --source <name> --generate` "
                              "and pass --source <name>")
    return auth.secrets[0].decode()


def _from_file(config_file: str, *, exchange: str | None, symbols: str | None,
               ws_url: str | None, channel: str | None = None) -> dict[str, Any]:
    """The --config file's object, its relative spool made relative to the file (as the
    price_relay CLI reads it); exchange options are refused next to the file's exchanges."""
    from price_relay.config import ConfigError, read_config_file

    try:
        data = read_config_file(config_file)
    except ConfigError as error:
        raise RelaySetupError(str(error)) from None
    if "exchanges" in data and (exchange or symbols or ws_url or channel):
        raise RelaySetupError("--exchange/--symbols/--ws-url/--channel cannot be combined with the config file's "
                              "exchanges")
    spool = data.get("spool")
    if isinstance(spool, str) and spool.strip():
        base = Path(config_file).expanduser().resolve().parent
        data["spool"] = str(base / Path(spool).expanduser())  # an absolute spool stays as it is
    return data


def relay_settings(config: EnvironmentConfig, outputs: Mapping[str, Any] | None, secret_lookup: SecretLookup,
                   *, source: str | None, exchange: str | None, symbols: str | None, ws_url: str | None,
                   config_file: str | None, spool: str | None,
                   channel: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The relay's configuration mapping and the environment holding its secret.

    `channel`: "trade" (the relay's default: traded quantity as volume) or "ticker".

    `secret_lookup(source)` returns the source's entry in the environment's secrets
    document, or None (unused for `local`, whose document is in its environment file).
    """
    data = _from_file(config_file, exchange=exchange, symbols=symbols, ws_url=ws_url,
                      channel=channel) if config_file else {}
    if exchange or symbols or ws_url or channel or "exchanges" not in data:
        if not exchange or not symbols:
            raise RelaySetupError("give --exchange and --symbols, or --config FILE with exchanges")
        entry: dict[str, Any] = {"exchange": exchange, "symbols": [s for s in symbols.split(",") if s]}
        if ws_url:
            entry["ws_url"] = ws_url
        if channel:
            entry["channel"] = channel
        data["exchanges"] = [entry]
    if spool:
        data["spool"] = str(Path(spool).expanduser().resolve())
    elif "spool" not in data:
        SPOOL_DIR.mkdir(parents=True, exist_ok=True)
        data["spool"] = str(SPOOL_DIR / f"{config.deployment_id}.sqlite")
    if source:
        data["source"] = source
    if config.local_webhook_secrets is not None:
        webhook_url = read_running_local()["webhook_url"]
        data.setdefault("source", (config.local_source("hmac") or ("", ""))[0])
        entry_of: SecretLookup = config.local_secrets_document().get
    else:
        if not outputs or "webhook_url" not in outputs:
            raise RelaySetupError(f"no webhook_url in the outputs of {config.name}: run `invoke outputs`")
        if not data.get("source"):
            raise RelaySetupError("--source is required: the relay's source id in the webhook secrets")
        webhook_url = outputs["webhook_url"]
        entry_of = secret_lookup
    if "webhook_url" in data and data["webhook_url"] != webhook_url:
        raise RelaySetupError(f"config: webhook_url differs from {config.name}'s webhook URL; leave it out of "
                              "the file (--env decides where the relay sends)")
    data["webhook_url"] = webhook_url
    if not isinstance(data.get("source"), str) or not data["source"]:
        raise RelaySetupError(f"--source is required: {config.name} has no HMAC source to default to")
    from functions.webhook_processor.signature import SOURCE_ID_RULE, is_source_id

    if not is_source_id(data["source"]):  # not repeated: a secret pasted in its place must not show
        raise RelaySetupError(f"--source: {SOURCE_ID_RULE}")
    secret = hmac_secret(config, data["source"], entry_of(data["source"]))
    data.pop("secret_file", None)
    data["secret_env"] = SECRET_VARIABLE
    return data, {SECRET_VARIABLE: secret}


def run_relay(data: dict[str, Any], environ: Mapping[str, str]) -> int:
    """Validate (one-line errors) and run until SIGINT/SIGTERM; the relay's exit code."""
    from price_relay import run
    from price_relay.config import ConfigError, RelayConfig

    try:
        relay_config = RelayConfig.from_mapping(data, environ=environ)
        return run(relay_config)  # ConfigError here: the spool is locked by another relay, or unusable
    except ConfigError as error:
        raise RelaySetupError(str(error)) from None
