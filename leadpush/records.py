"""What is recorded of each row: counts, rows for the table, the results file and the failures file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

from .causes import causes_of
from .files import open_in_place, output_target, printable, sibling_path, temporary_beside
from .mapping import IGNORED_PREFIX, ColumnMap
from .outcomes import FAILURE_STATUSES, STATUS_ORDER, ConfigError, ExitCode, OutputError, RowOutcome, Status, scrub

RESULT_COLUMNS = ("row", "status", "message", "phoneNumber", "campaignName", "attempts", "http_status", "cause")
FAILURE_COLUMNS = ("leadpush_row", "leadpush_status", "leadpush_error")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
TABLE_ALL_UP_TO = 200  # files up to this many rows show every row by default
TABLE_MAX_ROWS = 1000  # at most this many problem rows are kept for the table


class TableMode(StrEnum):
    """Which rows the terminal table shows."""

    AUTO = "auto"  # every row up to TABLE_ALL_UP_TO rows, else only the problems
    ALL = "all"
    PROBLEMS = "problems"
    NONE = "none"


def formula_safe(text: str) -> str:
    """Text leadpush writes into a CSV cell, made inert for spreadsheets (OWASP CSV injection)."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def json_value(value: Any) -> str:
    """One value as JSON text; a Decimal keeps its exact literal (9.87654E+9 stays that)."""
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return json.dumps(value.isoformat())
    return json.dumps(value, ensure_ascii=False, default=str)


def json_object(pairs: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {json_value(v)}"
                           for k, v in pairs.items()) + "}"


def cell_text(value: Any) -> str:
    """A value as read, as text, exactly (the one rule for every file leadpush writes and every check):
    None is empty, a boolean TRUE/FALSE as a spreadsheet shows it, dates ISO, a JSON array or object
    its JSON, a Decimal its exact literal."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def open_output(path: Path, flags: int) -> IO[bytes]:
    """The binary file under the results and failures files (created 0600; tests put a full disk here)."""
    if flags & os.O_CREAT:
        return open(os.open(path, flags, 0o600), "wb")
    return open(open_in_place(path, flags), "wb")  # a device, a pipe, our own stdout


class _AtomicFile:
    """Written beside its target and moved into place on close, so a reader never sees half a file.

    A device or a FIFO (/dev/stdout, a pipe) is written in place instead: it cannot be replaced. A
    file that hit a write error is never moved into place: the earlier file, if any, stays.
    """

    def __init__(self, path: Path, what: str = "the output file", encoding: str = "utf-8") -> None:
        self.path = path
        self.what = what
        self.target, self.atomic = output_target(path, what)
        self.tmp = temporary_beside(self.target) if self.atomic else None
        try:
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)  # a leftover of an earlier process with our pid
                raw = open_output(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC)
            else:
                raw = open_output(self.target, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as e:
            raise ConfigError(f"{path}: {what} cannot be written ({e.strerror})") from None
        # Lone surrogates (a JSON "\ud800") are written as the escape \ud800, never a crash.
        self.file: IO[str] = io.TextIOWrapper(raw, encoding=encoding, newline="", errors="backslashreplace")

    def error(self, e: OSError) -> OutputError:
        return OutputError(f"{self.path}: {self.what} cannot be written ({e.strerror or e})")

    def commit(self, keep: bool = True) -> None:
        try:
            self.file.close()
        except OSError as e:
            self.discard()
            raise self.error(e) from None
        if self.tmp is None:
            return
        if keep:
            try:
                os.chmod(self.tmp, os.stat(self.target).st_mode & 0o777)  # keep the mode of the file replaced
            except OSError:
                pass
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)

    def discard(self) -> None:
        """Drop what was written: the temporary goes, whatever was at the path stays."""
        try:
            self.file.close()
        except OSError:
            pass
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


class ResultsWriter:
    """Every row's outcome, as CSV or JSON Lines (by the file's extension)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
        self._out = _AtomicFile(path, "the results file")
        if not self.jsonl:
            self._csv = csv.writer(self._out.file)
            self.write_header()

    def write_header(self) -> None:
        try:
            self._csv.writerow(RESULT_COLUMNS)
        except OSError as e:
            self._out.discard()
            raise self._out.error(e) from None

    def write(self, o: RowOutcome) -> None:
        try:
            self._write(o)
        except OSError as e:
            raise self._out.error(e) from None

    def _write(self, o: RowOutcome) -> None:
        if self.jsonl:
            self._out.file.write(json.dumps({
                "row": o.row, "status": o.status.value, "message": o.message, "phoneNumber": o.phone,
                "campaignName": o.campaign, "attempts": o.attempts, "http_status": o.http_status,
                "cause": o.cause}, ensure_ascii=False) + "\n")
        else:
            self._csv.writerow((o.row, o.status.value, formula_safe(o.message), o.phone, o.campaign,
                                o.attempts, "" if o.http_status is None else o.http_status, o.cause))

    def close(self) -> None:
        self._out.commit()

    def discard(self) -> None:
        self._out.discard()


