"""docker-compose.yml's relay service installs the relay from a read-only mount of relay/.

pip builds a local directory in place (setuptools writes build/ and *.egg-info beside
pyproject.toml), which a read-only mount refuses; so the service must install from a
writable copy. No Docker engine here: the command is read, and its setup (everything
before `exec python -m price_relay`) is run by sh in a temporary root, with pip replaced by
a stand-in that writes where setuptools would and refuses the read-only mount (these tests
may run as root, to whom a chmod'ed directory is writable)."""

from __future__ import annotations

import posixpath
import re
import shlex
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def relay_service() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["relay"]


def read_only_mounts(service: dict) -> list[str]:
    mounts = []
    for volume in service["volumes"]:
        parts = volume.split(":")
        if len(parts) == 3 and "ro" in parts[2].split(","):
            mounts.append(parts[1])
    return mounts


def setup_commands(service: dict) -> list[list[str]]:
    """The commands run before `exec python -m price_relay` (split on ; and &&)."""
    shell, flag, script = shlex.split(service["command"])
    assert (shell, flag) == ("sh", "-c")
    setup = script.split("exec python -m price_relay", 1)[0]
    words = shlex.split(setup.replace(";", " ; "))
    commands, current = [], []
    for word in words + [";"]:
        if word in (";", "&&"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(word)
    return commands


def test_pip_installs_the_relay_from_a_writable_place():
    service = relay_service()
    working_dir = service.get("working_dir", "/")
    read_only = read_only_mounts(service)
    assert "/config/relay.json" in read_only  # the config stays read-only
    installs = [command for command in setup_commands(service) if command[:2] == ["pip", "install"]]
    assert len(installs) == 1, installs
    targets = [posixpath.normpath(posixpath.join(working_dir, word))
               for word in installs[0][2:] if not word.startswith("-")]
    assert targets, installs
    for target in targets:
        assert not any(target == mount or target.startswith(mount.rstrip("/") + "/") for mount in read_only), (
            f"pip install {target} builds in place under a read-only mount ({read_only})")


PIP_STAND_IN = """#!/bin/sh
for target; do :; done
target=$(cd "$target" && pwd -P) || exit 1
case "$target/" in "$READ_ONLY"/*) echo "pip: $target: Read-only file system" >&2; exit 1;; esac
test -f "$target/pyproject.toml" || { echo "pip: no pyproject.toml in $target" >&2; exit 1; }
mkdir -p "$target/build" "$target/price_relay.egg-info"
"""


def test_the_setup_installs_from_a_copy_on_first_start_and_on_restart(tmp_path):
    service = relay_service()
    root = tmp_path / "root"
    source_mount = next(volume.split(":")[1] for volume in service["volumes"] if volume.startswith("./relay:"))
    source = root / source_mount.lstrip("/")
    (source / "price_relay").mkdir(parents=True)
    (source / "pyproject.toml").write_text("[project]\nname = 'price-relay'\n")
    (source / "price_relay" / "__init__.py").write_text("")
    workdir = root / service.get("working_dir", "/").lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text(PIP_STAND_IN)
    (bin_dir / "pip").chmod(0o755)
    _, _, script = shlex.split(service["command"])
    setup = re.split(r"&&\s*exec python -m price_relay", script, maxsplit=1)[0]
    setup = re.sub(r"(?<![\w./])/(?=\w)", f"{root}/", setup)  # absolute paths into the temporary root
    for attempt in ("first start", "restart"):  # a restarted container keeps its /tmp
        environ = {"PATH": f"{bin_dir}:/usr/bin:/bin", "READ_ONLY": str(source.resolve())}
        result = subprocess.run(["sh", "-c", setup], cwd=workdir, env=environ, capture_output=True, text=True,
                                timeout=30, check=False)
        assert result.returncode == 0, f"{attempt}: {result.stderr}"
    assert sorted(p.name for p in source.iterdir()) == ["price_relay", "pyproject.toml"]
    copies = [p.parent for p in root.rglob("pyproject.toml") if p.parent != source]
    assert len(copies) == 1, copies  # not nested into the previous copy on restart
    assert sorted(p.name for p in copies[0].iterdir()) == ["build", "price_relay", "price_relay.egg-info",
                                                            "pyproject.toml"]
