"""Function zips: reproducible, aarch64-only native code, no boto3, same file list for local runs."""

from __future__ import annotations

import re
import zipfile

import pytest

from delivery.build import (
    LAMBDA_ARM64,
    BuildError,
    build_function,
    elf_machine,
    host_platform,
    verify_native_libraries,
    write_reproducible_zip,
)


def test_two_builds_give_identical_zips(tmp_path, artifacts):
    again = {name: build_function(name, LAMBDA_ARM64) for name in artifacts}
    for name, built in artifacts.items():
        assert again[name].sha256_base64 == built.sha256_base64
        assert again[name].path.read_bytes() == built.path.read_bytes()


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
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_native_libraries_are_aarch64(artifacts):
    with zipfile.ZipFile(artifacts["webhook_processor"].path) as archive:
        shared_objects = [n for n in archive.namelist() if n.endswith(".so")]
        assert shared_objects
        for name in shared_objects:
            assert elf_machine(archive.read(name)[:64]) == "aarch64"


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
    for name, built in artifacts.items():
        local = build_function(name, host)
        assert _normalized(local.path) == _normalized(built.path)
