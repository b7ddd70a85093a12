"""Function zips: reproducible, aarch64-only native code, no boto3, 3.12 bytecode, same file list for local runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from delivery.build import (
    LAMBDA_ARM64,
    RUNTIME_PYTHON_ENV,
    BuildError,
    build_function,
    elf_machine,
    host_platform,
    runtime_python,
    verify_bytecode,
    verify_native_libraries,
    write_reproducible_zip,
)

# Written out rather than read from the build: the test must not trust the build's own probe.
# CPython 3.12's bytecode magic is 3531; PEP 552 flags 0b01 = hash-based, source never checked.
CPYTHON_312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"
UNCHECKED_HASH = 0b01


def test_two_builds_give_identical_zips(tmp_path, artifacts):
    again = {name: build_function(name, LAMBDA_ARM64) for name in artifacts}
    for name, built in artifacts.items():
        assert again[name].sha256_base64 == built.sha256_base64
        assert again[name].path.read_bytes() == built.path.read_bytes()


def test_a_build_in_another_folder_gives_the_same_bytes(tmp_path, artifacts):
    """Fresh install, fresh bytecode, another path: nothing of the build folder may reach the zip."""
    elsewhere = build_function("webhook_processor", LAMBDA_ARM64, tmp_path / "another" / "build")
    assert elsewhere.path.read_bytes() == artifacts["webhook_processor"].path.read_bytes()


def test_zip_metadata_is_fixed(artifacts):
    with zipfile.ZipFile(artifacts["webhook_processor"].path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_zips_hold_their_code_shared_code_and_dependencies_but_not_boto3(artifacts):
    with zipfile.ZipFile(artifacts["webhook_processor"].path) as archive:
        names = archive.namelist()
    assert "functions/webhook_processor/handler.py" in names
    assert "functions/shared/__init__.py" in names
    assert not any(n.startswith("functions/price_enricher/") for n in names)
    assert any(n.startswith("aws_lambda_powertools/") for n in names)
    assert any(n.startswith("pydantic_core/") and n.endswith(".so") for n in names)
    assert not any(n.split("/")[0] in ("boto3", "botocore") for n in names)


def _pyc_headers(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {n: archive.read(n)[:16] for n in archive.namelist() if n.endswith(".pyc")}


@pytest.mark.parametrize("function", ["webhook_processor", "price_enricher", "log_alerts"])
def test_every_module_ships_unchecked_hash_bytecode_for_python_3_12(artifacts, function):
    with zipfile.ZipFile(artifacts[function].path) as archive:
        names = set(archive.namelist())
    headers = _pyc_headers(artifacts[function].path)
    expected = {re.sub(r"([^/]+)\.py$", r"__pycache__/\1.cpython-312.pyc", n) for n in names if n.endswith(".py")}
    assert set(headers) == expected  # one .pyc per module, where the import system looks, and no other
    # The function's own modules, the shared package and the dependencies, by name.
    assert {f"functions/{function}/__pycache__/handler.cpython-312.pyc",
            "functions/__pycache__/__init__.cpython-312.pyc",
            "functions/shared/__pycache__/observability.cpython-312.pyc",
            "aws_lambda_powertools/__pycache__/__init__.cpython-312.pyc",
            "jmespath/__pycache__/parser.cpython-312.pyc",
            "__pycache__/typing_extensions.cpython-312.pyc"} <= set(headers)
    for name, header in headers.items():
        assert header[:4] == CPYTHON_312_MAGIC, name
        assert int.from_bytes(header[4:8], "little") == UNCHECKED_HASH, name


def test_host_and_lambda_zips_carry_the_same_bytecode(artifacts):
    """Bytecode depends on the sources alone: the two platforms' zips, from two install folders, agree."""
    host = build_function("webhook_processor", host_platform())
    with zipfile.ZipFile(host.path) as local, zipfile.ZipFile(artifacts["webhook_processor"].path) as lambda_zip:
        local_pyc = {n: local.read(n) for n in local.namelist() if n.endswith(".pyc")}
        lambda_pyc = {n: lambda_zip.read(n) for n in lambda_zip.namelist() if n.endswith(".pyc")}
    assert local_pyc and local_pyc == lambda_pyc


def _run_runtime_python(code: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    script = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}; {code}"
    return subprocess.run([str(runtime_python().executable), "-I", "-S", "-B", "-c", script],
                          capture_output=True, text=True, check=False)


