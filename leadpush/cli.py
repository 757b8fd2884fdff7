"""The `leadpush` command line: Typer glue only; the work is done in the plain modules."""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import __version__, jobs, report
from .checks import CheckSettings, RowDefaults
from .mapping import parse_map_options
from .outcomes import ConfigError, ExitCode, LeadpushError
from .settings import DEFAULTS, PROFILE_KEYS, Setting, load_profile, masked, resolve, resolve_api_key

app = typer.Typer(
    name="leadpush", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Load leads from CSV, JSON and spreadsheet files into Ozonetel CloudAgent campaigns.")
config_app = typer.Typer(no_args_is_help=True, help="Show leadpush's effective settings.")
auth_app = typer.Typer(no_args_is_help=True, help="Check the CloudAgent credentials.")
app.add_typer(config_app, name="config")
app.add_typer(auth_app, name="auth")


class TableChoice(str, Enum):
    auto = "auto"
    all = "all"
    problems = "problems"
    none = "none"


class PhoneFormat(str, Enum):
    as_is = "as-is"
    e164 = "e164"
    national = "national"


class CampaignType(str, Enum):
    any = "any"
    agent_wise = "agent-wise"
    skill_wise = "skill-wise"


class InputFormat(str, Enum):
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    xlsx = "xlsx"


READING = "Reading the file"
ROWS = "Row defaults and checks"
OUTPUT = "Output"
CONNECTING = "Connecting to CloudAgent"
UNATTENDED = "Unattended runs"
ENV_VARS = {"base_url": "LEADPUSH_BASE_URL", "username": "LEADPUSH_USERNAME"}


def _profile_options(
    ctx: typer.Context,
    profile: Annotated[Optional[str], typer.Option(
        envvar="LEADPUSH_PROFILE", rich_help_panel=UNATTENDED,
        help="Take settings from [profiles.NAME] of the config file (flags and environment still win).",
    )] = None,
    config: Annotated[Optional[Path], typer.Option(
        envvar="LEADPUSH_CONFIG", rich_help_panel=UNATTENDED,
        help="Config file; by default config.toml in the user config folder (~/.config/leadpush).",
    )] = None,
) -> None:
    """Holds the options that choose a config profile (see `_with_options`)."""


def _lead_file_options(
    file: Annotated[str, typer.Argument(help="Lead file (.csv .tsv .txt .json .jsonl .xlsx), or - for stdin.",
                                        show_default=False)],
    format: Annotated[Optional[InputFormat], typer.Option(
        "--format", help="Input format; by default from the extension (needed for odd names and stdin).",
        rich_help_panel=READING)] = None,
    encoding: Annotated[Optional[str], typer.Option(
        help="Text encoding of a CSV file; by default UTF-8, UTF-16 or Windows-1252, detected.",
        rich_help_panel=READING)] = None,
    delimiter: Annotated[Optional[str], typer.Option(
        help="CSV delimiter (one character, or 'tab'); by default sniffed from the header.",
        rich_help_panel=READING)] = None,
    sheet: Annotated[Optional[str], typer.Option(
        help="XLSX sheet to read; by default the first.", rich_help_panel=READING)] = None,
    header_row: Annotated[Optional[int], typer.Option(
        metavar="N", min=1, rich_help_panel=READING,
        help="Line (sheet row) of the header; by default the first row, or the first that names a phone "
             "column below title rows.")] = None,
    map: Annotated[Optional[list[str]], typer.Option(
        "--map", help='Map a column: "Column header=field" (repeatable); "Column header=" leaves it out.',
        rich_help_panel=READING)] = None,
    campaign: Annotated[Optional[str], typer.Option(
        help="Campaign for rows without one.", rich_help_panel=ROWS)] = None,
    skill: Annotated[Optional[str], typer.Option(help="Skill for rows without one.", rich_help_panel=ROWS)] = None,
    agent_id: Annotated[Optional[str], typer.Option(
        help="Agent ID for rows without one.", rich_help_panel=ROWS)] = None,
    priority: Annotated[Optional[str], typer.Option(
        help="Priority (0-99) for rows without one.", rich_help_panel=ROWS)] = None,
    expiry_date: Annotated[Optional[str], typer.Option(
        help="Expiry date (YYYY-MM-DD) for rows without one.", rich_help_panel=ROWS)] = None,
    action: Annotated[Optional[str], typer.Option(
        help="START or STOP the campaign with each row (rows without an action).", rich_help_panel=ROWS)] = None,
    check_duplicate: Annotated[bool, typer.Option(
        "--check-duplicate/--no-check-duplicate",
        help="Ask CloudAgent not to add a number its campaign already has (rows without a value).",
        rich_help_panel=ROWS)] = DEFAULTS["check_duplicate"],
    region: Annotated[Optional[str], typer.Option(
        help="Also require a valid phone number of this region (ISO code such as IN or US).",
        rich_help_panel=ROWS)] = None,
    phone_format: Annotated[PhoneFormat, typer.Option(
        help="Rewrite phone numbers (needs --region).", rich_help_panel=ROWS)] = PhoneFormat(DEFAULTS["phone_format"]),
    dayfirst: Annotated[bool, typer.Option(
        "--dayfirst", help="Read dates like 01/02/2030 as 1 February.", rich_help_panel=ROWS)] = False,
    monthfirst: Annotated[bool, typer.Option(
        "--monthfirst", help="Read dates like 01/02/2030 as 2 January.", rich_help_panel=ROWS)] = False,
    allow_past_expiry: Annotated[bool, typer.Option(
        "--allow-past-expiry", help="Send rows whose expiry date has passed.", rich_help_panel=ROWS)] = False,
    campaign_type: Annotated[CampaignType, typer.Option(
        help="agent-wise requires an agent ID on every row, skill-wise a skill.",
        rich_help_panel=ROWS)] = CampaignType(DEFAULTS["campaign_type"]),
    keep_duplicates: Annotated[bool, typer.Option(
        "--keep-duplicates", help="Send repeated (campaign, phone) rows instead of skipping them.",
        rich_help_panel=ROWS)] = False,
    table: Annotated[TableChoice, typer.Option(
        help="Rows in the table: auto = all up to 200 rows, else only problems.",
        rich_help_panel=OUTPUT)] = TableChoice.auto,
    json_summary: Annotated[bool, typer.Option(
        "--json", help="Print one JSON summary object on stdout instead of the table and summary.",
        rich_help_panel=OUTPUT)] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only errors and a one-line summary.", rich_help_panel=OUTPUT)] = False,
    results: Annotated[Optional[Path], typer.Option(
        help="Write every row's outcome to this file (.csv, or .jsonl for JSON Lines).",
        rich_help_panel=OUTPUT)] = None,
    failures: Annotated[Optional[Path], typer.Option(
        help="Failures file; by default <input stem>.failures.csv (.jsonl for JSON input) beside the input.",
        rich_help_panel=OUTPUT)] = None,
    no_failures: Annotated[bool, typer.Option(
        "--no-failures", help="Write no failures file.", rich_help_panel=OUTPUT)] = False,
    log_file: Annotated[Optional[Path], typer.Option(
        help="Append a timestamped line per row, and start and end lines, to this file.",
        rich_help_panel=OUTPUT)] = None,
) -> None:
    """Holds the options every command that reads a lead file takes (see `_with_options`)."""


def _connection_options(
    base_url: Annotated[str, typer.Option(
        envvar="LEADPUSH_BASE_URL", rich_help_panel=CONNECTING,
        help="CloudAgent API base URL (international: https://api.ccaas.ozonetel.com; partners have their own).",
    )] = DEFAULTS["base_url"],
    username: Annotated[Optional[str], typer.Option(
        envvar="LEADPUSH_USERNAME", rich_help_panel=CONNECTING, help="CloudAgent user name.")] = None,
) -> None:
    """Holds the options that say where and as whom to connect."""


def _upload_options(
    rate: Annotated[str, typer.Option(
        rich_help_panel=CONNECTING,
        help="Requests per time, all included (100/min is CloudAgent's documented limit), such as 2/s.",
    )] = DEFAULTS["rate"],
    workers: Annotated[int, typer.Option(
        min=1, max=64, rich_help_panel=CONNECTING, help="Requests in flight at once.")] = DEFAULTS["workers"],
    retries: Annotated[int, typer.Option(
        min=0, max=20, rich_help_panel=CONNECTING,
        help="Retries per row for transient faults.")] = DEFAULTS["retries"],
    timeout: Annotated[float, typer.Option(
        min=0.1, rich_help_panel=CONNECTING, help="Seconds to wait for each answer.")] = DEFAULTS["timeout"],
    use_sandbox: Annotated[bool, typer.Option(
        "--sandbox", rich_help_panel=CONNECTING,
        help="Upload to a built-in local CloudAgent (demo account) instead: try leadpush without an account.",
    )] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", rich_help_panel=CONNECTING, help="Check only, send nothing: the same as validate.")] = False,
    journal: Annotated[Optional[Path], typer.Option(
        rich_help_panel=UNATTENDED,
        help="Journal of finished rows; by default <input stem>.leadpush-journal.jsonl beside the input.",
    )] = None,
    no_journal: Annotated[bool, typer.Option(
        "--no-journal", rich_help_panel=UNATTENDED, help="Keep no journal (no --resume after a crash).",
    )] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", rich_help_panel=UNATTENDED,
        help="Skip rows an earlier run of this file added (from the journal); send the rest.")] = False,
    restart: Annotated[bool, typer.Option(
        "--restart", rich_help_panel=UNATTENDED,
        help="Start over although an earlier run of this file did not finish.")] = False,
) -> None:
    """Holds the options of `upload` beyond those of every lead-file command."""


