"""Issuer entries with a vendor profile, vendor-shaped JWTs (Epic RS384 + jku + kid + nbf before
iat; Oracle's fixed issuer and JWK Set URL), and the profile applied by the real app."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlalchemy import create_engine

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.replay.fixtures import discover
from cds_service.security import AuthenticationError
from cds_service.security.errors import SecurityConfigError
from cds_service.security.issuers import IssuerRegistry, parse_issuer_entry, sandbox_issuer
from cds_service.security.jwks import JwksCache
from cds_service.security.jwt_verifier import JwtVerifier
from cds_service.security.replay import ReplayCache
from cds_service.vendors import get_profile, violations
from tests.vendors.conftest import DATA, VENDOR_FIXTURES, public_jwks, vendor_token

EPIC = json.loads((DATA / "epic-jwt.json").read_text())
ORACLE = json.loads((DATA / "oracle-jwt.json").read_text())
BASE = "https://cds.example.org"
SIGN = "/cds-services/radioelement-order-sign"


def epic_entry(rsa_key, **changes):
    entry = {"iss": EPIC["claims"]["iss"], "jku": [EPIC["header"]["jku"]], "profile": "epic",
             "jwks": public_jwks(rsa_key, EPIC["header"]["kid"])}
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not ...}


def oracle_entry(**changes):
    entry = {"iss": ORACLE["claims"]["iss"], "jwks_url": "https://authorization.cerner.com/jwk",
             "profile": "oracle", "link_hosts": ["www.cms.gov"]}
    entry.update(changes)
    return entry


@pytest.fixture
def replay_cache(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'jti.sqlite3'}")
    yield ReplayCache(engine)
    engine.dispose()


# -- the issuer file ---------------------------------------------------------------------------


def test_profile_defaults_to_generic_and_sandbox_issuer_is_sandbox(rsa_key):
    entry = epic_entry(rsa_key, profile=...)
    assert parse_issuer_entry(entry, "t").profile == "generic"
    assert sandbox_issuer().profile == "sandbox"
    issuer = parse_issuer_entry(oracle_entry(link_hosts=["https://WWW.CMS.gov/x", "apps.example.org"]), "t")
    assert (issuer.profile, issuer.link_hosts) == ("oracle", ("www.cms.gov", "apps.example.org"))


@pytest.mark.parametrize("changes, message", [
    ({"profile": "meditech"}, "'profile' 'meditech' is not one of generic, sandbox, epic, oracle"),
    ({"jku": ...}, "an epic issuer needs its 'jku' allowlist"),
    ({"link_hosts": "www.cms.gov"}, "'link_hosts' must be a list of host names"),
    ({"link_hosts": [""]}, "link_hosts[0] must be a host name"),
    ({"link_hosts": ["https://"]}, "is not a host name"),
    ({"link_host": ["www.cms.gov"]}, "unknown key(s) ['link_host']"),
])
def test_bad_vendor_entries_are_refused_with_a_precise_message(rsa_key, changes, message):
    with pytest.raises(SecurityConfigError) as error:
        parse_issuer_entry(epic_entry(rsa_key, **changes), "issuers.json: entry [0]")
    assert message in str(error.value)


# -- Epic tokens -------------------------------------------------------------------------------


def epic_verifier(rsa_key, replay_cache, **changes) -> JwtVerifier:
    return JwtVerifier(IssuerRegistry([parse_issuer_entry(epic_entry(rsa_key, **changes), "t")]), replay_cache)


def test_epic_rs384_token_with_jku_kid_and_early_nbf_is_accepted(rsa_key, replay_cache):
    header, claims, token = vendor_token("epic-jwt", rsa_key, BASE + SIGN)
    assert header["alg"] == "RS384" and claims["nbf"] == claims["iat"] - 300
    caller = epic_verifier(rsa_key, replay_cache).verify(token, BASE + SIGN)
    assert (caller.iss, caller.profile) == (EPIC["claims"]["iss"], "epic")


def test_epic_keys_fetched_from_the_allowlisted_jku(rsa_key, replay_cache):
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return json.dumps(public_jwks(rsa_key, EPIC["header"]["kid"])).encode()

    issuer = parse_issuer_entry(epic_entry(rsa_key, jwks=...), "t")
    verifier = JwtVerifier(IssuerRegistry([issuer]), replay_cache,
                           jwks_cache=JwksCache(issuer.allowed_jku, fetcher=fetch))
    _, _, token = vendor_token("epic-jwt", rsa_key, BASE + SIGN)
    assert verifier.verify(token, BASE + SIGN).profile == "epic"
    assert fetched == [EPIC["header"]["jku"]]


def test_epic_token_with_a_jku_off_the_allowlist_is_refused(rsa_key, replay_cache):
    verifier = epic_verifier(rsa_key, replay_cache, jku=["https://fhir.hospital.example.org/other-keys"])
    _, _, token = vendor_token("epic-jwt", rsa_key, BASE + SIGN)
    with pytest.raises(AuthenticationError, match="jku not on the issuer's list"):
        verifier.verify(token, BASE + SIGN)


def test_epic_token_whose_nbf_is_still_ahead_is_refused(rsa_key, replay_cache):
    header, claims, token = vendor_token("epic-jwt", rsa_key, BASE + SIGN, nbf=int(__import__("time").time()) + 600)
    with pytest.raises(AuthenticationError, match="not yet valid"):
        epic_verifier(rsa_key, replay_cache).verify(token, BASE + SIGN)


# -- Oracle Health tokens ------------------------------------------------------------------------


def test_oracle_fixed_issuer_verified_against_its_jwk_set_url(rsa_key, replay_cache):
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return json.dumps(public_jwks(rsa_key, ORACLE["header"]["kid"])).encode()

    issuer = parse_issuer_entry(oracle_entry(), "t")
    verifier = JwtVerifier(IssuerRegistry([issuer]), replay_cache,
                           jwks_cache=JwksCache(issuer.allowed_jku, fetcher=fetch))
    _, _, token = vendor_token("oracle-jwt", rsa_key, BASE + SIGN)
    caller = verifier.verify(token, BASE + SIGN)
    assert (caller.profile, caller.link_hosts) == ("oracle", ("www.cms.gov",))
    assert fetched == ["https://authorization.cerner.com/jwk"]
    _, _, forged = vendor_token("oracle-jwt", rsa_key, BASE + SIGN, iss="https://cds-hooks.example.net")
    with pytest.raises(AuthenticationError, match="untrusted issuer"):
        verifier.verify(forged, BASE + SIGN)


# -- the real app applies the caller's profile ----------------------------------------------------


def _request(name: str) -> dict:
    fixture = next(f for f in discover([VENDOR_FIXTURES]).fixtures if f.name.endswith(name))
    return dict(fixture.request, hookInstance=str(uuid.uuid4()))


def _app(tmp_path, entries: list[dict]):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps(entries))
    return create_app(Settings(database_url=f"sqlite:///{tmp_path / 'app.sqlite3'}", profile="production",
                               auth_enabled=True, public_base_url=BASE, trusted_issuers_path=str(path)))


def test_app_shapes_cards_for_an_epic_caller(tmp_path, rsa_key):
    client = _app(tmp_path, [epic_entry(rsa_key)]).test_client()
    _, _, token = vendor_token("epic-jwt", rsa_key, BASE + SIGN)
    response = client.post(SIGN, json=_request("epic/alternatives-any-only.json"),
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["cards"] and violations(answer, get_profile("epic")) == []
    assert all(re.fullmatch(r"[A-Za-z0-9]{1,100}", c["source"]["topic"]["code"]) for c in answer["cards"])
    assert {c.get("selectionBehavior") for c in answer["cards"] if c.get("suggestions")} == {"any"}


@pytest.mark.parametrize("link_hosts, links_kept", [([], False), (["www.cms.gov"], True)])
def test_app_shapes_cards_for_an_oracle_caller(tmp_path, rsa_key, link_hosts, links_kept):
    entry = oracle_entry(jwks_url=..., jku=[ORACLE["header"]["jku"]], link_hosts=link_hosts,
                         jwks=public_jwks(rsa_key, ORACLE["header"]["kid"]))
    client = _app(tmp_path, [{k: v for k, v in entry.items() if v is not ...}]).test_client()
    _, _, token = vendor_token("oracle-jwt", rsa_key, BASE + SIGN)
    response = client.post(SIGN, json=_request("oracle/suggestions-and-link.json"),
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert violations(answer, get_profile("oracle"), link_hosts) == []
    assert any(c.get("links") for c in answer["cards"]) is links_kept
