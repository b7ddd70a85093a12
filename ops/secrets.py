"""`invoke secrets`: the webhook sources' signing secrets in Secrets Manager, set outside Terraform.

The storage stack creates the secret `webhook-secrets-<suffix>` without a value, so no
secret is ever in a synthesized file, a plan or a state file. Its value is the document
the webhook reads (`functions.webhook_processor.signature.parse_secrets`): source id ->
a secret, a list of secrets (newest first), or `{"auth": ..., "secrets": [...], ...}`.
This module edits only a source's secrets list and keeps everything else of the entry.

Rotation without a deploy, in two steps:

1. `add`: a new secret goes first in the source's list; the old ones stay valid. Give the
   sender the new secret (printed once when generated) and let it switch.
2. `retire`: once the sender uses the new secret, every older one is removed.

Warm webhook functions re-read the secret within `SECRETS_TTL_SECONDS` (60 s) of a
change: an added secret is accepted, and a retired one refused, at most a minute later.
`list` shows sources, modes and counts, never a value. Every document is checked with the
webhook's own parser before it is written, so a bad edit never reaches the functions.

Two operators at once: each change goes live only if the version it read is still the
current one (`_write`); the other change then stays, and this one changes nothing and says
so in one line. A generated secret is printed only once its change is live.

Nothing here prints or raises with a secret's value; the caller prints the one value it
is handed back, and only when it asked for a generated secret.
"""

from __future__ import annotations

import json
import secrets as random_secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from environments.config import EnvironmentConfig
from errors import PipelineError
from stacks.names import webhook_secrets_name