def _with_options(*holders: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the parameters of the holder functions, so shared options are declared once."""
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        params = [p for h in holders for p in inspect.signature(h, eval_str=True).parameters.values()]
        params.sort(key=lambda p: p.default is not inspect.Parameter.empty)  # required ones first
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command
    return decorate


def _settings(ctx: typer.Context, o: dict[str, Any]) -> tuple[dict[str, Setting], Any]:
    """Every setting the command took, resolved flag > environment > profile > default."""
    profile = load_profile(o.get("profile"), o.get("config"), explicit_path=o.get("config") is not None)
    for warning in profile.warnings:
        _stderr(f"Warning: {warning}")
    given = {}
    for name in PROFILE_KEYS:
        if name not in o:
            continue
        value = o[name].value if isinstance(o[name], Enum) else o[name]
        source = ctx.get_parameter_source(name)
        how = getattr(source, "name", "DEFAULT")
        given[name] = (value, "flag" if how == "COMMANDLINE" else
                       f"environment ({ENV_VARS.get(name, '?')})" if how == "ENVIRONMENT" else "default")
    return resolve(given, profile), profile


def _input_options(ctx: typer.Context, o: dict[str, Any]) -> tuple[jobs.InputOptions, dict[str, Setting], Any]:
    if o["dayfirst"] and o["monthfirst"]:
        raise ConfigError("--dayfirst and --monthfirst exclude each other")
    s, profile = _settings(ctx, o)
    settings = CheckSettings(
        defaults=RowDefaults(campaign=s["campaign"].value, skill=s["skill"].value, agent_id=s["agent_id"].value,
                             priority=s["priority"].value, expiry_date=s["expiry_date"].value,
                             action=s["action"].value, check_duplicate=s["check_duplicate"].value),
        region=s["region"].value, phone_format=s["phone_format"].value,
        date_order="day" if o["dayfirst"] else "month" if o["monthfirst"] else None,
        allow_past_expiry=o["allow_past_expiry"], campaign_type=s["campaign_type"].value,
        keep_duplicates=o["keep_duplicates"], user_map=parse_map_options(o["map"] or []))
    quiet_table = o["json_summary"] or o["quiet"]
    opts = jobs.InputOptions(
        file=o["file"], fmt=o["format"].value if o["format"] else None, encoding=o["encoding"],
        delimiter=o["delimiter"], sheet=o["sheet"], header_row=o["header_row"], checks=settings,
        table="none" if quiet_table else o["table"].value, results=o["results"],
        failures=o["failures"], write_failures=not o["no_failures"], log_file=o["log_file"])
    return opts, s, profile


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _finish(summary: report.RunSummary, o: dict[str, Any]) -> ExitCode:
    """Print the run's outcome on stdout, and return its exit code."""
    if o["json_summary"]:
        print(json.dumps(report.summary_object(summary), ensure_ascii=False))
    elif o["quiet"]:
        print(jobs.one_line(summary))
    else:
        out = report.make_console(sys.stdout)
        report.print_table(out, summary)
        report.print_summary(out, summary)
    if summary.stop_reason:
        _stderr(f"Stopped: {summary.stop_reason}")
    return summary.exit_code


def _run(body: Callable[[], ExitCode]) -> None:
    """The one place where errors and outcomes become exit codes."""
    try:
        code = body()
    except LeadpushError as e:
        _stderr(f"Error: {e}")
        code = e.exit_code
    except KeyboardInterrupt:
        _stderr("Interrupted.")
        code = ExitCode.INTERRUPTED
    raise typer.Exit(int(code))


def _note_encoding(lead_file: Any) -> None:
    if lead_file.encoding_note:
        _stderr(f"Note: {lead_file.name} is not UTF-8; read it as {lead_file.encoding_note} "
                f"(choose another with --encoding).")
    for note in lead_file.notes:
        _stderr(f"Note: {lead_file.name}: {note}.")


def _progress_enabled(o: dict[str, Any]) -> bool:
    return sys.stderr.isatty() and not o["json_summary"] and not o["quiet"]


@app.command()
@_with_options(_profile_options, _lead_file_options)
def validate(**o: Any) -> None:
    """Check every row of a lead file locally (a dry run): nothing is sent."""
    ctx = o.pop("ctx")

    def body() -> ExitCode:
        opts, _, _ = _input_options(ctx, o)
        with jobs.open_input(opts, stdin=sys.stdin.buffer if opts.file == "-" else None) as lead_file:
            _note_encoding(lead_file)
            with report.progress_bar(sys.stderr, "Checking", enabled=_progress_enabled(o)) as progress:
                summary = jobs.validate(opts, lead_file, today=dt.date.today(), progress=progress)
        return _finish(summary, o)
    _run(body)


def _api_key(profile: Any, use_prompt: bool) -> Setting:
    from .cloudagent import check_secret

    key = resolve_api_key(profile, os.environ)
    if key is None and use_prompt:
        key = Setting(typer.prompt("CloudAgent API key", hide_input=True), "prompt")
    if key is None:
        raise ConfigError("no API key: set LEADPUSH_API_KEY, or api_key_env in a --profile (there is no flag "
                          "for it: command-line arguments are visible to every user of the machine)")
    return Setting(check_secret(key.value, f"the API key (from {key.source})"), key.source)


def _connection(s: dict[str, Setting], profile: Any, *, use_prompt: bool) -> Any:
    from .cloudagent import Connection, check_base_url, check_secret

    if not s["username"].value:
        raise ConfigError("no user name: pass --username, set LEADPUSH_USERNAME, or use a --profile")
    token = os.environ.get("LEADPUSH_TOKEN")
    return Connection(check_base_url(s["base_url"].value), str(s["username"].value).strip(),
                      _api_key(profile, use_prompt).value,
                      check_secret(token, "LEADPUSH_TOKEN") if token else None)


def _install_interrupt(event: Any) -> Callable[[], None]:
    """First Ctrl-C or SIGTERM: stop dispatching and finish in-flight rows. A second Ctrl-C: quit now."""
    def handler(signum: int, frame: Any) -> None:
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if signum == signal.SIGTERM:
            event.terminated = True
        event.set()
        _stderr("Stopping: finishing the rows in flight (Ctrl-C again to quit at once)...")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(s, h) for s, h in previous.items()]  # type: ignore[func-returns-value]


