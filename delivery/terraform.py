"""Running plain `terraform` (not the archived cdktf CLI) against synthesized stacks."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from delivery.paths import BUILD_DIR
from errors import PipelineError

if TYPE_CHECKING:
    from delivery.synth import SynthesizedApp

MIRROR_CANDIDATES = (Path("/opt/tf-plugins"), Path("/usr/local/share/tf-plugins"), Path("/usr/share/tf-plugins"))


class TerraformError(PipelineError):
    """terraform failed; the message names the stack, the exit code and the last lines."""


def find_provider_mirror() -> Path | None:
    """The offline filesystem mirror of the AWS provider, if this machine has one."""
    configured = os.environ.get("TF_PROVIDER_MIRROR")
    candidates = [Path(configured)] if configured else list(MIRROR_CANDIDATES)
    for path in candidates:
        if (path / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return path
    return None


def write_cli_config(build_dir: Path = BUILD_DIR) -> Path:
    """A CLI config that installs the AWS provider from the offline mirror when there is one.

    The image's TF_CLI_CONFIG_FILE points at a file that does not exist, so we write our own.
    """
    path = build_dir / "terraform" / "cli.tfrc"
    path.parent.mkdir(parents=True, exist_ok=True)
    mirror = find_provider_mirror()
    if mirror is None:
        text = "# no offline provider mirror on this machine: providers come from the registry\n"
    else:
        text = (
            "provider_installation {\n"
            "  filesystem_mirror {\n"
            f'    path    = "{mirror}"\n'
            '    include = ["registry.terraform.io/hashicorp/aws"]\n'
            "  }\n"
            "  direct {\n"
            '    exclude = ["registry.terraform.io/hashicorp/aws"]\n'
            "  }\n"
            "}\n"
        )
    path.write_text(text)
    return path


def terraform_binary() -> str | None:
    return shutil.which("terraform")


@dataclass(frozen=True)
class TerraformResult:
    returncode: int
    output: str

    def last_lines(self, count: int = 15) -> str:
        return "\n".join(self.output.strip().splitlines()[-count:])


def run_terraform(args: list[str], cwd: Path, env: dict[str, str], *, stream: bool = False) -> TerraformResult:
    """Run terraform; with stream=True its output is also shown as it comes."""
    binary = terraform_binary()
    if binary is None:
        raise TerraformError("terraform is not installed (https://developer.hashicorp.com/terraform/install)")
    process = subprocess.Popen([binary, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if stream:
            print(line, end="", flush=True)
    return TerraformResult(process.wait(), "".join(lines))


def base_environment(cli_config: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(cli_config), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    env.update(extra or {})
    return env


def validate_stack(directory: Path, cli_config: Path) -> TerraformResult:
    """`terraform init -backend=false` then `validate`: checks the JSON against the provider schema."""
    env = base_environment(cli_config)
    init = run_terraform(["init", "-backend=false", "-input=false", "-no-color"], directory, env)
    if init.returncode != 0:
        return init
    return run_terraform(["validate", "-no-color"], directory, env)


def validate_app(app: SynthesizedApp) -> list[str]:
    """`terraform validate` every stack; a line per stack, or TerraformError naming the failing one."""
    cli_config = write_cli_config()
    lines = []
    for stack in app.stacks:
        result = validate_stack(stack.directory, cli_config)
        if result.returncode:
            raise TerraformError(f"terraform validate failed in {stack.name}:\n{result.last_lines()}")
        lines.append(f"{stack.name}: {result.last_lines(1)}")
    return lines
