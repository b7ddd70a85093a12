"""Reproducible Lambda zips: the same sources give byte-identical zips.

Terraform compares `source_code_hash`, so a zip that changed only in timestamps or
entry order would redeploy every function on every run; fixed metadata prevents that.

Each zip also carries bytecode for the runtime's Python (3.12). Lambda's /var/task is
read-only, so a zip without it makes every cold start compile every module it imports
from source. The bytecode is "unchecked-hash": its header holds no modification time
(so two builds give the same bytes) and Python never compares it with the source.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Literal

from delivery.paths import BUILD_DIR, FUNCTIONS_DIR, ROOT
from errors import PipelineError
from stacks.artifacts import BuiltZip
from stacks.names import FUNCTION_NAMES

SHARED_PACKAGE = "shared"
# The runtime ships boto3; a copy in the zip would only add cold-start time and drift.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six")
# Lambda's python3.12 runtime. Bytecode is specific to a minor version, so the build needs one.
RUNTIME_PYTHON_VERSION = "3.12"
# Names the interpreter to compile with (and to run local workers under), before any search.
RUNTIME_PYTHON_ENV = "LAMBDA_PYTHON"
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
# PEP 552 flags word of a .pyc: bit 0 = hash-based, bit 1 = check the source. 0b01 = unchecked hash.
UNCHECKED_HASH_FLAGS = 0b01


class BuildError(PipelineError):
    """A zip could not be built or failed verification."""


@dataclass(frozen=True)
class TargetPlatform:
    """What the zip is built for: the Lambda arm64 runtime, or this machine for local runs."""

    name: str
    pip_platform: str
    python_version: str
    elf_machine: str


LAMBDA_ARM64 = TargetPlatform("lambda-arm64", "manylinux2014_aarch64", RUNTIME_PYTHON_VERSION, "aarch64")


def host_platform() -> TargetPlatform:
    """The machine's own CPU with the runtime's Python: aarch64 wheels cannot load here, so local runs use these.

    The Python version is Lambda's (3.12), not this venv's: the local runtime runs the
    zips on a 3.12 interpreter, as Lambda does, so native wheels and bytecode must be 3.12's.
    """
    machine = platform.machine()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine)
    return TargetPlatform(f"host-{machine}", f"manylinux2014_{machine}", RUNTIME_PYTHON_VERSION, machine)


# ---- the runtime's Python -------------------------------------------------------------------

@dataclass(frozen=True)
class RuntimePython:
    """A CPython of Lambda's minor version: it compiles the zips' bytecode and runs the local workers."""

    executable: Path
    version: str     # full version, e.g. "3.12.1": bytecode is only guaranteed identical for the same one
    cache_tag: str   # "cpython-312": the name part of a __pycache__ file
    magic: bytes     # the first 4 bytes of every .pyc it writes


_PROBE = ("import sys, importlib.util; print(sys.implementation.name, sys.implementation.cache_tag, "
          "'%d.%d.%d' % sys.version_info[:3], importlib.util.MAGIC_NUMBER.hex(), sys.executable)")


@cache
def _probe(candidate: str) -> RuntimePython | None:
    """Ask a candidate what it is; None when it does not run (a pyenv shim without that version fails here)."""
    try:
        result = subprocess.run([candidate, "-I", "-S", "-c", _PROBE], capture_output=True, text=True,
                                timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = result.stdout.strip().split(" ", 4)
    if result.returncode != 0 or len(parts) != 5:
        return None
    implementation, cache_tag, version, magic, executable = parts
    if implementation != "cpython" or not version.startswith(RUNTIME_PYTHON_VERSION + "."):
        return None
    # The real binary, not a shim: a shim would add a shell start to every local worker.
    return RuntimePython(Path(executable), version, cache_tag, bytes.fromhex(magic))


def _pyenv_candidates() -> list[str]:
    """pyenv's own 3.12 builds, newest patch first (pyenv's `python3.12` shim only works when selected)."""
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"

    def patch(folder: Path) -> int:
        tail = folder.name.removeprefix(RUNTIME_PYTHON_VERSION + ".")
        return int(tail) if tail.isdigit() else -1

    folders = [f for f in versions.glob(f"{RUNTIME_PYTHON_VERSION}.*") if patch(f) >= 0]
    return [str(f / "bin" / "python") for f in sorted(folders, key=patch, reverse=True)]


def runtime_python() -> RuntimePython:
    """The CPython 3.12 to compile with: $LAMBDA_PYTHON, else `python3.12` on PATH, else pyenv's newest 3.12.

    An override that is not a CPython 3.12 is an error rather than skipped: a build
    that silently used another interpreter would not be the one that was asked for.
    """
    override = os.environ.get(RUNTIME_PYTHON_ENV)
    if override:
        found = _probe(override)
        if found is None:
            raise BuildError(f"{RUNTIME_PYTHON_ENV}={override} is not a CPython {RUNTIME_PYTHON_VERSION} "
                             "interpreter that runs")
        return found
    on_path = shutil.which(f"python{RUNTIME_PYTHON_VERSION}")
    for candidate in ([on_path] if on_path else []) + _pyenv_candidates():
        found = _probe(candidate)
        if found is not None:
            return found
    raise BuildError(f"no CPython {RUNTIME_PYTHON_VERSION} found to compile the zips' bytecode (Lambda runs "
                     f"python{RUNTIME_PYTHON_VERSION}): set {RUNTIME_PYTHON_ENV}, put python{RUNTIME_PYTHON_VERSION} "
                     f"on PATH, or `pyenv install {RUNTIME_PYTHON_VERSION}`")


# ---- bytecode -------------------------------------------------------------------------------

# Run by the 3.12 interpreter. The recorded file name (dfile) is the path inside the zip, so
# no build folder ends up in the bytes; Python replaces it with the real path when it loads.
_COMPILE_SCRIPT = """\
import json, py_compile, sys
for source, cfile, dfile in json.load(sys.stdin):
    try:
        py_compile.compile(source, cfile=cfile, dfile=dfile, doraise=True, optimize=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError as error:
        sys.exit(dfile + ": " + (str(error).strip().splitlines() or ["cannot compile"])[-1])
"""


def bytecode_name(source_name: str, cache_tag: str) -> str:
    """Where the import system looks for a module's bytecode: `pkg/__pycache__/mod.cpython-312.pyc`."""
    source = PurePosixPath(source_name)
    return (source.parent / "__pycache__" / f"{source.stem}.{cache_tag}.pyc").as_posix()


def compile_bytecode(sources: dict[str, Path], output: Path, python: RuntimePython) -> dict[str, Path]:
    """Compile each Python source (zip name -> file) under output; returns zip name -> .pyc file.

    One interpreter compiles them all, in sorted order, with PYTHONHASHSEED=0: the
    bytes then depend only on the sources, the zip names and the interpreter's version.
    """
    jobs = []
    produced: dict[str, Path] = {}
    for name in sorted(sources):
        if not name.endswith(".py"):
            continue
        pyc_name = bytecode_name(name, python.cache_tag)
        produced[pyc_name] = output / pyc_name
        jobs.append([str(sources[name]), str(produced[pyc_name]), name])
    if not jobs:
        return produced
    # -P -S -s instead of -I: -I would ignore PYTHONHASHSEED. The environment is only that variable.
    result = subprocess.run([str(python.executable), "-P", "-S", "-s", "-c", _COMPILE_SCRIPT],
                            input=json.dumps(jobs), capture_output=True, text=True, check=False,
                            env={"PYTHONHASHSEED": "0"})
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"Python {python.version} could not compile the bytecode: {last_line}")
    return produced


