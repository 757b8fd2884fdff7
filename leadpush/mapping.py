"""Map a lead file's columns to CloudAgent's Add Campaign Data fields."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from .outcomes import ConfigError, InputError
from .readers import UNNAMED_PREFIX

# CloudAgent's body fields that leadpush checks; anything else passes through as-is.
FIELDS = ("phoneNumber", "campaignName", "Name", "action", "skill", "agentId",
          "priority", "expiryDate", "checkDuplicate")

_ALIASES = {
    "phoneNumber": ["phonenumber", "phone", "phoneno", "mobile", "mobilenumber", "mobileno",
                    "msisdn", "number", "contactnumber", "cell", "cellphone", "telephone", "tel"],
    "campaignName": ["campaignname", "campaign"],
    "Name": ["name", "fullname", "leadname", "customername", "contactname"],
    "action": ["action"],
    "skill": ["skill", "skillname"],
    "agentId": ["agentid", "agent", "agentname"],
    "priority": ["priority"],
    "expiryDate": ["expirydate", "expiry", "expires", "expiration", "expirationdate", "validtill"],
    "checkDuplicate": ["checkduplicate", "checkduplicates"],
}
# Headers other exports use (Indian CRMs, office sheets, lead marketplaces such as IndiaMART's
# SENDER_MOBILE / SENDER_NAME). Taken only where no column above names the field, so a file with
# both Phone and WhatsApp Number sends Phone as before, and WhatsApp Number passes through.
_MORE_ALIASES = {
    "phoneNumber": ["contactno", "contactnum", "mobno", "cellno", "cellnumber", "whatsappnumber", "whatsappno",
                    "whatsapp", "mobilephone", "mobilephonenumber", "customermobile", "customermobileno",
                    "customermobilenumber", "customerphone", "customerphoneno", "primaryphone", "primarymobile",
                    "phone1", "mobile1", "sendermobile", "sendermobileno", "phonenumber1"],
    "Name": ["clientname", "contactperson", "contactpersonname", "applicantname", "sendername", "leadfullname"],
}
# With no Name column, Name is built from these (HubSpot, Zoho, Salesforce split it in two).
_FIRST_NAME = ("firstname", "fname", "givenname")
_LAST_NAME = ("lastname", "lname", "surname", "familyname")
# Other columns that may hold a phone number (said on rows whose phone is empty).
_PHONE_LIKE = re.compile(r"phone|mobile|mobno|cell|whatsapp|contactno|contactnumber|msisdn|telephone")
# Columns that mark a file as an ad platform's lead export (Meta Lead Ads, Google Ads lead forms):
# there a campaign column names the *ad* campaign, which CloudAgent does not know, so it is not
# taken as campaignName unless --map says so (README: "Exports from ...").
_AD_PLATFORM_MARKS = frozenset({"adid", "adname", "adsetid", "adsetname", "formid", "formname", "isorganic",
                                "adgroup", "adgroupid", "adgroupname", "gclid", "creativeid", "campaignid"})

# Set by leadpush itself from the settings, never from a file column (a column named so
# would otherwise be sent as a second, conflicting value).
RESERVED = {"username": "userName", "apikey": "apiKey", "authorization": "Authorization"}
IGNORED_PREFIX = "leadpush_"  # columns leadpush writes into a failures file

_SEPARATORS = re.compile(r"[\s_\-.]+")
_BY_ALIAS = {alias: f for f, aliases in _ALIASES.items() for alias in aliases}
_BY_MORE_ALIAS = {alias: f for f, aliases in _MORE_ALIASES.items() for alias in aliases}


@functools.lru_cache(maxsize=1 << 16)
def normalize(header: str) -> str:
    """Header text as matched: case, spaces, '_', '-' and '.' do not count."""
    return _SEPARATORS.sub("", header.lower())


def parse_map_options(options: Iterable[str]) -> dict[str, str | None]:
    """`--map "Header=field"` options as {normalized header: field or None (drop)}."""
    result: dict[str, str | None] = {}
    for option in options:
        header, sep, target = option.partition("=")
        if not sep or not header.strip():
            raise ConfigError(f"--map {option!r}: write it as \"Column header=field\" "
                              f"(or \"Column header=\" to leave a column out)")
        target = target.strip()
        if target:
            target = _BY_ALIAS.get(normalize(target), target)
            if normalize(target) in RESERVED:
                raise ConfigError(f"--map {option!r}: {RESERVED[normalize(target)]} is set by leadpush, "
                                  f"not by a column")
        result[normalize(header)] = target or None
    return result


def field_name(target: str) -> str:
    """A map's target as sent: a CloudAgent field by its own name (`phone` -> phoneNumber), else as written."""
    return _BY_ALIAS.get(normalize(target), target)


def user_map_of(pairs: Mapping[str, str]) -> dict[str, str | None]:
    """A resolved map (header as written -> field, "" to leave out) as {normalized header: field or None}."""
    return parse_map_options(f"{header}={target}" for header, target in pairs.items())


def check_map(pairs: Mapping[str, str], where: str) -> None:
    """A map's fields, checked before any file is read: a field leadpush sets itself, or a near miss of a
    CloudAgent field ("phoneNumbr"), is one clear line; other names are custom fields, passed through."""
    for header, target in pairs.items():
        norm = normalize(str(target))
        if not str(header).strip():
            raise ConfigError(f"{where}: a column header is empty")
        if not norm or norm in _BY_ALIAS:
            continue
        if norm in RESERVED:
            raise ConfigError(f"{where}: {header!r} = {target!r}: {RESERVED[norm]} is set by leadpush, not by a column")
        near = difflib.get_close_matches(norm, list(_BY_ALIAS), n=1, cutoff=0.8)
        if near:
            raise ConfigError(f"{where}: {header!r} = {target!r}: no such CloudAgent field; did you mean "
                              f"{_BY_ALIAS[near[0]]!r}? (other names are sent as custom fields)")


