"""The inbox: upload each lead file dropped in a folder exactly once, then file it under done/ or failed/."""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .jobs import InputOptions
from .journal import JournalChoice, RunLock, RunLocked
from .outcomes import STATUS_ORDER, ConfigError, ExitCode, LeadpushError
from .records import RunSummary

if TYPE_CHECKING:
    import requests

STATE = ".leadpush-inbox"  # inside the inbox: lock, remembered contents, journals, files being written
LEAD_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".xlsx")
# Names of files still being written by a browser, an editor, rsync or a copy tool.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp", ".filepart")
# The order "worst of its files" follows: a stop by the user outranks everything.
_RANK = {ExitCode.OK: 0, ExitCode.ROW_FAILURES: 1, ExitCode.USAGE: 2, ExitCode.ACCOUNT_REFUSED: 3,
         ExitCode.INTERRUPTED: 4, ExitCode.TERMINATED: 5}


@dataclass
class InboxSettings:
    folder: Path
    pattern: str | None = None  # --pattern; by default every lead file extension
    done: Path | None = None  # by default DIR/done
    failed: Path | None = None  # by default DIR/failed
    settle: float = 60.0  # seconds a file must have stayed unchanged before it is taken

    @property
    def done_dir(self) -> Path:
        return self.done or self.folder / "done"

    @property
    def failed_dir(self) -> Path:
        return self.failed or self.folder / "failed"


@dataclass
class FileReport:
    """What became of one file of the inbox."""

    name: str
    exit_code: ExitCode
    outcome: str  # done | failed | duplicate | left
    moved_to: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    failures_file: str | None = None
    results_file: str | None = None
    error: str | None = None
    summary: RunSummary | None = field(default=None, repr=False)

    def line(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n)
        text = f"{self.name}: " + (parts or "0 rows")
        if self.error:
            text = f"{self.name}: {self.error}"
        if self.failures_file:
            text += f"; failures file {self.failures_file}"
        where = f"moved to {self.moved_to}" if self.moved_to else "left in the inbox"
        return f"{text}; exit {int(self.exit_code)}; {where}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.name, "outcome": self.outcome, "exit_code": int(self.exit_code),
                "moved_to": self.moved_to, "counts": self.counts, "failures_file": self.failures_file,
                "results_file": self.results_file, "error": self.error}


@dataclass
class InboxReport:
    folder: str
    files: list[FileReport] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # left alone: still being written
    busy: str | None = None  # another inbox run holds the folder
    stop_reason: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        return max((f.exit_code for f in self.files), key=_RANK.__getitem__, default=ExitCode.OK)

    @property
    def counts(self) -> dict[str, int]:
        total = {s.value: 0 for s in STATUS_ORDER}
        for f in self.files:
            for status, n in f.counts.items():
                total[status] = total.get(status, 0) + n
        return {s: n for s, n in total.items() if n}

    def total_line(self) -> str:
        by = {k: sum(1 for f in self.files if f.outcome == k) for k in ("done", "failed", "duplicate", "left")}
        files = ", ".join(f"{n} {k}" for k, n in by.items() if n)
        rows = ", ".join(f"{n} {s}" for s, n in self.counts.items())
        text = f"inbox {self.folder}: {len(self.files)} files" + (f" ({files})" if files else "")
        text += f"; rows: {rows}" if rows else ""
        if self.waiting:
            text += f"; {len(self.waiting)} still being written"
        if self.stop_reason:
            text += f"; stopped: {self.stop_reason}"
        return text + f"; exit {int(self.exit_code)}"

    def as_dict(self) -> dict[str, Any]:
        return {"command": "inbox", "file": self.folder, "folder": self.folder,
                "files": [f.as_dict() for f in self.files], "waiting": self.waiting, "counts": self.counts,
                "failures_files": [f.failures_file for f in self.files if f.failures_file],
                "exit_code": int(self.exit_code), "stop_reason": self.stop_reason, "busy": self.busy}


# ---------------------------------------------------------------------------- finding the files

def check_folder(folder: Path) -> Path:
    if not folder.exists():
        raise ConfigError(f"{folder}: no such inbox folder")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the inbox is not a folder")
    return folder


