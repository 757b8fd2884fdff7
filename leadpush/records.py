"""What is recorded of each row: counts, rows for the table, the results file and the failures file."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

from .causes import causes_of
from .mapping import IGNORED_PREFIX, ColumnMap
from .outcomes import FAILURE_STATUSES, STATUS_ORDER, ConfigError, ExitCode, RowOutcome, Status, scrub

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
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return "" if value is None else str(value)


class _AtomicFile:
    """Written beside its target and moved into place on close, so a reader never sees half a file."""

    def __init__(self, path: Path, encoding: str = "utf-8") -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.file: IO[str] = open(self.tmp, "w", encoding=encoding, newline="")
        except OSError as e:
            raise ConfigError(f"{path}: cannot be written ({e.strerror})") from None

    def commit(self, keep: bool = True) -> None:
        self.file.close()
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class ResultsWriter:
    """Every row's outcome, as CSV or JSON Lines (by the file's extension)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
        self._out = _AtomicFile(path)
        if not self.jsonl:
            self._csv = csv.writer(self._out.file)
            self._csv.writerow(RESULT_COLUMNS)

    def write(self, o: RowOutcome) -> None:
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


class FailuresWriter:
    """Rows that did not make it, as read, plus leadpush_row/status/error: fix and feed back in."""

    def __init__(self, path: Path, *, jsonl: bool, columns: list[str] | None) -> None:
        self.path = path
        self.jsonl = jsonl
        self.count = 0
        # utf-8-sig so that Excel opens non-ASCII names correctly; leadpush's reader strips the BOM.
        self._out = _AtomicFile(path, encoding="utf-8" if jsonl else "utf-8-sig")
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
            self._csv.writerow([columns[i] for i in self._keep] + list(FAILURE_COLUMNS))

    def write(self, o: RowOutcome) -> None:
        self.count += 1
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
        # No failures: no file, and none left over from an earlier run either.
        self._out.commit(keep=self.count > 0)
        if self.count == 0:
            self.path.unlink(missing_ok=True)


class FailuresFile(Protocol):
    """A failures file: FailuresWriter (CSV, JSON Lines) or fixit.FixitWriter (a workbook)."""

    path: Path
    count: int

    def write(self, o: RowOutcome) -> None: ...

    def close(self, run_counts: Counter[Status] | None = None) -> None: ...


class LogWriter:
    """--log-file: start and end lines and one line per row, timestamped, appended, secrets masked."""

    def __init__(self, path: Path, secrets: tuple[str, ...] = ()) -> None:
        self.path = path
        self.secrets = secrets
        try:
            self._file: IO[str] = open(path, "a", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: the log file cannot be written ({e.strerror})") from None

    def line(self, text: str) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")
        self._file.write(f"{stamp} {scrub(text, self.secrets)}\n")
        self._file.flush()

    def row(self, o: RowOutcome) -> None:
        self.line(f"row {o.row} {o.status.value} phone={o.phone} campaign={o.campaign}"
                  + (f": {o.message}" if o.message else ""))

    def close(self) -> None:
        self._file.close()


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


def default_failures_path(input_name: str, input_format: str, fmt: str | None = None) -> Path:
    p = Path(input_name)
    if p.stem.endswith(".failures"):  # a failures file fed back in: its failures go back to it
        input_name = str(p.with_name(p.stem[: -len(".failures")] + p.suffix))
    return sibling_path(input_name, "failures", fmt or failures_format(None, None, input_format))


def sibling_path(input_name: str, tag: str, ext: str) -> Path:
    """<input stem>.<tag>.<ext> beside the input (stdin.<tag>.<ext> for standard input)."""
    if input_name == "<stdin>":
        return Path(f"stdin.{tag}.{ext}")
    p = Path(input_name)
    return p.with_name(f"{p.stem}.{tag}.{ext}")


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
        self.causes: Counter[str] = Counter()  # rows per cause code (a row with two causes counts in both)
        self.notes: Counter[str] = Counter()  # rows per note code (a cell leadpush rewrote to read it)

    @property
    def counts(self) -> Counter[Status]:
        return Counter({s: n for s, n in self._counts.items() if n})

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def record(self, o: RowOutcome) -> None:
        status = o.status
        self._counts[status] += 1
        if self.results:
            self.results.write(o)
        if self.log:
            self.log.row(o)
        if o.cause:
            self.causes.update(causes_of(o.cause))
        if o.note:
            self.notes.update(causes_of(o.note))
        failed = status in FAILURE_STATUSES
        if failed and self.failures:
            self.failures.write(o)
        if self.table_mode != "none":
            self._table(o, failed)
        if not failed:
            o.source = None  # the failures file was its only use

    def _table(self, o: RowOutcome, failed: bool) -> None:
        if self.table_mode == "auto" and not self._filtered and len(self.table_rows) >= TABLE_ALL_UP_TO:
            self._filtered = True  # a big file: keep only the problems
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
        if self.results:
            self.results.close()
        if self.failures:
            self.failures.close(self.counts)


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
