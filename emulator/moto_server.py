"""moto's server bound to 127.0.0.1 on a free port, with the patches in emulator/moto_patches.py.

By default in a child process of its own: the local stack's other parts (function URL
server, fault proxy, stream poller, subscribers) then do not contend with moto for one
interpreter's GIL, which under load cost more than the work itself (py-spy: the GIL was
held 40 % of the time while the process burnt a whole core). In-process on request, for
tests that switch the patches on and off around requests.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

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


class EmbeddedEmulator:
    def __init__(self, port: int | None = None, in_process: bool = False) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.in_process = in_process
        self._server: Any = None  # moto's ThreadedMotoServer, when in-process
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> EmbeddedEmulator:
        if self.in_process:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
            moto_patches.install()
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
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
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_patches.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
    finally:
        server.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
