"""Environment files are validated with one-line errors naming the file, the key and what is allowed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from environments.config import ENVIRONMENT_NAMES, ConfigError, load_config
from delivery.paths import ROOT


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


def _write(tmp_path, name, text):
    (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


BASE = "suffix: x1\nbackend:\n  type: s3\n  bucket: my-bucket\n  key_prefix: p\n"


@pytest.mark.parametrize("extra, expected", [
    ("colour: blue\n", "colour: unknown key"),
    ("log_retention_days: 4\n", "log_retention_days: must be one of"),
    ("functions:\n  webhook_processor:\n    memory_mb: 64\n    timeout_seconds: 5\n",
     "functions.webhook_processor.memory_mb: Input should be greater than or equal to 128 (got 64)"),
    ("functions:\n  price_enricher:\n    memory_mb: 512\n    timeout_seconds: 60\n    reserved_concurrency: 0\n",
     "functions.price_enricher.reserved_concurrency"),
    ("local_webhook_secrets:\n  a: [b]\n", "local_webhook_secrets is allowed only in the local environment"),
    ("indicator_windows:\n  sma: [5, 5]\n", "indicator_windows.sma: Value error, windows must be unique"),
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
