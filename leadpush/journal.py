"""The upload journal (every finished row, on disk at once, for --resume) and the one-run-at-a-time lock."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .outcomes import ConfigError, LeadpushError, RowOutcome, Status

DONE = frozenset({Status.ADDED.value, Status.EXISTS.value, Status.DELETED.value})  # deleted: by an undo


def default_journal_path(input_name: str) -> Path:
    if input_name == "<stdin>":
        return Path("stdin.leadpush-journal.jsonl")
    p = Path(input_name)
    return p.with_name(p.stem + ".leadpush-journal.jsonl")


@dataclass
class JournalState:
    """What earlier runs recorded."""

    digests: set[str] = field(default_factory=set)
    done_rows: dict[str, set[int]] = field(default_factory=dict)  # digest -> rows added/exists
    done_keys: set[tuple[str, str]] = field(default_factory=set)  # (campaign, phone) added/exists
    finished_rows: int = 0
    last_row: int = 0
    complete: bool = True  # the last run ended with nothing left to send

    @property
    def empty(self) -> bool:
        return not self.digests


def read_journal(path: Path) -> JournalState:
    state = JournalState()
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        return state
    except OSError as e:
        raise ConfigError(f"{path}: the journal cannot be read ({e.strerror})") from None
    with f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: the row was not finished
            kind = rec.get("type")
            if kind == "start":
                state.digests.add(rec.get("input", ""))
                state.complete = False
            elif kind == "row":
                state.finished_rows += 1
                state.last_row = max(state.last_row, int(rec.get("row", 0)))
                if rec.get("status") in DONE:
                    state.done_rows.setdefault(rec.get("input", ""), set()).add(int(rec["row"]))
                    state.done_keys.add((rec.get("campaign", ""), rec.get("phone", "")))
            elif kind == "end":
                state.complete = bool(rec.get("complete"))
    return state


class Journal:
    """Appends one JSON line per finished row, flushed and fsynced before the next row is told done."""

    def __init__(self, path: Path, digest: str) -> None:
        self.path = path
        self.digest = digest
        self._lock = threading.Lock()
        try:
            self._file: IO[str] = open(path, "a", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: the journal cannot be written ({e.strerror})") from None

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())  # on disk: survives kill -9, an OOM kill or a power cut

    def start(self, *, file: str, rows: int, resume: bool) -> None:
        self._write({"type": "start", "input": self.digest, "file": file, "rows": rows, "resume": resume,
                     "pid": os.getpid(), "at": _now()})

    def row(self, o: RowOutcome) -> None:
        self._write({"type": "row", "input": self.digest, "row": o.row, "campaign": o.campaign,
                     "phone": o.phone, "status": o.status.value, "at": _now()})

    def end(self, *, complete: bool) -> None:
        self._write({"type": "end", "complete": complete, "at": _now()})

    def close(self) -> None:
        self._file.close()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RunLock:
    """An exclusive lock that the kernel drops with its process: no stale lock after a crash."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._file: IO[str] | None = None

    def acquire(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{self.path}: cannot create the lock file ({e.strerror})") from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise RunLocked(f"{self.what} is being uploaded by {holder} right now; wait for it to finish "
                            f"(lock: {self.path})") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock; the file may stay, harmless
            self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def input_lock(cache_dir: Path, input_path: str, name: str) -> RunLock:
    """The lock for one input file (by its real path), whatever journal a run names."""
    digest = hashlib.sha256(os.fsencode(Path(input_path).resolve())).hexdigest()[:24]  # any name the disk holds
    return RunLock(cache_dir / "locks" / f"{digest}.lock", name)


def journal_lock(path: Path) -> RunLock:
    return RunLock(path.with_name(path.name + ".lock"), f"journal {path}")


class RunLocked(LeadpushError):
    """Another run holds the lock on this input or journal."""


@dataclass
class JournalChoice:
    """What the command line says about the journal."""

    path: Path | None = None  # --journal
    keep: bool = True  # not --no-journal
    resume: bool = False
    restart: bool = False


def keeps_journal(choice: JournalChoice, *, sandbox: bool) -> bool:
    """The journal rule: a journal (beside the input, or where --journal says) unless --no-journal,
    and none for a --sandbox run unless --journal names one (a demo leaves no files behind)."""
    if choice.resume and choice.restart:
        raise ConfigError("--resume and --restart exclude each other")
    keep = choice.keep and (choice.path is not None or not sandbox)
    if not keep and choice.resume:
        raise ConfigError("--resume needs the journal (leave out --no-journal)")
    return keep


@dataclass
class Resume:
    """What an earlier run finished, and how to match this run's rows against it."""

    state: JournalState
    digest: str

    @property
    def same_input(self) -> bool:
        return self.digest in self.state.digests

    def done(self, outcome: RowOutcome) -> bool:
        if self.same_input:
            return outcome.row in self.state.done_rows.get(self.digest, ())
        # The input changed: row numbers mean nothing now, campaign and phone still do.
        return (outcome.campaign, outcome.phone) in self.state.done_keys


def open_journal(stack: ExitStack, path: Path, digest: str, choice: JournalChoice,
                 file: str) -> tuple[Journal, Resume | None, str | None]:
    """Lock and open the journal for this run (closed and unlocked by `stack`):
    (journal, what to resume from, a note for the user)."""
    stack.enter_context(journal_lock(path))
    journal, state, note = prepare_journal(path, digest, resume=choice.resume, restart=choice.restart, file=file)
    stack.callback(journal.close)
    return journal, None if state is None else Resume(state, digest), note


def prepare_journal(path: Path, digest: str, *, resume: bool, restart: bool,
                    file: str) -> tuple[Journal, JournalState | None, str | None]:
    """Open the journal for this run: (journal, earlier state to resume from, a note for the user).

    An earlier run that did not finish is never silently ignored nor silently used: without
    --resume or --restart, this stops with what to do.
    """
    state = read_journal(path)
    note = None
    if resume:
        if state.empty:
            note = f"{path}: no earlier run to resume; sending every row"
        elif digest not in state.digests:
            note = (f"{file} changed since {path} was written; resuming by campaign and phone "
                    f"(rows already added there are skipped), not by row number")
        return Journal(path, digest), state, note
    if not state.empty and not state.complete and not restart:
        which = "this file" if digest in state.digests else "an earlier version of this file"
        raise ConfigError(f"an earlier run of {which} stopped at row {state.last_row} ({state.finished_rows} rows "
                          f"finished; journal {path}); use --resume to send the rest, or --restart to start over")
    path.unlink(missing_ok=True)  # finished, restarted or none: a new journal
    return Journal(path, digest), None, note
