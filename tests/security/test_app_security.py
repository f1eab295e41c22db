"""Security through the real Flask app (app.test_client()): JWT on discovery, service and
feedback, preflight without a token, CDS_AUTH=off, profiles at start-up, issuer fhir_servers and
the SSRF guard on the prefetch fallback, JSON shape limits and security headers."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from cds_service.app import create_app
from cds_service.config import ConfigError, Settings
from cds_service.security.issuers import SANDBOX_ISS, SANDBOX_JKU
from sec_helpers import EC_KID, ISS
from tests.conftest import full_prefetch, therapy_request

BASE = "https://cds.example.org"
DISCOVERY = "/cds-services"
SIGN = "/cds-services/radioelement-order-sign"
FEEDBACK = SIGN + "/feedback"


@pytest.fixture
def issuers_file(tmp_path, issuer_entry):
    def write(**changes):
        entry = dict(issuer_entry, **changes)
        entry = {k: v for k, v in entry.items() if v is not ...}
        path = tmp_path / f"issuers-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps([entry]))
        return str(path)

    return write


@pytest.fixture
def secure_app(tmp_path, issuers_file):
    def build(**overrides):
        base = dict(
            database_url=f"sqlite:///{tmp_path / 'secure.sqlite3'}",
            profile="production",
            auth_enabled=True,
            public_base_url=BASE,
            trusted_issuers_path=issuers_file(),
        )
        base.update(overrides)
        return create_app(Settings(**base))

    return build


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_bare_401(response):
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    body = response.get_json()
    assert body["error"] == "authentication required"  # same text whatever went wrong
    return body


# ---------------------------------------------------------------------------------------------
# JWT on each endpoint
# ---------------------------------------------------------------------------------------------


def test_discovery_requires_a_valid_token_when_configured(secure_app, tokens):
    client = secure_app(discovery_token_required=True).test_client()
    assert_bare_401(client.get(DISCOVERY))
    ok = client.get(DISCOVERY, headers=bearer(tokens.make(aud=BASE + DISCOVERY)))
    assert ok.status_code == 200 and ok.get_json()["services"]


def test_discovery_without_token_is_open_but_a_sent_token_is_verified(secure_app, tokens):
    client = secure_app().test_client()
    assert client.get(DISCOVERY).status_code == 200  # Inferno's default: no JWT on discovery
    assert_bare_401(client.get(DISCOVERY, headers=bearer(tokens.make(aud=BASE + DISCOVERY + "/other"))))
    assert_bare_401(client.get(DISCOVERY, headers=bearer("abc.def")))
    ok = client.get(DISCOVERY, headers=bearer(tokens.make(aud=BASE + DISCOVERY)))
    assert ok.status_code == 200


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_service_call_with_valid_token(secure_app, tokens, alg):
    client = secure_app().test_client()
    body = therapy_request(prefetch=full_prefetch(["patient", "conditions", "observations", "coverage"]))
    response = client.post(SIGN, json=body, headers=bearer(tokens.make(alg, aud=BASE + SIGN)))
    assert response.status_code == 200, response.get_json()
    assert "cards" in response.get_json()


def test_feedback_requires_a_token_for_the_feedback_url(secure_app, tokens):
    app = secure_app()
    client = app.test_client()
    feedback = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00Z"}]}
    assert_bare_401(client.post(FEEDBACK, json=feedback))
    # A token minted for the service URL cannot be used on the feedback URL.
    assert_bare_401(client.post(FEEDBACK, json=feedback, headers=bearer(tokens.make(aud=BASE + SIGN))))
    ok = client.post(FEEDBACK, json=feedback, headers=bearer(tokens.make(aud=BASE + FEEDBACK)))
    assert ok.status_code == 200


def test_every_failure_reason_gives_the_identical_response(secure_app, tokens, keys):
    client = secure_app(discovery_token_required=True).test_client()
    now = int(time.time())
    attempts = {
        "missing": {},
        "malformed": bearer("abc.def"),
        "wrong aud": bearer(tokens.make(aud=BASE + DISCOVERY + "/other")),
        "expired": bearer(tokens.make(aud=BASE + DISCOVERY, iat=now - 900, exp=now - 300)),
        "untrusted iss": bearer(tokens.make(aud=BASE + DISCOVERY, iss="https://attacker.example")),
        "other key": bearer(tokens.make(aud=BASE + DISCOVERY, key=keys.other_ec)),
        "unknown kid": bearer(tokens.make(aud=BASE + DISCOVERY, headers={"kid": "nope"})),
    }
    bodies = set()
    for name, headers in attempts.items():
        response = client.get(DISCOVERY, headers=headers)
        assert response.status_code == 401, name
        bodies.add(response.get_data(as_text=True))
    assert len(bodies) == 1


def test_replayed_token_is_rejected_by_another_app_on_the_same_database(secure_app, tokens):
    # Two app instances on one database file stand in for two gunicorn workers.
    worker_a, worker_b = secure_app().test_client(), secure_app().test_client()
    token = tokens.make(aud=BASE + DISCOVERY)
    assert worker_a.get(DISCOVERY, headers=bearer(token)).status_code == 200
    assert_bare_401(worker_b.get(DISCOVERY, headers=bearer(token)))
    assert_bare_401(worker_a.get(DISCOVERY, headers=bearer(token)))


def test_preflight_never_needs_a_token(secure_app):
    client = secure_app().test_client()
    for path in (DISCOVERY, SIGN, FEEDBACK):
        response = client.options(
            path,
            headers={
                "Origin": "https://sandbox.cds-hooks.org",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert response.status_code in (200, 204), path
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


def test_aud_falls_back_to_the_request_url_without_public_base(secure_app, tokens):
    client = secure_app(public_base_url=None).test_client()
    assert_bare_401(client.get(DISCOVERY, headers=bearer(tokens.make(aud=BASE + DISCOVERY))))
    ok = client.get(DISCOVERY, headers=bearer(tokens.make(aud="http://localhost" + DISCOVERY)))
    assert ok.status_code == 200
    # The query string is not part of the endpoint URL.
    ok = client.get(DISCOVERY + "?x=1", headers=bearer(tokens.make(aud="http://localhost" + DISCOVERY)))
    assert ok.status_code == 200


def test_auth_off_needs_no_token(secure_app):
    client = secure_app(auth_enabled=False).test_client()
    assert client.get(DISCOVERY).status_code == 200


def test_token_is_never_logged(secure_app, tokens, caplog):
    client = secure_app().test_client()
    caplog.set_level("DEBUG")
    good = tokens.make(aud=BASE + DISCOVERY)
    bad = tokens.make(aud=BASE + DISCOVERY, iss="https://attacker.example")
    client.get(DISCOVERY, headers=bearer(good))
    client.get(DISCOVERY, headers=bearer(bad))
    client.get(DISCOVERY, headers=bearer(good))  # replay
    for token in (good, bad):
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text
    assert "untrusted issuer" in caplog.text  # the reason is logged for operators


# ---------------------------------------------------------------------------------------------
# Profiles at start-up
# ---------------------------------------------------------------------------------------------


def test_production_without_trusted_issuers_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="no trusted issuer"):
        create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", profile="production"))


def test_bad_issuer_file_refuses_to_start(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"iss": "https://e.example", "jwks_url": "https://e.example/j", "fhir_server": []}]')
    with pytest.raises(ConfigError, match="unknown key"):
        create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", profile="production", trusted_issuers_path=str(bad)))


def test_dev_profile_trusts_only_the_real_sandbox_key(tmp_path, tokens, keys):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'dev.db'}", profile="dev"))
    client = app.test_client()
    # A token claiming to be the Sandbox but signed with another key (even one reusing the
    # Sandbox kid) is refused.
    forged = tokens.make(
        aud="http://localhost" + DISCOVERY,
        iss=SANDBOX_ISS,
        headers={"kid": "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f", "jku": SANDBOX_JKU},
    )
    assert_bare_401(client.get(DISCOVERY, headers=bearer(forged)))
    assert_bare_401(client.post(SIGN, json=therapy_request(), headers=bearer(forged)))
    assert_bare_401(client.post(SIGN, json=therapy_request()))


# ---------------------------------------------------------------------------------------------
# FHIR fallback: issuer fhir_servers and the SSRF guard
# ---------------------------------------------------------------------------------------------


def fallback_request(fhir_base: str) -> dict:
    body = therapy_request()  # no prefetch: everything must be fetched
    body["fhirServer"] = fhir_base
    return body


def test_production_refuses_loopback_fhir_server(secure_app, tokens, fhir_server, issuers_file):
    # Even when the issuer lists the server, the production address rules refuse loopback.
    app = secure_app(trusted_issuers_path=issuers_file(fhir_servers=[fhir_server.base_url]))
    response = app.test_client().post(
        SIGN, json=fallback_request(fhir_server.base_url), headers=bearer(tokens.make(aud=BASE + SIGN))
    )
    assert response.status_code in (200, 412)  # authenticated, answered without the data
    assert fhir_server.requests_seen == []


def test_allow_private_admits_listed_on_premise_server(secure_app, tokens, fhir_server, issuers_file):
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1"}]
    app = secure_app(trusted_issuers_path=issuers_file(fhir_servers=[fhir_server.base_url]), fhir_allow_private=True)
    response = app.test_client().post(
        SIGN, json=fallback_request(fhir_server.base_url), headers=bearer(tokens.make(aud=BASE + SIGN))
    )
    assert response.status_code == 200
    assert fhir_server.requests_seen  # the listed server was queried


def test_fhir_server_not_listed_for_the_issuer_is_never_called(secure_app, tokens, fhir_server, issuers_file):
    app = secure_app(
        trusted_issuers_path=issuers_file(fhir_servers=["https://fhir.example.org/r4"]), fhir_allow_private=True
    )
    response = app.test_client().post(
        SIGN, json=fallback_request(fhir_server.base_url), headers=bearer(tokens.make(aud=BASE + SIGN))
    )
    assert response.status_code in (200, 412)  # authenticated, answered without the data
    assert fhir_server.requests_seen == []


def test_issuer_without_fhir_servers_allows_none_in_production(secure_app, tokens, fhir_server, issuers_file):
    app = secure_app(trusted_issuers_path=issuers_file(fhir_servers=...), fhir_allow_private=True)
    response = app.test_client().post(
        SIGN, json=fallback_request(fhir_server.base_url), headers=bearer(tokens.make(aud=BASE + SIGN))
    )
    assert response.status_code in (200, 412)  # authenticated, answered without the data
    assert fhir_server.requests_seen == []


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/latest",
        "http://10.0.0.1/fhir",
        "http://0.0.0.0:8080/fhir",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "http://user:pw@127.0.0.1:9/fhir",
    ],
)
def test_auth_off_still_applies_address_rules(tmp_path, target, caplog):
    # dev profile, CDS_AUTH=off: no issuer, so only the address rules apply, and they still
    # refuse cloud metadata, private and unspecified addresses and non-http schemes.
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'off.db'}", profile="dev", auth_enabled=False))
    caplog.set_level("WARNING", logger="cds_service.security")
    started = time.monotonic()
    response = app.test_client().post(SIGN, json=fallback_request(target))
    assert response.is_json
    if target.startswith(("file:", "gopher:")):
        assert response.status_code == 400  # the request envelope itself is refused
    else:
        assert response.status_code in (200, 412)
        assert "FHIR access refused" in caplog.text
    assert time.monotonic() - started < 1.5  # refused up front, not after a connect timeout


def test_dev_auth_off_allows_loopback_fhir(tmp_path, fhir_server):
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1"}]
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'off.db'}", profile="dev", auth_enabled=False))
    response = app.test_client().post(SIGN, json=fallback_request(fhir_server.base_url))
    assert response.status_code == 200
    assert fhir_server.requests_seen


def test_every_fhir_request_including_next_links_goes_through_the_guard(tmp_path, fhir_server, monkeypatch):
    from cds_service.security.network import FhirAccessGuard

    checked: list[str] = []
    original = FhirAccessGuard.check_url

    def recording(self, url):
        checked.append(url)
        return original(self, url)

    monkeypatch.setattr(FhirAccessGuard, "check_url", recording)
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1"}] + [
        {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": "Patient/pat-1"}} for i in range(7)
    ]
    fhir_server.page_size = 3
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'n.db'}", profile="dev", auth_enabled=False))
    response = app.test_client().post(SIGN, json=fallback_request(fhir_server.base_url))
    assert response.status_code == 200
    assert len(fhir_server.requests_seen) > 1
    # One guard check per request the FHIR server saw (reads, searches and next pages).
    assert len(checked) == len(fhir_server.requests_seen)
    assert any("Condition" in url for url in checked)


# ---------------------------------------------------------------------------------------------
# Hostile input
# ---------------------------------------------------------------------------------------------


def test_deep_and_wide_json_is_rejected_with_400(tmp_path):
    client = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", auth_enabled=False)).test_client()
    deep = "[" * 200 + "]" * 200
    very_deep = "[" * 100_000 + "]" * 100_000
    wide = json.dumps({"hook": "order-sign", "context": {"x": list(range(20_000))}})
    for raw in (deep, very_deep, wide):
        response = client.post(SIGN, data=raw, content_type="application/json")
        assert response.status_code in (400, 413), response.status_code
        assert response.is_json


def test_security_headers_on_every_response(secure_app, tokens):
    client = secure_app().test_client()
    responses = [
        client.get(DISCOVERY),  # 401
        client.get(DISCOVERY, headers=bearer(tokens.make(aud=BASE + DISCOVERY))),  # 200
        client.get("/no-such-path"),  # 404
        client.options(SIGN),  # preflight
        client.post(SIGN, data="x", content_type="text/plain", headers=bearer(tokens.make(aud=BASE + SIGN))),
    ]
    for response in responses:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


_header_values = st.one_of(
    st.text(max_size=200),
    st.builds(lambda s: "Bearer " + s, st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=300)),
    st.builds(
        lambda a, b, c: f"Bearer {a}.{b}.{c}",
        *(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=80),) * 3,
    ),
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_header_values)
def test_fuzzed_authorization_headers_are_401_never_5xx(secure_app_session, value):
    try:
        response = secure_app_session.get(DISCOVERY, headers={"Authorization": value})
    except ValueError:
        return  # the test client itself refuses header values with newlines
    assert response.status_code == 401
    assert response.is_json


@pytest.fixture
def secure_app_session(secure_app):
    return secure_app().test_client()


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.fixed_dictionaries(
        {"alg": st.sampled_from(["ES384", "RS384", "none", "HS256", "ES256", "", None]),
         "kid": st.one_of(st.just(EC_KID), st.text(max_size=10), st.integers()),
         "typ": st.sampled_from(["JWT", "jwt", "at+jwt", None])}
    ),
    claims=st.dictionaries(
        st.sampled_from(["iss", "aud", "exp", "iat", "jti", "nbf", "tenant"]),
        st.one_of(st.text(max_size=20), st.integers(), st.none(), st.just(ISS), st.lists(st.text(max_size=5), max_size=3)),
    ),
)
def test_fuzzed_unsigned_tokens_are_401(secure_app_session, header, claims):
    import base64

    def enc(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    token = f"{enc(header)}.{enc(claims)}.{enc('sig')}"
    response = secure_app_session.get(DISCOVERY, headers=bearer(token))
    assert response.status_code == 401
    assert response.is_json


def test_unknown_service_is_401_before_404_without_a_token(secure_app, tokens):
    client = secure_app().test_client()
    assert_bare_401(client.post("/cds-services/no-such-service", json={}))
    assert_bare_401(client.post("/cds-services/no-such-service/feedback", json={}))
    aud = BASE + "/cds-services/no-such-service"
    assert client.post("/cds-services/no-such-service", json={}, headers=bearer(tokens.make(aud=aud))).status_code == 404
