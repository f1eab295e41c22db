"""Cache of remote JWK Sets (issuer ``jwks_url`` / allow-listed ``jku``).

* Only URLs in the allow-list given at construction are ever fetched (the verifier also checks
  the jku against the issuer, this is a second line of defence).
* A fetched set is cached for ``lifetime`` seconds.
* An unknown ``kid`` triggers a refetch (key rotation), but at most once per
  ``min_refetch_interval`` seconds per URL, so a flood of tokens with random kids cannot turn
  the service into a request amplifier against the issuer.
* If a refetch fails, the previous (stale) set stays in use.
* requests with connect/read timeouts, no redirects, no proxies from the environment, and a
  body size cap.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import requests

from .errors import SecurityConfigError
from .issuers import validate_public_jwk
from .network import UrlError, normalise_url

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024


class JwksUnavailable(Exception):
    """The JWK Set could not be obtained (network, HTTP status, or bad content)."""


@dataclass
class _Entry:
    keys: dict[str, dict[str, Any]]
    fetched_at: float
    last_attempt: float = field(default=0.0)


Fetcher = Callable[[str], bytes]


class JwksCache:
    def __init__(
        self,
        allowed_urls: Iterable[str],
        *,
        lifetime: float = 300.0,
        min_refetch_interval: float = 30.0,
        max_stale: float = 24 * 3600.0,
        timeout: tuple[float, float] = (3.0, 5.0),
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._allowed = frozenset(normalise_url(u) for u in allowed_urls)
        self.lifetime = lifetime
        self.min_refetch_interval = min_refetch_interval
        self.max_stale = max_stale
        self.timeout = timeout
        self._fetch_bytes = fetcher or self._http_fetch
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self.fetch_count = 0  # for tests and metrics

    # -- public --------------------------------------------------------------------------

    def get_key(self, url: str, kid: str) -> Mapping[str, Any] | None:
        """The JWK with ``kid`` from the set at ``url``, or None if the set has no such key.

        Raises JwksUnavailable if there is no usable set at all, and SecurityConfigError if
        ``url`` is not allow-listed (a programming error upstream).
        """
        try:
            url = normalise_url(url)
        except UrlError:
            raise SecurityConfigError("JWK Set URL is not a valid URL") from None
        if url not in self._allowed:
            raise SecurityConfigError(f"refusing to fetch a JWK Set from a URL that is not allow-listed: {url}")
        with self._lock:
            now = self._clock()
            entry = self._entries.get(url)
            fresh = entry is not None and now - entry.fetched_at < self.lifetime
            if fresh and entry is not None and kid in entry.keys:
                return entry.keys[kid]
            # Stale, missing, or unknown kid: refetch, rate-limited per URL.
            if entry is None or now - entry.last_attempt >= self.min_refetch_interval:
                entry = self._refresh(url, entry, now)
            elif not fresh and now - entry.fetched_at > self.max_stale:
                entry = None
            if entry is None or not entry.keys:
                raise JwksUnavailable(f"no JWK Set available from {url}")
            return entry.keys.get(kid)

    # -- internals ------------------------------------------------------------------------

    def _refresh(self, url: str, entry: _Entry | None, now: float) -> _Entry | None:
        if entry is not None:
            entry.last_attempt = now
        try:
            self.fetch_count += 1
            keys = self._parse(self._fetch_bytes(url), url)
        except (JwksUnavailable, OSError, ValueError) as exc:  # RequestException is an OSError
            log.warning("JWK Set fetch from %s failed: %s", url, exc.__class__.__name__)
            if entry is None:
                # Remember the failure so a flood of requests does not hammer the URL.
                self._entries[url] = _Entry(keys={}, fetched_at=float("-inf"), last_attempt=now)
                return None
            if now - entry.fetched_at > self.max_stale:
                return None
            return entry  # keep using the previous set while the issuer is unreachable
        new = _Entry(keys=keys, fetched_at=now, last_attempt=now)
        self._entries[url] = new
        return new

    @staticmethod
    def _parse(raw: bytes, url: str) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise JwksUnavailable(f"JWK Set at {url} is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise JwksUnavailable(f"JWK Set at {url} has no 'keys' list")
        keys: dict[str, dict[str, Any]] = {}
        for index, jwk in enumerate(data["keys"]):
            try:
                validate_public_jwk(jwk, f"{url} keys[{index}]")
            except SecurityConfigError as exc:
                # Skip keys we cannot use (e.g. encryption keys) rather than failing the set.
                log.info("ignoring key in JWK Set: %s", exc)
                continue
            keys.setdefault(jwk["kid"], dict(jwk))
        if not keys:
            raise JwksUnavailable(f"JWK Set at {url} has no usable signing keys")
        return keys

    def _http_fetch(self, url: str) -> bytes:
        if self._session is None:
            session = requests.Session()
            session.trust_env = False
            self._session = session
        response = self._session.get(
            url,
            timeout=self.timeout,
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/json, application/jwk-set+json"},
        )
        try:
            if response.status_code != 200:
                raise JwksUnavailable(f"HTTP {response.status_code} from {url}")
            body = b""
            for chunk in response.iter_content(16 * 1024):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksUnavailable(f"JWK Set at {url} is too large")
            return body
        finally:
            response.close()
