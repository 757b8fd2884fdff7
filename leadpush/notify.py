"""Telling people how a run went: webhooks, e-mail and heartbeat pings, none of which may change the run."""

from __future__ import annotations

import csv
import json
import smtplib
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .outcomes import ConfigError, scrub

DEFAULT_TIMEOUT = 10.0  # seconds, for each ping, webhook and e-mail
ATTACH_LIMIT_KB = 1024  # failures files larger than this are named in the e-mail, not attached
TOP_CAUSES = 5


def check_url(url: str, where: str, *, mail: bool) -> str:
    """A webhook or heartbeat URL (https; plain http only to this machine), or with `mail` a mailto: address."""
    from .settings import is_loopback  # noqa: PLC0415 (settings imports this module lazily)

    try:
        parts = urlsplit(str(url).strip())
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as e:
        raise ConfigError(f"{where}: {shown_url(str(url))!r} is not a URL ({e})") from None
    if mail and parts.scheme == "mailto":
        if "@" not in parts.path:
            raise ConfigError(f"{where}: {url!r} is not an address such as mailto:ops@example.com")
        return str(url).strip()
    if parts.scheme not in ("http", "https") or not parts.hostname:
        kinds = "an https:// URL or mailto:ADDRESS" if mail else "an https:// URL"
        raise ConfigError(f"{where}: {url!r} is not {kinds}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"{where}: {url!r}: plain http is refused except to this machine; use https")
    return str(url).strip()


def shown_url(url: str) -> str:
    """A URL as warnings show it: scheme, host and port only (a webhook's path is often its key)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.partition("://")[0] + "://…"
    hidden = "/…" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], hidden, "", ""))


def with_suffix(url: str, suffix: str) -> str:
    """URL with /start or /fail added to its path, before any ?query or #fragment."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


class SecretInNotification(Exception):
    """A notification would have carried a secret: it is not sent."""


def _no_secrets(text: str, secrets: tuple[str, ...]) -> None:
    # Everything sent was scrubbed already; this is the last check before the bytes leave.
    if any(s and s in text for s in secrets):
        raise SecretInNotification("it would have carried a secret")


def _describe(e: BaseException) -> str:
    """Why a delivery failed, in one line that carries no URL (requests' messages repeat it)."""
    if isinstance(e, (SecretInNotification, WebhookRefused)):
        return str(e)
    if isinstance(e, smtplib.SMTPResponseException):
        return f"the server answered {e.smtp_code}"
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    if isinstance(e, (ConnectionRefusedError, smtplib.SMTPConnectError)):
        return "connection refused"
    if isinstance(e, TimeoutError) or type(e).__name__ in ("Timeout", "ConnectTimeout", "ReadTimeout"):
        return "timed out"
    if type(e).__name__ == "ConnectionError" or isinstance(e, ConnectionError):
        return "cannot connect"
    return type(e).__name__


# ---------------------------------------------------------------------------- heartbeat

class Heartbeat:
    """GET URL/start when a run starts, URL on exit 0, URL/fail otherwise (healthchecks-style monitors).

    Each ping runs in its own thread and is waited for at most `timeout` seconds, so a monitor that
    hangs never holds up the run; a ping that fails is a warning.
    """

    def __init__(self, url: str, session: Any, *, timeout: float, warn: Callable[[str], None],
                 secrets: tuple[str, ...] = ()) -> None:
        self.url = url
        self.session = session
        self.timeout = timeout
        self.warn = warn
        self.secrets = secrets
        self._start: threading.Thread | None = None

    def start(self) -> None:
        self._start = self._ping(with_suffix(self.url, "/start"))

    def finish(self, exit_code: int) -> None:
        if self._start is None:  # a run that stopped before its start was due (the inbox: before its lock)
            self.start()
        if self._start is not None:
            self._start.join(self.timeout)
        self._ping(self.url if exit_code == 0 else with_suffix(self.url, "/fail")).join(self.timeout)

    def _ping(self, url: str) -> threading.Thread:
        def ping() -> None:
            try:
                _no_secrets(url, self.secrets)
                answer = self.session.get(url, timeout=self.timeout)
                if answer.status_code >= 400:
                    self.warn(f"heartbeat {shown_url(url)} not delivered: the monitor answered {answer.status_code}")
            except Exception as e:
                self.warn(f"heartbeat {shown_url(url)} not delivered: {_describe(e)}")
        thread = threading.Thread(target=ping, name="leadpush-heartbeat", daemon=True)
        thread.start()
        return thread


# ---------------------------------------------------------------------------- what a notification says

@dataclass
class RunReport:
    """What the notifications of a finished run say; built from the --json summary object."""

    summary: dict[str, Any]  # the --json object (or, for a run that stopped early, command/file/error)
    text: str  # one line, as Slack- and Teams-style incoming webhooks show it
    failures_files: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return int(self.summary.get("exit_code", 2))


def top_causes(failures_files: list[str], n: int = TOP_CAUSES) -> list[tuple[str, int]]:
    """The most frequent reasons in the failures files, most frequent first."""
    causes: Counter[str] = Counter()
    for name in failures_files:
        path = Path(name)
        try:
            if path.suffix.lower() == ".jsonl":
                with open(path, encoding="utf-8") as f:
                    causes.update(str(json.loads(line).get("leadpush_error", "")) for line in f if line.strip())
            else:
                with open(path, encoding="utf-8-sig", newline="") as f:
                    causes.update(row.get("leadpush_error", "") for row in csv.DictReader(f))
        except (OSError, ValueError):
            continue
    return causes.most_common(n)


# ---------------------------------------------------------------------------- webhook

def post_webhook(url: str, report: RunReport, session: Any, *, timeout: float, secrets: tuple[str, ...]) -> None:
    """POST the summary object plus a `text` line. Raises on a failed delivery (the caller warns)."""
    body = json.dumps({**report.summary, "text": report.text}, ensure_ascii=False)
    body = scrub(body, secrets)
    _no_secrets(body + url, secrets)
    answer = session.post(url, data=body.encode("utf-8"), timeout=timeout,
                          headers={"Content-Type": "application/json"})
    if answer.status_code >= 300:
        raise WebhookRefused(answer.status_code)


class WebhookRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"the webhook answered {status}")


