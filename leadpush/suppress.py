"""Do-not-call (suppression) lists: numbers never to send, read once and kept as sorted 8-byte keys."""

from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import _DIGITS_MARK, _PLUS_MARK, _phonenumbers, _read_date, _text, clean_phone
from .mapping import build_column_map, normalize
from .outcomes import ConfigError, LeadpushError, RowOutcome, Status
from .readers import open_lead_file

# Headers of the optional column after whose date a number no longer suppresses.
EXPIRY_HEADERS = frozenset({"expiry", "until", "expirydate", "expires", "validuntil", "validtill",
                            "expiration", "expirationdate", "suppresseduntil"})
_SUPPRESSED, _VALID = Status.SUPPRESSED, Status.VALID
_MULT = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads runs of consecutive numbers over the table
_M64 = (1 << 64) - 1


def plain_key(phone: str) -> int:
    """A cleaned number as one int, as the in-file duplicate index makes it: '0123', '123' and
    '+123' differ (the digit count and the '+' sit above the digits), and it fits in 8 bytes."""
    if phone[0] == "+":
        return int(phone[1:]) + _PLUS_MARK[len(phone) - 1]
    return int(phone) + _DIGITS_MARK[len(phone)]


def region_key(phone: str, region: str) -> int | None:
    """A number read in `region` as its E.164 digits (None if it cannot be read), so that
    09876543210, +91 98765 43210 and 9876543210 are one number in IN."""
    pn = _phonenumbers()
    try:
        number = pn.parse(phone, region)
    except pn.NumberParseException:
        return None
    return plain_key(pn.format_number(number, pn.PhoneNumberFormat.E164))


class KeyTable:
    """A set of non-zero int keys in one array('q'): open addressing, linear probing, at most half full.

    A Python set of 5,000,000 ints costs about 60 bytes a number (entry plus int object); this
    costs 16-32. A sorted array would cost 8, but bisect boxes an int at each of its ~23 steps:
    2.4 us a lookup on 5M keys, where this table's 1-2 probes take well under one.
    """

    def __init__(self, keys: array) -> None:
        bits = max(4, (2 * len(keys)).bit_length())
        self.size = 1 << bits
        self.shift = 64 - bits
        self.mask = self.size - 1
        self.table = table = array("q", bytes(8 * self.size))  # 0 = empty (no key is 0)
        self.count = 0
        shift, mask, mult, m64 = self.shift, self.mask, _MULT, _M64
        for key in keys:
            i = ((key * mult) & m64) >> shift
            while True:
                held = table[i]
                if held == 0:
                    table[i] = key
                    self.count += 1
                    break
                if held == key:
                    break
                i = (i + 1) & mask

    def __contains__(self, key: int) -> bool:
        table, mask = self.table, self.mask
        i = ((key * _MULT) & _M64) >> self.shift
        while True:
            held = table[i]
            if held == key:
                return True
            if held == 0:
                return False
            i = (i + 1) & mask

    @property
    def nbytes(self) -> int:
        return self.size * 8


@dataclass
class SuppressionList:
    """One list file: its numbers as 8-byte keys in a KeyTable, and what was left out."""

    name: str
    keys: array  # array('q') while reading; emptied once the table is built
    table: KeyTable | None = None
    entries: int = 0  # numbers read
    expired: int = 0  # rows past their expiry date, left out

    def __contains__(self, key: int) -> bool:
        return self.table is not None and key in self.table


@dataclass
class Suppression:
    """Every list of a run; `screen` marks a checked row `suppressed` when a list holds its number."""

    lists: list[SuppressionList]
    region: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # list name -> rows it removed

    def __post_init__(self) -> None:
        self._tables = [(lst.name, lst.table.table, lst.table.mask, lst.table.shift)
                        for lst in self.lists if lst.table is not None]

    def key(self, phone: str) -> int | None:
        if self.region:
            return region_key(phone, self.region)
        return plain_key(phone)

    def screen(self, outcome: RowOutcome) -> bool:
        """True (and the row made `suppressed`) if its number is on a list; only valid rows are screened."""
        # Once per row: KeyTable's lookup is inlined here (a method call would double the cost).
        phone = outcome.phone
        if outcome.status is not _VALID or not phone:
            return False
        if self.region:
            key = region_key(phone, self.region)
            if key is None:
                return False
        elif phone[0] == "+":
            key = int(phone[1:]) + _PLUS_MARK[len(phone) - 1]
        else:
            key = int(phone) + _DIGITS_MARK[len(phone)]
        start = (key * _MULT) & _M64
        for name, table, mask, shift in self._tables:
            i = start >> shift
            while True:
                held = table[i]
                if held == key:
                    outcome.status, outcome.message = _SUPPRESSED, f"on do-not-call list {name}"
                    outcome.cause = "row.suppressed"
                    self.counts[name] = self.counts.get(name, 0) + 1
                    return True
                if held == 0:
                    break
                i = (i + 1) & mask
        return False

    def notes(self) -> list[str]:
        """What loading left out, for stderr."""
        out = []
        for lst in self.lists:
            skipped = []
            if lst.expired:
                skipped.append(f"{lst.expired} past their expiry date")
            if skipped:
                out.append(f"do-not-call list {lst.name}: {lst.entries} numbers; left out "
                           + " and ".join(skipped))
        return out


def load_suppression(paths: Sequence[str | Path], *, region: str | None, today: dt.date,
                     date_order: str | None = None) -> Suppression | None:
    """Read every list (CSV, TXT or XLSX). Unreadable input is a ConfigError (exit 2, nothing sent):
    a list that cannot be read in full is never applied in part."""
    if not paths:
        return None
    if region:
        region = region.upper()
        if region not in _phonenumbers().SUPPORTED_REGIONS:
            raise ConfigError(f"--region {region!r} is not a known region code (e.g. IN, US, GB)")
    return Suppression([read_list(str(p), region=region, today=today, date_order=date_order) for p in paths],
                       region=region)


