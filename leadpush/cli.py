"""The `leadpush` command line: Typer glue only (parsing, wiring, printing); the work is done in the plain modules."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from . import __version__, jobs, report
from .checks import CampaignType, CheckSettings, PhoneFormat, RowDefaults, _phonenumbers
from .environment import Environment
from .files import printable
from .inbox import InboxSettings, check_folder
from .journal import JournalChoice
from .ledger import SkipScope, open_ledger, parse_window, run_object, write_leads
from .mapping import normalize, user_map_of
from .outcomes import ConfigError, ExitCode, LeadpushError, Terminated, internal_error
from .pacing import parse_rate
from .readers import InputFormat
from .records import FailuresFormat, TableMode
from .sandbox import DEMO_KEY, DEMO_USER, Sandbox, load_config
from .settings import (
    DEFAULTS,
    ENV_VARS,
    PROFILE_NAMES,
    SETTING_NAMES,
    RunSettings,
    Setting,
    Source,
    connection,
    default_cache_dir,
    default_config_path,
    load_profile,
    masked,
    resolve,
    resolve_api_key,
    shown_api_key,
)
from .suppress import load_suppression
from .template import TemplateFormat, write_template
from .template import template_format as template_format_for

app = typer.Typer(
    name="leadpush", no_args_is_help=True, rich_markup_mode="rich",
    help="Load leads from CSV, JSON and spreadsheet files into Ozonetel CloudAgent campaigns.")
config_app = typer.Typer(no_args_is_help=True, help="Show leadpush's effective settings.")
auth_app = typer.Typer(no_args_is_help=True, help="Check the CloudAgent credentials.")
app.add_typer(config_app, name="config")
app.add_typer(auth_app, name="auth")

READING = "Reading the file"
ROWS = "Row defaults and checks"
OUTPUT = "Output"
CONNECTING = "Connecting to CloudAgent"
UNATTENDED = "Unattended runs"


def _complete_region(incomplete: str) -> list[str]:
    return sorted(r for r in _phonenumbers().SUPPORTED_REGIONS if r.startswith(incomplete.upper()))


# ---------------------------------------------------------------------------- options, declared once
# Each option is a named, typed value that several commands list in their signatures.

ProfileOpt = Annotated[str | None, typer.Option(
    envvar="LEADPUSH_PROFILE", metavar="NAME", rich_help_panel=UNATTENDED,
    help="Take settings from \\[profiles.NAME] of the config file (flags and environment still win).")]
ConfigOpt = Annotated[Path | None, typer.Option(
    envvar="LEADPUSH_CONFIG", metavar="FILE", rich_help_panel=UNATTENDED,
    help="Config file; by default config.toml in the user config folder (~/.config/leadpush).")]

FileArg = Annotated[str, typer.Argument(
    metavar="FILE", show_default=False,
    help="Lead file (.csv .tsv .txt .json .jsonl .xlsx .xlsm .xlsb .xls .ods), or - for stdin.")]
FormatOpt = Annotated[InputFormat | None, typer.Option(
    "--format", rich_help_panel=READING,
    help="Input format; by default from the extension (needed for odd names and stdin).")]
EncodingOpt = Annotated[str | None, typer.Option(
    metavar="NAME", rich_help_panel=READING,
    help="Text encoding of a CSV file; by default UTF-8, UTF-16 or Windows-1252, detected.")]
DelimiterOpt = Annotated[str | None, typer.Option(
    metavar="CHAR", rich_help_panel=READING,
    help="CSV delimiter (one character, or 'tab'); by default sniffed from the header.")]
SheetOpt = Annotated[str | None, typer.Option(
    metavar="NAME", rich_help_panel=READING,
    help="Workbook sheet to read (any case); by default the active, or first visible, one.")]
HeaderRowOpt = Annotated[int | None, typer.Option(
    metavar="N", min=1, rich_help_panel=READING,
    help="Line (sheet row) of the header; by default the first row, or the first that names a phone column "
         "below title rows.")]
MapOpt = Annotated[list[str] | None, typer.Option(
    "--map", metavar='"HEADER=FIELD"', rich_help_panel=READING,
    help='Map a column: "Column header=field" (repeatable); "Column header=" leaves it out.')]
CampaignOpt = Annotated[str | None, typer.Option(
    metavar="NAME", rich_help_panel=ROWS, help="Campaign for rows without one.")]
SkillOpt = Annotated[str | None, typer.Option(
    metavar="NAME", rich_help_panel=ROWS, help="Skill for rows without one.")]
AgentIdOpt = Annotated[str | None, typer.Option(
    metavar="ID", rich_help_panel=ROWS, help="Agent ID for rows without one.")]
PriorityOpt = Annotated[str | None, typer.Option(
    metavar="0-99", rich_help_panel=ROWS, help="Priority for rows without one.")]
ExpiryDateOpt = Annotated[str | None, typer.Option(
    metavar="YYYY-MM-DD", rich_help_panel=ROWS, help="Expiry date for rows without one.")]
ActionOpt = Annotated[str | None, typer.Option(
    metavar="START|STOP", rich_help_panel=ROWS,
    help="START or STOP the campaign with each row (rows without an action).")]
CheckDuplicateOpt = Annotated[bool, typer.Option(
    "--check-duplicate/--no-check-duplicate", rich_help_panel=ROWS,
    help="Ask CloudAgent not to add a number its campaign already has (rows without a value).")]
RegionOpt = Annotated[str | None, typer.Option(
    metavar="CODE", rich_help_panel=ROWS, autocompletion=_complete_region,
    help="Also require a valid phone number of this region (ISO code such as IN or US).")]
PhoneFormatOpt = Annotated[PhoneFormat, typer.Option(
    rich_help_panel=ROWS, help="Rewrite phone numbers (needs --region).")]
DayFirstOpt = Annotated[bool, typer.Option(
    "--dayfirst", rich_help_panel=ROWS, help="Read dates like 01/02/2030 as 1 February.")]
MonthFirstOpt = Annotated[bool, typer.Option(
    "--monthfirst", rich_help_panel=ROWS, help="Read dates like 01/02/2030 as 2 January.")]
AllowPastExpiryOpt = Annotated[bool, typer.Option(
    "--allow-past-expiry", rich_help_panel=ROWS, help="Send rows whose expiry date has passed.")]
CampaignTypeOpt = Annotated[CampaignType, typer.Option(
    rich_help_panel=ROWS, help="agent-wise requires an agent ID on every row, skill-wise a skill.")]
KeepDuplicatesOpt = Annotated[bool, typer.Option(
    "--keep-duplicates", rich_help_panel=ROWS, help="Send repeated (campaign, phone) rows instead of skipping them.")]
TableOpt = Annotated[TableMode, typer.Option(
    rich_help_panel=OUTPUT, help="Rows in the table: auto = all up to 200 rows, else only problems.")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", rich_help_panel=OUTPUT, help="Print one JSON summary object on stdout instead of the table and summary.")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", rich_help_panel=OUTPUT, help="Print only errors and a one-line summary.")]
ResultsOpt = Annotated[Path | None, typer.Option(
    metavar="FILE", rich_help_panel=OUTPUT,
    help="Write every row's outcome to this file (.csv, or .jsonl for JSON Lines).")]
FailuresOpt = Annotated[Path | None, typer.Option(
    metavar="FILE", rich_help_panel=OUTPUT,
    help="Failures file; by default <input name>.failures.csv beside the input (.xlsx for XLSX input, .jsonl "
         "for JSON); a .xlsx name makes it a fix-it workbook.")]
FailuresFormatOpt = Annotated[FailuresFormat | None, typer.Option(
    rich_help_panel=OUTPUT, help="Failures file format; by default from --failures, else from the input.")]
SplitOpt = Annotated[bool, typer.Option(
    "--split", rich_help_panel=OUTPUT,
    help="Also write <input name>.valid.<ext>: the rows that would be sent, exactly as they would be sent.")]
NoFailuresOpt = Annotated[bool, typer.Option("--no-failures", rich_help_panel=OUTPUT, help="Write no failures file.")]
LogFileOpt = Annotated[Path | None, typer.Option(
    metavar="FILE", rich_help_panel=OUTPUT,
    help="Append a timestamped line per row, and start and end lines, to this file.")]

BaseUrlOpt = Annotated[str, typer.Option(
    envvar="LEADPUSH_BASE_URL", metavar="URL", rich_help_panel=CONNECTING,
    help="CloudAgent API base URL (international: https://api.ccaas.ozonetel.com; partners have their own).")]
UsernameOpt = Annotated[str | None, typer.Option(
    envvar="LEADPUSH_USERNAME", metavar="USER", rich_help_panel=CONNECTING, help="CloudAgent user name.")]

RateOpt = Annotated[str, typer.Option(
    metavar="N/min", rich_help_panel=CONNECTING,
    help="Requests per time, all included (100/min is CloudAgent's documented limit), such as 2/s.")]
WorkersOpt = Annotated[int, typer.Option(
    min=1, max=64, metavar="N", rich_help_panel=CONNECTING, help="Requests in flight at once.")]
RetriesOpt = Annotated[int, typer.Option(
    min=0, max=20, metavar="N", rich_help_panel=CONNECTING, help="Retries per row for transient faults.")]
TimeoutOpt = Annotated[float, typer.Option(
    min=0.1, metavar="SECONDS", rich_help_panel=CONNECTING, help="Seconds to wait for each answer.")]
SandboxOpt = Annotated[bool, typer.Option(
    "--sandbox", rich_help_panel=CONNECTING,
    help="Upload to a built-in local CloudAgent (demo account) instead: try leadpush without an account.")]
DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", rich_help_panel=CONNECTING, help="Check only, send nothing: the same as validate.")]
JournalOpt = Annotated[Path | None, typer.Option(
    metavar="FILE", rich_help_panel=UNATTENDED,
    help="Journal of finished rows; by default <input name>.leadpush-journal.jsonl beside the input.")]
NoJournalOpt = Annotated[bool, typer.Option(
    "--no-journal", rich_help_panel=UNATTENDED, help="Keep no journal (no --resume after a crash).")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", rich_help_panel=UNATTENDED,
    help="Skip rows an earlier run of this file added (from the journal); send the rest.")]
LimitOpt = Annotated[int | None, typer.Option(
    min=1, metavar="N", rich_help_panel=UNATTENDED,
    help="A canary run: send only the first N valid rows (the rest aborted, 'not sent: --limit'); "
         "--resume sends the rest.")]
RestartOpt = Annotated[bool, typer.Option(
    "--restart", rich_help_panel=UNATTENDED, help="Start over although an earlier run of this file did not finish.")]
ResendUnknownOpt = Annotated[bool, typer.Option(
    "--resend-unknown", rich_help_panel=UNATTENDED,
    help="With --resume (implied): also resend rows whose outcome is unknown although checkDuplicate is FALSE, "
         "as well as such rows of a failures file fed back as input (check CloudAgent first: a resend may add "
         "them twice).")]
NotifyOpt = Annotated[list[str] | None, typer.Option(
    "--notify", metavar="URL", rich_help_panel=UNATTENDED,
    help="At the end, POST the summary to this webhook, or e-mail it to mailto:ADDRESS via \\[smtp] "
         "(repeatable; replaces the profile's notify list).")]
HeartbeatOpt = Annotated[str | None, typer.Option(
    metavar="URL", rich_help_panel=UNATTENDED,
    help="Ping a monitor: GET URL/start at the start, URL on exit 0, URL/fail otherwise.")]
FolderArg = Annotated[Path, typer.Argument(
    metavar="DIR", show_default=False, help="The inbox folder lead files are dropped in.")]
PatternOpt = Annotated[str | None, typer.Option(
    metavar="GLOB", rich_help_panel=UNATTENDED,
    help="Load only files whose name matches, such as 'leads_*.csv'; by default every lead file extension.")]
DoneOpt = Annotated[Path | None, typer.Option(
    "--done", metavar="DIR", rich_help_panel=UNATTENDED,
    help="Where loaded files go, with their results and failures files; by default DIR/done.")]
FailedOpt = Annotated[Path | None, typer.Option(
    "--failed", metavar="DIR", rich_help_panel=UNATTENDED,
    help="Where unreadable files go, with an .error.txt; by default DIR/failed.")]
SettleOpt = Annotated[float, typer.Option(
    min=0.0, metavar="SECONDS", rich_help_panel=UNATTENDED,
    help="Leave alone a file changed within this many seconds (still being written).")]
SuppressOpt = Annotated[list[Path] | None, typer.Option(
    "--suppress", metavar="FILE", rich_help_panel=ROWS,
    help="Do-not-call list (CSV, TXT or XLSX; repeatable): its numbers are never sent.")]
SkipLoadedWithinOpt = Annotated[str | None, typer.Option(
    metavar="30d", rich_help_panel=UNATTENDED,
    help="Skip numbers the run ledger saw added this lately (such as 30d, 12h, 2w).")]
SkipScopeOpt = Annotated[SkipScope, typer.Option(
    rich_help_panel=UNATTENDED, help="Where --skip-loaded-within looks: the row's campaign, or the whole account.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking (for cron).")]


@dataclass
class ProfileArgs:
    profile: str | None = None
    config: Path | None = None


@dataclass
class LeadFileArgs:
    """The options of every command that reads a lead file, as the command line gave them."""

    file: str
    input_format: InputFormat | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    map_options: list[str] | None = None
    campaign: str | None = None
    skill: str | None = None
    agent_id: str | None = None
    priority: str | None = None
    expiry_date: str | None = None
    action: str | None = None
    check_duplicate: bool = DEFAULTS["check_duplicate"]
    region: str | None = None
    phone_format: PhoneFormat = DEFAULTS["phone_format"]
    dayfirst: bool = False
    monthfirst: bool = False
    allow_past_expiry: bool = False
    campaign_type: CampaignType = DEFAULTS["campaign_type"]
    keep_duplicates: bool = False
    table: TableMode = TableMode.AUTO
    json_summary: bool = False
    quiet: bool = False
    results: Path | None = None
    failures: Path | None = None
    failures_format: FailuresFormat | None = None
    no_failures: bool = False
    log_file: Path | None = None
    suppress: list[Path] | None = None


@dataclass
class WatchArgs:
    """Who hears how the run went."""

    notify: list[str] | None = None
    heartbeat: str | None = None


@dataclass
class ConnectionArgs:
    base_url: str = DEFAULTS["base_url"]
    username: str | None = None


@dataclass
class UploadArgs:
    rate: str = DEFAULTS["rate"]
    workers: int = DEFAULTS["workers"]
    retries: int = DEFAULTS["retries"]
    timeout: float = DEFAULTS["timeout"]
    sandbox: bool = False
    journal: JournalChoice | None = None
    skip_loaded_within: str | None = None
    skip_scope: SkipScope = DEFAULTS["skip_scope"]
    limit: int | None = None


# ---------------------------------------------------------------------------- wiring

def _env(ctx: typer.Context) -> Environment:
    env = ctx.find_root().obj
    if not isinstance(env, Environment):  # called without main() (a test runner): the streams it set up
        env = ctx.find_root().obj = Environment.from_process()
    return env


def _resolve(ctx: typer.Context, env: Environment, p: ProfileArgs, *groups: Any) -> tuple[RunSettings, Any]:
    """Every setting, flag > environment > profile > default, checked; and the profile it used."""
    profile = load_profile(p.profile, p.config, explicit_path=p.config is not None)
    for warning in profile.warnings:
        env.say(f"Warning: {warning}")
    given = {}
    for group in groups:
        for name, value in asdict(group).items():
            if name in SETTING_NAMES:
                given[name] = (value, _source(ctx, name))
    return resolve(given, profile), profile


def _source(ctx: typer.Context, name: str) -> str:
    how = getattr(ctx.get_parameter_source(name), "name", "DEFAULT")
    if how == "COMMANDLINE":
        return Source.FLAG.value
    if how == "ENVIRONMENT":
        return f"{Source.ENVIRONMENT.value} ({ENV_VARS.get(name, '?')})"
    return Source.DEFAULT.value


def _input_options(a: LeadFileArgs, s: RunSettings, today: dt.date, *, split: bool = False) -> jobs.InputOptions:
    user_map = user_map_of(s.map_options)
    checks = CheckSettings(
        defaults=RowDefaults(campaign=s.campaign, skill=s.skill, agent_id=s.agent_id, priority=s.priority,
                             expiry_date=s.expiry_date, action=s.action, check_duplicate=s.check_duplicate),
        region=s.region, phone_format=s.phone_format,
        date_order="day" if s.dayfirst else "month" if s.monthfirst else None,
        allow_past_expiry=s.allow_past_expiry, campaign_type=s.campaign_type,
        keep_duplicates=s.keep_duplicates, user_map=user_map,
        map_labels={normalize(h): h for h in s.map_options})
    return jobs.InputOptions(
        file=a.file, fmt=a.input_format, encoding=s.encoding, delimiter=s.delimiter, sheet=s.sheet,
        header_row=s.header_row, checks=checks,
        # --json lists the problem rows (as the table would), --quiet nothing.
        table=TableMode.PROBLEMS if a.json_summary else TableMode.NONE if a.quiet else a.table,
        results=a.results, failures=a.failures, failures_format=a.failures_format,
        write_failures=not a.no_failures, log_file=a.log_file, split=split,
        suppression=load_suppression(s.suppress or [], region=s.region, today=today,
                                     date_order=checks.date_order))


def _stdin(env: Environment, opts: jobs.InputOptions) -> Any:
    return env.stdin if opts.file == "-" else None


def _progress(env: Environment, a: LeadFileArgs, label: str) -> Any:
    return report.progress_bar(env.stderr, label, enabled=env.stderr_isatty and not a.json_summary and not a.quiet)


def _finish(env: Environment, summary: report.RunSummary, a: LeadFileArgs) -> ExitCode:
    """Print the run's outcome on stdout, and return its exit code."""
    if a.json_summary:
        print(report.safe_json(report.summary_object(summary)), file=env.stdout)
    elif a.quiet:
        print(printable(jobs.one_line(summary)), file=env.stdout)
    else:
        out = report.make_console(env.stdout)
        report.print_table(out, summary)
        report.print_summary(out, summary)
    if summary.stop_reason:
        env.say(f"Stopped: {summary.stop_reason}")
    return summary.exit_code


