"""Invoke tasks: thin wrappers over the project's modules (which the tests cover).

Every option has a default, so `invoke TASK --help` always reaches the task's help; a
required option that is missing fails inside the task in one line. Known failures
(`errors.PipelineError`) end a task with one line and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from invoke import Exit, task

from errors import PipelineError

ENV_HELP = "environment file name (local, dev, staging, prod)"
SUFFIX_HELP = "isolated copy suffix, e.g. pr42"


def one_line_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    """Known failures end a task with one line, never a traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except PipelineError as error:
            raise Exit(f"error: {error}", code=2) from None

    return wrapper


def resolve(env: str | None, suffix: str | None = None, *, default: str | None = None) -> Any:
    """The one place `--env/--suffix` become a validated configuration."""
    from environments.config import ConfigError, load_config

    name = env or default
    if not name:
        raise ConfigError("--env is required (local, dev, staging or prod)")
    configuration = load_config(name).with_suffix(suffix)
    if configuration.is_emulated:
        from delivery.local_session import use_running_endpoint

        use_running_endpoint(os.environ)  # the running `invoke local`, found without an export
    return configuration


def _synthesized(env: str | None, suffix: str | None, default: str | None = None) -> Any:
    from delivery.build import build_all
    from delivery.synth import synth_environment

    configuration = resolve(env, suffix, default=default)
    build_all()
    return configuration, synth_environment(configuration)


@task(help={"env": ENV_HELP, "suffix": SUFFIX_HELP})
@one_line_errors
def config(c, env="local", suffix=None):
    """Print the resolved, validated configuration of an environment."""
    print(json.dumps(resolve(env, suffix).model_dump(mode="json"), indent=2))


@task(help={"host": "build for this machine (local runs) instead of Lambda arm64"})
@one_line_errors
def build(c, host=False):
    """Build one reproducible zip per function under build/dist/."""
    from delivery.build import LAMBDA_ARM64, build_all, host_platform

    for built in build_all(host_platform() if host else LAMBDA_ARM64).values():
        print(f"{built.function:18} {built.size:>10,} bytes  sha256={built.sha256_base64}  {built.path}")


@task(help={"env": ENV_HELP, "suffix": SUFFIX_HELP})
@one_line_errors
def synth(c, env="local", suffix=None):
    """Write the Terraform JSON of every stack of an environment."""
    _, app = _synthesized(env, suffix)
    for stack in app.stacks:
        print(f"{stack.name:24} {stack.directory}")


@task(help={"env": ENV_HELP, "suffix": SUFFIX_HELP})
@one_line_errors
def validate(c, env="local", suffix=None):
    """terraform validate every synthesized stack of an environment (offline mirror when present)."""
    from delivery.terraform import validate_app

    _, app = _synthesized(env, suffix)
    for line in validate_app(app):
        print(line)


@task(help={"env": ENV_HELP, "suffix": SUFFIX_HELP})
@one_line_errors
def checkov(c, env="local", suffix=None):
    """Run checkov on the synthesized stacks; fail on any finding without a written skip."""
    from delivery.checkov import check_app

    _, app = _synthesized(env, suffix)
    for line in check_app(app):
        print(line)


@task(help={"thorough": "long property-based runs (10,000 examples)", "k": "pytest -k expression",
            "quick": "skip nothing, but run benchmarks and property tests with few examples"})
def test(c, thorough=False, k=None, quick=False):
    """Lint (ruff), type-check (mypy), run the unit suite (synth, terraform validate, checkov), then end to end."""
    from delivery.build import LAMBDA_ARM64, build_all, host_platform

    for command in (f"{sys.executable} -m ruff check .", f"{sys.executable} -m mypy"):
        if c.run(command, warn=True, pty=False).exited:
            raise Exit(f"error: `{command}` failed", code=1)
    build_all(LAMBDA_ARM64)
    build_all(host_platform())
    profile = "thorough" if thorough else ("quick" if quick else "ci")
    selection = f" -k '{k}'" if k else ""
    # One worker per core (pytest-xdist): the unit suite is CPU-bound and its tests share no state
    # but the session's synth, which each worker makes once.
    result = c.run(f"{sys.executable} -m pytest -q -p no:cacheprovider -n auto --durations=10 "
                   f"--hypothesis-profile={profile}{selection} --ignore=tests/e2e tests", warn=True, pty=False)
    if result.exited:
        raise Exit(code=result.exited)
    if not k:
        e2e(c)


