"""The on-disk spool: every tick is committed here before it counts as received, and
leaves only when the webhook has answered 200 or 202 for it.

SQLite in WAL mode. All calls run on one dedicated thread (one connection, no locking
between threads), so the event loop never blocks on a commit or an fsync.

Tables:
- `ticks`: one row per received ticker, the exchange-native JSON text as forwarded.
  `batch_id` is set once the tick is put in a batch.
- `batches`: a batch is fixed when formed: its ticks, in id order, make its body, so a
  re-send after a failure (or after a restart) has exactly the same bytes.
- `set_aside`: ticks the webhook refused (a 4xx, or listed in `rejected`), with the
  status and error, kept for an operator and never retried automatically. Bounded
  apart from the ticks: at most `set_aside_max` rows (the oldest go first) and none
  older than `set_aside_max_age_ms`, pruned whenever rows are set aside and at open.
  A refused tick will never be delivered, so keeping the newest sample of what was
  refused, and why, is what an operator needs; an unbounded table is not.

The spool is bounded (`max_ticks`): at the bound new ticks are refused (dropped and
counted) rather than old ones evicted, because the old ones were already counted as
received and promised delivery in order; a ticker is a full snapshot, so the next one
after recovery carries the current state again.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from price_relay.config import ConfigError

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS ticks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    batch_id INTEGER
);
CREATE INDEX IF NOT EXISTS ticks_by_batch ON ticks (exchange, batch_id, id);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS set_aside (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tick_id INTEGER NOT NULL,
    exchange TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error TEXT NOT NULL,
    set_aside_ms INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Batch:
    """A fixed batch: its body is the JSON array of its ticks' payloads in id order."""

    id: int
    exchange: str
    tick_ids: tuple[int, ...]
    body: bytes

    @property
    def size(self) -> int:
        return len(self.tick_ids)


@dataclass(frozen=True)
class AddResult:
    """What `Spool.add` did, per exchange: ticks committed, ticks refused at the bound,
    and the exchange's unbatched count afterwards."""

    added: dict[str, int]
    dropped: dict[str, int]
    pending: dict[str, int]
    depth: int


def body_of(payloads: list[str]) -> bytes:
    """The request body for a batch: a JSON array of the payloads, as stored."""
    return ("[" + ",".join(payloads) + "]").encode("utf-8")


