"""The CDS Hooks 2.0 JWT negative suite, plus the positive cases (ES384 and RS384)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.security.errors import AuthenticationError, SecurityConfigError
from cds_service.security.issuers import IssuerRegistry, parse_issuer_entry
from cds_service.security.jwt_verifier import Caller, JwtVerifier, parse_bearer

from sec_helpers import AUD, EC_KID, FEEDBACK_AUD, ISS, JKU, RSA_KID


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj) -> str:
    return b64(json.dumps(obj).encode())


def rejected(verifier: JwtVerifier, token: str, audience=AUD) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        verifier.verify(token, audience)
    return info.value


# ---------------------------------------------------------------------------------------------
# Accepted
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_valid_token_is_accepted(verifier, tokens, alg):
    token = tokens.make(alg, jti=f"jti-{alg}", tenant="hospital-a")
    caller = verifier.verify_request(f"Bearer {token}", AUD)
    assert isinstance(caller, Caller)
    assert caller.iss == ISS
    assert caller.jti == f"jti-{alg}"
    assert caller.tenant == "hospital-a"
    assert caller.fhir_servers == ("https://fhir.example.org/r4",)
    assert caller.exp > time.time()


def test_aud_may_be_a_list_containing_the_endpoint(verifier, tokens):
    token = tokens.make(aud=["https://elsewhere.example/x", AUD])
    assert verifier.verify(token, AUD).iss == ISS


def test_token_without_jku_uses_the_issuer_keys(verifier, tokens):
    token = tokens.make(headers={"jku": ...})
    assert verifier.verify(token, AUD).iss == ISS


def test_bearer_scheme_is_case_insensitive(verifier, tokens):
    assert verifier.verify_request("bearer " + tokens.make(), AUD).iss == ISS


def test_small_clock_skew_is_tolerated(verifier, tokens):
    now = int(time.time())
    token = tokens.make(iat=now + 30, exp=now - 30 + 300)
    assert verifier.verify(token, AUD).iss == ISS
    expired_within_leeway = tokens.make(iat=now - 400, exp=now - 30)
    assert verifier.verify(expired_within_leeway, AUD).iss == ISS


# ---------------------------------------------------------------------------------------------
# Rejected: the suite from issue 5
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_missing_or_non_bearer_authorization(verifier, header):
    with pytest.raises(AuthenticationError):
        verifier.verify_request(header, AUD)


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b",
        "a.b.c.d",
        "!!!.###.$$$",
        b64json({"alg": "ES384"}) + ".",
        "e30.e30.",  # {} . {}
        b64(b"\xff\xfe") + "." + b64json({"iss": ISS}) + ".sig",
        b64json(["alg", "ES384"]) + "." + b64json({"iss": ISS}) + ".c2ln",
        "x" * 20000,
    ],
)
def test_malformed_tokens(verifier, token):
    rejected(verifier, token)


def test_alg_none_is_rejected(verifier, tokens):
    header = {"alg": "none", "typ": "JWT", "kid": EC_KID}
    token = b64json(header) + "." + b64json(tokens.claims()) + "."
    assert "alg" in rejected(verifier, token).reason
    # Also with a dummy signature and other spellings.
    for alg in ("None", "NONE", "nOnE"):
        header["alg"] = alg
        rejected(verifier, b64json(header) + "." + b64json(tokens.claims()) + ".c2ln")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_public_key_as_secret_is_rejected(verifier, tokens, keys, alg):
    """Classic algorithm confusion: sign with HMAC using the verifier's public key as secret."""
    secret = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = b64json({"alg": alg, "typ": "JWT", "kid": RSA_KID}) + "." + b64json(tokens.claims())
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    err = rejected(verifier, signing_input + "." + b64(signature))
    assert "alg" in err.reason


def test_hs_algorithms_can_never_be_configured(registry, replay_cache):
    for algs in (["HS256"], ["ES384", "none"], ["RS384", "HS384"], []):
        with pytest.raises(SecurityConfigError):
            JwtVerifier(registry, replay_cache, algorithms=algs)


def test_unconfigured_asymmetric_alg_is_rejected(verifier, keys, tokens):
    token = tokens.make("RS256", key=keys.rsa)
    assert "alg" in rejected(verifier, token).reason


@pytest.mark.parametrize(
    "aud",
    [
        "https://cds.example.org/cds-services/other-service",
        FEEDBACK_AUD,  # a feedback token cannot be replayed against the service URL
        AUD + "/",
        AUD.upper(),
        "http://cds.example.org/cds-services/radioelement-order-sign",
        ["https://cds.example.org/cds-services"],
        [],
        "",
        123,
    ],
)
def test_wrong_aud_is_rejected(verifier, tokens, aud):
    rejected(verifier, tokens.make(aud=aud))


def test_missing_aud_is_rejected(verifier, tokens):
    rejected(verifier, tokens.make(aud=...))


def test_expired_token_is_rejected(verifier, tokens):
    now = int(time.time())
    err = rejected(verifier, tokens.make(iat=now - 900, exp=now - 120))
    assert "expired" in err.reason


def test_iat_in_the_future_is_rejected(verifier, tokens):
    now = int(time.time())
    err = rejected(verifier, tokens.make(iat=now + 600, exp=now + 900))
    assert "not yet valid" in err.reason


def test_nbf_in_the_future_is_rejected(verifier, tokens):
    now = int(time.time())
    err = rejected(verifier, tokens.make(nbf=now + 600))
    assert "not yet valid" in err.reason


