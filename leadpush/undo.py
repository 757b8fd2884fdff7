"""Undo a run: delete from CloudAgent exactly the leads it added, through Delete Campaign Data."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

from .causes import Problem
from .cloudagent import (
    TOKEN_RESENDS,
    Connection,
    Sender,
    Sent,
    TokenKeeper,
    TokenStore,
    TokenUnavailable,
    Verdict,
    VerdictKind,
    _never_reached,
    _transport_reason,
    classify,
    common_verdict,
    exchange,
    parse_answer,
)
from .files import sibling_path
from .journal import Journal, JournalChoice, JournalState, open_journal, read_journal
from .ledger import EXISTS_AFTER_ATTEMPT, Ledger, RunLog, default_data_dir, local_time, safe_url
from .outcomes import AccountRefusal, ConfigError, RowOutcome, Status, clip, exit_code_for, scrub
from .pacing import Pacer
from .records import Recorder, ResultsWriter, RunSummary, TableMode
from .upload import StopKind, UploadSettings, _abort, _Stop, _Workers

DELETE_PATH = "/ca_apis/deleteCampaignData"
_CAMPAIGN = ("campaign should not be null are empty", "passed campaign are invalid")


@dataclass
class UndoPlan:
    """What an undo will delete: the leads a run added that are still its own, as far as the ledger
    knows (not deleted since, not added again by a later run)."""

    source: str  # "run 17" or the journal's path, for messages
    digest: str  # ties the undo's own journal to its source
    leads: list[RowOutcome]  # in the order they were added
    run: dict[str, Any] | None = None  # the ledger's run, when undoing one
    already: int = 0  # deleted since (by an earlier undo of the run id or of its journal)
    existed: int = 0  # found already there by the run: never deleted
    # `exists` after the run's own attempt (an answer lost, or a killed run's row resent):
    # perhaps this run's lead, perhaps there before. Left alone unless --include-probable.
    probable: list[RowOutcome] = field(default_factory=list)
    include_probable: bool = False
    readded: dict[int, int] = field(default_factory=dict)  # later run -> leads it added again: left alone
    undo_of: int | None = None  # the ledger run undone (a journal's, where the ledger has exactly one)

    def per_campaign(self) -> Counter[str]:
        return Counter(o.campaign for o in self.leads)

    def describe(self) -> str:
        what = self.source
        if self.run:
            what += (f" ({self.run['input_name'] or '-'}, started {local_time(self.run['started_at'])}, "
                     f"user {self.run['username']} at {self.run['base_url']})")
        lines = [f"{what}: {len(self.leads)} lead{'' if len(self.leads) == 1 else 's'} to delete"
                 + "".join(f"\n  {campaign}: {n}" for campaign, n in sorted(self.per_campaign().items()))]
        if self.already:
            lines.append(f"{self.already} already deleted by an earlier undo")
        for run, n in sorted(self.readded.items()):
            lines.append(f"{n} added again by the later run {run} and left alone (undo {run} first to delete "
                         f"{'it' if n == 1 else 'them'})")
        if self.existed:
            lines.append(f"{self.existed} were there before the run (exists) and are left alone")
        if self.probable:
            n = len(self.probable)
            lines.append(f"{n} found already there after the run's own attempt (an answer lost, or a stopped run's "
                         f"row sent again): perhaps added by this run, perhaps there before; "
                         + ("included (--include-probable)" if self.include_probable
                            else "left alone (--include-probable deletes them too)"))
        return "\n".join(lines)


def plan_undo(target: str, ledger: Ledger, conn: Connection, *, include_probable: bool = False) -> UndoPlan:
    """The plan for `leadpush undo TARGET`: a ledger run id, or a journal file.

    Either way the ledger decides what is still the run's own: a lead deleted since (by any undo
    of this account, of a run id or of a journal) is not deleted again, and a lead another run
    added again later is left alone (deleting it would take that run's lead)."""
    if target.isascii() and target.isdigit():
        run = ledger.run(int(target))
        if run is None:
            raise ConfigError(f"no run {target} in the ledger {ledger.path}")
        if run["command"] != "upload":
            raise ConfigError(f"run {target} is an {run['command']}, not an upload; only uploads can be undone")
        if (run["base_url"], run["username"]) != (safe_url(conn.base_url), conn.username):
            raise ConfigError(f"run {target} loaded its leads as {run['username']} at {run['base_url']}; "
                              f"connect as that user (--base-url, --username) to undo it")
        found = [(lead["status"], lead["row"] or 0, lead["campaign"], lead["phone"], float(lead["at"]))
                 for lead in ledger.leads(int(target))]
        plan = UndoPlan(f"run {target}", f"undo-run-{target}", [], run=run, undo_of=int(target))
        own = {int(target)}
    else:
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"{target}: neither a run id of the ledger (see leadpush history) nor a journal file")
        state = read_journal(path)
        if state.empty:
            raise ConfigError(f"{target}: not a leadpush journal (no run recorded in it)")
        found, digests = _journal_rows(path)
        own = {run for digest in digests for run in ledger.runs_of_input(digest, conn.base_url, conn.username)}
        # The ledger knows which of the journal's `exists` came after the run's own attempt.
        after_attempt = {(lead["campaign"], lead["phone"]) for run in own for lead in ledger.leads(run)
                         if lead["status"] == EXISTS_AFTER_ATTEMPT}
        found = [(EXISTS_AFTER_ATTEMPT if status == Status.EXISTS.value and (c, p) in after_attempt else status,
                  row, c, p, at) for status, row, c, p, at in found]
        plan = UndoPlan(str(path), "undo-journal-" + str(path.resolve()), [],
                        undo_of=next(iter(own)) if len(own) == 1 else None)
    plan.include_probable = include_probable
    seen: set[tuple[str, str]] = set()
    for status, row, campaign, phone, at in found:
        if status == Status.EXISTS.value:
            plan.existed += 1
            continue
        if status not in (Status.ADDED.value, EXISTS_AFTER_ATTEMPT) or (campaign, phone) in seen:
            continue
        seen.add((campaign, phone))
        fate, by = ledger.fate(conn.base_url, conn.username, campaign, phone, at, own)
        if fate == "deleted":
            plan.already += 1
        elif fate == "added again" and by is not None:
            plan.readded[by] = plan.readded.get(by, 0) + 1
        elif status == EXISTS_AFTER_ATTEMPT:
            plan.probable.append(RowOutcome(row, Status.VALID, "", phone, campaign))
        else:
            plan.leads.append(RowOutcome(row, Status.VALID, "", phone, campaign))
    if include_probable:
        plan.leads += plan.probable
    return plan


