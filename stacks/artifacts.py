"""What the stacks take from the build, and where they write: plain values, so that the
stacks depend on nothing above them (delivery produces these, the stacks consume them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BuiltZip:
    """One function's deployment package: its path and the hash Terraform compares."""

    function: str
    path: Path
    sha256_base64: str
    size: int


@dataclass(frozen=True)
class SynthPaths:
    """Where the synthesized stacks go, and the folder local state paths are relative to."""

    outdir: Path
    state_root: Path


# The key under a resource's "//" block that holds its checkov skips (stacks.checkov_skips
# writes it, delivery.checkov reads it). Here, not beside skip_check, so that reading it
# does not import the cdktf bindings.
CHECKOV_SKIP_KEY = "checkov_skip"