@app.command()
@_with_options(_profile_options, _lead_file_options, _connection_options, _upload_options)
def upload(**o: Any) -> None:
    """Check every row of a lead file, then send each valid row to CloudAgent's Add Campaign Data API."""
    ctx = o.pop("ctx")
    if o["dry_run"]:
        keep = set(inspect.signature(_profile_options).parameters) | set(
            inspect.signature(_lead_file_options).parameters)
        return validate(ctx=ctx, **{k: v for k, v in o.items() if k in keep})

    def body() -> ExitCode:
        from .cloudagent import Connection, default_cache_dir, make_session
        from .journal import default_journal_path, input_lock, journal_lock, prepare_journal
        from .pacing import parse_rate
        from .upload import Interrupt, Resume, UploadSettings, upload as run_upload

        if o["resume"] and o["restart"]:
            raise ConfigError("--resume and --restart exclude each other")
        opts, s, profile = _input_options(ctx, o)
        rate = parse_rate(s["rate"].value)
        with contextlib.ExitStack() as stack:
            if o["use_sandbox"]:
                from .sandbox import DEMO_KEY, DEMO_USER, Sandbox

                server = stack.enter_context(Sandbox())
                conn = Connection(server.base_url, DEMO_USER, DEMO_KEY)
                cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadpush-")))
                if not o["quiet"]:
                    _stderr(f"Uploading to the built-in sandbox at {server.base_url} (user {DEMO_USER}).")
            else:
                conn = _connection(s, profile, use_prompt=sys.stdin.isatty() and opts.file != "-")
                cache_dir = default_cache_dir()
            opts.secrets = conn.secrets
            lead_file = stack.enter_context(
                jobs.open_input(opts, stdin=sys.stdin.buffer if opts.file == "-" else None))
            _note_encoding(lead_file)
            if opts.file != "-":
                stack.enter_context(input_lock(cache_dir, opts.file, lead_file.name))
            journal = resume = None
            keep_journal = not o["no_journal"] and (o["journal"] is not None or not o["use_sandbox"])
            if keep_journal:
                path = o["journal"] or default_journal_path(lead_file.name)
                stack.enter_context(journal_lock(path))
                journal, state, note = prepare_journal(path, lead_file.digest(), resume=o["resume"],
                                                       restart=o["restart"], file=lead_file.name)
                stack.callback(journal.close)
                if note:
                    _stderr(f"Note: {note}")
                if state is not None:
                    resume = Resume(state, journal.digest)
            elif o["resume"]:
                raise ConfigError("--resume needs the journal (leave out --no-journal)")
            settings = UploadSettings(conn=conn, rate=rate, cache_dir=cache_dir, workers=int(s["workers"].value),
                                      retries=int(s["retries"].value), timeout=float(s["timeout"].value))
            session = stack.enter_context(make_session(settings.workers, conn.base_url))
            interrupt = Interrupt()
            stack.callback(_install_interrupt(interrupt))
            progress = stack.enter_context(report.progress_bar(sys.stderr, "Uploading", enabled=_progress_enabled(o)))
            summary = run_upload(opts, settings, lead_file, today=dt.date.today(), session=session,
                                 clock=time.monotonic, wall_clock=time.time, sleep=time.sleep,
                                 progress=progress, interrupt=interrupt, journal=journal, resume=resume)
        return _finish(summary, o)
    _run(body)


