"""The upload job: check the whole file, then send each valid row with N workers under one pacer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import queue
import random
import signal
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import requests

from .causes import UNKNOWN_CAUSES, Problem, causes_of
from .checks import Checker
from .cloudagent import Connection, NoToken, Sender, TokenKeeper, TokenStore, VerdictKind
from .files import identity
from .jobs import (
    InputOptions,
    check_paths,
    log_end,
    note_suppression,
    open_input,
    reading_notes,
    recording,
)
from .journal import (
    Journal,
    JournalChoice,
    Resume,
    default_journal_path,
    input_lock,
    journal_of_file,
    keeps_journal,
    open_journal,
    remember_journal,
)
from .ledger import RunLog, SkipScope, open_ledger
from .outcomes import AccountRefusal, ConfigError, ExitCode, InputError, OutputError, RowOutcome, Status, exit_code_for
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
    skip_loaded_within: dt.timedelta | None = None  # skip rows the ledger saw added this lately
    skip_scope: SkipScope = SkipScope.CAMPAIGN
    resend_unknown: bool = False  # send rows a failures file marks "outcome unknown" even with checkDuplicate FALSE
    limit: int | None = None  # --limit: send only the first N valid rows (a canary run)


# What a failures file (CSV, JSON Lines or workbook) says of a row whose lead CloudAgent may hold.
_UNKNOWN_WORDS = ("outcome unknown", "may or may not", "may have stored")


def earlier_outcome_unknown(source: list[Any] | dict[str, Any] | None, keys: list[str] | None) -> str:
    """The leadpush_error of a row that an earlier run's failures file marks as failed with an
    unknown outcome (its lead may be in CloudAgent), or '' for any other row."""
    if source is None:
        return ""
    if isinstance(source, dict):
        cells = {str(k).strip().lower(): v for k, v in source.items()}
    else:
        cells = {str(k).strip().lower(): source[i] for i, k in enumerate(keys or []) if i < len(source)}
    if str(cells.get("leadpush_status") or "").strip().lower() != "failed":
        return ""
    error = " ".join(str(cells.get("leadpush_error") or "").split())
    cause = str(cells.get("leadpush_cause") or "")
    if any(c in UNKNOWN_CAUSES for c in causes_of(cause)) or any(w in error.lower() for w in _UNKNOWN_WORDS):
        return f"leadpush_error: {error[:160]}" if error else "leadpush_status: failed"
    return ""


class Interrupt(threading.Event):
    """Set by Ctrl-C or SIGTERM; remembers which, for the exit code, and whether a second one came."""

    terminated = False
    quit_now = False  # a second Ctrl-C or SIGTERM: stop waiting for the requests in flight
    polled = False  # the send loop watches `quit_now`; elsewhere a second signal raises KeyboardInterrupt


def install_interrupt(event: Interrupt, say: Callable[[str], None]) -> Callable[[], None]:
    """First Ctrl-C or SIGTERM: stop dispatching and finish in-flight rows. A second: quit now.

    Returns the function that puts the previous handlers back.
    """
    def handler(signum: int, frame: Any) -> None:
        if event.is_set():
            event.quit_now = True
            say("Quitting now: rows still in flight are recorded as outcome unknown.")
            if not event.polled:
                raise KeyboardInterrupt
            return
        if signum == signal.SIGTERM:
            event.terminated = True
        event.set()
        say("Stopping: finishing the rows in flight (Ctrl-C again to quit at once)...")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)
    return restore


class _Workers:
    """Sending threads that never hold up the process's exit (a second Ctrl-C must quit at once)."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(count)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, lambda: fn(*args)))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, call = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as e:  # handed to whoever waits on the future
                future.set_exception(e)

    def shutdown(self, wait: bool = True) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for t in self._threads:
                t.join()


class StopKind(StrEnum):
    """What stopped a run before its last row."""

    ACCOUNT = "account"  # CloudAgent refused the account (exit 3)
    TOKEN = "token"  # no token could be had
    LEDGER = "ledger"  # the run ledger could not be written
    OUTPUT = "output"  # an output file could not be written
    INPUT = "input"  # the input changed during the upload
    ERROR = "error"  # a bug of leadpush's own