def missing_columns(columns: Iterable[str], user_map: dict[str, str | None]) -> list[str]:
    """The normalized headers the map sends to a field but the file does not have."""
    have = {normalize(c.strip()) for c in columns}
    return [h for h, target in user_map.items() if target is not None and h not in have]


def maps_phone(cells: Iterable[object], user_map: dict[str, str | None]) -> bool:
    """Whether a row, read as the header, would give a phone column: how a header is told from the
    title rows a formatted report puts above it."""
    for cell in cells:
        norm = normalize(str(cell).strip())
        if norm:
            target = user_map[norm] if norm in user_map else _BY_ALIAS.get(norm)
            if target == "phoneNumber":
                return True
    return False


@dataclass
class ColumnMap:
    """Which column feeds which field, for one set of columns."""

    fields: dict[str, str]  # CloudAgent field -> column key
    passthrough: list[tuple[str, str]]  # (column key, body key sent)
    ignored: list[str] = field(default_factory=list)  # column labels not sent, for the user
    name_parts: list[str] = field(default_factory=list)  # with no Name column: first and last name columns
    other_phones: list[str] = field(default_factory=list)  # passed-through columns that look like phones
    ad_campaign: str | None = None  # an ad platform's campaign column, not taken as campaignName

    @property
    def has_phone(self) -> bool:
        return "phoneNumber" in self.fields

    def positional(self, keys: list[str]) -> ColumnMap:
        """The same map by column position, for rows read as lists (CSV, XLSX)."""
        index = {k: i for i, k in enumerate(keys)}
        return ColumnMap(fields={f: index[k] for f, k in self.fields.items()},  # type: ignore[misc]
                         passthrough=[(index[k], sent) for k, sent in self.passthrough],  # type: ignore[misc]
                         ignored=self.ignored, name_parts=[index[k] for k in self.name_parts],  # type: ignore[misc]
                         other_phones=[index[k] for k in self.other_phones],  # type: ignore[misc]
                         ad_campaign=self.ad_campaign)

    @cached_property
    def sent_keys(self) -> tuple[str, ...]:
        """The column keys whose values are sent (a field's or passed through)."""
        return tuple(dict.fromkeys([*self.fields.values(), *(k for k, _ in self.passthrough)]))

    @cached_property
    def field_keys(self) -> tuple[str | None, ...]:
        """The column key of each of FIELDS, in that order (None where no column feeds it)."""
        return tuple(self.fields.get(f) for f in FIELDS)


def build_column_map(columns: Iterable[str], user_map: dict[str, str | None], *,
                     source: str = "") -> ColumnMap:
    """Decide each column's role. Two columns for one field is an error: the user must choose."""
    columns = list(columns)
    fields: dict[str, str] = {}
    passthrough: list[tuple[str, str]] = []
    ignored: list[str] = []
    more: dict[str, list[str]] = {}  # field -> columns named by _MORE_ALIASES
    ad_platform = len({normalize(k) for k in columns} & _AD_PLATFORM_MARKS) >= 2
    ad_campaign = None
    for key in columns:
        if key.startswith(UNNAMED_PREFIX):
            ignored.append(f"column {key[len(UNNAMED_PREFIX):]} (no header)")
            continue
        label = key.strip()
        norm = normalize(label)
        if norm in user_map:
            target = user_map[norm]
            if target is None:
                ignored.append(label)
                continue
        elif label.lower().startswith(IGNORED_PREFIX):
            ignored.append(label)
            continue
        elif norm in RESERVED:
            ignored.append(label)
            continue
        else:
            target = _BY_ALIAS.get(norm)
            if target == "campaignName" and ad_platform:
                ad_campaign = label
                ignored.append(f"{label} (the ad platform's campaign, not a CloudAgent one)")
                continue
            if target is None and norm in _BY_MORE_ALIAS:
                more.setdefault(_BY_MORE_ALIAS[norm], []).append(key)
        if target in FIELDS:
            if target in fields:
                where = f"{source}: " if source else ""
                raise InputError(f"{where}columns {fields[target].strip()!r} and {label!r} both map to "
                                 f"{target}; choose one with --map \"{label}=\" or rename a column")
            fields[target] = key
        else:
            passthrough.append((key, target or label))
    taken: set[str] = set()
    for target, keys in more.items():
        if target in fields:
            continue
        if len(keys) > 1:
            where = f"{source}: " if source else ""
            raise InputError(f"{where}columns {keys[0].strip()!r} and {keys[1].strip()!r} both map to {target}; "
                             f"choose one with --map \"{keys[1].strip()}=\" or rename a column")
        fields[target] = keys[0]
        taken.add(keys[0])
    name_parts: list[str] = []
    if "Name" not in fields:
        by_norm = {normalize(k.strip()): k for k, _ in passthrough if k not in taken}
        name_parts = [by_norm[n] for group in (_FIRST_NAME, _LAST_NAME) for n in group if n in by_norm][:2]
        if not any(normalize(k.strip()) in _FIRST_NAME for k in name_parts):
            name_parts = []
        taken.update(name_parts)
    passthrough = [(k, sent) for k, sent in passthrough if k not in taken]
    other_phones = [k for k, _ in passthrough if _PHONE_LIKE.search(normalize(k.strip()))]
    return ColumnMap(fields=fields, passthrough=passthrough, ignored=ignored, name_parts=name_parts,
                     other_phones=other_phones, ad_campaign=ad_campaign)
