"""dev vs production profiles, env parsing, start-up refusal and warnings."""

from __future__ import annotations

import json
import logging

import pytest

from cds_service.security.errors import SecurityConfigError
from cds_service.security.issuers import SANDBOX_ISS
from cds_service.security.network import FhirAccessDenied
from cds_service.security.profiles import SecuritySettings, build_security
from sec_helpers import ISS


@pytest.fixture
def issuer_file(tmp_path, issuer_entry):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([issuer_entry]))
    return str(path)


def test_env_parsing_defaults():
    s = SecuritySettings.from_env({})
    assert (s.profile, s.auth_enabled, s.allow_private_fhir) == ("dev", True, False)
    assert s.algorithms == ("ES384", "RS384")
    s = SecuritySettings.from_env(
        {"CDS_PROFILE": "Production", "CDS_AUTH": "off", "CDS_FHIR_ALLOW_PRIVATE": "TRUE",
         "CDS_PUBLIC_BASE_URL": "https://cds.example.org/", "CDS_JWT_ALGORITHMS": "ES384"}
    )
    assert (s.profile, s.auth_enabled, s.allow_private_fhir, s.algorithms) == ("production", False, True, ("ES384",))


@pytest.mark.parametrize(
    "env,message",
    [
        ({"CDS_PROFILE": "prod"}, "CDS_PROFILE='prod'"),
        ({"CDS_AUTH": "maybe"}, "CDS_AUTH='maybe': expected a boolean"),
        ({"CDS_FHIR_ALLOW_PRIVATE": "yes please"}, "CDS_FHIR_ALLOW_PRIVATE"),
        ({"CDS_JWT_ALGORITHMS": "ES384,HS256"}, "CDS_JWT_ALGORITHMS='ES384,HS256': expected"),
        ({"CDS_JWT_ALGORITHMS": "none"}, "CDS_JWT_ALGORITHMS=.none.: expected"),
        ({"CDS_PUBLIC_BASE_URL": "cds.example.org"}, "CDS_PUBLIC_BASE_URL"),
        ({"CDS_JWT_LEEWAY": "lots"}, "CDS_JWT_LEEWAY"),
    ],
)
def test_bad_env_values_refuse_to_start(env, message):
    with pytest.raises(SecurityConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SecuritySettings.from_env(env)


def test_production_without_trusted_issuers_refuses_to_start(engine):
    with pytest.raises(SecurityConfigError, match="no trusted issuer"):
        build_security(SecuritySettings(profile="production"), engine)


def test_production_with_auth_off_starts_and_warns(engine, caplog):
    with caplog.at_level(logging.WARNING):
        ctx = build_security(SecuritySettings(profile="production", auth_enabled=False), engine)
    assert not ctx.auth_enabled
    assert ctx.authenticate(None, ["https://x"]) is None
    assert "CDS_AUTH=off" in caplog.text


def test_production_trusts_only_the_file(engine, issuer_file, caplog):
    with caplog.at_level(logging.WARNING):
        ctx = build_security(SecuritySettings(profile="production", trusted_issuers_path=issuer_file), engine)
    assert [i.iss for i in ctx.issuers] == [ISS]
    assert SANDBOX_ISS not in ctx.issuers
    assert "Sandbox" not in caplog.text
    guard = ctx.fhir_guard(None)
    with pytest.raises(FhirAccessDenied):
        guard.check_url("http://127.0.0.1:8080/fhir")


def test_production_bad_issuer_file_refuses_to_start(engine, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[{]")
    with pytest.raises(SecurityConfigError, match="not valid JSON"):
        build_security(SecuritySettings(profile="production", trusted_issuers_path=str(path)), engine)


def test_dev_trusts_the_sandbox_and_loopback_with_warnings(engine, caplog):
    with caplog.at_level(logging.WARNING):
        ctx = build_security(SecuritySettings(profile="dev"), engine)
    assert ctx.auth_enabled
    assert SANDBOX_ISS in ctx.issuers
    assert ctx.issuers.get(SANDBOX_ISS).fhir_servers is None
    assert "private key is published" in caplog.text
    assert "loopback" in caplog.text
    guard = ctx.fhir_guard(None)
    assert guard.check_url("http://127.0.0.1:8080/fhir").port == 8080
    with pytest.raises(FhirAccessDenied):
        guard.check_url("http://169.254.169.254/latest/meta-data/")
    with pytest.raises(FhirAccessDenied):
        guard.check_url("http://10.0.0.1/fhir")


def test_dev_merges_the_file_with_the_sandbox(engine, issuer_file):
    ctx = build_security(SecuritySettings(profile="dev", trusted_issuers_path=issuer_file), engine)
    assert {i.iss for i in ctx.issuers} == {ISS, SANDBOX_ISS}


def test_allow_private_in_production(engine, issuer_file):
    ctx = build_security(
        SecuritySettings(profile="production", trusted_issuers_path=issuer_file, allow_private_fhir=True), engine
    )
    assert ctx.fhir_guard(None).check_url("http://10.1.2.3/fhir").host == "10.1.2.3"


def test_caller_prefixes_flow_into_the_guard(engine, issuer_file, tokens):
    ctx = build_security(SecuritySettings(profile="production", trusted_issuers_path=issuer_file), engine)
    aud = "https://cds.example.org/cds-services/x"
    caller = ctx.authenticate("Bearer " + tokens.make(aud=aud), ctx.audiences("/cds-services/x", aud))
    guard = ctx.fhir_guard(caller)
    with pytest.raises(FhirAccessDenied, match="not in the issuer"):
        guard.check_url("https://other-fhir.example.org/r4/Patient/1")


def test_audiences_use_public_base_url_when_set(engine):
    ctx = build_security(SecuritySettings(profile="dev", public_base_url="https://cds.example.org/base/"), engine)
    assert ctx.audiences("/cds-services", "http://10.0.0.3:8000/cds-services?x=1") == [
        "https://cds.example.org/base/cds-services"
    ]
    ctx = build_security(SecuritySettings(profile="dev"), engine)
    assert ctx.audiences("/cds-services", "http://localhost:8000/cds-services?x=1") == [
        "http://localhost:8000/cds-services"
    ]
