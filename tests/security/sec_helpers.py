"""Constants and helpers shared by the security tests (imported as a top-level module)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm, get_default_algorithms


ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/radioelement-order-sign"
FEEDBACK_AUD = AUD + "/feedback"
JKU = "https://ehr.example.org/.well-known/jwks.json"
EC_KID = "ec-key-1"
RSA_KID = "rsa-key-1"


def public_jwk(private_key, kid: str) -> dict[str, Any]:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        jwk["alg"] = "ES384"
    else:
        jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        jwk["alg"] = "RS384"
    jwk["kid"] = kid
    jwk["use"] = "sig"
    return jwk


@dataclass
class Keys:
    ec: Any
    rsa: Any
    other_ec: Any
    other_rsa: Any

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.ec, EC_KID), public_jwk(self.rsa, RSA_KID)]}


@dataclass
class TokenFactory:
    keys: Keys
    defaults: dict[str, Any] = field(default_factory=dict)

    def claims(self, **overrides) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": ISS, "aud": AUD, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not ...}

    def make(self, alg: str = "ES384", key=None, headers: dict | None = None, **claims) -> str:
        """Sign a token by hand (not via jwt.encode) so headers can be anything, including
        values PyJWT itself would refuse to produce. A value of ``...`` removes a header/claim."""
        if key is None:
            key = self.keys.ec if alg.startswith("ES") else self.keys.rsa
        hdr = {"alg": alg, "kid": EC_KID if alg.startswith("ES") else RSA_KID, "typ": "JWT", "jku": JKU}
        hdr.update(headers or {})
        hdr = {k: v for k, v in hdr.items() if v is not ...}
        return sign_compact(hdr, self.claims(**claims), key, alg)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_compact(header: dict, claims: dict, key, alg: str) -> str:
    algorithm = get_default_algorithms()[alg]
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(key))
    return signing_input + "." + b64url(signature)