@pytest.mark.parametrize("claim", ["iss", "exp", "iat", "jti"])
def test_missing_required_claim_is_rejected(verifier, tokens, claim):
    rejected(verifier, tokens.make(**{claim: ...}))


@pytest.mark.parametrize("bad", [{"jti": 42}, {"jti": ""}, {"jti": "x" * 300}, {"tenant": 5}, {"exp": "soon"}, {"iat": True}])
def test_badly_typed_claims_are_rejected(verifier, tokens, bad):
    rejected(verifier, tokens.make(**bad))


def test_reused_jti_is_rejected(verifier, tokens):
    first = tokens.make(jti="same-jti")
    verifier.verify(first, AUD)
    err = rejected(verifier, first)
    assert "reused" in err.reason
    # A fresh token with the same jti is a replay too, even for another endpoint.
    rejected(verifier, tokens.make(jti="same-jti", aud=FEEDBACK_AUD), FEEDBACK_AUD)


def test_failed_token_does_not_burn_its_jti(verifier, tokens):
    rejected(verifier, tokens.make(jti="j-1", aud="https://wrong.example/"))
    assert verifier.verify(tokens.make(jti="j-1"), AUD).jti == "j-1"


def test_unknown_kid_is_rejected(verifier, tokens):
    err = rejected(verifier, tokens.make(headers={"kid": "no-such-key"}))
    assert "unknown kid" in err.reason


@pytest.mark.parametrize("kid", [..., "", 7])
def test_missing_kid_is_rejected(verifier, tokens, kid):
    rejected(verifier, tokens.make(headers={"kid": kid}))


@pytest.mark.parametrize("typ", [..., "at+jwt", "JWS", 1])
def test_missing_or_wrong_typ_is_rejected(verifier, tokens, typ):
    rejected(verifier, tokens.make(headers={"typ": typ}))


def test_untrusted_iss_is_rejected(verifier, tokens):
    err = rejected(verifier, tokens.make(iss="https://attacker.example"))
    assert err.reason == "untrusted issuer"
    # Near misses of the trusted iss.
    for iss in (ISS + "/", ISS.upper(), "http://ehr.example.org", ISS + ".attacker.example"):
        rejected(verifier, tokens.make(iss=iss))


def test_jku_not_on_the_list_is_rejected(verifier, tokens):
    for jku in (
        "https://attacker.example/jwks.json",
        "https://ehr.example.org/other-jwks.json",
        "https://ehr.example.org@attacker.example/.well-known/jwks.json",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data",
    ):
        err = rejected(verifier, tokens.make(headers={"jku": jku}))
        assert "jku" in err.reason


def test_signature_by_another_key_is_rejected(verifier, tokens, keys):
    err = rejected(verifier, tokens.make("ES384", key=keys.other_ec))
    assert err.reason == "bad signature"
    rejected(verifier, tokens.make("RS384", key=keys.other_rsa))


def test_tampered_payload_is_rejected(verifier, tokens):
    token = tokens.make()
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "==="))
    claims["tenant"] = "someone-else"
    rejected(verifier, f"{header}.{b64json(claims)}.{signature}")


def test_alg_and_key_type_must_match(verifier, tokens, keys):
    # RS384 header pointing at the EC key id (signed by RSA): key-type confusion.
    rejected(verifier, tokens.make("RS384", key=keys.rsa, headers={"kid": EC_KID}))
    # ES384 signed with a P-256 key under the P-384 kid.
    p256 = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Exception):
        # PyJWT refuses to sign ES384 with P-256; build it with ES256 and relabel instead.
        tokens.make("ES384", key=p256)
    relabelled = tokens.make("ES256", key=p256, headers={"kid": EC_KID})
    h, p, s = relabelled.split(".")
    rejected(verifier, b64json({"alg": "ES384", "typ": "JWT", "kid": EC_KID}) + f".{p}.{s}")


@pytest.mark.parametrize("param", ["jwk", "x5u", "x5c", "crit"])
def test_key_carrying_header_parameters_are_rejected(verifier, tokens, keys, param):
    value = {
        "jwk": {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIB"],
        "crit": ["exp"],
    }[param]
    rejected(verifier, tokens.make(headers={param: value}))


def test_authentication_error_never_carries_the_token(verifier, tokens):
    token = tokens.make(iss="https://attacker.example")
    err = rejected(verifier, token)
    text = repr(err.log_fields()) + str(err) + err.reason
    assert token not in text
    assert token.split(".")[1] not in text


def test_parse_bearer():
    assert parse_bearer("Bearer abc.def.ghi") == "abc.def.ghi"
    assert parse_bearer("  Bearer   abc  ") == "abc"
    with pytest.raises(AuthenticationError):
        parse_bearer("Bearerabc")


# ---------------------------------------------------------------------------------------------
# Issuers without fhir_servers: profile default
# ---------------------------------------------------------------------------------------------


def test_issuer_without_fhir_servers_allows_none_unless_dev(keys, tokens, replay_cache):
    entry = {"iss": ISS, "jwks": keys.jwks()}
    registry = IssuerRegistry([parse_issuer_entry(entry, "t")])
    production = JwtVerifier(registry, replay_cache, fhir_servers_default_any=False)
    assert production.verify(tokens.make(headers={"jku": ...}), AUD).fhir_servers == ()
    dev = JwtVerifier(registry, replay_cache, fhir_servers_default_any=True)
    assert dev.verify(tokens.make(headers={"jku": ...}), AUD).fhir_servers is None
