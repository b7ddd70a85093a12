"""Loopback stand-ins for the relay's tests: an exchange websocket server that replays
scripts of recorded frames, and the webhook (price_relay.loopback's `WebhookStandIn`, shared
with the relay's benchmark), verifying signatures as docs/webhook-contract.md says.

Both bind 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve

from price_relay.loopback import WebhookStandIn

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
