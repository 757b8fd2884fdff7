"""Local checks: turn each row of a lead file into a CloudAgent request body, or say what is wrong."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .causes import Problem, describe
from .mapping import ColumnMap, build_column_map, missing_columns
from .outcomes import ConfigError, InputError, RowOutcome, Status
from .readers import LeadFile, column_label
from .records import cell_text


class PhoneFormat(StrEnum):
    """How phone numbers are rewritten before they are sent (e164 and national need a region)."""

    AS_IS = "as-is"
    E164 = "e164"
    NATIONAL = "national"


class CampaignType(StrEnum):
    """What every row of the campaign must carry: agent-wise an agent ID, skill-wise a skill."""

    ANY = "any"
    AGENT_WISE = "agent-wise"
    SKILL_WISE = "skill-wise"


PHONE_FORMATS = tuple(f.value for f in PhoneFormat)
CAMPAIGN_TYPES = tuple(t.value for t in CampaignType)

_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
# Separators people and spreadsheets put in phone numbers: white space of every kind (no-break
# and zero-width spaces too), hyphens, dashes and the minus sign, dots and brackets.
_SEPARATORS = re.compile("[\\s\\-().\u00a0\u00ad\u2010-\u2015\u2212\u200b-\u200d\u2060\ufeff]")
_TRAILING_ZERO = re.compile(r"\.0+\Z")
# What CloudAgent takes, and all leadpush ever sends. Always fullmatch: `$` also matches before a
# trailing line break.
_PHONE = re.compile(r"\+?[0-9]{3,16}")
_GROUPED = re.compile(r"\+?[0-9]{1,5}(?:,[0-9]{1,5})+")  # 98,20,69,5317
_SPREADSHEET_ERROR = re.compile(r"#(?:N/A|NAME\?|[A-Z0-9/_]+!|GETTING_DATA)", re.IGNORECASE)
_META_TEST_LEAD = re.compile(r"test lead|dummy data", re.IGNORECASE)
_PRIORITY = re.compile(r"^\d+(?:\.0*)?$")
_WHOLE = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_YMD_DATE = re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})$")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_VALID, _INVALID, _SKIPPED = Status.VALID, Status.INVALID, Status.SKIPPED
_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})


@dataclass
class RowDefaults:
    """Values used where a row's cell is absent or empty (a cell value wins)."""

    campaign: str | None = None
    skill: str | None = None
    agent_id: str | None = None
    priority: str | None = None
    expiry_date: str | None = None
    action: str | None = None
    check_duplicate: bool = True


@dataclass
class CheckSettings:
    defaults: RowDefaults = field(default_factory=RowDefaults)
    region: str | None = None
    phone_format: str = PhoneFormat.AS_IS
    date_order: str | None = None  # None, "day" or "month"
    allow_past_expiry: bool = False
    campaign_type: str = CampaignType.ANY
    keep_duplicates: bool = False
    user_map: dict[str, str | None] = field(default_factory=dict)
    map_labels: dict[str, str] = field(default_factory=dict)  # normalized header -> as the user wrote it


# ---------------------------------------------------------------------------- single fields

def _text(value: Any) -> str:
    """A cell as text (records.cell_text's one rule), trimmed."""
    return value.strip() if isinstance(value, str) else cell_text(value).strip()


_MAPS_MAX = 4096  # distinct JSON key sets whose column map is remembered
_MEMO_MAX = 4096  # distinct values remembered per field (bounded: memory must not grow with the file)


def _checked(memo: dict[str, Any], cleaner: Any, raw: Any, problems: list[Problem]) -> Any:
    """cleaner(raw)'s value; its problem, if any, goes to `problems`.

    Exports repeat the same few priorities, dates and flags, so each distinct text is read once
    and remembered (text only: JSON may hand in unhashable lists): a hit costs 0.13 µs where
    reading a priority costs 0.6 µs, and a date more.
    """
    if not isinstance(raw, str):
        value, problem = cleaner(raw)
    else:
        hit = memo.get(raw)
        if hit is None:
            hit = cleaner(raw)
            if len(memo) < _MEMO_MAX:
                memo[raw] = hit
        value, problem = hit
    if problem:
        problems.append(problem)
    return value