def _publish(staging: Path, folder: Path) -> None:
    """Move a finished folder into place in one rename: a concurrent build sees all of it or none."""
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is as readable as the rest of build/
    try:
        staging.rename(folder)
    except OSError:  # another build finished the same folder first: its bytes are the same
        if not (folder / ".complete").exists():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _dependency_bytecode(dependencies: Path, entries: dict[str, Path], python: RuntimePython) -> dict[str, Path]:
    """The dependencies' bytecode, compiled once per installed folder and interpreter version."""
    folder = dependencies.with_name(f"{dependencies.name}.pyc-{python.version}")
    expected = {bytecode_name(name, python.cache_tag): folder / bytecode_name(name, python.cache_tag)
                for name in entries if name.endswith(".py")}
    if (folder / ".complete").exists():
        return expected
    shutil.rmtree(folder, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        compile_bytecode(entries, staging, python)
        (staging / ".complete").write_text("ok\n")
        _publish(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return expected


def verify_bytecode(zip_path: Path, python: RuntimePython) -> None:
    """Fail unless every module in the zip has unchecked-hash bytecode of the runtime's Python."""
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        for name in sorted(names):
            if name.endswith(".py"):
                pyc = bytecode_name(name, python.cache_tag)
                if pyc not in names:
                    raise BuildError(f"{zip_path.name}: {name} has no {python.cache_tag} bytecode")
            elif name.endswith(".pyc"):
                header = archive.read(name)[:16]
                if header[:4] != python.magic:
                    raise BuildError(f"{zip_path.name}: {name} is not bytecode of Python {python.version}")
                if int.from_bytes(header[4:8], "little") != UNCHECKED_HASH_FLAGS:
                    raise BuildError(f"{zip_path.name}: {name} is not unchecked-hash bytecode")


# ---- dependencies and entries ---------------------------------------------------------------

def _requirements(function: str) -> Path:
    return FUNCTIONS_DIR / function / "requirements.txt"


# Part of the dependency cache's key: a change to what the install step writes rebuilds it.
INSTALL_LAYOUT = "records-inside-target"


def _install_dependencies(function: str, target: TargetPlatform, cache: Path) -> Path:
    """Install the pinned closure for the target once; later builds reuse the folder."""
    requirements = _requirements(function)
    digest = hashlib.sha256(requirements.read_bytes() + target.pip_platform.encode() + target.python_version.encode()
                            + INSTALL_LAYOUT.encode())
    folder = cache / f"{target.name}-{digest.hexdigest()[:16]}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=f".{folder.name}-"))
    try:
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--no-compile", "--only-binary=:all:", "--implementation", "cp",
            "--platform", target.pip_platform, "--python-version", target.python_version,
            "--target", str(staging), "-r", str(requirements),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise BuildError(f"pip could not install {requirements.relative_to(ROOT)} for {target.name}: {last_line}")
        _drop_records_outside(staging)
        (staging / ".complete").write_text("ok\n")
        _publish(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _drop_records_outside(installed: Path) -> None:
    """Drop the RECORD lines of files installed outside the target's packages (`../../bin/`
    console scripts, which the zip leaves out). Their hashes cover the script's shebang,
    which pip writes with the path of the interpreter that ran it, so the same requirements
    installed from another checkout or venv gave a zip with other bytes."""
    for record in installed.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith("../")]
        if kept != lines:
            record.write_text("".join(kept))


def _source_entries(function: str) -> dict[str, Path]:
    """The function's own package and the shared one, named as they are imported."""
    entries: dict[str, Path] = {"functions/__init__.py": FUNCTIONS_DIR / "__init__.py"}
    for package in (FUNCTIONS_DIR / function, FUNCTIONS_DIR / SHARED_PACKAGE):
        for path in package.rglob("*.py"):
            if "__pycache__" not in path.parts:
                entries[path.relative_to(ROOT).as_posix()] = path
    return entries


def _dependency_entries(function: str, dependencies: Path) -> dict[str, Path]:
    entries: dict[str, Path] = {}
    for path in dependencies.rglob("*"):
        relative = path.relative_to(dependencies)
        if not path.is_file() or relative.parts[0] in ("bin", ".complete") or "__pycache__" in relative.parts:
            continue
        if relative.parts[0].split(".")[0].split("-")[0] in RUNTIME_PROVIDED:
            raise BuildError(f"{function}: {relative.parts[0]} must not be packed (the Lambda runtime provides it)")
        entries[relative.as_posix()] = path
    return entries


# ---- verification ---------------------------------------------------------------------------

def elf_machine(data: bytes) -> str | None:
    """The CPU an ELF file is built for.

    Hand-written on purpose: 20 header bytes answer the question, a library
    (pyelftools) would add a dependency for no gain.
    """
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return None
    byteorder: Literal["little", "big"] = "little" if data[5] == 1 else "big"
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


def verify_extension_abi(zip_path: Path, python_version: str) -> None:
    """Fail when an extension module is tagged for another CPython than the one that will load it."""
    tag = ".cpython-" + python_version.replace(".", "") + "-"
    with zipfile.ZipFile(zip_path) as archive:
        for name in archive.namelist():
            file_name = name.rsplit("/", 1)[-1]
            if file_name.endswith(".so") and ".cpython-" in file_name and tag not in file_name:
                raise BuildError(f"{zip_path.name}: {name} is not for CPython {python_version}")


def write_reproducible_zip(entries: dict[str, Path], destination: Path) -> None:
    """Sorted entries, fixed dates and permissions: same inputs, same bytes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f"{destination.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(temporary, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name].read_bytes(), compresslevel=9)
    temporary.replace(destination)


def build_function(function: str, target: TargetPlatform, build_dir: Path = BUILD_DIR) -> BuiltZip:
    """Sources, dependencies and their 3.12 bytecode in one verified zip."""
    if function not in FUNCTION_NAMES:
        raise BuildError(f"unknown function {function!r}; expected one of {', '.join(FUNCTION_NAMES)}")
    python = runtime_python()
    dependencies = _install_dependencies(function, target, build_dir / "deps")
    sources = _source_entries(function)
    packed = _dependency_entries(function, dependencies)
    destination = build_dir / "dist" / target.name / f"{function}.zip"
    build_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_dir, prefix=".bytecode-") as staging:
        entries = {**sources, **compile_bytecode(sources, Path(staging), python),
                   **packed, **_dependency_bytecode(dependencies, packed, python)}
        write_reproducible_zip(entries, destination)
    verify_native_libraries(destination, target.elf_machine)
    verify_extension_abi(destination, target.python_version)
    verify_bytecode(destination, python)
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
