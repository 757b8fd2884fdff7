"""The run ledger: every upload and undo run, and every lead each added, found or deleted, in SQLite."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .outcomes import ConfigError, RowOutcome, Status

LEDGER_NAME = "ledger.sqlite3"
KEPT = frozenset({Status.ADDED, Status.EXISTS, Status.DELETED})  # the rows a run leaves in the ledger
# `exists` after an attempt of the run itself whose answer was lost (or that a killed run sent):
# perhaps the run's own lead, perhaps there before. Kept apart from `exists` in the ledger, so that
# undo neither deletes it silently nor says it was there before the run.
EXISTS_AFTER_ATTEMPT = "exists_after_attempt"
_MAX_ID = 2**63 - 1  # SQLite's largest integer
BUSY_SECONDS = 30.0  # another run's transaction takes milliseconds; longer than this is a stuck lock

# Each step takes the schema from the version before it to its own; a new version appends one.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            command TEXT NOT NULL,              -- upload | undo
            started_at REAL NOT NULL,           -- Unix time
            ended_at REAL,                      -- NULL: running, or killed
            profile TEXT,
            base_url TEXT NOT NULL,
            username TEXT NOT NULL,             -- never the API key
            input_name TEXT,
            input_sha256 TEXT,
            undo_of INTEGER REFERENCES runs(id),
            counts TEXT,                        -- JSON {status: rows}
            exit_code INTEGER,
            pid INTEGER
        );
        CREATE TABLE leads (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            row INTEGER,
            campaign TEXT NOT NULL,
            phone TEXT NOT NULL,                -- the cleaned number, as sent
            status TEXT NOT NULL,               -- added | exists | exists_after_attempt | deleted
            at REAL NOT NULL
        );
        CREATE INDEX leads_by_phone ON leads(phone, at);
        CREATE INDEX leads_by_run ON leads(run_id);
    """),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SkipScope(StrEnum):
    """Where --skip-loaded-within looks: the row's campaign, or every campaign of the account."""

    CAMPAIGN = "campaign"
    ACCOUNT = "account"


class LedgerError(ConfigError):
    """The ledger cannot be opened or written (corrupt, locked, unwritable): exit 2, nothing sent."""