# What a phone cell holds: (the phone to send — ASCII digits, optional leading + — or None, the
# problem, a note when leadpush rewrote the cell to read it). A plain tuple: a NamedTuple's
# construction cost 0.3 µs, a fifth of reading a phone with separators.
PhoneReading = tuple["str | None", "Problem | None", "Problem | None"]


def read_phone(value: Any) -> PhoneReading:
    """Read a phone cell the way CloudAgent must receive it: `+?[0-9]{3,16}`, nothing else.

    Separators of every kind are removed (white space including no-break and zero-width
    spaces, the Unicode dashes and minus, dots, brackets); decimal digits of other scripts
    (Devanagari, Arabic-Indic, full-width ...) become 0-9, and Meta's `p:` prefix is removed,
    each with a note. Empty gives (None, None).
    """
    raw = _text(value)  # trimmed: a trailing line break (a cell pasted with Alt+Enter) goes
    if not raw:
        return None, None, None
    written = raw.lstrip("'").strip()
    notes: list[tuple[str, str]] = []  # (code, what was done)
    if written[:2] in ("p:", "P:"):  # Meta Lead Ads exports write every phone as p:+91...
        written = written[2:].strip()
        notes.append(("read.meta_prefix", "Meta's 'p:' prefix removed"))
    text = _SEPARATORS.sub("", _TRAILING_ZERO.sub("", written))
    if _PHONE.fullmatch(text):  # most cells: ASCII digits and separators
        return text, None, _note(raw, text, notes) if notes else None
    # Not a phone as written: say what the cell holds.
    if _SPREADSHEET_ERROR.fullmatch(raw):
        return _refused(Problem("phone.spreadsheet_error",
                                          f"phone cell holds {raw!r}, a spreadsheet's error value (a formula "
                                          f"that failed), not a number: fix the formula or paste the numbers as "
                                          f"values, and export the file again"))
    if _META_TEST_LEAD.search(raw):
        return _refused(Problem("row.test_lead", f"a test lead ({raw!r}: Meta's dummy data), not sent"))
    if _SCIENTIFIC.fullmatch(written):
        return _refused(Problem("phone.scientific",
                                          f"phone number {raw!r} is in scientific notation, so the spreadsheet has "
                                          f"already lost its last digits; format the column as text and export "
                                          f"the file again"))
    if not text.isascii():
        scripts = sorted({_script_of(c) for c in text if c.isdecimal() and not c.isascii()})
        if scripts:
            text = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)
            notes.append(("read.digits", f"{' and '.join(scripts)} digits read as 0-9"))
    if _PHONE.fullmatch(text):
        return text, None, _note(raw, text, notes) if notes else None
    if _GROUPED.fullmatch(text):
        return _refused(Problem("phone.grouped",
                                          f"phone number {raw!r} has commas between groups of digits, the way a "
                                          f"spreadsheet's number format (Indian digit grouping) shows a number: "
                                          f"format the column as text, or remove the commas"))
    body = text[1:] if text[:1] == "+" else text
    if body.isascii() and body.isdigit():
        return _refused(Problem("phone.length",
                                          f"phone number {raw!r} has {len(body)} digits; CloudAgent takes 3 to 16 "
                                          f"(an optional leading + allowed)"))
    return _refused(Problem("phone.invalid",
                                      f"phone number {raw!r} is not valid: use 3 to 16 digits with an optional "
                                      f"leading +; spaces, dashes, dots and brackets are removed for you"))


def _refused(problem: Problem) -> PhoneReading:
    return None, problem, None


def _script_of(digit: str) -> str:
    """'Devanagari' for '९', 'Arabic-Indic' for '٩', 'Fullwidth' for '９'."""
    name = unicodedata.name(digit, "")
    return name.split(" DIGIT")[0].title() if " DIGIT" in name else "Non-ASCII"


def _note(raw: str, phone: str, notes: list[tuple[str, str]]) -> Problem:
    note = Problem(notes[0][0], f"phone {raw!r}: {'; '.join(text for _, text in notes)}; sent as {phone}")
    note.cause = ";".join(code for code, _ in notes)
    return note