@task
@one_line_errors
def demo(c):
    """The whole pipeline on this machine: deploy to the embedded emulator, replay real prices, show results."""
    from demo.demo import run_demo

    run_demo()


@task(help={"target": "embedded (default) or localstack (needs Docker)"})
@one_line_errors
def local(c, target="embedded"):
    """Run the local stack until Ctrl-C, printing the webhook URL, emulator endpoint and dev-only secret."""
    from delivery.local import LocalDeployment, run_until_interrupted

    with LocalDeployment(target=target, echo_function_logs=True) as deployment:
        run_until_interrupted(deployment)


@task(help={"target": "embedded (default, runs in CI) or localstack (needs Docker)"})
@one_line_errors
def e2e(c, target="embedded"):
    """End-to-end scenarios against a terraform-applied local environment."""
    from delivery.local import require_target

    require_target(target)
    result = c.run(f"{sys.executable} -m pytest -q -s -p no:cacheprovider --durations=0 tests/e2e",
                   env={"E2E_TARGET": target}, warn=True, pty=False)
    if result.exited:
        raise Exit(code=result.exited)


@task(help={"env": ENV_HELP, "suffix": SUFFIX_HELP})
@one_line_errors
def plan(c, env=None, suffix=None):
    """Check the credentials, then build, synth and `terraform plan` every stack (nothing is applied)."""
    from delivery.deployer import check_credentials
    from delivery.deployer import deploy as run_deploy

    print(check_credentials(resolve(env, suffix), os.environ))
    configuration, app = _synthesized(env, suffix)
    run_deploy(configuration, app, dict(os.environ), plan_only=True)


@task(help={"env": ENV_HELP, "stack": "only this stack (storage or pipeline)", "suffix": SUFFIX_HELP,
            "auto_approve": "skip the typed confirmation (prod)", "dry_run": "print the commands, run nothing"})
@one_line_errors
def deploy(c, env=None, stack=None, auto_approve=False, dry_run=False, suffix=None):
    """Check the credentials, build, synth, then terraform init/plan/apply each stack in dependency order."""
    from delivery.deployer import check_credentials
    from delivery.deployer import deploy as run_deploy

    if not dry_run:
        print(check_credentials(resolve(env, suffix), os.environ))
    configuration, app = _synthesized(env, suffix)
    run_deploy(configuration, app, dict(os.environ), stack=stack, auto_approve=auto_approve, dry_run=dry_run)


@task(help={"env": ENV_HELP, "auto_approve": "skip the typed confirmation (prod)",
            "dry_run": "print the commands, run nothing", "suffix": SUFFIX_HELP,
            "skip_backup": "where the environment backs its tables up first (prod): destroy without a backup, "
                           "after typing the environment's name"})
@one_line_errors
def destroy(c, env=None, auto_approve=False, dry_run=False, suffix=None, skip_backup=False):
    """Destroy every stack in reverse dependency order; prod's tables are backed up first."""
    from delivery.deployer import check_credentials
    from delivery.deployer import destroy as run_destroy

    if not dry_run:
        print(check_credentials(resolve(env, suffix), os.environ))
    configuration, app = _synthesized(env, suffix)
    run_destroy(configuration, app, dict(os.environ), auto_approve=auto_approve, dry_run=dry_run,
                skip_backup=skip_backup)


@task(help={"env": ENV_HELP, "suffix": SUFFIX_HELP})
@one_line_errors
def outputs(c, env=None, suffix=None):
    """Collect every stack's outputs into build/outputs/<env>-<suffix>.json and print them."""
    from delivery.deployer import collect_outputs

    configuration, app = _synthesized(env, suffix)
    print(collect_outputs(configuration, app, dict(os.environ)).read_text())


