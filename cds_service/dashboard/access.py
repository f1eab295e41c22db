"""Who may open /dashboard.

* dev profile, nothing configured: open to loopback callers only (a browser on the same machine),
  and never to a request that a proxy forwarded (it would carry someone else's access).
* production, nothing configured: off (404), so a deployment never publishes it by accident.
* ``basic``: HTTP Basic against a file of ``name:argon2-hash`` lines (``CDS_DASHBOARD_USERS``).
* ``proxy``: the reverse proxy authenticates; its user header is believed only on connections
  from the configured proxy addresses (``CDS_DASHBOARD_PROXIES``).

An EHR's bearer token is never a credential here. Every refusal is the same bare 401.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cds_service.config import ConfigError, Settings

from werkzeug.datastructures import Headers

REALM = 'Basic realm="cds-service dashboard", charset="UTF-8"'
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
_USER_NAME = re.compile(r"^[^:\s][^:]{0,127}$")
_PROXY_USER = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")  # printable ASCII, as proxies send it
_HASHER = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Checked when the user name is unknown, so a wrong name costs as long as a wrong password."""
    return _HASHER.hash("not a password of anyone")


def load_users(path: str) -> dict[str, str]:
    """``name:hash`` per line (``#`` comments and blank lines ignored). Errors name the line,
    never its content (it holds a password hash)."""
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"CDS_DASHBOARD_USERS: cannot read {path}: {getattr(error, 'strerror', None) or error}") \
            from None
    users: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, hashed = line.partition(":")
        if not _USER_NAME.match(name) or not hashed.startswith("$argon2"):
            raise ConfigError(f"CDS_DASHBOARD_USERS: line {number} of {path} is not 'name:$argon2…' "
                              "(make one with: cds-service dashboard-user NAME)")
        if name in users:
            raise ConfigError(f"CDS_DASHBOARD_USERS: user on line {number} of {path} is listed twice")
        users[name] = hashed
    if not users:
        raise ConfigError(f"CDS_DASHBOARD_USERS: {path} lists no user")
    return users


def _networks(items: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _address(remote: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


@dataclass
class DashboardAccess:
    """The access rule in force, decided once at start-up from the settings."""

    mode: str  # "loopback", "off", "basic" or "proxy"
    users: Mapping[str, str] = field(default_factory=dict)
    proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    proxy_header: str = "X-Forwarded-User"

    @classmethod
    def from_settings(cls, settings: Settings) -> "DashboardAccess":
        mode = settings.dashboard_auth
        if mode == "basic":
            return cls("basic", users=load_users(settings.dashboard_users_path or ""))
        if mode == "proxy":
            return cls("proxy", proxies=_networks(settings.dashboard_proxies),
                       proxy_header=settings.dashboard_proxy_header)
        if mode == "off":
            return cls("off")
        return cls("loopback" if settings.profile == "dev" else "off")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def allows(self, remote_addr: str | None, headers: Mapping[str, str] | Headers) -> bool:
        """True when this request may see the dashboard (``headers`` as the request sent them)."""
        if self.mode == "loopback":
            address = _address(remote_addr)
            forwarded = any(headers.get(name) for name in FORWARDING_HEADERS)
            return address is not None and address.is_loopback and not forwarded
        if self.mode == "proxy":
            address = _address(remote_addr)
            user = (headers.get(self.proxy_header) or "").strip()
            return (address is not None and any(address in network for network in self.proxies)
                    and bool(_PROXY_USER.match(user)))
        if self.mode == "basic":
            return self._basic(headers.get("Authorization") or "")
        return False

    def _basic(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        name, separator, password = decoded.partition(":")
        if not separator or len(password) > 1024:
            return False
        hashed = self.users.get(name)
        try:
            return _HASHER.verify(hashed or _dummy_hash(), password) and hashed is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    @property
    def challenge(self) -> dict[str, str]:
        """The 401's headers: a Basic challenge only where a password would help."""
        return {"WWW-Authenticate": REALM} if self.mode == "basic" else {}
