"""Shared pieces for the vendor tests: the vendor fixtures replayed once, RSA keys, vendor JWTs."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm, get_default_algorithms

from cds_service.replay.fixtures import discover
from cds_service.replay.runner import InProcessTransport, Runner

ROOT = Path(__file__).resolve().parents[2]
VENDOR_FIXTURES = ROOT / "fhir_fixtures" / "vendors"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def vendor_results() -> dict[str, Any]:
    """Every fixture under fhir_fixtures/vendors/ replayed in process (authentication off, so the
    answer is the standard one the profiles then shape): "epic/<file stem>" -> Result."""
    discovery = discover([VENDOR_FIXTURES])
    assert not discovery.problems, discovery.problems
    runner = Runner(InProcessTransport())
    try:
        return {"/".join(Path(f.name).with_suffix("").parts[-2:]): runner.run(f) for f in discovery.fixtures}
    finally:
        runner.close()


@pytest.fixture(scope="session")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwks(private_key, kid: str) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update(kid=kid, alg="RS384", use="sig")
    return {"keys": [jwk]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def vendor_token(shape: str, private_key, aud: str, **claim_changes: Any) -> tuple[dict, dict, str]:
    """Sign the token shape in data/<shape>.json now: (header, claims, compact JWS)."""
    spec = json.loads((DATA / f"{shape}.json").read_text(encoding="utf-8"))
    now = int(time.time())
    claims = dict(spec["claims"])
    for name in ("iat", "nbf", "exp"):
        if name in claims:
            claims[name] = now + claims[name]
    claims.update(aud=aud, jti=str(uuid.uuid4()))
    claims.update(claim_changes)
    header = spec["header"]
    algorithm = get_default_algorithms()[header["alg"]]
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(private_key))
    return header, claims, signing_input + "." + _b64(signature)