def _run(env: Environment, body: Callable[[], ExitCode]) -> None:
    """The one place where errors and outcomes become exit codes."""
    try:
        code = body()
    except LeadpushError as e:
        env.say(f"Error: {e}")
        code = e.exit_code
    except KeyboardInterrupt as e:
        env.say("Terminated." if isinstance(e, Terminated) else "Interrupted.")
        code = ExitCode.TERMINATED if isinstance(e, Terminated) else ExitCode.INTERRUPTED
    except typer.Exit:
        raise
    except Exception as e:  # a bug of leadpush's: its own exit code, one line, the traceback on request
        env.say(internal_error(e, debug=os.environ.get("LEADPUSH_DEBUG") == "1"))
        code = ExitCode.INTERNAL
    raise typer.Exit(int(code))


def _watched(env: Environment, s: RunSettings, profile: Any, a: LeadFileArgs, command: str,
             job: Callable[[Any], ExitCode], *, start: bool = True) -> ExitCode:
    """Run a job between its heartbeat pings, and send its notifications after it, whatever its outcome.
    Without `start`, the job sends the start ping itself (the inbox: once it holds its lock)."""
    if not s.notify and not s.heartbeat:
        return job(None)
    import requests  # noqa: PLC0415

    from .notify import RunReport, Watch  # noqa: PLC0415

    watch = Watch(heartbeat=s.heartbeat, notify=s.notify, smtp_table=profile.smtp, env=os.environ,
                  session_factory=requests.Session, warn=env.say, where=str(profile.path or default_config_path()))
    watch.log_file = a.log_file
    if start:
        watch.started()
    code, error = ExitCode.USAGE, None
    try:
        code = job(watch)
        return code
    except LeadpushError as e:
        code, error = e.exit_code, str(e)
        raise
    except KeyboardInterrupt:
        code, error = ExitCode.INTERRUPTED, "interrupted"
        raise
    finally:
        fallback = RunReport({"command": command, "file": a.file, "exit_code": int(code), "error": error},
                             f"leadpush {command} {a.file}: {error or 'stopped'}; exit {int(code)}")
        watch.finished(int(code), fallback)