ACTIONS = ("list", "add", "retire", "remove", "allow")
# Senders that publish the addresses they send from (`--action allow --allowed-ips tradingview`).
# TradingView: https://www.tradingview.com/support/solutions/43000529348 (webhook alerts come from these).
PUBLISHED_IPS = {"tradingview": ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7")}
MODES = ("hmac", "token")
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 512
MAX_SECRETS_PER_SOURCE = 10
GENERATED_BYTES = 32  # token_urlsafe(32): 43 characters, 256 bits


class SecretsError(PipelineError):
    """Misuse or a failed change; one line, never a secret's value."""


@dataclass(frozen=True)
class SourceSummary:
    """What `list` shows of a source: nothing that signs."""

    source: str
    mode: str
    active: int
    allowed_ips: int

    def line(self) -> str:
        ips = f", {self.allowed_ips} allowed IP range(s)" if self.allowed_ips else ""
        return f"{self.source}: {self.mode}, {self.active} active secret(s){ips}"


@dataclass(frozen=True)
class Change:
    """The outcome of add/retire/remove: counts and versions; `generated` only when asked for."""

    source: str
    active: int
    version_id: str
    generated: str | None = None

    def __repr__(self) -> str:  # the generated value never shows in a repr or a traceback
        return f"Change(source={self.source!r}, active={self.active}, version_id={self.version_id!r})"


@dataclass(frozen=True)
class Stored:
    document: dict[str, Any]
    version_id: str | None  # None: the secret exists but has no value yet


def secret_id(config: EnvironmentConfig) -> str:
    return webhook_secrets_name(config)


def secretsmanager_client(config: EnvironmentConfig, environ: Mapping[str, str]) -> Any:
    """The emulator's client for an emulated environment (AWS_ENDPOINT_URL), else the default chain."""
    from emulator.session import clients_for

    return clients_for(config.emulator_endpoint(environ), config.region, ("secretsmanager",))["secretsmanager"]


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def read_document(client: Any, name: str) -> Stored:
    """The current document and its version; an empty document when no value was ever set."""
    try:
        described = client.describe_secret(SecretId=name)
    except Exception as error:  # noqa: BLE001 - reported in one line
        if _error_code(error) == "ResourceNotFoundException":
            raise SecretsError(f"no secret {name}: deploy the storage stack first") from None
        raise SecretsError(f"reading secret {name} failed: {_error_code(error) or type(error).__name__}") from None
    if not any("AWSCURRENT" in stages for stages in (described.get("VersionIdsToStages") or {}).values()):
        return Stored({}, None)
    try:
        response = client.get_secret_value(SecretId=name)
    except Exception as error:  # noqa: BLE001
        raise SecretsError(f"reading secret {name} failed: {_error_code(error) or type(error).__name__}") from None
    try:
        document = json.loads(response.get("SecretString") or "")
    except ValueError:
        raise SecretsError(f"the value of {name} is not a JSON document; nothing was changed") from None
    if not isinstance(document, dict):
        raise SecretsError(f"the value of {name} is not a JSON object of source id -> secrets")
    return Stored(document, response.get("VersionId"))


def _entry_secrets(source: str, entry: Any) -> list[str]:
    """A source entry's secrets, newest first, whatever form the entry has."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return list(entry)
    if isinstance(entry, dict) and isinstance(entry.get("secrets"), list):
        return list(entry["secrets"])
    raise SecretsError(f"source {source!r}: its entry has an unknown form; fix the document first")


def _with_secrets(entry: Any, values: list[str]) -> Any:
    """The entry with a new secrets list, in the entry's own form (object entries keep their keys)."""
    if isinstance(entry, dict):
        return {**entry, "secrets": values}
    return values


def _entry_mode(entry: Any) -> str:
    return str(entry.get("auth", "hmac")) if isinstance(entry, dict) else "hmac"


def _check(document: dict[str, Any]) -> str:
    """The document as it will be stored, after the webhook's own parser accepted it."""
    from functions.webhook_processor.signature import parse_secrets

    text = json.dumps(document, sort_keys=True)
    try:
        parse_secrets(text)
    except ValueError as error:  # the parser's messages never quote a secret
        raise SecretsError(f"refused, the webhook could not read the result: {error}") from None
    return text


STAGED = "AWSPENDING"  # the label a change's new version waits under until it becomes AWSCURRENT


class ChangeLost(SecretsError):
    """Another change moved AWSCURRENT after this one read it; this one changed nothing."""


def _unstage(client: Any, name: str, version: str) -> None:
    """Best effort: take the staging label off a version this change wrote (a lost change's
    version then holds no label, and GetSecretValue never answers it). A label that another
    change's staging has already taken is left where it is."""
    try:
        client.update_secret_version_stage(SecretId=name, VersionStage=STAGED, RemoveFromVersionId=version)
    except Exception:  # noqa: BLE001 - the change's outcome does not depend on it
        pass


def _write(client: Any, name: str, stored: Stored, document: dict[str, Any]) -> str:
    """Make `document` AWSCURRENT only if the version `stored` was read from still is.

    Two steps, so that the check and the change are one atomic step of Secrets Manager: the
    new version is staged (PutSecretValue with AWSPENDING, which leaves AWSCURRENT where it
    is), then AWSCURRENT is moved from the version read to the new one. Secrets Manager
    refuses the move when the version read no longer holds AWSCURRENT, i.e. when another
    change landed since the read: that change stays, this one is not live, and ChangeLost
    says so. (Writing first and checking afterwards, as before, left the loser's document live
    over the winner's: an added secret vanished, or a retired one came back.) A secret's first
    value has no version to move from: Secrets Manager makes the first version written
    AWSCURRENT itself, so the change went live only if its own version is that one.
    """
    text = _check(document)
    try:
        written = client.put_secret_value(SecretId=name, SecretString=text, ClientRequestToken=str(uuid.uuid4()),
                                          VersionStages=[STAGED])
    except Exception as error:  # noqa: BLE001
        raise SecretsError(f"writing secret {name} failed: {_error_code(error) or type(error).__name__}; "
                           "nothing was changed") from None
    version = str(written["VersionId"])
    lost = ChangeLost(f"another change to {name} landed after this one read version {stored.version_id}; "
                      "nothing was changed: run `invoke secrets --action list` and repeat the change")
    if stored.version_id is None:
        if "AWSCURRENT" not in (written.get("VersionStages") or []):
            _unstage(client, name, version)
            raise lost
    else:
        try:
            client.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=version,
                                               RemoveFromVersionId=stored.version_id)
        except Exception as error:  # noqa: BLE001
            _unstage(client, name, version)
            if _error_code(error) == "InvalidParameterException":  # the version read no longer holds AWSCURRENT
                raise lost from None
            raise SecretsError(f"writing secret {name} failed: {_error_code(error) or type(error).__name__}; "
                               "nothing was changed") from None
    _unstage(client, name, version)
    return version


def _require_source(source: str | None) -> str:
    from functions.webhook_processor.signature import SOURCE_ID_RULE, is_source_id

    if not source:
        raise SecretsError("--source is required for this action")
    if not is_source_id(source):  # not repeated: a secret pasted in its place must not show
        raise SecretsError(f"--source: {SOURCE_ID_RULE}")
    return source


