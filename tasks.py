"""Invoke tasks: thin wrappers over the project's modules (which the tests cover)."""

from __future__ import annotations

import functools
import json
import os
import sys

from invoke import Exit, task

from environments.config import ConfigError, load_config
from tooling.build import BuildError

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def one_line_errors(function):
    """Known failures end a task with one line, never a traceback."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from tooling.checkov import CheckovError
        from tooling.terraform import TerraformError

        try:
            return function(*args, **kwargs)
        except (ConfigError, BuildError, TerraformError, CheckovError) as error:
            raise Exit(f"error: {error}", code=2) from None

    return wrapper


@task(help={"env": "environment file name (local, dev, staging, prod)", "suffix": "isolated copy suffix"})
@one_line_errors
def config(c, env="local", suffix=None):
    """Print the resolved, validated configuration of an environment."""
    print(json.dumps(load_config(env).with_suffix(suffix).model_dump(mode="json"), indent=2))


@task(help={"host": "build for this machine (local runs) instead of Lambda arm64"})
@one_line_errors
def build(c, host=False):
    """Build one reproducible zip per function under build/dist/."""
    from tooling.build import LAMBDA_ARM64, build_all, host_platform

    for built in build_all(host_platform() if host else LAMBDA_ARM64).values():
        print(f"{built.function:18} {built.size:>10,} bytes  sha256={built.sha256_base64}  {built.path}")


@task(help={"env": "environment", "suffix": "isolated copy suffix, e.g. pr42"})
@one_line_errors
def synth(c, env="local", suffix=None):
    """Write the Terraform JSON of every stack of an environment."""
    from tooling.build import build_all
    from tooling.synth import synth_environment

    configuration = load_config(env).with_suffix(suffix)
    build_all()
    app = synth_environment(configuration)
    for stack in app.stacks:
        print(f"{stack.name:24} {stack.directory}")


@task(help={"env": "environment"})
@one_line_errors
def validate(c, env="local"):
    """terraform validate every synthesized stack of an environment (offline mirror when present)."""
    from tooling.build import build_all
    from tooling.synth import synth_environment
    from tooling.terraform import validate_stack, write_cli_config

    build_all()
    app = synth_environment(load_config(env))
    cli_config = write_cli_config()
    for stack in app.stacks:
        result = validate_stack(stack.directory, cli_config)
        print(f"{stack.name}: {result.last_lines(1)}")
        if result.returncode:
            raise Exit(f"error: terraform validate failed in {stack.name}:\n{result.last_lines()}", code=1)


@task(help={"env": "environment"})
@one_line_errors
def checkov(c, env="local"):
    """Run checkov on the synthesized stacks; fail on any finding without a written skip."""
    from tooling.build import build_all
    from tooling.checkov import run_checkov
    from tooling.synth import synth_environment

    build_all()
    app = synth_environment(load_config(env))
    findings = run_checkov([stack.directory / "cdk.tf.json" for stack in app.stacks])
    open_findings = [f for f in findings if not f.skip_reason]
    for finding in findings:
        state = "skipped: " + finding.skip_reason if finding.skip_reason else "FAILED"
        print(f"{finding.check_id:12} {finding.resource:32} {state}")
    if open_findings:
        raise Exit(f"error: {len(open_findings)} checkov finding(s) without a written skip", code=1)


@task(help={"thorough": "long property-based runs (10,000 examples)", "k": "pytest -k expression",
            "quick": "skip nothing, but run benchmarks and property tests with few examples"})
def test(c, thorough=False, k=None, quick=False):
    """Run the whole test suite (unit, synth, terraform validate, checkov), then the end-to-end suite."""
    from tooling.build import LAMBDA_ARM64, build_all, host_platform

    build_all(LAMBDA_ARM64)
    build_all(host_platform())
    profile = "thorough" if thorough else ("quick" if quick else "ci")
    selection = f" -k '{k}'" if k else ""
    result = c.run(f"{sys.executable} -m pytest -q -p no:cacheprovider --hypothesis-profile={profile}{selection} "
                   "--ignore=tests/e2e tests", warn=True, pty=False)
    if result.exited:
        raise Exit(code=result.exited)
    if not k:
        e2e(c)


@task
@one_line_errors
def demo(c):
    """The whole pipeline on this machine: deploy to the embedded emulator, replay real prices, show results."""
    from tooling.demo import run_demo

    result = run_demo()
    expected = result.sent
    if sum(len(v) for v in result.items.values()) != expected or result.notifications != expected:
        raise Exit(f"error: {expected} updates sent but not all were stored, enriched and announced", code=1)


@task(help={"target": "embedded (default) or localstack (needs Docker)"})
@one_line_errors
def local(c, target="embedded"):
    """Run the local stack until Ctrl-C, printing the webhook URL, emulator endpoint and dev-only secret."""
    import time

    from tooling.local.stack import LocalStack

    with LocalStack(target=target, echo_function_logs=True) as stack:
        info = stack.info
        print(f"\nwebhook URL:        {info.webhook_url}\nemulator endpoint:  {info.endpoint}\n"
              f"signing source:     {info.secret_source}\nlocal dev secret:   {info.secret}  (dev-only)\n"
              f"table:              {info.outputs['table_name']}\n\nCtrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping")


@task(help={"target": "embedded (default, runs in CI) or localstack (needs Docker)"})
@one_line_errors
def e2e(c, target="embedded"):
    """End-to-end scenarios against a terraform-applied local environment."""
    from tooling.local.stack import TARGETS, TargetUnavailable, docker_available

    if target not in TARGETS:
        raise Exit(f"error: unknown target {target!r}; expected one of {', '.join(TARGETS)}", code=2)
    if target == "localstack" and docker_available():
        raise TargetUnavailable(f"the localstack target needs Docker: {docker_available()}. "
                                "These machines have no Docker engine; use --target embedded.")
    result = c.run(f"{sys.executable} -m pytest -q -s -p no:cacheprovider tests/e2e",
                   env={"E2E_TARGET": target}, warn=True, pty=False)
    if result.exited:
        raise Exit(code=result.exited)


def _synthesized(env: str, suffix: str | None):
    from tooling.build import build_all
    from tooling.synth import synth_environment

    configuration = load_config(env).with_suffix(suffix)
    build_all()
    return configuration, synth_environment(configuration)


@task(help={"env": "environment", "suffix": "isolated copy suffix"})
@one_line_errors
def plan(c, env, suffix=None):
    """Build, synth and `terraform plan` every stack of an environment (nothing is applied)."""
    from tooling.deployer import deploy as run_deploy

    configuration, app = _synthesized(env, suffix)
    run_deploy(configuration, app, dict(os.environ), plan_only=True)


@task(help={"env": "environment", "stack": "only this stack (storage or pipeline)", "suffix": "isolated copy suffix",
            "auto_approve": "skip the typed confirmation (prod)", "dry_run": "print the commands, run nothing"})
@one_line_errors
def deploy(c, env, stack=None, auto_approve=False, dry_run=False, suffix=None):
    """Build, synth, then terraform init/plan/apply each stack in dependency order."""
    from tooling.deployer import deploy as run_deploy

    configuration, app = _synthesized(env, suffix)
    run_deploy(configuration, app, dict(os.environ), stack=stack, auto_approve=auto_approve, dry_run=dry_run)


@task(help={"env": "environment", "auto_approve": "skip the typed confirmation (prod)",
            "dry_run": "print the commands, run nothing", "suffix": "isolated copy suffix"})
@one_line_errors
def destroy(c, env, auto_approve=False, dry_run=False, suffix=None):
    """Destroy every stack of an environment in reverse dependency order."""
    from tooling.deployer import destroy as run_destroy

    configuration, app = _synthesized(env, suffix)
    run_destroy(configuration, app, dict(os.environ), auto_approve=auto_approve, dry_run=dry_run)


@task(help={"env": "environment", "suffix": "isolated copy suffix"})
@one_line_errors
def outputs(c, env, suffix=None):
    """Collect every stack's outputs into build/outputs/<env>-<suffix>.json and print them."""
    from tooling.deployer import collect_outputs

    configuration, app = _synthesized(env, suffix)
    path = collect_outputs(configuration, app, dict(os.environ))
    print(path.read_text())


