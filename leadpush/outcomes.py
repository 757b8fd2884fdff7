"""Row statuses, row outcomes, leadpush's errors, and the one mapping from them to exit codes."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus


class Status(StrEnum):
    """What became of one row. Every row ends with exactly one."""

    VALID = "valid"  # dry run: would be sent
    INVALID = "invalid"  # failed a local check, never sent
    SKIPPED = "skipped"  # deliberately not sent (duplicate in the file, done in an earlier run, loaded lately)
    ADDED = "added"  # CloudAgent stored it
    EXISTS = "exists"  # CloudAgent already had it (checkDuplicate TRUE)
    REJECTED = "rejected"  # CloudAgent refused it
    FAILED = "failed"  # no verdict could be obtained (faults, retries exhausted, outcome unknown)
    ABORTED = "aborted"  # never sent because the run, or its campaign, stopped
    SUPPRESSED = "suppressed"  # on a do-not-call list: never sent, and not a failure
    DELETED = "deleted"  # undo: CloudAgent deleted the lead a run had added


# Rows with these statuses go to the failures file and make the exit code 1.
FAILURE_STATUSES = frozenset({Status.INVALID, Status.REJECTED, Status.FAILED, Status.ABORTED})
# How summaries list them: what went through first, then what needs the user's attention.
STATUS_ORDER = [Status.VALID, Status.ADDED, Status.EXISTS, Status.DELETED, Status.SKIPPED, Status.SUPPRESSED,
                Status.INVALID, Status.REJECTED, Status.FAILED, Status.ABORTED]


class ExitCode(IntEnum):
    OK = 0
    ROW_FAILURES = 1
    USAGE = 2  # usage error, unreadable input, bad configuration
    ACCOUNT_REFUSED = 3  # the run was stopped by an account-level refusal
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM (128 + SIGTERM), as from a service manager or `kill`
    INTERNAL = 70  # a bug in leadpush (EX_SOFTWARE): an unexpected exception


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP where no run is in flight to finish (validate): unwinds like Ctrl-C, so
    every file is closed and every temporary removed, and exits 143."""


class LeadpushError(Exception):
    """An error meant for the user: one line, no traceback."""

    exit_code = ExitCode.USAGE


class InputError(LeadpushError):
    """The input file cannot be read (missing, empty, broken)."""


class ConfigError(LeadpushError):
    """A setting is missing or wrong."""


class OutputError(LeadpushError):
    """A file leadpush writes (results, failures, journal, log) cannot be written: disk full, I/O error."""


class AccountRefusal(LeadpushError):
    """CloudAgent refused the account (credentials, auth mode, token cap): nothing more can be sent."""

    exit_code = ExitCode.ACCOUNT_REFUSED


@dataclass(slots=True)
class RowOutcome:
    """The verdict on one row, with what the reports need of it.

    The per-row code (checks.Checker.check_row) builds these with positional arguments: with
    eight fields that is twice as fast as keywords (0.28 against 0.54 µs), 6% of `validate`.
    """

    row: int
    status: Status
    message: str = ""
    phone: str = ""
    campaign: str = ""
    attempts: int = 0
    http_status: int | None = None
    # The row as read (a list in column order, or a JSON object); kept only while a failures
    # file needs it.
    source: list[Any] | dict[str, Any] | None = field(default=None, repr=False)
    # Why, as stable codes (leadpush.causes), ';' between several; empty for a row that went through.
    cause: str = ""
    # An invalid row's problems, one per check that failed (each a causes.Problem: its message and
    # cause, whose field says which cell to mark in a fix-it workbook).
    problems: tuple[Any, ...] = field(default=(), repr=False)
    # How leadpush rewrote a cell to read it (codes as `cause`, e.g. read.digits), on rows that go
    # through as on others; the message says the same in words.
    note: str = ""
    maybe_stored: bool = False  # an attempt may have stored the lead although no verdict came back
    # A failures file fed back in: the row in the file the row first came from (its leadpush_row),
    # which the table and --json show; `row` stays the line of the file being read.
    first_row: int | None = None


def exit_code_for(counts: dict[Status, int], *, account_refused: bool = False,
                  interrupted: bool = False, terminated: bool = False) -> ExitCode:
    """The exit code of a finished (or stopped) run, from its status counts."""
    if terminated:
        return ExitCode.TERMINATED
    if interrupted:
        return ExitCode.INTERRUPTED
    if account_refused:
        return ExitCode.ACCOUNT_REFUSED
    if any(counts.get(s, 0) for s in FAILURE_STATUSES):
        return ExitCode.ROW_FAILURES
    return ExitCode.OK


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Text with every secret (API key, token) replaced, for anything that leaves the process.

    A server may echo a secret in another spelling (JSON-escaped, `\\/`, URL-encoded, HTML-escaped
    with named or numeric character references); each spelling is replaced, longest first, so no
    part of one survives. Where a secret still shows once HTML's character references are read
    (a mix of spellings), the text is given as read, with the secret replaced.
    """
    live = [s for s in secrets if s]
    for secret in live:
        for spelling in _spellings(secret):
            if spelling in text:
                text = text.replace(spelling, "***")
    if "&" in text:
        unescaped = html.unescape(text)
        if any(secret in unescaped for secret in live):
            return scrub(unescaped, secrets)
    return text


def clip(text: str, limit: int = 200) -> str:
    """Text on one line, cut to `limit` characters: for text already scrubbed (scrub first, then cut,
    or a secret straddling the cut would leave its start behind)."""
    return " ".join(text.split())[:limit]


@lru_cache(maxsize=16)
def _spellings(secret: str) -> tuple[str, ...]:
    """The ways a secret can be written in an answer: raw, JSON-escaped, URL-encoded, HTML-escaped."""
    json_escaped = json.dumps(secret)[1:-1]
    forms = {secret, json_escaped, json.dumps(secret, ensure_ascii=False)[1:-1],
             json_escaped.replace("/", "\\/"), secret.replace("/", "\\/")}
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        forms.add(encoded)
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), encoded))
    special = [c for c in set(secret) if not c.isalnum()]
    forms.update({html.escape(secret, quote=True), html.escape(secret, quote=False),
                  "".join(f"&#{ord(c)};" if c in special else c for c in secret),
                  "".join(f"&#x{ord(c):x};" if c in special else c for c in secret),
                  "".join(f"&#x{ord(c):X};" if c in special else c for c in secret),
                  html.escape(secret, quote=True).replace("&#x27;", "&#39;").replace("&quot;", "&#34;")})
    return tuple(sorted(forms, key=len, reverse=True))


def internal_error(e: BaseException, *, debug: bool) -> str:
    """The line (or, with LEADPUSH_DEBUG=1, the traceback) for an exception leadpush did not expect."""
    import os  # noqa: PLC0415
    import traceback  # noqa: PLC0415

    secrets = tuple(v for v in (os.environ.get("LEADPUSH_API_KEY"), os.environ.get("LEADPUSH_TOKEN")) if v)
    if debug:
        return scrub("".join(traceback.format_exception(e)).rstrip(), secrets)
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    at = f" at {os.path.basename(where.filename)}:{where.lineno}" if where else ""
    text = scrub(str(e), secrets)[:200]
    return (f"Internal error: {type(e).__name__}{at}{': ' + text if text else ''} (a bug in leadpush; "
            f"files written so far are complete; run again with LEADPUSH_DEBUG=1 for the traceback)")


def counted(n: int, noun: str) -> str:
    """"1 row", "2 rows": a count with its noun, for every summary line."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
