"""One exchange's websocket connection, kept alive for as long as the relay runs.

- Connects, sends the exchange's subscribe messages, and hands every ticker to the
  relay's spool writer, stamped with the receive time where the exchange gives none.
- A connection that fails, is closed by the server, or stays silent longer than
  `silence_seconds` is replaced after an exponential backoff with full jitter (the
  backoff restarts once a connection has delivered a ticker).
- A connection older than the exchange's limit (Binance: 24 h) is replaced on purpose,
  at once, before the exchange cuts it.
- Kraken gets an application-level `{"method":"ping"}` at an interval.

The loop is written here rather than with websockets' own `async for ... in connect()`
reconnection, because the relay needs the silence detector, the proactive replacement
and its own counters around each connection.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI, WebSocketException

from price_relay import jsontext
from price_relay.backoff import full_jitter
from price_relay.config import ExchangeConfig, RelayConfig, redact_url
from price_relay.exchanges import FrameKind, get_exchange
from price_relay.observability import Counters, get_logger
from price_relay.trades import TradeAggregator

log = get_logger("stream")

# (exchange, payload text, received_ms) -> None, awaited for backpressure.
TickSink = Callable[[str, str, int], Awaitable[None]]


class SilentStream(Exception):
    """No frame for longer than silence_seconds: the connection is treated as dead."""


class ExchangeStream:
    """The connection loop of one exchange (see module docstring)."""

    def __init__(self, config: RelayConfig, exchange: ExchangeConfig, sink: TickSink, counters: Counters,
                 stopping: asyncio.Event) -> None:
        self.config = config
        self.exchange = exchange
        self.spec = get_exchange(exchange.exchange)
        self.url = self.spec.ws_url(exchange.symbols, exchange.ws_url, exchange.channel)
        self.aggregator = TradeAggregator(self.spec.name, exchange.stored_symbols,
                                          max(1, int(config.trade_window_seconds * 1000))) \
            if exchange.channel == "trade" else None
        self.sink = sink
        self.counters = counters
        self.stopping = stopping
        self.connected = False
        self.connections = 0
        self._delivered = False
        app_ping = self.spec.default_app_ping_seconds
        self.app_ping_seconds = config.kraken_ping_seconds if app_ping is not None else None

    async def run(self) -> None:
        """Connect, read, reconnect, until `stopping` is set (or the task is cancelled)."""
        attempt = 0
        name = self.spec.name
        while not self.stopping.is_set():
            self._delivered, proactive = False, False
            try:
                async with connect(self.url, open_timeout=10, ping_interval=20, ping_timeout=20, close_timeout=2,
                                   max_size=4 * 1024 * 1024) as ws:
                    self.connections += 1
                    if self.connections > 1:
                        self.counters.reconnects += 1
                    self.connected = True
                    log.info("connected", extra={"event": "connected", "exchange": name,
                                                 "url": redact_url(self.url), "symbols": list(self.exchange.symbols)})
                    for message in self.spec.subscribe_messages(self.exchange.symbols, self.exchange.channel):
                        await ws.send(message)
                    proactive = await self._read(ws)
                    if proactive:
                        log.info("replacing the connection before the exchange's limit",
                                 extra={"event": "proactive_reconnect", "exchange": name,
                                        "max_connection_seconds": self.exchange.connection_limit_seconds})
            except SilentStream:
                log.warning("stream silent; reconnecting", extra={"event": "silent", "exchange": name,
                                                                  "silence_seconds": self.config.silence_seconds})
            except ConnectionClosed as error:
                log.warning("connection closed; reconnecting", extra={
                    "event": "closed", "exchange": name,
                    "code": error.rcvd.code if error.rcvd else None,
                    "reason": (error.rcvd.reason if error.rcvd else "")[:200]})
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, WebSocketException) as error:
                log.warning("cannot connect; retrying", extra={"event": "connect_failed", "exchange": name,
                                                               "error": f"{type(error).__name__}: {error}"[:300]})
            finally:
                self.connected = False
            if self.stopping.is_set():
                break
            if self._delivered or proactive:
                attempt = 0
            delay = 0.0 if proactive else full_jitter(attempt, self.config.backoff_base_seconds,
                                                      self.config.backoff_max_seconds)
            attempt += 1
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def _read(self, ws: ClientConnection) -> bool:
        """Read frames until the connection must go: True when it reached its age limit;
        SilentStream or ConnectionClosed otherwise."""
        loop = asyncio.get_running_loop()
        opened = loop.time()
        limit = self.exchange.connection_limit_seconds
        deadline = opened + limit if limit else math.inf
        next_ping = opened + self.app_ping_seconds if self.app_ping_seconds else math.inf
        last_frame = opened
        silence = self.config.silence_seconds
        while True:
            now = loop.time()
            if now >= deadline:
                return True
            if now - last_frame >= silence:
                raise SilentStream()
            if now >= next_ping:
                ping = self.spec.app_ping()
                if ping is not None:
                    await ws.send(ping)
                next_ping = now + (self.app_ping_seconds or math.inf)
            wait = min(last_frame + silence, deadline, next_ping) - now
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    frame = await ws.recv()
            except TimeoutError:
                continue
            last_frame = loop.time()
            if await self._handle(frame):
                self._delivered = True  # this connection works: the backoff starts over

    async def send_due(self, final: bool = False) -> None:
        """Hand the closed trade windows (every open one when `final`) to the spool writer."""
        if self.aggregator is None:
            return
        now_ms = int(time.time() * 1000)
        for payload in self.aggregator.flush() if final else self.aggregator.due(now_ms):
            await self.sink(self.spec.name, payload, now_ms)

    async def _handle(self, frame: str | bytes) -> bool:
        """Classify one frame; forward a ticker. Returns True for a ticker."""
        name = self.spec.name
        try:
            text = frame if isinstance(frame, str) else frame.decode("utf-8")
            message = jsontext.loads(text)
        except (UnicodeDecodeError, ValueError):
            log.warning("frame is not JSON; ignored", extra={"event": "bad_frame", "exchange": name,
                                                             "bytes": len(frame)})
            return False
        if self.aggregator is not None:
            try:
                trades = self.spec.trades(message)
            except (ValueError, ArithmeticError) as error:
                log.warning("trade frame malformed; ignored", extra={"event": "bad_frame", "exchange": name,
                                                                     "error": str(error)[:200]})
                return False
            if trades is not None:
                for payload in self.aggregator.add(trades):
                    await self.sink(name, payload, int(time.time() * 1000))
                return True
        kind = self.spec.classify(message)
        if kind is FrameKind.TICKER and self.aggregator is not None:
            log.debug("ticker on a trade subscription; ignored", extra={"event": "ignored", "exchange": name})
        elif kind is FrameKind.TICKER:
            received_ms = int(time.time() * 1000)
            try:
                payload = jsontext.dumps(message) if self.spec.stamp_event_time(message, received_ms) else text
            except ValueError:
                log.warning("ticker has a non-finite number; ignored", extra={"event": "bad_frame", "exchange": name})
                return False
            await self.sink(name, payload, received_ms)
            return True
        if kind is FrameKind.ACK:
            log.info("subscription acknowledged", extra={"event": "subscribed", "exchange": name})
        elif kind is FrameKind.ERROR:
            log.error("the exchange reported an error", extra={"event": "exchange_error", "exchange": name,
                                                               "error": self.spec.describe_error(message)})
        elif kind is FrameKind.HEARTBEAT:
            log.debug("heartbeat", extra={"event": "heartbeat", "exchange": name})
        else:
            log.debug("frame ignored", extra={"event": "ignored", "exchange": name})
        return False