def clean_phone(value: Any) -> tuple[str | None, Problem | None]:
    """(cleaned phone, None) or (None, problem). Empty gives (None, None)."""
    phone, problem, _note = read_phone(value)
    return phone, problem


def country(region: str) -> str:
    """A region code as people say it: 'India (IN)'."""
    from phonenumbers.geocoder import _region_display_name  # noqa: PLC0415 — only with --region

    name = _region_display_name(region, "en")
    return f"{name} ({region})" if name else region


def region_phone(phone: str, region: str, phone_format: str) -> tuple[str | None, Problem | None]:
    """Check a cleaned phone against a region with `phonenumbers`, and rewrite it if asked."""
    formatted, _key, problem = region_reading(phone, region, phone_format)
    return formatted, problem


def region_reading(phone: str, region: str, phone_format: str) -> tuple[str | None, str | None, Problem | None]:
    """(phone to send, the number in E.164 — one spelling per number, for the duplicate index —,
    None) or (None, None, problem)."""
    phonenumbers = _phonenumbers()

    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as e:
        return None, None, Problem("phone.region",
                                   f"phone number {phone!r} cannot be read as a number of {country(region)} "
                                   f"({e._msg})")
    if not phonenumbers.is_valid_number(number):
        return None, None, Problem("phone.region", f"phone number {phone!r} is not a valid number of "
                                                   f"{country(region)}")
    actual = phonenumbers.region_code_for_number(number)
    if actual != region:
        return None, None, Problem("phone.other_region", f"phone number {phone!r} is a number of "
                                                         f"{country(actual) if actual else 'no one country'}, "
                                                         f"not of {country(region)}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phone_format == "e164":
        return e164, e164, None
    if phone_format == "national":
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        return re.sub(r"[^0-9]", "", national), e164, None
    return phone, e164, None


@functools.cache
def _phonenumbers() -> Any:
    """The phonenumbers module, imported on first use (only --region needs it; it is slow to load)."""
    import phonenumbers  # noqa: PLC0415

    return phonenumbers


def clean_priority(value: Any) -> tuple[str | None, Problem | None]:
    raw = _text(value)
    if not raw:
        return None, None
    if _PRIORITY.match(raw) and len(raw) < 100:  # int() refuses 4,300 digits and more (a JSON number)
        number = int(raw.split(".")[0])
        if number <= 99:
            return str(number), None
    cause = "priority.range" if _WHOLE.match(raw) else "priority.invalid"
    return None, Problem(cause, f"priority {raw!r} is not valid: use a whole number from 0 to 99")


def clean_expiry(value: Any, *, today: dt.date, date_order: str | None = None,
                 allow_past: bool = False) -> tuple[str | None, Problem | None]:
    """An expiry date as YYYY-MM-DD, reading other forms only where they can mean one date."""
    if isinstance(value, dt.datetime):
        day: dt.date | None = value.date()
    elif isinstance(value, dt.date):
        day = value
    else:
        raw = _text(value)
        if not raw:
            return None, None
        day, problem = _read_date(raw, date_order)
        if problem:
            return None, problem
    assert day is not None
    if day < today and not allow_past:
        return None, Problem("date.past", f"expiry date {day.isoformat()} is in the past; fix it, or pass "
                                          f"--allow-past-expiry to send it anyway")
    return day.isoformat(), None


def _read_date(raw: str, date_order: str | None) -> tuple[dt.date | None, Problem | None]:
    m = _ISO_DATE.match(raw) or _YMD_DATE.match(raw)
    if m:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3])), None
        except ValueError:
            return None, Problem("date.invalid", f"expiry date {raw!r} is not a real date")
    if _NUMBER.match(raw):
        return None, Problem("date.serial", f"expiry date {raw!r} is a number, not a date (an Excel date "
                                            f"serial?); write it as YYYY-MM-DD")
    readings: dict[str, dt.date] = {}
    for order in ([date_order] if date_order else ["day", "month"]):
        reading = _dateutil_read(raw, dayfirst=(order == "day"))
        if reading == "incomplete":
            return None, Problem("date.incomplete",
                                 f"expiry date {raw!r} is incomplete: give day, month and year (YYYY-MM-DD)")
        if isinstance(reading, dt.date):
            readings[order] = reading
    distinct = set(readings.values())
    if not distinct:
        return None, Problem("date.invalid", f"expiry date {raw!r} is not a date: write it as YYYY-MM-DD")
    if len(distinct) > 1:
        return None, Problem("date.ambiguous", f"expiry date {raw!r} is ambiguous: {readings['day'].isoformat()} "
                                               f"(day first) or {readings['month'].isoformat()} (month first); "
                                               f"pass --dayfirst or --monthfirst, or write YYYY-MM-DD")
    return distinct.pop(), None


