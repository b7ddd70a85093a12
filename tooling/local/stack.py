"""The whole pipeline on one machine: emulator, terraform apply of the local environment,
and the local Lambda runtime (function URL server, stream poller, log router)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from environments.config import EnvironmentConfig, load_config
from stacks.names import function_name
from tooling.build import FUNCTION_NAMES, LAMBDA_ARM64, build_all, host_platform
from tooling.deployer import Deployer, deploy_environment, write_outputs
from tooling.local.emulator import EmbeddedEmulator
from tooling.local.fault_proxy import FaultProxy
from tooling.local.function_url import FunctionUrlServer
from tooling.local.log_router import LogRouter, deployed_subscriptions
from tooling.local.runtime import LocalFunction, emulator_environment, function_spec, provided_libraries
from tooling.local.stream_poller import StreamPoller, deployed_mapping
from tooling.paths import BUILD_DIR, ROOT
from tooling.synth import synth_environment
from tooling.terraform import TerraformError, write_cli_config

TARGETS = ("embedded", "localstack")
LOCALSTACK_ENDPOINT = "http://127.0.0.1:4566"


class TargetUnavailable(TerraformError):
    """The chosen target cannot run on this machine (e.g. no Docker engine for LocalStack)."""


def docker_available() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return "no Docker engine is running (docker info failed)"
    return None


def clients(endpoint: str, region: str) -> dict[str, Any]:
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
    names = ("dynamodb", "dynamodbstreams", "sqs", "sns", "lambda", "logs")
    return {name: session.client(name, endpoint_url=endpoint) for name in names}


@dataclass
class StackInfo:
    config: EnvironmentConfig
    endpoint: str
    outputs: dict[str, Any]
    webhook_url: str
    secret_source: str
    secret: str


class LocalStack:
    """Start with `with LocalStack() as stack:`; everything it started is stopped on exit."""

    def __init__(self, target: str = "embedded", echo: Callable[[str], None] = print,
                 stream_terraform: bool = False, concurrency: int = 2, echo_function_logs: bool = False) -> None:
        if target not in TARGETS:
            raise TargetUnavailable(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
        self.target, self.echo, self.stream_terraform = target, echo, stream_terraform
        self.concurrency = concurrency
        self.router = LogRouter(echo=echo_function_logs)
        self.emulator: EmbeddedEmulator | None = None
        self.proxy: FaultProxy | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.url_server: FunctionUrlServer | None = None
        self.poller: StreamPoller | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self.info: StackInfo | None = None
        self.app = None
        self.aws: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    # ---- start -----------------------------------------------------------------------------
    def start(self) -> StackInfo:
        import time

        os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"  # moto's Streams with botocore >= 1.44.4
        config = load_config("local")
        started = time.monotonic()
        if self.target == "localstack":
            problem = docker_available()
            if problem:
                raise TargetUnavailable(f"the localstack target needs Docker: {problem}. These machines have no "
                                        "Docker engine; use --target embedded (the default).")
            subprocess.run(["docker", "compose", "up", "-d", "--wait"], cwd=ROOT, check=True)
            endpoint = LOCALSTACK_ENDPOINT
        else:
            self.emulator = EmbeddedEmulator().start()
            endpoint = self.emulator.endpoint
        self.timings["emulator"] = time.monotonic() - started

        phase = time.monotonic()
        artifacts = build_all(LAMBDA_ARM64)
        host_zips = build_all(host_platform())
        self.timings["build"] = time.monotonic() - phase
        phase = time.monotonic()
        app = synth_environment(config, BUILD_DIR / "cdktf.out" / "local-local", artifacts)
        self.app = app
        self.timings["synth"] = time.monotonic() - phase

        if self.target == "embedded":  # a fresh emulator: state from an earlier run describes nothing
            shutil.rmtree(ROOT / config.backend.directory, ignore_errors=True)
        phase = time.monotonic()
        aws_env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                   "AWS_REGION": config.region, "AWS_DEFAULT_REGION": config.region}
        deployer = Deployer(config, app, write_cli_config(), env=deploy_environment(config, aws_env),
                            echo=self.echo, stream=self.stream_terraform)
        deployer.run_steps(deployer.deploy_steps())
        outputs = deployer.outputs()
        write_outputs(config, outputs)
        self.timings["terraform apply"] = time.monotonic() - phase

        self.aws = clients(endpoint, config.region)
        if self.emulator is not None:
            self._start_runtime(config, endpoint, host_zips)
        source, secrets = next(iter(config.local_webhook_secrets.items()))
        webhook_url = self.url_server.url if self.url_server else outputs["webhook_url"]
        self.info = StackInfo(config, endpoint, outputs, webhook_url, source, secrets[0])
        self.timings["total"] = time.monotonic() - started
        return self.info

    def _start_runtime(self, config: EnvironmentConfig, endpoint: str, host_zips: dict) -> None:
        # The functions reach the emulator through the fault proxy (a pass-through until told otherwise).
        self.proxy = FaultProxy(endpoint).start()
        runtime_dir = provided_libraries(BUILD_DIR / "local" / "runtime")
        base_env = emulator_environment(self.proxy.endpoint, config.region)
        for key in FUNCTION_NAMES:
            spec = function_spec(self.aws["lambda"], function_name(config, key))
            self.functions[key] = LocalFunction(spec, host_zips[key].path, BUILD_DIR / "local" / "code",
                                                runtime_dir, base_env, self.router, self.concurrency)
        targets = {fn.spec.arn: fn for fn in self.functions.values()}
        names = [fn.spec.name for fn in self.functions.values()]
        self.router.connect(deployed_subscriptions(self.aws["logs"], names), targets)
        self.url_server = FunctionUrlServer(self.functions["webhook_processor"]).start()
        mapping = deployed_mapping(self.aws["lambda"], function_name(config, "price_enricher"))
        self.poller = StreamPoller(mapping, self.functions["price_enricher"], self.aws["dynamodbstreams"],
                                   self.aws["sqs"], config.region).start()
        self._flusher = threading.Thread(target=self._flush_logs, daemon=True)
        self._flusher.start()

    def _flush_logs(self) -> None:
        while not self._stop.wait(1.0):
            self.router.flush()

    def settle(self, timeout: float = 120.0) -> bool:
        """Wait until the stream is drained and pending log lines are delivered (embedded target)."""
        idle = self.poller.wait_idle(timeout) if self.poller else True
        self.router.flush()
        return idle

    # ---- stop ------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        if self.poller:
            self.poller.stop()
        if self.url_server:
            self.url_server.stop()
        for function in self.functions.values():
            function.close()
        if self.proxy:
            self.proxy.stop()
        if self.emulator:
            self.emulator.stop()
        if self.target == "localstack" and docker_available() is None:
            subprocess.run(["docker", "compose", "down", "-v"], cwd=ROOT, check=False)

    def __enter__(self) -> "LocalStack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def signed_post(url: str, body: bytes, source: str, secret: str, query: str = "",
                timestamp: int | None = None) -> tuple[int, dict]:
    """POST a signed webhook the way an integrator does (used by demo, e2e and load tests)."""
    import json
    import time
    import urllib.error
    import urllib.request

    from functions.webhook_processor.signature import signature_header

    stamp = int(time.time()) if timestamp is None else timestamp
    request = urllib.request.Request(url + (f"?{query}" if query else ""), data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Source": source,
        "X-Signature": signature_header([secret], stamp, body)})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def local_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
