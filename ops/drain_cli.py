"""The terminal side of `invoke drain-dlq`: survey table, progress bar, final report."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from emulator.session import clients_for
from environments.config import EnvironmentConfig
from functions.price_enricher.indicators import Windows
from ops.drain import DrainReport, Survey, drain


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
              clients: dict[str, Any] | None = None) -> DrainReport:
    """Survey, re-drive with a progress bar, then the report on-call acts on: for the enricher, what
    was verified for each deleted message and why each other one stayed; NOT OK means exit 1."""
    console = console or Console()
    windows = Windows.from_mapping(config.indicator_windows.model_dump())
    with Progress(console=console, transient=True) as bar:
        def progress(total: int) -> Callable[[], None]:
            task = bar.add_task(f"re-driving {queue} DLQ", total=total)
            return lambda: bar.advance(task)

        report = drain(queue, outputs, windows, clients or aws_clients(config), dry_run=dry_run,
                       max_messages=max_messages, show=_show(console, queue), progress=progress,
                       tick_retention_days=config.tick_retention_days)
    if dry_run:
        console.print("dry run: nothing was changed")
        return report
    if report.queue == "webhook":
        console.print(f"processed {report.processed}: stored {report.stored}, duplicates {report.duplicates}; "
                      f"left in the queue: {len(report.left)}")
    else:
        paths = ", ".join(f"{name} ×{count}" for name, count in report.paths.items()) or "none"
        console.print(f"processed {report.processed}: {report.verified} items verified enriched "
                      f"({report.enriched} re-enriched); paths: {paths}; left in the queue: {len(report.left)}")
    for line in report.done:
        console.print(f"  [green]deleted[/green] {escape(line)}", highlight=False)
    for reason in report.left:
        console.print(f"  [red]left[/red] {escape(reason)}", highlight=False)
    if report.ok:
        console.print("[green]OK[/green]: every message taken was processed and deleted")
    else:
        console.print(f"[red]NOT OK[/red]: {len(report.left)} message(s) left in the queue, listed above (exit 1); "
                      "fix the cause and drain again")
    return report


def exit_code(report: DrainReport, dry_run: bool) -> int:
    """1 when anything is left in the queue (or, in a dry run, when anything waits there)."""
    return 1 if not report.ok or (dry_run and report.survey.count) else 0