def _api_key(env: Environment, profile: Any, *, use_prompt: bool) -> Setting | None:
    key = resolve_api_key(profile, os.environ)
    if key is None and use_prompt:
        key = Setting(typer.prompt("CloudAgent API key", hide_input=True), Source.PROMPT.value)
    return key


def _install_interrupt(env: Environment, event: Any) -> Callable[[], None]:
    """First Ctrl-C or SIGTERM: stop dispatching and finish in-flight rows. A second: quit now."""
    return _sending()[1].install_interrupt(event, env.say)


# ---------------------------------------------------------------------------- the jobs

def _sending() -> tuple[ModuleType, ModuleType]:
    """The modules that talk to CloudAgent, imported on first use: they bring in requests (about
    0.1 s), which `validate` — it never sends — does not pay for."""
    from . import cloudagent, upload  # noqa: PLC0415

    return cloudagent, upload


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def _validate(env: Environment, a: LeadFileArgs, s: RunSettings, *, split: bool = False) -> ExitCode:
    opts = _input_options(a, s, env.today(), split=split)
    _suppression_notes(env, opts, a)
    with contextlib.ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():  # `kill` unwinds: no temporary left
            for signum in (signal.SIGTERM, signal.SIGHUP):
                stack.callback(signal.signal, signum, signal.signal(signum, _raise_terminated))
        return _validate_file(env, a, opts)


