"""The `relay-local` stack as terraform applied it into the emulator, and its task run as ECS
runs it: the setup container with the secret ECS hands it, then the relay container's own
command, against a loopback exchange and the embedded webhook.

moto keeps ECS's records but starts no container (there is no Docker here); this plays the
ECS agent's part from what was deployed, the way the local runtime plays Lambda's: the
task definition is read back from the emulator, not copied from the stack. What the agent
would map is mapped and said: the task's volumes are temporary directories, the function
URL's address is its local stand-in, and the exchange's address is the loopback server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from emulator import session
from tests.e2e.conftest import wait_until
from tests.relay import frames
from tests.relay.loopback import ScriptedExchange, Send, run_async
from tests.support.variant import E2E_RELAY_SYMBOL, RELAY_IMAGE

# LocalStack's community image has no ECS: the session applies the relay stack on the
# embedded emulator only (tests/e2e/conftest.py), which is what CI runs.
pytestmark = pytest.mark.skipif(os.environ.get("E2E_TARGET", "embedded") != "embedded",
                                reason="the relay stack is applied on the embedded emulator only")
STORED_SYMBOL = E2E_RELAY_SYMBOL.removesuffix("USDT") + "-USDT"
TICKS = 30


def _client(stack, service: str) -> Any:
    return session.client(service, stack.info.endpoint, stack.info.config.region)


def _deployed_task(stack) -> tuple[dict[str, Any], dict[str, Any]]:
    outputs = stack.info.outputs
    ecs = _client(stack, "ecs")
    service = ecs.describe_services(cluster=outputs["relay_cluster_name"],
                                    services=[outputs["relay_service_name"]])["services"][0]
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    return service, task


def test_the_relay_stack_is_applied_in_the_default_vpc_with_least_privilege(stack):
    service, task = _deployed_task(stack)
    assert service["desiredCount"] == 1
    assert [(s["capacityProvider"], s["weight"]) for s in service["capacityProviderStrategy"]] == [("FARGATE_SPOT", 1)]
    ec2 = _client(stack, "ec2")
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    default_subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default_vpc]},
                                                    {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert sorted(network["subnets"]) == sorted(s["SubnetId"] for s in default_subnets) and network["subnets"]
    assert network["assignPublicIp"] == "ENABLED"
    group = ec2.describe_security_groups(GroupIds=network["securityGroups"])["SecurityGroups"][0]
    assert group["VpcId"] == default_vpc and group["IpPermissions"] == []  # nothing comes in

    assert (task["cpu"], task["memory"], task["runtimePlatform"]["cpuArchitecture"]) == ("256", "512", "ARM64")
    assert {c["image"] for c in task["containerDefinitions"]} == {RELAY_IMAGE}
    logs = _client(stack, "logs").describe_log_groups(logGroupNamePrefix=stack.info.outputs["relay_log_group"])
    assert [g["retentionInDays"] for g in logs["logGroups"]] == [3]

    iam = _client(stack, "iam")
    role = task["executionRoleArn"].rsplit("/", 1)[1]
    document = iam.get_role_policy(RoleName=role, PolicyName="least-privilege")["PolicyDocument"]
    statements = {s["Sid"]: s for s in (json.loads(document) if isinstance(document, str) else document)["Statement"]}
    secret_arn = _client(stack, "secretsmanager").describe_secret(
        SecretId=stack.info.outputs["webhook_secrets_arn"])["ARN"]
    assert statements["ReadWebhookSecrets"]["Resource"] == secret_arn
    # No secret value anywhere in what ECS keeps (the document reaches one container at start).
    kept = json.dumps(task, default=str)
    assert stack.info.secret not in kept and stack.info.token_source is not None
    assert stack.info.token_source[1] not in kept


def _environment(container: dict[str, Any], secrets: Any) -> dict[str, str]:
    """What ECS gives a container: its environment, its `secrets` fetched with the execution
    role's permission, and nothing of this process's environment but PATH."""
    environment = {"PATH": os.environ["PATH"]}
    environment |= {item["name"]: item["value"] for item in container.get("environment", [])}
    for item in container.get("secrets", []):
        environment[item["name"]] = secrets.get_secret_value(SecretId=item["valueFrom"])["SecretString"]
    return environment


def _command(container: dict[str, Any], volumes: dict[str, Path]) -> list[str]:
    """The container's entry point and command: `python` is this machine's, and a path inside a
    mounted volume becomes the same path in that volume's directory."""
    mounts = {m["containerPath"]: volumes[m["sourceVolume"]] for m in container.get("mountPoints", [])}

    def mapped(part: str) -> str:
        if part == "python":
            return sys.executable
        for path, local in mounts.items():
            if part.startswith(path + "/"):
                return str(local) + part[len(path):]
        return part

    return [mapped(part) for part in container.get("entryPoint", []) + container.get("command", [])]