def list_sources(client: Any, name: str) -> list[SourceSummary]:
    """Every source with its mode and counts; no value."""
    document = read_document(client, name).document
    summaries = []
    for source, entry in sorted(document.items()):
        ips = entry.get("allowed_ips") if isinstance(entry, dict) else None
        summaries.append(SourceSummary(source, _entry_mode(entry), len(_entry_secrets(source, entry)),
                                       len(ips) if isinstance(ips, list) else 0))
    return summaries


def new_secret_value(*, generate: bool, value: str | None) -> str:
    """The secret to add: generated, or given (from an environment variable, never argv)."""
    if generate == (value is not None):
        raise SecretsError("give exactly one of --generate or --value-env VARIABLE")
    if generate:
        return random_secrets.token_urlsafe(GENERATED_BYTES)
    assert value is not None
    if value != value.strip() or not value.isprintable():
        raise SecretsError("the new secret has surrounding whitespace or unprintable characters")
    if not MIN_SECRET_LENGTH <= len(value) <= MAX_SECRET_LENGTH:
        raise SecretsError(f"the new secret must have {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters")
    return value


def add_secret(client: Any, name: str, source: str | None, new_value: str, *, mode: str | None = None,
               generated: bool = False) -> Change:
    """Put `new_value` first in the source's secrets; the older ones stay valid until `retire`.

    A source that does not exist yet is created, as `mode` says (hmac unless given).
    """
    source = _require_source(source)
    if mode is not None and mode not in MODES:
        raise SecretsError(f"--mode must be one of {', '.join(MODES)}")
    stored = read_document(client, name)
    document = dict(stored.document)
    if source in document:
        entry = document[source]
        if mode is not None and mode != _entry_mode(entry):
            raise SecretsError(f"source {source!r} uses {_entry_mode(entry)}; its mode is not changed here")
        current = _entry_secrets(source, entry)
        if new_value in current:
            raise SecretsError(f"source {source!r} already has this secret")
        if len(current) >= MAX_SECRETS_PER_SOURCE:
            raise SecretsError(f"source {source!r} has {len(current)} secrets: retire the old ones first")
        document[source] = _with_secrets(entry, [new_value, *current])
    elif mode == "token":
        document[source] = {"auth": "token", "secrets": [new_value]}
    else:
        document[source] = [new_value]
    version = _write(client, name, stored, document)
    return Change(source, len(_entry_secrets(source, document[source])), version,
                  new_value if generated else None)


def _existing(client: Any, name: str, source: str | None) -> tuple[str, Stored, Any]:
    """The source's id, the document it is in, and its entry; a source that is not there is an error."""
    source = _require_source(source)
    stored = read_document(client, name)
    if source not in stored.document:
        raise SecretsError(f"no source {source!r} in {name}")
    return source, stored, stored.document[source]


def retire_old(client: Any, name: str, source: str | None) -> Change:
    """Keep only the source's newest secret (the first); the others stop working within the TTL."""
    source, stored, entry = _existing(client, name, source)
    current = _entry_secrets(source, entry)
    if len(current) < 2:
        raise SecretsError(f"source {source!r} has only one secret: nothing to retire")
    document = {**stored.document, source: _with_secrets(entry, current[:1])}
    return Change(source, 1, _write(client, name, stored, document))


def remove_source(client: Any, name: str, source: str | None) -> Change:
    """Remove a source and all its secrets (its requests are refused within the TTL)."""
    source, stored, _ = _existing(client, name, source)
    document = {k: v for k, v in stored.document.items() if k != source}
    return Change(source, 0, _write(client, name, stored, document))


def allowed_ips_from(spec: str | None) -> list[str]:
    """`--allowed-ips`: a sender's name (`tradingview`), IPs/networks separated by commas, or `any`
    (no restriction: an empty list). Only the word `any` lifts the restriction: an empty item
    is an error, so that `","` (an unset variable between commas) cannot lift it. The webhook's
    parser checks each address when it is written."""
    text = (spec or "").strip()
    if not text:
        raise SecretsError("--allowed-ips is required: tradingview, any, or IPs/networks separated by commas")
    if text.lower() in PUBLISHED_IPS:
        return list(PUBLISHED_IPS[text.lower()])
    if text.lower() == "any":
        return []
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):  # "," or "10.0.0.1,": an unset shell variable, which must not lift or narrow anything
        raise SecretsError("--allowed-ips has an empty item (an unset variable?): give tradingview, any "
                           "(no restriction), or IPs/networks separated by commas; nothing was changed")
    return parts