def _journal_rows(path: Path) -> tuple[list[tuple[str, int, str, str, float]], set[str]]:
    """(status, row, campaign, phone, when) of a journal's rows, and the input digests it names."""
    rows: list[tuple[str, int, str, str, float]] = []
    digests: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("input"):
                digests.add(str(rec["input"]))
            if not isinstance(rec, dict) or rec.get("type") != "row":
                continue
            try:
                # The journal's times are whole seconds: the lead was added within the second after.
                at = dt.datetime.fromisoformat(str(rec.get("at"))).timestamp()
            except ValueError:
                at = 0.0  # no time: everything the ledger saw counts as after it
            rows.append((str(rec.get("status", "")), int(rec.get("row") or 0), str(rec.get("campaign", "")),
                         str(rec.get("phone", "")), at))
    return rows, digests


def default_undo_journal(plan: UndoPlan) -> Path:
    if plan.run is not None:
        return default_data_dir() / "undo" / f"run-{plan.run['id']}.leadpush-journal.jsonl"
    return sibling_path(plan.source, "undo", "jsonl")


def open_undo_journal(stack: ExitStack, plan: UndoPlan,
                      choice: JournalChoice) -> tuple[Journal, JournalState | None, str | None]:
    """The undo's own journal, by upload's rule: an undo that stopped is continued with --resume,
    or started over with --restart, never silently either (closed and unlocked by `stack`)."""
    if choice.resume and choice.restart:
        raise ConfigError("--resume and --restart exclude each other")
    path = choice.path or default_undo_journal(plan)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{path.parent}: cannot be created ({e.strerror})") from None
    # The undo's journal belongs to its plan: no input file of its own, the plan's digest as its "user".
    journal, resume, notes = open_journal(stack, path, plan.digest, (None, "undo", plan.digest), choice, plan.source)
    return journal, None if resume is None else resume.state, "; ".join(notes) or None


