"""What the user sees: the per-row table, the summary, the JSON summary and the progress bar."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .causes import describe
from .outcomes import FAILURE_STATUSES, STATUS_ORDER, Status
from .records import RunSummary

TOP_CAUSES = 5  # causes listed in the terminal summary; --json lists them all

STATUS_STYLES = {
    Status.VALID: "green", Status.ADDED: "green", Status.EXISTS: "cyan", Status.SKIPPED: "yellow",
    Status.INVALID: "red", Status.REJECTED: "red", Status.FAILED: "bold red", Status.ABORTED: "magenta",
}


def make_console(stream: IO[str] | None = None, *, color: bool | None = None) -> Console:
    """A console on the given stream; rich itself honours NO_COLOR and non-terminals."""
    return Console(file=stream or sys.stdout, no_color=None if color is None else not color,
                   highlight=False, soft_wrap=False)


def print_table(console: Console, summary: RunSummary) -> None:
    rec = summary.recorder
    if rec.table_mode == "none" or not rec.table_rows:
        return
    title = "Problem rows" if rec.table_shows_problems_only else "Rows"
    table = Table(title=f"{title} of {summary.file}", title_justify="left")
    table.add_column("row", justify="right")
    table.add_column("phone")
    table.add_column("campaign")
    table.add_column("status")
    table.add_column("message", overflow="fold")
    for o in sorted(rec.table_rows, key=lambda o: o.row):
        style = STATUS_STYLES.get(o.status, "")
        table.add_row(str(o.row), escape(o.phone), escape(o.campaign),
                      f"[{style}]{o.status.value}[/]", escape(o.message))
    console.print(table)
    if rec.table_dropped:
        console.print(f"... and {rec.table_dropped} more problem rows: see the failures file.")


def print_summary(console: Console, summary: RunSummary) -> None:
    rec = summary.recorder
    parts = [f"[{STATUS_STYLES[s]}]{n} {s.value}[/]" for s, n in summary.count_items()]
    console.print(f"{escape(summary.file)}: {rec.total} rows" + (": " + ", ".join(parts) if parts else ""))
    causes = summary.cause_items()
    if causes:
        console.print("Causes:")
    for code, n in causes[:TOP_CAUSES]:
        cause = describe(code)
        hint = f" — {cause.hint}" if cause.hint else ""
        console.print(f"  {n} row{'' if n == 1 else 's'}: {escape(cause.label)}{escape(hint)} [dim]({code})[/]")
    if len(causes) > TOP_CAUSES:
        console.print(f"  ... and {len(causes) - TOP_CAUSES} more causes (--json lists them all)")
    notes = summary.note_items()
    if notes:
        console.print("Read for you:")
    for code, n in notes:
        console.print(f"  {n} row{'' if n == 1 else 's'}: {escape(describe(code).label)} [dim]({code})[/]")
    cmap = summary.column_map
    if cmap is not None:
        mapped = ", ".join(f"{escape(col.strip())} → {f}" for f, col in cmap.fields.items())
        if cmap.name_parts:
            mapped += ", " + " + ".join(escape(col.strip()) for col in cmap.name_parts) + " → Name"
        console.print(f"Columns: {mapped}")
        if cmap.passthrough:
            console.print("Passed through as extra fields: "
                          + ", ".join(escape(sent) for _, sent in cmap.passthrough))
        if cmap.ignored:
            console.print("Not sent: " + ", ".join(escape(c) for c in cmap.ignored))
    if summary.elapsed is not None:
        line = f"Elapsed {summary.elapsed:.1f} s"
        if summary.requests is not None:
            line += f", {summary.requests} requests"
            if summary.achieved_rate is not None:
                line += f" ({summary.achieved_rate:.1f}/min)"
        if summary.token_generations is not None:
            n = summary.token_generations
            line += f", {n} token generation{'' if n == 1 else 's'}"
        console.print(line)
    if summary.results_file:
        console.print(f"Results: {escape(summary.results_file)}")
    if summary.failures_file:
        console.print(f"Failures file: {escape(summary.failures_file)} "
                      f"(fix the rows and run it again as it is)")
    if summary.split_file:
        console.print(f"Valid rows, as they would be sent: {escape(summary.split_file)}")


def summary_object(summary: RunSummary) -> dict[str, Any]:
    rec = summary.recorder
    cmap = summary.column_map
    obj: dict[str, Any] = {
        "command": summary.command,
        "file": summary.file,
        "format": summary.file_format,
        "encoding": summary.encoding,
        "rows": rec.total,
        "counts": {s.value: rec.counts.get(s, 0) for s in STATUS_ORDER},
        "columns": None if cmap is None else {
            "mapped": {f: col.strip() for f, col in cmap.fields.items()},
            "passthrough": [sent for _, sent in cmap.passthrough],
            "ignored": cmap.ignored,
        },
        "causes": [{"cause": code, "rows": n, "field": describe(code).field, "label": describe(code).label,
                    "hint": describe(code).hint} for code, n in summary.cause_items()],
        "notes": [{"note": code, "rows": n, "label": describe(code).label} for code, n in summary.note_items()],
        # The rows to look at (as in the table: at most 1,000; the results file has every row).
        "problem_rows": [{"row": o.row, "status": o.status.value, "cause": o.cause, "message": str(o.message),
                          "phoneNumber": o.phone, "campaignName": o.campaign}
                         for o in sorted(rec.table_rows, key=lambda o: o.row) if o.status in FAILURE_STATUSES],
        "problem_rows_omitted": rec.table_dropped,
        "results_file": summary.results_file,
        "failures_file": summary.failures_file,
        "split_file": summary.split_file,
        "exit_code": int(summary.exit_code),
        "stop_reason": summary.stop_reason,
    }
    if summary.elapsed is not None:
        obj["elapsed_seconds"] = round(summary.elapsed, 3)
        obj["requests"] = summary.requests
        obj["achieved_rate_per_min"] = None if summary.achieved_rate is None else round(summary.achieved_rate, 2)
        obj["token_generations"] = summary.token_generations
    return obj


class _RateColumn(ProgressColumn):
    """Rows per minute, the unit CloudAgent's rate limit is given in."""

    def render(self, task: Any) -> Text:
        return Text(f"{task.speed * 60:.0f}/min" if task.speed else "–/min")


class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass


class _RichProgress:
    def __init__(self, progress: Progress, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def set_total(self, total: int | None) -> None:
        self._progress.update(self._task, total=total)


@contextmanager
def progress_bar(stream: IO[str], label: str, *, enabled: bool, total: int | None = None) -> Iterator[Any]:
    """A live bar on a terminal; elsewhere a stand-in, so the calling code needs no `if`s."""
    if not enabled:
        yield _NoProgress()
        return
    console = Console(file=stream, force_terminal=True)  # enabled means: the caller knows it is a terminal
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(),
               _RateColumn(), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield _RichProgress(progress, task)