class FailuresWriter:
    """Rows that did not make it, as read, plus leadpush_row/status/error: fix and feed back in."""

    def __init__(self, path: Path, *, jsonl: bool, columns: list[str] | None, is_input: bool = False) -> None:
        self.path = path
        self.jsonl = jsonl
        self.count = 0
        self.is_input = is_input  # a failures file fed back in: replaced by the new failures, never removed
        # utf-8-sig so that Excel opens non-ASCII names correctly; leadpush's reader strips the BOM.
        self._out = _AtomicFile(path, "the failures file", encoding="utf-8" if jsonl else "utf-8-sig")
        self._names: list[str] = []
        if jsonl:
            # Rows read as lists (CSV, XLSX) become objects by column name; a repeated name gets " (2)" ...
            seen: dict[str, int] = {}
            for c in columns or []:
                seen[c] = seen.get(c, 0) + 1
                self._names.append(c if seen[c] == 1 else f"{c} ({seen[c]})")
        if not jsonl:
            columns = columns or []
            # An earlier run's leadpush_* columns are replaced, not repeated.
            self._keep = [i for i, c in enumerate(columns) if not c.strip().lower().startswith(IGNORED_PREFIX)]
            # A failures file fed back in keeps the row numbers of the file the rows first came from.
            self._first_row = next((i for i, c in enumerate(columns) if c.strip().lower() == FAILURE_COLUMNS[0]),
                                   None)
            self._csv = csv.writer(self._out.file)
            try:
                self._csv.writerow([columns[i] for i in self._keep] + list(FAILURE_COLUMNS))
            except OSError as e:
                self._out.discard()
                raise self._out.error(e) from None

    def write(self, o: RowOutcome) -> None:
        self.count += 1
        try:
            self._write(o)
        except OSError as e:
            raise self._out.error(e) from None

    def _write(self, o: RowOutcome) -> None:
        source = o.source or {}
        if self.jsonl:
            if isinstance(source, list):
                names = self._names + [f"column {n + 1}" for n in range(len(self._names), len(source))]
                source = dict(zip(names, source, strict=False))
            pairs = {k: v for k, v in source.items() if not str(k).strip().lower().startswith(IGNORED_PREFIX)}
            first = source.get(FAILURE_COLUMNS[0])
            pairs.update(leadpush_row=first if isinstance(first, int) and not isinstance(first, bool) else o.row,
                         leadpush_status=o.status.value, leadpush_error=o.message)
            self._out.file.write(json_object(pairs) + "\n")
        else:
            values = source if isinstance(source, list) else list(source.values())
            row: Any = o.row
            if self._first_row is not None and self._first_row < len(values):
                first = str(values[self._first_row]).strip()
                row = first if first.isdigit() else row
            self._csv.writerow([cell_text(values[i]) if i < len(values) else "" for i in self._keep]
                               + [row, o.status.value, formula_safe(o.message)])

    def close(self, run_counts: Counter[Status] | None = None) -> None:
        """Move the file into place (`run_counts` is for the workbook's Summary; a CSV or JSONL has none)."""
        # No failures: no file, and none left over from an earlier run either (only a regular
        # file is removed: never a device, never the input).
        self._out.commit(keep=self.count > 0)
        if self.count == 0 and self._out.atomic and not self.is_input:
            self._out.target.unlink(missing_ok=True)

    def discard(self) -> None:
        self._out.discard()


class FailuresFile(Protocol):
    """A failures file: FailuresWriter (CSV, JSON Lines) or fixit.FixitWriter (a workbook)."""

    path: Path
    count: int

    def write(self, o: RowOutcome) -> None: ...

    def close(self, run_counts: Counter[Status] | None = None) -> None: ...


def _discard(writer: Any) -> None:
    """Drop a file begun: its temporary goes, what was at its path stays."""
    discard = getattr(writer, "discard", None)
    if discard is not None:
        discard()