def _stored(stack) -> list[dict[str, Any]]:
    response = stack.aws["dynamodb"].query(
        TableName=stack.info.outputs["table_name"], KeyConditionExpression="symbol = :s",
        ExpressionAttributeValues={":s": {"S": STORED_SYMBOL}}, ConsistentRead=True)
    return response["Items"]


def test_the_applied_task_runs_setup_then_the_relay_and_every_tick_is_stored_once(stack, tmp_path):
    _, task = _deployed_task(stack)
    containers = {c["name"]: c for c in task["containerDefinitions"]}
    setup, relay = containers["relay-setup"], containers["relay"]
    volumes = {volume["name"]: tmp_path / volume["name"] for volume in task["volumes"]}
    for directory in volumes.values():
        directory.mkdir()

    # 1. The setup container, as ECS starts it (it must succeed: the relay depends on SUCCESS).
    assert relay["dependsOn"] == [{"containerName": "relay-setup", "condition": "SUCCESS"}]
    environment = _environment(setup, _client(stack, "secretsmanager"))
    setup_run_dir = next(m["containerPath"] for m in setup["mountPoints"] if m["sourceVolume"] == "run")
    assert environment["RELAY_RUN_DIR"] == setup_run_dir
    environment["RELAY_RUN_DIR"] = str(volumes["run"])
    done = subprocess.run(_command(setup, volumes), env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stack.info.secret not in done.stdout + done.stderr
    newest = (volumes["run"] / "secret").read_text() == stack.info.secret
    assert newest, "the file does not hold the source's newest secret"  # a bool: no secret in a failure
    assert (volumes["run"] / "secret").stat().st_mode & 0o077 == 0

    # 2. The relay container's command, with the addresses the agent's network would resolve.
    config_path = volumes["run"] / "relay.json"
    config = json.loads(config_path.read_text())
    assert config["webhook_url"].rstrip("/") == stack.info.outputs["webhook_url"].rstrip("/")
    assert config["secret_file"] == str(volumes["run"] / "secret")

    # The relay's default channel: Binance aggTrade, one trade a second of recent trade time, so
    # each trade closes its own 1 s window and becomes one tick.
    start = (int(time.time()) - 300) * 1000
    ticks = [json.dumps({"stream": f"{E2E_RELAY_SYMBOL.lower()}@aggTrade", "data": {
        "e": "aggTrade", "E": start + index * 1000, "s": E2E_RELAY_SYMBOL, "a": 5000 + index,
        "p": f"{100 + index}.5", "q": "0.25", "f": 9000 + index, "l": 9000 + index, "T": start + index * 1000,
        "m": False, "M": True}}) for index in range(TICKS)]

    async def run_task() -> tuple[int, str]:
        async with ScriptedExchange([[Send(frames.ACKS["binance"]), Send(ticks)]]) as server:
            config["webhook_url"] = stack.info.webhook_url
            config["spool"] = str(volumes["spool"] / Path(config["spool"]).name)
            config["exchanges"][0]["ws_url"] = server.url
            config_path.write_text(json.dumps(config))
            # Output to a file, read at the end: a pipe nobody reads could fill and stall the relay.
            with open(tmp_path / "relay.log", "wb") as log:
                process = await asyncio.create_subprocess_exec(
                    *_command(relay, volumes), env={"PATH": os.environ["PATH"]}, stdout=log, stderr=log)
                try:
                    stored = await asyncio.to_thread(
                        wait_until, lambda: process.returncode is not None or len(_stored(stack)) >= TICKS, 90)
                finally:
                    if process.returncode is None:
                        process.terminate()  # ECS stops a task with SIGTERM; the relay drains and exits 0
                    await asyncio.wait_for(process.wait(), 60)
            output = (tmp_path / "relay.log").read_text(errors="replace")
            assert stored and len(_stored(stack)) >= TICKS, f"{len(_stored(stack))} of {TICKS} stored: {output[-2000:]}"
            return process.returncode or 0, output

    returncode, output = run_async(run_task(), timeout=180)
    assert returncode == 0, output[-2000:]
    assert stack.info.secret not in output
    stack.settle()
    items = _stored(stack)
    assert len(items) == TICKS and len({i["timestamp"]["N"] for i in items}) == TICKS  # each once
    assert wait_until(lambda: all("enriched_at" in i for i in _stored(stack)), 60)