class Spool:
    """The async face of the SQLite spool (see module docstring)."""

    def __init__(self, path: Path, *, max_ticks: int, synchronous: str = "FULL", set_aside_max: int = 10_000,
                 set_aside_max_age_ms: int = 7 * 86_400_000) -> None:
        self.path = Path(path)
        self.max_ticks = max_ticks
        self.set_aside_max = set_aside_max
        self.set_aside_max_age_ms = set_aside_max_age_ms
        self._set_aside_held = 0
        self.synchronous = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._depth = 0
        self._unbatched: dict[str, int] = {}  # touched on the spool thread only

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating if needed) and lock the spool; ConfigError (one line) if it cannot be."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-spool")
        try:
            await self._call(self._open)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    async def close(self) -> None:
        """Close the database and release the lock; safe to call twice."""
        if self._executor is None:
            return
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def set_aside_held(self) -> int:
        """Set-aside rows the spool holds now (bounded by set_aside_max)."""
        return self._set_aside_held

    @property
    def depth(self) -> int:
        """Ticks in the spool (unbatched and batched, not the set-aside ones)."""
        return self._depth

    # -- operations (each one thread hop) --------------------------------------------

    async def add(self, items: list[tuple[str, str, int]]) -> AddResult:
        """Commit (exchange, payload, received_ms) ticks in one transaction, up to the bound."""
        return await self._call(self._add, items)

    async def take_batch(self, exchange: str, max_count: int, max_bytes: int,
                         max_age_ms: int) -> tuple[Batch | None, float | None]:
        """The exchange's oldest unsent batch, or a new one when `max_count` ticks are
        pending or the oldest pending tick is `max_age_ms` old. Otherwise (None, seconds
        until the oldest pending tick is due, or None when nothing is pending)."""
        return await self._call(self._take_batch, exchange, max_count, max_bytes, max_age_ms)

    async def acknowledge(self, batch: Batch, rejected: Sequence[tuple[object, str]],
                          status: int) -> tuple[int, int]:
        """The webhook took the batch: remove its ticks; the `rejected` (index, error)
        elements go to `set_aside`. Returns (rows set aside, old rows pruned by the bound)."""
        return await self._call(self._acknowledge, batch, rejected, status)

    async def set_aside(self, batch: Batch, status: int, error: str) -> tuple[int, int]:
        """The webhook refused the whole batch (4xx): move all its ticks to `set_aside`."""
        rejected = [(index, error) for index in range(batch.size)]
        return await self._call(self._acknowledge, batch, rejected, status)

    async def pending_total(self) -> int:
        """Unbatched ticks across exchanges (for tests and status)."""
        return await self._call(lambda: self._scalar("SELECT COUNT(*) FROM ticks WHERE batch_id IS NULL"))

    async def set_aside_rows(self) -> list[dict[str, Any]]:
        """The set-aside ticks, oldest first (for operators and tests)."""
        def rows() -> list[dict[str, Any]]:
            cursor = self._conn.execute("SELECT tick_id, exchange, payload, received_ms, status, error "
                                        "FROM set_aside ORDER BY id")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return await self._call(rows)

    # -- thread side -----------------------------------------------------------------

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the spool is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    def _scalar(self, sql: str, *params: Any) -> Any:
        return self._conn.execute(sql, params).fetchone()[0]

    def _open(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise ConfigError(f"spool: cannot create {lock_path}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(f"spool: {self.path} is in use by another relay") from None
        self._lock_fd = fd
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise ConfigError(f"spool: {self.path} cannot use WAL mode (network file system?)")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(SCHEMA)
        except sqlite3.Error as error:
            self._release_lock()
            raise ConfigError(f"spool: cannot open {self.path}: {error}") from None
        except ConfigError:
            self._release_lock()
            raise
        self._db = db
        self._depth = self._scalar("SELECT COUNT(*) FROM ticks")
        self._unbatched = dict(db.execute("SELECT exchange, COUNT(*) FROM ticks WHERE batch_id IS NULL "
                                          "GROUP BY exchange").fetchall())
        self._set_aside_held = self._scalar("SELECT COUNT(*) FROM set_aside")
        db.execute("BEGIN IMMEDIATE")
        try:
            self._prune_set_aside(int(time.time() * 1000))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._release_lock()

    def _add(self, items: list[tuple[str, str, int]]) -> AddResult:
        room = max(0, self.max_ticks - self._depth)
        kept, refused = items[:room], items[room:]
        added: dict[str, int] = {}
        dropped: dict[str, int] = {}
        for exchange, _, _ in refused:
            dropped[exchange] = dropped.get(exchange, 0) + 1
        if kept:
            db = self._conn
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT INTO ticks (exchange, payload, received_ms) VALUES (?, ?, ?)", kept)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._depth += len(kept)
            for exchange, _, _ in kept:
                added[exchange] = added.get(exchange, 0) + 1
            for exchange, count in added.items():
                self._unbatched[exchange] = self._unbatched.get(exchange, 0) + count
        pending = {exchange: self._unbatched[exchange] for exchange in added}
        return AddResult(added=added, dropped=dropped, pending=pending, depth=self._depth)

    def _load_batch(self, batch_id: int, exchange: str) -> Batch:
        rows = self._conn.execute("SELECT id, payload FROM ticks WHERE exchange = ? AND batch_id = ? ORDER BY id",
                                  (exchange, batch_id)).fetchall()
        return Batch(id=batch_id, exchange=exchange, tick_ids=tuple(r[0] for r in rows),
                     body=body_of([r[1] for r in rows]))

    def _take_batch(self, exchange: str, max_count: int, max_bytes: int,
                    max_age_ms: int) -> tuple[Batch | None, float | None]:
        db = self._conn
        existing = db.execute("SELECT id FROM batches WHERE exchange = ? ORDER BY id LIMIT 1", (exchange,)).fetchone()
        if existing is not None:
            return self._load_batch(existing[0], exchange), None
        rows = db.execute("SELECT id, length(CAST(payload AS BLOB)), received_ms FROM ticks "
                          "WHERE exchange = ? AND batch_id IS NULL ORDER BY id LIMIT ?",
                          (exchange, max_count)).fetchall()
        if not rows:
            self._unbatched[exchange] = 0
            return None, None
        now_ms = int(time.time() * 1000)
        age_ms = now_ms - rows[0][2]
        if len(rows) < max_count and 0 <= age_ms < max_age_ms:
            return None, (max_age_ms - age_ms) / 1000
        chosen: list[int] = []
        size = 2  # the brackets
        for tick_id, length, _ in rows:
            if chosen and size + length + 1 > max_bytes:
                break
            chosen.append(tick_id)
            size += length + 1
        db.execute("BEGIN IMMEDIATE")
        try:
            batch_id = db.execute("INSERT INTO batches (exchange, created_ms) VALUES (?, ?)",
                                  (exchange, now_ms)).lastrowid
            assert batch_id is not None
            db.execute("UPDATE ticks SET batch_id = ? WHERE exchange = ? AND batch_id IS NULL AND id BETWEEN ? AND ?",
                       (batch_id, exchange, chosen[0], chosen[-1]))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._unbatched[exchange] = max(0, self._unbatched.get(exchange, 0) - len(chosen))
        return self._load_batch(batch_id, exchange), None

    def _prune_set_aside(self, now_ms: int) -> int:
        """Inside a transaction: drop set-aside rows past the age limit, then the oldest
        beyond the bound. Returns how many went."""
        db = self._conn
        pruned = db.execute("DELETE FROM set_aside WHERE set_aside_ms < ?",
                            (now_ms - self.set_aside_max_age_ms,)).rowcount
        held = self._set_aside_held - pruned
        if held > self.set_aside_max:
            pruned += db.execute("DELETE FROM set_aside WHERE id IN (SELECT id FROM set_aside ORDER BY id LIMIT ?)",
                                 (held - self.set_aside_max,)).rowcount
        self._set_aside_held = self._scalar("SELECT COUNT(*) FROM set_aside")
        return pruned

    def _acknowledge(self, batch: Batch, rejected: Sequence[tuple[object, str]], status: int) -> tuple[int, int]:
        db = self._conn
        now_ms = int(time.time() * 1000)
        aside = []
        seen: set[int] = set()
        for index, error in rejected:
            if isinstance(index, int) and 0 <= index < batch.size and index not in seen:
                seen.add(index)
                aside.append((batch.tick_ids[index], status, str(error)[:1000], now_ms))
        held_before = self._set_aside_held
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO set_aside (tick_id, exchange, payload, received_ms, status, error, "
                           "set_aside_ms) SELECT id, exchange, payload, received_ms, ?, ?, ? FROM ticks WHERE id = ?",
                           [(s, e, t, tick_id) for tick_id, s, e, t in aside])
            removed = db.execute("DELETE FROM ticks WHERE exchange = ? AND batch_id = ?",
                                 (batch.exchange, batch.id)).rowcount
            db.execute("DELETE FROM batches WHERE id = ?", (batch.id,))
            self._set_aside_held += len(aside)
            pruned = self._prune_set_aside(now_ms) if aside else 0
            db.execute("COMMIT")
        except BaseException:
            self._set_aside_held = held_before
            db.execute("ROLLBACK")
            raise
        self._depth -= removed
        return len(aside), pruned
