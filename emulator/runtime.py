"""Local Lambda runtime: runs a function's zip in isolated worker processes.

moto cannot execute Lambda code without Docker, so this plays the Lambda service's
part for the embedded stack. Each function's configuration (handler, environment,
timeout, memory) is read back from the emulator, i.e. from what Terraform deployed.

The workers run on CPython 3.12, Lambda's python3.12 runtime, not on this venv's
Python: the zips carry 3.12 bytecode and 3.12 native wheels, and a function that
only works on the venv's version must fail here, as it would in AWS.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from emulator import session
from emulator.children import stop_child

# What the Lambda Python runtime provides besides the zip.
RUNTIME_LIBRARIES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
# Their distributions: the installed versions say when the compiled copy is stale.
_RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python_dateutil", "urllib3", "six")
BOOTSTRAP = Path(__file__).with_name("bootstrap.py")

LogSink = Callable[[str, str], None]  # (function name, log line)


class FunctionError(Exception):
    """The function raised (Lambda's "Unhandled" function error)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class RuntimeStartError(Exception):
    """A worker could not import its handler (Runtime.ImportModuleError)."""


class RuntimeLibraryError(RuntimeStartError):
    """The runtime-provided libraries cannot be offered to the runtime's Python."""


def _mirror(source: Path, destination: Path) -> None:
    """Real folders where Python modules live (their __pycache__ is written here), links for the rest."""
    if source.is_file():
        destination.symlink_to(source)
    elif not any(source.rglob("*.py")):  # botocore/data: thousands of JSON files, linked as one folder
        destination.symlink_to(source, target_is_directory=True)
    else:
        destination.mkdir()
        for entry in sorted(source.iterdir()):
            if entry.name != "__pycache__":
                _mirror(entry, destination / entry.name)


def provided_libraries(target: Path, python: Path) -> Path:
    """A folder with only the runtime-provided libraries, with bytecode for the runtime's Python.

    The sources are linked from this interpreter's site-packages (3.11): they are pure
    Python (checked here), so they run on 3.12. `python` is the workers' interpreter (the
    build's CPython 3.12, so code and bytecode match). Their 3.12 bytecode is compiled once
    into this folder, as Lambda's runtime has it: the workers never write bytecode, and
    without it every cold start would compile boto3 and botocore from source (~4 s).
    """
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    installed = sorted(p.name for p in site.glob("*.dist-info") if p.name.split("-")[0] in _RUNTIME_DISTRIBUTIONS)
    stamp = json.dumps({"python": str(python), "site": str(site),
                        "installed": installed})
    complete = target / ".complete"
    if complete.is_file() and complete.read_text() == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        for name in RUNTIME_LIBRARIES:
            source = site / name
            if not source.exists():
                raise RuntimeLibraryError(f"{name} is not installed in {site}, and the Lambda runtime provides it")
            native = next((p for p in ([source] if source.is_file() else source.rglob("*.so*"))
                           if ".so" in p.suffixes), None)
            if native is not None:
                raise RuntimeLibraryError(f"{native} is compiled for this venv's Python, so the workers' "
                                          f"{python} cannot load it")
            _mirror(source, staging / name)
        result = subprocess.run(
            [str(python), "-P", "-S", "-s", "-m", "compileall", "-q", "--invalidation-mode", "timestamp",
             *(str(staging / name) for name in RUNTIME_LIBRARIES)],
            capture_output=True, text=True, check=False, env={})
        if result.returncode != 0:
            last_line = ((result.stdout + result.stderr).strip().splitlines() or ["no output"])[-1]
            raise RuntimeLibraryError(f"{python} cannot compile the runtime libraries: {last_line}")
        (staging / ".complete").write_text(stamp)
        staging.chmod(0o755)
        if target.is_symlink() or target.is_file():
            target.unlink()
        shutil.rmtree(target, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:  # another process published the same folder meanwhile
            if not (complete.is_file() and complete.read_text() == stamp):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
    role: str = ""  # the execution role's ARN, as deployed


class _Worker:
    def __init__(self, spec: FunctionSpec, code_dir: Path, runtime_dir: Path, base_env: dict[str, str],
                 log_sink: LogSink, python: Path) -> None:
        env = {**base_env, **spec.environment, "AWS_LAMBDA_FUNCTION_NAME": spec.name,
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory), "LOCAL_FUNCTION_ARN": spec.arn,
               "LOCAL_FUNCTION_TIMEOUT": str(spec.timeout), "PYTHONUNBUFFERED": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}
        # -B as well: -I ignores every PYTHON* variable, PYTHONDONTWRITEBYTECODE included, and a
        # worker must not write bytecode (Lambda's /var/task is read-only; the zip brings its own).
        self.process = subprocess.Popen(
            [str(python), "-I", "-S", "-B", str(BOOTSTRAP), str(code_dir), str(runtime_dir),
             spec.handler],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.process.stdin and self.process.stdout and self.process.stderr  # all three are pipes
        self._requests, self._answers = self.process.stdin, self.process.stdout
        self._logs = threading.Thread(target=self._pump_logs, args=(spec.name, self.process.stderr, log_sink),
                                      daemon=True)
        self._logs.start()
        ready = json.loads(self._answers.readline() or '{"ready": false, "error": "worker exited"}')
        if not ready.get("ready"):
            self.close()
            raise RuntimeStartError(f"{spec.name}: cannot import {spec.handler}: {ready.get('error')}")
        self._ids = itertools.count()

    def _pump_logs(self, name: str, lines: IO[str], sink: LogSink) -> None:
        for line in lines:
            sink(name, line.rstrip("\n"))

    def invoke(self, event: dict[str, Any], request_id: str) -> Any:
        request_number = next(self._ids)
        self._requests.write(json.dumps({"id": request_number, "event": event, "request_id": request_id}) + "\n")
        self._requests.flush()
        answer = json.loads(self._answers.readline() or '{"error": {"errorType": "Runtime.ExitError", '
                                                             '"errorMessage": "worker exited"}}')
        if "error" in answer:
            raise FunctionError(answer["error"]["errorType"], answer["error"]["errorMessage"])
        return answer["result"]

    def close(self) -> None:
        stop_child(self.process, timeout=5)


class LocalFunction:
    """A pool of warm workers for one function (its local concurrency)."""

    def __init__(self, spec: FunctionSpec, zip_path: Path, work_dir: Path, runtime_dir: Path,
                 base_env: dict[str, str], log_sink: LogSink, python: Path, concurrency: int = 2,
                 credentials: dict[str, str] | None = None) -> None:
        """`credentials`: the variables of the role session the workers sign with (as Lambda sets
        AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN); without them, `base_env`'s."""
        self.spec = spec
        base_env = {**base_env, **(credentials or {})}
        code_dir = unpack(zip_path, work_dir / spec.name)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers = [_Worker(spec, code_dir, runtime_dir, base_env, log_sink, python)
                         for _ in range(concurrency)]
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
        timeout=configuration.get("Timeout", 60), memory=configuration.get("MemorySize", 128),
        role=configuration.get("Role", ""))


def emulator_environment(endpoint: str, region: str) -> dict[str, str]:
    """Environment of every local function: the emulator's endpoint and dummy credentials."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TZ", "HOME")}
    return {**keep, **session.environment(endpoint, region)}