@task(name="drain-dlq", help={"env": ENV_HELP, "queue": "webhook or enricher (required)", "suffix": SUFFIX_HELP,
                              "dry_run": "show what is in the queue, change nothing", "max": "at most N messages",
                              "symbols": "comma-separated symbols of a range the stream no longer holds "
                              "(reads only their partitions)",
                              "scan_table": "for such a range with unknown symbols, read the whole table "
                              "(its cost is printed first)",
                              "set_aside": "comma-separated poison items (SYMBOL/KEY as the report names them) "
                              "or message ids: recorded under build/drain/ and taken out of the queue"})
@one_line_errors
def drain_dlq(c, env=None, queue=None, dry_run=False, max=None, suffix=None, symbols=None, scan_table=False,
              set_aside=None):
    """Re-drive a dead-letter queue: survey first, then re-process with a progress bar; exit 1 if anything is left."""
    from delivery.deployer import read_outputs
    from ops.drain import DrainError, require_queue
    from ops.drain_cli import exit_code, run_drain

    configuration = resolve(env, suffix)
    require_queue(queue)
    if max is not None and not str(max).isdigit():
        raise DrainError(f"--max must be a whole number (got {max!r})")
    names = [name.strip() for name in (symbols or "").split(",") if name.strip()]
    aside = {name.strip() for name in (set_aside or "").split(",") if name.strip()}
    report = run_drain(configuration, read_outputs(configuration), queue, dry_run=dry_run,
                       max_messages=int(max) if max else None, symbols=names, scan_table=scan_table,
                       set_aside=aside)
    if exit_code(report, dry_run):
        raise Exit(code=1)


@task(help={"env": ENV_HELP + "; local needs AWS_ENDPOINT_URL set to the running emulator", "suffix": SUFFIX_HELP,
            "symbols": "comma-separated symbols (BTC-USD,ETH-USD); default: every symbol of the candle registry",
            "yes": "write without asking (the cost line is still printed first)",
            "volume_24h_sources": "comma-separated sources whose stored `volume` is the exchange's rolling 24 h "
                                  "figure (the relay's ticker channel): moved to volume_24h; default: none"})
@one_line_errors
def rebuild(c, env=None, suffix=None, symbols=None, yes=False, volume_24h_sources=None):
    """Upgrade stored data to venues: each venue's indicators, its candles and the composite, rebuilt from the
    stored ticks (cost printed first, resumable, idempotent); see docs/operations.md."""
    from delivery.deployer import read_outputs
    from ops.rebuild_cli import run_rebuild, split_names

    configuration = resolve(env, suffix)
    if run_rebuild(configuration, read_outputs(configuration), split_names(symbols), yes=yes,
                   volume_24h_sources=split_names(volume_24h_sources)) is None:
        raise Exit(code=1)


@task(help={"env": ENV_HELP + "; local needs a running `invoke local`", "suffix": SUFFIX_HELP,
            "exchange": "binance, coinbase or kraken", "symbols": "comma-separated, as the exchange writes them "
            "(BTCUSDT / BTC-USD / BTC/USD)", "ws_url": "override the exchange's websocket URL",
            "config": "JSON file listing several exchanges (see relay/README.md); --source and --spool override "
            "its values, --exchange/--symbols/--ws-url cannot be combined with its exchanges, its webhook_url "
            "must be the environment's",
            "source": "the relay's HMAC source id in the webhook secrets (default for local: its dev HMAC source)",
            "spool": "spool file (default build/relay/<env>-<suffix>.sqlite, its directory created)",
            "channel": "trade (default: each trade's quantity, aggregated per second) or ticker"})
@one_line_errors
def relay(c, env=None, exchange=None, symbols=None, ws_url=None, config=None, source=None, spool=None, suffix=None,
          channel=None):
    """Forward exchange trades (or tickers) to the webhook in signed batches, spooled on disk (nothing lost)."""
    from delivery.deployer import read_outputs
    from senders.relay import relay_settings, run_relay

    configuration = resolve(env, suffix)
    outputs = None if configuration.is_emulated else read_outputs(configuration)
    data, secret_env = relay_settings(configuration, outputs, lambda name: _secrets_entry(configuration, name),
                                      source=source, exchange=exchange, symbols=symbols, ws_url=ws_url,
                                      config_file=config, spool=spool, channel=channel)
    raise Exit(code=run_relay(data, secret_env))


