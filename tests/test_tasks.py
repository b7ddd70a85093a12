"""The tasks as on-call types them: `invoke TASK --help` prints the task's help for every
task, and a missing required option fails in one line after --help had its chance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def task_names() -> list[str]:
    listing = invoke("--list", "--list-format=json").stdout
    names = [item["name"] for item in json.loads(listing)["tasks"]]
    assert "deploy" in names and "drain-dlq" in names, listing
    return names


def test_every_task_prints_its_help_as_on_call_types_it():
    for name in task_names():
        result = invoke(name, "--help")
        assert result.returncode == 0, f"invoke {name} --help: {result.stdout}{result.stderr}"
        assert f"Usage: inv[oke] [--core-opts] {name}" in result.stdout, result.stdout


@pytest.mark.parametrize("args, message", [
    (("deploy",), "--env is required"),
    (("drain-dlq", "--env", "local"), "--queue must be one of"),
    (("config", "--env", "nowhere"), "no such environment file"),
])
def test_a_missing_or_bad_option_fails_in_one_line(args, message):
    result = invoke(*args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_the_relay_task_chooses_the_channel_as_the_relay_does():
    """`invoke relay` passes --channel (trade by default, or ticker) on to the relay."""
    result = invoke("relay", "--help")
    assert result.returncode == 0 and "--channel" in result.stdout and "ticker" in result.stdout, result.stdout


def test_an_emulated_environment_finds_the_running_local_stack(tmp_path, monkeypatch):
    """`invoke secrets/drain-dlq/rebuild --env local` beside a running `invoke local` go to its port,
    which `invoke local` records, without an exported AWS_ENDPOINT_URL; an exported one wins."""
    import tasks
    from delivery import local_session

    monkeypatch.setattr(local_session, "RUNNING_LOCAL", tmp_path / "running.json")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")  # records the variable's state, restored after the test
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    tasks.resolve("local")
    assert "AWS_ENDPOINT_URL" not in os.environ  # no session recorded: nothing changes
    local_session.write_running_local("http://127.0.0.1:5001/", "http://127.0.0.1:4999", None)
    tasks.resolve("dev")
    assert "AWS_ENDPOINT_URL" not in os.environ  # a real AWS environment is never redirected
    tasks.resolve("local")
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4999"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    tasks.resolve("local")
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
