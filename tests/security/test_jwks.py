"""Remote JWK Sets: allow-listed fetch only, cache lifetime, rate-limited refetch on unknown kid,
stale keys kept when the issuer is down, and the verifier end to end with a jwks_url issuer."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cds_service.security.errors import AuthenticationError, SecurityConfigError
from cds_service.security.issuers import IssuerRegistry, parse_issuer_entry
from cds_service.security.jwks import JwksCache, JwksUnavailable
from cds_service.security.jwt_verifier import JwtVerifier
from sec_helpers import AUD, EC_KID, ISS, public_jwk

URL = "https://ehr.example.org/.well-known/jwks.json"


class FakeFetcher:
    def __init__(self, body):
        self.body = body
        self.urls: list[str] = []

    def __call__(self, url):
        self.urls.append(url)
        if isinstance(self.body, Exception):
            raise self.body
        return json.dumps(self.body).encode() if not isinstance(self.body, bytes) else self.body


def test_fetches_only_allow_listed_urls(keys):
    fetcher = FakeFetcher(keys.jwks())
    cache = JwksCache([URL], fetcher=fetcher)
    assert cache.get_key(URL, EC_KID)["kid"] == EC_KID
    with pytest.raises(SecurityConfigError, match="not allow-listed"):
        cache.get_key("https://attacker.example/jwks.json", EC_KID)
    assert fetcher.urls == [URL]


def test_cache_lifetime_and_rate_limited_refetch_on_unknown_kid(keys):
    now = [0.0]
    fetcher = FakeFetcher(keys.jwks())
    cache = JwksCache([URL], fetcher=fetcher, lifetime=300, min_refetch_interval=30, clock=lambda: now[0])
    assert cache.get_key(URL, EC_KID)
    assert cache.get_key(URL, EC_KID)
    assert len(fetcher.urls) == 1  # cached
    # Unknown kid: refetch only once per interval, however many tokens arrive.
    now[0] = 40
    for _ in range(50):
        assert cache.get_key(URL, "rotated-key") is None
    assert len(fetcher.urls) == 2
    # The issuer rotates keys; after the interval the new kid is found.
    rotated = public_jwk(keys.other_ec, "rotated-key")
    fetcher.body = {"keys": [rotated]}
    now[0] = 80
    assert cache.get_key(URL, "rotated-key")["kid"] == "rotated-key"
    assert len(fetcher.urls) == 3
    # Expiry of the lifetime forces a refetch even for a known kid.
    now[0] = 80 + 301
    cache.get_key(URL, "rotated-key")
    assert len(fetcher.urls) == 4


def test_stale_keys_are_kept_while_the_issuer_is_down(keys):
    now = [0.0]
    fetcher = FakeFetcher(keys.jwks())
    cache = JwksCache([URL], fetcher=fetcher, lifetime=60, min_refetch_interval=10, max_stale=3600, clock=lambda: now[0])
    assert cache.get_key(URL, EC_KID)
    fetcher.body = OSError("down")
    now[0] = 120
    assert cache.get_key(URL, EC_KID)["kid"] == EC_KID
    now[0] = 4000
    with pytest.raises(JwksUnavailable):
        cache.get_key(URL, EC_KID)


@pytest.mark.parametrize("body", [b"<html>", {"nokeys": []}, {"keys": [{"kty": "oct", "kid": "s", "k": "AA"}]}])
def test_bad_jwk_sets_are_unavailable(body):
    cache = JwksCache([URL], fetcher=FakeFetcher(body))
    with pytest.raises(JwksUnavailable):
        cache.get_key(URL, EC_KID)


def test_verifier_with_jwks_url_issuer(keys, tokens, replay_cache):
    fetcher = FakeFetcher(keys.jwks())
    issuer = parse_issuer_entry({"iss": ISS, "jwks_url": URL, "fhir_servers": []}, "t")
    registry = IssuerRegistry([issuer])
    cache = JwksCache(registry.fetchable_urls(), fetcher=fetcher)
    verifier = JwtVerifier(registry, replay_cache, jwks_cache=cache)
    assert verifier.verify(tokens.make(headers={"jku": URL}), AUD).iss == ISS
    assert verifier.verify(tokens.make(headers={"jku": ...}), AUD).iss == ISS
    with pytest.raises(AuthenticationError, match="jku"):
        verifier.verify(tokens.make(headers={"jku": "https://ehr.example.org/evil.json"}), AUD)
    assert set(fetcher.urls) == {URL}


def test_jwks_unreachable_is_a_401_not_a_crash(tokens, replay_cache):
    issuer = parse_issuer_entry({"iss": ISS, "jwks_url": URL}, "t")
    registry = IssuerRegistry([issuer])
    cache = JwksCache(registry.fetchable_urls(), fetcher=FakeFetcher(OSError("down")))
    verifier = JwtVerifier(registry, replay_cache, jwks_cache=cache)
    with pytest.raises(AuthenticationError, match="unavailable"):
        verifier.verify(tokens.make(headers={"jku": ...}), AUD)


class _JwksHandler(BaseHTTPRequestHandler):
    body = b""
    hits: list = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/jwks.json")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_real_http_fetch_does_not_follow_redirects(keys):
    handler = type("H", (_JwksHandler,), {"body": json.dumps(keys.jwks()).encode(), "hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        good = f"http://127.0.0.1:{server.server_port}/jwks.json"
        redirect = f"http://127.0.0.1:{server.server_port}/redirect"
        cache = JwksCache([good, redirect], timeout=(2, 2))
        assert cache.get_key(good, EC_KID)["kid"] == EC_KID
        with pytest.raises(JwksUnavailable):
            cache.get_key(redirect, EC_KID)
        assert handler.hits == ["/jwks.json", "/redirect"]
    finally:
        server.shutdown()
        server.server_close()