def _dateutil_read(raw: str, *, dayfirst: bool) -> dt.date | str | None:
    from dateutil import parser  # noqa: PLC0415 — slow import, only for non-ISO dates

    try:
        # Two different defaults tell whether a part (day, month, year) was missing.
        a = parser.parse(raw, dayfirst=dayfirst, default=dt.datetime(2000, 1, 1))
        b = parser.parse(raw, dayfirst=dayfirst, default=dt.datetime(2001, 2, 2))
    except (ValueError, OverflowError, parser.ParserError):
        return None
    if a.date() != b.date():
        return "incomplete"
    return a.date()


def clean_check_duplicate(value: Any) -> tuple[bool | None, Problem | None]:
    raw = _text(value).lower()
    if not raw:
        return None, None
    if raw in _TRUE:
        return True, None
    if raw in _FALSE:
        return False, None
    return None, Problem("check_duplicate.invalid",
                         f"checkDuplicate {_text(value)!r} is not valid: use TRUE or FALSE (yes/no, 1/0 work too)")


def clean_action(value: Any) -> tuple[str | None, Problem | None]:
    raw = _text(value)
    if not raw:
        return None, None
    if raw.upper() in ("START", "STOP"):
        return raw.upper(), None
    return None, Problem("action.invalid", f"action {raw!r} is not valid: use START, STOP or leave it empty")


# ---------------------------------------------------------------------------- rows

class DuplicateIndex:
    """The in-file duplicate check: which row first had each phone number in each campaign.

    Its key is one int: the phone's digits, with their count and any '+' folded in above them
    (a phone has at most 16 digits, so below 10**17), which keeps "0123", "123" and "+123" apart,
    and the campaign's number above that. It is the one thing kept per row: a million rows cost
    106 MB this way, where (campaign, phone) tuple keys cost 185 MB (docs/benchmarks.md).
    """

    _DIGITS = [n * 10**17 for n in range(18)]
    _PLUS = [(n + 20) * 10**17 for n in range(18)]
    _CAMPAIGN_STRIDE = 40 * 10**17

    def __init__(self) -> None:
        self._first: dict[int, int] = {}
        self._campaigns: dict[str, int] = {}
        self._last_campaign: str | None = None
        self._last_offset = 0

    def first_row(self, campaign: str, phone: str, row: int) -> int:
        """The row that first had `phone` (ASCII digits, optional leading +) in `campaign`:
        `row` itself unless it is a duplicate."""
        if campaign != self._last_campaign:  # rows of one campaign usually come together
            offset = self._campaigns.get(campaign)
            if offset is None:
                offset = self._campaigns[campaign] = len(self._campaigns) * self._CAMPAIGN_STRIDE
            self._last_campaign, self._last_offset = campaign, offset
        if phone[0] == "+":
            return self._first.setdefault(int(phone[1:]) + self._PLUS[len(phone) - 1] + self._last_offset, row)
        return self._first.setdefault(int(phone) + self._DIGITS[len(phone)] + self._last_offset, row)


# The key's parts, for the do-not-call list (suppress.py), which keys numbers the same way.
_DIGITS_MARK, _PLUS_MARK = DuplicateIndex._DIGITS, DuplicateIndex._PLUS


