"""The whole pipeline on one machine: an emulator, the local environment built, synthesized
and applied into it with terraform, then the emulated services (functions, function URL,
stream poller, log router) started from what was deployed.

Targets: `embedded` (moto in its own process, on this machine) or `localstack` (Docker,
docker-compose.yml; these machines have no Docker engine, so it stops with a clear error).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from delivery.build import LAMBDA_ARM64, build_all, host_platform, runtime_python
from delivery.deployer import Deployer, deploy_environment, write_outputs
from delivery.local_session import clear_running_local, write_running_local
from delivery.paths import BUILD_DIR, ROOT
from delivery.synth import SynthesizedApp, synth_environment
from delivery.terraform import write_cli_config
from emulator import session
from emulator.moto_server import EmbeddedEmulator
from emulator.services import Deployed, EmulatedServices
from environments.config import EnvironmentConfig, LocalStateBackend, load_config
from errors import PipelineError
from ops.secrets import seed_local_secrets
from stacks.names import FUNCTION_NAMES, function_name

TARGETS = ("embedded", "localstack")
LOCALSTACK_ENDPOINT = "http://127.0.0.1:4566"


class TargetUnavailable(PipelineError):
    """The chosen target cannot run on this machine (e.g. no Docker engine for LocalStack)."""


def docker_available() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return "no Docker engine is running (docker info failed)"
    return None


def require_target(target: str) -> None:
    """Fail in one line when the target is unknown or cannot run here."""
    if target not in TARGETS:
        raise TargetUnavailable(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if target == "localstack":
        problem = docker_available()
        if problem:
            raise TargetUnavailable(f"the localstack target needs Docker: {problem}. These machines have no "
                                    "Docker engine; use --target embedded (the default).")


@dataclass
class StackInfo:
    config: EnvironmentConfig
    endpoint: str
    outputs: dict[str, Any]
    webhook_url: str
    secret_source: str
    secret: str
    price_api_url: str | None = None
    token_source: tuple[str, str] | None = None  # (source id, dev-only token) of the local token sender


class LocalDeployment:
    """Start with `with LocalDeployment() as local:`; everything it started is stopped on exit."""

    def __init__(self, target: str = "embedded", echo: Callable[[str], None] = print,
                 stream_terraform: bool = False, concurrency: int = 2, echo_function_logs: bool = False,
                 config: EnvironmentConfig | None = None) -> None:
        """`config`: the local environment by default; the end-to-end tests pass it with optional
        sections switched on (the relay stack), so that those are applied into the emulator too."""
        if target not in TARGETS:
            require_target(target)
        self.target, self.echo, self.stream_terraform = target, echo, stream_terraform
        self.concurrency, self.echo_function_logs = concurrency, echo_function_logs
        self.emulator: EmbeddedEmulator | None = None
        self.services: EmulatedServices | None = None
        self.info: StackInfo | None = None
        self.app: SynthesizedApp | None = None
        self.aws: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.config = config

    # ---- start -----------------------------------------------------------------------------
    def start(self) -> StackInfo:
        os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"  # moto's Streams with botocore >= 1.44.4
        config = self.config or load_config("local")
        started = time.monotonic()
        endpoint = self._start_emulator()
        self.timings["emulator"] = time.monotonic() - started

        phase = time.monotonic()
        artifacts = build_all(LAMBDA_ARM64)
        host_zips = build_all(host_platform())
        self.timings["build"] = time.monotonic() - phase
        phase = time.monotonic()
        self.app = synth_environment(config, BUILD_DIR / "cdktf.out" / "local-local", artifacts)
        self.timings["synth"] = time.monotonic() - phase

        if self.target == "embedded" and isinstance(config.backend, LocalStateBackend):
            # A fresh emulator: state from an earlier run describes nothing.
            shutil.rmtree(ROOT / config.backend.directory, ignore_errors=True)
        phase = time.monotonic()
        deployer = Deployer(config, self.app, write_cli_config(),
                            env=deploy_environment(config, session.environment(endpoint, config.region)),
                            echo=self.echo, stream=self.stream_terraform)
        storage = config.resource_name("storage")
        steps = deployer.deploy_steps()
        deployer.run_steps([step for step in steps if step.stack == storage])
        # The dev-only secret goes into the emulator's Secrets Manager, never through terraform,
        # before any function can run.
        seed_local_secrets(config, session.client("secretsmanager", endpoint, config.region))
        deployer.run_steps([step for step in steps if step.stack != storage])
        outputs = deployer.outputs()
        write_outputs(config, outputs)
        self.timings["terraform apply"] = time.monotonic() - phase

        self.aws = session.clients(endpoint, config.region)
        webhook_url = outputs["webhook_url"]
        price_api_url = outputs.get("price_api_url")
        if self.emulator is not None:
            deployed = Deployed({key: (function_name(config, key), host_zips[key].path) for key in FUNCTION_NAMES},
                                stream_function="price_enricher")
            self.services = EmulatedServices(endpoint, config.region, deployed, BUILD_DIR / "local",
                                             runtime_python().executable,
                                             concurrency=self.concurrency,
                                             echo_function_logs=self.echo_function_logs).start()
            webhook_url = self.services.url("webhook_processor")
            price_api_url = self.services.url("price_api") if "price_api" in self.services.url_servers else None
        source, secret = config.local_source("hmac") or ("", "")
        self.info = StackInfo(config, endpoint, outputs, webhook_url, source, secret, price_api_url,
                              config.local_source("token"))
        write_running_local(webhook_url, endpoint, price_api_url)
        self.timings["total"] = time.monotonic() - started
        return self.info

    def _start_emulator(self) -> str:
        require_target(self.target)
        if self.target == "localstack":
            subprocess.run(["docker", "compose", "up", "-d", "--wait"], cwd=ROOT, check=True)
            return LOCALSTACK_ENDPOINT
        self.emulator = EmbeddedEmulator().start()
        return self.emulator.endpoint

    # ---- what tests and tasks use ------------------------------------------------------------
    @property
    def running(self) -> StackInfo:
        """Where the started deployment listens; only after start()."""
        if self.info is None:
            raise RuntimeError("the local deployment is not started")
        return self.info

    @property
    def proxy(self) -> Any:
        """The fault proxy in front of the emulator (embedded target)."""
        return self.services.proxy if self.services else None

    @property
    def functions(self) -> dict[str, Any]:
        return self.services.functions if self.services else {}

    def settle(self, timeout: float = 120.0) -> bool:
        """Wait until the stream is drained and pending log lines are delivered (embedded target)."""
        return self.services.settle(timeout) if self.services else True

    # ---- stop ------------------------------------------------------------------------------
    def stop(self) -> None:
        clear_running_local()
        if self.services:
            self.services.stop()
        if self.emulator:
            self.emulator.stop()
        if self.target == "localstack" and docker_available() is None:
            subprocess.run(["docker", "compose", "down", "-v"], cwd=ROOT, check=False)

    def __enter__(self) -> LocalDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def banner(info: StackInfo) -> str:
    """What `invoke local` prints: where everything is, and the dev-only credentials for it.
    Its `token source:`, `local dev token:` and `price API URL:` lines are the issues' wording,
    which scripts and the README rely on (tests/test_local_banner.py)."""
    token_source, token = info.token_source or ("-", "-")
    return (f"webhook URL:        {info.webhook_url}\nemulator endpoint:  {info.endpoint}\n"
            f"signing source:     {info.secret_source}\nlocal dev secret:   {info.secret}  (dev-only)\n"
            f"token source: {token_source}\n"
            f"local dev token: {token}  (dev-only)\n"
            f"price API URL: {info.price_api_url}\n"
            f"price API signing:  SigV4 (service lambda, {info.config.region}) with access key "
            f"{session.ACCESS_KEY_ID!r}, secret key {session.SECRET_ACCESS_KEY!r} (the emulator's dummy credentials)\n"
            f"table:              {info.outputs['table_name']}")


def run_until_interrupted(deployment: LocalDeployment) -> None:
    """`invoke local`: print where everything is, then keep it running until Ctrl-C."""
    print(f"\n{banner(deployment.running)}\n\nCtrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping")
