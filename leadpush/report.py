"""What the user sees: the per-row table, the summary, the JSON summary and the progress bar."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
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
)
from rich.table import Table
from rich.text import Text

from .causes import UNKNOWN_CAUSES, describe
from .files import printable
from .outcomes import FAILURE_STATUSES, STATUS_ORDER, Status, counted
from .records import RunSummary

TOP_CAUSES = 5  # causes listed in the terminal summary; --json lists them all

STATUS_STYLES = {
    Status.VALID: "green", Status.ADDED: "green", Status.EXISTS: "cyan", Status.SKIPPED: "yellow",
    Status.SUPPRESSED: "yellow", Status.DELETED: "green",
    Status.INVALID: "red", Status.REJECTED: "red", Status.FAILED: "bold red", Status.ABORTED: "magenta",
}


def shown(text: str) -> str:
    """A value for the terminal: control characters escaped (a cell cannot repaint the screen),
    rich markup made literal."""
    return escape(printable(text))


def safe_json(obj: Any) -> str:
    """JSON text for stdout: a lone surrogate from a JSON input is written as its \\u escape."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


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
        table.add_row(str(o.first_row or o.row), shown(o.phone), shown(o.campaign),
                      f"[{style}]{o.status.value}[/]", shown(o.message))
    console.print(table)
    if rec.table_dropped:
        console.print(f"... and {rec.table_dropped} more problem rows: see the failures file.")