@config_app.command("show")
@_with_options(_profile_options, _connection_options)
def config_show(**o: Any) -> None:
    """Print the effective settings and where each came from (secrets masked)."""
    ctx = o.pop("ctx")

    def body() -> ExitCode:
        from .settings import default_config_path

        s, profile = _settings(ctx, o)
        for name in PROFILE_KEYS:
            if name in ("api_key", "api_key_env") or name in s:
                continue
            value = profile.values.get(name, DEFAULTS.get(name))
            s[name] = Setting(value, profile.label if name in profile.values else "default")
        key = resolve_api_key(profile, os.environ)
        s["api_key"] = key or Setting(None, "not set: LEADPUSH_API_KEY, api_key_env or api_key in a profile")
        path = o.get("config") or default_config_path()
        print(f"config file: {path}{'' if Path(path).exists() else ' (none)'}")
        print(f"profile: {profile.name or '(none)'}")
        width = max(len(n) for n in s)
        for name, setting in s.items():
            print(f"{name:<{width}}  {masked(name, setting.value):<40}  {setting.source}")
        return ExitCode.OK
    _run(body)


@auth_app.command("check")
@_with_options(_profile_options, _connection_options)
def auth_check(**o: Any) -> None:
    """Check user, API key and token-auth mode; reuses a still-valid cached token (no generation)."""
    ctx = o.pop("ctx")

    def body() -> ExitCode:
        from .cloudagent import auth_check as check, default_cache_dir, make_session

        s, profile = _settings(ctx, o)
        conn = _connection(s, profile, use_prompt=sys.stdin.isatty())
        with make_session(1, conn.base_url) as session:
            result = check(session, conn, default_cache_dir(), clock=time.time)
        print(result)
        return ExitCode.OK
    _run(body)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _version(value: bool) -> None:
    if value:
        print(f"leadpush {__version__}")
        raise typer.Exit()


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 8765,
    config: Annotated[Optional[Path], typer.Option(
        help="TOML file of accounts, campaigns and numbers; by default a demo account.")] = None,
    token_ttl: Annotated[float, typer.Option(help="Token lifetime in seconds.")] = 3600.0,
    token_cap: Annotated[int, typer.Option(help="Token generations per account per hour (0 = no cap).")] = 10,
    rate_limit: Annotated[str, typer.Option(
        help="Add Campaign Data requests per account, such as 100/min (0 = no limit).")] = "100/min",
    latency_ms: Annotated[float, typer.Option(help="Delay before each Add Campaign Data answer.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Random +/- spread around --latency-ms.")] = 0.0,
    fail_rate: Annotated[float, typer.Option(
        help="Share of requests answered 503 (HTML), lead not stored.", min=0.0, max=1.0)] = 0.0,
    drop_rate: Annotated[float, typer.Option(
        help="Share of requests whose lead is stored but the connection closed unanswered.",
        min=0.0, max=1.0)] = 0.0,
    seed: Annotated[Optional[int], typer.Option(help="Seed for the faults and jitter, to reproduce a run.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No line per request.")] = False,
) -> None:
    """Serve a local CloudAgent (token and Add Campaign Data APIs) until Ctrl-C."""
    def body() -> ExitCode:
        from .pacing import parse_rate
        from .sandbox import DEMO_KEY, DEMO_USER, Sandbox, load_config

        limit = parse_rate(rate_limit, option="--rate-limit", allow_zero=True)
        server = Sandbox(load_config(config), source=str(config or "built-in demo"), host=host, port=port,
                         token_ttl=token_ttl, token_cap=token_cap,
                         rate_limit=0 if limit is None else max(1, round(limit.per_minute)),
                         latency_ms=latency_ms, jitter_ms=jitter_ms, fail_rate=fail_rate,
                         drop_rate=drop_rate, seed=seed, log=None if quiet else _stderr)
        print(f"CloudAgent sandbox listening on {server.base_url}", flush=True)
        if config is None:
            campaigns = ", ".join(c["name"] for c in server.state.config["accounts"][0]["campaigns"])
            print(f"Demo account: user {DEMO_USER}, API key {DEMO_KEY}; campaigns: {campaigns}")
            print(f"Try: LEADPUSH_API_KEY={DEMO_KEY} leadpush upload sample_data/leads.csv "
                  f"--base-url {server.base_url} --username {DEMO_USER}", flush=True)
        _stderr("Press Ctrl-C to stop.")
        signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops it as cleanly as Ctrl-C
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            _stderr("Sandbox stopped.")
        finally:
            server.server.server_close()
        return ExitCode.OK
    _run(body)


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Load leads from CSV, JSON and spreadsheet files into Ozonetel CloudAgent campaigns."""


def main() -> None:
    app()