# A delimiter no text list holds: a TXT list is read one number a line, never split into columns.
_ONE_COLUMN = "\x1f"


def read_list(path: str, *, region: str | None, today: dt.date, date_order: str | None = None) -> SuppressionList:
    """One list. A table (CSV, XLSX) needs a header naming its phone column; a TXT list, or a file
    whose first line is a number, is one number a line, read whole (never split on ; or |)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".json", ".jsonl", ".ndjson"):
        raise ConfigError(f"{path}: a do-not-call list must be CSV, TXT (one number a line) or XLSX")
    workbook = suffix in (".xlsx", ".xlsm")
    lead_file = _open(path, "xlsx" if workbook else "csv", None if workbook or suffix != ".txt" else _ONE_COLUMN)
    lst = SuppressionList(name=path, keys=array("q"))
    try:
        keys = lead_file.keys or []
        cmap = build_column_map(keys, {}, source=path)
        phone_col: int | None = None
        expiry_col = next((i for i, k in enumerate(keys) if normalize(k.strip()) in EXPIRY_HEADERS), None)
        if cmap.has_phone:
            phone_col = keys.index(cmap.fields["phoneNumber"])
        elif not workbook and lead_file.delimiter != _ONE_COLUMN and len(keys) == 1:
            # One column and no phone header: one number a line. Read again as whole lines, so
            # that no later line is split on a delimiter the first line happened to suggest.
            lead_file.close()
            lead_file = _open(path, "csv", _ONE_COLUMN)
            keys = lead_file.keys or []
        if phone_col is None:
            expiry_col = None
            if keys and clean_phone(keys[0])[0] is not None:
                phone_col = 0  # no header: the first line is already a number
                _add(lst, keys[0], region, path, 1)
            elif len(keys) == 1 and build_column_map(keys, {}, source=path).has_phone:
                phone_col = 0  # a one-word header such as 'phone'
            elif suffix == ".txt" and keys:
                _add(lst, keys[0], region, path, 1)  # says what the first line holds, and stops
            else:
                raise ConfigError(f"{path}: no phone number column in the do-not-call list (columns: "
                                  f"{', '.join(k.strip() for k in keys) or 'none'}); name one 'phone' or "
                                  f"give one number a line")
        dates: dict[Any, dt.date | None] = {}
        add, clean, append = _add, clean_phone, lst.keys.append
        try:
            row: Any
            for line, row in lead_file.rows():
                if expiry_col is not None:
                    until = _until(dates, row[expiry_col], path, line, keys[expiry_col], date_order)
                    if until is not None and until < today:
                        lst.expired += 1
                        continue
                raw = row[phone_col]
                phone = None if region else clean(raw)[0]
                if phone is None:
                    add(lst, raw, region, path, line)  # a region, an empty cell or a problem: the long way
                else:  # plain_key, inlined: once per number of a 5,000,000-number list
                    append(int(phone[1:]) + _PLUS_MARK[len(phone) - 1] if phone[0] == "+"
                           else int(phone) + _DIGITS_MARK[len(phone)])
                    lst.entries += 1
            # The reader sets aside trailing rows that look like a report's footer; in a list
            # they are entries it cannot read, and stop the run as any other.
            for line, _kind, text in lead_file.not_lead_rows:
                add(lst, text, region, path, line)
        except LeadpushError as e:
            raise ConfigError(str(e) if str(e).startswith("do-not-call list") else f"do-not-call list {e}") from None
    finally:
        lead_file.close()
    lst.table = KeyTable(lst.keys)
    lst.keys = array("q")
    if not lst.entries:
        raise ConfigError(f"{path}: the do-not-call list holds no phone numbers")
    return lst


def _open(path: str, fmt: str, delimiter: str | None) -> Any:
    try:
        return open_lead_file(path, fmt=fmt, delimiter=delimiter)
    except LeadpushError as e:
        raise ConfigError(f"do-not-call list {e}") from None


def list_key(raw: Any, region: str | None) -> tuple[int | None, str | None]:
    """A list cell's key, cleaned by exactly the function that cleans a lead's phone (so a cell
    "9876543210\n" or "98765 43210" is the lead 9876543210): (key, None), (None, None) for an
    empty cell, or (None, why it is not a number)."""
    phone, problem = clean_phone(raw)
    if phone is None:
        return None, None if problem is None else str(problem)
    key = region_key(phone, region) if region else plain_key(phone)
    if key is None:
        return None, f"phone number {_text(raw)!r} cannot be read as a number of region {region}"
    return key, None


def _add(lst: SuppressionList, raw: Any, region: str | None, path: str, line: int) -> None:
    key, problem = list_key(raw, region)
    if key is None:
        if problem is None:
            return  # an empty cell
        # A number this cannot read may be one that must not be dialled: the run stops.
        raise ConfigError(f"do-not-call list {path}: line {line}: {problem}; fix or remove it (a list that "
                          f"cannot be read in full is not applied)")
    lst.keys.append(key)
    lst.entries += 1


def _until(memo: dict[Any, dt.date | None], raw: Any, path: str, line: int, column: str,
           date_order: str | None = None) -> dt.date | None:
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    if raw in memo:
        return memo[raw]
    text = _text(raw)
    day = None
    if text:
        day, problem = _read_date(text, date_order)
        if problem:
            said = problem.replace("expiry date", "date")
            raise ConfigError(f"{path}: line {line}, column {column.strip()!r}: {said}")
    memo[raw] = day
    return day
