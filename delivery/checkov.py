"""checkov on the synthesized Terraform JSON, in a virtual environment of its own.

checkov's dependencies conflict with cdktf's, so it lives in `.venv-checkov`. It also
ignores inline skip comments in JSON: skips are written by `stacks.checkov_skips`
into each resource's "//" block, with a reason, and filtered here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from delivery.paths import ROOT
from errors import PipelineError

if TYPE_CHECKING:
    from delivery.synth import SynthesizedApp
from stacks.artifacts import CHECKOV_SKIP_KEY

CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = ROOT / ".venv-checkov"


class CheckovError(PipelineError):
    """checkov could not be installed or run."""


@dataclass(frozen=True)
class Finding:
    file: str
    resource: str
    check_id: str
    check_name: str
    skip_reason: str | None


def checkov_executable() -> Path:
    """Install the pinned checkov into its own venv on first use."""
    executable = CHECKOV_VENV / "bin" / "checkov"
    marker = CHECKOV_VENV / f".checkov-{CHECKOV_VERSION}"
    if executable.exists() and marker.exists():
        return executable
    steps = [
        [sys.executable, "-m", "venv", str(CHECKOV_VENV)],
        [str(CHECKOV_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         f"checkov=={CHECKOV_VERSION}"],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CheckovError(f"installing checkov failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    marker.write_text("ok\n")
    return executable


def declared_skips(document: dict) -> dict[tuple[str, str], str]:
    """(resource name, check id) -> reason, from the resources' "//" blocks."""
    skips = {}
    for resources in document.get("resource", {}).values():
        for name, body in resources.items():
            for check_id, reason in body.get("//", {}).get(CHECKOV_SKIP_KEY, {}).items():
                skips[(name, check_id)] = reason
    return skips


def run_checkov(stack_files: list[Path]) -> list[Finding]:
    """Every failed check, each with the written skip reason where the stack code declared one."""
    executable = checkov_executable()
    command = [str(executable), "--framework", "terraform_json", "--output", "json", "--quiet",
               "--skip-download", "--compact"]
    for path in stack_files:
        command += ["--file", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(result.stdout) if result.stdout.strip() else []
    except json.JSONDecodeError as error:
        raise CheckovError(f"checkov printed no JSON report (exit {result.returncode}): {error}") from None
    reports = report if isinstance(report, list) else [report]
    skips_by_file = {str(path.resolve()): declared_skips(json.loads(path.read_text())) for path in stack_files}
    findings = []
    for item in reports:
        if "results" not in item:
            continue
        if item.get("summary", {}).get("parsing_errors"):
            raise CheckovError(f"checkov could not parse: {item['results'].get('parsing_errors')}")
        for failed in item["results"]["failed_checks"]:
            file = str(Path(failed["file_abs_path"]).resolve())
            name = failed["resource"].split(".", 1)[-1]
            reason = skips_by_file.get(file, {}).get((name, failed["check_id"]))
            findings.append(Finding(file, name, failed["check_id"], failed["check_name"], reason))
    return findings


def check_app(app: SynthesizedApp) -> list[str]:
    """Every finding as a line; CheckovError when any lacks a written skip."""
    findings = run_checkov([stack.directory / "cdk.tf.json" for stack in app.stacks])
    lines = [f"{f.check_id:12} {f.resource:32} " + (f"skipped: {f.skip_reason}" if f.skip_reason else "FAILED")
             for f in findings]
    open_findings = [f for f in findings if not f.skip_reason]
    if open_findings:
        raise CheckovError("\n".join(lines) + f"\n{len(open_findings)} checkov finding(s) without a written skip")
    return lines
