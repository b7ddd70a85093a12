"""Rebuild a table's per-venue indicators and its candles in the venue format (one item per
bucket: the composite and each venue) from its stored ticks: the upgrade of a deployment whose
indicators were computed over interleaved venues and whose candles are blended.

Indicators (`rebuild_indicators`, the first phase of each symbol): the symbol's partition is
read once in key order; each venue's ticks go through the enricher's own indicator code
(`functions.price_enricher.indicators`: the windows, the EMA step, the storable decimals)
as one series, seeded with the venue's first stored price; a tick whose stored indicator
attributes differ is rewritten with the enricher's correction put (`ticks.put_correction`:
conditional on the enrichment read, so a concurrent enrichment is never overwritten), which
changes only the indicator attributes and `corrected_at`/`corrected_by` (`corrected_by` = 0:
the rebuild, no batch record). A tick not yet enriched is left to the enricher. The one
other attribute it may move: for the sources named in `volume_24h_sources`, a `volume`
stored by the relay's ticker channel (the exchange's rolling 24 h figure) becomes `volume_24h`,
so candles do not sum it (only on ticks without `volume_24h` and without `trades`, which a
trade-channel tick always carries). Checkpointed per symbol (the key written through, then done).

Candles (`rebuild_symbol`, the second phase):

for each symbol, its ticks are walked an hour at a time in key order and each hour's
keys go through the stream's own maintenance step (`maintain_store`) as late ticks. So the
rebuild computes nothing of its own: every 1m candle of the hour is recomputed from the
ticks (every venue and the composite), every coarse candle and forming prefix holding it is
recombined, and the count guard lets a computation from as many ticks replace the blended
item. No tick is written: prices and times stay as stored. A minute whose ticks TTL may have
partly deleted is left as it is (the step's wholeness check), never rebuilt from a part.

Idempotent (a recomputation from stored ticks gives the same items again) and resumable: a
checkpoint file records, per symbol, the hour up to which it is rebuilt, written after each
hour; a second run skips what is done. `estimate` prices the run before any write.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from errors import PipelineError
from functions.price_enricher.indicators import Windows, ema_step, to_stored, window_indicators
from functions.shared.candles import INTERVALS, MINUTE_MS, bucket_start
from functions.shared.price_table.candles import DynamoCandleStore, maintain_store
from functions.shared.price_table.items import ENRICHED_AT, VENUE, is_indicator
from functions.shared.price_table.keys import PARTITION_KEY, SORT_KEY, event_ms
from functions.shared.price_table.ticks import CorrectionOutcome, put_correction

HOUR_MS = INTERVALS["1h"]
# DynamoDB on-demand prices (us-east-1, per million request units), for the estimate only.
WRITE_PRICE = 0.625
READ_PRICE = 0.125


REBUILD_TRIGGER = 0
"""`corrected_by` of a tick the rebuild corrected (a correction's trigger is otherwise the sort
key of the batch record that caused it; no record has key 0)."""
VOLUME, VOLUME_24H, TRADES, SOURCE = "volume", "volume_24h", "trades", "source"
CHECKPOINT_TICKS = 500
"""Ticks between two writes of the indicator checkpoint (a resumed run re-checks at most these)."""
CORRECTION_ATTEMPTS = 3


class RebuildError(PipelineError):
    """A rebuild that cannot start or finish (one line; the checkpoint keeps what is done)."""


@dataclass(frozen=True)
class Estimate:
    """What a rebuild of `symbols` will cost: the tick bytes it reads (the candle walk, the
    indicator walk and the step's strongly consistent recompute), the writes (each tick whose
    indicators differ or whose volume moves, one per bucket of every interval with ticks, plus
    the registry's per hour), in units and dollars. `volume_by_source`: how many ticks carry
    `volume`, per source, so the operator can decide on `--volume-24h-sources`."""

    symbols: int
    ticks: int
    tick_bytes: int
    read_units: float
    write_units: int
    hours: int = 0
    indicator_writes: int = 0
    volume_moves: int = 0
    unenriched: int = 0
    volume_by_source: tuple[tuple[str, int], ...] = ()
    tick_writes: int = 0

    @property
    def dollars(self) -> float:
        return self.read_units * READ_PRICE / 1e6 + self.write_units * WRITE_PRICE / 1e6

    def text(self) -> str:
        places = 2 if self.dollars >= 0.01 else 6
        volumes = ", ".join(f"{source or '(none)'} {count:,}" for source, count in self.volume_by_source) or "none"
        return (f"rebuild of {self.symbols} symbols, {self.ticks:,} ticks ({self.tick_bytes / 1e6:,.1f} MB): "
                f"~{self.read_units:,.0f} read units, ~{self.write_units:,} write units, ~${self.dollars:,.{places}f}; "
                f"{self.tick_writes:,} ticks rewritten: {self.indicator_writes:,} get their venue's indicators, "
                f"{self.volume_moves:,} volumes move to "
                f"volume_24h, {self.unenriched:,} not yet enriched (left to the enricher); "
                f"ticks carrying volume per source: {volumes}")


def _tick_pages(dynamodb: Any, tick_table: str, symbol: str, after_ms: int,
                consistent: bool = False) -> Iterable[dict[str, Any]]:
    arguments: dict[str, Any] = {
        "TableName": tick_table, "KeyConditionExpression": "#s = :s AND #t >= :t",
        "ExpressionAttributeNames": {"#s": PARTITION_KEY, "#t": SORT_KEY},
        "ExpressionAttributeValues": {":s": {"S": symbol}, ":t": {"N": str(max(after_ms, 0) * 1000)}},
        "ConsistentRead": consistent}
    while True:
        page = dynamodb.query(**arguments)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _ticks_after(dynamodb: Any, tick_table: str, symbol: str) -> Iterable[dict[str, Any]]:
    """The symbol's ticks in key order (consistent reads), then, until a Query finds none, the
    ticks stored after the last one read: on a live table the enricher may have enriched a new
    tick from a neighbour this walk had not corrected yet, and the walk corrects it too."""
    after: int | None = None
    while True:
        arguments: dict[str, Any] = {
            "TableName": tick_table, "ConsistentRead": True,
            "KeyConditionExpression": "#s = :s" if after is None else "#s = :s AND #t > :t",
            "ExpressionAttributeNames": {"#s": PARTITION_KEY, **({} if after is None else {"#t": SORT_KEY})},
            "ExpressionAttributeValues": {":s": {"S": symbol}, **({} if after is None else {":t": {"N": str(after)}})}}
        found = False
        while True:
            page = dynamodb.query(**arguments)
            for item in page.get("Items", []):
                found = True
                after = int(item[SORT_KEY]["N"])
                yield item
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if not found:
            return


def _size(item: dict[str, Any]) -> int:
    """An item's bytes as DynamoDB counts them, near enough for an estimate: names plus the
    text of the values (a number's text is within a byte or two of its stored size)."""
    return sum(len(name) + sum(len(str(value)) for value in typed.values()) for name, typed in item.items())


class _VenueSeries:
    """One venue's indicators, tick after tick, with the enricher's own formulas (the same
    steps as the planner's recomputation, seeded with the venue's first stored price)."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.prices: list[float] = []
        self.ema: dict[int, float | None] = dict.fromkeys(windows.ema)

    def next(self, price: float) -> dict[str, Decimal]:
        self.prices.append(price)
        del self.prices[:-(self.windows.history_needed + 1)]
        for n in self.windows.ema:
            previous = self.ema[n]
            self.ema[n] = price if previous is None else ema_step(previous, price, n)
        values = window_indicators(self.prices, self.windows)
        values.update({f"ema_{n}": state for n, state in self.ema.items() if state is not None})
        return to_stored(values)[0]


@dataclass(frozen=True)
class TickChange:
    """What the rebuild writes to one tick: its recomputed indicators (None: they are as
    stored) and whether its `volume` moves to `volume_24h`."""

    indicators: dict[str, Decimal] | None
    move_volume: bool


def _price(item: dict[str, Any]) -> float | None:
    try:
        price = Decimal(item["price"]["N"])
    except (KeyError, TypeError, ArithmeticError):
        return None
    return float(price) if price.is_finite() and price > 0 else None


class SymbolWalk:
    """A symbol's ticks in key order → what each needs (`change`): pure, so the estimate and
    the run decide alike."""

    def __init__(self, windows: Windows, volume_24h_sources: Iterable[str] = ()) -> None:
        self.windows = windows
        self.sources = frozenset(volume_24h_sources)
        self.series: dict[str, _VenueSeries] = {}
        self.last: dict[str, Decimal] = {}

    def change(self, item: dict[str, Any]) -> TickChange | None:
        """None: nothing to write (as stored, not a price, or not yet enriched)."""
        price = _price(item)
        if price is None:
            return None
        venue = item.get(VENUE, {}).get("S", "")
        self.last = self.series.setdefault(venue, _VenueSeries(self.windows)).next(price)
        return self.decide(item, self.last)

    def decide(self, item: dict[str, Any], values: dict[str, Decimal]) -> TickChange | None:
        """The change a tick holding `item` needs to hold `values` (also for a tick re-read after
        a conflict, against the values already computed for it)."""
        if ENRICHED_AT not in item:
            return None  # its own stream record enriches it, from the corrected history
        stored = {name: Decimal(value["N"]) for name, value in item.items() if is_indicator(name) and "N" in value}
        source = item.get(SOURCE, {}).get("S", "")
        move = source in self.sources and VOLUME in item and VOLUME_24H not in item and TRADES not in item
        if stored == values and not move:
            return None
        return TickChange(None if stored == values else values, move)


def estimate(dynamodb: Any, tick_table: str, symbols: Iterable[str], windows: Windows | None = None,
             volume_24h_sources: Iterable[str] = ()) -> Estimate:
    """Walk the symbols' ticks (eventually consistent: half a read unit per 4 KB), decide each
    tick's change as the run will, and price the rebuild before it writes anything."""
    windows = windows or Windows()
    sources = tuple(volume_24h_sources)
    count = size = writes = tick_writes = indicator_writes = moves = unenriched = all_hours = 0
    volumes: Counter[str] = Counter()
    names = list(symbols)
    for symbol in names:
        buckets: dict[str, set[int]] = {name: set() for name in INTERVALS}
        hours: set[int] = set()
        walk = SymbolWalk(windows, sources)
        for item in _tick_pages(dynamodb, tick_table, symbol, 0):
            count += 1
            item_size = _size(item)
            size += item_size
            moment = event_ms(int(item[SORT_KEY]["N"]))
            hours.add(bucket_start(moment, HOUR_MS))
            for name, length in INTERVALS.items():
                buckets[name].add(bucket_start(moment, length))
            if VOLUME in item:
                volumes[item.get(SOURCE, {}).get("S", "")] += 1
            unenriched += ENRICHED_AT not in item
            change = walk.change(item)
            if change is not None:
                writes += math.ceil(max(item_size, 1) / 1024)
                tick_writes += 1
                indicator_writes += change.indicators is not None
                moves += change.move_volume
        # each hour's step rewrites the coarse buckets holding it (a 4h and a 1d bucket once per hour)
        writes += sum(len(starts) for starts in buckets.values()) + 3 * len(hours) + 2 * len(hours)
        all_hours += len(hours)
    # the candle walk (eventually consistent), the indicator walk and the step's recompute (consistent)
    units = size / 4096 * (0.5 + 1.0 + 1.0)
    return Estimate(len(names), count, size, math.ceil(units * 100) / 100, writes, all_hours, indicator_writes,
                    moves, unenriched, tuple(sorted(volumes.items())), tick_writes)


@dataclass(frozen=True)
class IndicatorReport:
    """One symbol's indicator phase: ticks walked, ticks written (indicators and/or volume),
    volumes moved; `done` False when a symbol was already done (nothing read)."""

    ticks: int = 0
    written: int = 0
    moved: int = 0
    done: bool = True


def _moved(item: dict[str, Any]) -> dict[str, Any]:
    moved = dict(item)
    moved[VOLUME_24H] = moved.pop(VOLUME)
    return moved


def _move_volume(dynamodb: Any, tick_table: str, item: dict[str, Any]) -> bool:
    """`volume` → `volume_24h`, only while the tick still holds that volume and no volume_24h."""
    try:
        dynamodb.update_item(
            TableName=tick_table, Key={PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: item[SORT_KEY]},
            UpdateExpression="SET #v24 = :v REMOVE #v",
            ConditionExpression="#v = :v AND attribute_not_exists(#v24) AND attribute_not_exists(#tr)",
            ExpressionAttributeNames={"#v": VOLUME, "#v24": VOLUME_24H, "#tr": TRADES},
            ExpressionAttributeValues={":v": item[VOLUME]})
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _write(dynamodb: Any, tick_table: str, item: dict[str, Any], change: TickChange, now_ms: int) -> bool:
    """Write one tick's change; False when the tick changed meanwhile (the caller re-reads)."""
    if change.indicators is None:
        return _move_volume(dynamodb, tick_table, item)
    image = _moved(item) if change.move_volume else item
    outcome = put_correction(dynamodb, tick_table, image, change.indicators, now_ms, REBUILD_TRIGGER)
    if outcome is CorrectionOutcome.DELETED:
        return True  # expired meanwhile: nothing to correct, nothing resurrected
    return outcome is CorrectionOutcome.WRITTEN


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, symbol: str, value: Any) -> None:
    state = _load(path)
    state[symbol] = value
    path.write_text(json.dumps(state, sort_keys=True))


def rebuild_indicators(dynamodb: Any, tick_table: str, symbol: str, checkpoint: Path, now_ms: int,
                       windows: Windows, volume_24h_sources: Iterable[str] = (),
                       progress: Callable[[int], None] | None = None) -> IndicatorReport:
    """Recompute one symbol's per-venue indicators and write the ticks that differ (module
    docstring). Resumes after the checkpointed key: every venue's series is still walked from
    its first tick (the EMA needs it), but ticks at or before that key are not written again."""
    state = _load(checkpoint).get(symbol, {})
    if state.get("done"):
        return IndicatorReport(done=False)
    through = int(state.get("through", -1))
    walk = SymbolWalk(windows, volume_24h_sources)
    ticks = written = moved = 0
    last = through
    for item in _ticks_after(dynamodb, tick_table, symbol):
        key = int(item[SORT_KEY]["N"])
        ticks += 1
        change = walk.change(item)
        if change is not None and key > through:
            for _ in range(CORRECTION_ATTEMPTS):
                if _write(dynamodb, tick_table, item, change, now_ms):
                    written += 1
                    moved += change.move_volume
                    break
                fresh = dynamodb.get_item(TableName=tick_table, ConsistentRead=True,
                                          Key={PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: item[SORT_KEY]})
                item = fresh.get("Item", {})
                if not item:
                    break
                change = walk.decide(item, walk.last)
                if change is None:
                    break
            else:
                raise RebuildError(f"{symbol} {key}: the tick kept changing under the rebuild; run it again "
                                   "(the checkpoint keeps what is done)")
        last = max(last, key)
        if ticks % CHECKPOINT_TICKS == 0:
            _save(checkpoint, symbol, {"through": last, "done": False})
        if progress is not None:
            progress(1)
    _save(checkpoint, symbol, {"through": last, "done": True})
    return IndicatorReport(ticks, written, moved)


def load_checkpoint(path: Path) -> dict[str, int]:
    return json.loads(path.read_text()) if path.exists() else {}


def rebuild_symbol(dynamodb: Any, candle_table: str, tick_table: str, symbol: str, checkpoint: Path,
                   now_ms: int, progress: Callable[[int], None] | None = None) -> int:
    """Rebuild one symbol's candles, resuming after its checkpointed hour; the hours done."""
    done = load_checkpoint(checkpoint)
    resume = done.get(symbol, -1)
    store = DynamoCandleStore(dynamodb, candle_table, tick_table)
    hours = 0
    current: int | None = None
    keys: list[int] = []

    def flush() -> None:
        nonlocal hours
        if current is None or not keys:
            return
        maintain_store(store, symbol, keys, now_ms=now_ms)
        state = load_checkpoint(checkpoint)
        state[symbol] = current
        checkpoint.write_text(json.dumps(state, sort_keys=True))
        hours += 1
        if progress is not None:
            progress(1)

    for item in _tick_pages(dynamodb, tick_table, symbol, resume + HOUR_MS if resume >= 0 else 0):
        key = int(item[SORT_KEY]["N"])
        hour = bucket_start(event_ms(key), HOUR_MS)
        if hour != current:
            flush()
            current, keys = hour, []
        keys.append(key)
    flush()
    return hours


def rebuild(dynamodb: Any, candle_table: str, tick_table: str, symbols: Iterable[str], checkpoint: Path,
            now_ms: int, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Rebuild every symbol (see the module docstring); {symbol: hours rebuilt in this run}."""
    return {symbol: rebuild_symbol(dynamodb, candle_table, tick_table, symbol, checkpoint, now_ms, progress)
            for symbol in symbols}


@dataclass(frozen=True)
class UpgradeReport:
    """A whole upgrade run: per symbol, its indicator phase and the candle hours rebuilt."""

    indicators: dict[str, IndicatorReport]
    hours: dict[str, int]

    @property
    def ticks_written(self) -> int:
        return sum(report.written for report in self.indicators.values())

    def text(self) -> str:
        moved = sum(report.moved for report in self.indicators.values())
        return (f"rebuilt {len(self.indicators)} symbols: {self.ticks_written:,} ticks rewritten "
                f"({moved:,} volumes moved to volume_24h), {sum(self.hours.values()):,} candle hours")


def upgrade(dynamodb: Any, candle_table: str, tick_table: str, symbols: Iterable[str], checkpoints: Path,
            now_ms: int, windows: Windows, volume_24h_sources: Iterable[str] = (),
            progress_ticks: Callable[[int], None] | None = None,
            progress_hours: Callable[[int], None] | None = None) -> UpgradeReport:
    """Each symbol in turn: its per-venue indicators (and volume moves), then its candles and
    composite, so the candles never sum a volume that is about to move. `checkpoints`: a
    directory holding each phase's checkpoint (indicators.json, candles.json)."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    sources = tuple(volume_24h_sources)
    indicators: dict[str, IndicatorReport] = {}
    hours: dict[str, int] = {}
    for symbol in symbols:
        indicators[symbol] = rebuild_indicators(dynamodb, tick_table, symbol, checkpoints / "indicators.json",
                                                now_ms, windows, sources, progress_ticks)
        hours[symbol] = rebuild_symbol(dynamodb, candle_table, tick_table, symbol, checkpoints / "candles.json",
                                       now_ms, progress_hours)
    return UpgradeReport(indicators, hours)


def stored_symbols(dynamodb: Any, candle_table: str) -> list[str]:
    """The symbols the candle registry holds (the ones a rebuild has to redo)."""
    store = DynamoCandleStore(dynamodb, candle_table, "")
    return [symbol for symbol, _ in store.list_states()]


__all__ = ["MINUTE_MS", "Estimate", "IndicatorReport", "RebuildError", "SymbolWalk", "TickChange", "UpgradeReport",
           "estimate", "load_checkpoint", "rebuild", "rebuild_indicators", "rebuild_symbol", "stored_symbols",
           "upgrade"]
