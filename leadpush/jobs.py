"""The jobs leadpush runs over a lead file: read → map → check → (send) → record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .checks import Checker, CheckSettings
from .files import check_distinct, identity, output_target
from .mapping import maps_phone
from .outcomes import ConfigError, OutputError, counted, exit_code_for
from .readers import LeadFile, open_lead_file
from .records import (
    FAILURE_COLUMNS,
    FailuresFormat,
    FailuresWriter,
    LogWriter,
    Recorder,
    ResultsWriter,
    RunSummary,
    default_failures_path,
    failures_format,
    is_failures_file,
)


@dataclass
class InputOptions:
    """How to read the lead file and what to do with each row's outcome."""

    file: str
    fmt: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int | None = None  # line (sheet row) of the header; None: found (below any title rows)
    checks: CheckSettings = field(default_factory=CheckSettings)
    table: str = "auto"
    results: Path | None = None
    failures: Path | None = None
    failures_format: FailuresFormat | None = None  # by default from --failures, else from the input
    write_failures: bool = True
    split: bool = False  # validate: also write <stem>.valid.<ext>, the rows as they would be sent
    log_file: Path | None = None
    secrets: tuple[str, ...] = ()  # masked in the log file
    suppression: Any = None  # suppress.Suppression: do-not-call lists, screened after the checks


def open_input(opts: InputOptions, stdin: IO[bytes] | None = None) -> LeadFile:
    user_map = opts.checks.user_map
    return open_lead_file(opts.file, fmt=opts.fmt, encoding=opts.encoding, delimiter=opts.delimiter,
                          sheet=opts.sheet, stdin=stdin, header_row=opts.header_row,
                          header_test=lambda cells: maps_phone(cells, user_map))


def reading_notes(lead_file: LeadFile) -> list[str]:
    """What the user should know about how the file was read, before its rows."""
    notes = []
    if lead_file.encoding_note:
        notes.append(f"{lead_file.name} is not UTF-8; read it as {lead_file.encoding_note} "
                     f"(choose another with --encoding).")
    return notes + [f"{lead_file.name}: {note}." for note in lead_file.notes]


def failures_path(opts: InputOptions, lead_file: LeadFile) -> Path | None:
    if not opts.write_failures:
        return None
    fmt = failures_format(opts.failures, opts.failures_format, lead_file.format)
    return opts.failures or default_failures_path(lead_file.name, lead_file.format, fmt, stream=lead_file.spooled)


def check_paths(opts: InputOptions, lead_file: LeadFile, journal: Path | None = None,
                split: Path | None = None) -> None:
    """The input, results, failures, journal, log and --split files are different files (by device
    and inode, whatever their spelling), or the run stops here: exit 2, nothing written or sent."""
    failures = failures_path(opts, lead_file)
    allowed = []
    if failures is not None and opts.failures is None and not lead_file.spooled \
            and is_failures_file(Path(lead_file.name), failures.suffix.lstrip(".")):
        allowed.append(frozenset(("the input", "the failures file")))  # fed back in: replaced by its failures
    check_distinct([
        ("the input", None if lead_file.spooled else opts.file),
        ("--results", opts.results),
        ("the failures file" if opts.failures is None else "--failures", failures),
        ("--journal", journal),
        ("--log-file", opts.log_file),
        ("the --split file", split),
    ], allowed)


@contextmanager
def recording(opts: InputOptions, lead_file: LeadFile, command: str) -> Iterator[tuple[Recorder, RunSummary]]:
    """A recorder writing the results, failures and log files, closed (files moved into place) at
    the end. Files that could not be written are in `recorder.errors` afterwards."""
    check_paths(opts, lead_file)
    recorder = Recorder(table=opts.table)
    if lead_file.keys is None:  # JSON: any object may carry it
        recorder.first_row_at = FAILURE_COLUMNS[0]
    else:
        recorder.first_row_at = next((i for i, k in enumerate(lead_file.keys)
                                      if k.strip().lower() == FAILURE_COLUMNS[0]), None)
    try:
        if opts.log_file:
            recorder.log = LogWriter(opts.log_file, opts.secrets)
            recorder.log.line(f"start leadpush {command} {lead_file.name}")
        path = failures_path(opts, lead_file)
        # A failures file fed back in: upload replaces it with the rows that failed again (written
        # aside, moved into place once the input has been read; removed when every row went
        # through). validate leaves it as it is: its failures are only the invalid rows, and the
        # valid ones would be lost.
        fed_back = path is not None and opts.failures is None and not lead_file.spooled \
            and identity(path) == identity(opts.file)
        if path is not None and not (fed_back and command != "upload"):
            fmt = failures_format(opts.failures, opts.failures_format, lead_file.format)
            if fmt == "xlsx":
                from .fixit import FixitWriter  # noqa: PLC0415 — openpyxl loads only when a workbook is wanted

                if not output_target(path, "the failures file")[1]:
                    raise ConfigError(f"{path}: a fix-it workbook cannot be written to a device or a pipe; "
                                      f"choose a file, or --failures-format csv")
                recorder.failures = FixitWriter(path, columns=lead_file.columns, keys=lead_file.keys,
                                                user_map=opts.checks.user_map, sheet=opts.sheet,
                                                source_name=lead_file.name)
            else:
                recorder.failures = FailuresWriter(path, jsonl=fmt == "jsonl", columns=lead_file.columns)
        if opts.results:
            recorder.results = ResultsWriter(opts.results)
    except BaseException:
        recorder.discard()  # no temporary left behind
        raise
    results, failures = recorder.results, recorder.failures
    summary = RunSummary(command=command, file=lead_file.name, file_format=lead_file.format,
                         recorder=recorder, encoding=lead_file.encoding)
    try:
        yield recorder, summary
    except BaseException as e:
        log_error(recorder, command, lead_file.name, e)
        raise
    finally:
        recorder.close()
    summary.not_lead_rows = list(lead_file.not_lead_rows)
    if results and results.path not in recorder.broken:
        summary.results_file = str(results.path)
    if failures and failures.count and failures.path not in recorder.broken:
        summary.failures_file = str(failures.path)


