"""What is recorded of each row: counts, rows for the table, the results file and the failures file."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from .mapping import IGNORED_PREFIX, ColumnMap
from .outcomes import FAILURE_STATUSES, STATUS_ORDER, ConfigError, ExitCode, RowOutcome, Status, scrub

RESULT_COLUMNS = ("row", "status", "message", "phoneNumber", "campaignName", "attempts", "http_status")
FAILURE_COLUMNS = ("leadpush_row", "leadpush_status", "leadpush_error")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
TABLE_ALL_UP_TO = 200  # files up to this many rows show every row by default
TABLE_MAX_ROWS = 1000  # at most this many problem rows are kept for the table


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
                "campaignName": o.campaign, "attempts": o.attempts, "http_status": o.http_status},
                ensure_ascii=False) + "\n")
        else:
            self._csv.writerow((o.row, o.status.value, formula_safe(o.message), o.phone, o.campaign,
                                o.attempts, "" if o.http_status is None else o.http_status))

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
        if not jsonl:
            columns = columns or []
            # An earlier run's leadpush_* columns are replaced, not repeated.
            self._keep = [i for i, c in enumerate(columns) if not c.strip().lower().startswith(IGNORED_PREFIX)]
            self._csv = csv.writer(self._out.file)
            self._csv.writerow([columns[i] for i in self._keep] + list(FAILURE_COLUMNS))

    def write(self, o: RowOutcome) -> None:
        self.count += 1
        source = o.source or {}
        if self.jsonl:
            pairs = {k: v for k, v in source.items() if not str(k).lower().startswith(IGNORED_PREFIX)}
            pairs.update(leadpush_row=o.row, leadpush_status=o.status.value, leadpush_error=o.message)
            self._out.file.write(json_object(pairs) + "\n")
        else:
            values = source if isinstance(source, list) else list(source.values())
            self._csv.writerow([cell_text(values[i]) if i < len(values) else "" for i in self._keep]
                               + [o.row, o.status.value, formula_safe(o.message)])

    def close(self) -> None:
        # No failures: no file, and none left over from an earlier run either.
        self._out.commit(keep=self.count > 0)
        if self.count == 0:
            self.path.unlink(missing_ok=True)


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


def default_failures_path(input_name: str, input_format: str) -> Path:
    ext = ".jsonl" if input_format in ("json", "jsonl") else ".csv"
    if input_name == "<stdin>":
        return Path("stdin.failures" + ext)
    p = Path(input_name)
    return p.with_name(p.stem + ".failures" + ext)


class Recorder:
    """Takes each row's outcome once, in row order, and hands it to everything that keeps it."""

    def __init__(self, *, results: ResultsWriter | None = None, failures: FailuresWriter | None = None,
                 table: str = "auto", log: LogWriter | None = None) -> None:
        self.results = results
        self.failures = failures
        self.log = log
        self._counts = dict.fromkeys(Status, 0)
        self.table_mode = table  # auto | all | problems | none
        self.table_rows: list[RowOutcome] = []
        self.table_dropped = 0
        self._filtered = table == "problems"

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
        for writer in (self.results, self.failures):
            if writer:
                writer.close()


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
    stop_reason: str | None = None
    elapsed: float | None = None
    requests: int | None = None  # HTTP requests made (upload)
    token_generations: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
