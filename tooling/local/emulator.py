"""moto's server, in this process, bound to 127.0.0.1 on a free port.

In-process (ThreadedMotoServer) rather than a subprocess, because moto registers the
enricher's stream mapping on the table and then tries to run the function in Docker on
every write, dropping the stream records; the fix reaches into moto's backend.
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from types import TracebackType

from moto.server import ThreadedMotoServer



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedEmulator:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> "EmbeddedEmulator":
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def detach_stream_mappings(self, table_name: str, region: str) -> int:
        """Stop moto from invoking mapped functions itself (it would need Docker and drop the records).

        The Terraform-created mapping stays visible through list_event_source_mappings,
        which is where the local poller reads its configuration from.
        """
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.backends import get_backend

        table = get_backend("dynamodb")[DEFAULT_ACCOUNT_ID][region].get_table(table_name)
        count = len(table.lambda_event_source_mappings)
        table.lambda_event_source_mappings.clear()
        return count

    def __enter__(self) -> "EmbeddedEmulator":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
