"""Settings from flags, environment, a config file's profile and defaults — and where each came from."""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .outcomes import ConfigError

# Settings a profile may hold, with the type its value must have.
PROFILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "base_url": str, "username": str, "api_key": str, "api_key_env": str,
    "rate": str, "workers": int, "retries": int, "timeout": (int, float),
    "campaign": str, "skill": str, "agent_id": str, "priority": (str, int), "expiry_date": str,
    "action": str, "check_duplicate": bool, "region": str, "phone_format": str, "campaign_type": str,
    "suppress": list, "skip_loaded_within": str, "skip_scope": str,
}
SECRET = "api_key"
# Built-in defaults of the settings that have one (the command line declares its options with these).
DEFAULTS: dict[str, Any] = {"base_url": "https://in1-ccaas-api.ozonetel.com", "rate": "100/min", "workers": 4, "retries": 3, "timeout": 30.0,
                            "check_duplicate": True, "phone_format": "as-is", "campaign_type": "any"}


@dataclass
class Setting:
    value: Any
    source: str  # "flag", "environment (NAME)", "profile NAME (PATH)", "default"


def default_config_path() -> Path:
    from platformdirs import user_config_dir  # noqa: PLC0415

    return Path(user_config_dir("leadpush")) / "config.toml"


@dataclass
class Profile:
    name: str | None
    path: Path | None
    values: dict[str, Any]
    warnings: list[str]

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
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: [profiles] must be a table of [profiles.NAME] tables")
    warnings = []
    if any(isinstance(p, dict) and SECRET in p for p in profiles.values()):
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(f"{path} holds an API key and other users can read it; fix with: chmod 600 {path}")
    if name is None:
        return Profile(None, path, {}, warnings)
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
    return Profile(name, path, dict(values), warnings)


def resolve(given: Mapping[str, tuple[Any, str]], profile: Profile) -> dict[str, Setting]:
    """Each setting from flag > environment > profile > default.

    `given` holds what the command line parser saw: name -> (value, how it came: "flag",
    "environment (NAME)" or "default").
    """
    out: dict[str, Setting] = {}
    for name, (value, source) in given.items():
        if source == "default" and name in profile.values:
            out[name] = Setting(profile.values[name], profile.label)
        else:
            out[name] = Setting(value, source)
    return out


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


def masked(name: str, value: Any) -> str:
    if name == SECRET or name.endswith("token"):
        return "(set, hidden)" if value else "(not set)"
    return "(not set)" if value is None else str(value)