# ---------------------------------------------------------------------------- e-mail

@dataclass
class SmtpSettings:
    host: str
    sender: str
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    attach_limit_kb: int = ATTACH_LIMIT_KB

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()


def smtp_settings(table: Mapping[str, Any], env: Mapping[str, str], where: str) -> SmtpSettings:
    """The config file's [smtp] table, checked before the run (a mailto: needs host and from)."""
    from .settings import is_loopback  # noqa: PLC0415

    if not table.get("host") or not table.get("from"):
        raise ConfigError(f"{where}: a mailto: notification needs an [smtp] table with host and from "
                          f"(and port, starttls, username, password_env as the server wants)")
    password = None
    if table.get("password_env"):
        password = env.get(table["password_env"])
        if not password:
            raise ConfigError(f"{where}: [smtp] password_env names {table['password_env']}, which is not set")
    s = SmtpSettings(host=table["host"], sender=table["from"], port=table.get("port", 587),
                     starttls=table.get("starttls", True), username=table.get("username"), password=password,
                     timeout=float(table.get("timeout", DEFAULT_TIMEOUT)),
                     attach_limit_kb=table.get("attach_limit_kb", ATTACH_LIMIT_KB))
    if s.password and not s.starttls and not is_loopback(s.host):
        raise ConfigError(f"{where}: [smtp] refuses to send a password to {s.host} without starttls = true")
    return s


def build_email(to: str, report: RunReport, smtp: SmtpSettings, secrets: tuple[str, ...]) -> EmailMessage:
    s = report.summary
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = to
    counts = ", ".join(f"{n} {k}" for k, n in (s.get("counts") or {}).items() if n) or "no rows"
    what = Path(str(s.get("file") or "")).name or "run"
    msg["Subject"] = scrub(f"leadpush {s.get('command', '')} {what}: {counts}; exit {report.exit_code}", secrets)
    lines = [report.text, ""]
    if s.get("error"):
        lines += [f"Error: {s['error']}", ""]
    if s.get("stop_reason"):
        lines += [f"Stopped: {s['stop_reason']}", ""]
    causes = top_causes(report.failures_files)
    if causes:
        lines.append("Top causes of failure:")
        lines += [f"  {n:>6}  {cause}" for cause, n in causes]
        lines.append("")
    limit = smtp.attach_limit_kb * 1024
    attachments = []
    for name in report.failures_files:
        path = Path(name)
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if size <= limit:
            attachments.append(path)
            lines.append(f"Attached: {path.name} ({size} bytes)")
        else:
            lines.append(f"Not attached (over {smtp.attach_limit_kb} KB): {path}")
    lines += ["", "The summary (leadpush --json):", json.dumps(s, ensure_ascii=False, indent=2)]
    body = scrub("\n".join(lines), secrets)
    msg.set_content(body)
    for path in attachments:
        data = path.read_bytes()
        _no_secrets(data.decode("utf-8", "replace"), secrets)
        subtype = "x-ndjson" if path.suffix.lower() == ".jsonl" else "csv"
        msg.add_attachment(data, maintype="text" if subtype == "csv" else "application", subtype=subtype,
                           filename=path.name)
    _no_secrets(str(msg["Subject"]) + body, secrets)
    return msg