@dataclass(frozen=True, slots=True)
class _RowPlan:
    """Where one set of columns keeps each field (list positions, or JSON keys), worked out once
    per set so that a row looks only at the fields that have a column."""

    phone: Any
    campaign: Any
    name: Any
    skill: Any
    agent: Any
    priority: Any
    expiry: Any
    action: Any
    check_duplicate: Any
    passthrough: list[tuple[Any, str]]
    name_parts: list[Any]  # with no Name column: first and last name, joined into Name
    other_phones: list[tuple[Any, str]]  # (column, label) of passed-through columns that look like phones
    no_campaign: Problem  # what a row without a campaign is told
    sent_keys: tuple[Any, ...]  # the columns whose values are sent (JSON: each checked for arrays/objects)


def _no_campaign(ad_campaign: str | None) -> Problem:
    if ad_campaign:
        return Problem("campaign.missing", f"no campaign: {ad_campaign!r} is the ad platform's campaign, not a "
                                           f"CloudAgent one; pass --campaign (or, if it does name CloudAgent "
                                           f"campaigns, --map \"{ad_campaign}=campaignName\")")
    return Problem("campaign.missing", "no campaign: add a campaignName column or pass --campaign")


def _empty_phone(plan: _RowPlan, get: Callable[[Any], Any]) -> Problem:
    """'phone number is empty', or, where another phone-like column has a number, that one named."""
    for key, label in plan.other_phones:
        other = _text(get(key))
        if sum(c.isdigit() for c in other) >= 3:
            return Problem("phone.empty_other", f"phone number is empty, but {label!r} holds {other!r}; to send "
                                                f"that column, pass --map \"{label}=phoneNumber\"")
    return Problem("phone.empty", "phone number is empty")


def _structured_values(values: dict[str, Any], sent_keys: tuple[str, ...]) -> list[Problem]:
    """A JSON array or object where CloudAgent takes text: the row is refused, not sent as '["C1"]'."""
    problems: list[Problem] = []
    for key in sent_keys:
        value = values.get(key)
        if value.__class__ is list or value.__class__ is dict:
            kind = "an array" if isinstance(value, list) else "an object"
            shown = json.dumps(value, ensure_ascii=False, default=str)
            shown = shown if len(shown) <= 40 else shown[:40] + "..."
            problems.append(Problem("value.structured", f"{key!r} holds {kind} ({shown}), not a text; give it "
                                                        f"as text, or leave it out with --map \"{key}=\""))
    return problems