def set_allowed_ips(client: Any, name: str, source: str | None, addresses: list[str]) -> Change:
    """Restrict a source to these addresses (`requestContext.http.sourceIp`), or lift the restriction
    with an empty list; its secrets and mode stay as they are."""
    source, stored, entry = _existing(client, name, source)
    values = _entry_secrets(source, entry)
    updated = dict(entry) if isinstance(entry, dict) else {"auth": "hmac", "secrets": values}
    if addresses:
        updated["allowed_ips"] = addresses
    else:
        updated.pop("allowed_ips", None)
    document = {**stored.document, source: updated}
    return Change(source, len(values), _write(client, name, stored, document))


def source_entry(config: EnvironmentConfig, source: str, client: Any | None = None,
                 environ: Mapping[str, str] | None = None) -> Any:
    """The source's entry in the environment's secrets document (its mode and secrets, as the
    webhook's parser reads it), or None; for `invoke relay`, which signs with it and never prints it."""
    import os

    client = client or secretsmanager_client(config, os.environ if environ is None else environ)
    return read_document(client, secret_id(config)).document.get(source)


def seed_local_secrets(config: EnvironmentConfig, client: Any) -> str:
    """Write the local environment's dev-only secrets into the emulator's secret; returns the version.

    Only for an emulated environment whose file carries `local_webhook_secrets`: a real
    environment's secret is set with `add`, never from a file.
    """
    if not config.is_emulated or config.local_webhook_secrets is None:
        raise SecretsError(f"{config.name}: only an emulated environment with local_webhook_secrets is seeded "
                           "from its file; use `invoke secrets --action add`")
    name = secret_id(config)
    text = _check(config.local_secrets_document())
    try:
        return str(client.put_secret_value(SecretId=name, SecretString=text)["VersionId"])
    except Exception as error:  # noqa: BLE001
        raise SecretsError(f"seeding secret {name} failed: {_error_code(error) or type(error).__name__}") from None


def run_command(config: EnvironmentConfig, client: Any, action: str, *, source: str | None = None,
                generate: bool = False, value_env: str | None = None, mode: str | None = None,
                allowed_ips: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """What `invoke secrets` prints, one line each. The only value ever in it is a generated one."""
    import os

    if action not in ACTIONS:
        raise SecretsError(f"--action must be one of {', '.join(ACTIONS)}")
    name = secret_id(config)
    if action != "add" and (generate or value_env or mode):
        raise SecretsError("--generate, --value-env and --mode go with --action add only")
    if action != "allow" and allowed_ips is not None:
        raise SecretsError("--allowed-ips goes with --action allow only")
    if action == "list":
        if source:
            raise SecretsError("--action list takes no --source")
        summaries = list_sources(client, name)
        return [f"{name}: {len(summaries)} source(s)"] + [f"  {s.line()}" for s in summaries]
    if action == "add":
        value = None
        if value_env:
            value = (os.environ if environ is None else environ).get(value_env)
            if not value:
                raise SecretsError(f"--value-env: the variable {value_env} is not set or is empty")
        change = add_secret(client, name, source, new_secret_value(generate=generate, value=value), mode=mode,
                            generated=generate)
        lines = [f"{name}: added a secret to {change.source} (now {change.active} active, version "
                 f"{change.version_id}); the older ones stay valid until `--action retire`"]
        if change.generated:
            lines.append(f"new secret for {change.source} (shown once, give it to the sender): {change.generated}")
        lines.append("warm webhook functions accept it within 60 s")
        return lines
    if action == "allow":
        addresses = allowed_ips_from(allowed_ips)
        change = set_allowed_ips(client, name, source, addresses)
        where = f"only from {', '.join(addresses)}" if addresses else "from any address"
        return [f"{name}: {change.source} is accepted {where} (version {change.version_id}); "
                "warm webhook functions apply it within 60 s"]
    if action == "retire":
        change = retire_old(client, name, source)
        return [f"{name}: {change.source} keeps only its newest secret (version {change.version_id}); "
                "older ones are refused within 60 s"]
    change = remove_source(client, name, source)
    return [f"{name}: removed source {change.source} (version {change.version_id}); its requests are refused "
            "within 60 s"]