def waiting_files(settings: InboxSettings, *, now: float) -> tuple[list[Path], list[str]]:
    """(files ready to load, oldest first; names left alone because they are still being written)."""
    ready: list[tuple[float, str, Path]] = []
    busy: list[str] = []
    for entry in os.scandir(settings.folder):
        name = entry.name
        if name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue  # hidden names are how rsync and many tools write a file before renaming it
        if name.lower().endswith(PARTIAL_SUFFIXES):
            busy.append(name)
            continue
        if settings.pattern is not None:
            if not fnmatch.fnmatch(name, settings.pattern):
                continue
        elif not name.lower().endswith(LEAD_SUFFIXES):
            continue
        st = entry.stat(follow_symlinks=False)
        if now - st.st_mtime < settings.settle:
            busy.append(name)
            continue
        ready.append((st.st_mtime, name, Path(entry.path)))
    return [p for _, _, p in sorted(ready)], sorted(busy)


def content_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Remembered:
    """The contents this inbox has loaded (by sha256), on disk the moment each is known."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loaded: dict[str, dict[str, Any]] = {}
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.loaded[rec["sha256"]] = rec
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash
        except FileNotFoundError:
            pass

    def add(self, digest: str, name: str, exit_code: int) -> None:
        rec = {"sha256": digest, "file": name, "exit_code": exit_code,
               "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.loaded[digest] = rec


def _free_name(folder: Path, name: str) -> Path:
    """folder/name, or folder/stem.2.suffix … when an earlier file took the name."""
    target = folder / name
    n = 2
    while target.exists():
        p = Path(name)
        target = folder / f"{p.stem}.{n}{p.suffix}"
        n += 1
    return target


def _move(src: Path, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, name)
    shutil.move(str(src), str(target))
    return target


def _failures_name(path: Path) -> str:
    """The failures file upload would write beside this input (a workbook for XLSX, JSONL for JSON)."""
    suffix = path.suffix.lower()
    ext = "jsonl" if suffix in (".json", ".jsonl", ".ndjson") else "xlsx" if suffix == ".xlsx" else "csv"
    return f"{path.name}.failures.{ext}"  # the full name: a.csv and a.tsv never share one


# ---------------------------------------------------------------------------- the run

# Uploads one file: (input options for it, journal choice) -> its summary. LeadpushError for a file
# that cannot be loaded at all.
UploadOne = Callable[[InputOptions, JournalChoice], RunSummary]


def run_inbox(settings: InboxSettings, opts: InputOptions, upload_one: UploadOne, *, now: Callable[[], float],
              interrupted: threading.Event | None = None) -> InboxReport:
    """Load every waiting file, oldest first; the one-inbox-run-at-a-time lock is held throughout."""
    folder = check_folder(settings.folder)
    report = InboxReport(folder=str(folder))
    state = folder / STATE
    try:
        (state / "journals").mkdir(parents=True, exist_ok=True)
        (state / "work").mkdir(exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{state}: cannot be created ({e.strerror})") from None
    with ExitStack() as stack:
        try:
            stack.enter_context(RunLock(state / "inbox.lock", f"the inbox {folder}"))
        except RunLocked as e:
            report.busy = str(e)
            return report
        remembered = Remembered(state / "loaded.jsonl")
        files, report.waiting = waiting_files(settings, now=now())
        for path in files:
            if interrupted is not None and interrupted.is_set():
                break
            result = _one_file(path, settings, opts, upload_one, remembered, state)
            if result is None:  # changed while being read: still being written
                report.waiting.append(path.name)
                continue
            report.files.append(result)
            if result.exit_code in (ExitCode.ACCOUNT_REFUSED, ExitCode.INTERRUPTED, ExitCode.TERMINATED):
                report.stop_reason = (f"{path.name}: exit {int(result.exit_code)}; the other files wait "
                                      f"for the next run")
                break
    return report


def _one_file(path: Path, settings: InboxSettings, opts: InputOptions, upload_one: UploadOne,
              remembered: Remembered, state: Path) -> FileReport | None:
    before = path.stat()
    digest = content_digest(path)
    after = path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        return None
    done_dir, failed_dir = settings.done_dir, settings.failed_dir

    earlier = remembered.loaded.get(digest)
    if earlier is not None:
        note = (f"not loaded: the same content as {earlier['file']}, loaded at {earlier['at']} "
                f"(exit {earlier['exit_code']})")
        moved = _move(path, done_dir, path.name)
        moved.with_name(moved.name + ".duplicate.txt").write_text(note + "\n", encoding="utf-8")
        return FileReport(path.name, ExitCode.OK, "duplicate", moved_to=str(moved), error=note)

    journal = state / "journals" / f"{digest[:32]}.jsonl"
    work = state / "work"
    results, failures = work / f"{path.name}.results.csv", work / _failures_name(path)
    file_opts = replace(opts, file=str(path), results=results, failures=failures, write_failures=True)
    choice = JournalChoice(path=journal, resume=journal.exists())  # a crash mid-file: carry on where it stopped
    try:
        summary = upload_one(file_opts, choice)
    except RunLocked as e:  # someone is uploading this very file by hand: leave it to them
        return FileReport(path.name, e.exit_code, "left", error=str(e))
    except LeadpushError as e:
        if e.exit_code != ExitCode.USAGE:  # an account refusal before any row: the file waits
            return FileReport(path.name, e.exit_code, "left", error=str(e))
        moved = _move(path, failed_dir, path.name)
        moved.with_name(moved.name + ".error.txt").write_text(f"{e}\n", encoding="utf-8")
        _forget(journal)  # a file that cannot be read had nothing sent
        results.unlink(missing_ok=True)
        return FileReport(path.name, ExitCode.USAGE, "failed", moved_to=str(moved), error=str(e))

    report = FileReport(path.name, summary.exit_code, "left", summary=summary,
                        counts={s.value: n for s, n in summary.count_items()})
    if summary.exit_code not in (ExitCode.OK, ExitCode.ROW_FAILURES):
        # Stopped (account refused, Ctrl-C): the file stays, its journal resumes it next time.
        report.error = summary.stop_reason or "stopped"
        results.unlink(missing_ok=True)
        failures.unlink(missing_ok=True)
        return report
    # Remembered before it moves: a crash between the two finds a known content next time, never a
    # second load.
    remembered.add(digest, path.name, int(summary.exit_code))
    moved = _move(path, done_dir, path.name)
    report.outcome, report.moved_to = "done", str(moved)
    if results.exists():
        report.results_file = str(_move(results, done_dir, moved.name + ".results.csv"))
    if summary.failures_file and failures.exists():
        report.failures_file = str(_move(failures, done_dir, moved.name + failures.name[len(path.name):]))
    _forget(journal)  # finished: its rows are in the results file
    return report


def _forget(journal: Path) -> None:
    journal.unlink(missing_ok=True)
    journal.with_name(journal.name + ".lock").unlink(missing_ok=True)  # its run is over: nobody holds it


def upload_with(session: requests.Session, upload_settings: Any, *, today: dt.date, progress: Any,
                interrupt: threading.Event, clock: Callable[[], float], wall_clock: Callable[[], float],
                sleep: Callable[[float], None], sandbox: bool = False, profile: str | None = None,
                skip_loaded_within: str | None = None) -> UploadOne:
    """The upload of one inbox file, as `upload` does it (journal, lock, run ledger), over one session
    shared by all the files."""
    from .upload import open_run_log, prepare_run, upload  # noqa: PLC0415 (requests loads only to send)

    def upload_one(opts: InputOptions, choice: JournalChoice) -> RunSummary:
        with ExitStack() as stack:
            run = prepare_run(stack, opts, choice, cache_dir=upload_settings.cache_dir, sandbox=sandbox, stdin=None)
            run_log = open_run_log(stack, run, upload_settings.conn, profile, sandbox=sandbox,
                                   skip_loaded_within=skip_loaded_within)
            return upload(opts, upload_settings, run.lead_file, today=today, session=session, clock=clock,
                          wall_clock=wall_clock, sleep=sleep, progress=progress, interrupt=interrupt,
                          journal=run.journal, resume=run.resume, ledger=run_log)
    return upload_one
