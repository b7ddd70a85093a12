"""`invoke relay`'s launcher (senders/relay.py) without a running stack: local discovery from
a running-state file as `invoke local` writes it, the environment's secrets through a fake
lookup, and every setup failure as one line (RelaySetupError or NoLocalSession: PipelineErrors, which the
task prints in one line, never a traceback)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import delivery.local_session as local_session
import senders.relay as launcher
from delivery.local_session import NoLocalSession, read_running_local, write_running_local
from environments.config import load_config
from errors import PipelineError
from senders.relay import RelaySetupError, relay_settings, run_relay

ROOT = Path(__file__).resolve().parent.parent
LOCAL = load_config("local")
PROD = load_config("prod")
WEBHOOK = "http://127.0.0.1:45678/"
PROD_WEBHOOK = "https://abc.lambda-url.us-east-1.on.aws/"
HMAC_SECRET = "prod-relay-secret-0123456789"


@pytest.fixture
def running(tmp_path, monkeypatch):
    """A running `invoke local` as the relay sees it: build/local/running.json, in tmp_path;
    the default spool directory (build/relay) is in tmp_path too, and does not exist yet."""
    path = tmp_path / "local" / "running.json"
    monkeypatch.setattr(local_session, "RUNNING_LOCAL", path)
    monkeypatch.setattr(launcher, "SPOOL_DIR", tmp_path / "relay")
    # The format delivery/local.py writes when its stack is up (the same function).
    write_running_local(WEBHOOK, "http://127.0.0.1:4566", "http://127.0.0.1:45679/", path=path)
    return path


@pytest.fixture
def spool_dir(tmp_path, monkeypatch):
    directory = tmp_path / "relay"
    monkeypatch.setattr(launcher, "SPOOL_DIR", directory)
    return directory


def settings(config=LOCAL, outputs=None, lookup=None, **options):
    defaults = {"source": None, "exchange": None, "symbols": None, "ws_url": None, "config_file": None,
                "spool": None}
    return relay_settings(config, outputs, lookup or (lambda source: None), **{**defaults, **options})


def prod_lookup(document):
    """What the task's lookup returns: the source's entry in the secrets document, or None."""
    return lambda source: document.get(source)


def relay_config(data, environ):
    from price_relay.config import RelayConfig

    return RelayConfig.from_mapping(data, environ=environ)


# ---- local discovery --------------------------------------------------------------------------

def test_the_running_file_is_read_as_invoke_local_writes_it(running):
    assert json.loads(running.read_text()) == {"webhook_url": WEBHOOK, "endpoint": "http://127.0.0.1:4566",
                                                "price_api_url": "http://127.0.0.1:45679/"}
    assert read_running_local()["webhook_url"] == WEBHOOK


def test_local_relay_signs_with_the_dev_hmac_source_of_the_running_stack(running):
    data, environ = settings(exchange="binance", symbols="BTCUSDT,ETHUSDT")
    source, secret = LOCAL.local_source("hmac")
    assert data["webhook_url"] == WEBHOOK and data["source"] == source
    assert environ == {launcher.SECRET_VARIABLE: secret}
    assert secret not in json.dumps(data)  # the secret travels in the environment mapping only
    config = relay_config(data, environ)
    assert config.exchanges[0].symbols == ("BTCUSDT", "ETHUSDT") and config.secret.reveal() == secret.encode()


def test_no_running_local_stack_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(local_session, "RUNNING_LOCAL", tmp_path / "missing.json")
    with pytest.raises(NoLocalSession, match="start `invoke local`"):
        settings(exchange="binance", symbols="BTCUSDT")


@pytest.mark.parametrize("text", ['{"webhook_u', '["not", "an", "object"]', '{"endpoint": "x"}'])
def test_a_damaged_running_file_is_one_line(running, text):
    running.write_text(text)
    with pytest.raises(NoLocalSession, match="running.json.*restart `invoke local`"):
        settings(exchange="binance", symbols="BTCUSDT")


# ---- 1. the default spool's directory ----------------------------------------------------------

def test_the_default_spool_directory_is_created_on_a_fresh_clone(running, tmp_path):
    assert not (tmp_path / "relay").exists()
    data, environ = settings(exchange="binance", symbols="BTCUSDT")
    assert data["spool"] == str(tmp_path / "relay" / "local-local.sqlite")
    assert (tmp_path / "relay").is_dir()
    assert relay_config(data, environ).spool_path == tmp_path / "relay" / "local-local.sqlite"


def test_an_explicit_spool_in_a_missing_directory_keeps_its_clear_error(running, tmp_path):
    spool = tmp_path / "nowhere" / "relay.sqlite"
    data, environ = settings(exchange="binance", symbols="BTCUSDT", spool=str(spool))
    with pytest.raises(RelaySetupError, match=r"spool: the directory .*nowhere does not exist"):
        run_relay(data, environ)
    assert not spool.parent.exists()


# ---- 2. a bad configuration is one PipelineError line -----------------------------------------

@pytest.mark.parametrize("content, message", [
    (None, "config: cannot read"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
])
def test_a_missing_or_invalid_config_file_is_a_relay_setup_error(running, tmp_path, content, message):
    path = tmp_path / "relay.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RelaySetupError, match=message) as raised:
        settings(config_file=str(path))
    assert isinstance(raised.value, PipelineError)


def test_a_spool_locked_by_another_relay_is_a_relay_setup_error(running, tmp_path):
    spool = tmp_path / "locked.sqlite"
    data, environ = settings(exchange="binance", symbols="BTCUSDT", spool=str(spool))
    fd = os.open(f"{spool}.lock", os.O_RDWR | os.O_CREAT, 0o600)  # what a running relay holds
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RelaySetupError, match="is in use by another relay"):
            run_relay(data, environ)
    finally:
        os.close(fd)


def test_invoke_relay_with_a_missing_config_fails_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "invoke", "relay", "--env", "local", "--config",
                             str(tmp_path / "missing.json")], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and "config: cannot read" in lines[0] and "Traceback" not in result.stderr, result.stderr


# ---- 3. only an HMAC source can sign ----------------------------------------------------------

@pytest.mark.parametrize("entry", [HMAC_SECRET, [HMAC_SECRET, "older-secret-0123456789"],
                                   {"auth": "hmac", "secrets": [HMAC_SECRET]}, {"secrets": [HMAC_SECRET]}])
def test_an_hmac_source_signs_with_its_newest_secret(spool_dir, entry):
    data, environ = settings(PROD, {"webhook_url": PROD_WEBHOOK}, prod_lookup({"binance-relay": entry}),
                             source="binance-relay", exchange="binance", symbols="BTCUSDT")
    assert data["webhook_url"] == PROD_WEBHOOK and data["source"] == "binance-relay"
    assert environ == {launcher.SECRET_VARIABLE: HMAC_SECRET}


def test_a_token_source_is_refused_elsewhere(spool_dir):
    document = {"tradingview": {"auth": "token", "secrets": ["a-token-0123456789"]}}
    with pytest.raises(RelaySetupError, match="'tradingview' is a token source.*HMAC") as raised:
        settings(PROD, {"webhook_url": PROD_WEBHOOK}, prod_lookup(document), source="tradingview",
                 exchange="binance", symbols="BTCUSDT")
    assert "a-token-0123456789" not in str(raised.value)
    assert "--action add --source" in str(raised.value)


def test_a_token_source_is_refused_locally(running):
    token_source, token = LOCAL.local_source("token")
    with pytest.raises(RelaySetupError, match=f"{token_source!r} is a token source") as raised:
        settings(source=token_source, exchange="binance", symbols="BTCUSDT")
    assert token not in str(raised.value)


def test_an_unknown_source_is_one_line(spool_dir):
    with pytest.raises(RelaySetupError, match="no secret for source 'nobody' in prod's secrets store"):
        settings(PROD, {"webhook_url": PROD_WEBHOOK}, prod_lookup({}), source="nobody",
                 exchange="binance", symbols="BTCUSDT")


def test_a_secret_pasted_as_the_source_is_not_repeated(spool_dir):
    pasted = "9f1c2e+/secret=value with spaces"
    with pytest.raises(RelaySetupError, match="--source: 1-64 letters") as raised:
        settings(PROD, {"webhook_url": PROD_WEBHOOK}, prod_lookup({}), source=pasted,
                 exchange="binance", symbols="BTCUSDT")
    assert pasted not in str(raised.value)


def test_an_unreadable_entry_is_one_line_without_its_value(spool_dir):
    document = {"binance-relay": {"auth": "hmac", "secrets": [HMAC_SECRET], "colour": "blue"}}
    with pytest.raises(RelaySetupError, match="binance-relay") as raised:
        settings(PROD, {"webhook_url": PROD_WEBHOOK}, prod_lookup(document), source="binance-relay",
                 exchange="binance", symbols="BTCUSDT")
    assert HMAC_SECRET not in str(raised.value)


@pytest.mark.parametrize("outputs, options, message", [
    (None, {"source": "binance-relay"}, "no webhook_url in the outputs of prod"),
    ({"webhook_url": PROD_WEBHOOK}, {}, "--source is required"),
])
def test_elsewhere_outputs_and_a_source_are_required(spool_dir, outputs, options, message):
    with pytest.raises(RelaySetupError, match=message):
        settings(PROD, outputs, prod_lookup({"binance-relay": HMAC_SECRET}), exchange="binance",
                 symbols="BTCUSDT", **options)


def test_the_tasks_lookup_reads_the_entry_from_the_secrets_store(spool_dir, moto_endpoint, monkeypatch):
    """tasks.py's lookup against the emulator's Secrets Manager: the entry with its mode."""
    import boto3

    import tasks
    from ops import secrets as ops

    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_endpoint)
    client.create_secret(Name=ops.secret_id(PROD), SecretString=json.dumps({
        "binance-relay": [HMAC_SECRET], "tradingview": {"auth": "token", "secrets": ["a-token-0123456789"]}}))
    monkeypatch.setattr(ops, "secretsmanager_client", lambda config, environ: client)

    def lookup(source):
        return tasks._secrets_entry(PROD, source)

    options = {"exchange": "binance", "symbols": "BTCUSDT"}
    _, environ = settings(PROD, {"webhook_url": PROD_WEBHOOK}, lookup, source="binance-relay", **options)
    assert environ == {launcher.SECRET_VARIABLE: HMAC_SECRET}
    with pytest.raises(RelaySetupError, match="is a token source"):
        settings(PROD, {"webhook_url": PROD_WEBHOOK}, lookup, source="tradingview", **options)
    with pytest.raises(RelaySetupError, match="no secret for source 'nobody'"):
        settings(PROD, {"webhook_url": PROD_WEBHOOK}, lookup, source="nobody", **options)


# ---- 4. command line and --config: the price_relay CLI's rule ---------------------------------

def write_config(tmp_path, **data):
    path = tmp_path / "conf" / "relay.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


EXCHANGES = [{"exchange": "kraken", "symbols": ["BTC/USD"]}, {"exchange": "binance", "symbols": ["BTCUSDT"]}]


@pytest.mark.parametrize("option", [{"exchange": "binance"}, {"symbols": "ETHUSDT"},
                                    {"ws_url": "ws://127.0.0.1:9/"},
                                    {"exchange": "binance", "symbols": "ETHUSDT"}])
def test_exchange_options_and_a_files_exchanges_are_a_conflict(spool_dir, tmp_path, option):
    path = write_config(tmp_path, exchanges=EXCHANGES)
    with pytest.raises(RelaySetupError, match="cannot be combined with the config file's exchanges"):
        settings(PROD, {"webhook_url": PROD_WEBHOOK}, prod_lookup({"binance-relay": HMAC_SECRET}),
                 source="binance-relay", config_file=path, **option)


def test_a_file_without_exchanges_takes_them_from_the_command_line(running, tmp_path):
    path = write_config(tmp_path, batch_size=50)
    data, environ = settings(config_file=path, exchange="kraken", symbols="BTC/USD", ws_url="ws://127.0.0.1:9/")
    assert data["exchanges"] == [{"exchange": "kraken", "symbols": ["BTC/USD"], "ws_url": "ws://127.0.0.1:9/"}]
    assert relay_config(data, environ).batch_size == 50


def test_source_and_spool_on_the_command_line_win_over_the_file(spool_dir, tmp_path):
    path = write_config(tmp_path, exchanges=EXCHANGES, source="file-source", spool="file.sqlite")
    document = {"binance-relay": HMAC_SECRET, "file-source": "file-secret-0123456789"}
    data, environ = settings(PROD, {"webhook_url": PROD_WEBHOOK}, prod_lookup(document),
                             source="binance-relay", spool=str(tmp_path / "cli.sqlite"), config_file=path)
    assert data["source"] == "binance-relay" and environ[launcher.SECRET_VARIABLE] == HMAC_SECRET
    assert data["spool"] == str(tmp_path / "cli.sqlite")


def test_the_files_source_and_spool_apply_when_not_given(spool_dir, tmp_path):
    path = write_config(tmp_path, exchanges=EXCHANGES, source="file-source", spool="file.sqlite")
    document = {"file-source": "file-secret-0123456789"}
    data, environ = settings(PROD, {"webhook_url": PROD_WEBHOOK}, prod_lookup(document), config_file=path)
    assert data["source"] == "file-source" and environ[launcher.SECRET_VARIABLE] == "file-secret-0123456789"
    # relative to the file, as `python -m price_relay --config` reads it
    assert data["spool"] == str(tmp_path / "conf" / "file.sqlite")
    assert not spool_dir.exists()  # only the default spool's directory is created
    assert relay_config(data, environ).spool_path == tmp_path / "conf" / "file.sqlite"


def test_a_files_webhook_url_must_be_the_environments(spool_dir, tmp_path):
    lookup = prod_lookup({"binance-relay": HMAC_SECRET})
    same = write_config(tmp_path, exchanges=EXCHANGES, webhook_url=PROD_WEBHOOK)
    data, _ = settings(PROD, {"webhook_url": PROD_WEBHOOK}, lookup, source="binance-relay", config_file=same)
    assert data["webhook_url"] == PROD_WEBHOOK
    other = write_config(tmp_path, exchanges=EXCHANGES, webhook_url="https://elsewhere.example/")
    with pytest.raises(RelaySetupError, match="webhook_url.*differs from prod's webhook"):
        settings(PROD, {"webhook_url": PROD_WEBHOOK}, lookup, source="binance-relay", config_file=other)


def test_the_files_secret_settings_give_way_to_the_environments_secret(spool_dir, tmp_path):
    path = write_config(tmp_path, exchanges=EXCHANGES, secret_file="relay.secret")
    data, environ = settings(PROD, {"webhook_url": PROD_WEBHOOK}, prod_lookup({"binance-relay": HMAC_SECRET}),
                             source="binance-relay", config_file=path)
    assert "secret_file" not in data and data["secret_env"] == launcher.SECRET_VARIABLE
    assert relay_config(data, environ).secret.reveal() == HMAC_SECRET.encode()


def test_neither_exchange_options_nor_a_config_is_one_line(running):
    with pytest.raises(RelaySetupError, match="give --exchange and --symbols, or --config FILE"):
        settings(exchange="binance")


def test_invoke_relay_reads_trades_by_default_and_tickers_on_request(running):
    default, environ = settings(exchange="binance", symbols="BTCUSDT")
    assert relay_config(default, environ).exchanges[0].channel == "trade"
    ticker, environ = settings(exchange="binance", symbols="BTCUSDT", channel="ticker")
    assert ticker["exchanges"] == [{"exchange": "binance", "symbols": ["BTCUSDT"], "channel": "ticker"}]
    assert relay_config(ticker, environ).exchanges[0].channel == "ticker"


def test_invoke_relay_refuses_a_symbol_the_webhook_would_refuse(running):
    data, environ = settings(exchange="binance", symbols="ADAFDUSD")
    with pytest.raises(Exception, match="binance.symbols: 'ADAFDUSD'.*ambiguous"):
        relay_config(data, environ)
