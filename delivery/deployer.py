"""Deploy orchestration with plain terraform, stack by stack in dependency order.

init → plan -out → plan summary → apply of the saved plan, storage before pipeline;
destroy in reverse. The first failure stops everything: dependent stacks never run.

No secret goes through terraform: the webhook secrets live in Secrets Manager and are set
with `invoke secrets` (ops/secrets.py), so a deploy needs no secret in its environment.
Saved plan files are deleted as soon as they are applied (or the run stops): a plan holds
every attribute of every resource, and nothing needs it afterwards.

Before anything is built, the tasks check that the target answers (`check_credentials`): an
AWS account through STS, or the running emulator. Where the environment says
`backup_before_destroy` (prod), `destroy` first takes an on-demand backup of every table
and waits until each is AVAILABLE (docs/operations-destroy.md says how to restore one).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery.paths import BUILD_DIR
from delivery.synth import SynthesizedApp, SynthesizedStack
from delivery.terraform import TerraformError, TerraformResult, base_environment, run_terraform
from emulator import session
from environments.config import EnvironmentConfig, LocalStateBackend
from errors import PipelineError

PLAN_FILE = "tfplan"
INIT_ARGS = ("init", "-input=false", "-reconfigure", "-no-color")
_PLAN_SUMMARY = re.compile(r"^(Plan: .*|No changes\..*)$", re.MULTILINE)

Runner = Callable[[list[str], Path, dict[str, str]], TerraformResult]


class DeployError(TerraformError):
    """A stack failed; names it, the terraform exit code and the last lines."""

    def __init__(self, stack: str, step: str, result: TerraformResult) -> None:
        super().__init__(f"{stack}: terraform {step} failed with exit code {result.returncode}\n"
                         f"{result.last_lines()}")
        self.stack, self.step, self.returncode = stack, step, result.returncode


@dataclass(frozen=True)
class Step:
    stack: str
    cwd: Path
    args: tuple[str, ...]

    def shell(self) -> str:
        return f"(cd {shlex.quote(str(self.cwd))} && terraform {' '.join(shlex.quote(a) for a in self.args)})"


def deploy_environment(config: EnvironmentConfig, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What terraform gets on top of this process's environment for this deploy: never a secret
    (the webhook secrets are set in Secrets Manager, outside terraform), only e.g. the
    emulator's endpoint and dummy credentials for an emulated environment."""
    return dict(extra or {})


def backend_description(config: EnvironmentConfig, stack: SynthesizedStack) -> str:
    backend = config.backend
    if isinstance(backend, LocalStateBackend):
        return f"local state {backend.directory}/{stack.name}.tfstate"
    lock = "with S3 lockfile" if backend.use_lockfile else "without lock"
    return f"s3://{backend.bucket}/{backend.key_prefix}/{stack.name}.tfstate ({backend.region}, {lock})"


