"""The upload job: check the whole file, then send each valid row with N workers under one pacer."""

from __future__ import annotations

import datetime as dt
import random
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from .causes import Problem
from .checks import Checker
from .cloudagent import Connection, Sender, TokenKeeper, TokenStore, TokenUnavailable
from .jobs import InputOptions, log_end, open_input, reading_notes, recording
from .journal import Journal, JournalChoice, Resume, default_journal_path, input_lock, keeps_journal, open_journal
from .outcomes import AccountRefusal, RowOutcome, Status, exit_code_for
from .pacing import Pacer, Rate
from .readers import LeadFile
from .records import RunSummary


@dataclass
class UploadSettings:
    conn: Connection
    rate: Rate | None  # None: no pacing (a rate of 0 where allowed)
    cache_dir: Path
    workers: int = 4
    retries: int = 3
    timeout: float = 30.0


class Interrupt(threading.Event):
    """Set by Ctrl-C or SIGTERM; remembers which, for the exit code."""

    terminated = False


class _Stop:
    """Why sending stopped, for the whole run or one campaign; shared by the workers."""

    def __init__(self, interrupt: threading.Event) -> None:
        self.interrupt = interrupt  # set from outside (Ctrl-C, SIGTERM)
        self.reason: str | None = None
        self.kind: str | None = None  # account | token
        self.campaigns: dict[str, str] = {}
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        return self.reason is not None or self.interrupt.is_set()

    def run(self, kind: str, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason, self.kind = reason, kind

    def campaign(self, name: str, reason: str) -> None:
        with self._lock:
            self.campaigns.setdefault(name, reason)

    def why_not(self, campaign: str) -> Problem | None:
        """Why a row of this campaign may not be sent now, if it may not."""
        if self.reason is not None:
            return Problem("not_sent.stopped", f"not sent: the run stopped ({self.reason})")
        if self.interrupt.is_set():
            return Problem("not_sent.interrupted", "not sent: interrupted")
        if campaign in self.campaigns:
            return Problem("not_sent.campaign",
                           f"not sent: campaign {campaign} was refused ({self.campaigns[campaign]})")
        return None


def upload(opts: InputOptions, settings: UploadSettings, lead_file: LeadFile, *, today: dt.date,
           session: requests.Session, clock: Callable[[], float], sleep: Callable[[float], None],
           progress: Any, interrupt: threading.Event | None = None, rng: random.Random | None = None,
           wall_clock: Callable[[], float] | None = None, journal: Journal | None = None,
           resume: Resume | None = None) -> RunSummary:
    """Send every valid row; `interrupt` (set by Ctrl-C) stops dispatching and lets in-flight rows finish."""
    # Pass 1: the whole file is checked before anything is sent, so a file that breaks at row
    # 9,000 stops before the first lead goes out, and the progress bar knows its total.
    first_pass = Checker(opts.checks, today=today, build_bodies=False)
    total = sum(1 for _ in first_pass.check_file(lead_file))
    progress.set_total(total)

    pacer = Pacer(settings.rate, clock=clock, sleep=sleep)
    store = TokenStore(settings.cache_dir, settings.conn.base_url, settings.conn.username)
    # Token expiry (a JWT's exp) is wall-clock time; pacing wants a clock that never jumps.
    tokens = TokenKeeper(session, settings.conn, store, pacer, clock=wall_clock or clock,
                         timeout=settings.timeout)
    sender = Sender(session, settings.conn, tokens, pacer, clock=clock, sleep=sleep, timeout=settings.timeout,
                    retries=settings.retries, rng=rng)
    stop = _Stop(interrupt or threading.Event())
    if journal:
        journal.start(file=lead_file.name, rows=total, resume=resume is not None)

    def send(outcome: RowOutcome, body: dict[str, str]) -> RowOutcome:
        reason = stop.why_not(outcome.campaign)
        if reason:
            return _abort(outcome, reason)
        try:
            sent = sender.send(body, stop.is_set)
        except AccountRefusal as e:
            stop.run("account", str(e))
            return _abort(outcome, Problem("not_sent.stopped", f"not sent: {e}"))
        except TokenUnavailable as e:
            stop.run("token", str(e))
            return _abort(outcome, Problem("not_sent.stopped", f"not sent: {e}"))
        if sent.stop == "account":
            stop.run("account", sent.message)
        elif sent.stop == "campaign":
            stop.campaign(outcome.campaign, sent.message)
        # A row the sender gave up on because of a stop says which stop.
        why = stop.why_not(outcome.campaign) if sent.status is Status.ABORTED else None
        outcome.status, outcome.message = sent.status, why or sent.message
        outcome.cause = why.cause if why else sent.cause
        outcome.attempts, outcome.http_status = sent.attempts, sent.http_status
        if journal and sent.attempts:
            journal.row(outcome)  # on disk the moment it is known, not when its turn to be reported comes
        return outcome

    started = clock()
    with recording(opts, lead_file, "upload") as (recorder, summary):
        pending: deque[RowOutcome | Future[RowOutcome]] = deque()

        def flush(wait: bool = False) -> None:
            """Record finished rows in row order."""
            while pending and (wait or not isinstance(pending[0], Future) or pending[0].done()):
                item = pending.popleft()
                recorder.record(item.result() if isinstance(item, Future) else item)
                progress.advance()

        # Rows go out in file order as far as the workers allow; at most 2 per worker wait.
        slots = threading.BoundedSemaphore(settings.workers * 2)
        with ThreadPoolExecutor(settings.workers, thread_name_prefix="leadpush-send") as pool:
            for outcome, body in Checker(opts.checks, today=today).check_file(lead_file):
                if body is not None and resume and resume.done(outcome):
                    outcome.status, outcome.message = Status.SKIPPED, "uploaded in an earlier run"
                    outcome.cause = "row.done_earlier"
                    body = None
                reason = stop.why_not(outcome.campaign) if body is not None else None
                if body is None or reason:
                    pending.append(_abort(outcome, reason) if reason else outcome)
                else:
                    while not slots.acquire(timeout=0.1):
                        flush()
                    future = pool.submit(send, outcome, body)
                    future.add_done_callback(lambda _f: slots.release())
                    pending.append(future)
                flush()
            flush(wait=True)  # in-flight requests finish; workers waiting for a slot see a stop at once
        summary.column_map = first_pass.column_map
        summary.elapsed = clock() - started
        summary.requests = sender.requests + tokens.requests
        summary.token_generations = tokens.generations
        summary.stop_reason = stop.reason
    if journal:
        journal.end(complete=stop.reason is None and not stop.interrupt.is_set())
    summary.exit_code = exit_code_for(recorder.counts, account_refused=stop.kind == "account",
                                      interrupted=stop.interrupt.is_set(),
                                      terminated=getattr(stop.interrupt, "terminated", False))
    log_end(summary)
    return summary


def _abort(outcome: RowOutcome, reason: Problem) -> RowOutcome:
    outcome.status, outcome.message, outcome.cause = Status.ABORTED, reason, reason.cause
    return outcome


# ---------------------------------------------------------------------------- getting a run ready

@dataclass
class PreparedRun:
    """An upload ready to go: the open lead file, its journal and what to resume from."""

    lead_file: LeadFile
    journal: Journal | None = None
    resume: Resume | None = None
    notes: list[str] = field(default_factory=list)  # for the user, before anything is sent


def prepare_run(stack: ExitStack, opts: InputOptions, choice: JournalChoice, *, cache_dir: Path,
                sandbox: bool, stdin: IO[bytes] | None) -> PreparedRun:
    """Open the input, take the one-run-at-a-time lock, and open the journal by the journal rule.

    Everything opened here is closed (and every lock dropped) by `stack`.
    """
    keep_journal = keeps_journal(choice, sandbox=sandbox)  # usage errors come before reading
    lead_file = stack.enter_context(open_input(opts, stdin=stdin))
    run = PreparedRun(lead_file, notes=reading_notes(lead_file))
    if opts.file != "-":
        stack.enter_context(input_lock(cache_dir, opts.file, lead_file.name))
    if keep_journal:
        path = choice.path or default_journal_path(lead_file.name)
        run.journal, run.resume, note = open_journal(stack, path, lead_file.digest(), choice, lead_file.name)
        if note:
            run.notes.append(note)
    return run


def demo_sandbox(stack: ExitStack) -> tuple[Connection, Path, str]:
    """A built-in sandbox for this run (stopped by `stack`): its demo connection, a throwaway token
    cache, and the line that tells the user where the leads go."""
    from .sandbox import DEMO_KEY, DEMO_USER, Sandbox  # noqa: PLC0415 (only --sandbox needs the server)

    server = stack.enter_context(Sandbox())
    cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadpush-")))
    return (Connection(server.base_url, DEMO_USER, DEMO_KEY), cache_dir,
            f"Uploading to the built-in sandbox at {server.base_url} (user {DEMO_USER}).")