class Checker:
    """Checks rows one by one; keeps only the in-file duplicate index between rows."""

    def __init__(self, settings: CheckSettings, *, today: dt.date, build_bodies: bool = True) -> None:
        self.settings = settings
        self.today = today
        self.build_bodies = build_bodies  # a dry run needs verdicts only
        if settings.phone_format not in PHONE_FORMATS:
            raise ConfigError(f"--phone-format must be one of {', '.join(PHONE_FORMATS)}")
        if settings.phone_format != "as-is" and not settings.region:
            raise ConfigError("--phone-format e164/national needs --region (the country to read numbers in)")
        self._region = settings.region.upper() if settings.region else None
        if self._region and self._region not in _phonenumbers().SUPPORTED_REGIONS:
            raise ConfigError(f"--region {settings.region!r} is not a known region code (e.g. IN, US, GB)")
        if settings.campaign_type not in CAMPAIGN_TYPES:
            raise ConfigError(f"--campaign-type must be one of {', '.join(CAMPAIGN_TYPES)}")
        self.defaults = self._checked_defaults(settings.defaults)
        self._default_campaign = self.defaults["campaignName"] or ""
        self._default_skill = self.defaults["skill"] or ""
        self._default_agent = self.defaults["agentId"] or ""
        self._needs_agent = settings.campaign_type == "agent-wise"
        self._needs_skill = settings.campaign_type == "skill-wise"
        self._clean_expiry = functools.partial(clean_expiry, today=today, date_order=settings.date_order,
                                               allow_past=settings.allow_past_expiry)
        # One memo per optional field (see _checked).
        self._priorities: dict[str, Any] = {}
        self._expiries: dict[str, Any] = {}
        self._actions: dict[str, Any] = {}
        self._check_duplicates: dict[str, Any] = {}
        self._duplicates = None if settings.keep_duplicates else DuplicateIndex()
        self._maps: dict[tuple[str, ...], ColumnMap] = {}
        self._mapped_any = False
        self._all_fields: dict[str, str] = {}
        self._all_passthrough: dict[tuple[str, str], None] = {}
        self._all_ignored: dict[str, None] = {}
        self._name_parts: list[str] = []

    def _checked_defaults(self, d: RowDefaults) -> dict[str, Any]:
        out: dict[str, Any] = {"campaignName": _text(d.campaign) or None,
                               "skill": _text(d.skill) or None, "agentId": _text(d.agent_id) or None,
                               "checkDuplicate": d.check_duplicate}
        for name, option, value, cleaner in (
                ("priority", "--priority", d.priority, clean_priority),
                ("action", "--action", d.action, clean_action)):
            cleaned, problem = cleaner(value)
            if problem:
                raise ConfigError(f"{option}: {problem}")
            out[name] = cleaned
        cleaned, problem = clean_expiry(d.expiry_date, today=self.today, date_order=self.settings.date_order,
                                        allow_past=self.settings.allow_past_expiry)
        if problem:
            raise ConfigError(f"--expiry-date: {problem}")
        out["expiryDate"] = cleaned
        return out

    def column_map_for(self, lead_file: LeadFile, keys: tuple[str, ...]) -> ColumnMap:
        """The map of one set of columns. JSON objects may each bring their own keys: each distinct
        set is mapped once, remembered (a bounded number of them), and added to the summary's map."""
        cmap = self._maps.get(keys)
        if cmap is None:
            cmap = build_column_map(keys, self.settings.user_map, source=lead_file.name)
            missing = [] if self._mapped_any else missing_columns(keys, self.settings.user_map)
            if missing:
                labels = self.settings.map_labels
                raise InputError(
                    f"{lead_file.name}: no column {labels.get(missing[0], missing[0])!r}, which the map sends to "
                    f"{self.settings.user_map[missing[0]]} (columns: "
                    f"{', '.join(column_label(k) for k in keys) or 'none'})")
            if not cmap.has_phone and not self._mapped_any:
                sheet = f"; this is {lead_file.sheet_note}" if lead_file.sheet_note else ""
                hint = "" if lead_file.keys is None else (
                    "; if the header is not the first row, give its line with --header-row N")
                raise InputError(
                    f"{lead_file.name}: no phone number column (columns: "
                    f"{', '.join(column_label(k) for k in keys) or 'none'}); name one 'phoneNumber' or "
                    f"map it with --map \"Your column=phoneNumber\"{sheet}{hint}")
            self._mapped_any = True
            if len(self._maps) >= _MAPS_MAX:
                self._maps.clear()
            self._maps[keys] = cmap
            for f, col in cmap.fields.items():
                self._all_fields.setdefault(f, col)
            self._all_passthrough.update(dict.fromkeys(cmap.passthrough))
            self._all_ignored.update(dict.fromkeys(cmap.ignored))
            self._name_parts = self._name_parts or cmap.name_parts
        return cmap

    @property
    def column_map(self) -> ColumnMap | None:
        """Every column seen, for reports."""
        if not self._mapped_any:
            return None
        return ColumnMap(fields=dict(self._all_fields), passthrough=list(self._all_passthrough),
                         ignored=list(self._all_ignored),
                         name_parts=self._name_parts)

    def _plan(self, cmap: ColumnMap) -> _RowPlan:
        f = cmap.fields.get
        return _RowPlan(phone=f("phoneNumber"), campaign=f("campaignName"), name=f("Name"),
                        skill=f("skill"), agent=f("agentId"), priority=f("priority"), expiry=f("expiryDate"),
                        action=f("action"), check_duplicate=f("checkDuplicate"), name_parts=cmap.name_parts,
                        other_phones=[(k, label) for k, label in cmap.passthrough if k in cmap.other_phones],
                        no_campaign=_no_campaign(cmap.ad_campaign), sent_keys=cmap.sent_keys,
                        passthrough=cmap.passthrough)

    def check_file(self, lead_file: LeadFile) -> Iterator[tuple[RowOutcome, dict[str, str] | None]]:
        """(outcome, body to send or None) for every row, in file order."""
        check_row = self.check_row
        if lead_file.keys is not None:
            # CSV and XLSX rows are lists in the header's order: one map, by position.
            cmap = self.column_map_for(lead_file, tuple(lead_file.keys)).positional(lead_file.keys)
            plan = self._plan(cmap)
            problems = lead_file.cell_problems
            if problems is not None:  # a workbook: it learns of more cells as its rows are read
                cell_problems = self._cell_problems
                for row, values in lead_file.rows():
                    outcome, body = check_row(row, values, plan)
                    if problems and (bad := problems.get(row)):
                        body = cell_problems(outcome, body, bad, cmap)
                    yield outcome, body
                return
            for row, values in lead_file.rows():
                yield check_row(row, values, plan)
            return
        last_keys: Any = None
        for row, values in lead_file.rows():
            # JSON objects may each have their own keys.
            keys = values.keys()  # type: ignore[union-attr]  # JSON rows are objects, never lists
            if keys != last_keys:
                last_keys = keys
                plan = self._plan(self.column_map_for(lead_file, tuple(last_keys)))
            yield check_row(row, values, plan)

    @staticmethod
    def _cell_problems(outcome: RowOutcome, body: dict[str, str] | None, bad: dict[int, str],
                       cmap: ColumnMap) -> dict[str, str] | None:
        """A workbook row with cells leadpush cannot take a value from as written (a formula saved
        without its result, an error cell, a number beyond a float's exact whole numbers): when
        the row sends one, it is invalid, saying so, and its body (returned) is None."""
        used = {i for i in cmap.field_keys if i is not None} | {i for i, _ in cmap.passthrough} | set(cmap.name_parts)
        phone = cmap.fields.get("phoneNumber")
        # An error cell or an inexact number in the phone column: the phone check refuses it
        # with its own cause (phone.spreadsheet_error, phone.scientific).
        said = [m if isinstance(m, Problem) else Problem("cell.no_value", m) for col, m in sorted(bad.items())
                if col in used and not (col == phone and getattr(m, "cause", "") != "cell.no_value")]
        if not said:
            return body
        # What the check said about the same cell ("phone number is empty") is said better.
        rest = [] if outcome.status is not _INVALID else [
            p for p in outcome.problems if cmap.fields.get(describe(p.cause).field or "") not in bad]
        outcome.status, outcome.problems = _INVALID, tuple(said + rest)
        outcome.message = "; ".join(outcome.problems)
        outcome.cause = ";".join(p.cause for p in outcome.problems)
        return None

    def check_row(self, row: int, values: list[Any] | dict[str, Any],
                  plan: _RowPlan) -> tuple[RowOutcome, dict[str, str] | None]:
        """The row's outcome, and the body to send when it is valid (and bodies are built)."""
        # A list row (CSV, XLSX) is read by position, a JSON object by key (None where absent).
        get = values.__getitem__ if isinstance(values, list) else values.get
        problems: list[Problem] = []
        if isinstance(values, dict):
            problems += _structured_values(values, plan.sent_keys)

        # Each column key is read from the plan once (`key := ...`): 18 attribute reads a row cost 5%.
        raw_phone = get(key) if (key := plan.phone) is not None else ""
        note: Problem | None = None
        if not self._region and isinstance(raw_phone, str) and _PHONE.fullmatch(raw_phone):
            phone: str | None = raw_phone  # the common case, a clean phone, takes the shortest way
            number: str | None = raw_phone
        else:
            phone, number, note = self._phone(raw_phone, problems, plan, get)
            if problems and problems[0].cause == "row.test_lead":
                return RowOutcome(row, _SKIPPED, str(problems[0]), _text(raw_phone), "", 0, None, values,
                                  "row.test_lead"), None

        campaign = (_text(get(key)) if (key := plan.campaign) is not None else "") or self._default_campaign
        if not campaign:
            problems.append(plan.no_campaign)
        skill = (_text(get(key)) if (key := plan.skill) is not None else "") or self._default_skill
        agent = (_text(get(key)) if (key := plan.agent) is not None else "") or self._default_agent
        if self._needs_agent and not agent:
            problems.append(Problem("agent.missing", "agentId is empty and the campaign is agent-wise; add an "
                                                     "agent column or pass --agent-id"))
        if self._needs_skill and not skill:
            problems.append(Problem("skill.missing", "skill is empty and the campaign is skill-wise; add a skill "
                                                     "column or pass --skill"))

        # The optional checked fields, each the same way (unrolled: a loop over them cost 7%).
        priority = expiry = action = check_duplicate = None
        if (key := plan.priority) is not None:
            raw = get(key)
            if raw is not None and raw != "":
                priority = _checked(self._priorities, clean_priority, raw, problems)
        if (key := plan.expiry) is not None:
            raw = get(key)
            if raw is not None and raw != "":
                expiry = _checked(self._expiries, self._clean_expiry, raw, problems)
        if (key := plan.action) is not None:
            raw = get(key)
            if raw is not None and raw != "":
                action = _checked(self._actions, clean_action, raw, problems)
        if (key := plan.check_duplicate) is not None:
            raw = get(key)
            if raw is not None and raw != "":
                check_duplicate = _checked(self._check_duplicates, clean_check_duplicate, raw, problems)

        if problems:
            return RowOutcome(row, _INVALID, "; ".join(problems), phone or _text(raw_phone), campaign,
                              0, None, values, ";".join(p.cause for p in problems), tuple(problems),
                              note.cause if note else ""), None
        assert phone is not None and number is not None
        if self._duplicates is not None:
            first = self._duplicates.first_row(campaign, number, row)
            if first != row:
                return RowOutcome(row, _SKIPPED, f"duplicate of row {first}", phone, campaign,
                                  0, None, values, "row.duplicate", (), note.cause if note else ""), None
        if note is None:
            outcome = RowOutcome(row, _VALID, "", phone, campaign, 0, None, values)
        else:
            outcome = RowOutcome(row, _VALID, str(note), phone, campaign, 0, None, values, "", (), note.cause)
        if not self.build_bodies:
            return outcome, None
        return outcome, self._body(plan, get, phone, campaign, skill, agent,
                                   (priority, expiry, action, check_duplicate))

    def _phone(self, raw: Any, problems: list[Problem], plan: _RowPlan,
               get: Callable[[Any], Any]) -> tuple[str | None, str | None, Problem | None]:
        """(phone to send, the number as the duplicate index knows it, note), or Nones with the
        reason added to `problems`. With --region the index keys on the parsed number, so
        9876543210, +91 98765 43210 and 09876543210 are one number."""
        phone, problem, note = read_phone(raw)
        if problem:
            problems.append(problem)
            return None, None, note
        if phone is None:
            problems.append(_empty_phone(plan, get))
            return None, None, note
        if not self._region:
            return phone, phone, note
        phone, number, problem = region_reading(phone, self._region, self.settings.phone_format)
        if problem:
            problems.append(problem)
        return phone, number, note

    def _body(self, plan: _RowPlan, get: Callable[[Any], Any], phone: str, campaign: str, skill: str,
              agent: str, optional: tuple[Any, ...]) -> dict[str, str]:
        """The Add Campaign Data body of a valid row: each field from its cell, else the default."""
        d = self.defaults
        priority, expiry, action, check_duplicate = (
            d[name] if value is None else value
            for name, value in zip(("priority", "expiryDate", "action", "checkDuplicate"), optional, strict=True))
        body = {"campaignName": campaign, "phoneNumber": phone}
        if plan.name is not None:
            name = _text(get(plan.name))
        else:  # First Name + Last Name, where the file splits it
            name = " ".join(part for part in (_text(get(k)) for k in plan.name_parts) if part)
        for key, value in (("Name", name), ("action", action), ("skill", skill), ("agentId", agent),
                           ("priority", priority), ("expiryDate", expiry)):
            if value:
                body[key] = value
        body["checkDuplicate"] = "TRUE" if check_duplicate else "FALSE"
        for key, sent_as in plan.passthrough:
            value = _text(get(key))
            if value:
                body[sent_as] = value
        return body
