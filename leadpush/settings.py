"""Settings from flags, environment, a config file's profile and defaults — where each came from — and
the checks every setting passes whatever its source."""

from __future__ import annotations

import copy
import ipaddress
import math
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .checks import CampaignType, PhoneFormat
from .ledger import SkipScope, parse_window
from .outcomes import ConfigError

# Settings a profile may hold, with the type its value must have.
PROFILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "base_url": str, "username": str, "api_key": str, "api_key_env": str,
    "rate": str, "workers": int, "retries": int, "timeout": (int, float),
    "campaign": str, "skill": str, "agent_id": str, "priority": (str, int), "expiry_date": str,
    "action": str, "check_duplicate": bool, "region": str, "phone_format": str, "campaign_type": str,
    "suppress": list, "skip_loaded_within": str, "skip_scope": str,
    # how to read a file, and how to check it
    "map": dict, "header_row": int, "sheet": str, "encoding": str, "delimiter": str,
    "dayfirst": bool, "monthfirst": bool, "allow_past_expiry": bool, "keep_duplicates": bool,
    # around the run
    "notify": list, "heartbeat": str,
}
# A profile key whose setting (and command-line option) has another name.
PROFILE_NAMES = {"map": "map_options"}
SECRET = "api_key"
DEFAULT_BASE_URL = "https://in1-ccaas-api.ozonetel.com"
# Environment variables that set an option, by setting name (others have none: secrets and
# choices a run should state).
ENV_VARS = {"base_url": "LEADPUSH_BASE_URL", "username": "LEADPUSH_USERNAME"}
# Ranges a numeric setting must lie in, from any source.
RANGES: dict[str, tuple[float, float]] = {"workers": (1, 64), "retries": (0, 20), "timeout": (0.1, 3600.0)}


class Source(StrEnum):
    """Where a setting's value came from (config show prints it; errors name it)."""

    FLAG = "flag"
    ENVIRONMENT = "environment"
    PROFILE = "profile"
    PROMPT = "prompt"
    DEFAULT = "default"


@dataclass
class Setting:
    value: Any
    source: str  # "flag", "environment (NAME)", "profile NAME (PATH)", "prompt", "default"


@dataclass
class RunSettings:
    """Every setting a command can take from a flag, the environment or a profile, resolved.

    The field defaults are the built-in defaults (the command line declares its options with them).
    """

    base_url: str = DEFAULT_BASE_URL
    username: str | None = None
    rate: str = "100/min"
    workers: int = 4
    retries: int = 3
    timeout: float = 30.0
    campaign: str | None = None
    skill: str | None = None
    agent_id: str | None = None
    priority: str | None = None
    expiry_date: str | None = None
    action: str | None = None
    check_duplicate: bool = True
    region: str | None = None
    phone_format: PhoneFormat = PhoneFormat.AS_IS
    campaign_type: CampaignType = CampaignType.ANY
    suppress: list[str] | None = None  # do-not-call list files
    skip_loaded_within: str | None = None  # such as 30d: see ledger.parse_window
    skip_scope: SkipScope = SkipScope.CAMPAIGN
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    # column header as written -> field ("" leaves the column out); a profile's map, then --map on top
    map_options: dict[str, str] = field(default_factory=dict)
    dayfirst: bool = False
    monthfirst: bool = False
    allow_past_expiry: bool = False
    keep_duplicates: bool = False
    notify: list[str] = field(default_factory=list)
    heartbeat: str | None = None
    # name -> where its value came from, for config show and for errors
    sources: dict[str, str] = field(default_factory=dict, repr=False)

    def source(self, name: str) -> str:
        return self.sources.get(name, Source.DEFAULT.value)


SETTING_NAMES = tuple(f.name for f in fields(RunSettings) if f.name != "sources")
_DEFAULT_SETTINGS = RunSettings()
DEFAULTS: dict[str, Any] = {name: getattr(_DEFAULT_SETTINGS, name) for name in SETTING_NAMES}
# Settings whose values a profile may hold only as these element types.
_ELEMENTS: dict[str, type] = {"map": str, "notify": str}


def default_config_path() -> Path:
    from platformdirs import user_config_dir  # noqa: PLC0415

    return Path(user_config_dir("leadpush")) / "config.toml"


