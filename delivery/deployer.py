"""Deploy orchestration with plain terraform, stack by stack in dependency order.

init → plan -out → plan summary → apply of the saved plan, storage before pipeline;
destroy in reverse. The first failure stops everything: dependent stacks never run.

No secret goes through terraform: the webhook secrets live in Secrets Manager and are set
with `invoke secrets` (ops/secrets.py), so a deploy needs no secret in its environment.
Saved plan files are deleted as soon as they are applied (or the run stops): a plan holds
every attribute of every resource, and nothing needs it afterwards.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
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
    return BUILD_DIR / "outputs" / f"{config.name}-{config.suffix}.json"


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
    try:
        answer = confirm(f"{action} {config.name}: type the environment name to continue: ")
    except EOFError:
        answer = ""
    if answer.strip() != config.name:
        raise Aborted(f"{action} of {config.name} not confirmed; nothing was run")


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
            dry_run: bool = False, confirm: Confirm = input, runner: Runner | None = None,
            echo: Callable[[str], None] = print) -> None:
    """Destroy every stack in reverse dependency order (pipeline before storage)."""
    deployer = make_deployer(config, app, environ, runner=runner, echo=echo)
    steps = deployer.destroy_steps()
    if dry_run:
        for line in deployer.describe(steps):
            echo(line)
        return
    _confirm_prod(config, "destroy", auto_approve, confirm)
    deployer.run_steps(steps)
    outputs_file(config).unlink(missing_ok=True)


def collect_outputs(config: EnvironmentConfig, app: SynthesizedApp, environ: dict[str, str], *,
                    runner: Runner | None = None) -> Path:
    deployer = make_deployer(config, app, environ, runner=runner, echo=lambda _: None)
    for stack in app.stacks:
        deployer.run_checked(stack, *INIT_ARGS)
    return write_outputs(config, deployer.outputs())
