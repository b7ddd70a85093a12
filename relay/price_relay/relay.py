"""The relay: exchange streams in, spool in the middle, signed batches out.

Tasks in one event loop:
- one `ExchangeStream` per exchange, putting tickers on a bounded in-memory queue;
- one spool writer, committing whatever the queue holds in one transaction (a group
  commit: one fsync for many ticks under load, one per tick when quiet). A tick counts
  as received only once committed;
- one sender per exchange: takes the oldest batch (or forms one at `batch_size` ticks or
  after `batch_seconds`), POSTs it, retries it with backoff until the webhook answers
  200/202 (or refuses it with a 4xx), and only then removes it from the spool. One batch
  in flight per exchange keeps each exchange's ticks in order, oldest first.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Coroutine
from typing import Any

from price_relay.backoff import full_jitter
from price_relay.config import RelayConfig, redact_url
from price_relay.observability import Counters, get_logger
from price_relay.spool import Batch, Spool
from price_relay.stream import ExchangeStream
from price_relay.webhook import Outcome, endpoint, post_batch

log = get_logger("relay")

QUEUE_TICKS = 10_000          # received, not yet committed: the websocket readers wait when it is full
WRITE_GROUP = 2_000           # at most this many ticks per spool transaction
DROP_LOG_SECONDS = 10.0       # while the spool is full, one ERROR line per this many seconds
HIGH_WATER = 0.8              # spool depth that triggers the loud warning


def _count(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class Relay:
    """The relay, startable and stoppable in-process (tests, the benchmark) or via `run`.

    `counters` and `snapshot()` report progress; `stop()` drains for up to
    `drain_seconds`, `abort()` stops at once (what a crash would leave: the spool).
    """

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.counters = Counters()
        self.spool = Spool(config.spool_path, max_ticks=config.spool_max, synchronous=config.spool_synchronous,
                           set_aside_max=config.set_aside_max,
                           set_aside_max_age_ms=int(config.set_aside_max_age_seconds * 1000))
        self.streams: dict[str, ExchangeStream] = {}
        self.failed: BaseException | None = None
        self._queue: asyncio.Queue[tuple[str, str, int]] | None = None
        self._stopping = asyncio.Event()
        self._failure = asyncio.Event()
        self._progress = asyncio.Event()
        self._wake: dict[str, asyncio.Event] = {}
        self._stream_tasks: list[asyncio.Task[None]] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closed = False
        self._high = False
        self._dropping = False
        self._dropped_unlogged = 0
        self._drop_logged_at = 0.0

    # -- public API ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool (ConfigError if it is locked or unusable) and start every task."""
        if self._started:
            raise RuntimeError("a Relay starts once")
        self._started = True
        await self.spool.open()
        self._queue = asyncio.Queue(maxsize=QUEUE_TICKS)
        log.info("relay starting", extra={
            "event": "start", "webhook": redact_url(self.config.webhook_url), "source": self.config.source,
            "exchanges": {e.exchange: list(e.symbols) for e in self.config.exchanges},
            "spool": str(self.config.spool_path), "spooled": self.spool.depth,
            "batch_size": self.config.batch_size, "batch_seconds": self.config.batch_seconds})
        self._check_depth()
        self._worker_tasks.append(self._spawn(self._write_loop(), "relay-writer"))
        self._worker_tasks.append(self._spawn(self._stats_loop(), "relay-stats"))
        for exchange in self.config.exchanges:
            self._wake[exchange.exchange] = asyncio.Event()
            sender = self._spawn(self._send_loop(exchange.exchange), f"relay-send-{exchange.exchange}")
            self._worker_tasks.append(sender)
        for exchange in self.config.exchanges:
            stream = ExchangeStream(self.config, exchange, self._sink, self.counters, self._stopping)
            self.streams[exchange.exchange] = stream
            self._stream_tasks.append(self._spawn(stream.run(), f"relay-stream-{exchange.exchange}"))
            if stream.aggregator is not None:
                self._worker_tasks.append(self._spawn(self._window_loop(stream), f"relay-trades-{exchange.exchange}"))

    async def stop(self, drain_seconds: float | None = None) -> None:
        """Stop reading, commit what was read, send what is spooled for up to
        `drain_seconds` (default: the config's), then close. Unsent ticks stay spooled."""
        if not self._started or self._closed:
            return
        drain = self.config.drain_seconds if drain_seconds is None else drain_seconds
        loop = asyncio.get_running_loop()
        self._stopping.set()
        await self._cancel(self._stream_tasks)
        if not self._failure.is_set():
            for stream in self.streams.values():
                await stream.send_due(final=True)  # the open trade windows are received trades: send them
        if self._queue is not None and not self._failure.is_set():
            try:
                await asyncio.wait_for(self._queue.join(), timeout=10)
            except TimeoutError:
                log.error("could not commit every received tick before stopping", extra={"event": "stop_flush"})
        for event in self._wake.values():
            event.set()  # senders now send partial batches at once
        deadline = loop.time() + drain
        while self.spool.depth > 0 and loop.time() < deadline and not self._failure.is_set():
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), timeout=deadline - loop.time())
            except TimeoutError:
                break
        await self._close()
        log.info("relay stopped", extra={"event": "stop", **self.snapshot()})

    async def abort(self) -> None:
        """Stop at once, as a crash would: no flush, no drain. The spool keeps what it has."""
        if not self._started or self._closed:
            return
        self._stopping.set()
        await self._cancel(self._stream_tasks)
        await self._close()
        log.warning("relay aborted", extra={"event": "abort", **self.snapshot()})

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Start, run until `stop` is set (forever without one), then stop and drain.
        Returns 0, or 1 if an internal task failed. Cancelling it aborts the relay."""
        if not self._started:
            await self.start()
        waiters = [asyncio.ensure_future(self._failure.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self.abort()
            raise
        finally:
            for waiter in waiters:
                waiter.cancel()
        await self.stop()
        return 1 if self.failed is not None else 0

    def snapshot(self) -> dict[str, int]:
        """The counters, the spool's current depth and the set-aside rows it holds."""
        return {**self.counters.snapshot(self.spool.depth), "set_aside_held": self.spool.set_aside_held}

    def status_text(self) -> str:
        """One line for the live status display."""
        c = self.snapshot()
        links = " ".join(f"{name}:{'up' if s.connected else 'down'}" for name, s in self.streams.items())
        return (f"{links} | received {c['received']} sent {c['sent']} accepted {c['accepted']} "
                f"dup {c['duplicates']} spooled {c['spooled']} retried {c['retried']} "
                f"set-aside {c['set_aside']} (held {c['set_aside_held']}, pruned {c['set_aside_pruned']}) "
                f"dropped {c['dropped']} reconnects {c['reconnects']}")

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- tasks -----------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping.is_set():
            return
        error = task.exception()
        if error is None:
            error = RuntimeError(f"{task.get_name()} ended")
        self.failed = error
        log.critical("an internal task failed; the relay stops", exc_info=(type(error), error, error.__traceback__),
                     extra={"event": "task_failed", "task": task.get_name()})
        self._failure.set()

    async def _cancel(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close(self) -> None:
        self._closed = True
        self._stopping.set()
        await self._cancel(self._stream_tasks + self._worker_tasks)
        await self.spool.close()

    async def _sink(self, exchange: str, payload: str, received_ms: int) -> None:
        assert self._queue is not None
        await self._queue.put((exchange, payload, received_ms))

    async def _write_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            items = [await queue.get()]
            while len(items) < WRITE_GROUP:
                try:
                    items.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                result = await self.spool.add(items)
            except sqlite3.Error as error:
                # Not committed, so not received: count them as dropped, loudly, and go on.
                self.counters.dropped += len(items)
                log.error("spool write failed; ticks dropped", extra={"event": "spool_error", "ticks": len(items),
                                                                      "error": str(error)[:300]})
                continue
            finally:
                for _ in items:
                    queue.task_done()
            self.counters.received += sum(result.added.values())
            for exchange, pending in result.pending.items():
                before = pending - result.added[exchange]
                if before == 0 or pending >= self.config.batch_size:
                    self._wake[exchange].set()
            self._note_drops(sum(result.dropped.values()))
            self._check_depth()

    async def _send_loop(self, exchange: str) -> None:
        wake = self._wake[exchange]
        while True:
            wake.clear()
            max_age_ms = 0 if self._stopping.is_set() else int(self.config.batch_seconds * 1000)
            batch, wait = await self.spool.take_batch(exchange, self.config.batch_size, self.config.max_body_bytes,
                                                      max_age_ms)
            if batch is None:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=wait)
                except TimeoutError:
                    pass
                continue
            await self._deliver(batch)

    async def _deliver(self, batch: Batch) -> None:
        config = self.config
        # Ticker channels post ?format=<exchange>; trade ticks are the generic format, posted
        # without one, so the webhook reads each element by its shape (a spool that still holds
        # tickers from before a switch to trades is delivered too).
        channel = config.exchange(batch.exchange).channel
        url = endpoint(config.webhook_url, batch.exchange if channel == "ticker" else None)
        attempt = 0
        while True:
            answer = await asyncio.to_thread(post_batch, url, config.source, config.secret, batch.body,
                                             config.http_timeout_seconds)
            self.counters.requests += 1
            details = {"exchange": batch.exchange, "batch": batch.id, "ticks": batch.size, "status": answer.status}
            if answer.outcome is Outcome.DELIVERED:
                listed = answer.body.get("rejected") or []
                rejected = [(item.get("index"), str(item.get("error", "")))
                            for item in listed if isinstance(item, dict)]
                aside, pruned = await self.spool.acknowledge(batch, rejected, answer.status)
                self.counters.set_aside_pruned += pruned
                counters = self.counters
                counters.sent += batch.size
                counters.accepted += _count(answer.body, "accepted")
                counters.duplicates += _count(answer.body, "duplicates")
                counters.queued += _count(answer.body, "queued")
                counters.set_aside += aside
                if aside:
                    log.warning("the webhook rejected items; set aside", extra={
                        "event": "rejected", **details, "set_aside": aside,
                        "errors": [error[:200] for _, error in rejected[:5]]})
                if answer.status == 202:
                    log.warning("the webhook queued updates to its DLQ", extra={
                        "event": "queued", **details, "queued": _count(answer.body, "queued")})
                log.debug("batch delivered", extra={"event": "delivered", **details})
                self._progress.set()
                self._check_depth()
                return
            if answer.outcome is Outcome.SET_ASIDE:
                error = answer.error or f"HTTP {answer.status}"
                aside, pruned = await self.spool.set_aside(batch, answer.status, error)
                self.counters.set_aside += aside
                self.counters.set_aside_pruned += pruned
                log.error("the webhook refused the batch; set aside, not retried", extra={
                    "event": "set_aside", **details, "error": error})
                self._progress.set()
                self._check_depth()
                return
            self.counters.retried += 1
            delay = full_jitter(attempt, config.backoff_base_seconds, config.backoff_max_seconds)
            attempt += 1
            log.log(logging.ERROR if answer.status == 401 else logging.WARNING,
                    "webhook unavailable; the batch stays in the spool and is retried", extra={
                        "event": "retry", **details, "attempt": attempt, "retry_in": round(delay, 3),
                        "error": answer.error})
            await asyncio.sleep(delay)

    async def _window_loop(self, stream: ExchangeStream) -> None:
        """Close trade windows on the local clock (a quiet symbol's last window goes too)."""
        period = min(0.25, self.config.trade_window_seconds / 4)
        while True:
            await asyncio.sleep(period)
            await stream.send_due()

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_seconds)
            log.info("stats", extra={"event": "stats", **self.snapshot()})

    # -- spool bound -----------------------------------------------------------------

    def _check_depth(self) -> None:
        depth, bound = self.spool.depth, self.config.spool_max
        if depth >= HIGH_WATER * bound and not self._high:
            self._high = True
            log.warning("SPOOL AT 80% OF ITS BOUND: the webhook is not keeping up or is unreachable; "
                        "at the bound new ticks are refused", extra={
                            "event": "spool_high", "spooled": depth, "spool_max": bound})
        elif depth < HIGH_WATER * bound and self._high:
            self._high = False
            log.info("spool back under 80% of its bound", extra={"event": "spool_ok", "spooled": depth,
                                                                 "spool_max": bound})

    def _note_drops(self, dropped: int) -> None:
        loop_time = asyncio.get_running_loop().time()
        if dropped:
            self.counters.dropped += dropped
            self._dropped_unlogged += dropped
            if not self._dropping or loop_time - self._drop_logged_at >= DROP_LOG_SECONDS:
                log.error("spool full: new ticks refused and dropped", extra={
                    "event": "dropped", "dropped": self._dropped_unlogged, "dropped_total": self.counters.dropped,
                    "spool_max": self.config.spool_max})
                self._dropped_unlogged = 0
                self._drop_logged_at = loop_time
            self._dropping = True
        elif self._dropping and self.spool.depth < self.config.spool_max:
            if self._dropped_unlogged:
                log.error("spool full: new ticks refused and dropped", extra={
                    "event": "dropped", "dropped": self._dropped_unlogged, "dropped_total": self.counters.dropped,
                    "spool_max": self.config.spool_max})
                self._dropped_unlogged = 0
            self._dropping = False
            log.info("spool accepting ticks again", extra={"event": "accepting", "spooled": self.spool.depth})