def default_cache_dir() -> Path:
    """Where tokens and locks are kept between runs: LEADPUSH_CACHE_DIR, else the user cache folder."""
    env = os.environ.get("LEADPUSH_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir  # noqa: PLC0415

    return Path(user_cache_dir("leadpush"))


def load_toml(path: Path | str) -> dict[str, Any]:
    """A TOML file, or one line saying why it cannot be had."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


@dataclass
class Profile:
    name: str | None
    path: Path | None
    values: dict[str, Any]
    warnings: list[str]
    smtp: dict[str, Any] = field(default_factory=dict)  # the config file's [smtp] table

    @property
    def label(self) -> str:
        return f"profile {self.name} ({self.path})"


def load_profile(name: str | None, path: Path | None, *, explicit_path: bool) -> Profile:
    """The named profile of the config file. No file and no profile asked for: an empty profile."""
    path = path or default_config_path()
    if not path.exists():
        if name or explicit_path:
            raise ConfigError(f"{path}: no such config file" + (f" (for --profile {name})" if name else ""))
        return Profile(None, None, {}, [])
    data = load_toml(path)
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: [profiles] must be a table of [profiles.NAME] tables")
    warnings = []
    if any(isinstance(p, dict) and SECRET in p for p in profiles.values()):
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(f"{path} holds an API key and other users can read it; fix with: chmod 600 {path}")
    if name is None:
        return Profile(None, path, {}, warnings, smtp=_smtp_table(data, path))
    if name not in profiles or not isinstance(profiles[name], dict):
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"{path}: no profile {name!r} (profiles: {known})")
    values = profiles[name]
    for key, value in values.items():
        expected = PROFILE_KEYS.get(key)
        if expected is None:
            raise ConfigError(f"{path}: profile {name!r}: unknown setting {key!r} "
                              f"(known: {', '.join(PROFILE_KEYS)})")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: profile {name!r}: {key} has the wrong type ({type(value).__name__})")
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        if any(not isinstance(v, _ELEMENTS.get(key, object)) for v in items):
            raise ConfigError(f"{path}: profile {name!r}: every value of {key} must be text")
    return Profile(name, path, {PROFILE_NAMES.get(k, k): v for k, v in values.items()}, warnings,
                   smtp=_smtp_table(data, path))


def resolve(given: Mapping[str, tuple[Any, str]], profile: Profile) -> RunSettings:
    """Each setting from flag > environment > profile > default, checked by one rule whatever its source.

    `given` holds what the command line parser saw for the settings the command takes:
    name -> (value, how it came: "flag", "environment (NAME)" or "default"). Settings the
    command does not take come from the profile or the defaults.
    """
    out = RunSettings()
    for name in SETTING_NAMES:
        value, source = given.get(name, (DEFAULTS[name], Source.DEFAULT.value))
        if name == "map_options":
            value, source = _merged_map(value, source, profile)
        elif source == Source.DEFAULT.value:
            value = profile.values[name] if name in profile.values else copy.copy(DEFAULTS[name])
            source = profile.label if name in profile.values else source
        setattr(out, name, check_setting(name, value, source))
        out.sources[name] = source
    _one_date_order(out)
    return out


def _merged_map(flags: Any, source: str, profile: Profile) -> tuple[dict[str, str], str]:
    """The profile's map with each --map on top (a flag wins for its column; the others stay)."""
    merged = dict(profile.values.get("map_options", {}))
    given: dict[str, str] = {}
    for option in flags or []:
        header, sep, target = str(option).partition("=")
        if not sep or not header.strip():
            raise ConfigError(f"--map {option!r}: write it as \"Column header=field\" "
                              f"(or \"Column header=\" to leave a column out)")
        given[header] = target
    merged.update(given)
    sources = [s for s, used in ((profile.label, profile.values.get("map_options")), (source, given)) if used]
    return merged, " and ".join(sources) or Source.DEFAULT.value


def _one_date_order(s: RunSettings) -> None:
    """--dayfirst and --monthfirst exclude each other; a flag overrides the other one from a profile."""
    if not (s.dayfirst and s.monthfirst):
        return
    day, month = s.source("dayfirst"), s.source("monthfirst")
    if day.startswith(Source.PROFILE.value) == month.startswith(Source.PROFILE.value):
        if day == month == Source.FLAG.value:
            raise ConfigError("--dayfirst and --monthfirst exclude each other")
        raise ConfigError(f"dayfirst (from {day}) and monthfirst (from {month}) exclude each other")
    if day.startswith(Source.PROFILE.value):
        s.dayfirst, s.sources["dayfirst"] = False, Source.DEFAULT.value
    else:
        s.monthfirst, s.sources["monthfirst"] = False, Source.DEFAULT.value


def check_setting(name: str, value: Any, source: str) -> Any:
    """The one check of a setting's value, the same for a flag, a variable and a profile."""
    if value is None:
        return None
    where = f"{name.replace('_', '-')} (from {source})"
    if name in RANGES:
        low, high = RANGES[name]
        number = float(value) if name == "timeout" else value
        if not isinstance(number, (int, float)) or not math.isfinite(number) or not low <= number <= high:
            raise ConfigError(f"{where} must be between {low:g} and {high:g}, not {value!r}")
        return number
    if name == "phone_format":
        return _choice(PhoneFormat, value, where)
    if name == "campaign_type":
        return _choice(CampaignType, value, where)
    if name == "priority":
        return str(value)
    if name == "encoding":
        return check_encoding(value, source)
    if name == "rate":
        from .pacing import parse_rate  # noqa: PLC0415

        option = "--rate" + ("" if source == Source.FLAG.value else f" (from {source})")
        parse_rate(value, option=option)  # also refuses a rate no account could have
        return value
    if name == "skip_scope":
        return _choice(SkipScope, value, where)
    if name == "skip_loaded_within":
        try:
            parse_window(str(value))
        except ConfigError:
            raise ConfigError(f"{where} must be a duration such as 30d, 12h or 2w, not {value!r}") from None
        return str(value)
    if name == "suppress":
        if not isinstance(value, list) or not all(isinstance(v, (str, Path)) for v in value):
            raise ConfigError(f"{where} must be a list of file names")
        return [str(v) for v in value] or None
    if name == "header_row" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"{where} counts lines from 1, not {value!r}")
    if name == "delimiter" and value != "tab" and len(str(value)) != 1:
        raise ConfigError(f"{where} must be one character or 'tab', not {value!r}")
    if name == "map_options":
        from .mapping import check_map  # noqa: PLC0415 (mapping imports the readers)

        check_map(value, where)
    if name in ("notify", "heartbeat"):
        from .notify import check_url  # noqa: PLC0415

        for url in value if isinstance(value, list) else [value]:
            check_url(url, where, mail=name == "notify")
    return value