class LogWriter:
    """--log-file: start and end lines and one line per row, timestamped, appended, secrets masked."""

    def __init__(self, path: Path, secrets: tuple[str, ...] = ()) -> None:
        self.path = path
        self.secrets = secrets
        output_target(path, "the log file")  # a folder is refused
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._fd = open_in_place(path, flags) if not output_target(path, "the log file")[1] else \
                os.open(path, flags, 0o600)
        except OSError as e:
            raise ConfigError(f"{path}: the log file cannot be written ({e.strerror})") from None

    def line(self, text: str) -> None:
        """One whole line, or none (a full disk never leaves half a line to glue to the next)."""
        stamp = dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")
        # Control characters in a cell are escaped: a value can never forge a line of its own.
        data = f"{stamp} {printable(scrub(text, self.secrets))}\n".encode("utf-8", "backslashreplace")
        size = None
        try:
            size = os.fstat(self._fd).st_size
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as e:
            if size is not None:
                try:
                    os.ftruncate(self._fd, size)  # a regular file: cut back to the last whole line
                except OSError:
                    pass
            raise OutputError(f"{self.path}: the log file cannot be written ({e.strerror or e})") from None

    def row(self, o: RowOutcome) -> None:
        self.line(f"row {o.row} {o.status.value} phone={o.phone} campaign={o.campaign}"
                  + (f": {o.message}" if o.message else ""))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FailuresFormat(StrEnum):
    """What the failures file is written as."""

    CSV = "csv"
    XLSX = "xlsx"  # the fix-it workbook (fixit.py)
    JSONL = "jsonl"


_FAILURES_SUFFIXES = {".csv": FailuresFormat.CSV, ".tsv": FailuresFormat.CSV, ".txt": FailuresFormat.CSV,
                      ".xlsx": FailuresFormat.XLSX, ".jsonl": FailuresFormat.JSONL, ".ndjson": FailuresFormat.JSONL,
                      ".json": FailuresFormat.JSONL}


def failures_format(path: Path | None, chosen: str | None, input_format: str) -> FailuresFormat:
    """--failures-format, else the --failures path's extension, else by the input (an XLSX input
    gets a workbook back, JSON a JSONL file, anything else a CSV)."""
    by_suffix = _FAILURES_SUFFIXES.get(path.suffix.lower()) if path else None
    if chosen:
        try:
            fmt = FailuresFormat(chosen)
        except ValueError:
            raise ConfigError(f"--failures-format must be one of {', '.join(FailuresFormat)}") from None
        if by_suffix and by_suffix != fmt:
            raise ConfigError(f"--failures {path} is not a {fmt} file name; make the two agree")
        return fmt
    if path:
        return by_suffix or FailuresFormat.CSV
    return {"json": FailuresFormat.JSONL, "jsonl": FailuresFormat.JSONL, "xlsx": FailuresFormat.XLSX,
            # every workbook in gets a workbook out; leadpush writes .xlsx
            "xls": FailuresFormat.XLSX, "xlsb": FailuresFormat.XLSX, "ods": FailuresFormat.XLSX,
            }.get(input_format, FailuresFormat.CSV)


def default_failures_path(input_name: str, input_format: str, fmt: str | None = None, *,
                          stream: bool = False) -> Path:
    """<input name>.failures.<ext> beside the input, so leads.csv and leads.tsv never share one; a
    failures file fed back in is its own failures file."""
    ext = fmt or failures_format(None, None, input_format)
    if not stream and input_name != "<stdin>" and is_failures_file(Path(input_name), ext):
        return Path(input_name)
    return sibling_path(input_name, "failures", ext, stream=stream)


def is_failures_file(path: Path, ext: str) -> bool:
    return path.name.lower().endswith(f".failures.{ext}")


def first_row_of(source: list[Any] | dict[str, Any] | None, at: int | str) -> int | None:
    """The leadpush_row a failures file gave a row (the row of the file it first came from)."""
    if isinstance(source, dict) and isinstance(at, str):
        value = source.get(at)
    elif isinstance(source, list) and isinstance(at, int) and at < len(source):
        value = source[at]
    else:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None


_VALID = Status.VALID


