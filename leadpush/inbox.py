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
from .outcomes import STATUS_ORDER, ConfigError, ExitCode, LeadpushError, counted
from .readers import LEAD_EXTENSIONS
from .records import RunSummary

if TYPE_CHECKING:
    import requests

STATE = ".leadpush-inbox"  # inside the inbox: lock, remembered contents, journals, files being written
LEAD_SUFFIXES = LEAD_EXTENSIONS  # the readers' own table: every format leadpush reads
# leadpush's own report files (never leads, even when copied back into the inbox).
REPORT_SUFFIXES = (".duplicate.txt", ".error.txt", ".results.csv")
# Lock and owner files of office suites and editors: `~$leads.xlsx` (Excel), `.~lock.leads.csv#` (LibreOffice).
LOCK_PREFIXES = ("~$", ".~lock.")
# Names of files still being written by a browser, an editor, rsync or a copy tool.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart")
ORPHAN_DAYS = 7  # a journal whose file left the inbox is deleted once untouched this long
# Rows with a final verdict: a file is filed under done/ only when every row has one.
FINAL = frozenset({"valid", "added", "exists", "deleted", "skipped", "suppressed", "invalid", "rejected"})
# What reached CloudAgent (or may have): rows in a journal with one of these mean "something was sent".
SENT = frozenset({"added", "exists", "rejected", "failed", "deleted"})
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

    def check(self) -> None:
        """done/ and failed/ must not be the inbox itself: the files filed there would be loaded again."""
        here = _real(self.folder)
        for option, where in (("--done", self.done_dir), ("--failed", self.failed_dir)):
            if _real(where) == here:
                raise ConfigError(f"{option} {where}: is the inbox itself; its files would be loaded again "
                                  f"(use a folder beside or inside it, such as {self.folder / option[2:]})")


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def shown_name(name: str) -> str:
    """A file name as it can be printed: bytes that are not UTF-8 become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


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

    def __post_init__(self) -> None:
        self.name = shown_name(self.name)

    def line(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n)
        text = f"{self.name}: " + (parts or "0 rows")
        if self.error:
            text = f"{self.name}: {shown_name(self.error)}"
        if self.failures_file:
            text += f"; failures file {shown_name(self.failures_file)}"
        where = f"moved to {shown_name(self.moved_to)}" if self.moved_to else "left in the inbox"
        return f"{text}; exit {int(self.exit_code)}; {where}"

    def as_dict(self) -> dict[str, Any]:
        def shown(path: str | None) -> str | None:
            return None if path is None else shown_name(path)
        return {"file": self.name, "outcome": self.outcome, "exit_code": int(self.exit_code),
                "moved_to": shown(self.moved_to), "counts": self.counts, "failures_file": shown(self.failures_file),
                "results_file": shown(self.results_file), "error": shown(self.error)}


@dataclass
class InboxReport:
    folder: str
    files: list[FileReport] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # left alone: still being written
    not_leads: list[str] = field(default_factory=list)  # left alone: not lead files (symlinks, other names)
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
        text = f"inbox {self.folder}: {counted(len(self.files), 'file')}" + (f" ({files})" if files else "")
        text += f"; rows: {rows}" if rows else ""
        if self.waiting:
            text += f"; {len(self.waiting)} still being written"
        if self.not_leads:
            text += f"; not lead files, left alone: {', '.join(map(shown_name, self.not_leads))}"
        if self.stop_reason:
            text += f"; stopped: {self.stop_reason}"
        return text + f"; exit {int(self.exit_code)}"

    def as_dict(self) -> dict[str, Any]:
        return {"command": "inbox", "file": self.folder, "folder": self.folder,
                "files": [f.as_dict() for f in self.files], "waiting": [shown_name(n) for n in self.waiting],
                "not_lead_files": [shown_name(n) for n in self.not_leads], "counts": self.counts,
                "failures_files": [shown_name(f.failures_file) for f in self.files if f.failures_file],
                "exit_code": int(self.exit_code), "stop_reason": self.stop_reason, "busy": self.busy}


# ---------------------------------------------------------------------------- finding the files

def check_folder(folder: Path) -> Path:
    if not folder.exists():
        raise ConfigError(f"{folder}: no such inbox folder")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the inbox is not a folder")
    return folder


def waiting_files(settings: InboxSettings, *, now: float,
                  not_leads: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """(files ready to load, oldest first; names left alone because they are still being written).

    Entries that are no lead file (a symlink, a lock or report file, a name no reader takes) go to
    `not_leads`, so the summary says why they stay."""
    ready: list[tuple[float, str, Path]] = []
    busy: list[str] = []
    others: list[str] = []
    for entry in os.scandir(settings.folder):
        name = entry.name
        lower = name.lower()
        try:
            if name.startswith(".") or entry.is_dir(follow_symlinks=False):
                continue  # hidden names are how rsync and many tools write a file before renaming it
            if entry.is_symlink() or not entry.is_file(follow_symlinks=False) or name.startswith(LOCK_PREFIXES) \
                    or lower.endswith(REPORT_SUFFIXES) or lower.endswith(".swp"):
                others.append(name)
                continue
            if lower.endswith(PARTIAL_SUFFIXES):
                busy.append(name)
                continue
            if settings.pattern is not None:
                if not fnmatch.fnmatch(name, settings.pattern):
                    continue  # the user chose which names are leads
            elif not lower.endswith(LEAD_SUFFIXES):
                others.append(name)
                continue
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone between the listing and the look: nothing to load
        if now - st.st_mtime < settings.settle:
            busy.append(name)
            continue
        ready.append((st.st_mtime, name, Path(entry.path)))
    if not_leads is not None:
        not_leads.extend(sorted(others))
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

    def add(self, digest: str, name: str, exit_code: int, *, pending: bool = False) -> None:
        """Remember a content. `pending`: loaded, not yet filed (the next run files it if a crash
        comes between the two); a later record for the same content replaces it."""
        rec = {"sha256": digest, "file": shown_name(name), "exit_code": exit_code,
               "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        if pending:
            rec["pending"] = True
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
    ext = ("jsonl" if suffix in (".json", ".jsonl", ".ndjson")
           else "xlsx" if suffix in (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods") else "csv")
    return f"{path.name}.failures.{ext}"  # the full name: a.csv and a.tsv never share one


# ---------------------------------------------------------------------------- the run

# Uploads one file: (input options for it, journal choice) -> its summary. LeadpushError for a file
# that cannot be loaded at all.
UploadOne = Callable[[InputOptions, JournalChoice], RunSummary]


def run_inbox(settings: InboxSettings, opts: InputOptions, upload_one: UploadOne, *, now: Callable[[], float],
              interrupted: threading.Event | None = None,
              on_lock: Callable[[], None] | None = None) -> InboxReport:
    """Load every waiting file, oldest first; the one-inbox-run-at-a-time lock is held throughout.

    `on_lock` is called once the lock is held (a busy run calls nothing: it is not a run)."""
    folder = check_folder(settings.folder)
    settings.check()
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
        if on_lock is not None:
            on_lock()
        _clean(state, folder, now())
        remembered = Remembered(state / "loaded.jsonl")
        files, report.waiting = waiting_files(settings, now=now(), not_leads=report.not_leads)
        for path in files:
            if interrupted is not None and interrupted.is_set():
                break
            try:
                result = _one_file(path, settings, opts, upload_one, remembered, state, now)
            except FileNotFoundError as e:
                if not os.path.lexists(path):
                    continue  # taken away before its turn: nothing to load
                result = FileReport(path.name, ExitCode.USAGE, "left", error=f"left in the inbox: {e.strerror}")
            except (OSError, UnicodeError, LeadpushError) as e:
                # One file's trouble (unreadable, a folder it cannot be moved to) is that file's line;
                # the inbox goes on with the others.
                why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                result = FileReport(path.name, ExitCode.USAGE, "left", error=f"left in the inbox: {why}")
            if result is None:  # changed since it was listed: still being written
                report.waiting.append(path.name)
                continue
            report.files.append(result)
            if result.exit_code in (ExitCode.ACCOUNT_REFUSED, ExitCode.INTERRUPTED, ExitCode.TERMINATED):
                report.stop_reason = (f"{result.name}: exit {int(result.exit_code)}; the other files wait "
                                      f"for the next run")
                break
    return report


def _journal_of(state: Path, name: str) -> Path:
    """An inbox file's journal, by its name (as upload keys it by the input path): a file re-delivered
    changed after a crash resumes by campaign and phone instead of sending everything again."""
    return state / "journals" / f"{hashlib.sha256(os.fsencode(name)).hexdigest()[:32]}.jsonl"


def _clean(state: Path, folder: Path, now: float) -> None:
    """Leftovers of runs that were killed: temporaries of half-written reports, and journals whose
    file left the inbox more than ORPHAN_DAYS ago."""
    for tmp in (state / "work").glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    try:
        present = {_journal_of(state, name).name for name in os.listdir(folder)}
    except OSError:
        return
    for journal in (state / "journals").glob("*.jsonl"):
        try:
            stale = now - journal.stat().st_mtime > ORPHAN_DAYS * 86400
        except FileNotFoundError:
            continue
        if journal.name not in present and stale:
            _forget(journal)


def _sent_rows(journal: Path) -> int:
    """Rows of this journal that reached CloudAgent (or may have)."""
    n = 0
    try:
        with open(journal, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                n += rec.get("type") == "row" and rec.get("status") in SENT
    except FileNotFoundError:
        return 0
    return n


def _settled(path: Path, settings: InboxSettings, now: float) -> os.stat_result | None:
    st = path.stat()
    return st if now - st.st_mtime >= settings.settle else None


def _one_file(path: Path, settings: InboxSettings, opts: InputOptions, upload_one: UploadOne,
              remembered: Remembered, state: Path, now: Callable[[], float]) -> FileReport | None:
    before = _settled(path, settings, now())  # again now: it may have been rewritten since the listing
    if before is None:
        return None
    done_dir, failed_dir = settings.done_dir, settings.failed_dir
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        moved = _move(path, failed_dir, path.name)
        note = "its name is not UTF-8 text; rename it (letters, digits, - and _) and drop it again"
        _write_note(moved.with_name(moved.name + ".error.txt"), f"{shown_name(path.name)}: {note}")
        return FileReport(path.name, ExitCode.USAGE, "failed", moved_to=str(moved), error=note)
    try:
        digest = content_digest(path)
    except PermissionError as e:
        return _failed(path, failed_dir, f"{shown_name(path.name)}: cannot be read ({e.strerror})", None)
    after = path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        return None

    journal = _journal_of(state, path.name)
    work = state / "work"
    results, failures = work / f"{path.name}.results.csv", work / _failures_name(path)
    earlier = remembered.loaded.get(digest)
    if earlier is not None and earlier.get("pending") and earlier["file"] == shown_name(path.name):
        # Loaded by a run that stopped before filing it: file it now, with its reports.
        report = FileReport(path.name, ExitCode(earlier["exit_code"]), "done",
                            error=f"loaded at {earlier['at']} (exit {earlier['exit_code']}); filed now")
        _file_done(path, done_dir, digest, int(earlier["exit_code"]), report, results, failures, remembered,
                   journal)
        return report
    if earlier is not None:
        note = (f"not loaded: the same content as {earlier['file']}, loaded at {earlier['at']} "
                f"(exit {earlier['exit_code']})")
        moved = _move(path, done_dir, path.name)
        _write_note(moved.with_name(moved.name + ".duplicate.txt"), note)
        return FileReport(path.name, ExitCode.OK, "duplicate", moved_to=str(moved), error=note)

    file_opts = replace(opts, file=str(path), results=results, failures=failures, write_failures=True)
    # A crash mid-file: carry on where it stopped (by name: a re-delivered file resumes by campaign and phone).
    choice = JournalChoice(path=journal, resume=journal.exists(), by_name=True)
    try:
        summary = upload_one(file_opts, choice)
    except RunLocked as e:  # someone is uploading this very file by hand: leave it to them
        return FileReport(path.name, ExitCode.OK, "left", error=f"busy, left for the next run: {e}")
    except LeadpushError as e:
        if e.exit_code != ExitCode.USAGE:  # an account refusal before any row: the file waits
            return FileReport(path.name, e.exit_code, "left", error=str(e))
        sent = _sent_rows(journal)
        if sent:  # read half-way (the file changed under the run?): keep what was sent resumable
            results.unlink(missing_ok=True)
            return FileReport(path.name, ExitCode.USAGE, "left",
                              error=f"{e}; {sent} rows were sent already: left in the inbox, the next run "
                                    f"resumes it")
        return _failed(path, failed_dir, str(e), journal, results)

    report = FileReport(path.name, summary.exit_code, "left", summary=summary,
                        counts={s.value: n for s, n in summary.count_items()})
    if summary.exit_code not in (ExitCode.OK, ExitCode.ROW_FAILURES):
        # Stopped (account refused, Ctrl-C): the file stays, its journal resumes it next time.
        report.error = summary.stop_reason or "stopped"
        results.unlink(missing_ok=True)
        failures.unlink(missing_ok=True)
        return report
    unfinished = _unfinished(summary, opts)
    changed = _changed(path, before, digest)
    if unfinished or changed:
        # Rows without a verdict (CloudAgent unreachable, retries spent), or a file rewritten during
        # its run: not done. It stays, unremembered, and the next run resumes it from its journal.
        report.exit_code = max(summary.exit_code, ExitCode.ROW_FAILURES, key=_RANK.__getitem__)
        why = [f"{unfinished} rows not sent or without an answer"] if unfinished else []
        why += ["the file changed while it was loaded"] if changed else []
        report.error = (", ".join(f"{n} {s}" for s, n in report.counts.items() if n) + "; "
                        + " and ".join(why) + "; the next run resumes it")
        results.unlink(missing_ok=True)
        failures.unlink(missing_ok=True)
        return report
    _file_done(path, done_dir, digest, int(summary.exit_code), report, results,
               failures if summary.failures_file else None, remembered, journal)
    return report


def _unfinished(summary: RunSummary, opts: InputOptions) -> int:
    """Rows the next run can still settle: aborted ones, and failed ones it would send again. A row
    whose outcome is unknown is sent again only with checkDuplicate TRUE (a resend cannot add it
    twice); with FALSE it is final here, in the failures file as "check CloudAgent first"."""
    from .causes import UNKNOWN_CAUSES  # noqa: PLC0415

    counts = {s.value: n for s, n in summary.count_items()}
    open_rows = sum(n for s, n in counts.items() if s not in FINAL)
    if not opts.checks.defaults.check_duplicate:
        open_rows -= sum(n for cause, n in summary.cause_items() if cause in UNKNOWN_CAUSES)
    return max(open_rows, 0)


def _changed(path: Path, before: os.stat_result, digest: str) -> bool:
    try:
        st = path.stat()
        if (st.st_size, st.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return True
        return content_digest(path) != digest
    except FileNotFoundError:
        return True


def _file_done(path: Path, done_dir: Path, digest: str, exit_code: int, report: FileReport, results: Path,
               failures: Path | None, remembered: Remembered, journal: Path) -> None:
    """Move the file and its reports to done/, then remember its content. A pending record first: a
    crash between the steps is finished by the next run (the file is filed, never loaded again)."""
    remembered.add(digest, path.name, exit_code, pending=True)
    moved = _move(path, done_dir, path.name)
    report.outcome, report.moved_to = "done", str(moved)
    if results.exists():
        report.results_file = str(_move(results, done_dir, moved.name + ".results.csv"))
    if failures is not None and failures.exists():
        report.failures_file = str(_move(failures, done_dir, moved.name + failures.name[len(path.name):]))
    remembered.add(digest, path.name, exit_code)
    _forget(journal)  # finished: its rows are in the results file


def _failed(path: Path, failed_dir: Path, error: str, journal: Path | None, results: Path | None = None) -> FileReport:
    """A file that cannot be loaded and had nothing sent: to failed/, the reason beside it."""
    moved = _move(path, failed_dir, path.name)
    _write_note(moved.with_name(moved.name + ".error.txt"), error)
    if journal is not None:
        _forget(journal)
    if results is not None:
        results.unlink(missing_ok=True)
    return FileReport(path.name, ExitCode.USAGE, "failed", moved_to=str(moved), error=error)


def _write_note(path: Path, text: str) -> None:
    path.write_text(shown_name(text) + "\n", encoding="utf-8")


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
            run = prepare_run(stack, opts, choice, cache_dir=upload_settings.cache_dir, sandbox=sandbox, stdin=None,
                              conn=upload_settings.conn)
            run_log = open_run_log(stack, run, upload_settings.conn, profile, sandbox=sandbox,
                                   skip_loaded_within=skip_loaded_within)
            return upload(opts, upload_settings, run.lead_file, today=today, session=session, clock=clock,
                          wall_clock=wall_clock, sleep=sleep, progress=progress, interrupt=interrupt,
                          journal=run.journal, resume=run.resume, ledger=run_log)
    return upload_one
