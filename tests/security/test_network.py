"""SSRF guard: URL normalisation, issuer prefixes, address rules after DNS resolution, connect-time
re-check (DNS rebinding), redirects, time budget and size cap. Only 127.0.0.1 is contacted."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from cds_service.security.errors import FhirAccessDenied
from cds_service.security.network import (
    AddressPolicy,
    FhirAccessGuard,
    UrlError,
    classify_address,
    normalise_url,
    parse_url,
    url_has_prefix,
)

PRODUCTION = AddressPolicy(allow_loopback=False, allow_private=False)
DEV = AddressPolicy(allow_loopback=True, allow_private=False)
ON_PREM = AddressPolicy(allow_loopback=False, allow_private=True)


def fake_resolver(table):
    def resolve(host, port):
        if host not in table:
            raise OSError("NXDOMAIN")
        value = table[host]
        return value() if callable(value) else list(value)

    return resolve


PUBLIC = fake_resolver({"fhir.example.org": ["93.184.216.34"], "evil.example": ["93.184.216.34"]})


# ---------------------------------------------------------------------------------------------
# Address classification and rules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address,category",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::127.0.0.1", "loopback"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 wrapping 10.0.0.1
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("93.184.216.34", "global"),
        ("2606:4700:4700::1111", "global"),
    ],
)
def test_classify_address(address, category):
    assert classify_address(ipaddress.ip_address(address)) == category


def test_profile_address_rules():
    ip = ipaddress.ip_address
    assert PRODUCTION.refusal(ip("127.0.0.1")) == "loopback"
    assert DEV.refusal(ip("127.0.0.1")) is None
    assert DEV.refusal(ip("10.0.0.1")) == "private"
    assert ON_PREM.refusal(ip("10.0.0.1")) is None
    assert ON_PREM.refusal(ip("127.0.0.1")) is None
    assert ON_PREM.refusal(ip("169.254.10.10")) is None
    for policy in (PRODUCTION, DEV, ON_PREM):
        assert policy.refusal(ip("169.254.169.254")) == "metadata"
        assert policy.refusal(ip("0.0.0.0")) == "unspecified"
        assert policy.refusal(ip("224.0.0.1")) == "multicast"
        assert policy.refusal(ip("93.184.216.34")) is None


# ---------------------------------------------------------------------------------------------
# URL normalisation and prefixes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url,expected",
    [
        ("HTTPS://FHIR.Example.ORG:443/r4/Patient", "https://fhir.example.org/r4/Patient"),
        ("http://fhir.example.org:80", "http://fhir.example.org/"),
        ("https://fhir.example.org./r4/./a/../b", "https://fhir.example.org/r4/b"),
        ("https://fhir.example.org/r4/%2e%2e/admin", "https://fhir.example.org/admin"),
        ("https://fhir.example.org/r4/%7Efoo?x=%2F", "https://fhir.example.org/r4/~foo?x=%2F"),
        ("http://[::FFFF:127.0.0.1]:8080/x", "http://[::ffff:7f00:1]:8080/x"),
        ("https://bücher.example/r4", "https://xn--bcher-kva.example/r4"),
        ("https://fhir.example.org/r4#frag", "https://fhir.example.org/r4"),
    ],
)
def test_normalise_url(url, expected):
    assert normalise_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://fhir.example.org/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
        "//fhir.example.org/r4",
        "fhir.example.org/r4",
        "https://user:pw@fhir.example.org/",
        "https://fhir.example.org@127.0.0.1/",
        "https://fhir.example.org\\@127.0.0.1/",
        "https://fhir.example.org/r4/..%2f..%2fadmin",
        "https://fhir.example.org/ r4",
        "https://fhir.example.org:99999/",
        "https:///r4",
        "https://[fe80::1%25eth0]/",
        "https://" + "a" * 5000 + ".example/",
    ],
)
def test_unusable_urls(url):
    with pytest.raises(UrlError):
        parse_url(url)


def test_prefix_match_is_on_segment_boundaries():
    prefix = parse_url("https://fhir.example.org/r4", allow_query=False)
    assert url_has_prefix(parse_url("https://fhir.example.org/r4"), prefix)
    assert url_has_prefix(parse_url("https://fhir.example.org/r4/Patient/1?_x=1"), prefix)
    assert url_has_prefix(parse_url("https://FHIR.example.org:443/r4/./Patient"), prefix)
    assert not url_has_prefix(parse_url("https://fhir.example.org/r4evil"), prefix)
    assert not url_has_prefix(parse_url("https://fhir.example.org/r4/../admin"), prefix)
    assert not url_has_prefix(parse_url("http://fhir.example.org/r4/Patient"), prefix)
    assert not url_has_prefix(parse_url("https://fhir.example.org:8443/r4/Patient"), prefix)
    assert not url_has_prefix(parse_url("https://fhir.example.org.evil.example/r4"), prefix)


def test_check_url_enforces_issuer_prefixes():
    guard = FhirAccessGuard(PRODUCTION, ["https://fhir.example.org/r4/"], resolver=PUBLIC)
    assert guard.check_url("https://fhir.example.org/r4/Patient/123").path == "/r4/Patient/123"
    for url in (
        "https://evil.example/r4/Patient",
        "https://fhir.example.org/r5/Patient",
        "https://fhir.example.org/r4/../../admin",
        "http://fhir.example.org/r4/Patient",
    ):
        with pytest.raises(FhirAccessDenied):
            guard.check_url(url)


def test_empty_prefix_list_allows_nothing():
    guard = FhirAccessGuard(PRODUCTION, [], resolver=PUBLIC)
    with pytest.raises(FhirAccessDenied, match="not in the issuer"):
        guard.check_url("https://fhir.example.org/r4/Patient")


def test_no_prefixes_means_address_rules_only():
    guard = FhirAccessGuard(PRODUCTION, None, resolver=PUBLIC)
    assert guard.check_url("https://evil.example/anything").host == "evil.example"


# ---------------------------------------------------------------------------------------------
# Address rules applied to URLs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/fhir",
        "http://127.1/fhir",
        "http://2130706433/fhir",  # 127.0.0.1 as one decimal number
        "http://0x7f000001/fhir",
        "http://localhost/fhir",  # real resolver: resolves to loopback
        "http://[::1]/fhir",
        "http://[::ffff:127.0.0.1]/fhir",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://0.0.0.0:8080/",
        "http://10.0.0.5/fhir",
        "http://192.168.0.10/fhir",
        "http://[fe80::1]/fhir",
    ],
)
def test_production_refuses_internal_addresses(url):
    guard = FhirAccessGuard(PRODUCTION, None)
    with pytest.raises(FhirAccessDenied):
        guard.check_url(url)


def test_hostname_resolving_to_loopback_or_metadata_is_refused():
    resolver = fake_resolver(
        {
            "loop.attacker.example": ["127.0.0.1"],
            "meta.attacker.example": ["169.254.169.254"],
            "mixed.attacker.example": ["93.184.216.34", "10.0.0.7"],
            "v6.attacker.example": ["::1"],
        }
    )
    guard = FhirAccessGuard(PRODUCTION, None, resolver=resolver)
    for host in ("loop", "meta", "mixed", "v6"):
        with pytest.raises(FhirAccessDenied, match="resolves to a"):
            guard.check_url(f"https://{host}.attacker.example/fhir")
    with pytest.raises(FhirAccessDenied, match="cannot resolve"):
        guard.check_url("https://nxdomain.attacker.example/fhir")


def test_dev_allows_loopback_but_not_metadata_or_private():
    guard = FhirAccessGuard(DEV, None)
    assert guard.check_url("http://127.0.0.1:8080/fhir").host == "127.0.0.1"
    assert guard.check_url("http://localhost:8080/fhir").host == "localhost"
    for url in ("http://169.254.169.254/", "http://10.0.0.1/", "http://[fd00::1]/"):
        with pytest.raises(FhirAccessDenied):
            guard.check_url(url)


def test_allow_private_admits_on_premise_but_never_metadata():
    guard = FhirAccessGuard(ON_PREM, None)
    assert guard.check_url("http://10.20.30.40/fhir").host == "10.20.30.40"
    with pytest.raises(FhirAccessDenied, match="metadata"):
        guard.check_url("http://169.254.169.254/latest/meta-data/")


# ---------------------------------------------------------------------------------------------
# Real HTTP on 127.0.0.1: redirects, rebinding, time budget, size cap
# ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_response(404)
            self.end_headers()
            return
        kind, value = route
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", value.replace("{port}", str(self.server.server_port)))
            self.end_headers()
        elif kind == "slow":
            time.sleep(value)
            try:
                self._json({"slow": True})
            except OSError:
                pass  # the client gave up, as intended
        elif kind == "big":
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.end_headers()
            self.wfile.write(b"x" * value)
        else:
            self._json(value)

    def _json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    handler = type("Handler", (_Handler,), {"routes": {}, "hits": []})
    handler.routes.update(
        {
            "/fhir/Patient/1": ("json", {"resourceType": "Patient", "id": "1"}),
            "/fhir/same-host": ("redirect", "/fhir/Patient/1"),
            "/fhir/to-private": ("redirect", "http://10.0.0.1/fhir/Patient/1"),
            "/fhir/to-metadata": ("redirect", "http://169.254.169.254/latest/meta-data/"),
            "/fhir/to-other-name": ("redirect", "http://localhost:{port}/fhir/Patient/1"),
            "/fhir/to-file": ("redirect", "file:///etc/passwd"),
            "/fhir/loop": ("redirect", "/fhir/loop"),
            "/fhir/slow": ("slow", 3),
            "/fhir/big": ("big", 300_000),
        }
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.hits = handler.hits
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def base(server) -> str:
    return f"http://127.0.0.1:{server.server_port}"


def test_guarded_request_works_for_allowed_loopback_in_dev(local_server):
    guard = FhirAccessGuard(DEV, [base(local_server) + "/fhir"])
    response = guard.request("GET", base(local_server) + "/fhir/Patient/1")
    assert response.status_code == 200
    assert response.json() == {"resourceType": "Patient", "id": "1"}


def test_same_host_redirect_is_followed(local_server):
    guard = FhirAccessGuard(DEV, None)
    response = guard.request("GET", base(local_server) + "/fhir/same-host")
    assert response.json()["id"] == "1"
    assert local_server.hits == ["/fhir/same-host", "/fhir/Patient/1"]


@pytest.mark.parametrize("path", ["/fhir/to-private", "/fhir/to-metadata", "/fhir/to-other-name", "/fhir/to-file"])
def test_redirect_to_private_or_other_host_is_refused(local_server, path):
    guard = FhirAccessGuard(DEV, None)
    with pytest.raises(FhirAccessDenied):
        guard.request("GET", base(local_server) + path)
    assert local_server.hits == [path]  # the target was never contacted


def test_redirect_outside_the_issuer_prefix_is_refused(local_server):
    local_server.RequestHandlerClass.routes["/fhir/out"] = ("redirect", "/admin/secret")
    guard = FhirAccessGuard(DEV, [base(local_server) + "/fhir"])
    with pytest.raises(FhirAccessDenied, match="not in the issuer"):
        guard.request("GET", base(local_server) + "/fhir/out")


def test_redirect_loop_is_bounded(local_server):
    guard = FhirAccessGuard(DEV, None, max_redirects=3)
    with pytest.raises(FhirAccessDenied, match="too many redirects"):
        guard.request("GET", base(local_server) + "/fhir/loop")
    assert len(local_server.hits) == 4


def test_production_never_connects_to_loopback(local_server):
    guard = FhirAccessGuard(PRODUCTION, None)
    with pytest.raises(FhirAccessDenied):
        guard.request("GET", base(local_server) + "/fhir/Patient/1")
    # Even a caller that skips check_url and uses the guarded session directly is stopped at
    # connect time.
    with pytest.raises(requests.ConnectionError, match="SSRF guard"):
        guard.session().get(base(local_server) + "/fhir/Patient/1", timeout=2)
    assert local_server.hits == []


def test_dns_rebinding_between_check_and_connect_is_caught(local_server):
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    resolver = fake_resolver({"rebind.attacker.example": lambda: next(answers)})
    guard = FhirAccessGuard(PRODUCTION, None, resolver=resolver)
    url = f"http://rebind.attacker.example:{local_server.server_port}/fhir/Patient/1"
    with pytest.raises(requests.ConnectionError, match="SSRF guard"):
        guard.request("GET", url)
    assert local_server.hits == []


def test_connection_goes_to_the_checked_address(local_server):
    # A name the system resolver does not know, mapped by the guard's resolver to 127.0.0.1:
    # the request succeeds only if the guarded adapter connects to the address it checked.
    resolver = fake_resolver({"fhir.test": ["127.0.0.1"]})
    guard = FhirAccessGuard(DEV, None, resolver=resolver)
    response = guard.request("GET", f"http://fhir.test:{local_server.server_port}/fhir/Patient/1")
    assert response.status_code == 200


def test_proxy_environment_is_ignored(local_server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("http_proxy", "http://10.9.9.9:3128")
    guard = FhirAccessGuard(DEV, None)
    assert guard.request("GET", base(local_server) + "/fhir/Patient/1").status_code == 200


def test_total_time_budget(local_server):
    guard = FhirAccessGuard(DEV, None)
    start = time.monotonic()
    with pytest.raises((requests.Timeout, FhirAccessDenied)):
        guard.request("GET", base(local_server) + "/fhir/slow", budget=0.5)
    assert time.monotonic() - start < 2.5


def test_response_size_cap(local_server):
    guard = FhirAccessGuard(DEV, None, max_response_bytes=100_000)
    with pytest.raises(FhirAccessDenied, match="too large"):
        guard.request("GET", base(local_server) + "/fhir/big")


def test_allow_redirects_true_is_refused(local_server):
    guard = FhirAccessGuard(DEV, None)
    with pytest.raises(ValueError):
        guard.request("GET", base(local_server) + "/fhir/Patient/1", allow_redirects=True)


def test_guarded_session_never_follows_redirects_itself(local_server):
    guard = FhirAccessGuard(DEV, None)
    response = guard.session().get(base(local_server) + "/fhir/to-other-name", allow_redirects=True, timeout=2)
    assert response.status_code == 302
    assert local_server.hits == ["/fhir/to-other-name"]