@dataclass
class Deployer:
    config: EnvironmentConfig
    app: SynthesizedApp
    cli_config: Path
    env: dict[str, str] = field(default_factory=dict)
    runner: Runner | None = None
    echo: Callable[[str], None] = print
    stream: bool = False

    def _environment(self) -> dict[str, str]:
        return base_environment(self.cli_config, self.env)

    def run(self, stack: SynthesizedStack, *args: str) -> TerraformResult:
        """One terraform command in the stack's folder; the caller reads the exit code."""
        if self.runner is not None:
            return self.runner(list(args), stack.directory, self._environment())
        return run_terraform(list(args), stack.directory, self._environment(), stream=self.stream)

    def run_checked(self, stack: SynthesizedStack, *args: str) -> TerraformResult:
        """One terraform command that must succeed; a failure names the stack, the code and the last lines."""
        result = self.run(stack, *args)
        if result.returncode != 0:
            raise DeployError(stack.name, args[0], result)
        return result

    def selected(self, only: str | None = None) -> list[SynthesizedStack]:
        stacks = list(self.app.stacks)
        if only:
            names = {s.name for s in stacks}
            wanted = only if only in names else self.config.resource_name(only)
            if wanted not in names:
                raise TerraformError(f"no stack {only!r}; stacks: {', '.join(sorted(names))}")
            stacks = [s for s in stacks if s.name == wanted]
        return stacks

    def deploy_steps(self, only: str | None = None) -> list[Step]:
        steps = []
        for stack in self.selected(only):
            steps += [Step(stack.name, stack.directory, INIT_ARGS),
                      Step(stack.name, stack.directory, ("plan", "-input=false", "-no-color", f"-out={PLAN_FILE}")),
                      Step(stack.name, stack.directory, ("apply", "-input=false", "-no-color", PLAN_FILE))]
        return steps

    def destroy_steps(self) -> list[Step]:
        steps = []
        for stack in reversed(self.app.stacks):
            steps += [Step(stack.name, stack.directory, INIT_ARGS),
                      Step(stack.name, stack.directory, ("destroy", "-input=false", "-no-color", "-auto-approve"))]
        return steps

    def describe(self, steps: list[Step]) -> list[str]:
        """The dry run: exact commands, working directories and backends; no secret values."""
        lines = []
        for stack in {s.stack: s for s in steps}.values():
            synthesized = next(s for s in self.app.stacks if s.name == stack.stack)
            lines.append(f"# {stack.stack}: {backend_description(self.config, synthesized)}")
            lines += [f"  {step.shell()}" for step in steps if step.stack == stack.stack]
        lines.append(f"# environment: TF_CLI_CONFIG_FILE={self.cli_config} {' '.join(sorted(self.env))}".rstrip())
        if any(step.args[0] == "plan" for step in steps):
            lines.append(f"# each {PLAN_FILE} is deleted once applied, or when the run stops")
        return lines

    def remove_plan(self, stack: SynthesizedStack) -> None:
        """Delete the stack's saved plan: it holds every attribute of every resource, and nothing
        reads it once applied."""
        (stack.directory / PLAN_FILE).unlink(missing_ok=True)

    def run_steps(self, steps: list[Step]) -> None:
        """Run the steps in order; the first failure stops the run. Every saved plan of these steps
        is deleted right after its apply, and any left (a failure, a plan-only run) when the run ends."""
        by_name = {s.name: s for s in self.app.stacks}
        planned = [by_name[step.stack] for step in steps if step.args[0] == "plan"]
        try:
            for step in steps:
                stack = by_name[step.stack]
                self.echo(f"==> {step.stack}: terraform {step.args[0]}")
                try:
                    result = self.run_checked(stack, *step.args)
                finally:
                    if step.args[0] == "apply":
                        self.remove_plan(stack)
                if step.args[0] == "plan":
                    summary = _PLAN_SUMMARY.search(result.output)
                    self.echo(f"    {summary.group(1) if summary else 'plan written'}")
                elif step.args[0] in ("apply", "destroy"):
                    self.echo("    " + (result.last_lines(1) or "done"))
        finally:
            for stack in planned:
                self.remove_plan(stack)

    def outputs(self) -> dict[str, Any]:
        """Every stack's outputs in one mapping (cross-stack plumbing left out)."""
        collected: dict[str, Any] = {}
        for stack in self.app.stacks:
            result = self.run_checked(stack, "output", "-json", "-no-color")
            for name, item in json.loads(result.output or "{}").items():
                if not name.startswith("cross-stack-output-"):
                    collected[name] = item["value"]
        return collected


def outputs_file(config: EnvironmentConfig) -> Path:
    return BUILD_DIR / "outputs" / f"{config.deployment_id}.json"


def write_outputs(config: EnvironmentConfig, outputs: dict[str, Any]) -> Path:
    path = outputs_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outputs, indent=2, sort_keys=True))
    return path


def read_outputs(config: EnvironmentConfig) -> dict[str, Any]:
    path = outputs_file(config)
    if not path.is_file():
        raise TerraformError(f"no outputs for {config.name}: run `invoke deploy --env {config.name}` "
                             f"(or `invoke outputs --env {config.name}`) first")
    return json.loads(path.read_text())


class Aborted(PipelineError):
    """The operator did not confirm."""


Confirm = Callable[[str], str]


def _terraform_env(config: EnvironmentConfig, environ: dict[str, str]) -> dict[str, str]:
    """What terraform gets on top of this process's environment: the emulator's, if any."""
    endpoint = config.emulator_endpoint(environ)
    return deploy_environment(config, session.environment(endpoint, config.region) if endpoint else None)


def _confirm_prod(config: EnvironmentConfig, action: str, auto_approve: bool, confirm: Confirm) -> None:
    if config.name != "prod" or auto_approve:
        return
    _typed_name(config, action, confirm)


def _typed_name(config: EnvironmentConfig, action: str, confirm: Confirm, warning: str = "") -> None:
    try:
        answer = confirm(f"{action} {config.name}{warning}: type the environment name to continue: ")
    except EOFError:
        answer = ""
    if answer.strip() != config.name:
        raise Aborted(f"{action} of {config.name} not confirmed; nothing was run")


class CredentialsError(PipelineError):
    """The target cannot be reached or refuses the credentials; one line, said before any build."""


STS_CONFIG = {"connect_timeout": 5, "read_timeout": 10, "retries": {"total_max_attempts": 2}}