# ---------------------------------------------------------------------------- one delete

def classify_delete(status: int, text: str, headers: Any) -> Verdict:
    """A Delete Campaign Data answer as a Verdict (kind `deleted` on success)."""
    body = parse_answer(text) if status == 200 else None
    if body is None:
        verdict = classify(status, text, headers)  # HTTP faults and unreadable bodies: as for adding
        if status in (404, 405):
            verdict.message = f"CloudAgent answered HTTP {status} for {DELETE_PATH}; check the base URL"
        return verdict
    message = str(body.get("message") or "").strip()
    key = message.lower().rstrip(".! ")
    if key == "deleted successfully":
        return Verdict(VerdictKind.DELETED, message, status)
    if key == "no record found":
        return Verdict(VerdictKind.NO_RECORD, message, status)
    return common_verdict(key, message, status, _CAMPAIGN) or Verdict(
        VerdictKind.REJECTED, message or f"unexpected answer: {clip(text)}", status)


def delete_lead(session: requests.Session, conn: Connection, payload: bytes, token: str, timeout: float) -> Verdict:
    """One Delete Campaign Data request, through the same exchange as Add Campaign Data: no redirect
    followed (the key goes to no other host), a total deadline, a capped body."""
    headers = {"Content-Type": "application/json", "apiKey": conn.api_key, "Authorization": f"Bearer {token}"}
    secrets = conn.secrets + (token,)
    try:
        reply = exchange(session, conn.base_url + DELETE_PATH, payload, headers, timeout, method="DELETE")
    except requests.exceptions.SSLError:
        return Verdict(VerdictKind.ACCOUNT, "TLS verification of CloudAgent's certificate failed; check the base URL "
                                  "or REQUESTS_CA_BUNDLE")
    except requests.RequestException as e:
        return Verdict(VerdictKind.TRANSIENT if _never_reached(e) else VerdictKind.AMBIGUOUS, _transport_reason(e))
    unread = reply.oversized or bool(reply.undecodable)
    verdict = classify_delete(reply.status, "" if unread else scrub(reply.text, secrets), reply.headers)
    verdict.message = scrub(verdict.message, secrets)
    return verdict


