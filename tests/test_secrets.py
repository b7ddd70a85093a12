"""Webhook secrets in Secrets Manager (moto's server): `invoke secrets` (ops/secrets.py), the
webhook's TTL cache (functions/shared/secret_store.py) and a rotation that needs no deploy."""

from __future__ import annotations

import importlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from environments.config import load_config
from functions.shared.secret_store import CachedSecret, SecretUnavailable
from functions.webhook_processor import service as webhook
from functions.webhook_processor.signature import parse_secrets
from ops import secrets as ops
from tests.support.webhook import create_table, url_event

SOURCE = "binance-relay"
OLD = "old-secret-0123456789abcdef"
NEW = "new-secret-fedcba9876543210"
CONFIG = load_config("local")
NAME = f"webhook-secrets-{CONFIG.suffix}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LambdaContext:
    function_name = "webhook-processor-test"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:webhook-processor-test"
    aws_request_id = "req-secrets"


@pytest.fixture
def client(moto_endpoint) -> Any:
    """The secret as the storage stack leaves it: created, encrypted, without a value."""
    secretsmanager = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)
    secretsmanager.create_secret(Name=NAME, Description="created without a value, like Terraform does")
    return secretsmanager


def _calls(client: Any) -> list[str]:
    seen: list[str] = []
    client.meta.events.register("before-call.secrets-manager.GetSecretValue", lambda **_: seen.append("get"))
    return seen


def _stored(client: Any) -> dict:
    return json.loads(client.get_secret_value(SecretId=NAME)["SecretString"])


def _add(client: Any, value: str, source: str = SOURCE, **kwargs: Any) -> list[str]:
    return ops.run_command(CONFIG, client, "add", source=source, value_env="NEW_SECRET",
                           environ={"NEW_SECRET": value}, **kwargs)


# ---- rotation through the real handler: no deploy, only the TTL -------------------------------