def _validate_file(env: Environment, a: LeadFileArgs, opts: jobs.InputOptions) -> ExitCode:
    with jobs.open_input(opts, stdin=_stdin(env, opts)) as lead_file:
        for note in jobs.reading_notes(lead_file):
            env.say(f"Note: {note}")
        with _progress(env, a, "Checking") as progress:
            summary = jobs.validate(opts, lead_file, today=env.today(), progress=progress)
    return _finish(env, summary, a)


def _suppression_notes(env: Environment, opts: jobs.InputOptions, a: LeadFileArgs) -> None:
    for note in opts.suppression.notes() if opts.suppression and not a.quiet else []:
        env.say(f"Note: {note}")


def _upload(env: Environment, a: LeadFileArgs, u: UploadArgs, s: RunSettings, profile: Any,
            watch: Any = None) -> ExitCode:
    cloudagent, sending = _sending()
    opts = _input_options(a, s, env.today())
    _suppression_notes(env, opts, a)
    rate = parse_rate(s.rate)
    choice = u.journal or JournalChoice()
    with contextlib.ExitStack() as stack:
        if u.sandbox:
            conn, cache_dir, where = sending.demo_sandbox(stack)
            if not a.quiet:
                env.say(where)
        else:
            use_prompt = env.stdin_isatty and opts.file != "-"
            conn = connection(s, _api_key(env, profile, use_prompt=use_prompt), os.environ)
            cache_dir = default_cache_dir()
        opts.secrets = conn.secrets
        if watch:
            watch.add_secrets(conn.secrets)
        run = sending.prepare_run(stack, opts, choice, cache_dir=cache_dir, sandbox=u.sandbox,
                                  stdin=_stdin(env, opts), conn=conn)
        for note in run.notes:
            env.say(f"Note: {note}")
        run_log = sending.open_run_log(stack, run, conn, profile.name, sandbox=u.sandbox,
                                       skip_loaded_within=s.skip_loaded_within)
        settings = sending.UploadSettings(conn=conn, rate=rate, cache_dir=cache_dir, workers=s.workers,
                                  retries=s.retries, timeout=s.timeout,
                                  skip_loaded_within=parse_window(s.skip_loaded_within) if s.skip_loaded_within
                                  else None, skip_scope=s.skip_scope, limit=u.limit,
                                  resend_unknown=bool(u.journal and u.journal.resend_unknown))
        if u.limit and run.journal is None:
            env.say(f"Note: no journal: --resume cannot send the rows after the first {u.limit}")
        session = stack.enter_context(cloudagent.make_session(settings.workers, conn.base_url))
        interrupt = sending.Interrupt()
        stack.callback(_install_interrupt(env, interrupt))
        progress = stack.enter_context(_progress(env, a, "Uploading"))
        summary = sending.upload(opts, settings, run.lead_file, today=env.today(), session=session,
                         clock=time.monotonic, wall_clock=time.time, sleep=time.sleep,
                         progress=progress, interrupt=interrupt, journal=run.journal, resume=run.resume,
                         ledger=run_log)
    if watch:
        from .notify import RunReport  # noqa: PLC0415

        watch.report = RunReport(report.summary_object(summary), f"leadpush upload {jobs.one_line(summary)}",
                                 [summary.failures_file] if summary.failures_file else [])
    return _finish(env, summary, a)


