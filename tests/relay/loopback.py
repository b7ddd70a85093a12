"""Loopback stand-ins for the relay's tests: an exchange websocket server that replays
scripts of recorded frames, and the webhook, verifying signatures as docs/webhook-contract.md says.

Both bind 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve

SECRET = "relay-test-secret-9f1c2e"   # test-only: known to the loopback stand-in alone
SOURCE = "relay-test"
T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T], timeout: float = 12.0) -> T:
    """Run one scenario in a fresh event loop, bounded so that a hang fails the test."""
    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, timeout)
    return asyncio.run(bounded())


async def until(predicate: Callable[[], bool], timeout: float = 8.0, what: str = "condition") -> None:
    """Wait for a condition, bounded: fail with `what` if it is not met in time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


# -- the exchange -------------------------------------------------------------------------

@dataclass
class Send:
    """Send these frames, in order, as fast as possible."""
    frames: list[str]


@dataclass
class AwaitSubscribe:
    """Wait for the client's first message (its subscribe), as the exchanges do."""


@dataclass
class Gate:
    """Wait until the test opens this gate."""
    event: asyncio.Event


@dataclass
class Every:
    """Send `frame` every `seconds`, `times` times (heartbeats)."""
    frame: str
    seconds: float
    times: int


@dataclass
class Close:
    """Server-initiated close (1001 going away, as an exchange does on maintenance)."""
    code: int = 1001
    reason: str = "going away"


Step = Send | AwaitSubscribe | Gate | Every | Close


@dataclass
class Connection:
    """What the server saw on one connection."""
    path: str
    inbox: list[str] = field(default_factory=list)
    sent: int = 0
    message: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


class ScriptedExchange:
    """websockets.serve on 127.0.0.1: connection n plays scripts[n] (the last one repeats).

    After its script a connection stays open and silent until the client leaves. With
    `pong=True` it answers Kraken's `{"method":"ping"}` with a documented pong.
    """

    def __init__(self, scripts: list[list[Step]], *, pong: bool = False, path: str = "/") -> None:
        self.scripts = scripts
        self.pong = pong
        self.path = path
        self.connections: list[Connection] = []
        self._server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> ScriptedExchange:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}{self.path}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def pings(self) -> int:
        return sum(json.loads(m).get("method") == "ping" for c in self.connections for m in c.inbox)

    async def _read(self, ws: ServerConnection, connection: Connection) -> None:
        async for message in ws:
            connection.inbox.append(message if isinstance(message, str) else message.decode())
            connection.message.set()
            if self.pong and json.loads(connection.inbox[-1]).get("method") == "ping":
                await ws.send(json.dumps({"method": "pong", "time_in": "2023-09-24T14:10:23.799685Z",
                                          "time_out": "2023-09-24T14:10:23.799703Z"}))

    async def _handle(self, ws: ServerConnection) -> None:
        connection = Connection(path=ws.request.path if ws.request else "")
        self.connections.append(connection)
        script = self.scripts[min(len(self.connections) - 1, len(self.scripts) - 1)]
        reader = asyncio.create_task(self._read(ws, connection))
        try:
            for step in script:
                if isinstance(step, Send):
                    for frame in step.frames:
                        await ws.send(frame)
                        connection.sent += 1
                elif isinstance(step, AwaitSubscribe):
                    await asyncio.wait_for(connection.message.wait(), timeout=5)
                elif isinstance(step, Gate):
                    await step.event.wait()
                elif isinstance(step, Every):
                    for _ in range(step.times):
                        await ws.send(step.frame)
                        await asyncio.sleep(step.seconds)  # the server's pace, not a test wait
                elif isinstance(step, Close):
                    await ws.close(step.code, step.reason)
                    return
            await ws.wait_closed()
        except Exception:
            pass
        finally:
            connection.closed = True
            reader.cancel()


# -- the webhook ----------------------------------------------------------------------------