class Deleter(Sender):
    """Deletes one lead. A delete sent twice deletes once, so every fault is retried (up to --retries)."""

    def delete(self, campaign: str, phone: str, stop: Callable[[], bool]) -> Sent:
        payload = json.dumps({"campaignName": campaign, "phoneNumber": phone, "userName": self.conn.username}).encode()
        attempts = retries = token_resends = 0
        last_status: int | None = None
        maybe_done = False
        while True:
            if stop():
                return self._stopped(attempts, last_status, maybe_done)
            token = self.tokens.current()
            if not self.pacer.wait(stop):
                return self._stopped(attempts, last_status, maybe_done)
            attempts += 1
            with self._count_lock:
                self.requests += 1
            verdict = delete_lead(self.session, self.conn, payload, token, self.timeout)
            last_status = verdict.http_status
            if verdict.kind is VerdictKind.TOKEN_EXPIRED:
                token_resends += 1
                if token_resends > TOKEN_RESENDS:
                    return Sent(Status.FAILED, "CloudAgent kept answering 'Token Expired' to fresh tokens",
                                attempts, last_status, cause="send.token")
                self.tokens.expired(token)
                continue
            self.tokens.used(token)
            if verdict.kind is VerdictKind.DELETED:
                return Sent(Status.DELETED, verdict.message, attempts, last_status)
            if verdict.kind is VerdictKind.NO_RECORD and maybe_done:
                # An earlier attempt went unanswered: it is the one that deleted the lead.
                return Sent(Status.DELETED, f"{verdict.message} on a resend: an earlier attempt whose answer was "
                                            f"lost deleted it", attempts, last_status)
            if verdict.kind is VerdictKind.NO_RECORD:
                return Sent(Status.SKIPPED, f"not in the campaign any more ({verdict.message}): nothing to delete",
                            attempts, last_status, cause="row.gone")
            if verdict.kind is VerdictKind.REJECTED and maybe_done:
                # An answer undo does not know, after an attempt that may have deleted the lead: the
                # outcome is unknown, and the ledger is not told `deleted`.
                return Sent(Status.FAILED, f"outcome unknown: {verdict.message} (on a resend, after an attempt "
                                           f"whose answer was lost; the lead may or may not have been deleted: "
                                           f"undo again to be sure)", attempts, last_status, cause="send.unknown")
            if verdict.kind is VerdictKind.REJECTED:
                return Sent(Status.REJECTED, verdict.message, attempts, last_status, cause="cloudagent.rejected")
            if verdict.kind in (VerdictKind.ACCOUNT, VerdictKind.CAMPAIGN):
                return Sent(Status.REJECTED, verdict.message, attempts, last_status, stop=verdict.kind,
                            cause=f"cloudagent.{verdict.kind}")
            # Anything else is resent (a delete sent twice deletes once); an answer that may
            # have come after the delete was done makes a later "No Record Found" ours.
            maybe_done = maybe_done or verdict.kind in (VerdictKind.AMBIGUOUS, VerdictKind.UNRECOGNISED)
            if retries >= self.retries:
                return Sent(Status.FAILED, f"{verdict.message}; gave up after {attempts} attempts"
                            + ("; the lead may or may not have been deleted (undo again to be sure)"
                               if maybe_done else ""), attempts, last_status,
                            cause="send.unknown" if maybe_done else "send.gave_up")
            retries += 1
            delay = self.rng.uniform(0, min(self.backoff_cap, self.backoff * 2 ** (retries - 1)))
            if verdict.retry_after is not None:
                delay = max(delay, verdict.retry_after)
                if verdict.http_status == 429:
                    self.pacer.pause_until(self.clock() + delay)
                    if self.on_wait:
                        self.on_wait(delay, "CloudAgent asked to slow down (429)")
            if not self._sleep(delay, stop):
                return self._stopped(attempts, last_status, maybe_done)

    @staticmethod
    def _stopped(attempts: int, last_status: int | None, maybe_done: bool) -> Sent:
        if maybe_done:
            return Sent(Status.FAILED, "the run stopped before a retry; an earlier attempt may or may not have "
                                       "deleted the lead (undo again to be sure)", attempts, last_status,
                        cause="send.unknown")
        return Sent(Status.ABORTED, "not deleted: the run stopped", attempts, last_status, cause="not_sent.stopped")


# ---------------------------------------------------------------------------- the undo run

@dataclass
class UndoOutput:
    results: Path | None = None
    table: TableMode = TableMode.AUTO


