"""Map a lead file's columns to CloudAgent's Add Campaign Data fields."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

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
# Set by leadpush itself from the settings, never from a file column (a column named so
# would otherwise be sent as a second, conflicting value).
RESERVED = {"username": "userName", "apikey": "apiKey", "authorization": "Authorization"}
IGNORED_PREFIX = "leadpush_"  # columns leadpush writes into a failures file

_SEPARATORS = re.compile(r"[\s_\-.]+")
_BY_ALIAS = {alias: f for f, aliases in _ALIASES.items() for alias in aliases}


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


@dataclass
class ColumnMap:
    """Which column feeds which field, for one set of columns."""

    fields: dict[str, str]  # CloudAgent field -> column key
    passthrough: list[tuple[str, str]]  # (column key, body key sent)
    ignored: list[str] = field(default_factory=list)  # column labels not sent, for the user

    @property
    def has_phone(self) -> bool:
        return "phoneNumber" in self.fields

    def positional(self, keys: list[str]) -> ColumnMap:
        """The same map by column position, for rows read as lists (CSV, XLSX)."""
        index = {k: i for i, k in enumerate(keys)}
        return ColumnMap(fields={f: index[k] for f, k in self.fields.items()},  # type: ignore[misc]
                         passthrough=[(index[k], sent) for k, sent in self.passthrough],  # type: ignore[misc]
                         ignored=self.ignored)


def build_column_map(columns: Iterable[str], user_map: dict[str, str | None], *,
                     source: str = "") -> ColumnMap:
    """Decide each column's role. Two columns for one field is an error: the user must choose."""
    fields: dict[str, str] = {}
    passthrough: list[tuple[str, str]] = []
    ignored: list[str] = []
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
        if target in FIELDS:
            if target in fields:
                where = f"{source}: " if source else ""
                raise InputError(f"{where}columns {fields[target].strip()!r} and {label!r} both map to "
                                 f"{target}; choose one with --map \"{label}=\" or rename a column")
            fields[target] = key
        else:
            passthrough.append((key, target or label))
    return ColumnMap(fields=fields, passthrough=passthrough, ignored=ignored)