def default_data_dir() -> Path:
    env = os.environ.get("LEADPUSH_DATA_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir  # noqa: PLC0415

    return Path(user_data_dir("leadpush"))


def parse_window(text: str, option: str = "--skip-loaded-within") -> dt.timedelta:
    """`30d`, `12h`, `2w` or a plain number of days."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhw]?)\s*", str(text).lower())
    if not m or float(m[1]) <= 0:
        raise ConfigError(f"{option} {text!r}: write a duration such as 30d, 12h or 2w")
    try:
        window = dt.timedelta(**{{"h": "hours", "w": "weeks"}.get(m[2], "days"): float(m[1])})
    except OverflowError:
        window = dt.timedelta.max
    if window > dt.timedelta(days=100 * 366):
        raise ConfigError(f"{option} {text!r}: longer than a hundred years; write a duration such as 30d")
    return window


def local_day(at: float) -> str:
    return dt.datetime.fromtimestamp(at).date().isoformat()


def _is_busy(e: sqlite3.Error) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def local_time(at: float | None) -> str:
    return "" if at is None else dt.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")


class Ledger:
    """One connection to the ledger, shared by a run's workers; every write is its own transaction."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time, busy: float = BUSY_SECONDS) -> None:
        self.path = path
        self.clock = clock
        self.busy = busy
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=busy, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as e:
            raise LedgerError(f"{path}: the run ledger cannot be opened ({_reason(e)})") from None
        deadline = time.monotonic() + busy
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: each row's commit is on disk before the next row is told done, like the journal.
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._migrate()
                break
            except sqlite3.OperationalError as e:
                # Two runs opening a new ledger at once: SQLite answers "locked" at once, without
                # waiting, to the one that would deadlock switching it to WAL. The other finishes
                # in milliseconds; try again (a lock held longer than `busy` is an error).
                if _is_busy(e) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self._db.close()
                raise self._error(e) from None
            except sqlite3.Error as e:
                self._db.close()
                raise self._error(e) from None

    def _error(self, e: sqlite3.Error) -> LedgerError:
        text = str(e).lower()
        if _is_busy(e):
            return LedgerError(f"{self.path}: the run ledger is locked by another process (waited "
                               f"{self.busy:g} s); try again when it finishes")
        if isinstance(e, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
            return LedgerError(f"{self.path}: the run ledger is damaged ({e}); move it aside (leadpush starts a "
                               f"new one) or point LEADPUSH_DATA_DIR elsewhere")
        return LedgerError(f"{self.path}: the run ledger cannot be used ({_reason(e)})")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                raise self._error(e) from None

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cur = self._db.execute(sql, args)
                cur.row_factory = sqlite3.Row
                return cur.fetchall()
            except sqlite3.Error as e:
                raise self._error(e) from None
            except OverflowError:  # an integer argument beyond SQLite's 64 bits: nothing has such a value
                return []

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise LedgerError(f"{self.path}: the run ledger was written by a newer leadpush (schema {version}, "
                              f"this one knows {SCHEMA_VERSION}); upgrade leadpush")
        with self._write() as db:
            # Read again inside the write lock: another process may have migrated meanwhile.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for target, script in MIGRATIONS:
                if target > version:
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {int(target)}")

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ writing

    def start_run(self, command: str, *, base_url: str, username: str, profile: str | None = None,
                  input_name: str | None = None, input_sha256: str | None = None,
                  undo_of: int | None = None) -> int:
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO runs (command, started_at, profile, base_url, username, input_name, input_sha256, "
                "undo_of, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (command, self.clock(), profile, safe_url(base_url), username, input_name, input_sha256, undo_of,
                 os.getpid()))
            return int(cur.lastrowid or 0)

    def check_writable(self) -> None:
        """A write transaction that writes nothing: a locked or read-only ledger is found here,
        before a run writes its journal or sends anything."""
        with self._write():
            pass

    def row(self, run_id: int, o: RowOutcome, *, after_attempt: bool = False) -> None:
        if o.status not in KEPT:
            return
        status = EXISTS_AFTER_ATTEMPT if after_attempt and o.status is Status.EXISTS else o.status.value
        with self._write() as db:
            db.execute("INSERT INTO leads (run_id, row, campaign, phone, status, at) VALUES (?, ?, ?, ?, ?, ?)",
                       (run_id, o.row, o.campaign, o.phone, status, self.clock()))

    def end_run(self, run_id: int, counts: dict[Status, int], exit_code: int) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET ended_at = ?, counts = ?, exit_code = ? WHERE id = ?",
                       (self.clock(), json.dumps({s.value: n for s, n in counts.items() if n}), int(exit_code),
                        run_id))

    # ------------------------------------------------------------------ reading

    def last_loaded(self, *, base_url: str, username: str, phone: str | tuple[str, ...], campaign: str | None,
                    since: float, exclude_run: int | None = None) -> tuple[float, int, str] | None:
        """(when, run) this account last added `phone` (any of its spellings, if a tuple) (to
        `campaign`, or to any with None) since `since`, leaving out leads deleted since."""
        phones = (phone,) if isinstance(phone, str) else phone
        sql = ("SELECT l.at, l.run_id, l.campaign FROM leads l JOIN runs r ON r.id = l.run_id "
               f"WHERE l.phone IN ({', '.join('?' * len(phones))}) AND l.status IN ('added', "
               f"'{EXISTS_AFTER_ATTEMPT}') AND l.at >= ? AND r.base_url = ? AND r.username = ? "
               "AND l.run_id IS NOT ? ")
        args: list[Any] = [*phones, since, safe_url(base_url), username, exclude_run]
        if campaign is not None:
            sql += "AND l.campaign = ? "
            args.append(campaign)
        # Deleted since by any undo of this account (of a run id or of a journal file).
        sql += ("AND NOT EXISTS (SELECT 1 FROM leads d JOIN runs u ON u.id = d.run_id WHERE d.status = 'deleted' "
                "AND u.base_url = r.base_url AND u.username = r.username AND d.campaign = l.campaign "
                "AND d.phone = l.phone AND d.at >= l.at) "
                "ORDER BY l.at DESC LIMIT 1")
        rows = self._read(sql, tuple(args))
        return (float(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return [_run_dict(r) for r in self._read("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))]

    def run(self, run_id: int) -> dict[str, Any] | None:
        if not 0 < run_id <= _MAX_ID:
            return None
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run_dict(rows[0]) if rows else None

    def leads(self, run_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read(
            "SELECT row, campaign, phone, status, at FROM leads WHERE run_id = ? "
            "ORDER BY row IS NULL, row, at, rowid", (run_id,))]  # in file order, not the order workers finished

    def deleted(self, undo_of: int) -> set[tuple[str, str]]:
        """(campaign, phone) of the leads of run `undo_of` that undo runs have deleted since it added them."""
        run = self.run(undo_of)
        if run is None:
            return set()
        return {(lead["campaign"], lead["phone"]) for lead in self.leads(undo_of)
                if lead["status"] == Status.ADDED.value
                and self.fate(run["base_url"], run["username"], lead["campaign"], lead["phone"], lead["at"],
                              {undo_of})[0] == "deleted"}

    def fate(self, base_url: str, username: str, campaign: str, phone: str, since: float,
             own_runs: set[int]) -> tuple[str | None, int | None]:
        """What became of a lead added at `since` by one of `own_runs`, as far as the ledger knows:
        ("deleted", undo run) if any undo of this account deleted it since (by run id or journal
        file); ("added again", run) if another upload added it again since (deleting would take
        that run's lead); (None, None) if it is still the run's own."""
        account = (safe_url(base_url), username)
        rows = self._read("SELECT d.run_id FROM leads d JOIN runs u ON u.id = d.run_id WHERE d.status = 'deleted' "
                          "AND d.campaign = ? AND d.phone = ? AND d.at >= ? AND u.base_url = ? AND u.username = ? "
                          "ORDER BY d.at LIMIT 1", (campaign, phone, since, *account))
        if rows:
            return "deleted", int(rows[0][0])
        others = sorted(own_runs) or [0]
        rows = self._read("SELECT l.run_id FROM leads l JOIN runs r ON r.id = l.run_id WHERE l.status IN "
                          f"('added', '{EXISTS_AFTER_ATTEMPT}') AND l.campaign = ? AND l.phone = ? AND l.at >= ? "
                          f"AND r.base_url = ? AND r.username = ? AND l.run_id NOT IN ({', '.join('?' * len(others))})"
                          " ORDER BY l.at LIMIT 1", (campaign, phone, since, *account, *others))
        if rows:
            return "added again", int(rows[0][0])
        return None, None

    def runs_of_input(self, digest: str, base_url: str, username: str) -> list[int]:
        """The upload runs that wrote a journal (their input's digest is the journal's)."""
        return [int(r[0]) for r in self._read(
            "SELECT id FROM runs WHERE command = 'upload' AND input_sha256 = ? AND base_url = ? AND username = ?",
            (digest, safe_url(base_url), username))]


def run_object(run: dict[str, Any], leads: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A run as `history --json` prints it (times as local ISO text as well as Unix time)."""
    obj = dict(run, started=local_time(run["started_at"]), ended=local_time(run["ended_at"]) or None,
               finished=run["ended_at"] is not None)
    if leads is not None:
        obj["leads"] = [dict(lead, time=local_time(lead["at"])) for lead in leads]
    return obj


def write_leads(path: Path, leads: list[dict[str, Any]]) -> None:
    """`history RUN --results PATH`: the run's rows, as CSV or (.jsonl) JSON Lines."""
    import csv  # noqa: PLC0415

    from .records import formula_safe  # noqa: PLC0415

    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
                for lead in leads:
                    f.write(json.dumps({"row": lead["row"], "campaignName": lead["campaign"],
                                        "phoneNumber": lead["phone"], "status": lead["status"],
                                        "time": local_time(lead["at"])}, ensure_ascii=False) + "\n")
                return
            w = csv.writer(f)
            w.writerow(("row", "campaignName", "phoneNumber", "status", "time"))
            for lead in leads:
                w.writerow((lead["row"], formula_safe(lead["campaign"]), lead["phone"], lead["status"],
                            local_time(lead["at"])))
    except OSError as e:
        raise ConfigError(f"{path}: cannot be written ({e.strerror})") from None


def _run_dict(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    d["counts"] = json.loads(d["counts"]) if d.get("counts") else {}
    return d


def safe_url(url: str) -> str:
    """A base URL as the ledger keeps it: never a user name, password, query or fragment (a key
    pasted there must not be stored; settings.check_base_url refuses such URLs anyway)."""
    from urllib.parse import urlsplit, urlunsplit  # noqa: PLC0415

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e)


def open_ledger(data_dir: Path | None = None) -> Ledger:
    return Ledger((data_dir or default_data_dir()) / LEDGER_NAME, busy=busy_seconds())


def busy_seconds() -> float:
    """How long to wait for another process's ledger transaction: LEADPUSH_LEDGER_WAIT seconds, or 30."""
    text = os.environ.get("LEADPUSH_LEDGER_WAIT", "").strip()
    if not text:
        return BUSY_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"LEADPUSH_LEDGER_WAIT={text!r}: write a number of seconds from 0 to 3600")
    return seconds


@dataclass
class RunLog:
    """What one run writes to the ledger: its start, each kept row as it finishes, its end."""

    ledger: Ledger
    command: str
    base_url: str
    username: str
    profile: str | None = None
    input_name: str | None = None
    input_sha256: Callable[[], str] | str | None = None
    undo_of: int | None = None
    run_id: int | None = field(default=None, init=False)
    failed: str | None = field(default=None, init=False)  # why a write failed mid-run; nothing more is written

    def start(self) -> int:
        digest = self.input_sha256() if callable(self.input_sha256) else self.input_sha256
        self.run_id = self.ledger.start_run(self.command, base_url=self.base_url, username=self.username,
                                            profile=self.profile, input_name=self.input_name,
                                            input_sha256=digest, undo_of=self.undo_of)
        return self.run_id

    def row(self, o: RowOutcome, *, after_attempt: bool = False) -> bool:
        """Record a finished row; False (and `failed` set, once) if the ledger cannot be written.
        A failure mid-run never raises: the row is already in the journal and the results, and the
        run stops dispatching and ends as it would when stopped."""
        if self.run_id is None or self.failed is not None:
            return self.failed is None
        try:
            self.ledger.row(self.run_id, o, after_attempt=after_attempt)
        except LedgerError as e:
            self.failed = str(e)
            return False
        return True

    def end(self, counts: dict[Status, int], exit_code: int) -> None:
        if self.run_id is not None and self.failed is None:
            try:
                self.ledger.end_run(self.run_id, counts, exit_code)
            except LedgerError as e:
                self.failed = str(e)

    def failure_note(self, journal: Path | None) -> str | None:
        """The one line a run whose ledger write failed ends with."""
        if self.failed is None:
            return None
        where = f"they are in the journal {journal} (undo them with: leadpush undo {journal})" if journal else \
            "they are in the results"
        return (f"the run ledger could not be written ({self.failed}); sending stopped. Rows finished from then on "
                f"are missing from the ledger: {where}")

    def loaded_lately(self, o: RowOutcome, within: dt.timedelta, scope: str, region: str | None = None) -> str | None:
        """Why this row is skipped under --skip-loaded-within, if it is. With a region, every
        spelling of the parsed number counts (09876543210, +919876543210, 9876543210 ...)."""
        hit = self.ledger.last_loaded(base_url=self.base_url, username=self.username,
                                      phone=spellings(o.phone, region) if region else o.phone,
                                      campaign=o.campaign if scope == "campaign" else None,
                                      since=self.ledger.clock() - within.total_seconds(), exclude_run=self.run_id)
        if hit is None:
            return None
        at, run, campaign = hit
        return f"loaded on {local_day(at)} by run {run}" + (f" (campaign {campaign})" if scope == "account" else "")


def spellings(phone: str, region: str) -> tuple[str, ...]:
    """The ways leadpush may have sent `phone` read in `region`: as cleaned, E.164 with and
    without '+', national with and without its trunk prefix (every --phone-format's output)."""
    from .checks import _phonenumbers  # noqa: PLC0415

    pn = _phonenumbers()
    try:
        number = pn.parse(phone, region.upper())
    except pn.NumberParseException:
        return (phone,)
    e164 = pn.format_number(number, pn.PhoneNumberFormat.E164)
    national = re.sub(r"\D", "", pn.format_number(number, pn.PhoneNumberFormat.NATIONAL))
    return tuple(dict.fromkeys((phone, e164, e164[1:], national, pn.national_significant_number(number))))
