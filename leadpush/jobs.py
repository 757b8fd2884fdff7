"""The jobs leadpush runs over a lead file: read → map → check → (send) → record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .checks import Checker, CheckSettings
from .outcomes import ConfigError, exit_code_for
from .readers import LeadFile, open_lead_file
from .records import FailuresWriter, LogWriter, Recorder, ResultsWriter, RunSummary, default_failures_path


@dataclass
class InputOptions:
    """How to read the lead file and what to do with each row's outcome."""

    file: str
    fmt: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    checks: CheckSettings = field(default_factory=CheckSettings)
    table: str = "auto"
    results: Path | None = None
    failures: Path | None = None
    write_failures: bool = True
    log_file: Path | None = None
    secrets: tuple[str, ...] = ()  # masked in the log file


def open_input(opts: InputOptions, stdin: IO[bytes] | None = None) -> LeadFile:
    return open_lead_file(opts.file, fmt=opts.fmt, encoding=opts.encoding, delimiter=opts.delimiter,
                          sheet=opts.sheet, stdin=stdin)


def _same_file(a: Path, b: str) -> bool:
    try:
        return b != "-" and a.resolve() == Path(b).resolve()
    except OSError:
        return False


@contextmanager
def recording(opts: InputOptions, lead_file: LeadFile, command: str) -> Iterator[tuple[Recorder, RunSummary]]:
    """A recorder writing the results, failures and log files, closed (files moved into place) at the end."""
    log = LogWriter(opts.log_file, opts.secrets) if opts.log_file else None
    if log:
        log.line(f"start leadpush {command} {lead_file.name}")
    failures = None
    if opts.write_failures:
        path = opts.failures or default_failures_path(lead_file.name, lead_file.format)
        if _same_file(path, opts.file):
            raise ConfigError(f"{path}: the failures file would overwrite the input; choose another "
                              f"with --failures")
        jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json") if opts.failures else \
            lead_file.format in ("json", "jsonl")
        failures = FailuresWriter(path, jsonl=jsonl, columns=lead_file.columns)
    results = None
    if opts.results:
        if _same_file(opts.results, opts.file):
            raise ConfigError(f"{opts.results}: the results file would overwrite the input")
        results = ResultsWriter(opts.results)
    recorder = Recorder(results=results, failures=failures, table=opts.table, log=log)
    summary = RunSummary(command=command, file=lead_file.name, file_format=lead_file.format,
                         recorder=recorder, encoding=lead_file.encoding)
    try:
        yield recorder, summary
    except BaseException as e:
        if log:
            log.line(f"error leadpush {command} {lead_file.name}: {e or type(e).__name__}")
            log.close()
            recorder.log = None
        raise
    finally:
        recorder.close()
    if results:
        summary.results_file = str(results.path)
    if failures and failures.count:
        summary.failures_file = str(failures.path)


def validate(opts: InputOptions, lead_file: LeadFile, *, today: dt.date, progress: Any) -> RunSummary:
    """The dry run: check every row locally, send nothing."""
    checker = Checker(opts.checks, today=today, build_bodies=False)
    with recording(opts, lead_file, "validate") as (recorder, summary):
        record, advance = recorder.record, progress.advance
        for outcome, _body in checker.check_file(lead_file):
            record(outcome)
            advance()
        summary.column_map = checker.column_map
    summary.exit_code = exit_code_for(recorder.counts)
    log_end(summary)
    return summary


def one_line(summary: RunSummary) -> str:
    """The whole run in one line (for --quiet and the log file)."""
    parts = ", ".join(f"{n} {s.value}" for s, n in summary.count_items())
    line = f"{summary.file}: {summary.recorder.total} rows" + (f": {parts}" if parts else "")
    if summary.failures_file:
        line += f"; failures file {summary.failures_file}"
    if summary.stop_reason:
        line += f"; stopped: {summary.stop_reason}"
    return line + f"; exit {int(summary.exit_code)}"


def log_end(summary: RunSummary) -> None:
    log = summary.recorder.log
    if log:
        log.line(f"end leadpush {summary.command} {one_line(summary)}")
        log.close()