def element_texts(body: bytes) -> list[str]:
    """The exact text of each element of a JSON array body (byte-identity is the point)."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    index = text.index("[") + 1
    items: list[str] = []
    while True:
        while text[index] in " \t\r\n,":
            index += 1
        if text[index] == "]":
            return items
        _, end = decoder.raw_decode(text, index)
        items.append(text[index:end])
        index = end


def _positive(value: Any) -> bool:
    try:
        return Decimal(str(value)) > 0
    except (InvalidOperation, ValueError):
        return False


def check_element(fmt: str, element: Any) -> str | None:
    """The webhook's verdict on one exchange-native element: None, or the error text.
    Covers what the relay is responsible for: the shape, a positive price, an event time."""
    if not isinstance(element, dict):
        return "update: must be an object"
    if fmt == "binance":
        event = element.get("data", element)
        if event.get("e") != "24hrTicker":
            return "e: must be 24hrTicker"
        rows = [(event.get("c"), event.get("E"))]
    elif fmt == "coinbase":
        if element.get("type") != "ticker":
            return "type: must be ticker"
        rows = [(element.get("price"), element.get("time"))]
    elif fmt == "kraken":
        if element.get("channel") != "ticker" or not isinstance(element.get("data"), list):
            return "data: must be a non-empty list of tickers"
        rows = [(row.get("last"), row.get("timestamp")) for row in element["data"]]
    elif fmt == "generic":
        if not isinstance(element.get("symbol"), str) or not isinstance(element.get("exchange"), str):
            return "symbol: is required"
        rows = [(element.get("price"), element.get("timestamp"))]
    else:
        return f"format: unknown {fmt!r}"
    for price, event_time in rows:
        if not _positive(price):
            return "price: must be greater than 0"
        if event_time is None:
            return "timestamp: missing (the relay must add the receive time)"
    return None


@dataclass
class Received:
    """One request the stand-in answered."""
    status: int
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class WebhookStandIn:
    """The webhook on 127.0.0.1, as docs/webhook-contract.md describes it.

    - 401 unless X-Source is known and X-Signature `t=<unix>,v1=<hex>[,v1=...]` carries a
      valid HMAC-SHA256 of b"<t>." + body within 300 s;
    - each element is checked; a byte-identical element seen before counts as a
      duplicate, a new one is stored; answers {"accepted","duplicates","queued","rejected"};
      no valid element at all is a 400, like the real webhook;
    - `mode`: "ok", "400" (refuses the body), "500" (stores nothing), "store_then_500"
      (stores, then fails: the re-send finds duplicates); `stop()` makes it unreachable
      and `start()` brings it back on the same port.
    """

    def __init__(self, secrets: dict[str, list[str]]) -> None:
        self.secrets = secrets
        self.mode = "ok"
        self.requests: list[Received] = []
        self.stored: list[str] = []          # first deliveries, in arrival order
        self._seen: set[str] = set()
        self.duplicates = 0
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> WebhookStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = stand_in.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                                        name="webhook-stand-in")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = None

    def _verify(self, headers: dict[str, str], body: bytes) -> str | None:
        source = headers.get("x-source", "")
        if source not in self.secrets:
            return "unauthorized: unknown source"
        timestamp, candidates = None, []
        for part in headers.get("x-signature", "").split(","):
            name, _, value = part.strip().partition("=")
            if name == "t" and value.isdigit():
                timestamp = int(value)
            elif name == "v1":
                candidates.append(value)
        if timestamp is None or not candidates:
            return "unauthorized: X-Signature must be 't=<unix seconds>,v1=<hex>'"
        if abs(time.time() - timestamp) > 300:
            return "unauthorized: signature timestamp outside the allowed window"
        message = str(timestamp).encode() + b"." + body
        expected = [hmac.new(s.encode(), message, hashlib.sha256).hexdigest() for s in self.secrets[source]]
        if not any(hmac.compare_digest(c, e) for c in candidates for e in expected):
            return "unauthorized: bad signature"
        return None

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        query = parse_qs(urlsplit(path).query)
        with self.lock:
            status, answer = self._answer(query, headers, body)
            self.requests.append(Received(status, query, headers, body))
            return status, answer

    def _answer(self, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        unauthorized = self._verify(headers, body)
        if unauthorized:
            return 401, {"error": unauthorized}
        if self.mode == "400":
            return 400, {"error": "format: refused by the test"}
        if self.mode == "500":
            return 500, {"error": "some updates could not be stored or queued; retry the request"}
        fmt = query.get("format", ["generic"])[0]
        texts = element_texts(body)
        accepted, duplicates, rejected = 0, 0, []
        for index, text in enumerate(texts):
            error = check_element(fmt, json.loads(text, parse_float=Decimal))
            if error:
                rejected.append({"index": index, "error": error})
            elif text in self._seen:
                duplicates += 1
            else:
                self._seen.add(text)
                self.stored.append(text)
                accepted += 1
        self.duplicates += duplicates
        if not accepted and not duplicates:
            return 400, {"error": "no valid update in the batch", "accepted": 0, "duplicates": 0, "queued": 0,
                         "rejected": rejected}
        result = {"accepted": accepted, "duplicates": duplicates, "queued": 0, "rejected": rejected}
        if self.mode == "store_then_500":
            return 500, {**result, "error": "some updates could not be stored or queued; retry the request"}
        return 200, result

    def bodies(self, status: int = 200) -> list[bytes]:
        with self.lock:
            return [r.body for r in self.requests if r.status == status]

    def count(self, status: int | None = None) -> int:
        with self.lock:
            return sum(status is None or r.status == status for r in self.requests)



def relay_config(tmp_path: Any, exchange: str, ws_url: str, webhook: WebhookStandIn, **overrides: Any) -> Any:
    """A RelayConfig for loopback scenarios: short timers so each test stays well under 15 s."""
    from price_relay.config import ExchangeConfig, RelayConfig
    from tests.relay.frames import SYMBOLS

    exchange_overrides = {k: overrides.pop(k) for k in ("max_connection_seconds", "channel") if k in overrides}
    exchange_overrides.setdefault("channel", "ticker")  # the ticker scenarios; trade ones pass channel="trade"
    settings: dict[str, Any] = {
        "exchanges": (ExchangeConfig(exchange, SYMBOLS[exchange], ws_url=ws_url, **exchange_overrides),),
        "webhook_url": webhook.url, "source": SOURCE, "secret": SECRET, "spool_path": tmp_path / "spool.db",
        "batch_size": 10, "batch_seconds": 0.2, "silence_seconds": 5.0, "backoff_base_seconds": 0.02,
        "backoff_max_seconds": 0.1, "http_timeout_seconds": 2.0, "drain_seconds": 2.0}
    settings.update(overrides)
    return RelayConfig(**settings)
