"""The price enricher's settings contract: variable names and defaults, once."""

from __future__ import annotations

from collections.abc import Mapping

from functions.price_enricher.indicators import Windows
from functions.shared.price_table.ticks import TICK_RETENTION_VARIABLE
from functions.shared.settings import Contract, env, from_environment, json_text, json_value, to_environment

# The input of the hourly schedule the pipeline stack adds with a tick retention: the enricher
# then closes quiet symbols' forming candle minutes instead of processing stream records.
SWEEP_ACTION = "close-quiet-candles"


def _windows(text: str) -> Windows:
    return Windows.from_mapping(json_value(text))


def _windows_text(windows: Windows) -> str:
    return json_text(windows.as_mapping())


class Settings(Contract):
    """The price enricher's settings (a `Contract`: frozen, compared and printed like a dataclass)."""

    table_name: str = env("TABLE_NAME")
    topic_arn: str = env("SUCCESS_TOPIC_ARN")
    windows: Windows = env("INDICATOR_WINDOWS", Windows(), parse=_windows, render=_windows_text)
    # The candle table (`price-candles-<suffix>`) the enricher maintains as the stream flows.
    # Optional: empty (the default) maintains no candles, so that callers without a candle table
    # (benchmarks, tests of enrichment alone) need none; the pipeline stack sets it, and so must
    # any caller of `process` whose batches should reach the candles (the enricher-DLQ drain).
    candle_table_name: str = env("CANDLE_TABLE_NAME", "")
    # The environment's tick_retention_days (ticks then carry `expires_at`, the table's TTL):
    # candle maintenance recomputes no minute whose ticks TTL may have deleted. None (the
    # variable absent): ticks are kept, every late minute is recomputed.
    tick_retention_days: int | None = env(TICK_RETENTION_VARIABLE, None, parse=int)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        return from_environment(cls, environ)

    def environment(self) -> dict[str, str]:
        return to_environment(self)