class _Stop:
    """Why sending stopped, for the whole run or one campaign; shared by the workers."""

    def __init__(self, interrupt: threading.Event) -> None:
        self.interrupt = interrupt  # set from outside (Ctrl-C, SIGTERM)
        self.reason: str | None = None
        self.kind: StopKind | None = None
        self.campaigns: dict[str, str] = {}
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        return self.reason is not None or self.interrupt.is_set()

    def run(self, kind: StopKind, reason: str) -> None:
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
           resume: Resume | None = None, ledger: RunLog | None = None) -> RunSummary:
    """Send every valid row; `interrupt` (set by Ctrl-C) stops dispatching and lets in-flight rows finish."""
    # Pass 1: the whole file is checked before anything is sent, so a file that breaks at row
    # 9,000 stops before the first lead goes out, and the progress bar knows its total.
    first_pass = Checker(opts.checks, today=today, build_bodies=False)
    total = sum(1 for _ in first_pass.check_file(lead_file))
    progress.set_total(total)

    pacer = Pacer(settings.rate, clock=clock, sleep=sleep)
    store = TokenStore(settings.cache_dir, settings.conn.base_url, settings.conn.username)
    stop = _Stop(interrupt or threading.Event())
    rng = rng or random.Random()
    # Token expiry (a JWT's exp) is wall-clock time; pacing wants a clock that never jumps.
    tokens = TokenKeeper(session, settings.conn, store, pacer, clock=wall_clock or clock, monotonic=clock,
                         timeout=settings.timeout, retries=settings.retries, sleep=sleep, stop=stop.is_set, rng=rng)
    sender = Sender(session, settings.conn, tokens, pacer, clock=clock, sleep=sleep, timeout=settings.timeout,
                    retries=settings.retries, rng=rng, on_wait=getattr(progress, "waiting", None))
    probably_ours = 0
    ours_lock = threading.Lock()
    if ledger:
        ledger.start()  # first: a locked ledger stops the run before its journal says it started
    if journal:
        journal.start(file=lead_file.name, rows=total, resume=resume is not None)

    sent_any = threading.Event()

    def send(outcome: RowOutcome, body: dict[str, str]) -> RowOutcome:
        nonlocal probably_ours
        reason = stop.why_not(outcome.campaign)
        if reason:
            return _abort(outcome, reason)
        if journal:
            try:
                # No request goes out that the journal does not know of; on disk before it goes,
                # where a resend after a power cut could add the lead twice.
                journal.sending(outcome, durable=body.get("checkDuplicate", "TRUE") != "TRUE")
            except OutputError as e:
                stop.run(StopKind.OUTPUT, str(e))
                return _abort(outcome, Problem("not_sent.stopped", f"not sent: {e}"))
        sent_any.set()
        try:
            sent = sender.send(body, stop.is_set)
        except NoToken as e:
            stop.run(StopKind.ACCOUNT if isinstance(e.refusal, AccountRefusal) else StopKind.TOKEN, str(e))
            _abort(outcome, Problem("not_sent.stopped", f"not sent: {e}"))
            if journal and not e.maybe_stored and not quitting:
                try:
                    # Its send line is on record, but its lead is certainly not in CloudAgent: without
                    # this verdict --resume would hold it back as outcome unknown (checkDuplicate FALSE).
                    journal.row(outcome)
                except OutputError as oe:
                    stop.run(StopKind.OUTPUT, str(oe))
            return outcome
        if sent.stop is VerdictKind.ACCOUNT:
            stop.run(StopKind.ACCOUNT, sent.message)
        elif sent.stop is VerdictKind.CAMPAIGN:
            stop.campaign(outcome.campaign, sent.message)
        # `exists` after an attempt of this run whose answer was lost, or, in a resumed run, for a
        # row the stopped run may have sent before it was killed: perhaps this run's own lead.
        after_attempt = sent.probably_ours or (resume is not None and sent.status is Status.EXISTS)
        if after_attempt:
            with ours_lock:  # workers count at once: `+=` on a shared int loses increments
                probably_ours += 1
        # A row the sender gave up on because of a stop says which stop.
        why = stop.why_not(outcome.campaign) if sent.status is Status.ABORTED else None
        outcome.status, outcome.message = sent.status, why or sent.message
        outcome.cause = why.cause if why else sent.cause
        outcome.attempts, outcome.http_status = sent.attempts, sent.http_status
        outcome.maybe_stored = sent.maybe_stored and sent.status is Status.FAILED
        # The ledger before the journal (it then holds at least what the journal does), but the
        # journal whatever befalls the ledger: a ledger that cannot be written stops dispatching.
        if ledger and not quitting and not ledger.row(outcome, after_attempt=after_attempt):
            stop.run(StopKind.LEDGER, ledger.failure_note(journal.path if journal else None) or "")
        if journal and not quitting:  # its send line is on record: so is its verdict (aborted too, for --resume)
            try:
                journal.row(outcome)  # on disk the moment it is known, not when its turn to be reported comes
            except OutputError as e:
                stop.run(StopKind.OUTPUT, str(e))  # the row itself is still recorded in results and failures
        return outcome

    def quit_now() -> bool:
        return bool(getattr(stop.interrupt, "quit_now", False))

    quitting = False
    dispatched, limited = 0, False
    started = clock()
    # From here a second Ctrl-C only sets `quit_now`: the loops below watch it, and the files
    # are still written whole.
    stop.interrupt.polled = True  # type: ignore[attr-defined]  # an Interrupt, or a plain Event in tests
    try:
        with recording(opts, lead_file, "upload") as (recorder, summary):
            pending: deque[RowOutcome | Future[RowOutcome]] = deque()
            in_flight: dict[int, RowOutcome] = {}

            def flush(wait: bool = False) -> None:
                """Record finished rows in row order; on a second Ctrl-C, stop waiting for any."""
                while pending:
                    item = pending[0]
                    if isinstance(item, Future) and not item.done():
                        if not wait or quit_now():
                            return
                        try:
                            item.result(timeout=0.1)
                        except Exception:  # recorded below, from the future
                            pass
                        continue
                    pending.popleft()
                    try:
                        recorder.record(item.result() if isinstance(item, Future) else item)
                    except OutputError as e:  # the row went to every file that still works
                        stop.run(StopKind.OUTPUT, str(e))
                    progress.advance()

            # Rows go out in file order as far as the workers allow; at most 2 per worker wait.
            slots = threading.BoundedSemaphore(settings.workers * 2)
            pool = _Workers(settings.workers, "leadpush-send")

            def _dispatch(outcome: RowOutcome, body: dict[str, str] | None) -> None:
                """One row: recorded at once (not sent), or handed to a worker when a slot is free."""
                nonlocal dispatched, limited
                reason = stop.why_not(outcome.campaign) if body is not None else None
                if body is not None and not reason and settings.limit is not None \
                        and dispatched >= settings.limit:
                    reason, limited = Problem("not_sent.limit", "not sent: --limit"), True
                if body is None or reason:
                    pending.append(_abort(outcome, reason) if reason else outcome)
                else:
                    while not slots.acquire(timeout=0.1):
                        flush()
                        reason = stop.why_not(outcome.campaign)
                        if reason:  # a stop while this row waited for a worker: it is not sent
                            pending.append(_abort(outcome, reason))
                            break
                    else:
                        dispatched += 1
                        future = pool.submit(send, outcome, body)
                        future.add_done_callback(lambda _f: slots.release())
                        in_flight[id(future)] = outcome
                        pending.append(future)
                flush()

            read = 0
            try:
                try:
                    rows = Checker(opts.checks, today=today).check_file(lead_file)
                    for outcome, body in rows:
                        if quit_now():
                            break
                        read += 1
                        if read > total:  # rows the check never saw: not sent
                            stop.run(StopKind.INPUT, f"{lead_file.name} changed during the upload: it now has more "
                                              f"than the {total} rows checked; the rows after them were not sent")
                            break
                        if body is not None and opts.suppression and opts.suppression.screen(outcome):
                            body = None
                        if body is not None and not settings.resend_unknown \
                                and body.get("checkDuplicate", "TRUE") != "TRUE":
                            said = earlier_outcome_unknown(outcome.source, lead_file.keys)
                            if said:  # a failures file fed back: its row may already be in CloudAgent
                                outcome.status, outcome.cause = Status.FAILED, "send.unknown"
                                outcome.message = (
                                    f"not sent: an earlier run could not tell whether CloudAgent stored this row "
                                    f"({said}); check the campaign in CloudAgent, then clear this row's "
                                    f"leadpush_status to send it, or pass --resend-unknown (checkDuplicate is "
                                    f"FALSE: a resend could add it twice)")
                                body = None
                        if body is not None and resume:
                            earlier = resume.verdict(outcome, body)
                            if earlier:
                                outcome.status, outcome.message, outcome.cause = earlier
                                body = None
                        if body is not None and ledger and settings.skip_loaded_within:
                            lately = ledger.loaded_lately(outcome, settings.skip_loaded_within, settings.skip_scope,
                                                          opts.checks.region)
                            if lately:
                                outcome.status, outcome.message, body = Status.SKIPPED, lately, None
                                outcome.cause = "row.loaded_lately"
                        _dispatch(outcome, body)
                except InputError as e:
                    # The file changed under us after the check: what was sent stays sent and on record.
                    stop.run(StopKind.INPUT, f"{lead_file.name} changed during the upload after {read} of {total} rows "
                                      f"({e}); the rows not reached were not sent")
                if not quit_now() and stop.kind is not StopKind.INPUT and read < total:
                    stop.run(StopKind.INPUT, f"{lead_file.name} changed during the upload: {read} rows read where the "
                                      f"check found {total}")
                flush(wait=True)  # in-flight requests finish; workers waiting for a slot see a stop at once
            except Exception:
                # A bug of ours: nothing more is sent, and the rows in flight finish (journal, ledger)
                # before the files and the ledger are closed under them.
                stop.run(StopKind.ERROR, "an internal error")
                pool.shutdown(wait=True)
                raise
            finally:
                pool.shutdown(wait=False)
            if quit_now():
                quitting = True
                _record_unfinished(pending, in_flight, recorder, progress)
                if not stop.interrupt.is_set():
                    stop.interrupt.set()
            summary.column_map = first_pass.column_map
            note_suppression(opts, summary)
            summary.elapsed = clock() - started
            summary.requests = sender.requests + tokens.requests
            summary.token_generations = tokens.generations
            summary.stop_reason = stop.reason or (
                f"--limit {settings.limit}: sent the first {dispatched} valid rows; --resume sends the rest"
                if limited else None)
            summary.exists_after_our_attempt = probably_ours
        counts = recorder.counts
        if journal:
            try:
                # A results or failures file that could not be written leaves the run unfinished:
                # --resume then skips what was added (a fresh start would send every row again).
                journal.end(complete=stop.reason is None and not stop.interrupt.is_set() and not limited
                            and not recorder.errors,
                            unsettled=counts.get(Status.FAILED, 0) + counts.get(Status.ABORTED, 0))
            except OutputError as e:
                if stop.kind is not StopKind.OUTPUT:
                    recorder.errors.append(str(e))
        if resume and resume.state.in_flight:
            summary.in_flight_earlier = len(resume.state.in_flight)
        code = exit_code_for(counts, account_refused=stop.kind is StopKind.ACCOUNT, interrupted=stop.interrupt.is_set(),
                             terminated=getattr(stop.interrupt, "terminated", False))
        if (stop.kind in (StopKind.INPUT, StopKind.OUTPUT) or recorder.errors) and code == ExitCode.OK:
            code = ExitCode.ROW_FAILURES  # rows not reached, or a file not written: never "all went through"
        summary.exit_code = code
        log_end(summary)
        for error in recorder.errors:
            if error not in (summary.stop_reason or ""):
                summary.stop_reason = f"{summary.stop_reason}; {error}" if summary.stop_reason else error
        if stop.kind is StopKind.OUTPUT or recorder.errors:
            # A file could not be written: exit 2 if nothing was sent, else never 0.
            if not sent_any.is_set():
                code = ExitCode.USAGE
            elif code == ExitCode.OK:
                code = ExitCode.ROW_FAILURES
        summary.exit_code = code
        if ledger:
            ledger.end(recorder.counts, summary.exit_code)
            summary.run = ledger.run_id
        return summary
    finally:
        stop.interrupt.polled = False  # type: ignore[attr-defined]


