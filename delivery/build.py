"""Reproducible Lambda zips: the same sources give byte-identical zips.

Terraform compares `source_code_hash`, so a zip that changed only in timestamps or
entry order would redeploy every function on every run; fixed metadata prevents that.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from delivery.paths import BUILD_DIR, FUNCTIONS_DIR, ROOT
from errors import PipelineError
from stacks.artifacts import BuiltZip

FUNCTION_NAMES = ("webhook_processor", "price_enricher", "log_alerts")
SHARED_PACKAGE = "shared"
# The runtime ships boto3; a copy in the zip would only add cold-start time and drift.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six")
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_ELF_MACHINES = {62: "x86_64", 183: "aarch64"}


class BuildError(PipelineError):
    """A zip could not be built or failed verification."""


@dataclass(frozen=True)
class TargetPlatform:
    """What the zip is built for: the Lambda arm64 runtime, or this machine for local runs."""

    name: str
    pip_platform: str
    python_version: str
    elf_machine: str


LAMBDA_ARM64 = TargetPlatform("lambda-arm64", "manylinux2014_aarch64", "3.12", "aarch64")


def host_platform() -> TargetPlatform:
    """The machine's own platform: aarch64 wheels cannot load here, so local runs use these."""
    machine = platform.machine()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return TargetPlatform(f"host-{machine}", f"manylinux2014_{machine}", version, machine)


def _requirements(function: str) -> Path:
    return FUNCTIONS_DIR / function / "requirements.txt"


def _install_dependencies(function: str, target: TargetPlatform, cache: Path) -> Path:
    """Install the pinned closure for the target once; later builds reuse the folder."""
    requirements = _requirements(function)
    digest = hashlib.sha256(requirements.read_bytes() + target.pip_platform.encode() + target.python_version.encode())
    folder = cache / f"{target.name}-{digest.hexdigest()[:16]}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-compile", "--only-binary=:all:", "--implementation", "cp",
        "--platform", target.pip_platform, "--python-version", target.python_version,
        "--target", str(folder), "-r", str(requirements),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"pip could not install {requirements.relative_to(ROOT)} for {target.name}: {last_line}")
    (folder / ".complete").write_text("ok\n")
    return folder


def _zip_entries(function: str, dependencies: Path) -> dict[str, Path]:
    entries: dict[str, Path] = {}
    package_dirs = [FUNCTIONS_DIR / function, FUNCTIONS_DIR / SHARED_PACKAGE]
    entries["functions/__init__.py"] = FUNCTIONS_DIR / "__init__.py"
    for package in package_dirs:
        for path in package.rglob("*.py"):
            if "__pycache__" not in path.parts:
                entries[path.relative_to(ROOT).as_posix()] = path
    for path in dependencies.rglob("*"):
        relative = path.relative_to(dependencies)
        if not path.is_file() or relative.parts[0] in ("bin", ".complete") or "__pycache__" in relative.parts:
            continue
        if relative.parts[0].split(".")[0].split("-")[0] in RUNTIME_PROVIDED:
            raise BuildError(f"{function}: {relative.parts[0]} must not be packed (the Lambda runtime provides it)")
        entries[relative.as_posix()] = path
    return entries


def elf_machine(data: bytes) -> str | None:
    """The CPU an ELF file is built for.

    Hand-written on purpose: 20 header bytes answer the question, a library
    (pyelftools) would add a dependency for no gain.
    """
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return None
    byteorder = "little" if data[5] == 1 else "big"
    number = int.from_bytes(data[18:20], byteorder)
    return _ELF_MACHINES.get(number, f"machine-{number}")


def verify_native_libraries(zip_path: Path, expected_machine: str) -> None:
    """Fail when any shared object in the zip is not built for the target CPU."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            name = info.filename
            if name.endswith(".so") or ".so." in name.rsplit("/", 1)[-1]:
                found = elf_machine(archive.read(info)[:64])
                if found != expected_machine:
                    raise BuildError(f"{zip_path.name}: {name} is built for {found or 'not an ELF'}, "
                                     f"not {expected_machine}")


def write_reproducible_zip(entries: dict[str, Path], destination: Path) -> None:
    """Sorted entries, fixed dates and permissions: same inputs, same bytes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name].read_bytes(), compresslevel=9)
    temporary.replace(destination)


def build_function(function: str, target: TargetPlatform, build_dir: Path = BUILD_DIR) -> BuiltZip:
    if function not in FUNCTION_NAMES:
        raise BuildError(f"unknown function {function!r}; expected one of {', '.join(FUNCTION_NAMES)}")
    dependencies = _install_dependencies(function, target, build_dir / "deps")
    destination = build_dir / "dist" / target.name / f"{function}.zip"
    write_reproducible_zip(_zip_entries(function, dependencies), destination)
    verify_native_libraries(destination, target.elf_machine)
    data = destination.read_bytes()
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return BuiltZip(function, destination, digest, len(data))


def build_all(target: TargetPlatform = LAMBDA_ARM64, build_dir: Path = BUILD_DIR) -> dict[str, BuiltZip]:
    """Build every function and write a manifest that synth reads."""
    built = {name: build_function(name, target, build_dir) for name in FUNCTION_NAMES}
    manifest = {name: {"path": str(z.path.relative_to(build_dir)), "sha256_base64": z.sha256_base64,
                       "size": z.size} for name, z in built.items()}
    (build_dir / "dist" / target.name / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return built


def load_manifest(target: TargetPlatform = LAMBDA_ARM64, build_dir: Path = BUILD_DIR) -> dict[str, BuiltZip]:
    """The zips of the last build; synth refuses to run without them."""
    path = build_dir / "dist" / target.name / "manifest.json"
    if not path.is_file():
        raise BuildError(f"no build for {target.name}: run `invoke build` first")
    data = json.loads(path.read_text())
    return {name: BuiltZip(name, build_dir / item["path"], item["sha256_base64"], item["size"])
            for name, item in data.items()}
