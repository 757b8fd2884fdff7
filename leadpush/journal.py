"""The upload journal (every finished row, on disk at once, for --resume) and the one-run-at-a-time lock."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .files import open_private, regular_or_absent, sibling_path
from .outcomes import ConfigError, LeadpushError, OutputError, RowOutcome, Status

DONE = frozenset({Status.ADDED.value, Status.EXISTS.value, Status.DELETED.value})  # deleted: by an undo
STATUSES = frozenset(s.value for s in Status)
FORMAT = 2  # the "journal" field of a start record

# Who a run belongs to: (the input file's (device, inode), or None for stdin; base URL; user).
Owner = tuple[tuple[int, int] | None, str, str]
RowKey = tuple[str, int]  # (input digest, row)


def default_journal_path(input_name: str, *, stream: bool = False) -> Path | None:
    """The input's full name + .leadpush-journal.jsonl beside it; none for stdin or a pipe
    (nothing is ever created beside a device: name one with --journal)."""
    if stream or input_name == "<stdin>":
        return None
    return sibling_path(input_name, "leadpush-journal", "jsonl")


@dataclass
class JournalState:
    """What the journal's last run (with the runs that resumed it) recorded."""

    owner: Owner | None = None
    started_at: str = ""
    digests: set[str] = field(default_factory=set)
    done_rows: set[RowKey] = field(default_factory=set)  # added/exists
    done_keys: set[tuple[str, str]] = field(default_factory=set)  # (campaign, phone) added/exists
    unknown_rows: set[RowKey] = field(default_factory=set)  # sent, may be stored, no verdict
    unknown_keys: set[tuple[str, str]] = field(default_factory=set)
    sent_rows: dict[RowKey, tuple[str, str]] = field(default_factory=dict)  # a request went out
    final_rows: set[RowKey] = field(default_factory=set)  # a verdict (any) is on record
    finished_rows: int = 0
    last_row: int = 0
    ended: bool = True  # the last run ran to its end (not killed, interrupted or stopped)
    unsettled: int = 0  # rows the last run left failed or aborted
    unusable_lines: int = 0

    @property
    def empty(self) -> bool:
        return self.owner is None

    @property
    def finished(self) -> bool:
        """Ran to its end and left nothing a --resume could still send or should check."""
        return self.ended and self.unsettled == 0 and not self.unknown_rows and not self.in_flight

    @cached_property
    def in_flight(self) -> dict[RowKey, tuple[str, str]]:
        """Rows whose request went out but whose verdict never reached the journal (kill -9, a full
        disk). Asked only once the journal is read."""
        return {k: v for k, v in self.sent_rows.items() if k not in self.final_rows and k not in self.done_rows}

    @cached_property
    def in_flight_keys(self) -> set[tuple[str, str]]:
        return set(self.in_flight.values())


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def read_journal(path: Path) -> JournalState:
    """Every usable line of the journal, read defensively: a line leadpush could not have written
    (cut short by a crash, garbage, a wrong type) is skipped and counted; a file that holds no
    journal line at all is refused (it is not leadpush's)."""
    state = JournalState()
    if regular_or_absent(path, "the journal") is None:
        return state
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: the journal cannot be read ({e.strerror})") from None
    usable = 0
    lines = [line for line in data.split(b"\n") if line.strip()]
    for raw in lines:
        try:
            rec = json.loads(raw.decode("utf-8"))
        except ValueError:
            rec = None
        if not isinstance(rec, dict) or not _apply(state, rec):
            state.unusable_lines += 1
            continue
        usable += 1
    if lines and not usable:
        raise ConfigError(f"{path}: not a leadpush journal (no line of it is one); choose another path "
                          f"with --journal, or remove it")
    return state


