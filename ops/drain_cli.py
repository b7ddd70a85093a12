"""The terminal side of `invoke drain-dlq`: survey table, progress bar, final report."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from emulator.session import clients_for
from environments.config import EnvironmentConfig
from functions.price_enricher.indicators import Windows
from ops.drain import DrainReport, Lookup, Survey, drain

SET_ASIDE_DIR = Path("build") / "drain"


def set_aside_file(config: EnvironmentConfig) -> Path:
    """Where this environment's set-aside items are recorded (JSON lines, appended)."""
    return SET_ASIDE_DIR / f"{config.deployment_id}-set-aside.jsonl"


def aws_clients(config: EnvironmentConfig, endpoint: str | None = None) -> dict[str, Any]:
    """The same code for the emulator and for AWS: only the endpoint differs.

    For the embedded stack, export the endpoint `invoke local` prints as AWS_ENDPOINT_URL.
    """
    return clients_for(endpoint or config.emulator_endpoint(os.environ), config.region,
                       ("sqs", "dynamodb", "dynamodbstreams", "sns"))


def _show(console: Console, queue: str) -> Any:
    def show(found: Survey) -> None:
        table = Table(title=f"{queue} DLQ")
        table.add_column("messages", justify="right")
        table.add_column("oldest", justify="right")
        table.add_column("error types")
        age = f"{found.oldest_age_seconds / 60:.1f} min" if found.oldest_age_seconds is not None else "—"
        table.add_row(str(found.count), age, ", ".join(f"{k} ×{v}" for k, v in found.error_types.items()) or "—")
        console.print(table)
    return show


def run_drain(config: EnvironmentConfig, outputs: dict[str, Any], queue: str, *, dry_run: bool = False,
              max_messages: int | None = None, console: Console | None = None,
              clients: dict[str, Any] | None = None, symbols: Sequence[str] = (), scan_table: bool = False,
              set_aside: Collection[str] = (), set_aside_log: Path | None = None) -> DrainReport:
    """Survey, re-drive with a progress bar, then the report on-call acts on: for the enricher, what
    was verified for each deleted message and why each other one stayed (each item not restored
    by symbol, key and reason); what was set aside and where it is recorded; NOT OK means exit 1.
    `symbols` and `scan_table`: how a range the stream no longer holds is looked up (`Lookup`)."""
    console = console or Console()
    set_aside_log = set_aside_log or set_aside_file(config)
    windows = Windows.from_mapping(config.indicator_windows.model_dump())
    with Progress(console=console, transient=True) as bar:
        def progress(total: int) -> Callable[[], None]:
            task = bar.add_task(f"re-driving {queue} DLQ", total=total)
            return lambda: bar.advance(task)

        lookup = Lookup(tuple(symbols), scan_table, lambda line: console.print(escape(line), highlight=False))
        report = drain(queue, outputs, windows, clients or aws_clients(config), dry_run=dry_run,
                       max_messages=max_messages, show=_show(console, queue), progress=progress,
                       tick_retention_days=config.tick_retention_days, lookup=lookup, set_aside=set_aside,
                       set_aside_log=set_aside_log)
    if dry_run:
        console.print("dry run: nothing was changed")
        return report
    if report.queue == "webhook":
        console.print(f"processed {report.processed}: stored {report.stored}, duplicates {report.duplicates}; "
                      f"left in the queue: {len(report.left)}")
    else:
        paths = ", ".join(f"{name} ×{count}" for name, count in report.paths.items()) or "none"
        console.print(f"processed {report.processed}: {report.verified} items verified enriched "
                      f"({report.enriched} newly enriched; every item re-run: candles recomputed, updates "
                      f"announced again, at least once); paths: {paths}; left in the queue: {len(report.left)}")
        if report.items_read:
            console.print(f"trimmed ranges: {report.items_read:,} tick items read to find them")
    for line in report.done:
        console.print(f"  [green]deleted[/green] {escape(line)}", highlight=False)
    for line in report.set_aside:
        console.print(f"  [yellow]set aside[/yellow] {escape(line)}", highlight=False)
    if report.set_aside:
        console.print(f"set aside: recorded with their messages in {set_aside_log} (the ticks stay in the table)",
                      highlight=False)
    for reason in report.left:
        console.print(f"  [red]left[/red] {escape(reason)}", highlight=False)
    for item in report.unrestored:
        console.print(f"  [red]not restored[/red] {escape(item)}", highlight=False)
    if report.left:
        console.print("a poison item: name it with --set-aside SYMBOL/KEY (or the message id) to record it "
                      "and let the rest of the queue drain", highlight=False)
    if report.ok:
        console.print("[green]OK[/green]: every message taken was processed and deleted")
    else:
        console.print(f"[red]NOT OK[/red]: {len(report.left)} message(s) left in the queue, listed above (exit 1); "
                      "fix the cause and drain again")
    return report


def exit_code(report: DrainReport, dry_run: bool) -> int:
    """1 when anything is left in the queue (or, in a dry run, when anything waits there)."""
    return 1 if not report.ok or (dry_run and report.survey.count) else 0
