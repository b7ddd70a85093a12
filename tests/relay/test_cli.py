"""The command line and the configuration: help, one-line errors with exit code 2, the
config file, and a real process killed and restarted on its spool."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from price_relay import ConfigError, Relay, RelayConfig
from price_relay.cli import build_parser, config_from_args
from tests.relay import frames
from tests.relay.loopback import SECRET, SOURCE, ScriptedExchange, Send, WebhookStandIn, relay_config, run_async, until

OPTIONS = ["--exchange", "--symbols", "--webhook-url", "--source", "--secret-env", "--secret-file", "--spool",
           "--batch-size", "--batch-seconds", "--ws-url", "--silence-seconds", "--spool-max", "--config",
           "--max-connection-seconds", "--log-level", "--no-status", "--channel", "--trade-window-seconds",
           "--set-aside-max"]


def relay_cli(args: list[str], env: dict[str, str], timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "price_relay", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_help_explains_every_option(subprocess_env: dict[str, str]) -> None:
    result = relay_cli(["--help"], subprocess_env)
    assert result.returncode == 0
    for option in OPTIONS:
        assert option in result.stdout
    assert "never taken on the command line" in result.stdout and "RELAY_SECRET" in result.stdout
    for action in build_parser()._actions:
        assert action.help, f"{action.option_strings} has no help"


@pytest.fixture
def good_args(tmp_path: Path) -> list[str]:
    return ["--exchange", "binance", "--symbols", "BTCUSDT,ETHUSDT", "--webhook-url", "https://hook.example/",
            "--source", "relay-1", "--spool", str(tmp_path / "spool.db")]


def replace(args: list[str], option: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(option) + 1] = value
    return out


@pytest.mark.parametrize(("case", "edit", "message"), [
    ("unknown exchange", lambda a: replace(a, "--exchange", "bitstamp"), "invalid choice: 'bitstamp'"),
    ("bad symbol", lambda a: replace(a, "--symbols", "BTC-USD"), "written like BTCUSDT"),
    ("bad URL scheme", lambda a: replace(a, "--webhook-url", "ftp://hook.example/"), "webhook_url: must be"),
    ("not a URL", lambda a: replace(a, "--webhook-url", "hook"), "webhook_url: must be an absolute"),
    ("bad ws URL", lambda a: a + ["--ws-url", "http://127.0.0.1:1/"], "ws_url: must be an absolute ws:// or wss://"),
    ("batch too big", lambda a: a + ["--batch-size", "5000"], "batch_size: must be at most 1000"),
    ("batch zero", lambda a: a + ["--batch-size", "0"], "batch_size: must be a positive integer"),
    ("batch not a number", lambda a: a + ["--batch-size", "many"], "invalid int value"),
    ("spool dir missing", lambda a: replace(a, "--spool", "/nonexistent/dir/spool.db"), "does not exist"),
    ("no symbols", lambda a: a[2:], "--exchange and --symbols are required"),
    ("secret file missing", lambda a: a + ["--secret-file", "/nonexistent/secret"], "secret_file: cannot read"),
    ("bad source", lambda a: replace(a, "--source", "two words"), "source: must be"),
    ("a symbol the webhook refuses", lambda a: replace(a, "--symbols", "ADAFDUSD"), "'ADAFDUSD': the webhook"),
    ("bad channel", lambda a: a + ["--channel", "trades"], "invalid choice: 'trades'"),
    ("bad window", lambda a: a + ["--trade-window-seconds", "0"], "trade_window_seconds: must be a positive"),
])
def test_bad_configuration_exits_2_with_one_line(subprocess_env: dict[str, str], good_args: list[str], case: str,
                                                 edit: Any, message: str) -> None:
    result = relay_cli(edit(good_args), {**subprocess_env, "RELAY_SECRET": SECRET})
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("price-relay: error: ") and message in lines[0], lines


def test_missing_secret_exits_2_naming_the_variable(subprocess_env: dict[str, str], good_args: list[str]) -> None:
    result = relay_cli(good_args, subprocess_env)
    assert result.returncode == 2
    assert result.stderr == "price-relay: error: the webhook secret is missing: set RELAY_SECRET or use --secret-file\n"
    result = relay_cli(good_args + ["--secret-env", "MY_RELAY_KEY"], subprocess_env)
    assert result.returncode == 2 and "set MY_RELAY_KEY" in result.stderr


@pytest.mark.parametrize("extra", [["--secret", "hunter2-typed-here"], ["--secret=hunter2-typed-here"],
                                   ["hunter2-typed-here"]])
def test_a_secret_on_the_command_line_is_refused_and_not_echoed(subprocess_env: dict[str, str],
                                                                 good_args: list[str], extra: list[str]) -> None:
    result = relay_cli(good_args + extra, {**subprocess_env, "RELAY_SECRET": SECRET})
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "unrecognized arguments" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_a_secret_pasted_as_the_variable_name_is_not_echoed(subprocess_env: dict[str, str],
                                                            good_args: list[str]) -> None:
    result = relay_cli(good_args + ["--secret-env", "hunter2_Typed_Here"], subprocess_env)
    assert result.returncode == 2 and "hunter2" not in result.stderr and len(result.stderr.splitlines()) == 1


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_config_file_lists_several_exchanges(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    config_file = write_json(tmp_path / "relay.json", {
        "webhook_url": "https://hook.example/", "source": "relay-1", "secret_file": "secret.txt",
        "spool": "spool.db", "batch_size": 50,
        "exchanges": [{"exchange": "binance", "symbols": ["btcusdt", "ETHUSDT"]},
                      {"exchange": "coinbase", "symbols": ["BTC-USD"], "ws_url": "ws://127.0.0.1:9/"},
                      {"exchange": "kraken", "symbols": ["BTC/USD"]}]})
    args = build_parser().parse_args(["--config", str(config_file), "--batch-seconds", "0.5"])
    config = config_from_args(args, environ={})
    assert [e.exchange for e in config.exchanges] == ["binance", "coinbase", "kraken"]
    assert config.exchange("binance").symbols == ("BTCUSDT", "ETHUSDT")
    assert config.exchange("binance").connection_limit_seconds == 85800
    assert config.exchange("kraken").connection_limit_seconds is None
    assert config.exchange("coinbase").ws_url == "ws://127.0.0.1:9/"
    assert config.spool_path == tmp_path / "spool.db"                 # relative to the config file
    assert (config.batch_size, config.batch_seconds) == (50, 0.5)     # the option overrides the file
    assert config.secret.reveal() == SECRET.encode()
    assert SECRET not in repr(config)


@pytest.mark.parametrize(("content", "message"), [
    ({"secret": "x"}, "secret: is never read from the config file"),
    ({"bogus": 1}, "config: unknown key 'bogus'"),
    ({"exchanges": [{"exchange": "binance", "symbols": ["BTCUSDT"], "extra": 1}]}, "unknown key 'extra'"),
    ({"exchanges": [{"exchange": "binance", "symbols": ["BTCUSDT"]}, {"exchange": "binance", "symbols": ["ETHBTC"]}]},
     "each exchange may be listed once"),
    ({"exchanges": []}, "exchanges: must be a non-empty list"),
    ({"spool_max": -1}, "spool_max: must be a positive integer"),
])
def test_bad_config_files_exit_2_with_one_line(tmp_path: Path, subprocess_env: dict[str, str],
                                               content: dict[str, Any], message: str) -> None:
    data = {"webhook_url": "https://hook.example/", "source": "relay-1", "spool": str(tmp_path / "s.db"),
            "exchanges": [{"exchange": "kraken", "symbols": ["BTC/USD"]}], **content}
    result = relay_cli(["--config", str(write_json(tmp_path / "relay.json", data))],
                       {**subprocess_env, "RELAY_SECRET": SECRET})
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


def test_config_file_that_is_not_json_or_missing(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    for path, message in ((tmp_path / "bad.json", "is not valid JSON"), (tmp_path / "none.json", "cannot read")):
        result = relay_cli(["--config", str(path)], {**subprocess_env, "RELAY_SECRET": SECRET})
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_a_second_relay_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    webhook = WebhookStandIn({SOURCE: [SECRET]})  # never contacted: no ticks

    async def scenario() -> str:
        async with ScriptedExchange([[]]) as server:
            config = relay_config(tmp_path, "binance", server.url, webhook)
            async with Relay(config):
                with pytest.raises(ConfigError) as error:
                    await Relay(config).start()
                return str(error.value)

    assert "is in use by another relay" in run_async(scenario())


def test_relay_config_validates_in_code(tmp_path: Path) -> None:
    from price_relay import ExchangeConfig

    with pytest.raises(ConfigError, match="kraken.symbols: kraken symbols are written like BTC/USD"):
        ExchangeConfig("kraken", ("BTCUSD",))
    with pytest.raises(ConfigError, match="the webhook secret is empty"):
        RelayConfig(exchanges=(ExchangeConfig("kraken", ("BTC/USD",)),), webhook_url="https://h/", source="s",
                    secret="  ", spool_path=tmp_path / "s.db")


def spool_ticks(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]
    except sqlite3.OperationalError:
        return 0   # the relay has not created its tables yet
    finally:
        db.close()


def test_killed_relay_process_resumes_from_its_spool(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """SIGKILL with ticks spooled and the webhook down; the restarted process sends the
    spool oldest first, then new ticks; SIGTERM then stops it cleanly (exit 0)."""
    old = [frames.binance_ticker(i) for i in range(8)]
    new = [frames.binance_ticker(100 + i) for i in range(3)]
    webhook = WebhookStandIn({SOURCE: [SECRET]}).start()
    webhook.stop()  # down, port reserved
    env = {**subprocess_env, "RELAY_SECRET": SECRET}
    spool = tmp_path / "spool.db"

    async def start(config_file: Path, log: Path) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "price_relay", "--config", str(config_file), "--no-status", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=log.open("w"))

    async def scenario() -> int:
        async with ScriptedExchange([[Send(old)], [Send(new)]]) as server:
            config_file = write_json(tmp_path / "relay.json", {
                "webhook_url": webhook.url, "source": SOURCE, "spool": "spool.db", "batch_size": 5,
                "batch_seconds": 0.2, "backoff_base_seconds": 0.02, "backoff_max_seconds": 0.1, "drain_seconds": 2,
                "exchanges": [{"exchange": "binance", "symbols": ["BTCUSDT"], "ws_url": server.url,
                               "channel": "ticker"}]})
            first = await start(config_file, tmp_path / "first.log")
            try:
                await until(lambda: spool_ticks(spool) == 8, timeout=8, what="8 ticks spooled by the first process")
            finally:
                first.kill()
                await first.wait()
            webhook.start()
            second = await start(config_file, tmp_path / "second.log")
            try:
                await until(lambda: len(webhook.stored) == 11, timeout=8, what="spool and new ticks delivered")
            finally:
                second.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(second.wait(), timeout=8)
            return code

    try:
        code = run_async(scenario(), timeout=14)
    finally:
        webhook.stop()
    assert webhook.stored == old + new and webhook.duplicates == 0
    assert code == 0
    lines = [json.loads(line) for line in (tmp_path / "second.log").read_text().splitlines()]
    final = [line for line in lines if line.get("event") == "stop"]
    assert final and final[0]["sent"] == 11 and final[0]["received"] == 3 and final[0]["spooled"] == 0
    assert all(SECRET not in (tmp_path / log).read_text() for log in ("first.log", "second.log"))


def test_status_line_on_a_terminal(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """With stdout on a terminal, rich draws the live counters line."""
    webhook = WebhookStandIn({SOURCE: [SECRET]}).start()
    master, slave = pty.openpty()
    output = bytearray()

    def read_available() -> None:
        while select.select([master], [], [], 0)[0]:
            try:
                output.extend(os.read(master, 65536))
            except OSError:
                return

    async def scenario() -> int:
        async with ScriptedExchange([[Send([frames.binance_ticker(i) for i in range(3)])]]) as server:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "price_relay", "--exchange", "binance", "--symbols", "BTCUSDT",
                "--webhook-url", webhook.url, "--source", SOURCE, "--spool", str(tmp_path / "spool.db"),
                "--ws-url", server.url, "--channel", "ticker", "--batch-size", "3",
                env={**subprocess_env, "RELAY_SECRET": SECRET,
                                                                  "TERM": "xterm", "COLUMNS": "200"},
                stdout=slave, stderr=subprocess.DEVNULL)
            try:
                def shown() -> bool:
                    read_available()
                    return b"sent 3" in output
                await until(shown, timeout=8, what="the status line showing 3 sent")
            finally:
                process.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(process.wait(), timeout=8)
            return code

    try:
        code = run_async(scenario(), timeout=14)
    finally:
        webhook.stop()
        os.close(slave)
        os.close(master)
    assert code == 0
    assert b"binance:up" in output and b"received 3" in output
    assert SECRET.encode() not in output


def test_the_compose_service_runs_this_cli_with_the_secret_from_the_environment() -> None:
    """docker-compose.yml's relay service cannot run here (no Docker engine): its command is
    parsed by this CLI instead, and its secret must come from the environment."""
    import shlex

    import yaml

    from price_relay.cli import build_parser, config_from_args

    root = Path(__file__).resolve().parents[2]
    service = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]["relay"]
    shell, flag, script = shlex.split(service["command"])
    assert (shell, flag) == ("sh", "-c")
    command = shlex.split(script.split("&&", 1)[1])
    assert command[:4] == ["exec", "python", "-m", "price_relay"]
    assert not any("secret" in part.lower() for part in command)
    assert any(item.startswith("RELAY_SECRET=${RELAY_SECRET:?") for item in service["environment"])
    config = Path(root / "build" / "compose-relay.json")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('{"exchanges": [{"exchange": "binance", "symbols": ["BTCUSDT"]}], '
                      '"webhook_url": "http://127.0.0.1:9/", "source": "relay"}')
    arguments = [config.as_posix() if part == "/config/relay.json" else part for part in command[4:]]
    arguments = ["/tmp/compose-spool.sqlite" if part == "/spool/relay.sqlite" else part for part in arguments]
    relay_config = config_from_args(build_parser().parse_args(arguments), {"RELAY_SECRET": "compose-secret"})
    assert relay_config.exchanges[0].exchange == "binance" and relay_config.source == "relay"