@task(name="drain-dlq", help={"env": "environment", "queue": "webhook or enricher",
                              "dry_run": "show what is in the queue, change nothing", "max": "at most N messages"})
@one_line_errors
def drain_dlq(c, env, queue, dry_run=False, max=None):  # noqa: A002 - the option is --max
    """Re-drive a dead-letter queue: survey first, then re-process with a progress bar; exit 1 if anything is left."""
    from rich.console import Console

    from tooling.deployer import read_outputs
    from tooling.drain_cli import run_drain

    configuration = load_config(env)
    report = run_drain(configuration, read_outputs(configuration), queue, dry_run=dry_run,
                       max_messages=int(max) if max else None, console=Console())
    if not report.ok or (dry_run and report.survey.count):
        raise Exit(code=1)


@task(help={"quick": "small counts: proves the benchmarks still run (CI)"})
@one_line_errors
def bench(c, quick=False):
    """Measure handler throughput, DynamoDB requests per update, import time, zip size and end-to-end latency."""
    from dataclasses import asdict

    from rich.console import Console

    from tooling.bench import run_benchmarks, save
    from tooling.reports import bench_table

    console = Console(width=None if Console().is_terminal else 160)
    results = run_benchmarks(quick=quick, echo=lambda line: console.print(f"[dim]{line}[/dim]"))
    path = save(results)
    for table in bench_table(asdict(results)):
        console.print(table)
    console.print(f"written to {path}")


@task(name="cost", help={"updates_per_day": "price updates per day", "batch_size": "updates per webhook request",
                         "symbols": "distinct symbols per request"})
@one_line_errors
def cost(c, updates_per_day=1_000_000, batch_size=100, symbols=20):
    """Monthly AWS cost estimate (us-east-1) from the measured figures in results/bench.json."""
    from rich.console import Console

    from tooling.bench import load
    from tooling.cost import estimate, summary
    from tooling.reports import cost_table

    try:
        measured = load()
    except FileNotFoundError as error:
        raise Exit(f"error: {error}", code=2) from None
    lines = estimate(measured, int(updates_per_day), int(batch_size), int(symbols))
    Console(width=None if Console().is_terminal else 160).print(
        cost_table(lines, summary(lines, int(updates_per_day)), int(updates_per_day)))
