"""moto's server bound to 127.0.0.1 on a free port, with the patches in emulator/moto_patches.py.

By default in a child process of its own: the local stack's other parts (function URL
server, fault proxy, stream poller, subscribers) then do not contend with moto for one
interpreter's GIL, which under load cost more than the work itself (py-spy: the GIL was
held 40 % of the time while the process burnt a whole core). In-process on request, for
tests that switch the patches on and off around requests.

Served by cheroot, not by moto's own `ThreadedMotoServer` (werkzeug's development server).
Werkzeug closes the connection after every response ("Always close the connection. This
disables HTTP/1.1 keep-alive connections", werkzeug/serving.py) and starts a thread per
connection, so every AWS call paid a TCP connect, a thread start and the teardown: measured
with py-spy, most of moto's time under load went to werkzeug, not to moto. cheroot keeps
connections alive, as AWS endpoints do, and serves them from a thread pool (idle
connections wait in a selector, not on a thread). The WSGI application is moto's own.
Measured on the 2-core machine: 183 -> 302 sequential Queries/s, and 20 concurrent Queries
in 73 -> 46 ms.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from emulator import moto_patches
from emulator.children import stop_child

# The folder that holds the `emulator` package: the child process imports it from there.
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmulatorStartError(RuntimeError):
    """moto's server did not answer in time."""


SERVER_THREADS = 16  # requests served at once; the local stack's clients keep ~10-30 connections open


class MotoServer:
    """moto's WSGI application under cheroot on 127.0.0.1 (see the module docstring), in a thread."""

    def __init__(self, port: int) -> None:
        from cheroot import wsgi
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self._server = wsgi.Server(("127.0.0.1", port), DomainDispatcherApplication(create_backend_app),
                                   numthreads=SERVER_THREADS, request_queue_size=128)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server.prepare()  # binds the port before start() returns
        self._thread = threading.Thread(target=self._server.serve, name="moto-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


class EmbeddedEmulator:
    def __init__(self, port: int | None = None, in_process: bool = False) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.in_process = in_process
        self._server: MotoServer | None = None  # when in-process
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> EmbeddedEmulator:
        if self.in_process:
            moto_patches.install()
            self._server = MotoServer(self.port)
            self._server.start()
            return self
        # stdin is the child's lifeline: it exits when this process closes it or dies.
        self._process = subprocess.Popen([sys.executable, "-m", "emulator.moto_server", str(self.port)],
                                         stdin=subprocess.PIPE, cwd=_PACKAGE_PARENT, env=_child_environment())
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise EmulatorStartError(f"moto's server did not start on {self.endpoint}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=2).close()
            return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._process is not None:
            stop_child(self._process, timeout=10)
            self._process = None

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def _child_environment() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(_PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def serve(port: int) -> None:
    """The child process: moto with the patches, until stdin closes."""
    moto_patches.install()
    server = MotoServer(port)
    server.start()
    try:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
    finally:
        server.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