def undo(plan: UndoPlan, settings: UploadSettings, *, session: requests.Session, clock: Callable[[], float],
         sleep: Callable[[float], None], progress: Any, run_log: RunLog, journal: Journal | None = None,
         resume: JournalState | None = None, interrupt: threading.Event | None = None,
         rng: random.Random | None = None, wall_clock: Callable[[], float] | None = None,
         output: UndoOutput | None = None) -> RunSummary:
    """Delete every planned lead, paced and retried as upload sends; each deletion goes to the ledger
    and the journal the moment it is known."""
    output = output or UndoOutput()
    progress.set_total(len(plan.leads))
    pacer = Pacer(settings.rate, clock=clock, sleep=sleep)
    stop = _Stop(interrupt or threading.Event())
    rng = rng or random.Random()
    store = TokenStore(settings.cache_dir, settings.conn.base_url, settings.conn.username)
    # As upload does: token expiry is wall-clock time, pacing and waits a clock that never jumps.
    tokens = TokenKeeper(session, settings.conn, store, pacer, clock=wall_clock or clock, monotonic=clock,
                         timeout=settings.timeout, retries=settings.retries, sleep=sleep, stop=stop.is_set, rng=rng)
    deleter = Deleter(session, settings.conn, tokens, pacer, clock=clock, sleep=sleep, timeout=settings.timeout,
                      retries=settings.retries, rng=rng, on_wait=getattr(progress, "waiting", None))

    def why_not(campaign: str) -> Problem | None:
        """As for upload, in undo's words."""
        reason = stop.why_not(campaign)
        return Problem(reason.cause, reason.replace("not sent", "not deleted", 1)) if reason else None

    recorder = Recorder(results=ResultsWriter(output.results) if output.results else None, table=output.table)
    summary = RunSummary(command="undo", file=plan.source, file_format="ledger" if plan.run else "journal",
                         recorder=recorder)
    run_log.start()  # first: a locked ledger stops the undo before its journal says it started
    if journal:
        journal.start(file=plan.source, rows=len(plan.leads), resume=resume is not None)

    def send(o: RowOutcome) -> RowOutcome:
        reason = why_not(o.campaign)
        if reason:
            return _abort(o, reason)
        try:
            sent = deleter.delete(o.campaign, o.phone, stop.is_set)
        except (AccountRefusal, TokenUnavailable) as e:
            stop.run(StopKind.ACCOUNT if isinstance(e, AccountRefusal) else StopKind.TOKEN, str(e))
            return _abort(o, Problem("not_sent.stopped", f"not deleted: {e}"))
        if sent.stop is VerdictKind.ACCOUNT:
            stop.run(StopKind.ACCOUNT, sent.message)
        elif sent.stop is VerdictKind.CAMPAIGN:
            stop.campaign(o.campaign, sent.message)
        why = why_not(o.campaign) if sent.status is Status.ABORTED else None  # which stop, if one
        o.status, o.message, o.cause = sent.status, why or sent.message, why.cause if why else sent.cause
        o.attempts, o.http_status = sent.attempts, sent.http_status
        # The ledger first: it then holds at least what the journal does. A lead already gone
        # (No Record Found: deleted by an attempt a kill cut short, or by hand) is gone all the same:
        # the ledger counts it deleted, so no later undo or --skip-loaded-within counts it present.
        if not run_log.row(replace(o, status=Status.DELETED) if o.status is Status.SKIPPED else o):
            stop.run(StopKind.LEDGER, run_log.failure_note(journal.path if journal else None) or "")
        if journal and sent.attempts:
            journal.row(o)
        return o

    started = clock()
    try:
        pending: deque[RowOutcome | Future[RowOutcome]] = deque()

        def flush(wait: bool = False) -> None:
            while pending and (wait or not isinstance(pending[0], Future) or pending[0].done()):
                item = pending.popleft()
                recorder.record(item.result() if isinstance(item, Future) else item)
                progress.advance()

        slots = threading.BoundedSemaphore(settings.workers * 2)
        done = resume.done_keys if resume else set()
        pool = _Workers(settings.workers, "leadpush-undo")
        try:
            for o in plan.leads:
                if (o.campaign, o.phone) in done:
                    o.status, o.message, o.cause = Status.SKIPPED, "deleted in an earlier undo", "row.deleted_earlier"
                    pending.append(o)
                elif reason := why_not(o.campaign):
                    pending.append(_abort(o, reason))
                else:
                    while not slots.acquire(timeout=0.1):
                        flush()
                    future = pool.submit(send, o)
                    future.add_done_callback(lambda _f: slots.release())
                    pending.append(future)
                flush()
            flush(wait=True)
        finally:
            pool.shutdown(wait=False)  # daemon threads: a second Ctrl-C is not held up by them
    finally:
        recorder.close()
    if output.results:
        summary.results_file = str(output.results)
    summary.elapsed = clock() - started
    summary.requests = deleter.requests + tokens.requests
    summary.token_generations = tokens.generations
    summary.stop_reason = stop.reason
    if journal:
        journal.end(complete=stop.reason is None and not stop.interrupt.is_set())
    summary.exit_code = exit_code_for(recorder.counts, account_refused=stop.kind is StopKind.ACCOUNT,
                                      interrupted=stop.interrupt.is_set(),
                                      terminated=getattr(stop.interrupt, "terminated", False))
    run_log.end(recorder.counts, summary.exit_code)
    summary.run, summary.undo_of = run_log.run_id, plan.undo_of
    return summary