def check_encoding(name: str | None, source: str = "flag") -> str | None:
    """--encoding: a text encoding Python knows (not rot13 or zlib, which are not text encodings)."""
    if name is None:
        return None
    import codecs  # noqa: PLC0415

    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        raise ConfigError(f"encoding (from {source}): unknown encoding {name!r}; use a name such as utf-8, "
                          f"cp1252 or utf-16") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ConfigError(f"encoding (from {source}): {name!r} is not a text encoding; use a name such as "
                          f"utf-8, cp1252 or utf-16")
    return name


def _smtp_table(data: dict[str, Any], path: Path) -> dict[str, Any]:
    smtp = data.get("smtp", {})
    if not isinstance(smtp, dict):
        raise ConfigError(f"{path}: [smtp] must be a table (host, port, starttls, username, password_env, from)")
    known: dict[str, type | tuple[type, ...]] = {
        "host": str, "port": int, "starttls": bool, "username": str, "password_env": str, "from": str,
        "timeout": (int, float), "attach_limit_kb": int}
    if "password" in smtp:
        raise ConfigError(f"{path}: [smtp]: write password_env (the name of a variable holding the password), "
                          f"not the password")
    for key, value in smtp.items():
        if key not in known:
            raise ConfigError(f"{path}: [smtp]: unknown setting {key!r} (known: {', '.join(known)})")
        if not isinstance(value, known[key]) or (known[key] is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: [smtp]: {key} has the wrong type ({type(value).__name__})")
    return dict(smtp)


def _choice(kind: type[Enum], value: Any, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{where} must be one of {', '.join(str(k.value) for k in kind)}, "
                          f"not {value!r}") from None


def resolve_api_key(profile: Profile, env: Mapping[str, str]) -> Setting | None:
    """The API key: LEADPUSH_API_KEY, else the profile's api_key_env variable, else its api_key."""
    if env.get("LEADPUSH_API_KEY"):
        return Setting(env["LEADPUSH_API_KEY"], "environment (LEADPUSH_API_KEY)")
    var = profile.values.get("api_key_env")
    if var:
        if not env.get(var):
            raise ConfigError(f"{profile.label}: api_key_env names {var}, which is not set")
        return Setting(env[var], f"environment ({var}, named by {profile.label})")
    if profile.values.get(SECRET):
        return Setting(profile.values[SECRET], profile.label)
    return None


def shown_api_key(profile: Profile, env: Mapping[str, str]) -> Setting:
    """The api_key row of `config show`: the key resolve_api_key finds, or why there is none. A
    profile's api_key_env naming a variable that is not set is said here, not refused: this is
    the command that helps find it (upload and auth check still refuse)."""
    var = profile.values.get("api_key_env")
    if var and not env.get("LEADPUSH_API_KEY") and not env.get(var):
        return Setting(None, f"api_key_env {var} is not set (named by {profile.label})")
    return resolve_api_key(profile, env) or Setting(
        None, "not set: LEADPUSH_API_KEY, api_key_env or api_key in a profile")


def masked(name: str, value: Any) -> str:
    if name == SECRET or name.endswith("token"):
        return "(set, hidden)" if value else "(not set)"
    if name in ("notify", "heartbeat") and value:
        from .notify import shown_url  # noqa: PLC0415

        # A webhook's path and a monitor's query string are often its key: shown as the warnings show them.
        value = [u if str(u).startswith("mailto:") else shown_url(str(u))
                 for u in (value if isinstance(value, list) else [value])]
    if isinstance(value, dict):
        return ", ".join(f'"{header}={target}"' for header, target in value.items()) or "(none)"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return "(not set)" if value is None else str(value)


@dataclass(frozen=True)
class Connection:
    """Where and as whom to send. The key never appears in a repr, a message or a file."""

    base_url: str
    username: str
    api_key: str = field(repr=False)
    given_token: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.api_key, self.given_token) if s)


