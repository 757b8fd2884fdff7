"""Telling people how a run went: webhooks, e-mail and heartbeat pings, none of which may change the run."""

from __future__ import annotations

from urllib.parse import urlsplit

from .outcomes import ConfigError


def check_url(url: str, where: str, *, mail: bool) -> str:
    """A webhook or heartbeat URL (https; plain http only to this machine), or with `mail` a mailto: address."""
    from .settings import is_loopback  # noqa: PLC0415 (settings imports this module lazily)

    parts = urlsplit(str(url).strip())
    if mail and parts.scheme == "mailto":
        if "@" not in parts.path:
            raise ConfigError(f"{where}: {url!r} is not an address such as mailto:ops@example.com")
        return str(url).strip()
    if parts.scheme not in ("http", "https") or not parts.hostname:
        kinds = "an https:// URL or mailto:ADDRESS" if mail else "an https:// URL"
        raise ConfigError(f"{where}: {url!r} is not {kinds}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"{where}: {url!r}: plain http is refused except to this machine; use https")
    return str(url).strip()