def _inbox(env: Environment, a: LeadFileArgs, u: UploadArgs, s: RunSettings, profile: Any,
           where: InboxSettings, watch: Any = None) -> ExitCode:
    from .inbox import run_inbox, upload_with  # noqa: PLC0415

    cloudagent, sending = _sending()
    check_folder(where.folder)
    opts = _input_options(a, s, env.today())
    _suppression_notes(env, opts, a)
    rate = parse_rate(s.rate)
    with contextlib.ExitStack() as stack:
        if u.sandbox:
            conn, cache_dir, line = sending.demo_sandbox(stack)
            if not a.quiet:
                env.say(line)
        else:
            conn = connection(s, _api_key(env, profile, use_prompt=False), os.environ)
            cache_dir = default_cache_dir()
        opts.secrets = conn.secrets
        if watch:
            watch.add_secrets(conn.secrets)
        settings = sending.UploadSettings(
            conn=conn, rate=rate, cache_dir=cache_dir, workers=s.workers, retries=s.retries, timeout=s.timeout,
            skip_loaded_within=parse_window(s.skip_loaded_within) if s.skip_loaded_within else None,
            skip_scope=s.skip_scope)
        session = stack.enter_context(cloudagent.make_session(settings.workers, conn.base_url))
        interrupt = sending.Interrupt()
        stack.callback(_install_interrupt(env, interrupt))
        progress = stack.enter_context(report.progress_bar(env.stderr, "", enabled=False))
        upload_one = upload_with(session, settings, today=env.today(), progress=progress, interrupt=interrupt,
                                 clock=time.monotonic, wall_clock=time.time, sleep=time.sleep, sandbox=u.sandbox,
                                 profile=profile.name, skip_loaded_within=s.skip_loaded_within)
        result = run_inbox(where, opts, upload_one, now=time.time, interrupted=interrupt,
                           on_lock=watch.started if watch else None)
    if result.busy:
        env.say(f"Nothing to do: {result.busy}")
        if watch:
            watch.silent = True  # not a run: no ping, no notification (the running one reports)
    if watch:
        from .notify import RunReport  # noqa: PLC0415

        summary = result.as_dict()
        watch.report = RunReport(summary, f"leadpush {result.total_line()}", summary["failures_files"])
    if a.json_summary:
        print(json.dumps(result.as_dict(), ensure_ascii=False), file=env.stdout)
    else:
        if not a.quiet:
            for f in result.files:
                print(f.line(), file=env.stdout)
        print(result.total_line(), file=env.stdout)
    return result.exit_code


# ---------------------------------------------------------------------------- the commands

@app.command()
def validate(
    ctx: typer.Context,
    file: FileArg,
    input_format: FormatOpt = None, encoding: EncodingOpt = None, delimiter: DelimiterOpt = None,
    sheet: SheetOpt = None, header_row: HeaderRowOpt = None, map_options: MapOpt = None,
    campaign: CampaignOpt = None, skill: SkillOpt = None, agent_id: AgentIdOpt = None,
    priority: PriorityOpt = None, expiry_date: ExpiryDateOpt = None, action: ActionOpt = None,
    check_duplicate: CheckDuplicateOpt = DEFAULTS["check_duplicate"], region: RegionOpt = None,
    phone_format: PhoneFormatOpt = DEFAULTS["phone_format"], dayfirst: DayFirstOpt = False,
    monthfirst: MonthFirstOpt = False, allow_past_expiry: AllowPastExpiryOpt = False,
    campaign_type: CampaignTypeOpt = DEFAULTS["campaign_type"], keep_duplicates: KeepDuplicatesOpt = False,
    table: TableOpt = TableMode.AUTO, json_summary: JsonOpt = False, quiet: QuietOpt = False,
    results: ResultsOpt = None, failures: FailuresOpt = None, failures_format: FailuresFormatOpt = None,
    no_failures: NoFailuresOpt = False, log_file: LogFileOpt = None, split: SplitOpt = False,
    suppress: SuppressOpt = None,
    profile: ProfileOpt = None, config: ConfigOpt = None,
) -> None:
    """Check every row of a lead file locally (a dry run): nothing is sent."""
    env = _env(ctx)
    a = LeadFileArgs(
        file=file, input_format=input_format, encoding=encoding, delimiter=delimiter, sheet=sheet,
        header_row=header_row, map_options=map_options, campaign=campaign, skill=skill, agent_id=agent_id,
        priority=priority,
        expiry_date=expiry_date, action=action, check_duplicate=check_duplicate, region=region,
        phone_format=phone_format, dayfirst=dayfirst, monthfirst=monthfirst, allow_past_expiry=allow_past_expiry,
        campaign_type=campaign_type, keep_duplicates=keep_duplicates, table=table, json_summary=json_summary,
        quiet=quiet, results=results, failures=failures, failures_format=failures_format,
        no_failures=no_failures, log_file=log_file, suppress=suppress)

    def body() -> ExitCode:
        s, _ = _resolve(ctx, env, ProfileArgs(profile, config), a)
        return _validate(env, a, s, split=split)
    _run(env, body)