def connection(settings: RunSettings, api_key: Setting | None, env: Mapping[str, str]) -> Connection:
    """The checked connection of a run: base URL, user, API key and an optional LEADPUSH_TOKEN."""
    if not settings.username:
        raise ConfigError("no user name: pass --username, set LEADPUSH_USERNAME, or use a --profile")
    if api_key is None:
        raise ConfigError("no API key: set LEADPUSH_API_KEY, or api_key_env in a --profile (there is no flag "
                          "for it: command-line arguments are visible to every user of the machine)")
    token = env.get("LEADPUSH_TOKEN")
    return Connection(check_base_url(settings.base_url), str(settings.username).strip(),
                      check_secret(api_key.value, f"the API key (from {api_key.source})"),
                      check_secret(token, "LEADPUSH_TOKEN") if token else None)


def check_base_url(url: str) -> str:
    """https only, except plain http to this machine (the sandbox)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        raise ConfigError(f"base URL {url!r} is not a URL such as {DEFAULT_BASE_URL}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {url!r} is not a URL such as {DEFAULT_BASE_URL}")
    if "@" in parts.netloc or parts.query or parts.fragment or url.strip().endswith(("?", "#")):
        # A key or password pasted there would be sent and stored with every run: refused, and
        # not repeated in the message.
        raise ConfigError(f"the base URL for {parts.hostname or 'CloudAgent'} holds more than scheme, host and "
                          f"path: write it without a user name, password, query (?...) or fragment (#...); the "
                          f"API key goes in LEADPUSH_API_KEY or a profile's api_key_env")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"base URL {url!r}: plain http is refused (the API key would cross the network "
                          f"unencrypted); use https, or http only to this machine (the sandbox)")
    return url.strip().rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_secret(value: str, what: str) -> str:
    value = value.strip()
    # A control character or space would make requests fail with the value in its message.
    if not value or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in value):
        raise ConfigError(f"{what} is empty or holds spaces or control characters")
    # It travels in an HTTP header, which holds Latin-1 only (the value itself is never shown).
    if not all(ord(c) < 256 for c in value):
        raise ConfigError(f"{what} holds characters an HTTP header cannot carry (only Latin-1 can be sent); "
                          f"check that it was copied correctly")
    return value
