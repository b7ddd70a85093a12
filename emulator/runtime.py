"""Local Lambda runtime: runs a function's zip in isolated worker processes.

moto cannot execute Lambda code without Docker, so this plays the Lambda service's
part for the embedded stack. Each function's configuration (handler, environment,
timeout, memory) is read back from the emulator, i.e. from what Terraform deployed.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator import session
from emulator.children import stop_child

# What the Lambda Python runtime provides besides the zip.
RUNTIME_LIBRARIES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
BOOTSTRAP = Path(__file__).with_name("bootstrap.py")

LogSink = Callable[[str, str], None]  # (function name, log line)


class FunctionError(Exception):
    """The function raised (Lambda's "Unhandled" function error)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class RuntimeStartError(Exception):
    """A worker could not import its handler (Runtime.ImportModuleError)."""


def provided_libraries(target: Path) -> Path:
    """A folder with only the runtime-provided libraries, linked from this interpreter's site-packages."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    target.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_LIBRARIES:
        link = target / name
        if not link.exists() and (site / name).exists():
            link.symlink_to(site / name)
    return target


def unpack(zip_path: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(target)
    return target


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout: int
    memory: int


class _Worker:
    def __init__(self, spec: FunctionSpec, code_dir: Path, runtime_dir: Path, base_env: dict[str, str],
                 log_sink: LogSink) -> None:
        env = {**base_env, **spec.environment, "AWS_LAMBDA_FUNCTION_NAME": spec.name,
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory), "LOCAL_FUNCTION_ARN": spec.arn,
               "LOCAL_FUNCTION_TIMEOUT": str(spec.timeout), "PYTHONUNBUFFERED": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(BOOTSTRAP), str(code_dir), str(runtime_dir), spec.handler],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self._logs = threading.Thread(target=self._pump_logs, args=(spec.name, log_sink), daemon=True)
        self._logs.start()
        ready = json.loads(self.process.stdout.readline() or '{"ready": false, "error": "worker exited"}')
        if not ready.get("ready"):
            self.close()
            raise RuntimeStartError(f"{spec.name}: cannot import {spec.handler}: {ready.get('error')}")
        self._ids = itertools.count()

    def _pump_logs(self, name: str, sink: LogSink) -> None:
        for line in self.process.stderr:
            sink(name, line.rstrip("\n"))

    def invoke(self, event: dict[str, Any], request_id: str) -> Any:
        request_number = next(self._ids)
        self.process.stdin.write(json.dumps({"id": request_number, "event": event, "request_id": request_id}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline() or '{"error": {"errorType": "Runtime.ExitError", '
                                                             '"errorMessage": "worker exited"}}')
        if "error" in answer:
            raise FunctionError(answer["error"]["errorType"], answer["error"]["errorMessage"])
        return answer["result"]

    def close(self) -> None:
        stop_child(self.process, timeout=5)


class LocalFunction:
    """A pool of warm workers for one function (its local concurrency)."""

    def __init__(self, spec: FunctionSpec, zip_path: Path, work_dir: Path, runtime_dir: Path,
                 base_env: dict[str, str], log_sink: LogSink, concurrency: int = 2) -> None:
        self.spec = spec
        code_dir = unpack(zip_path, work_dir / spec.name)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers = [_Worker(spec, code_dir, runtime_dir, base_env, log_sink) for _ in range(concurrency)]
        for worker in self._workers:
            self._idle.put(worker)
        self._request_ids = itertools.count(1)
        self.invocations = 0

    def invoke(self, event: dict[str, Any]) -> Any:
        worker = self._idle.get()
        try:
            self.invocations += 1
            return worker.invoke(event, f"{self.spec.name}-{next(self._request_ids)}")
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.close()


def function_spec(lambda_client: Any, name: str) -> FunctionSpec:
    """What Terraform deployed, read back from the emulator."""
    configuration = lambda_client.get_function_configuration(FunctionName=name)
    return FunctionSpec(
        name=name, arn=configuration["FunctionArn"], handler=configuration["Handler"],
        environment=configuration.get("Environment", {}).get("Variables", {}),
        timeout=configuration.get("Timeout", 60), memory=configuration.get("MemorySize", 128))


def emulator_environment(endpoint: str, region: str) -> dict[str, str]:
    """Environment of every local function: the emulator's endpoint and dummy credentials."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TZ", "HOME")}
    return {**keep, **session.environment(endpoint, region)}
