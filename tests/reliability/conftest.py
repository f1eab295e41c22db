"""Fixtures for the outage tests: a PostgreSQL cluster of their own (created, stopped and started
by the tests; never the shared server on 5432), a fresh database per test, and token helpers."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from cds_service.testing import postgres

ISS = "https://ehr.example.org"
KID = "outage-key"
BASE = "https://cds.example.org"


@pytest.fixture(scope="session")
def cluster() -> Iterator[postgres.ThrowawayCluster]:
    problem = postgres.cluster_binaries_available()
    if problem:
        if postgres.required():
            pytest.fail(f"initdb/pg_ctl are required here: {problem}", pytrace=False)
        pytest.skip(problem)
    with postgres.ThrowawayCluster() as server:
        yield server


@pytest.fixture
def pg(cluster: postgres.ThrowawayCluster) -> Iterator[postgres.ThrowawayCluster]:
    """The cluster, running at the start and at the end of the test whatever the test did."""
    if not cluster.running():
        cluster.start()
    yield cluster
    if not cluster.running():
        cluster.start()


@pytest.fixture
def pg_url(pg: postgres.ThrowawayCluster) -> str:
    return pg.create_database(f"t_{uuid.uuid4().hex[:10]}")


class Tokens:
    """ES384 tokens of one trusted issuer, and the trusted-issuer file that trusts it."""

    def __init__(self, directory: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP384R1())
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": KID, "alg": "ES384", "use": "sig"})
        self.issuers_file = directory / "issuers.json"
        self.issuers_file.write_text(json.dumps([{"iss": ISS, "jwks": {"keys": [jwk]}, "fhir_servers": []}]))

    def make(self, path: str, jti: str | None = None) -> str:
        now = int(time.time())
        claims = {"iss": ISS, "aud": BASE + path, "iat": now, "exp": now + 300, "jti": jti or str(uuid.uuid4())}
        return jwt.encode(claims, self.key, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(tmp_path)


def feedback_body(card_uuids: list[str]) -> dict[str, Any]:
    """One "overridden" item per card (the reason coded, as CDS Hooks 2.0 allows)."""
    return {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-30T10:00:00Z",
                          "overrideReason": {"reason": {"code": "patient-declined", "system": "http://example.org/r"},
                                             "userComment": "outage test"}} for card in card_uuids]}