def print_summary(console: Console, summary: RunSummary) -> None:
    rec = summary.recorder
    ours = summary.exists_after_our_attempt
    parts = [f"[{STATUS_STYLES[s]}]{n} {s.value}[/]"
             + (f" ({ours} of them probably added by this run: an earlier attempt's answer was lost)"
                if s is Status.EXISTS and ours else "")
             for s, n in summary.count_items()]
    console.print(f"{shown(summary.file)}: {counted(rec.total, 'row')}" + (": " + ", ".join(parts) if parts else ""))
    causes = summary.cause_items()
    if causes:
        console.print("Causes:")
    for code, n in causes[:TOP_CAUSES]:
        cause = describe(code)
        hint = f" — {cause.hint}" if cause.hint else ""
        console.print(f"  {n} row{'' if n == 1 else 's'}: {shown(cause.label)}{shown(hint)} [dim]({code})[/]")
    if len(causes) > TOP_CAUSES:
        console.print(f"  ... and {counted(len(causes) - TOP_CAUSES, 'more cause')} (--json lists them all)")
    notes = summary.note_items()
    if notes:
        console.print("Read for you:")
    for code, n in notes:
        console.print(f"  {n} row{'' if n == 1 else 's'}: {escape(describe(code).label)} [dim]({code})[/]")
    cmap = summary.column_map
    if cmap is not None:
        mapped = ", ".join(f"{shown(col.strip())} → {f}" for f, col in cmap.fields.items())
        if cmap.name_parts:
            mapped += ", " + " + ".join(shown(col.strip()) for col in cmap.name_parts) + " → Name"
        console.print(f"Columns: {mapped}")
        if cmap.passthrough:
            console.print("Passed through as extra fields: "
                          + ", ".join(shown(sent) for _, sent in cmap.passthrough))
        if cmap.ignored:
            console.print("Not sent: " + ", ".join(shown(c) for c in cmap.ignored))
    if summary.not_lead_rows:
        unit = "line" if summary.file_format in ("csv", "json", "jsonl") else "row"  # a sheet has rows
        listed = [f"{unit} {line} {kind} {text!r}" for line, kind, text in summary.not_lead_rows[:8]]
        more = len(summary.not_lead_rows) - len(listed)
        console.print("Not lead rows (neither sent nor counted): " + shown("; ".join(listed))
                      + (f"; and {more} more" if more > 0 else ""))
    for name, n in (summary.suppressed_by or {}).items():
        console.print(f"Do-not-call list {shown(name)}: {n} row{'' if n == 1 else 's'} suppressed")
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
    in_flight = summary.in_flight_earlier
    if in_flight:
        console.print(f"{in_flight} row(s) were in flight when the earlier run stopped: outcome unknown; resent "
                      f"only where checkDuplicate is TRUE")
    if summary.run is not None:
        run = summary.run
        console.print(f"Run {run} in the ledger (leadpush history {run}"
                      + (f"; leadpush undo {run})" if summary.command == "upload" else ")"))
    if summary.results_file:
        console.print(f"Results: {shown(summary.results_file)}")
    if summary.failures_file:
        unknown = sum(n for code, n in summary.cause_items() if code in UNKNOWN_CAUSES)
        if unknown:
            console.print(f"Failures file: {shown(summary.failures_file)} (fix the rows and run it again; "
                          f"{unknown} row{'s' if unknown != 1 else ''} with an unknown outcome may already be in "
                          f"CloudAgent: check there before sending {'them' if unknown != 1 else 'it'} again — "
                          f"leadpush skips {'them' if unknown != 1 else 'it'} unless you pass --resend-unknown)")
        else:
            console.print(f"Failures file: {shown(summary.failures_file)} "
                          f"(fix the rows and run it again as it is)")
    if summary.split_file:
        console.print(f"Valid rows, as they would be sent: {shown(summary.split_file)}")


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
        "not_lead_rows": [{"row": line, "kind": kind, "text": text}
                          for line, kind, text in summary.not_lead_rows],
        "causes": [{"cause": code, "rows": n, "field": describe(code).field, "label": describe(code).label,
                    "hint": describe(code).hint} for code, n in summary.cause_items()],
        "notes": [{"note": code, "rows": n, "label": describe(code).label} for code, n in summary.note_items()],
        # The rows to look at (as in the table: at most 1,000; the results file has every row).
        # A failures file fed back in: "row" is the row of the file the row first came from, and
        # "file_row" its row in the file read.
        "problem_rows": [{"row": o.first_row or o.row, **({"file_row": o.row} if o.first_row else {}),
                          "status": o.status.value, "cause": o.cause, "message": str(o.message),
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
        obj["exists_after_our_attempt"] = summary.exists_after_our_attempt
        obj["in_flight_earlier"] = summary.in_flight_earlier
    for name in ("suppressed_by", "run", "undo_of"):
        if getattr(summary, name) is not None:
            obj[name] = getattr(summary, name)
    return obj


def print_runs(console: Console, runs: list[dict[str, Any]]) -> None:
    """`leadpush history`: recent runs, newest first."""
    from .ledger import local_time  # noqa: PLC0415

    if not runs:
        console.print("No runs in the ledger yet.")
        return
    table = Table(title="Recent runs", title_justify="left")
    for name in ("run", "command", "started", "ended", "user", "input", "counts", "exit"):
        table.add_column(name, justify="right" if name in ("run", "exit") else "left")
    for r in runs:
        counts = ", ".join(f"{n} {s}" for s, n in r["counts"].items())
        what = r["input_name"] or (f"undo of run {r['undo_of']}" if r["undo_of"] else "")
        table.add_row(str(r["id"]), r["command"], local_time(r["started_at"]),
                      local_time(r["ended_at"]) or "[magenta]did not finish[/]", shown(r["username"]),
                      shown(what), shown(counts), "" if r["exit_code"] is None else str(r["exit_code"]))
    console.print(table)


def print_run(console: Console, run: dict[str, Any], leads: list[dict[str, Any]], *, limit: int = 200) -> None:
    """`leadpush history RUN`: one run's facts, counts and rows."""
    from .ledger import local_time  # noqa: PLC0415

    console.print(f"Run {run['id']}: {run['command']} of {shown(run['input_name'] or '-')}"
                  + (f" (undo of run {run['undo_of']})" if run["undo_of"] else ""))
    console.print(f"User {shown(run['username'])} at {shown(run['base_url'])}"
                  + (f", profile {shown(run['profile'])}" if run["profile"] else ""))
    console.print(f"Started {local_time(run['started_at'])}, "
                  + (f"ended {local_time(run['ended_at'])}, exit {run['exit_code']}" if run["ended_at"]
                     else "did not finish (stopped or killed)"))
    if run["input_sha256"]:
        console.print(f"Input sha256 {run['input_sha256']}")
    counts = ", ".join(f"{n} {s}" for s, n in run["counts"].items())
    console.print(f"Counts: {counts or 'none'}")
    if not leads:
        return
    table = Table(title=f"Leads of run {run['id']}", title_justify="left")
    for name in ("row", "campaign", "phone", "status", "time"):
        table.add_column(name, justify="right" if name == "row" else "left")
    for lead in leads[:limit]:
        table.add_row(str(lead["row"] or ""), shown(lead["campaign"]), shown(lead["phone"]), lead["status"],
                      local_time(lead["at"]))
    console.print(table)
    if len(leads) > limit:
        console.print(f"... and {len(leads) - limit} more: --results PATH writes them all.")


class RateWindow:
    """Rows per minute over the last minute of wall time, waits included, and the ETA that follows.

    rich's own speed samples only the moments rows finish, so a run that CloudAgent throttles
    (bursts, then a 50-second wait) would show the bursts' rate and a hopeful ETA.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = 60.0) -> None:
        self.clock = clock
        self.window = window
        self.started = clock()
        self.done = 0
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])
        self.wait_until = 0.0
        self.wait_reason = ""

    def advance(self, n: int = 1) -> None:
        now = self.clock()
        self.done += n
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def waiting(self, seconds: float, reason: str) -> None:
        self.wait_until = max(self.wait_until, self.clock() + seconds)
        self.wait_reason = reason

    def per_minute(self) -> float | None:
        now = self.clock()
        since, done_then = self._samples[0]
        if now - since <= 0 or self.done == done_then:
            return None if now - self.started < self.window else 0.0
        return (self.done - done_then) / (now - since) * 60

    def eta(self, total: int | None) -> float | None:
        rate = self.per_minute()
        if total is None or not rate:
            return None
        return max((total - self.done) / rate * 60, self.wait_until - self.clock())

    def note(self) -> str:
        left = self.wait_until - self.clock()
        return f"waiting {left:.0f} s: {self.wait_reason}" if left >= 0.5 else ""


class _RateColumn(ProgressColumn):
    """Rows per minute, the unit CloudAgent's rate limit is given in, over a window that includes waits."""

    def render(self, task: Any) -> Text:
        rate = task.fields["window"].per_minute()
        return Text(f"{rate:.0f}/min" if rate is not None else "–/min")


class _EtaColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        eta = task.fields["window"].eta(None if task.total is None else int(task.total))
        if eta is None:
            return Text("ETA –")
        minutes, seconds = divmod(int(eta), 60)
        return Text(f"ETA {minutes // 60}:{minutes % 60:02d}:{seconds:02d}")


class _NoteColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        return Text(task.fields["window"].note(), style="yellow")


class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass

    def waiting(self, seconds: float, reason: str) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass


class _RichProgress:
    def __init__(self, progress: Progress, task: Any, window: RateWindow) -> None:
        self._progress = progress
        self._task = task
        self._window = window

    def advance(self, n: int = 1) -> None:
        self._window.advance(n)
        self._progress.advance(self._task, n)

    def waiting(self, seconds: float, reason: str) -> None:
        self._window.waiting(seconds, reason)

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
               _RateColumn(), TimeElapsedColumn(), _EtaColumn(), _NoteColumn()]
    window = RateWindow()
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total, window=window)
        yield _RichProgress(progress, task, window)