@pytest.fixture
def handler(client, moto_endpoint, monkeypatch):
    """The webhook handler as Lambda runs it, reading WEBHOOK_SECRETS_ARN; its secrets cache on a fake clock."""
    arn = client.describe_secret(SecretId=NAME)["ARN"]
    _, _, queue = create_table(moto_endpoint, "prices-secrets", "dlq-secrets", webhook.CLIENT_CONFIG)
    for key, value in {"AWS_ENDPOINT_URL": moto_endpoint, "TABLE_NAME": "prices-secrets", "DLQ_URL": queue,
                       "WEBHOOK_SECRETS_ARN": arn, "POWERTOOLS_METRICS_NAMESPACE": "Test"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WEBHOOK_SECRETS", raising=False)
    from functions.webhook_processor import handler as module

    module = importlib.reload(module)
    clock = FakeClock()
    sent = iter(range(1, 10_000))

    def status(secret: str) -> int:
        if module._runtime.cache_info().currsize == 0:
            runtime = module._runtime()           # the cold start reads the secret (real monotonic clock)
            # From here on its cache runs on the test's clock, at a whole second: steps of whole
            # seconds are then exact (from a fractional start, (t + 60) - t is 60 - 1 ulp about
            # once in a hundred runs, and the TTL's boundary asserted below flips).
            clock.now = float(math.ceil(time.monotonic()))
            runtime.secrets.clock = clock
        body = json.dumps({"symbol": "BTC-USD", "price": f"{100 + next(sent)}.5", "exchange": "binance",
                           "timestamp": int(time.time() * 1000)})
        return module.handler(url_event(body, source=SOURCE, secrets=[secret]), LambdaContext())["statusCode"]

    status.clock = clock  # type: ignore[attr-defined]
    return status


def test_a_rotation_reaches_a_warm_function_within_the_ttl_without_a_deploy(client, handler):
    clock, ttl = handler.clock, 60.0
    _add(client, OLD)
    assert handler(OLD) == 200 and handler(NEW) == 401

    _add(client, NEW)                     # step 1: the new secret first, the old one still valid
    assert _stored(client)[SOURCE] == [NEW, OLD]
    assert handler(NEW) == 401            # not before the TTL: the warm function has not re-read
    clock.now += ttl - 1
    assert handler(NEW) == 401 and handler(OLD) == 200
    clock.now += 1
    assert handler(NEW) == 200 and handler(OLD) == 200   # both valid while the sender switches

    ops.run_command(CONFIG, client, "retire", source=SOURCE)   # step 2: the old one removed
    assert _stored(client)[SOURCE] == [NEW]
    assert handler(OLD) == 200            # still cached
    clock.now += ttl
    assert handler(OLD) == 401 and handler(NEW) == 200


# ---- the cache ----------------------------------------------------------------------------------

def test_the_cache_reads_once_per_ttl_and_picks_up_a_change_after_it_not_before(client):
    client.put_secret_value(SecretId=NAME, SecretString=json.dumps({SOURCE: [OLD]}))
    clock = FakeClock()
    cache = CachedSecret(client, NAME, parse_secrets, ttl_seconds=60, clock=clock)
    calls = _calls(client)
    first = cache.get()
    assert first[SOURCE].secrets == (OLD.encode(),)
    client.put_secret_value(SecretId=NAME, SecretString=json.dumps({SOURCE: [NEW, OLD]}))
    for step in (0, 30, 29.9):
        clock.now += step
        assert cache.get() is first          # the same parsed object: no fetch, no parse
    assert calls == ["get"]
    clock.now += 0.1                         # 60 s after the first read
    assert cache.get()[SOURCE].secrets == (NEW.encode(), OLD.encode())
    assert calls == ["get", "get"]


def test_an_unchanged_version_is_not_parsed_again(client):
    client.put_secret_value(SecretId=NAME, SecretString=json.dumps({SOURCE: [OLD]}))
    parsed: list[str] = []
    clock = FakeClock()
    cache = CachedSecret(client, NAME, lambda text: parsed.append(text) or text, ttl_seconds=60, clock=clock)
    cache.get()
    clock.now += 61
    cache.get()
    assert len(parsed) == 1


def test_a_bad_refresh_keeps_the_last_good_value_and_logs_no_secret(client, caplog):
    client.put_secret_value(SecretId=NAME, SecretString=json.dumps({SOURCE: [OLD]}))
    clock = FakeClock()
    cache = CachedSecret(client, NAME, parse_secrets, ttl_seconds=60, clock=clock)
    good = cache.get()
    client.put_secret_value(SecretId=NAME, SecretString='{"' + SOURCE + '": ["' + NEW + '"')  # not JSON
    clock.now += 60
    with caplog.at_level(logging.ERROR, logger="shared.secret_store"):
        assert cache.get() is good
    assert "reading secret" in caplog.text and "ValueError" in caplog.text
    assert NEW not in caplog.text and OLD not in caplog.text
    calls = _calls(client)
    clock.now += 59                          # the failure is retried after another TTL, not per invocation
    cache.get()
    assert calls == []


def test_a_cold_start_without_a_value_fails_in_one_line(client):
    with pytest.raises(SecretUnavailable) as raised:
        CachedSecret(client, NAME, parse_secrets).get()
    assert str(raised.value) == f"reading secret {NAME} failed: ResourceNotFoundException"
    with pytest.raises(SecretUnavailable):
        CachedSecret(client, "", parse_secrets)


# ---- ops/secrets.py -----------------------------------------------------------------------------

def test_list_shows_sources_modes_and_counts_never_a_value(client):
    assert ops.run_command(CONFIG, client, "list") == [f"{NAME}: 0 source(s)"]
    _add(client, OLD)
    _add(client, NEW)
    token = "tv-token-0123456789abcdef"
    _add(client, token, source="tv-alerts", mode="token")
    lines = ops.run_command(CONFIG, client, "list")
    assert lines == [f"{NAME}: 2 source(s)", f"  {SOURCE}: hmac, 2 active secret(s)",
                     "  tv-alerts: token, 1 active secret(s)"]
    assert not any(value in "\n".join(lines) for value in (OLD, NEW, token))


def test_generate_shows_the_new_secret_once_and_only_when_generated(client):
    _add(client, OLD)
    lines = ops.run_command(CONFIG, client, "add", source=SOURCE, generate=True)
    new = _stored(client)[SOURCE][0]
    assert len(new) >= 40 and _stored(client)[SOURCE][1] == OLD
    assert sum(new in line for line in lines) == 1
    assert OLD not in "\n".join(lines)
    given = _add(client, NEW)
    assert NEW not in "\n".join(given) and new not in "\n".join(given)


def test_allow_restricts_a_source_to_tradingviews_published_ips_then_lifts_it(client):
    _add(client, "tv-token-0123456789abcdef", source="tv-alerts", mode="token")
    _add(client, OLD)
    lines = ops.run_command(CONFIG, client, "allow", source="tv-alerts", allowed_ips="tradingview")
    assert "only from 52.89.214.238, 34.212.75.30, 54.218.53.128, 52.32.178.7" in lines[0]
    entry = _stored(client)["tv-alerts"]
    assert entry == {"auth": "token", "secrets": ["tv-token-0123456789abcdef"],
                     "allowed_ips": ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"]}
    auth = parse_secrets(json.dumps(_stored(client)))["tv-alerts"]
    assert auth.allows("34.212.75.30") and not auth.allows("203.0.113.9")
    ops.run_command(CONFIG, client, "allow", source=SOURCE, allowed_ips="10.0.0.0/8, 192.0.2.1")
    assert _stored(client)[SOURCE] == {"auth": "hmac", "secrets": [OLD], "allowed_ips": ["10.0.0.0/8", "192.0.2.1"]}
    ops.run_command(CONFIG, client, "allow", source="tv-alerts", allowed_ips="any")
    assert "allowed_ips" not in _stored(client)["tv-alerts"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"source": "tv-alerts", "allowed_ips": "not-an-ip"}, "could not read the result"),
    ({"source": "nobody", "allowed_ips": "tradingview"}, "no source 'nobody'"),
    ({"source": "tv-alerts", "allowed_ips": " "}, "--allowed-ips is required"),
])
def test_allow_refuses_bad_addresses_and_unknown_sources_and_changes_nothing(client, kwargs, message):
    _add(client, "tv-token-0123456789abcdef", source="tv-alerts", mode="token")
    before = _stored(client)
    with pytest.raises(ops.SecretsError, match=message):
        ops.run_command(CONFIG, client, "allow", **kwargs)
    assert _stored(client) == before
    with pytest.raises(ops.SecretsError, match="--allowed-ips goes with --action allow only"):
        ops.run_command(CONFIG, client, "list", allowed_ips="tradingview")


