"""The terminal side of `invoke rebuild`: the cost line before any write, the confirmation,
progress bars over ticks and candle hours, the final line."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from emulator.session import clients_for
from environments.config import EnvironmentConfig
from functions.price_enricher.indicators import Windows
from ops.rebuild import RebuildError, UpgradeReport, estimate, stored_symbols, upgrade

CHECKPOINT_DIR = Path("build") / "rebuild"


def checkpoint_dir(config: EnvironmentConfig) -> Path:
    """Where this environment's rebuild checkpoints live (delete it to rebuild from scratch)."""
    return CHECKPOINT_DIR / f"{config.name}-{config.suffix}"


def split_names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


_SYMBOL = re.compile(r"[A-Z0-9]{1,15}-[A-Z0-9]{1,15}")


def check_symbols(symbols: Sequence[str]) -> None:
    """Symbols as stored (BASE-QUOTE, upper case): another spelling names no partition."""
    bad = [symbol for symbol in symbols if not _SYMBOL.fullmatch(symbol)]
    if bad:
        raise RebuildError(f"--symbols: {escape_text(bad[0])} is not a stored symbol (BASE-QUOTE, e.g. BTC-USD)")


def escape_text(text: str) -> str:
    return text[:40].encode("unicode_escape").decode()


def check_sources(sources: Sequence[str]) -> None:
    """Source ids as the webhook secrets name them (a tick's `source`); anything else would move
    nothing. The bad names are counted, not repeated: a secret pasted there is never echoed."""
    from functions.webhook_processor.signature import SOURCE_ID_RULE, is_source_id

    bad = sum(not is_source_id(source) for source in sources)
    if bad:
        raise RebuildError(f"--volume-24h-sources: {bad} of the names is not a source id ({SOURCE_ID_RULE})")


def run_rebuild(config: EnvironmentConfig, outputs: dict[str, Any], symbols: Sequence[str] = (), *,
                yes: bool = False, volume_24h_sources: Sequence[str] = (), console: Console | None = None,
                dynamodb: Any = None, confirm: Callable[[str], str] = input, now_ms: int | None = None,
                checkpoints: Path | None = None) -> UpgradeReport | None:
    """Price the rebuild, print it, ask (unless `yes`), then run it with progress bars; None
    when the operator declines (nothing written)."""
    console = console or Console()
    check_symbols(symbols)
    check_sources(volume_24h_sources)
    tick_table, candle_table = outputs.get("table_name"), outputs.get("candle_table_name")
    if not tick_table or not candle_table:
        raise RebuildError(f"the outputs of {config.name} name no tick or candle table: deploy first")
    dynamodb = dynamodb or clients_for(config.emulator_endpoint(os.environ), config.region, ("dynamodb",))["dynamodb"]
    windows = Windows.from_mapping(config.indicator_windows.model_dump())
    names = list(symbols) or stored_symbols(dynamodb, candle_table)
    if not names:
        console.print("no symbols in the candle registry: nothing to rebuild")
        return UpgradeReport({}, {})
    cost = estimate(dynamodb, tick_table, names, windows, volume_24h_sources)
    console.print(escape(cost.text()), highlight=False)
    if not volume_24h_sources and cost.volume_by_source:
        console.print("volumes are left as stored; name the sources whose `volume` is a rolling 24 h figure "
                      "with --volume-24h-sources", highlight=False)
    if not yes and confirm("write? [y/N] ").strip().lower() not in ("y", "yes"):
        console.print("nothing written")
        return None
    with Progress(console=console, transient=True) as bar:
        ticks = bar.add_task("indicators (ticks)", total=cost.ticks)
        hours = bar.add_task("candles (hours)", total=cost.hours)
        report = upgrade(dynamodb, candle_table, tick_table, names, checkpoints or checkpoint_dir(config),
                         now_ms if now_ms is not None else int(time.time() * 1000), windows, volume_24h_sources,
                         lambda step: bar.advance(ticks, step), lambda step: bar.advance(hours, step))
    console.print(report.text(), highlight=False)
    return report