def check_credentials(config: EnvironmentConfig, environ: Mapping[str, str], *, client: Any | None = None) -> str:
    """One STS GetCallerIdentity against the environment's target: the AWS account of the default
    credential chain, or the emulator for an emulated environment. Said first, because build and
    synth take most of a minute and terraform's credential failure is a ten-line tail at their end.
    Returns the line that says who is deploying where; raises CredentialsError in one line."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    endpoint = config.emulator_endpoint(environ)
    if client is None:
        settings = Config(**STS_CONFIG)  # type: ignore[arg-type]
        if endpoint:
            client = session.client("sts", endpoint, config.region, config=settings)
        else:
            import boto3

            client = boto3.session.Session(region_name=config.region).client("sts", config=settings)
    try:
        identity = client.get_caller_identity()
    except Exception as error:  # every failure of the SDK is one line; anything else is a bug, raised
        reason = (error.response.get("Error", {}).get("Code") if isinstance(error, ClientError)
                  else type(error).__name__)
        if endpoint:
            raise CredentialsError(f"no AWS emulator answers at {endpoint} ({reason}): start `invoke local` "
                                   f"first, or point AWS_ENDPOINT_URL at a running one; nothing was built") from None
        if isinstance(error, NoCredentialsError):
            raise CredentialsError(f"no AWS credentials for {config.name}: set AWS_PROFILE (and run `aws sso login` "
                                   "if it uses SSO) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; "
                                   "nothing was built") from None
        if isinstance(error, EndpointConnectionError):
            raise CredentialsError(f"cannot reach AWS STS in {config.region} to check the credentials for "
                                   f"{config.name}; nothing was built") from None
        if isinstance(error, ClientError | BotoCoreError):
            raise CredentialsError(f"the AWS credentials for {config.name} do not work ({reason}): refresh them "
                                   "(`aws sso login`, or new keys); nothing was built") from None
        raise
    where = f"the emulator at {endpoint}" if endpoint else f"AWS account {identity.get('Account')}"
    return f"{config.name}: {where} as {identity.get('Arn')}"


# ---- backups before a destroy ------------------------------------------------------------------
BACKUP_WAIT_SECONDS = 1800  # DynamoDB backs a table up in seconds to minutes whatever its size
BACKUP_POLL_SECONDS = 5


class BackupError(PipelineError):
    """A table could not be backed up before a destroy; nothing was destroyed."""


@dataclass(frozen=True)
class TableBackup:
    table: str
    arn: str
    key_arn: str | None  # the KMS key the backup is encrypted with: restoring needs it

    def line(self) -> str:
        key = f", encrypted with {self.key_arn}" if self.key_arn else ""
        return f"    {self.table}: backup {self.arn} AVAILABLE{key}"


def table_names(app: SynthesizedApp) -> list[str]:
    """Every DynamoDB table the synthesized stacks declare, by name (sorted): the stacks own the list."""
    return sorted(str(resource["name"]) for stack in app.stacks
                  for resource in stack.document().get("resource", {}).get("aws_dynamodb_table", {}).values())


def _code(error: Exception) -> str:
    response = getattr(error, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else type(error).__name__


def backup_tables(client: Any, tables: list[str], *, echo: Callable[[str], None] = print,
                  sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                  timeout: float = BACKUP_WAIT_SECONDS) -> list[TableBackup]:
    """An on-demand backup (CreateBackup) of each table that exists, then wait until every one
    is AVAILABLE: only then may the tables go. On-demand backups outlive their table (point-in-time
    recovery does not: it goes with the table). Any failure raises BackupError."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    started: list[tuple[str, str, str | None]] = []
    for table in tables:
        try:
            described = client.describe_table(TableName=table)["Table"]
        except Exception as error:  # noqa: BLE001
            if _code(error) == "ResourceNotFoundException":
                echo(f"    {table}: no such table, nothing to back up")
                continue
            raise BackupError(f"cannot read table {table} to back it up ({_code(error)}); nothing was destroyed; "
                              "`--skip-backup` destroys without a backup (it asks for the name)") from None
        try:
            arn = client.create_backup(TableName=table, BackupName=f"{table}-before-destroy-{stamp}")[
                "BackupDetails"]["BackupArn"]
        except Exception as error:  # noqa: BLE001
            raise BackupError(f"backing up {table} failed ({_code(error)}); nothing was destroyed; "
                              "`--skip-backup` destroys without a backup (it asks for the name)") from None
        started.append((table, arn, (described.get("SSEDescription") or {}).get("KMSMasterKeyArn")))
        echo(f"    {table}: backup {arn} started")
    deadline = clock() + timeout
    waiting = {arn for _, arn, _ in started}
    while waiting:
        for arn in sorted(waiting):
            status = client.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]["BackupStatus"]
            if status == "AVAILABLE":
                waiting.discard(arn)
            elif status != "CREATING":
                raise BackupError(f"backup {arn} is {status}; nothing was destroyed")
        if waiting and clock() >= deadline:
            raise BackupError(f"{len(waiting)} backup(s) not AVAILABLE after {timeout:.0f} s "
                              f"({', '.join(sorted(waiting))}); nothing was destroyed: run destroy again later")
        if waiting:
            sleep(BACKUP_POLL_SECONDS)
    backups = [TableBackup(table, arn, key) for table, arn, key in started]
    for backup in backups:
        echo(backup.line())
    return backups


