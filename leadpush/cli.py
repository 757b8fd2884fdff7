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
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import __version__, jobs, report
from .checks import CheckSettings, RowDefaults
from .cloudagent import DEFAULT_BASE_URL, check_secret
from .mapping import parse_map_options
from .outcomes import ConfigError, ExitCode, LeadpushError

app = typer.Typer(
    name="leadpush", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Load leads from CSV, JSON and spreadsheet files into Ozonetel CloudAgent campaigns.")


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
        rich_help_panel=ROWS)] = True,
    region: Annotated[Optional[str], typer.Option(
        help="Also require a valid phone number of this region (ISO code such as IN or US).",
        rich_help_panel=ROWS)] = None,
    phone_format: Annotated[PhoneFormat, typer.Option(
        help="Rewrite phone numbers (needs --region).", rich_help_panel=ROWS)] = PhoneFormat.as_is,
    dayfirst: Annotated[bool, typer.Option(
        "--dayfirst", help="Read dates like 01/02/2030 as 1 February.", rich_help_panel=ROWS)] = False,
    monthfirst: Annotated[bool, typer.Option(
        "--monthfirst", help="Read dates like 01/02/2030 as 2 January.", rich_help_panel=ROWS)] = False,
    allow_past_expiry: Annotated[bool, typer.Option(
        "--allow-past-expiry", help="Send rows whose expiry date has passed.", rich_help_panel=ROWS)] = False,
    campaign_type: Annotated[CampaignType, typer.Option(
        help="agent-wise requires an agent ID on every row, skill-wise a skill.",
        rich_help_panel=ROWS)] = CampaignType.any,
    keep_duplicates: Annotated[bool, typer.Option(
        "--keep-duplicates", help="Send repeated (campaign, phone) rows instead of skipping them.",
        rich_help_panel=ROWS)] = False,
    table: Annotated[TableChoice, typer.Option(
        help="Rows in the table: auto = all up to 200 rows, else only problems.",
        rich_help_panel=OUTPUT)] = TableChoice.auto,
    json_summary: Annotated[bool, typer.Option(
        "--json", help="Print one JSON summary object on stdout instead of the table and summary.",
        rich_help_panel=OUTPUT)] = False,
    results: Annotated[Optional[Path], typer.Option(
        help="Write every row's outcome to this file (.csv, or .jsonl for JSON Lines).",
        rich_help_panel=OUTPUT)] = None,
    failures: Annotated[Optional[Path], typer.Option(
        help="Failures file; by default <input stem>.failures.csv (.jsonl for JSON input) beside the input.",
        rich_help_panel=OUTPUT)] = None,
    no_failures: Annotated[bool, typer.Option(
        "--no-failures", help="Write no failures file.", rich_help_panel=OUTPUT)] = False,
) -> None:
    """Holds the options every command that reads a lead file takes (see `_with_options`)."""


def _with_options(*holders: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the parameters of the holder functions, so shared options are declared once."""
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        params = [p for h in holders for p in inspect.signature(h, eval_str=True).parameters.values()]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command
    return decorate


def _input_options(o: dict[str, Any]) -> tuple[jobs.InputOptions, bool]:
    if o["dayfirst"] and o["monthfirst"]:
        raise LeadpushError("--dayfirst and --monthfirst exclude each other")
    settings = CheckSettings(
        defaults=RowDefaults(campaign=o["campaign"], skill=o["skill"], agent_id=o["agent_id"],
                             priority=o["priority"], expiry_date=o["expiry_date"], action=o["action"],
                             check_duplicate=o["check_duplicate"]),
        region=o["region"], phone_format=o["phone_format"].value,
        date_order="day" if o["dayfirst"] else "month" if o["monthfirst"] else None,
        allow_past_expiry=o["allow_past_expiry"], campaign_type=o["campaign_type"].value,
        keep_duplicates=o["keep_duplicates"], user_map=parse_map_options(o["map"] or []))
    opts = jobs.InputOptions(
        file=o["file"], fmt=o["format"].value if o["format"] else None, encoding=o["encoding"],
        delimiter=o["delimiter"], sheet=o["sheet"], checks=settings,
        table="none" if o["json_summary"] else o["table"].value, results=o["results"],
        failures=o["failures"], write_failures=not o["no_failures"])
    return opts, o["json_summary"]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _finish(summary: report.RunSummary, as_json: bool) -> ExitCode:
    """Print the run's outcome on stdout, and return its exit code."""
    if as_json:
        print(json.dumps(report.summary_object(summary), ensure_ascii=False))
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


@app.command()
@_with_options(_lead_file_options)
def validate(**o: Any) -> None:
    """Check every row of a lead file locally (a dry run): nothing is sent."""
    def body() -> ExitCode:
        opts, as_json = _input_options(o)
        with jobs.open_input(opts, stdin=sys.stdin.buffer if opts.file == "-" else None) as lead_file:
            if lead_file.encoding_note:
                _stderr(f"Note: {lead_file.name} is not UTF-8; read it as {lead_file.encoding_note} "
                        f"(choose another with --encoding).")
            with report.progress_bar(sys.stderr, "Checking", enabled=sys.stderr.isatty()) as progress:
                summary = jobs.validate(opts, lead_file, today=dt.date.today(), progress=progress)
        return _finish(summary, as_json)
    _run(body)


CONNECTING = "Connecting to CloudAgent"


def _upload_options(
    base_url: Annotated[str, typer.Option(
        envvar="LEADPUSH_BASE_URL", rich_help_panel=CONNECTING,
        help="CloudAgent API base URL (international: https://api.ccaas.ozonetel.com; partners have their own).",
    )] = DEFAULT_BASE_URL,
    username: Annotated[Optional[str], typer.Option(
        envvar="LEADPUSH_USERNAME", rich_help_panel=CONNECTING, help="CloudAgent user name.")] = None,
    rate: Annotated[str, typer.Option(
        rich_help_panel=CONNECTING,
        help="Requests per time, all included (100/min is CloudAgent's documented limit), such as 2/s.",
    )] = "100/min",
    workers: Annotated[int, typer.Option(
        min=1, max=64, rich_help_panel=CONNECTING, help="Requests in flight at once.")] = 4,
    retries: Annotated[int, typer.Option(
        min=0, max=20, rich_help_panel=CONNECTING, help="Retries per row for transient faults.")] = 3,
    timeout: Annotated[float, typer.Option(
        min=0.1, rich_help_panel=CONNECTING, help="Seconds to wait for each answer.")] = 30.0,
    use_sandbox: Annotated[bool, typer.Option(
        "--sandbox", rich_help_panel=CONNECTING,
        help="Upload to a built-in local CloudAgent (demo account) instead: try leadpush without an account.",
    )] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", rich_help_panel=CONNECTING, help="Check only, send nothing: the same as validate.")] = False,
) -> None:
    """Holds the options of `upload` beyond those of every lead-file command."""


def _api_key(use_prompt: bool) -> str:
    key = os.environ.get("LEADPUSH_API_KEY")
    if key is None and use_prompt:
        key = typer.prompt("CloudAgent API key", hide_input=True)
    if key is None:
        raise ConfigError("no API key: set LEADPUSH_API_KEY (there is no flag for it: command-line "
                          "arguments are visible to every user of the machine)")
    return check_secret(key, "the API key (LEADPUSH_API_KEY)")


def _install_interrupt(event: threading.Event) -> Callable[[], None]:
    """First Ctrl-C or SIGTERM: stop dispatching and finish in-flight rows. A second Ctrl-C: quit now."""
    def handler(signum: int, frame: Any) -> None:
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()
        _stderr("Stopping: finishing the rows in flight (Ctrl-C again to quit at once)...")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(s, h) for s, h in previous.items()]  # type: ignore[func-returns-value]