@app.command()
def upload(
    ctx: typer.Context,
    file: FileArg,
    input_format: FormatOpt = None, encoding: EncodingOpt = None, delimiter: DelimiterOpt = None,
    sheet: SheetOpt = None, header_row: HeaderRowOpt = None, map_options: MapOpt = None,
    campaign: CampaignOpt = None, skill: SkillOpt = None, agent_id: AgentIdOpt = None,
    priority: PriorityOpt = None, expiry_date: ExpiryDateOpt = None, action: ActionOpt = None,
    check_duplicate: CheckDuplicateOpt = DEFAULTS["check_duplicate"], region: RegionOpt = None,
    phone_format: PhoneFormatOpt = DEFAULTS["phone_format"], dayfirst: DayFirstOpt = False,
    monthfirst: MonthFirstOpt = False, allow_past_expiry: AllowPastExpiryOpt = False,
    campaign_type: CampaignTypeOpt = DEFAULTS["campaign_type"], keep_duplicates: KeepDuplicatesOpt = False,
    table: TableOpt = TableMode.AUTO, json_summary: JsonOpt = False, quiet: QuietOpt = False,
    results: ResultsOpt = None, failures: FailuresOpt = None, failures_format: FailuresFormatOpt = None,
    no_failures: NoFailuresOpt = False, log_file: LogFileOpt = None, suppress: SuppressOpt = None,
    base_url: BaseUrlOpt = DEFAULTS["base_url"], username: UsernameOpt = None,
    rate: RateOpt = DEFAULTS["rate"], workers: WorkersOpt = DEFAULTS["workers"],
    retries: RetriesOpt = DEFAULTS["retries"], timeout: TimeoutOpt = DEFAULTS["timeout"],
    use_sandbox: SandboxOpt = False, dry_run: DryRunOpt = False,
    journal: JournalOpt = None, no_journal: NoJournalOpt = False, resume: ResumeOpt = False,
    restart: RestartOpt = False, resend_unknown: ResendUnknownOpt = False,
    skip_loaded_within: SkipLoadedWithinOpt = None,
    skip_scope: SkipScopeOpt = DEFAULTS["skip_scope"], limit: LimitOpt = None,
    notify: NotifyOpt = None, heartbeat: HeartbeatOpt = None,
    profile: ProfileOpt = None, config: ConfigOpt = None,
) -> None:
    """Check every row of a lead file, then send each valid row to CloudAgent's Add Campaign Data API."""
    env = _env(ctx)
    a = LeadFileArgs(
        file=file, input_format=input_format, encoding=encoding, delimiter=delimiter, sheet=sheet,
        header_row=header_row, map_options=map_options, campaign=campaign, skill=skill, agent_id=agent_id,
        priority=priority,
        expiry_date=expiry_date, action=action, check_duplicate=check_duplicate, region=region,
        phone_format=phone_format, dayfirst=dayfirst, monthfirst=monthfirst, allow_past_expiry=allow_past_expiry,
        campaign_type=campaign_type, keep_duplicates=keep_duplicates, table=table, json_summary=json_summary,
        quiet=quiet, results=results, failures=failures, failures_format=failures_format,
        no_failures=no_failures, log_file=log_file, suppress=suppress)
    c = ConnectionArgs(base_url=base_url, username=username)
    u = UploadArgs(rate=rate, workers=workers, retries=retries, timeout=timeout, sandbox=use_sandbox,
                   journal=JournalChoice(path=journal, keep=not no_journal, resume=resume, restart=restart,
                                         resend_unknown=resend_unknown),
                   skip_loaded_within=skip_loaded_within, skip_scope=skip_scope, limit=limit)

    def body() -> ExitCode:
        if dry_run:  # the validate job, with the settings validate takes
            s, _ = _resolve(ctx, env, ProfileArgs(profile, config), a)
            return _validate(env, a, s)
        s, loaded = _resolve(ctx, env, ProfileArgs(profile, config), a, c, u, WatchArgs(notify, heartbeat))
        return _watched(env, s, loaded, a, "upload", lambda watch: _upload(env, a, u, s, loaded, watch))
    _run(env, body)


@app.command()
def inbox(
    ctx: typer.Context,
    folder: FolderArg,
    pattern: PatternOpt = None, done: DoneOpt = None, failed: FailedOpt = None, settle: SettleOpt = 60.0,
    input_format: FormatOpt = None, encoding: EncodingOpt = None, delimiter: DelimiterOpt = None,
    sheet: SheetOpt = None, header_row: HeaderRowOpt = None, map_options: MapOpt = None,
    campaign: CampaignOpt = None, skill: SkillOpt = None, agent_id: AgentIdOpt = None,
    priority: PriorityOpt = None, expiry_date: ExpiryDateOpt = None, action: ActionOpt = None,
    check_duplicate: CheckDuplicateOpt = DEFAULTS["check_duplicate"], region: RegionOpt = None,
    phone_format: PhoneFormatOpt = DEFAULTS["phone_format"], dayfirst: DayFirstOpt = False,
    monthfirst: MonthFirstOpt = False, allow_past_expiry: AllowPastExpiryOpt = False,
    campaign_type: CampaignTypeOpt = DEFAULTS["campaign_type"], keep_duplicates: KeepDuplicatesOpt = False,
    json_summary: JsonOpt = False, quiet: QuietOpt = False, log_file: LogFileOpt = None,
    suppress: SuppressOpt = None,
    base_url: BaseUrlOpt = DEFAULTS["base_url"], username: UsernameOpt = None,
    rate: RateOpt = DEFAULTS["rate"], workers: WorkersOpt = DEFAULTS["workers"],
    retries: RetriesOpt = DEFAULTS["retries"], timeout: TimeoutOpt = DEFAULTS["timeout"],
    use_sandbox: SandboxOpt = False,
    notify: NotifyOpt = None, heartbeat: HeartbeatOpt = None,
    profile: ProfileOpt = None, config: ConfigOpt = None,
) -> None:
    """Upload every lead file waiting in a folder, oldest first, once; file each under done/ or failed/."""
    env = _env(ctx)
    a = LeadFileArgs(
        file="", input_format=input_format, encoding=encoding, delimiter=delimiter, sheet=sheet,
        header_row=header_row, map_options=map_options, campaign=campaign, skill=skill, agent_id=agent_id,
        priority=priority,
        expiry_date=expiry_date, action=action, check_duplicate=check_duplicate, region=region,
        phone_format=phone_format, dayfirst=dayfirst, monthfirst=monthfirst, allow_past_expiry=allow_past_expiry,
        campaign_type=campaign_type, keep_duplicates=keep_duplicates, table=TableMode.NONE,
        json_summary=json_summary, quiet=quiet, log_file=log_file, suppress=suppress)
    c = ConnectionArgs(base_url=base_url, username=username)
    u = UploadArgs(rate=rate, workers=workers, retries=retries, timeout=timeout, sandbox=use_sandbox)
    where = InboxSettings(folder=folder, pattern=pattern, done=done, failed=failed, settle=settle)

    def body() -> ExitCode:
        s, loaded = _resolve(ctx, env, ProfileArgs(profile, config), a, c, u, WatchArgs(notify, heartbeat))
        a.file = str(folder)
        return _watched(env, s, loaded, a, "inbox", lambda watch: _inbox(env, a, u, s, loaded, where, watch),
                        start=False)
    _run(env, body)