def test_object_entries_keep_their_mode_and_allowed_ips(client):
    document = {"tv-alerts": {"auth": "token", "secrets": ["tv-token-0123456789abcdef"],
                              "allowed_ips": ["52.89.214.238"]}, SOURCE: OLD}
    client.put_secret_value(SecretId=NAME, SecretString=json.dumps(document))
    _add(client, "tv-token-fedcba9876543210", source="tv-alerts")
    entry = _stored(client)["tv-alerts"]
    assert entry == {"auth": "token", "allowed_ips": ["52.89.214.238"],
                     "secrets": ["tv-token-fedcba9876543210", "tv-token-0123456789abcdef"]}
    ops.run_command(CONFIG, client, "retire", source="tv-alerts")
    assert _stored(client)["tv-alerts"]["secrets"] == ["tv-token-fedcba9876543210"]
    _add(client, NEW)                                      # a string entry becomes a list, newest first
    assert _stored(client)[SOURCE] == [NEW, OLD]
    ops.run_command(CONFIG, client, "remove", source="tv-alerts")
    assert set(_stored(client)) == {SOURCE}


@pytest.mark.parametrize("action, kwargs, expected", [
    ("rotate", {}, "--action must be one of list, add, retire, remove"),
    ("list", {"source": SOURCE}, "--action list takes no --source"),
    ("list", {"generate": True}, "go with --action add only"),
    ("add", {"source": SOURCE}, "give exactly one of --generate or --value-env VARIABLE"),
    ("add", {"source": SOURCE, "generate": True, "value_env": "NEW_SECRET"}, "give exactly one of"),
    ("add", {"source": SOURCE, "value_env": "UNSET_VARIABLE"}, "the variable UNSET_VARIABLE is not set"),
    ("add", {"source": SOURCE, "value_env": "SHORT"}, "must have 16 to 512 characters"),
    ("add", {"source": SOURCE, "value_env": "SPACED"}, "surrounding whitespace"),
    ("add", {"source": SOURCE, "value_env": "NEW_SECRET", "mode": "bearer"}, "--mode must be one of hmac, token"),
    ("add", {"source": SOURCE, "value_env": "NEW_SECRET", "mode": "token"}, "uses hmac; its mode is not changed"),
    ("add", {"source": SOURCE, "value_env": "OLD_SECRET"}, "already has this secret"),
    ("add", {"source": "bad id!", "value_env": "NEW_SECRET"}, "--source: 1-64 letters"),
    ("add", {"value_env": "NEW_SECRET"}, "--source is required"),
    ("retire", {"source": SOURCE}, "has only one secret: nothing to retire"),
    ("retire", {"source": "unknown"}, "no source 'unknown'"),
    ("remove", {"source": "unknown"}, "no source 'unknown'"),
])
def test_misuse_fails_in_one_line_without_a_value_and_changes_nothing(client, action, kwargs, expected):
    _add(client, OLD)
    before = client.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    environ = {"NEW_SECRET": NEW, "OLD_SECRET": OLD, "SHORT": "short-secret", "SPACED": f" {NEW} "}
    with pytest.raises(ops.SecretsError) as raised:
        ops.run_command(CONFIG, client, action, environ=environ, **kwargs)
    message = str(raised.value)
    assert expected in message and "\n" not in message
    assert not any(value in message for value in (OLD, NEW, "short-secret"))
    assert client.describe_secret(SecretId=NAME)["VersionIdsToStages"] == before