def test_python_3_12_runs_the_bytecode_and_never_reads_the_sources(tmp_path, artifacts):
    """Sources replaced by a raise still import: the .pyc is used, and unchecked (no stat, no hash)."""
    code = tmp_path / "code"
    with zipfile.ZipFile(artifacts["log_alerts"].path) as archive:
        archive.extractall(code)
    for module in ("functions/shared/price_update.py", "jmespath/__init__.py"):
        (code / module).write_text("raise RuntimeError('the source was compiled')\n")
    imports = "import functions.shared.price_update, jmespath; print(jmespath.search('a', {'a': 1}))"
    result = _run_runtime_python(imports, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    shutil.rmtree(code / "jmespath" / "__pycache__")  # the control: without bytecode the source is read
    assert "the source was compiled" in _run_runtime_python(imports, code).stderr


def test_bytecode_verification_rejects_missing_and_checked_bytecode(tmp_path):
    python = runtime_python()
    module = tmp_path / "module.py"
    module.write_text("VALUE = 1\n")
    archive = tmp_path / "bad.zip"
    write_reproducible_zip({"pkg/module.py": module}, archive)
    with pytest.raises(BuildError, match="pkg/module.py has no cpython-312 bytecode"):
        verify_bytecode(archive, python)
    timestamped = tmp_path / "module.pyc"
    timestamped.write_bytes(python.magic + (0).to_bytes(4, "little") + bytes(8))
    write_reproducible_zip({"pkg/module.py": module, "pkg/__pycache__/module.cpython-312.pyc": timestamped}, archive)
    with pytest.raises(BuildError, match="not unchecked-hash"):
        verify_bytecode(archive, python)
    timestamped.write_bytes(python.magic + UNCHECKED_HASH.to_bytes(4, "little") + bytes(8))
    write_reproducible_zip({"pkg/module.py": module, "pkg/__pycache__/module.cpython-312.pyc": timestamped}, archive)
    verify_bytecode(archive, python)


def test_the_compiling_interpreter_is_cpython_3_12():
    python = runtime_python()
    assert python.version.startswith("3.12.")
    assert python.cache_tag == "cpython-312"
    assert python.magic == CPYTHON_312_MAGIC


def _without_finders(monkeypatch, tmp_path) -> Path:
    """No override, an empty PATH and an empty pyenv: nothing to find."""
    monkeypatch.delenv(RUNTIME_PYTHON_ENV, raising=False)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    return empty


def test_without_python_3_12_the_build_fails_with_one_line_saying_what_it_needs(monkeypatch, tmp_path):
    _without_finders(monkeypatch, tmp_path)
    with pytest.raises(BuildError) as error:
        build_function("log_alerts", LAMBDA_ARM64, tmp_path / "build")
    message = str(error.value)
    assert "\n" not in message
    assert "CPython 3.12" in message and RUNTIME_PYTHON_ENV in message and "pyenv install 3.12" in message
    assert not (tmp_path / "build" / "dist").exists()


def test_an_override_that_is_not_python_3_12_is_an_error(monkeypatch):
    monkeypatch.setenv(RUNTIME_PYTHON_ENV, sys.executable)  # the venv's 3.11
    with pytest.raises(BuildError, match=f"{RUNTIME_PYTHON_ENV}=.* is not a CPython 3.12"):
        runtime_python()


def test_a_broken_python3_12_on_path_is_skipped_for_pyenvs_build(monkeypatch, tmp_path):
    """As on this project's machines: pyenv's `python3.12` shim fails unless 3.12 is selected."""
    real = runtime_python()
    empty = _without_finders(monkeypatch, tmp_path)
    shim = empty / "python3.12"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    version_dir = tmp_path / "pyenv" / "versions" / "3.12.99" / "bin"
    version_dir.mkdir(parents=True)
    (version_dir / "python").symlink_to(real.executable)
    found = runtime_python()
    assert found.executable == version_dir / "python"
    assert found.version == real.version


def test_native_libraries_are_aarch64(artifacts):
    with zipfile.ZipFile(artifacts["webhook_processor"].path) as archive:
        shared_objects = [n for n in archive.namelist() if n.endswith(".so")]
        assert shared_objects
        for name in shared_objects:
            assert elf_machine(archive.read(name)[:64]) == "aarch64"
            assert ".cpython-312-aarch64-linux-gnu.so" in name


def _fake_elf(machine: int) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + machine.to_bytes(2, "little") + b"\x00" * 44


def test_a_zip_with_an_x86_64_shared_object_is_rejected(tmp_path):
    library = tmp_path / "fast.so"
    library.write_bytes(_fake_elf(62))
    archive = tmp_path / "bad.zip"
    write_reproducible_zip({"pkg/fast.cpython-312-x86_64-linux-gnu.so": library}, archive)
    with pytest.raises(BuildError, match="x86_64, not aarch64"):
        verify_native_libraries(archive, "aarch64")
    library.write_bytes(_fake_elf(183))
    write_reproducible_zip({"pkg/fast.so": library}, archive)
    verify_native_libraries(archive, "aarch64")


def _normalized(path):
    """File list with platform tags taken out of native library and wheel metadata names."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return sorted(re.sub(r"\.cpython-3\d+-[a-z0-9_]+-linux-gnu\.so$", ".so", n) for n in names
                  if not n.endswith("/WHEEL") and not n.endswith("/RECORD"))


def test_host_build_for_local_runs_has_the_same_file_list(artifacts):
    host = host_platform()
    assert host.python_version == "3.12"  # the local runtime runs the zips on Lambda's Python
    for name, built in artifacts.items():
        local = build_function(name, host)
        assert _normalized(local.path) == _normalized(built.path)
        with zipfile.ZipFile(local.path) as archive:
            native = [n for n in archive.namelist() if n.endswith(".so")]
        assert all(f".cpython-312-{host.elf_machine}-linux-gnu.so" in n for n in native)


def test_local_workers_run_the_host_zip_on_python_3_12_with_the_runtime_libraries(tmp_path):
    """The local runtime as Lambda has it: 3.12, boto3 beside the zip with 3.12 bytecode, no bytecode written."""
    from emulator.runtime import FunctionSpec, LocalFunction, provided_libraries

    host_zip = build_function("webhook_processor", host_platform()).path
    probe_zip = tmp_path / "probe.zip"
    shutil.copy(host_zip, probe_zip)
    with zipfile.ZipFile(probe_zip, "a") as archive:
        archive.writestr("probe.py", (
            "import os, sys\n"
            "import boto3, pydantic_core\n"
            "import functions.webhook_processor.handler\n"
            "def handler(event, context):\n"
            "    return {'version': list(sys.version_info[:2]), 'no_bytecode_writes': sys.flags.dont_write_bytecode,\n"
            "            'boto3': boto3.__file__, 'boto3_bytecode': os.path.exists(boto3.__spec__.cached),\n"
            "            'pydantic_core': pydantic_core._pydantic_core.__file__}\n"))
    python = runtime_python().executable
    runtime = provided_libraries(tmp_path / "runtime", python)
    spec = FunctionSpec("probe", "arn:aws:lambda:us-east-1:123456789012:function:probe", "probe.handler",
                        {"AWS_REGION": "us-east-1"}, 30, 128)
    logs: list[str] = []
    function = LocalFunction(spec, probe_zip, tmp_path / "work", runtime, {"PATH": os.environ.get("PATH", "")},
                             lambda _, line: logs.append(line), python, concurrency=1)
    try:
        answer = function.invoke({})
    finally:
        function.close()
    assert answer["version"] == [3, 12], logs
    assert answer["no_bytecode_writes"]
    assert answer["boto3"].startswith(str(runtime)) and answer["boto3_bytecode"]
    assert ".cpython-312-" in answer["pydantic_core"]
    # probe.py came without bytecode, and the worker (-B) wrote none for it.
    assert not (tmp_path / "work" / "probe" / "__pycache__" / "probe.cpython-312.pyc").exists()


def test_packed_records_name_only_files_inside_the_zip(artifacts):
    """A RECORD line for a file outside the packages (a console script in ../../bin) carries a
    hash of the script's shebang, i.e. of the building interpreter's path: the zip's bytes then
    depended on which venv built it (jmespath's jp.py did, found when two checkouts differed)."""
    for built in artifacts.values():
        with zipfile.ZipFile(built.path) as archive:
            names = set(archive.namelist())
            for name in (n for n in names if n.endswith(".dist-info/RECORD")):
                listed = [line.split(",")[0] for line in archive.read(name).decode().splitlines() if line]
                assert [path for path in listed if path not in names and not path.endswith(".pyc")] == [], name
