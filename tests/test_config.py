"""Environment files are validated with one-line errors naming the file, the key and what is allowed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from delivery.paths import ROOT
from environments.config import ENVIRONMENT_NAMES, ConfigError, load_config


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
def test_every_environment_file_is_valid(name):
    config = load_config(name)
    assert config.name == name
    assert config.log_retention_days == 3
    assert config.dlq_retention_seconds == 345600
    assert config.region == "us-east-1"


def test_only_the_local_environment_has_secrets_or_an_emulator():
    assert load_config("local").local_webhook_secrets
    assert load_config("local").is_emulated
    for name in ("dev", "staging", "prod"):
        assert load_config(name).local_webhook_secrets is None and not load_config(name).is_emulated


def test_optional_features_are_off_in_every_environment_file():
    """Tick retention and the relay are opt-in: no committed environment deletes ticks or runs a relay."""
    for name in ENVIRONMENT_NAMES:
        assert load_config(name).tick_retention_days is None
        assert load_config(name).relay is None


def test_prod_and_only_prod_backs_up_before_destroy_and_keeps_its_key_30_days(tmp_path):
    for name in ENVIRONMENT_NAMES:
        config = load_config(name)
        assert config.backup_before_destroy is (name == "prod")
        assert config.key_deletion_window_days == (30 if name == "prod" else 7)
    opted_in = load_config("dev", directory=_write(tmp_path, "dev", BASE + "backup_before_destroy: true\n"))
    assert opted_in.backup_before_destroy and opted_in.key_deletion_window_days == 30
    prod = (ROOT / "environments" / "prod.yaml").read_text().replace("backup_before_destroy: true", "")
    with pytest.raises(ConfigError, match="prod needs backup_before_destroy: true"):
        load_config("prod", directory=_write(tmp_path, "prod", prod))
    with pytest.raises(ConfigError, match="backup_before_destroy: Input should be a valid boolean"):
        load_config("dev", directory=_write(tmp_path, "dev", BASE + "backup_before_destroy: maybe\n"))


def test_a_relay_section_is_read_with_its_defaults(tmp_path):
    relay = load_config("dev", directory=_write(tmp_path, "dev", BASE + RELAY)).relay
    assert relay is not None and relay.source == "binance-relay"
    assert (relay.spot, relay.assign_public_ip, relay.cpu, relay.memory_mb) == (True, True, 256, 512)
    assert [e.exchange for e in relay.exchanges] == ["binance", "kraken"]


def test_tick_retention_and_the_price_api_settings(tmp_path):
    config = load_config("dev", directory=_write(tmp_path, "dev", BASE + "tick_retention_days: 90\n"))
    assert config.tick_retention_days == 90
    api = load_config("dev", directory=_write(tmp_path, "dev", BASE)).functions.price_api
    assert (api.memory_mb, api.timeout_seconds, api.reserved_concurrency) == (256, 15, None)
    assert load_config("prod").functions.price_api.reserved_concurrency == 10


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
def test_the_price_api_outlasts_one_reads_retries(name):
    """A read that keeps timing out exhausts its retries inside the function, so the caller gets
    the API's own error, not the function URL's bare 502 after a Lambda timeout."""
    from functions.price_api import dynamodb

    worst_read = (dynamodb.ATTEMPTS * (dynamodb.CONNECT_TIMEOUT_SECONDS + dynamodb.READ_TIMEOUT_SECONDS)
                  + sum(dynamodb.BASE_DELAY_SECONDS * 2 ** attempt for attempt in range(dynamodb.ATTEMPTS - 1)))
    assert load_config(name).functions.price_api.timeout_seconds > worst_read


def _write(tmp_path, name, text):
    (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


BASE = "suffix: x1\nbackend:\n  type: s3\n  bucket: my-bucket\n  key_prefix: p\n"
RELAY = ("relay:\n  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/price-relay:0.1.0\n"
         "  source: binance-relay\n  vpc_id: vpc-0123456789abcdef0\n  subnet_ids: [subnet-0123456789abcdef0]\n"
         "  memory_mb: 512\n  exchanges:\n    - exchange: binance\n      symbols: [BTCUSDT]\n"
         "    - exchange: kraken\n      symbols: [BTC/USD]\n")


@pytest.mark.parametrize("extra, expected", [
    ("colour: blue\n", "colour: unknown key"),
    ("log_retention_days: 4\n", "log_retention_days: must be one of"),
    ("functions:\n  webhook_processor:\n    memory_mb: 64\n    timeout_seconds: 5\n",
     "functions.webhook_processor.memory_mb: Input should be greater than or equal to 128 (got 64)"),
    ("functions:\n  price_enricher:\n    memory_mb: 512\n    timeout_seconds: 60\n    reserved_concurrency: 0\n",
     "functions.price_enricher.reserved_concurrency"),
    ("local_webhook_secrets:\n  a: [b]\n", "local_webhook_secrets is allowed only in the local environment"),
    ("indicator_windows:\n  sma: [5, 5]\n", "indicator_windows.sma: Value error, windows must be unique"),
    ("tick_retention_days: 0\n", "tick_retention_days: Input should be greater than or equal to 1 (got 0)"),
    ("tick_retention_days: forever\n", "tick_retention_days: Input should be a valid integer"),
    ("functions:\n  price_api:\n    memory_mb: 256\n", "functions.price_api.timeout_seconds: Field required"),
    (RELAY.replace("memory_mb: 512", "memory_mb: 4096"), "relay: Value error, memory_mb 4096 does not fit cpu 256"),
    (RELAY.replace("kraken", "binance"), "relay.exchanges: Value error, each exchange may appear once"),
    (RELAY.replace("exchange: kraken", "exchange: bitstamp"), "relay.exchanges.1.exchange: must be one of"),
    (RELAY.replace("price-relay:0.1.0", "price-relay"), "relay.image: String should match pattern"),
    (RELAY.replace("subnet-0123456789abcdef0", "my-subnet"), "relay.subnet_ids.0: String should match pattern"),
    (RELAY.replace("  source: binance-relay\n", ""), "relay.source: Field required"),
    (RELAY.replace("  subnet_ids: [subnet-0123456789abcdef0]\n", ""), "relay: Value error, vpc_id and subnet_ids go"),
    (RELAY.replace("  vpc_id: vpc-0123456789abcdef0\n  subnet_ids: [subnet-0123456789abcdef0]\n",
                   "  assign_public_ip: false\n"), "relay: Value error, the default VPC's subnets are public"),
])
def test_bad_values_give_one_line_naming_file_and_key(tmp_path, extra, expected):
    directory = _write(tmp_path, "dev", BASE + extra)
    with pytest.raises(ConfigError) as raised:
        load_config("dev", directory=directory)
    message = str(raised.value)
    assert message.startswith("environments/dev.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_backend_kind_is_checked(tmp_path):
    directory = _write(tmp_path, "dev", "suffix: x1\nbackend:\n  type: ftp\n")
    with pytest.raises(ConfigError, match="backend"):
        load_config("dev", directory=directory)


def test_broken_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config("dev", directory=_write(tmp_path, "dev", "suffix: [\n"))
    with pytest.raises(ConfigError, match="no such environment file"):
        load_config("qa", directory=tmp_path)


def test_suffix_copy_is_validated():
    assert load_config("dev").with_suffix("pr42").resource_name("crypto-prices") == "crypto-prices-pr42"
    with pytest.raises(ConfigError, match="suffix"):
        load_config("dev").with_suffix("PR 42!")


def test_a_bad_file_fails_a_task_with_one_line_and_no_traceback(tmp_path):
    bad = ROOT / "environments" / "broken.yaml"
    bad.write_text("suffix: b\nbackend: {type: local}\nnot_a_key: 1\n")
    try:
        result = subprocess.run([sys.executable, "-m", "invoke", "config", "--env", "broken"], cwd=ROOT,
                                capture_output=True, text=True)
    finally:
        bad.unlink()
    assert result.returncode == 2
    assert result.stderr.strip() == "error: environments/broken.yaml: not_a_key: unknown key (got 1)"
    assert "Traceback" not in result.stdout + result.stderr