def send_email(to: str, report: RunReport, smtp: SmtpSettings, *, secrets: tuple[str, ...],
               connect: Callable[..., smtplib.SMTP] = smtplib.SMTP) -> None:
    """Send the report to one address. Raises on a failed delivery (the caller warns)."""
    msg = build_email(to, report, smtp, secrets + smtp.secrets)
    with connect(smtp.host, smtp.port, timeout=smtp.timeout) as server:
        if smtp.starttls:
            server.starttls(context=ssl.create_default_context())
        if smtp.username:
            server.login(smtp.username, smtp.password or "")
        server.send_message(msg)


# ---------------------------------------------------------------------------- one run's watch

class Watch:
    """The heartbeat and notifications of one run: started before it, finished after it, whatever happens.

    Nothing here raises into the run or changes its exit code; a failed delivery is one warning
    line on stderr and in the log file.
    """

    def __init__(self, *, heartbeat: str | None, notify: list[str], smtp_table: Mapping[str, Any],
                 env: Mapping[str, str], session_factory: Callable[[], Any], warn: Callable[[str], None],
                 timeout: float = DEFAULT_TIMEOUT, where: str = "[smtp]") -> None:
        self.notify = list(notify)
        self.warn_line = warn
        self.timeout = timeout
        self.log_file: Path | None = None
        # Every value that must never leave: set from the run's connection as soon as it is known.
        self.secrets: tuple[str, ...] = tuple(v for k, v in env.items() if k in ("LEADPUSH_API_KEY", "LEADPUSH_TOKEN")
                                              and v)
        self.smtp = smtp_settings(smtp_table, env, where) if any(u.startswith("mailto:") for u in notify) else None
        self.session = session_factory() if heartbeat or any(not u.startswith("mailto:") for u in notify) else None
        self.heartbeat = Heartbeat(heartbeat, self.session, timeout=timeout, warn=self.warn,
                                   secrets=self.secrets) if heartbeat else None
        self.report: RunReport | None = None
        self.silent = False  # a run that did not run (the inbox was busy): no ping, no notification

    def add_secrets(self, secrets: tuple[str, ...]) -> None:
        self.secrets = tuple(dict.fromkeys(self.secrets + secrets))
        if self.heartbeat:
            self.heartbeat.secrets = self.secrets

    def warn(self, message: str) -> None:
        line = scrub(f"Warning: {message}", self.secrets)
        self.warn_line(line)
        if self.log_file:
            try:
                from .records import LogWriter  # noqa: PLC0415

                log = LogWriter(self.log_file, self.secrets)
                log.line(line)
                log.close()
            except Exception:
                pass

    def started(self) -> None:
        if self.heartbeat:
            self.heartbeat.start()

    def finished(self, exit_code: int, fallback: RunReport) -> None:
        """After the run: the heartbeat's last ping, then each notification, once."""
        report = self.report or fallback
        if self.silent:
            if self.session is not None:
                self.session.close()
            return
        if self.heartbeat:
            self.heartbeat.finish(exit_code)
        for target in self.notify:
            try:
                if target.startswith("mailto:"):
                    assert self.smtp is not None
                    send_email(target.removeprefix("mailto:"), report, self.smtp, secrets=self.secrets)
                else:
                    post_webhook(target, report, self.session, timeout=self.timeout, secrets=self.secrets)
            except Exception as e:
                shown = target.split("?")[0] if target.startswith("mailto:") else shown_url(target)
                self.warn(f"notification to {shown} not delivered: {_describe(e)}")
        if self.session is not None:
            self.session.close()