def test_a_document_the_webhook_could_not_read_is_refused(client):
    client.put_secret_value(SecretId=NAME, SecretString=json.dumps({SOURCE: [OLD] * 10}))
    with pytest.raises(ops.SecretsError, match="retire the old ones first"):
        _add(client, NEW)
    client.put_secret_value(SecretId=NAME, SecretString="not json " + OLD)
    with pytest.raises(ops.SecretsError) as raised:
        ops.run_command(CONFIG, client, "list")
    assert "is not a JSON document" in str(raised.value) and OLD not in str(raised.value)


def test_a_change_made_meanwhile_is_reported(client):
    _add(client, OLD)
    stale = ops.read_document(client, NAME)
    client.put_secret_value(SecretId=NAME, SecretString=json.dumps({SOURCE: [OLD], "other": [NEW]}))
    with pytest.raises(ops.SecretsError, match="another change .* landed"):
        ops._write(client, NAME, stale, {SOURCE: [NEW, OLD]})
    assert _stored(client) == {SOURCE: [OLD], "other": [NEW]}


# ---- two operators at once: only a change based on the current version goes live -----------------

def _meanwhile(client: Any, operation: str, change: Any) -> list[str]:
    """Run `change` (another operator's, on their own client) once, right before this client's next
    `operation` call: the interleaving two terminals produce when both edit at the same moment."""
    ran: list[str] = []

    def other_operator(**_: Any) -> None:
        if not ran:
            ran.append(operation)
            change()

    client.meta.events.register(f"before-call.secrets-manager.{operation}", other_operator)
    return ran


@pytest.fixture
def other(moto_endpoint) -> Any:
    """The second operator's own client."""
    return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.mark.parametrize("operation", ["PutSecretValue", "UpdateSecretVersionStage"])
def test_an_add_that_loses_a_race_changes_nothing_and_the_winners_secret_stays(client, other, operation):
    """A adds a generated secret while B adds one: B's landed after A read, so A's change is not live
    (B's token must not vanish), A is told in one line, and A's generated secret is never printed."""
    _add(client, OLD)
    theirs = "b-token-0123456789abcdef"
    ran = _meanwhile(client, operation, lambda: _add(other, theirs))
    with pytest.raises(ops.SecretsError) as raised:
        ops.run_command(CONFIG, client, "add", source=SOURCE, generate=True)
    assert ran == [operation]
    message = str(raised.value)
    assert "another change" in message and "nothing was changed" in message and "\n" not in message
    assert _stored(client) == {SOURCE: [theirs, OLD]}       # what the webhook reads: B's change, whole
    stages = client.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    assert not any("AWSPENDING" in labels for labels in stages.values())  # A's version is not waiting anywhere
    assert parse_secrets(json.dumps(_stored(client)))[SOURCE]


def test_an_add_based_on_the_document_before_a_retire_does_not_revive_the_retired_secret(client, other):
    _add(client, OLD)
    _add(client, NEW)
    ran = _meanwhile(client, "PutSecretValue", lambda: ops.run_command(CONFIG, other, "retire", source=SOURCE))
    with pytest.raises(ops.SecretsError, match="another change .* landed"):
        _add(client, "b-token-0123456789abcdef")
    assert ran == ["PutSecretValue"]
    assert _stored(client) == {SOURCE: [NEW]}                # OLD stays retired


def test_the_first_value_written_by_two_operators_keeps_the_first_and_refuses_the_second(client, other):
    ran = _meanwhile(client, "PutSecretValue", lambda: _add(other, OLD))
    with pytest.raises(ops.SecretsError, match="another change .* landed after this one read version None"):
        _add(client, NEW, source="tv-alerts")
    assert ran == ["PutSecretValue"]
    assert _stored(client) == {SOURCE: [OLD]}


def test_a_change_that_wins_is_current_and_leaves_no_staged_version(client):
    _add(client, OLD)
    lines = _add(client, NEW)
    stages = client.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    current = [version for version, labels in stages.items() if "AWSCURRENT" in labels]
    assert len(current) == 1 and f"version {current[0]}" in lines[0]
    assert _stored(client) == {SOURCE: [NEW, OLD]}
    assert not any("AWSPENDING" in labels for labels in stages.values())