@app.command()
def template(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="PATH",
        help="File to write (never over an existing one); by default leads_template.xlsx "
             "(.csv for --format csv).")] = None,
    template_format: Annotated[TemplateFormat | None, typer.Option(
        "--format", help="xlsx (the phone column formatted as Text) or csv; by default from -o's extension.")] = None,
    profile: ProfileOpt = None, config: ConfigOpt = None,
) -> None:
    """Write an empty lead file with the headers a profile expects and one example row."""
    env = _env(ctx)

    def body() -> ExitCode:
        s, _ = _resolve(ctx, env, ProfileArgs(profile, config))
        fmt = template_format_for(output or Path("leads_template.xlsx"), template_format)
        path = output or Path(f"leads_template.{fmt.value}")
        headers = write_template(path, fmt, s, today=env.today())
        print(f"Wrote {path}: {', '.join(headers)}", file=env.stdout)
        return ExitCode.OK
    _run(env, body)


@app.command()
def history(
    ctx: typer.Context,
    run: Annotated[int | None, typer.Argument(metavar="RUN", show_default=False,
                                              help="A run's id: show its counts and rows.")] = None,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="How many recent runs to list.")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    results: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Write the run's rows to this file (.csv, or .jsonl for JSON Lines).")] = None,
) -> None:
    """List recent upload and undo runs from the run ledger, or show one run."""
    env = _env(ctx)

    def body() -> ExitCode:
        with contextlib.closing(open_ledger()) as ledger:
            if run is None:
                runs = ledger.runs(limit)
                if json_out:
                    print(json.dumps([run_object(r) for r in runs], ensure_ascii=False), file=env.stdout)
                else:
                    report.print_runs(report.make_console(env.stdout), runs)
                return ExitCode.OK
            found = ledger.run(run)
            if found is None:
                raise ConfigError(f"no run {run} in the ledger {ledger.path}")
            leads = ledger.leads(run)
        if results:
            write_leads(results, leads)
        if json_out:
            print(json.dumps(run_object(found, leads), ensure_ascii=False), file=env.stdout)
        else:
            report.print_run(report.make_console(env.stdout), found, leads)
        return ExitCode.OK
    _run(env, body)


@app.command()
def undo(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="RUN", show_default=False,
                                          help="The run to undo: its id in the ledger (leadpush history), or "
                                               "its journal file.")],
    yes: YesOpt = False,
    base_url: BaseUrlOpt = DEFAULTS["base_url"], username: UsernameOpt = None,
    rate: RateOpt = DEFAULTS["rate"], workers: WorkersOpt = DEFAULTS["workers"],
    retries: RetriesOpt = DEFAULTS["retries"], timeout: TimeoutOpt = DEFAULTS["timeout"],
    journal: Annotated[Path | None, typer.Option(
        metavar="FILE", rich_help_panel=UNATTENDED, help="The undo's journal; by default beside its source.")] = None,
    resume: Annotated[bool, typer.Option("--resume", rich_help_panel=UNATTENDED,
                                         help="Continue an undo that stopped.")] = False,
    restart: Annotated[bool, typer.Option("--restart", rich_help_panel=UNATTENDED,
                                          help="Start over although an earlier undo did not finish.")] = False,
    results: ResultsOpt = None, json_summary: JsonOpt = False, quiet: QuietOpt = False,
    profile: ProfileOpt = None, config: ConfigOpt = None,
    include_probable: Annotated[bool, typer.Option(
        "--include-probable", help="Also delete leads found already there after the run's own attempt "
                                   "(perhaps added by it, perhaps there before).")] = False,
) -> None:
    """Delete from CloudAgent exactly the leads a run added (never those it found already there)."""
    env = _env(ctx)
    out = LeadFileArgs(file=target, json_summary=json_summary, quiet=quiet, results=results)
    c = ConnectionArgs(base_url=base_url, username=username)
    u = UploadArgs(rate=rate, workers=workers, retries=retries, timeout=timeout,
                   journal=JournalChoice(path=journal, resume=resume, restart=restart))

    def body() -> ExitCode:
        cloudagent, sending = _sending()
        from . import undo as undoing  # noqa: PLC0415 (sends: imported with the other sending modules)

        s, loaded = _resolve(ctx, env, ProfileArgs(profile, config), c, u)
        conn = connection(s, _api_key(env, loaded, use_prompt=env.stdin_isatty), os.environ)
        rate_ = parse_rate(s.rate)
        with contextlib.ExitStack() as stack:
            ledger = stack.enter_context(contextlib.closing(open_ledger()))
            ledger.check_writable()  # a locked ledger: said before the plan is shown and confirmed
            plan = undoing.plan_undo(target, ledger, conn, include_probable=include_probable)
            if not quiet or not yes:
                env.say(plan.describe())
            if not plan.leads:
                env.say("Nothing to delete.")
                return ExitCode.OK
            if not yes:
                if not env.stdin_isatty:
                    raise ConfigError("undo asks before deleting; pass --yes to run it without a terminal")
                if not typer.confirm(f"Delete these {len(plan.leads)} leads from CloudAgent?", err=True):
                    env.say("Nothing deleted.")
                    return ExitCode.OK
            journal_, state, note = undoing.open_undo_journal(stack, plan, u.journal or JournalChoice())
            if note:
                env.say(f"Note: {note}")
            settings = sending.UploadSettings(conn=conn, rate=rate_, cache_dir=default_cache_dir(),
                                              workers=s.workers, retries=s.retries, timeout=s.timeout)
            run_log = undoing.RunLog(ledger, "undo", conn.base_url, conn.username, loaded.name, plan.source,
                                     undo_of=plan.undo_of)
            session = stack.enter_context(cloudagent.make_session(settings.workers, conn.base_url))
            interrupt = sending.Interrupt()
            stack.callback(_install_interrupt(env, interrupt))
            progress = stack.enter_context(_progress(env, out, "Deleting"))
            summary = undoing.undo(plan, settings, session=session, clock=time.monotonic, wall_clock=time.time,
                                   sleep=time.sleep, progress=progress, run_log=run_log, journal=journal_,
                                   resume=state, interrupt=interrupt,
                                   output=undoing.UndoOutput(results=results, table=TableMode.NONE
                                                             if json_summary or quiet else TableMode.AUTO))
        return _finish(env, summary, out)
    _run(env, body)


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    base_url: BaseUrlOpt = DEFAULTS["base_url"], username: UsernameOpt = None,
    profile: ProfileOpt = None, config: ConfigOpt = None,
) -> None:
    """Print the effective settings and where each came from (secrets masked)."""
    env = _env(ctx)

    def body() -> ExitCode:
        s, loaded = _resolve(ctx, env, ProfileArgs(profile, config), ConnectionArgs(base_url, username))
        # Each by the name a profile gives it (`map`, not the field's name `map_options`).
        as_written = {field: key for key, field in PROFILE_NAMES.items()}
        shown = {as_written.get(name, name): Setting(getattr(s, name), s.source(name)) for name in SETTING_NAMES}
        shown["api_key"] = shown_api_key(loaded, os.environ)
        for name, value in loaded.smtp.items():  # the [smtp] table: a password is only ever named (password_env)
            shown[f"smtp.{name}"] = Setting(value, f"[smtp] ({loaded.path})")
        path = config or default_config_path()
        print(f"config file: {path}{'' if Path(path).exists() else ' (none)'}", file=env.stdout)
        print(f"profile: {loaded.name or '(none)'}", file=env.stdout)
        width = max(len(n) for n in shown)
        for name, setting in shown.items():
            print(f"{name:<{width}}  {masked(name, setting.value):<40}  {setting.source}", file=env.stdout)
        return ExitCode.OK
    _run(env, body)


