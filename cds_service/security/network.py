"""SSRF guard for outbound calls to a caller-supplied ``fhirServer``.

A CDS request names the FHIR server the service should query. Without a guard, anyone who can
call the service can make it fetch arbitrary URLs from inside the hospital network (or the cloud
metadata endpoint). The guard enforces, for every request *and every redirect hop and paging
link*:

1. the URL is http(s), has no user-info, and normalises cleanly (dot segments removed, default
   port dropped, no encoded slashes in the path);
2. it starts with one of the ``fhir_servers`` prefixes allowed for the caller's issuer
   (prefix match on path-segment boundaries; ``None`` = no prefix restriction);
3. every address the host resolves to is allowed by the profile's address rules;
4. the TCP connection goes to an address that was checked (the guarded adapter re-resolves and
   re-checks at connect time and connects to the checked IP, so DNS rebinding between the check
   and the connect does not help);
5. redirects are followed only to the same host, at most a few times, each hop checked again;
6. a total time budget and a response size cap apply across all hops.

Typical use by the FHIR client::

    guard = network_policy.guard_for(caller.fhir_servers if caller else None)
    checked = guard.check_url(url)          # raises FhirAccessDenied
    response = guard.request("GET", checked.url, headers=..., budget=4.0)

or, with its own requests call: ``guard.check_url(url)`` before each request (including ``next``
links), ``session = guard.session()`` and ``allow_redirects=False``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence
from urllib.parse import unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

from cds_service.config import DEFAULT_FHIR_CONNECT_TIMEOUT, DEFAULT_FHIR_READ_TIMEOUT

from .errors import FhirAccessDenied

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_LENGTH = 4096
DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")

# Cloud instance-metadata endpoints: never reachable, whatever the profile says.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS resolver
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPAT = ipaddress.ip_network("::/96")


class UrlError(ValueError):
    """A URL that cannot be used for outbound access."""


# --------------------------------------------------------------------------------------------
# URL normalisation and prefix matching
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NormalisedUrl:
    scheme: str
    host: str  # lower-case, IDNA, IPv6 without brackets, no trailing dot
    port: int  # effective port
    path: str  # dot segments removed, never empty ("/" at least)
    query: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != DEFAULT_PORTS[self.scheme]:
            return f"{host}:{self.port}"
        return host

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    @property
    def url(self) -> str:
        return f"{self.origin}{self.path}" + (f"?{self.query}" if self.query else "")

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.url


def _normalise_path(path: str) -> str:
    # Decode percent-escapes of unreserved characters (RFC 3986 6.2.2.2) so "%2e%2e" cannot hide
    # a dot segment; upper-case the rest.
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    path = _PCT.sub(fix, path)
    upper = path.upper()
    if "%2F" in upper or "%5C" in upper or "%00" in upper:
        raise UrlError("encoded slash, backslash or NUL in path")
    # Remove dot segments (RFC 3986 5.2.4).
    out: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
            continue
        if segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(segment)
    result = "/".join(out)
    if not result.startswith("/"):
        result = "/" + result
    return result


def parse_url(url: str, *, allow_query: bool = True) -> NormalisedUrl:
    """Parse and normalise an absolute http(s) URL; raise UrlError if it is unusable."""
    if not isinstance(url, str):
        raise UrlError("URL must be a string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlError("URL too long")
    if _FORBIDDEN_CHARS.search(url):
        raise UrlError("URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlError(f"malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlError(f"scheme {scheme or '(none)'!r} is not http or https")
    if "@" in parts.netloc:
        raise UrlError("user-info in URL is not allowed")
    host = parts.hostname or ""
    if not host:
        raise UrlError("URL has no host")
    host = host.rstrip(".")
    if not host:
        raise UrlError("URL has no host")
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        ip = None
    if ip is not None:
        if "%" in host:
            raise UrlError("IPv6 zone identifiers are not allowed")
        host = ip.compressed
    else:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UrlError("host name is not valid IDNA") from None
        if not re.fullmatch(r"[a-z0-9.\-_]+", host):
            raise UrlError("host name has invalid characters")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UrlError("port out of range")
    path = _normalise_path(parts.path or "/")
    query = parts.query
    if query and not allow_query:
        raise UrlError("a URL prefix must not have a query string")
    return NormalisedUrl(scheme, host, port, path, query)


def normalise_url(url: str, *, allow_query: bool = True) -> str:
    """The normalised string form of ``url`` (see parse_url)."""
    return parse_url(url, allow_query=allow_query).url


def url_has_prefix(url: NormalisedUrl, prefix: NormalisedUrl) -> bool:
    """True if ``url`` is at or below ``prefix`` (same scheme, host and port; path on a segment
    boundary). ``https://fhir/r4`` allows ``https://fhir/r4/Patient`` but not ``https://fhir/r4x``."""
    if (url.scheme, url.host, url.port) != (prefix.scheme, prefix.host, prefix.port):
        return False
    base = prefix.path.rstrip("/")
    if not base:
        return True
    return url.path == base or url.path.startswith(base + "/")


