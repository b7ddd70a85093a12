"""A recording proxy in front of moto's server that can answer from its recordings instantly.

Why: moto 5.2 serializes every response through botocore's service model, which costs
about 2-5 ms of its CPU per item returned (cProfile: `moto.core.serialize`), so a read-API
request that returns 1,000 ticks spends seconds in moto and only tens of milliseconds in
the handler. To tell the two apart, `invoke bench` times each request twice: against
moto's server, and against this proxy once it has recorded moto's answers for exactly
those requests. The second figure is the handler's own time on this machine (botocore's
HTTP, signing and parsing included), with a DynamoDB that answers in well under a
millisecond; it is a lower bound for AWS, where each round trip takes a few ms.

Run as its own process (`python -m evidence.replay_server TARGET_URL`), so that answering
costs the measured process no CPU and no GIL: it prints its port on the first line of
stdout and serves until its stdin closes. Requests are keyed on (X-Amz-Target, body);
a key it has not recorded is forwarded to TARGET_URL and recorded. Answers keep moto's
status, body and headers (x-amz-crc32 included, which botocore checks).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_SKIPPED_HEADERS = {"date", "server", "connection", "transfer-encoding", "content-length", "keep-alive"}


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as DynamoDB's endpoint and botocore's pool use
    target: tuple[str, int]
    recordings: dict[tuple[str, bytes], tuple[int, list[tuple[str, str]], bytes]]
    lock: threading.Lock

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK would hold the body back ~40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        key = (self.headers.get("X-Amz-Target", ""), body)
        with self.lock:
            answer = self.recordings.get(key)
        if answer is None:
            answer = self._forward(body)
            with self.lock:
                self.recordings[key] = answer
        status, headers, data = answer
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.target, timeout=120)
        try:
            headers = {name: value for name, value in self.headers.items() if name.lower() != "connection"}
            connection.request("POST", self.path, body, headers)
            response = connection.getresponse()
            data = response.read()
            kept = [(name, value) for name, value in response.getheaders() if name.lower() not in _SKIPPED_HEADERS]
            return response.status, kept, data
        finally:
            connection.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(target_url: str) -> None:
    parts = urlsplit(target_url)
    handler = type("Recorder", (_Recorder,), {"target": (parts.hostname or "127.0.0.1", parts.port or 80),
                                              "recordings": {}, "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # the parent's lifeline: serve until it closes stdin (or dies)
    server.shutdown()


class ReplayServer:
    """`with ReplayServer(moto_endpoint) as replay:` then point a client at `replay.endpoint`."""

    def __init__(self, target_url: str) -> None:
        self.target_url = target_url
        self.endpoint = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ReplayServer:
        root = Path(__file__).resolve().parent.parent
        self._process = subprocess.Popen([sys.executable, "-m", "evidence.replay_server", self.target_url],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root)
        assert self._process.stdout is not None
        port = self._process.stdout.readline().strip()
        if not port.isdigit():
            self.__exit__(None, None, None)
            raise RuntimeError("the replay server did not start")
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            if self._process.stdin:
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


if __name__ == "__main__":
    serve(sys.argv[1])