@auth_app.command("check")
def auth_check(
    ctx: typer.Context,
    base_url: BaseUrlOpt = DEFAULTS["base_url"], username: UsernameOpt = None,
    profile: ProfileOpt = None, config: ConfigOpt = None,
) -> None:
    """Check user, API key and token-auth mode; reuses a still-valid cached token (no generation)."""
    env = _env(ctx)

    def body() -> ExitCode:
        cloudagent, _ = _sending()

        s, loaded = _resolve(ctx, env, ProfileArgs(profile, config), ConnectionArgs(base_url, username))
        conn = connection(s, _api_key(env, loaded, use_prompt=env.stdin_isatty), os.environ)
        with cloudagent.make_session(1, conn.base_url) as session:
            result = cloudagent.auth_check(session, conn, default_cache_dir(), clock=time.time)
        print(result, file=env.stdout)
        return ExitCode.OK
    _run(env, body)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@app.command()
def sandbox(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        metavar="PORT", min=0, max=65535, help="Port to listen on (0 = any free port).")] = 8765,
    config: Annotated[Path | None, typer.Option(
        metavar="FILE", help="TOML file of accounts, campaigns and numbers; by default a demo account.")] = None,
    token_ttl: Annotated[float, typer.Option(
        metavar="SECONDS", min=1.0, max=31_536_000.0, help="Token lifetime in seconds.")] = 3600.0,
    token_cap: Annotated[int, typer.Option(
        metavar="N", min=0, help="Token generations per account per hour (0 = no cap).")] = 10,
    rate_limit: Annotated[str, typer.Option(
        metavar="N/min", help="Add Campaign Data requests per account, such as 100/min (0 = no limit).")] = "100/min",
    latency_ms: Annotated[float, typer.Option(
        metavar="MS", min=0.0, max=600_000.0, help="Delay before each Add Campaign Data answer.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(
        metavar="MS", min=0.0, max=600_000.0, help="Random +/- spread around --latency-ms.")] = 0.0,
    fail_rate: Annotated[float, typer.Option(
        metavar="SHARE", help="Share of requests answered 503 (HTML), lead not stored.", min=0.0, max=1.0)] = 0.0,
    drop_rate: Annotated[float, typer.Option(
        metavar="SHARE", help="Share of requests whose lead is stored but the connection closed unanswered.",
        min=0.0, max=1.0)] = 0.0,
    seed: Annotated[int | None, typer.Option(
        metavar="N", help="Seed for the faults and jitter, to reproduce a run.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No line per request.")] = False,
) -> None:
    """Serve a local CloudAgent (token, Add and Delete Campaign Data APIs) until Ctrl-C."""
    env = _env(ctx)

    def body() -> ExitCode:
        limit = parse_rate(rate_limit, option="--rate-limit", allow_zero=True)
        try:
            server = Sandbox(load_config(config), source=str(config or "built-in demo"), host=host, port=port,
                             token_ttl=token_ttl, token_cap=token_cap,
                             rate_limit=0 if limit is None else max(1, round(limit.per_minute)),
                             latency_ms=latency_ms, jitter_ms=jitter_ms, fail_rate=fail_rate,
                             drop_rate=drop_rate, seed=seed, log=None if quiet else env.say)
        except OSError as e:  # the address is taken, or not this machine's
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
        print(f"CloudAgent sandbox listening on {server.base_url}", file=env.stdout, flush=True)
        if config is None:
            print(f"Demo account: user {DEMO_USER}, API key {DEMO_KEY}; "
                  f"campaigns: {', '.join(server.campaign_names())}", file=env.stdout)
            print(f"Try: LEADPUSH_API_KEY={DEMO_KEY} leadpush upload sample_data/leads.csv "
                  f"--base-url {server.base_url} --username {DEMO_USER}", file=env.stdout, flush=True)
        env.say("Press Ctrl-C to stop.")
        signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops it as cleanly as Ctrl-C
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            env.say("Sandbox stopped.")
        finally:
            server.close()
        return ExitCode.OK
    _run(env, body)


def _version(value: bool) -> None:
    if value:
        print(f"leadpush {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Load leads from CSV, JSON and spreadsheet files into Ozonetel CloudAgent campaigns."""
    _env(ctx)


def main() -> None:
    app(obj=Environment.from_process())