def _record_unfinished(pending: deque[RowOutcome | Future[RowOutcome]], in_flight: dict[int, RowOutcome],
                       recorder: Any, progress: Any) -> None:
    """After a second Ctrl-C: rows whose request is still out are recorded as outcome unknown."""
    while pending:
        item = pending.popleft()
        if isinstance(item, Future):
            if item.done() and item.exception() is None:
                item = item.result()
            else:
                # A copy: the worker may still be writing to the row it holds.
                outcome = dataclasses.replace(in_flight[id(item)])
                if item.cancel():
                    _abort(outcome, Problem("not_sent.interrupted", "not sent: interrupted"))
                else:
                    outcome.status, outcome.cause = Status.FAILED, "send.unknown"
                    outcome.message = ("outcome unknown: quit (second Ctrl-C or SIGTERM) while its request was in "
                                       "flight; the lead may or may not have been stored")
                item = outcome
        recorder.record(item)
        progress.advance()


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
                sandbox: bool, stdin: IO[bytes] | None, conn: Connection | None = None) -> PreparedRun:
    """Open the input, take the one-run-at-a-time lock, and open the journal by the journal rule.

    The input, outputs and journal must be different files (checked before anything is written).
    No lock or journal is made beside stdin, a pipe or a device: only a --journal named one.
    Everything opened here is closed (and every lock dropped) by `stack`.
    """
    keep_journal = keeps_journal(choice, sandbox=sandbox)  # usage errors come before reading
    lead_file = stack.enter_context(open_input(opts, stdin=stdin))
    run = PreparedRun(lead_file, notes=reading_notes(lead_file))
    ident = None
    if not lead_file.spooled:
        key = identity(opts.file)
        ident = (int(key[1]), int(key[2])) if key[0] == "inode" else None  # type: ignore[call-overload]
    path = None
    if keep_journal:
        path = choice.path or default_journal_path(lead_file.name, stream=lead_file.spooled)
        if path is None and choice.resume:
            raise ConfigError(f"--resume needs --journal for {lead_file.name} (input from stdin or a pipe has "
                              f"no journal of its own)")
        if path is not None and choice.path is None and ident:
            path, note = journal_of_file(cache_dir, ident, path)  # the same file under another name
            if note:
                run.notes.append(note)
    check_paths(opts, lead_file, path)
    if ident:
        stack.enter_context(input_lock(cache_dir, ident, lead_file.name))
    if path is not None:
        if ident:
            remember_journal(cache_dir, ident, path)
        owner = (None if choice.by_name else ident, conn.base_url if conn else "", conn.username if conn else "")
        run.journal, run.resume, notes = open_journal(stack, path, lead_file.digest(), owner, choice,
                                                      lead_file.name)
        run.notes.extend(notes)
    return run