@pytest.mark.parametrize("spec", [",", " , ", "", ",,", "10.0.0.1,", ",192.0.2.1"])
def test_allow_with_an_empty_list_or_item_is_an_error_and_keeps_the_restriction(client, spec):
    """`--allowed-ips "$UNSET,"` must not lift (or narrow) a restriction: only `any` lifts it."""
    _add(client, "tv-token-0123456789abcdef", source="tv-alerts", mode="token")
    ops.run_command(CONFIG, client, "allow", source="tv-alerts", allowed_ips="tradingview")
    before = client.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    with pytest.raises(ops.SecretsError) as raised:
        ops.run_command(CONFIG, client, "allow", source="tv-alerts", allowed_ips=spec)
    assert "--allowed-ips" in str(raised.value) and "\n" not in str(raised.value)
    assert len(_stored(client)["tv-alerts"]["allowed_ips"]) == 4
    assert client.describe_secret(SecretId=NAME)["VersionIdsToStages"] == before


def test_no_secret_resource_is_one_line(moto_endpoint):
    bare = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)
    with pytest.raises(ops.SecretsError, match=f"no secret {NAME}: deploy the storage stack first"):
        ops.run_command(CONFIG, bare, "list")


def test_local_seeding_and_the_relays_source_entry(client):
    version = ops.seed_local_secrets(CONFIG, client)
    seeded = parse_secrets(client.get_secret_value(SecretId=NAME)["SecretString"])
    assert seeded.keys() == {"local-demo", "local-tradingview"}
    assert client.describe_secret(SecretId=NAME)["VersionIdsToStages"][version] == ["AWSCURRENT"]
    assert ops.source_entry(CONFIG, "local-demo", client) == CONFIG.local_webhook_secrets["local-demo"]
    assert ops.source_entry(CONFIG, "unknown", client) is None
    with pytest.raises(ops.SecretsError, match="only an emulated environment"):
        ops.seed_local_secrets(load_config("dev"), client)


# ---- the relay task's setup container (stacks/relay_setup.py, run as `python -c <source>`) ------

def _run_setup(tmp_path, document: str | None, source: str = SOURCE) -> Any:
    import subprocess
    import sys

    import stacks.relay_setup

    # The file's text is the container's program (test_stacks checks the task definition carries it);
    # read here without importing stacks.relay, which would load the cdktf bindings.
    setup_source = Path(stacks.relay_setup.__file__).read_text(encoding="utf-8")
    environ = {"PATH": "/usr/bin:/bin", "RELAY_SOURCE": source, "RELAY_RUN_DIR": str(tmp_path),
               "RELAY_CONFIG": json.dumps({"webhook_url": "https://example.invalid/", "source": source,
                                           "spool": "/var/lib/relay/spool.sqlite", "exchanges": []})}
    if document is not None:
        environ["WEBHOOK_SECRETS_DOCUMENT"] = document
    return subprocess.run([sys.executable, "-c", setup_source], env=environ, capture_output=True, text=True,
                          check=False)


@pytest.mark.parametrize("entry", [NEW, [NEW, OLD],
                                   {"auth": "hmac", "secrets": [NEW, OLD], "allowed_ips": ["10.0.0.0/8"]}])
def test_relay_setup_writes_the_sources_newest_secret_and_the_config(tmp_path, entry):
    import stat

    result = _run_setup(tmp_path, json.dumps({SOURCE: entry, "other-source": ["other-secret-0123456789"]}))
    assert result.returncode == 0, result.stderr
    secret_file = tmp_path / "secret"
    assert secret_file.read_text() == NEW
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    config = json.loads((tmp_path / "relay.json").read_text())
    assert config["secret_file"] == str(secret_file) and config["source"] == SOURCE
    assert "other-secret" not in (tmp_path / "relay.json").read_text()
    assert NEW not in result.stdout + result.stderr and OLD not in result.stdout + result.stderr


@pytest.mark.parametrize("document, expected", [
    (json.dumps({"other": [OLD]}), f"no secret for source '{SOURCE}'"),
    (json.dumps({SOURCE: []}), f"no secret for source '{SOURCE}'"),
    ('{"' + SOURCE + '": ["' + OLD + '"', "JSONDecodeError reading the secrets document"),
    (None, "environment variable 'WEBHOOK_SECRETS_DOCUMENT' is not set"),
])
def test_relay_setup_fails_in_one_line_without_a_secret(tmp_path, document, expected):
    result = _run_setup(tmp_path, document)
    assert result.returncode == 1
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert OLD not in result.stderr and not (tmp_path / "secret").exists()