# --------------------------------------------------------------------------------------------
# Address rules
# --------------------------------------------------------------------------------------------


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_COMPAT and int(ip) > 1:  # ::a.b.c.d (deprecated), but not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify_address(ip: IPAddress) -> str:
    """One of: metadata, unspecified, multicast, reserved, loopback, link-local, private, global.

    IPv6 forms that embed an IPv4 address (IPv4-mapped, 6to4, NAT64, IPv4-compatible) are
    classified by the embedded address, so ``::ffff:127.0.0.1`` is loopback.
    """
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        inner = classify_address(embedded)
        if inner != "global":
            return inner
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _ZERO_NET):
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if isinstance(ip, ipaddress.IPv4Address) and (ip.is_reserved or ip == _BROADCAST):
        return "reserved"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:
        return "private"
    return "global"


_ZERO_NET = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses outbound FHIR calls may reach.

    * global addresses: always;
    * loopback: if ``allow_loopback`` (dev profile) or ``allow_private``;
    * private (RFC 1918, ULA, CGNAT, ...) and link-local: only if ``allow_private``
      (``CDS_FHIR_ALLOW_PRIVATE=true``, for on-premise FHIR servers);
    * cloud metadata endpoints, unspecified (0.0.0.0, ::), multicast, broadcast and reserved:
      never.
    """

    allow_loopback: bool = False
    allow_private: bool = False

    def refusal(self, ip: IPAddress) -> str | None:
        """None if ``ip`` is allowed, else the category that makes it forbidden."""
        category = classify_address(ip)
        if category == "global":
            return None
        if category == "loopback" and (self.allow_loopback or self.allow_private):
            return None
        if category in ("private", "link-local") and self.allow_private:
            return None
        return category


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: list[str] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


# --------------------------------------------------------------------------------------------
# The guard
# --------------------------------------------------------------------------------------------


class FhirAccessGuard:
    """Checks outbound FHIR URLs for one caller (issuer prefixes + profile address rules)."""

    def __init__(
        self,
        policy: AddressPolicy,
        fhir_servers: Iterable[str] | None = None,
        *,
        resolver: Resolver | None = None,
        max_redirects: int = 3,
        max_response_bytes: int = 20 * 1024 * 1024,
        connect_timeout: float = DEFAULT_FHIR_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_FHIR_READ_TIMEOUT,
    ):
        self.policy = policy
        self.prefixes: tuple[NormalisedUrl, ...] | None = (
            None if fhir_servers is None else tuple(parse_url(p, allow_query=False) for p in fhir_servers)
        )
        self.resolver: Resolver = resolver or system_resolver
        self.max_redirects = max_redirects
        self.max_response_bytes = max_response_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    # -- checks ---------------------------------------------------------------------------

    def check_url(self, url: str) -> NormalisedUrl:
        """Normalise ``url``, check the issuer's prefixes and the resolved addresses.

        Returns the normalised URL (request *that* string). Raises FhirAccessDenied.
        """
        try:
            parsed = parse_url(url)
        except UrlError as exc:
            raise FhirAccessDenied(f"bad fhirServer URL: {exc}", None) from None
        if self.prefixes is not None and not any(url_has_prefix(parsed, p) for p in self.prefixes):
            raise FhirAccessDenied("fhirServer not in the issuer's fhir_servers", parsed.url)
        self.resolve_checked(parsed.host, parsed.port, url=parsed.url)
        return parsed

    def resolve_checked(self, host: str, port: int, *, url: str | None = None) -> list[str]:
        """Resolve ``host`` and return its addresses if *all* are allowed; else raise."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal.compressed]
        else:
            try:
                addresses = list(self.resolver(host, port))
            except (OSError, UnicodeError) as exc:
                raise FhirAccessDenied(f"cannot resolve fhirServer host ({exc.__class__.__name__})", url) from None
            if not addresses:
                raise FhirAccessDenied("fhirServer host resolves to no address", url)
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                raise FhirAccessDenied("resolver returned a non-IP address", url) from None
            refusal = self.policy.refusal(ip)
            if refusal is not None:
                raise FhirAccessDenied(f"fhirServer resolves to a {refusal} address", url)
        return addresses

    # -- transport --------------------------------------------------------------------------

    def session(self) -> requests.Session:
        """A requests Session whose connections re-check the address at connect time.

        It ignores proxy environment variables (a proxy would hide the real destination) and
        never follows redirects by itself (a 3xx comes back to the caller as is).
        """
        session = _NoRedirectSession()
        session.trust_env = False
        adapter = GuardedAdapter(self)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def request(
        self,
        method: str,
        url: str,
        *,
        session: requests.Session | None = None,
        budget: float = 10.0,
        **kwargs,
    ) -> requests.Response:
        """Send a request with the guard applied to every hop.

        Redirects (301/302/303/307/308) are followed only to the same host and port (an
        http→https upgrade on that host is allowed), at most ``max_redirects`` times. ``budget``
        is the total time in seconds for all hops including reading the body. The body is read
        fully (at most ``max_response_bytes``) before returning.
        """
        if kwargs.pop("allow_redirects", False):
            raise ValueError("the guard follows redirects itself; do not pass allow_redirects=True")
        kwargs.pop("timeout", None)
        kwargs.pop("stream", None)
        own_session = session is None
        session = session or self.session()
        deadline = time.monotonic() + budget
        try:
            current = self.check_url(url)
            first = current
            for hop in range(self.max_redirects + 1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FhirAccessDenied("FHIR time budget exhausted", current.url)
                timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
                response = session.request(
                    method, current.url, allow_redirects=False, stream=True, timeout=timeout, **kwargs
                )
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    response.close()
                    if hop == self.max_redirects:
                        raise FhirAccessDenied("too many redirects", current.url)
                    target = self.check_url(urljoin(current.url, location))
                    if target.host != first.host or not _same_port_or_upgrade(first, target):
                        raise FhirAccessDenied("redirect to another host refused", target.url)
                    if response.status_code == 303 or (
                        response.status_code in (301, 302) and method.upper() == "POST"
                    ):
                        method = "GET"
                        kwargs.pop("data", None)
                        kwargs.pop("json", None)
                    current = target
                    continue
                self._read_body(response, deadline)
                return response
            raise FhirAccessDenied("too many redirects", current.url)  # pragma: no cover
        finally:
            if own_session:
                session.close()

    def _read_body(self, response: requests.Response, deadline: float) -> None:
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_content(64 * 1024):
                total += len(chunk)
                if total > self.max_response_bytes:
                    raise FhirAccessDenied("FHIR response too large", response.url)
                if time.monotonic() > deadline:
                    raise FhirAccessDenied("FHIR time budget exhausted", response.url)
                chunks.append(chunk)
        finally:
            response.close()
        response._content = b"".join(chunks)  # requests' documented-in-practice preload slot
        response._content_consumed = True  # type: ignore[attr-defined]


class _NoRedirectSession(requests.Session):
    """A Session that never follows redirects on its own, even with allow_redirects=True: every
    hop must go through FhirAccessGuard.request (or the caller's own check_url)."""

    def get_redirect_target(self, resp):  # type: ignore[override]
        return None


def _same_port_or_upgrade(first: NormalisedUrl, target: NormalisedUrl) -> bool:
    if (first.scheme, first.port) == (target.scheme, target.port):
        return True
    return first.scheme == "http" and target.scheme == "https" and target.port == 443


class _GuardedConnectionMixin:
    """Resolves the host itself, checks every address, connects to a checked address."""

    _guard: FhirAccessGuard

    def _new_conn(self):  # type: ignore[override]
        host = self._dns_host  # type: ignore[attr-defined]
        port = self.port  # type: ignore[attr-defined]
        try:
            addresses = self._guard.resolve_checked(host, port)
        except FhirAccessDenied as exc:
            raise NewConnectionError(self, f"refused by SSRF guard: {exc.reason}") from exc
        last_error: OSError | None = None
        for address in addresses:
            try:
                return urllib3_connection.create_connection(
                    (address, port),
                    self.timeout,  # type: ignore[attr-defined]
                    source_address=self.source_address,  # type: ignore[attr-defined]
                    socket_options=self.socket_options,  # type: ignore[attr-defined]
                )
            except OSError as exc:
                last_error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")


class GuardedAdapter(HTTPAdapter):
    """requests transport adapter that applies the guard's address rules at connect time."""

    def __init__(self, guard: FhirAccessGuard, **kwargs):
        self._guard = guard
        super().__init__(max_retries=0, **kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        guard = self._guard
        http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), {"_guard": guard})
        https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), {"_guard": guard})
        http_pool = type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
        https_pool = type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = PoolManager(num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):  # pragma: no cover - defensive
        raise FhirAccessDenied("proxies are not used for guarded FHIR access", proxy)


@dataclass(frozen=True)
class NetworkPolicy:
    """Profile-level outbound rules; ``guard_for`` adds the caller's issuer prefixes."""

    addresses: AddressPolicy
    resolver: Resolver | None = None

    def guard_for(self, fhir_servers: Iterable[str] | None, **kwargs) -> FhirAccessGuard:
        return FhirAccessGuard(self.addresses, fhir_servers, resolver=self.resolver, **kwargs)