def log_error(recorder: Recorder, command: str, file: str, e: BaseException) -> None:
    """The log's last line for a run that stopped on an error (and the log closed)."""
    if recorder.log:
        try:
            recorder.log.line(f"error leadpush {command} {file}: {e or type(e).__name__}")
        except OutputError:
            pass
        recorder.log.close()
        recorder.log = None


def validate(opts: InputOptions, lead_file: LeadFile, *, today: dt.date, progress: Any) -> RunSummary:
    """The dry run: check every row locally, send nothing."""
    checker = Checker(opts.checks, today=today, build_bodies=opts.split)
    split = None
    if opts.split:
        from .split import SplitWriter, body_columns, split_path  # noqa: PLC0415

        path = split_path(lead_file.name, lead_file.format, stream=lead_file.spooled)
        check_paths(opts, lead_file, split=path)
        split = SplitWriter(path, lead_file.format,
                            lambda: body_columns(checker.column_map, checker.defaults))  # type: ignore[arg-type]
    with recording(opts, lead_file, "validate") as (recorder, summary):
        record, advance = recorder.record, progress.advance
        screen = opts.suppression.screen if opts.suppression else None
        try:
            for outcome, body in checker.check_file(lead_file):
                if screen and screen(outcome):
                    body = None  # a suppressed row is not among the rows as they would be sent
                # A file that cannot be written is dropped (its earlier version stays) and its error
                # kept: the dry run goes on, so that every other file holds every row; then exit 2.
                try:
                    record(outcome)
                except OutputError:
                    pass  # in recorder.errors
                if body is not None and split:
                    try:
                        split.write(body)
                    except OutputError as e:
                        recorder.errors.append(str(e))
                        split = None  # it dropped what it had begun
                advance()
        except BaseException:
            if split:
                split.close(keep=False)
            raise
        summary.column_map = checker.column_map
        note_suppression(opts, summary)
    try:
        if split:
            split.close()
            summary.split_file = str(split.path) if split.count else None
        if recorder.errors:
            raise OutputError(recorder.errors[0])
    except OutputError as e:
        log_error(recorder, "validate", lead_file.name, e)
        raise
    summary.exit_code = exit_code_for(recorder.counts)
    log_end(summary)
    return summary


def note_suppression(opts: InputOptions, summary: RunSummary) -> None:
    """How many rows each do-not-call list removed, for the summary and --json."""
    if opts.suppression:
        counts = opts.suppression.counts
        summary.suppressed_by = {lst.name: counts.get(lst.name, 0) for lst in opts.suppression.lists}


def one_line(summary: RunSummary) -> str:
    """The whole run in one line (for --quiet and the log file)."""
    parts = ", ".join(f"{n} {s.value}" for s, n in summary.count_items())
    line = f"{summary.file}: {counted(summary.recorder.total, 'row')}" + (f": {parts}" if parts else "")
    if summary.not_lead_rows:
        line += f"; {len(summary.not_lead_rows)} not lead rows (title, footer)"
    if summary.failures_file:
        line += f"; failures file {summary.failures_file}"
    if summary.split_file:
        line += f"; valid rows {summary.split_file}"
    if summary.in_flight_earlier:
        line += f"; {summary.in_flight_earlier} in flight when the earlier run stopped"
    if summary.stop_reason:
        line += f"; stopped: {summary.stop_reason}"
    return line + f"; exit {int(summary.exit_code)}"


def log_end(summary: RunSummary) -> None:
    log = summary.recorder.log
    if log:
        try:
            log.line(f"end leadpush {summary.command} {one_line(summary)}")
        except OutputError as e:
            summary.recorder.errors.append(str(e))
        log.close()
        summary.recorder.log = None