class Recorder:
    """Takes each row's outcome once, in row order, and hands it to everything that keeps it."""

    def __init__(self, *, results: ResultsWriter | None = None, failures: FailuresFile | None = None,
                 table: str = TableMode.AUTO, log: LogWriter | None = None) -> None:
        self.results = results
        self.failures = failures
        self.log = log
        self._counts = dict.fromkeys(Status, 0)
        self.table_mode = table
        self.table_rows: list[RowOutcome] = []
        self.table_dropped = 0
        self._filtered = table == "problems"
        self._table_takes_valid = table not in ("none", "problems")  # kept up to date by _table
        self.causes: Counter[str] = Counter()  # rows per cause code (a row with two causes counts in both)
        self.notes: Counter[str] = Counter()  # rows per note code (a cell leadpush rewrote to read it)
        self.errors: list[str] = []  # outputs that could not be written, one line each
        self.broken: set[Path] = set()  # their paths
        # A failures file fed back in: where each row's leadpush_row is (column index, or JSON key).
        self.first_row_at: int | str | None = None

    @property
    def counts(self) -> Counter[Status]:
        return Counter({s: n for s, n in self._counts.items() if n})

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def record(self, o: RowOutcome) -> None:
        """Count the row and hand it on. A file that cannot be written is dropped (its earlier
        version stays) after the row went to every other one; then OutputError says which."""
        status = o.status
        self._counts[status] += 1
        if status is _VALID and not (o.note or self._table_takes_valid or self.results or self.log):
            o.source = None  # the dry run's common row goes nowhere but the counts: 6% of validate
            return
        broken = None
        if self.results:
            try:
                self.results.write(o)
            except OutputError as e:
                broken = self._broke("results", e)
        if self.log:
            try:
                self.log.row(o)
            except OutputError as e:
                broken = self._broke("log", e)
        if o.cause:
            self.causes.update(causes_of(o.cause))
        if o.note:
            self.notes.update(causes_of(o.note))
        failed = status in FAILURE_STATUSES
        if failed and self.failures:
            try:
                self.failures.write(o)
            except OutputError as e:
                broken = self._broke("failures", e)
        if self.table_mode != "none":
            if self.first_row_at is not None:
                o.first_row = first_row_of(o.source, self.first_row_at)
            self._table(o, failed)
        if not failed:
            o.source = None  # the failures file was its only use
        if broken:
            raise broken

    def _broke(self, which: str, e: OutputError) -> OutputError:
        writer = getattr(self, which)
        setattr(self, which, None)
        if which == "log":
            writer.close()
        else:
            _discard(writer)
        self.errors.append(str(e))
        self.broken.add(writer.path)
        return e

    def _table(self, o: RowOutcome, failed: bool) -> None:
        if self.table_mode == "auto" and not self._filtered and len(self.table_rows) >= TABLE_ALL_UP_TO:
            self._filtered = True  # a big file: keep only the problems
            self._table_takes_valid = False
            self.table_rows = [r for r in self.table_rows if r.status in FAILURE_STATUSES]
        if self._filtered and not failed:
            return
        if len(self.table_rows) >= TABLE_MAX_ROWS:
            self.table_dropped += 1
            return
        self.table_rows.append(o)

    @property
    def table_shows_problems_only(self) -> bool:
        return self._filtered

    def close(self) -> None:
        """Move the results and failures files into place; a file that fails now is dropped and
        its error kept in `errors`."""
        for which in ("results", "failures"):
            writer = getattr(self, which)
            if writer:
                setattr(self, which, None)
                try:
                    writer.close(self.counts) if which == "failures" else writer.close()
                except OutputError as e:
                    self.errors.append(str(e))
                    self.broken.add(writer.path)

    def discard(self) -> None:
        """Drop every file begun (a run that stopped before its first row): temporaries removed."""
        for which in ("results", "failures"):
            writer = getattr(self, which)
            if writer:
                setattr(self, which, None)
                _discard(writer)
        if self.log:
            self.log.close()
            self.log = None


@dataclass
class RunSummary:
    """Everything the summary says about a finished run."""

    command: str
    file: str
    file_format: str
    recorder: Recorder
    exit_code: ExitCode = ExitCode.OK
    encoding: str | None = None
    column_map: ColumnMap | None = None
    results_file: str | None = None
    failures_file: str | None = None
    split_file: str | None = None  # validate --split: the rows that would be sent
    stop_reason: str | None = None
    elapsed: float | None = None
    requests: int | None = None  # HTTP requests made (upload)
    token_generations: int | None = None
    # (line, "title" or "footer", text): rows of the file that are not leads, neither sent nor counted
    not_lead_rows: list[tuple[int, str, str]] = field(default_factory=list)
    suppressed_by: dict[str, int] | None = None  # do-not-call list -> rows it removed
    run: int | None = None  # this run's id in the run ledger
    undo_of: int | None = None  # undo: the ledger run it undid
    # `exists` rows whose earlier attempt in this run lost its answer: probably stored by this run.
    exists_after_our_attempt: int | None = None
    in_flight_earlier: int = 0  # --resume: rows in flight when the earlier run stopped (outcome unknown)

    def note_items(self) -> list[tuple[str, int]]:
        """(note code, rows), most rows first."""
        return sorted(self.recorder.notes.items(), key=lambda item: (-item[1], item[0]))

    def cause_items(self) -> list[tuple[str, int]]:
        """(cause code, rows), most rows first."""
        return sorted(self.recorder.causes.items(), key=lambda item: (-item[1], item[0]))

    def count_items(self) -> list[tuple[Status, int]]:
        """(status, rows) for the statuses that occurred, in the order summaries list them."""
        counts = self.recorder.counts
        return [(s, counts[s]) for s in STATUS_ORDER if counts.get(s)]

    @property
    def achieved_rate(self) -> float | None:
        """Requests per minute: intervals between requests over the time they took (n requests
        evenly spaced span n - 1 intervals; counting n would overstate a short run's rate)."""
        if not self.elapsed or self.requests is None or self.requests < 2:
            return None
        return (self.requests - 1) / self.elapsed * 60