@app.command()
@_with_options(_lead_file_options, _upload_options)
def upload(**o: Any) -> None:
    """Check every row of a lead file, then send each valid row to CloudAgent's Add Campaign Data API."""
    if o["dry_run"]:
        return validate(**{k: v for k, v in o.items() if k not in _UPLOAD_ONLY})

    def body() -> ExitCode:
        from .cloudagent import Connection, check_base_url, default_cache_dir, make_session
        from .pacing import parse_rate
        from .upload import UploadSettings, upload as run_upload

        opts, as_json = _input_options(o)
        rate = parse_rate(o["rate"])
        with contextlib.ExitStack() as stack:
            if o["use_sandbox"]:
                from .sandbox import DEMO_KEY, DEMO_USER, Sandbox

                server = stack.enter_context(Sandbox())
                conn = Connection(server.base_url, DEMO_USER, DEMO_KEY)
                cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadpush-")))
                _stderr(f"Uploading to the built-in sandbox at {server.base_url} (user {DEMO_USER}).")
            else:
                if not o["username"]:
                    raise ConfigError("no user name: pass --username or set LEADPUSH_USERNAME")
                token = os.environ.get("LEADPUSH_TOKEN")
                conn = Connection(check_base_url(o["base_url"]), o["username"].strip(),
                                  _api_key(use_prompt=sys.stdin.isatty() and opts.file != "-"),
                                  check_secret(token, "LEADPUSH_TOKEN") if token else None)
                cache_dir = default_cache_dir()
            lead_file = stack.enter_context(
                jobs.open_input(opts, stdin=sys.stdin.buffer if opts.file == "-" else None))
            if lead_file.encoding_note:
                _stderr(f"Note: {lead_file.name} is not UTF-8; read it as {lead_file.encoding_note} "
                        f"(choose another with --encoding).")
            settings = UploadSettings(conn=conn, rate=rate, cache_dir=cache_dir, workers=o["workers"],
                                      retries=o["retries"], timeout=o["timeout"])
            session = stack.enter_context(make_session(o["workers"]))
            interrupt = threading.Event()
            stack.callback(_install_interrupt(interrupt))
            progress = stack.enter_context(
                report.progress_bar(sys.stderr, "Uploading", enabled=sys.stderr.isatty() and not as_json))
            summary = run_upload(opts, settings, lead_file, today=dt.date.today(), session=session,
                                 clock=time.monotonic, wall_clock=time.time, sleep=time.sleep,
                                 progress=progress, interrupt=interrupt)
        return _finish(summary, as_json)
    _run(body)


_UPLOAD_ONLY = set(inspect.signature(_upload_options).parameters)


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
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            _stderr("Sandbox stopped.")
        finally:
            server.server.server_close()
        return ExitCode.OK
    _run(body)


def _version(value: bool) -> None:
    if value:
        print(f"leadpush {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Load leads from CSV, JSON and spreadsheet files into Ozonetel CloudAgent campaigns."""


def main() -> None:
    app()
