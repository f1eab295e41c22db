"""The development issuer: what it writes, the tokens it signs, and that only an explicitly
configured file makes the service trust it (in production with a warning)."""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest

from cds_service.security.dev_issuer import (
    DEV_ISSUER_PREFIX, MAX_TTL, DevIssuerError, create_dev_issuer, load_dev_issuer,
)
from cds_service.security.errors import AuthenticationError, SecurityConfigError
from cds_service.security.profiles import SecuritySettings, build_security

AUD = "http://127.0.0.1:8080/cds-services/radioelement-order-sign"


def test_tokens_verify_once_for_their_aud_only(engine, tmp_path):
    issuer = create_dev_issuer(tmp_path / "dev")
    ctx = build_security(SecuritySettings(profile="dev", trusted_issuers_path=str(tmp_path / "dev" / "trusted-issuers.json")),
                         engine)
    first, second = issuer.token(AUD), issuer.token(AUD)
    assert jwt.get_unverified_header(first)["alg"] == "ES384"
    claims = jwt.decode(first, options={"verify_signature": False})
    assert claims["iss"].startswith(DEV_ISSUER_PREFIX) and claims["aud"] == AUD
    assert claims["exp"] - claims["iat"] == 300
    assert claims["jti"] != jwt.decode(second, options={"verify_signature": False})["jti"]
    assert ctx.authenticate(f"Bearer {first}", [AUD]).iss == issuer.iss
    assert ctx.authenticate(f"Bearer {second}", [AUD]).jti != claims["jti"]  # a fresh jti passes
    with pytest.raises(AuthenticationError, match="jti"):
        ctx.authenticate(f"Bearer {first}", [AUD])  # the same token again
    other = issuer.token(AUD.replace("order-sign", "order-select"))
    with pytest.raises(AuthenticationError, match="aud") as caught:
        ctx.authenticate(f"Bearer {other}", [AUD])
    assert caught.value.log_fields()["jti"] == jwt.decode(other, options={"verify_signature": False})["jti"]


def test_load_round_trips_and_ttl_is_bounded(tmp_path):
    made = create_dev_issuer(tmp_path / "dev")
    loaded = load_dev_issuer(tmp_path / "dev")
    assert (loaded.iss, loaded.kid) == (made.iss, made.kid)
    with pytest.raises(DevIssuerError, match="ttl"):
        loaded.token(AUD, ttl=MAX_TTL + 1)
    now = time.time()
    assert jwt.decode(loaded.token(AUD, ttl=60, now=now), options={"verify_signature": False})["exp"] == int(now) + 60


def test_missing_or_foreign_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DevIssuerError, match="not found"):
        load_dev_issuer(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "dev-issuer-key.pem").write_text("x")
    (tmp_path / "other" / "trusted-issuers.json").write_text(json.dumps([{"iss": "https://ehr.example.org"}]))
    with pytest.raises(DevIssuerError, match="does not hold a development issuer"):
        load_dev_issuer(tmp_path / "other")


def test_production_never_trusts_it_implicitly_and_warns_when_configured(engine, tmp_path, caplog, monkeypatch):
    create_dev_issuer(tmp_path / "dev")
    monkeypatch.chdir(tmp_path)  # the folder lying around changes nothing
    with pytest.raises(SecurityConfigError, match="no trusted issuer"):
        build_security(SecuritySettings(profile="production"), engine)
    with caplog.at_level(logging.WARNING):
        ctx = build_security(SecuritySettings(profile="production",
                                              trusted_issuers_path=str(tmp_path / "dev" / "trusted-issuers.json")), engine)
    assert [i.iss for i in ctx.issuers][0].startswith(DEV_ISSUER_PREFIX)
    assert "development issuer" in caplog.text and "production profile" in caplog.text
    dev = build_security(SecuritySettings(profile="dev"), engine)
    assert not any(i.iss.startswith(DEV_ISSUER_PREFIX) for i in dev.issuers)
