"""Local checks: turn each row of a lead file into a CloudAgent request body, or say what is wrong."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .causes import Problem, describe
from .mapping import ColumnMap, build_column_map, missing_columns
from .outcomes import ConfigError, InputError, RowOutcome, Status
from .readers import LeadFile, column_label


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

_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
_SEPARATORS = re.compile(r"[\s\-().\u00a0]")
_TRAILING_ZERO = re.compile(r"\.0+$")
_PHONE = re.compile(r"^\+?\d{3,16}$")
_PRIORITY = re.compile(r"^\d+(?:\.0*)?$")
_WHOLE = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_YMD_DATE = re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})$")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
# Keys of the duplicate index: a phone has at most 16 digits (below 10**17), so its digit count,
# '+' and campaign go in above that.
_DIGITS_MARK = [n * 10**17 for n in range(18)]
_PLUS_MARK = [(n + 20) * 10**17 for n in range(18)]
_CAMPAIGN_STRIDE = 40 * 10**17
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
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value).strip()


_MAPS_MAX = 4096  # distinct JSON key sets whose column map is remembered
_MEMO_MAX = 4096  # distinct values remembered per field (bounded: memory must not grow with the file)


def _cached(memo: dict[str, Any], cleaner: Any, raw: Any) -> tuple[Any, Problem | None]:
    """cleaner(raw), remembered for text values (JSON may hand in unhashable lists)."""
    if raw.__class__ is not str:
        return cleaner(raw)
    hit = memo.get(raw)
    if hit is None:
        hit = cleaner(raw)
        if len(memo) < _MEMO_MAX:
            memo[raw] = hit
    return hit


def _str(value: Any) -> str:
    """_text with a fast way for the common case, a cell already read as text."""
    return value.strip() if value.__class__ is str else _text(value)


def clean_phone(value: Any) -> tuple[str | None, Problem | None]:
    """(cleaned phone, None) or (None, problem). Empty gives (None, None)."""
    raw = _text(value)
    if not raw:
        return None, None
    text = raw.lstrip("'").strip()
    if _SCIENTIFIC.match(text):
        return None, Problem("phone.scientific", f"phone number {raw!r} is in scientific notation, so the "
                                                 f"spreadsheet has already lost its last digits; format the "
                                                 f"column as text and export the file again")
    text = _SEPARATORS.sub("", _TRAILING_ZERO.sub("", text))
    if _PHONE.match(text):
        return text, None
    digits = sum(c.isdigit() for c in text)
    if digits and text.lstrip("+").isdigit():
        return None, Problem("phone.length", f"phone number {raw!r} has {digits} digits; CloudAgent takes "
                                             f"3 to 16 (an optional leading + allowed)")
    return None, Problem("phone.invalid", f"phone number {raw!r} is not valid: use 3 to 16 digits with an optional "
                                          f"leading +; spaces, dashes, dots and brackets are removed for you")


def region_phone(phone: str, region: str, phone_format: str) -> tuple[str | None, Problem | None]:
    """Check a cleaned phone against a region with `phonenumbers`, and rewrite it if asked."""
    phonenumbers = _phonenumbers()

    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as e:
        return None, Problem("phone.region",
                             f"phone number {phone!r} cannot be read as a {region} number ({e._msg})")
    if not phonenumbers.is_valid_number(number):
        return None, Problem("phone.region", f"phone number {phone!r} is not a valid {region} number")
    actual = phonenumbers.region_code_for_number(number)
    if actual != region:
        return None, Problem("phone.other_region",
                             f"phone number {phone!r} is a number of {actual}, not of {region}")
    if phone_format == "e164":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None
    if phone_format == "national":
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        return re.sub(r"\D", "", national), None
    return phone, None


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
    readings = {}
    for order in ([date_order] if date_order else ["day", "month"]):
        reading = _dateutil_read(raw, dayfirst=(order == "day"))
        if reading == "incomplete":
            return None, Problem("date.incomplete",
                                 f"expiry date {raw!r} is incomplete: give day, month and year (YYYY-MM-DD)")
        if reading is not None:
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

def _structured_values(values: dict[str, Any], cmap: ColumnMap) -> list[Problem]:
    """A JSON array or object where CloudAgent takes text: the row is refused, not sent as '["C1"]'."""
    problems: list[Problem] = []
    for key in cmap.sent_keys:
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
        if settings.region:
            settings.region = settings.region.upper()
            if settings.region not in _phonenumbers().SUPPORTED_REGIONS:
                raise ConfigError(f"--region {settings.region!r} is not a known region code (e.g. IN, US, GB)")
        if settings.campaign_type not in CAMPAIGN_TYPES:
            raise ConfigError(f"--campaign-type must be one of {', '.join(CAMPAIGN_TYPES)}")
        self.defaults = self._checked_defaults(settings.defaults)
        # Read once here, not per row.
        self._region = settings.region
        self._keep_duplicates = settings.keep_duplicates
        self._default_campaign = self.defaults["campaignName"] or ""
        self._default_skill = self.defaults["skill"]
        self._default_agent = self.defaults["agentId"]
        self._clean_expiry = functools.partial(clean_expiry, today=today, date_order=settings.date_order,
                                               allow_past=settings.allow_past_expiry)
        # Exports repeat the same few priorities, dates and flags: each distinct text is read once.
        self._priorities: dict[str, Any] = {}
        self._expiries: dict[str, Any] = {}
        self._actions: dict[str, Any] = {}
        self._dups: dict[str, Any] = {}
        self._needs_agent = settings.campaign_type == "agent-wise"
        self._needs_skill = settings.campaign_type == "skill-wise"
        self._seen: dict[int, int] = {}
        self._campaign_ids: dict[str, int] = {}
        self._last_campaign: str | None = None
        self._last_cid = 0
        self._maps: dict[tuple[str, ...], ColumnMap] = {}
        self._mapped_any = False
        self._all_fields: dict[str, str] = {}
        self._all_passthrough: dict[tuple[str, str], None] = {}
        self._all_ignored: dict[str, None] = {}

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
        return cmap

    @property
    def column_map(self) -> ColumnMap | None:
        """Every column seen, for reports."""
        if not self._mapped_any:
            return None
        return ColumnMap(fields=dict(self._all_fields), passthrough=list(self._all_passthrough),
                         ignored=list(self._all_ignored))

    def check_file(self, lead_file: LeadFile) -> Iterator[tuple[RowOutcome, dict[str, str] | None]]:
        """(outcome, body to send or None) for every row, in file order."""
        check_row = self.check_row
        if lead_file.keys is not None:
            # CSV and XLSX rows are lists in the header's order: one map, by position.
            cmap = self.column_map_for(lead_file, tuple(lead_file.keys)).positional(lead_file.keys)
            if lead_file.cell_problems:
                yield from self._check_cell_problems(lead_file, cmap)
                return
            for row, values in lead_file.rows():
                yield check_row(row, values, cmap)
            return
        last_keys: Any = None
        for row, values in lead_file.rows():
            # JSON objects may each have their own keys.
            if values.keys() != last_keys:
                last_keys = values.keys()
                cmap = self.column_map_for(lead_file, tuple(last_keys))
            yield check_row(row, values, cmap)

    def _check_cell_problems(self, lead_file: LeadFile,
                             cmap: ColumnMap) -> Iterator[tuple[RowOutcome, dict[str, str] | None]]:
        """check_row, and a row that takes a field from a cell without a value (a workbook formula
        saved without its result) is invalid, saying so: it must not go out with the cell empty."""
        problems = lead_file.cell_problems or {}
        used = {i for i in cmap.field_keys if i is not None} | {i for i, _ in cmap.passthrough}
        for row, values in lead_file.rows():
            outcome, body = self.check_row(row, values, cmap)
            bad = problems.get(row)
            said = [Problem("cell.no_value", m) for col, m in sorted(bad.items()) if col in used] if bad else []
            if said:
                # What the check said about the same cell ("phone number is empty") is said better.
                rest = [] if outcome.status is not _INVALID else [
                    p for p in outcome.problems if cmap.fields.get(describe(p.cause).field or "") not in bad]  # type: ignore[operator]
                outcome.status, outcome.problems, body = _INVALID, tuple(said + rest), None
                outcome.message = "; ".join(outcome.problems)
                outcome.cause = ";".join(p.cause for p in outcome.problems)
            yield outcome, body

    def check_row(self, row: int, values: list[Any] | dict[str, Any],
                  cmap: ColumnMap) -> tuple[RowOutcome, dict[str, str] | None]:
        # The hot path of every command: one call per row, so fields without a column cost
        # nothing and the common clean values take the shortest way.
        (k_phone, k_campaign, k_name, k_action, k_skill, k_agent, k_priority, k_expiry,
         k_dup) = cmap.field_keys
        # A list row (CSV, XLSX) is read by position, a JSON object by key (None where absent).
        get = values.__getitem__ if values.__class__ is list else values.get  # type: ignore[union-attr]
        problems: list[Problem] = []
        if values.__class__ is dict:
            problems += _structured_values(values, cmap)

        raw_phone = get(k_phone) if k_phone is not None else ""
        if raw_phone.__class__ is str and _PHONE.match(raw_phone):
            phone: str | None = raw_phone
        else:
            phone, problem = clean_phone(raw_phone)
            if problem:
                problems.append(problem)
            elif phone is None:
                problems.append(Problem("phone.empty", "phone number is empty"))
        if phone is not None and self._region:
            phone, problem = region_phone(phone, self._region, self.settings.phone_format)
            if problem:
                problems.append(problem)

        campaign = get(k_campaign) if k_campaign is not None else ""
        if campaign.__class__ is not str:
            campaign = _text(campaign)
        campaign = campaign.strip() or self._default_campaign
        if not campaign:
            problems.append(Problem("campaign.missing", "no campaign: add a campaignName column or pass --campaign"))
        skill = (_str(get(k_skill)) if k_skill is not None else "") or self._default_skill
        agent = (_str(get(k_agent)) if k_agent is not None else "") or self._default_agent
        if self._needs_agent and not agent:
            problems.append(Problem("agent.missing", "agentId is empty and the campaign is agent-wise; add an "
                                                     "agent column or pass --agent-id"))
        if self._needs_skill and not skill:
            problems.append(Problem("skill.missing", "skill is empty and the campaign is skill-wise; add a skill "
                                                     "column or pass --skill"))

        priority = action = expiry = check_dup = None
        if k_priority is not None:
            raw = get(k_priority)
            if raw is not None and raw != "":
                priority, problem = _cached(self._priorities, clean_priority, raw)
                if problem:
                    problems.append(problem)
        if k_expiry is not None:
            raw = get(k_expiry)
            if raw is not None and raw != "":
                expiry, problem = _cached(self._expiries, self._clean_expiry, raw)
                if problem:
                    problems.append(problem)
        if k_action is not None:
            action, problem = _cached(self._actions, clean_action, get(k_action))
            if problem:
                problems.append(problem)
        if k_dup is not None:
            check_dup, problem = _cached(self._dups, clean_check_duplicate, get(k_dup))
            if problem:
                problems.append(problem)

        if problems:
            return RowOutcome(row, _INVALID, "; ".join(problems), phone or _text(raw_phone), campaign,
                              0, None, values, ";".join(p.cause for p in problems), tuple(problems)), None
        assert phone is not None
        if not self._keep_duplicates:
            # The in-file duplicate index (keys: see _campaign_id), inlined: this runs once per row.
            if campaign != self._last_campaign:
                self._last_campaign, self._last_cid = campaign, self._campaign_id(campaign)
            if phone[0] == "+":
                key = int(phone[1:]) + _PLUS_MARK[len(phone) - 1] + self._last_cid
            else:
                key = int(phone) + _DIGITS_MARK[len(phone)] + self._last_cid
            first = self._seen.setdefault(key, row)
            if first != row:
                return RowOutcome(row, _SKIPPED, f"duplicate of row {first}", phone, campaign,
                                  0, None, values, "row.duplicate"), None
        outcome = RowOutcome(row, _VALID, "", phone, campaign, 0, None, values)
        if not self.build_bodies:
            return outcome, None

        d = self.defaults
        body = {"campaignName": campaign, "phoneNumber": phone}
        name = _str(get(k_name)) if k_name is not None else ""
        if name:
            body["Name"] = name
        for key, value in (("action", action or d["action"]), ("skill", skill), ("agentId", agent),
                           ("priority", priority or d["priority"]),
                           ("expiryDate", expiry or d["expiryDate"])):
            if value:
                body[key] = value
        body["checkDuplicate"] = "TRUE" if (d["checkDuplicate"] if check_dup is None else check_dup) else "FALSE"
        for key, sent_as in cmap.passthrough:
            value = _text(get(key))
            if value:
                body[sent_as] = value
        return outcome, body

    def _campaign_id(self, campaign: str) -> int:
        """The duplicate index's key is one int: the phone's digits, their count and '+' above
        them (so "0123", "123" and "+123" differ), and the campaign's number above that. A
        million rows cost about 100 MB this way, where (campaign, phone) tuples would cost three
        times that."""
        cid = self._campaign_ids.get(campaign)
        if cid is None:
            cid = self._campaign_ids[campaign] = len(self._campaign_ids) * _CAMPAIGN_STRIDE
        return cid