def _apply(state: JournalState, rec: dict[str, Any]) -> bool:
    """One record into the state; False if it is not one leadpush writes."""
    kind = rec.get("type")
    if kind == "start":
        ident, url, user = rec.get("identity"), _str(rec.get("base_url")), _str(rec.get("user"))
        digest = _str(rec.get("input"))
        if rec.get("journal") != FORMAT or url is None or user is None or digest is None:
            return False
        if ident is not None and not (isinstance(ident, list) and len(ident) == 2 and all(_int(i) is not None
                                                                                           for i in ident)):
            return False
        owner: Owner = (None if ident is None else (ident[0], ident[1]), url, user)
        if not rec.get("resume") or state.owner != owner:  # a fresh run: earlier ones no longer count
            fresh = JournalState(owner=owner, started_at=_str(rec.get("at")) or "",
                                 unusable_lines=state.unusable_lines)
            state.__dict__.update(fresh.__dict__)
        state.digests.add(digest)
        state.ended = False
        return True
    if state.owner is None:
        return False  # rows before any start: not from leadpush
    if kind in ("row", "send"):
        row, digest = _int(rec.get("row")), _str(rec.get("input"))
        campaign, phone = _str(rec.get("campaign")), _str(rec.get("phone"))
        if row is None or digest is None or campaign is None or phone is None:
            return False
        key = (digest, row)
        if kind == "send":
            state.sent_rows[key] = (campaign, phone)
            return True
        status = rec.get("status")
        if status not in STATUSES:
            return False
        state.finished_rows += 1
        state.last_row = max(state.last_row, row)
        state.final_rows.add(key)
        if status in DONE:
            state.done_rows.add(key)
            state.done_keys.add((campaign, phone))
            state.unknown_rows.discard(key)
            state.unknown_keys.discard((campaign, phone))
        elif rec.get("unknown") is True:
            state.unknown_rows.add(key)
            state.unknown_keys.add((campaign, phone))
        return True
    if kind == "end":
        complete, unsettled = rec.get("complete"), _int(rec.get("unsettled", 0))
        if not isinstance(complete, bool) or unsettled is None:
            return False
        state.ended, state.unsettled = complete, unsettled
        return True
    return False


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (tests put a full disk here)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Journal:
    """Appends one JSON line per finished row, flushed and fsynced before the next row is told done.

    A line is written whole or not at all: after a failed write the file is cut back to where the
    line began, and after the first failure nothing more is written (OutputError says why).
    """

    def __init__(self, path: Path, digest: str, owner: Owner, *, fresh: bool) -> None:
        self.path = path
        self.digest = digest
        self.owner = owner
        self.broken: str | None = None
        self._lock = threading.Lock()
        if fresh:
            regular_or_absent(path, "the journal")
            path.unlink(missing_ok=True)  # a new journal: the last run's no longer counts
        self._fd = open_private(path, "the journal", append=True)
        self._cut_partial_line()

    def _cut_partial_line(self) -> None:
        """A last line cut short by a crash or a full disk is removed, so it never glues to ours."""
        size = os.fstat(self._fd).st_size
        if not size:
            return
        with open(self.path, "rb") as f:
            f.seek(max(0, size - 65536))
            tail = f.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size)
        try:
            os.ftruncate(self._fd, keep)
        except OSError:
            pass

    def _write(self, record: dict[str, Any], *, sync: bool = True) -> None:
        data = (json.dumps(record, ensure_ascii=True) + "\n").encode("ascii")
        with self._lock:
            if self.broken:
                raise OutputError(self.broken)
            size = os.fstat(self._fd).st_size
            try:
                _write_all(self._fd, data)
                if sync:
                    os.fsync(self._fd)  # on disk: survives kill -9, an OOM kill or a power cut
            except OSError as e:
                try:
                    os.ftruncate(self._fd, size)  # whole or not at all
                except OSError:
                    pass
                self.broken = f"{self.path}: the journal cannot be written ({e.strerror or e})"
                raise OutputError(self.broken) from None

    def start(self, *, file: str, rows: int, resume: bool) -> None:
        ident, url, user = self.owner
        self._write({"type": "start", "journal": FORMAT, "input": self.digest,
                     "identity": None if ident is None else list(ident), "base_url": url, "user": user,
                     "file": file, "rows": rows, "resume": resume, "pid": os.getpid(), "at": _now()})

    def sending(self, o: RowOutcome, *, durable: bool) -> None:
        """Before a row's first request: after kill -9 this row's outcome is known to be unknown.
        Written to the kernel at once (that survives the process); fsynced too when `durable` (a row
        sent with checkDuplicate FALSE, which a resend after a power cut would add twice)."""
        self._write({"type": "send", "input": self.digest, "row": o.row, "campaign": o.campaign,
                     "phone": o.phone}, sync=durable)

    def row(self, o: RowOutcome) -> None:
        self._write({"type": "row", "input": self.digest, "row": o.row, "campaign": o.campaign,
                     "phone": o.phone, "status": o.status.value, "unknown": o.maybe_stored, "at": _now()})

    def end(self, *, complete: bool, unsettled: int = 0) -> None:
        self._write({"type": "end", "complete": complete, "unsettled": unsettled, "at": _now()})

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RunLock:
    """An exclusive lock that the kernel drops with its process: no stale lock after a crash."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{self.path}: cannot create the lock file ({e.strerror})") from None
        fd = open_private(self.path, "the lock file", append=False)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                with open(self.path, encoding="utf-8", errors="replace") as f:
                    holder = f.read(200).strip() or "another process"
            except OSError:
                holder = "another process"
            os.close(fd)
            raise RunLocked(f"{self.what} is being uploaded by {holder} right now; wait for it to finish "
                            f"(lock: {self.path})") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"process {os.getpid()}".encode())
        except OSError:
            pass  # the lock holds without the note
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file may stay, harmless
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def input_lock(cache_dir: Path, identity: tuple[int, int], name: str) -> RunLock:
    """The lock for one input file, by its device and inode: a hard link, a symlink or another
    mount of the same file takes the same lock, whatever journal a run names."""
    dev, ino = identity
    return RunLock(cache_dir / "locks" / f"{dev:x}-{ino:x}.lock", name)


def _pointer(cache_dir: Path, ident: tuple[int, int]) -> Path:
    return cache_dir / "journals" / f"{ident[0]:x}-{ident[1]:x}"


def journal_of_file(cache_dir: Path, ident: tuple[int, int], default: Path) -> tuple[Path, str | None]:
    """The journal for an input file, keyed on the file (device and inode), not its name: when the
    default journal beside this name does not exist but an unfinished run of the same file (a hard
    link, a symlink, another mount) kept its journal elsewhere, that one; else the default."""
    if default.exists():
        return default, None
    pointer = _pointer(cache_dir, ident)
    try:
        if regular_or_absent(pointer, "the journal index") is None:
            return default, None
        other = Path(pointer.read_text(encoding="utf-8").strip())
        if not other.is_absolute() or other == default.absolute() or not other.is_file():
            return default, None
        state = read_journal(other)
    except (OSError, ValueError, LeadpushError):
        return default, None
    if state.owner is None or state.owner[0] != ident or state.finished:
        return default, None
    return other, f"{default.name} is the same file as the one {other} was kept for; using that journal"


def remember_journal(cache_dir: Path, ident: tuple[int, int], path: Path) -> None:
    """Note which journal this file's run uses (best effort: the run does not depend on it)."""
    pointer = _pointer(cache_dir, ident)
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_name(pointer.name + f".{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(str(path.absolute()))
        os.replace(tmp, pointer)
    except OSError:
        pass


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
    resend_unknown: bool = False  # --resend-unknown (implies --resume)
    # The inbox: the journal follows the file's name, not its inode (a sender re-delivering the file
    # replaces it); the run is still owned by one base URL and user.
    by_name: bool = False


def keeps_journal(choice: JournalChoice, *, sandbox: bool) -> bool:
    """The journal rule: a journal (beside the input, or where --journal says) unless --no-journal,
    and none for a --sandbox run unless --journal names one (a demo leaves no files behind)."""
    if choice.resend_unknown:
        choice.resume = True
    if choice.resume and choice.restart:
        raise ConfigError("--resume and --restart exclude each other")
    keep = choice.keep and (choice.path is not None or not sandbox)
    if not keep and choice.resume:
        raise ConfigError("--resume needs the journal (leave out --no-journal)")
    return keep


UNKNOWN_NOT_RESENT = "outcome unknown: not resent; check CloudAgent, then resend with --resend-unknown"


@dataclass
class Resume:
    """What an earlier run finished, and how to match this run's rows against it."""

    state: JournalState
    digest: str
    resend_unknown: bool = False

    @property
    def same_input(self) -> bool:
        return self.digest in self.state.digests

    def done(self, outcome: RowOutcome) -> bool:
        if self.same_input:
            return (self.digest, outcome.row) in self.state.done_rows
        # The input changed: row numbers mean nothing now, campaign and phone still do.
        return (outcome.campaign, outcome.phone) in self.state.done_keys

    def unknown(self, outcome: RowOutcome) -> bool:
        """An earlier attempt may have stored this row (no verdict came back, or it was in flight
        when that run stopped)."""
        if self.same_input:
            key = (self.digest, outcome.row)
            return key in self.state.unknown_rows or key in self.state.in_flight
        pair = (outcome.campaign, outcome.phone)
        return pair in self.state.unknown_keys or pair in self.state.in_flight_keys

    def verdict(self, outcome: RowOutcome, body: dict[str, str]) -> tuple[Status, str, str] | None:
        """What becomes of a row this run would send (status, message, cause): skipped (done
        before), left alone (outcome unknown and a resend could add it twice), or None: send it."""
        if self.done(outcome):
            return Status.SKIPPED, "uploaded in an earlier run", "row.done_earlier"
        if not self.resend_unknown and body.get("checkDuplicate", "TRUE") != "TRUE" and self.unknown(outcome):
            return Status.FAILED, UNKNOWN_NOT_RESENT, "send.unknown"
        return None


def open_journal(stack: ExitStack, path: Path, digest: str, owner: Owner, choice: JournalChoice,
                 file: str) -> tuple[Journal, Resume | None, list[str]]:
    """Lock and open the journal for this run (closed and unlocked by `stack`):
    (journal, what to resume from, notes for the user)."""
    stack.enter_context(journal_lock(path))
    journal, state, notes = prepare_journal(path, digest, owner, resume=choice.resume, restart=choice.restart,
                                            file=file)
    stack.callback(journal.close)
    return journal, None if state is None else Resume(state, digest, choice.resend_unknown), notes


def _whose(owner: Owner) -> str:
    return f"user {owner[2]} at {owner[1]}"


def prepare_journal(path: Path, digest: str, owner: Owner, *, resume: bool, restart: bool,
                    file: str) -> tuple[Journal, JournalState | None, list[str]]:
    """Open the journal for this run: (journal, earlier state to resume from, notes for the user).

    A journal belongs to one input file (device and inode), base URL and user. --resume uses only
    an unfinished run of that same file and account; anything else starts afresh, and says so.
    An earlier run that did not finish is never silently ignored nor silently used: without
    --resume or --restart, this stops with what to do.
    """
    state = read_journal(path)
    notes = []
    if state.unusable_lines:
        notes.append(f"{path}: skipped {state.unusable_lines} journal line(s) leadpush could not use")
    if resume:
        if state.empty:
            notes.append(f"{path}: no earlier run to resume; sending every row")
        elif state.owner is not None and state.owner != owner:
            what = "another file" if state.owner[0] != owner[0] else _whose(state.owner)
            notes.append(f"{path} holds a run of {what}, not of {file} for {_whose(owner)}; "
                         f"starting afresh (every row is sent)")
        elif state.finished:
            notes.append(f"the last run of {file} ({state.started_at}) finished; starting afresh "
                         f"(every row is sent)")
        else:
            if digest not in state.digests:
                notes.append(f"{file} changed since {path} was written; resuming by campaign and phone "
                             f"(rows already added there are skipped), not by row number")
            in_flight = len(state.in_flight)
            if in_flight:
                notes.append(f"{in_flight} row(s) were in flight when the earlier run stopped (their outcome "
                             f"is unknown): sent again only where checkDuplicate is TRUE")
            return Journal(path, digest, owner, fresh=False), state, notes
        return Journal(path, digest, owner, fresh=True), None, notes
    if not state.empty and not state.ended and not restart:
        if state.owner is not None and state.owner != owner:
            whose = file if state.owner[0] == owner[0] else "another file"
            raise ConfigError(f"{path} holds an unfinished run of {whose} for {_whose(state.owner)} (stopped at row "
                              f"{state.last_row}); use --restart to replace it, or --journal to keep this run's "
                              f"journal elsewhere")
        which = "this file" if digest in state.digests else "an earlier version of this file"
        raise ConfigError(f"an earlier run of {which} stopped at row {state.last_row} ({state.finished_rows} rows "
                          f"finished; journal {path}); use --resume to send the rest, or --restart to start over")
    return Journal(path, digest, owner, fresh=True), None, notes