def _secrets_entry(configuration: Any, source: str) -> Any:
    """The source's entry in the environment's webhook secrets (mode and secrets), or None."""
    from ops.secrets import source_entry

    return source_entry(configuration, source)


@task(help={"env": ENV_HELP + "; local needs a running `invoke local`", "suffix": SUFFIX_HELP,
            "symbol": "BASE-QUOTE, e.g. BTC-USD (required)", "interval": "1m, 5m, 15m, 1h, 4h or 1d",
            "from_": "start (inclusive): epoch ms or ISO-8601", "to": "end (exclusive): epoch ms or ISO-8601",
            "format": "table, csv or json", "chart": "also write a candlestick PNG to this path",
            "venue": "one venue's candles (binance, coinbase, kraken, ...); default: the composite"})
@one_line_errors
def prices(c, env="local", symbol=None, interval="1h", from_=None, to=None, format="table", chart=None,
           suffix=None, venue=None):
    """Read candles (one venue's, or the composite's) through the environment's price API with the
    Python client: a table, CSV/JSON or a chart."""
    from delivery.deployer import read_outputs
    from delivery.local_session import read_running_local
    from ops.prices import PricesError, client_for, read_candles, show

    configuration = resolve(env, suffix)
    if not symbol:
        raise PricesError("--symbol is required (e.g. BTC-USD)")
    client = client_for(configuration, None if configuration.is_emulated else read_outputs(configuration),
                        read_running_local() if configuration.is_emulated else None)
    show(read_candles(client, symbol, interval, from_, to, venue), symbol, interval, format, chart, venue=venue)


@task(help={"env": ENV_HELP, "suffix": SUFFIX_HELP, "action": "list (default), add, retire, remove or allow",
            "source": "webhook source id (add, retire, remove)",
            "generate": "add: generate a random secret and print it once",
            "value_env": "add: read the new secret from this environment variable (never the command line)",
            "mode": "add, for a new source: hmac (default) or token",
            "allowed_ips": "allow: tradingview (its four published IPs), any (no restriction), "
                           "or IPs/networks separated by commas"})
@one_line_errors
def secrets(c, env=None, action="list", source=None, generate=False, value_env=None, mode=None, allowed_ips=None,
            suffix=None):
    """Webhook secrets in Secrets Manager: list sources (no values), add a secret (old ones stay valid),
    retire the old ones, remove a source, or restrict a source to the addresses it sends from (allow)."""
    from ops.secrets import run_command, secretsmanager_client

    configuration = resolve(env, suffix)
    for line in run_command(configuration, secretsmanager_client(configuration, os.environ), action,
                            source=source, generate=generate, value_env=value_env, mode=mode,
                            allowed_ips=allowed_ips):
        print(line)


@task(help={"quick": "small counts: proves the benchmarks still run (CI)"})
@one_line_errors
def bench(c, quick=False):
    """Measure handler throughput, DynamoDB requests per update, import time, zip size and end-to-end latency."""
    from evidence.reports import bench_report

    bench_report(quick=quick)


@task(name="cost", help={"updates_per_day": "price updates per day",
                         "batch_size": "updates per webhook request (default: the sender's)",
                         "symbols": "distinct symbols per request (default: the sender's)",
                         "sender": "default (batches of 100 over 20 symbols), tradingview (one update per request) "
                                   "or relay (batches of 100 over 20 symbols, plus the relay's Fargate task)",
                         "month": "which month's storage to price (ticks grow without a retention)",
                         "tick_retention_days": "days a tick is kept (TTL); default: kept forever",
                         "venues": "venues per symbol (default: the sender's; 3 except tradingview)"})
@one_line_errors
def cost(c, updates_per_day=1_000_000, batch_size=None, symbols=None, sender="default", month=1,
         tick_retention_days=None, venues=None):
    """Monthly AWS cost estimate (us-east-1) from the measured figures in results/bench.json."""
    from evidence.reports import cost_report

    cost_report(int(updates_per_day), int(batch_size) if batch_size else None, int(symbols) if symbols else None,
                sender, int(month), int(tick_retention_days) if tick_retention_days else None,
                int(venues) if venues else None)