def make_deployer(config: EnvironmentConfig, app: SynthesizedApp, environ: dict[str, str], *,
                  runner: Runner | None = None, echo: Callable[[str], None] = print,
                  stream: bool = False) -> Deployer:
    from delivery.terraform import write_cli_config

    return Deployer(config, app, write_cli_config(), env=_terraform_env(config, environ), runner=runner,
                    echo=echo, stream=stream)


def deploy(config: EnvironmentConfig, app: SynthesizedApp, environ: dict[str, str], *, stack: str | None = None,
           auto_approve: bool = False, dry_run: bool = False, plan_only: bool = False,
           confirm: Confirm = input, runner: Runner | None = None,
           echo: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Plan and apply every stack (or one) in dependency order; stop at the first failure.

    Prod needs the typed name or auto_approve. No secret is needed: the webhook secrets are
    set in Secrets Manager with `invoke secrets`, before or after the first deploy.
    """
    deployer = make_deployer(config, app, environ, runner=runner, echo=echo)
    steps = deployer.deploy_steps(stack)
    if plan_only:
        steps = [s for s in steps if s.args[0] != "apply"]
    if dry_run:
        for line in deployer.describe(steps):
            echo(line)
        return None
    if not plan_only:
        _confirm_prod(config, "deploy", auto_approve, confirm)
    deployer.run_steps(steps)
    if plan_only:
        return None
    outputs = deployer.outputs()
    echo(f"outputs written to {write_outputs(config, outputs)}")
    return outputs


def destroy(config: EnvironmentConfig, app: SynthesizedApp, environ: dict[str, str], *, auto_approve: bool = False,
            dry_run: bool = False, skip_backup: bool = False, confirm: Confirm = input,
            runner: Runner | None = None, echo: Callable[[str], None] = print, dynamodb: Any | None = None,
            sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic) -> list[TableBackup]:
    """Destroy every stack in reverse dependency order (pipeline before storage).

    Where the environment says `backup_before_destroy` (prod), every table is first backed up
    on demand and each backup waited for until AVAILABLE; a failed backup stops the destroy
    before terraform runs. `skip_backup` destroys without one, only after the operator types
    the environment's name (`auto_approve` does not stand in for it). Returns the backups taken.
    """
    if skip_backup and not config.backup_before_destroy:
        raise Aborted(f"--skip-backup: {config.name} takes no backup before destroy (backup_before_destroy "
                      "is off); nothing was run")
    deployer = make_deployer(config, app, environ, runner=runner, echo=echo)
    steps = deployer.destroy_steps()
    tables = table_names(app) if config.backup_before_destroy and not skip_backup else []
    if dry_run:
        if tables:
            echo(f"# first: an on-demand backup of {', '.join(tables)}, each waited for until AVAILABLE")
        for line in deployer.describe(steps):
            echo(line)
        return []
    if skip_backup:
        _typed_name(config, "destroy", confirm, " WITHOUT backing up its tables")
    else:
        _confirm_prod(config, "destroy", auto_approve, confirm)
    backups: list[TableBackup] = []
    if tables:
        if dynamodb is None:
            dynamodb = session.clients_for(config.emulator_endpoint(environ), config.region, ("dynamodb",))[
                "dynamodb"]
        echo(f"==> backing up {len(tables)} table(s) before the destroy")
        backups = backup_tables(dynamodb, tables, echo=echo, sleep=sleep, clock=clock)
    deployer.run_steps(steps)
    outputs_file(config).unlink(missing_ok=True)
    if backups:
        echo(f"the backups stay; they restore while the KMS key exists ({config.key_deletion_window_days} days "
             "from now unless its deletion is cancelled): docs/operations-destroy.md")
    return backups


def collect_outputs(config: EnvironmentConfig, app: SynthesizedApp, environ: dict[str, str], *,
                    runner: Runner | None = None) -> Path:
    deployer = make_deployer(config, app, environ, runner=runner, echo=lambda _: None)
    for stack in app.stacks:
        deployer.run_checked(stack, *INIT_ARGS)
    return write_outputs(config, deployer.outputs())
