"""What moto cannot do without Docker, played for a deployed environment: the functions run
in the local Lambda runtime, the webhook's function URL is served, the stream mapping is
polled, log lines are routed through the deployed subscription filters.

Narrow inputs: an endpoint, a region, the deployed function names and the zips to run.
Everything else (handlers, environments, timeouts, roles, the mapping, the filters) is read back
from what Terraform deployed into the emulator.

IAM is enforced (emulator/iam_gate.py): each function, and the stream mapping reading for the
stream's function, signs with a session of the function's own execution role, and each call is
evaluated against that role's policies in the fault proxy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from emulator import session
from emulator.fault_proxy import FaultProxy
from emulator.function_url import FunctionUrlServer
from emulator.iam_gate import IamGate
from emulator.log_router import LogRouter, deployed_subscriptions
from emulator.runtime import LocalFunction, emulator_environment, function_spec, provided_libraries
from emulator.stream_poller import StreamPoller, deployed_mapping


@dataclass(frozen=True)
class Deployed:
    """The deployed functions to run: key -> (function name, zip for this machine, built for `python`)."""

    functions: Mapping[str, tuple[str, Path]]
    stream_function: str  # key of the function behind the stream mapping


class EmulatedServices:
    """Start with `with EmulatedServices(...) as services:`; everything is stopped on exit."""

    def __init__(self, endpoint: str, region: str, deployed: Deployed, work_dir: Path, python: Path, *,
                 concurrency: int = 2, echo_function_logs: bool = False) -> None:
        self.endpoint, self.region, self.deployed, self.work_dir = endpoint, region, deployed, work_dir
        self.python = python  # the Lambda runtime's Python (3.12), which the zips' bytecode is for
        self.concurrency = concurrency
        self.aws = session.clients(endpoint, region)
        self.gate = IamGate({name: session.client(name, endpoint, region) for name in IamGate.ADMIN_CLIENTS},
                            account=session.client("sts", endpoint, region).get_caller_identity()["Account"])
        self.router = LogRouter(echo=echo_function_logs)
        self.proxy: FaultProxy | None = None
        self.service_proxy: FaultProxy | None = None  # the gate without fault rules: Lambda's own calls
        self.functions: dict[str, LocalFunction] = {}
        self.url_servers: dict[str, FunctionUrlServer] = {}
        self.poller: StreamPoller | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def start(self) -> EmulatedServices:
        # The functions reach the emulator through the fault proxy (a pass-through until told otherwise).
        self.proxy = FaultProxy(self.endpoint, gate=self.gate).start()
        runtime_dir = provided_libraries(self.work_dir / "runtime", self.python)
        base_env = emulator_environment(self.proxy.endpoint, self.region)
        for key, (name, zip_path) in self.deployed.functions.items():
            spec = function_spec(self.aws["lambda"], name)
            identity = self.gate.assume(spec.role, name)  # the role terraform created, as deployed
            self.functions[key] = LocalFunction(spec, zip_path, self.work_dir / "code", runtime_dir, base_env,
                                                self.router, self.python, self.concurrency,
                                                credentials=IamGate.environment(identity))
        targets = {fn.spec.arn: fn for fn in self.functions.values()}
        self.router.connect(deployed_subscriptions(self.aws["logs"], [fn.spec.name for fn in self.functions.values()]),
                            targets)
        for key, function in self.functions.items():
            # Which functions have a URL, and its auth type (NONE for the webhook, AWS_IAM for the
            # read API), as deployed, not as assumed.
            try:
                auth = self.aws["lambda"].get_function_url_config(FunctionName=function.spec.name)["AuthType"]
            except self.aws["lambda"].exceptions.ResourceNotFoundException:
                continue
            self.url_servers[key] = FunctionUrlServer(function, auth_type=auth, region=self.region,
                                                      gate=self.gate).start()
        stream_function = self.functions[self.deployed.stream_function]
        mapping = deployed_mapping(self.aws["lambda"], stream_function.spec.name)
        # Lambda's poller reads the stream and sends on-failure records with the function's role.
        poller_role = self.gate.assume(stream_function.spec.role, f"{stream_function.spec.name}-mapping")
        # Through a gate of its own, not the fault proxy: the faults the tests inject are for the functions.
        self.service_proxy = FaultProxy(self.endpoint, gate=self.gate).start()
        reader = self.gate.clients(poller_role, self.service_proxy.endpoint, self.region,
                                   ("dynamodbstreams", "sqs"))
        self.poller = StreamPoller(mapping, stream_function, reader["dynamodbstreams"], reader["sqs"],
                                   self.region).start()
        self._flusher = threading.Thread(target=self._flush_logs, daemon=True)
        self._flusher.start()
        return self

    def url(self, key: str) -> str:
        """The local URL that stands in for a function's URL."""
        return self.url_servers[key].url

    def stop_url(self, key: str) -> None:
        """Take a function URL off the network (its port refuses connections): an outage."""
        self.url_servers[key].stop()

    def restart_url(self, key: str) -> None:
        """Serve a stopped function URL again, on the same port."""
        old = self.url_servers[key]
        self.url_servers[key] = FunctionUrlServer(old.function, old.port, auth_type=old.auth_type,
                                                  region=old.region, gate=old.gate).start()

    def _flush_logs(self) -> None:
        while not self._stop.wait(1.0):
            self.router.flush()

    def settle(self, timeout: float = 120.0) -> bool:
        """Wait until the stream is drained and pending log lines are delivered."""
        idle = self.poller.wait_idle(timeout) if self.poller else True
        self.router.flush()
        return idle

    def stop(self) -> None:
        self._stop.set()
        if self.poller:
            self.poller.stop()
        for server in self.url_servers.values():
            server.stop()
        for function in self.functions.values():
            function.close()
        for proxy in (self.proxy, self.service_proxy):
            if proxy:
                proxy.stop()

    def __enter__(self) -> EmulatedServices:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


