"""Fixtures for the security tests: keys generated per session, a token factory, a
trusted-issuer registry and a verifier backed by a SQLite replay cache."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import create_engine

from cds_service.security.issuers import IssuerRegistry, parse_issuer_entry
from cds_service.security.jwt_verifier import JwtVerifier
from cds_service.security.replay import ReplayCache
from sec_helpers import ISS, JKU, Keys, TokenFactory


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        ec=ec.generate_private_key(ec.SECP384R1()),
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        other_ec=ec.generate_private_key(ec.SECP384R1()),
        other_rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture
def tokens(keys) -> TokenFactory:
    return TokenFactory(keys)


@pytest.fixture
def issuer_entry(keys) -> dict[str, Any]:
    return {
        "iss": ISS,
        "jwks": keys.jwks(),
        "jku": [JKU],
        "fhir_servers": ["https://fhir.example.org/r4"],
    }


@pytest.fixture
def registry(issuer_entry) -> IssuerRegistry:
    return IssuerRegistry([parse_issuer_entry(issuer_entry, "test")])


@pytest.fixture
def engine(tmp_path):
    eng = create_engine(f"sqlite:///{tmp_path / 'replay.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def replay_cache(engine) -> ReplayCache:
    return ReplayCache(engine)


@pytest.fixture
def verifier(registry, replay_cache) -> JwtVerifier:
    return JwtVerifier(registry, replay_cache, leeway=60)
