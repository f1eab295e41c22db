"""Trusted-issuer file: valid forms load, and every mistake gives a clear error."""

from __future__ import annotations

import json

import pytest

from cds_service.security.errors import SecurityConfigError
from cds_service.security.issuers import (
    SANDBOX_ISS,
    SANDBOX_JKU,
    load_trusted_issuers,
    sandbox_issuer,
    sandbox_jwks,
)
from sec_helpers import ISS, JKU

SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"


def write(tmp_path, data, name="issuers.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def error_for(tmp_path, data) -> str:
    with pytest.raises(SecurityConfigError) as info:
        load_trusted_issuers(write(tmp_path, data))
    return str(info.value)


def test_loads_inline_and_url_issuers(tmp_path, keys):
    path = write(
        tmp_path,
        [
            {"iss": ISS, "jwks": keys.jwks(), "jku": [JKU], "fhir_servers": ["https://FHIR.example.org:443/r4/"]},
            {"iss": "https://inferno.example/custom/crd_server", "jwks_url": "https://inferno.example/custom/crd_server/jwks.json", "_comment": "Inferno"},
        ],
    )
    inline, remote = load_trusted_issuers(path)
    assert inline.iss == ISS and inline.pinned and set(inline.inline_keys) == {"ec-key-1", "rsa-key-1"}
    assert inline.allowed_jku == {JKU}
    assert inline.fhir_servers == ("https://fhir.example.org/r4/",)
    assert remote.inline_keys is None and remote.fhir_servers is None
    assert remote.allowed_jku == {"https://inferno.example/custom/crd_server/jwks.json"}


def test_shipped_sandbox_key_is_the_published_one():
    jwks = sandbox_jwks()
    assert [k["kid"] for k in jwks["keys"]] == [SANDBOX_KID]
    issuer = sandbox_issuer()
    assert issuer.iss == SANDBOX_ISS == "https://sandbox.cds-hooks.org"
    assert issuer.allowed_jku == {SANDBOX_JKU}
    assert issuer.inline_keys[SANDBOX_KID]["crv"] == "P-384"
    assert issuer.pinned


@pytest.mark.parametrize(
    "data,expected",
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ('[\n  {"iss": "a",}\n]', "line 2 column"),
        ({"iss": ISS}, "must hold a JSON list"),
        (["https://ehr.example.org"], "entry [0]: each trusted issuer must be a JSON object"),
        ([{"jwks_url": "https://e.example/j"}], "entry [0]: 'iss' is required"),
        ([{"iss": "", "jwks_url": "https://e.example/j"}], "'iss' is required"),
        ([{"iss": " https://e.example", "jwks_url": "https://e.example/j"}], "whitespace"),
        ([{"iss": ISS}], "no key source"),
        ([{"iss": ISS, "jwks_url": "https://e.example/j", "fhir_server": ["https://f.example"]}], "unknown key(s) ['fhir_server']"),
        ([{"iss": ISS, "jwks_url": "http://e.example/j"}], "jwks_url 'http://e.example/j' must use https"),
        ([{"iss": ISS, "jwks_url": "ftp://e.example/j"}], "is not a valid URL"),
        ([{"iss": ISS, "jwks_url": "https://e.example/j", "jku": "https://x.example/j", "fhir_servers": "https://f"}], "'fhir_servers' must be a list"),
        ([{"iss": ISS, "jwks_url": "https://e.example/j", "fhir_servers": ["file:///etc"]}], "fhir_servers[0] 'file:///etc' is not a valid http(s) URL"),
        ([{"iss": ISS, "jwks_url": "https://e.example/j", "fhir_servers": ["https://f.example/r4?x=1"]}], "query string"),
        ([{"iss": ISS, "jwks_url": "https://e.example/j", "jku": [5]}], "jku must be a non-empty URL string"),
        ([{"iss": ISS, "jwks": {"keys": []}}], "empty 'keys' list"),
        ([{"iss": ISS, "jwks": [{"kty": "EC"}]}], "'jwks' must be a JWK Set object"),
        ([{"iss": ISS, "jwks": {"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}}], "symmetric keys are never trusted"),
        ([{"iss": ISS, "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}}], "has no 'kid'"),
        ([{"iss": ISS, "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "kid": "k", "x": "AA", "y": "AA"}]}}], "is not a valid public key"),
    ],
)
def test_errors_are_clear(tmp_path, data, expected):
    message = error_for(tmp_path, data)
    assert expected in message
    assert "issuers.json" in message  # always says which file


def test_private_key_in_file_is_refused(tmp_path, keys):
    from jwt.algorithms import ECAlgorithm

    private = ECAlgorithm.to_jwk(keys.ec, as_dict=True)
    private["kid"] = "oops"
    message = error_for(tmp_path, [{"iss": ISS, "jwks": {"keys": [private]}}])
    assert "private-key members ['d']" in message


def test_both_jwks_and_jwks_url_is_an_error(tmp_path, keys):
    assert "either 'jwks' or 'jwks_url'" in error_for(
        tmp_path, [{"iss": ISS, "jwks": keys.jwks(), "jwks_url": "https://e.example/j"}]
    )


def test_duplicate_iss_and_kid(tmp_path, keys):
    entry = {"iss": ISS, "jwks": keys.jwks()}
    assert "listed twice" in error_for(tmp_path, [entry, entry])
    dup = keys.jwks()
    dup["keys"].append(dict(dup["keys"][0]))
    assert "duplicate kid 'ec-key-1'" in error_for(tmp_path, [{"iss": ISS, "jwks": dup}])


def test_file_problems(tmp_path):
    with pytest.raises(SecurityConfigError, match="does not exist"):
        load_trusted_issuers(tmp_path / "missing.json")
    with pytest.raises(SecurityConfigError, match="is a directory"):
        load_trusted_issuers(tmp_path)
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'[{"iss": "\xe9"}]')
    with pytest.raises(SecurityConfigError, match="not UTF-8"):
        load_trusted_issuers(bad)