def demo_sandbox(stack: ExitStack) -> tuple[Connection, Path, str]:
    """A built-in sandbox for this run (stopped by `stack`): its demo connection, a throwaway token
    cache, and the line that tells the user where the leads go."""
    from .sandbox import DEMO_KEY, DEMO_USER, Sandbox  # noqa: PLC0415 (only --sandbox needs the server)

    server = stack.enter_context(Sandbox())
    cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadpush-")))
    return (Connection(server.base_url, DEMO_USER, DEMO_KEY), cache_dir,
            f"Uploading to the built-in sandbox at {server.base_url} (user {DEMO_USER}).")


def open_run_log(stack: ExitStack, run: PreparedRun, conn: Connection, profile: str | None, *, sandbox: bool,
                 skip_loaded_within: str | None) -> RunLog | None:
    """The ledger rule: every upload is recorded in the run ledger, except a --sandbox run (its
    leads vanish with it), which therefore cannot use --skip-loaded-within. A damaged or locked
    ledger stops the run here, before anything is sent."""
    if sandbox:
        if skip_loaded_within:
            raise ConfigError("--skip-loaded-within needs the run ledger, which --sandbox runs do not keep")
        return None
    ledger = stack.enter_context(closing(open_ledger()))
    digest = run.journal.digest if run.journal else run.lead_file.digest()
    return RunLog(ledger, "upload", conn.base_url, conn.username, profile, run.lead_file.name, digest)
