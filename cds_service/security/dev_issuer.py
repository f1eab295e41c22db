"""A development JWT issuer, so a served instance can be called with authentication on.

``cds-service dev-issuer DIR`` writes an ES384 key pair and ``DIR/trusted-issuers.json`` trusting
it; ``cds-service token --issuer-dir DIR --aud URL`` prints a signed CDS Hooks JWT with a fresh
``jti``; ``cds-service replay --issuer-dir DIR`` signs one per request. Nothing trusts the issuer
by itself: the service trusts it only when ``CDS_TRUSTED_ISSUERS`` names that file, in the dev or
the production profile alike (and the production profile warns at start when it does).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# The issuer id says what it is, so no one mistakes a development token for an EHR's.
DEV_ISSUER_PREFIX = "urn:cds-service:development-issuer:"
KEY_FILE = "dev-issuer-key.pem"
TRUSTED_ISSUERS_FILE = "trusted-issuers.json"
ALGORITHM = "ES384"
DEFAULT_TTL = 300
MAX_TTL = 3600


class DevIssuerError(Exception):
    """The issuer folder is missing, incomplete or would be overwritten."""


@dataclass(frozen=True)
class DevIssuer:
    iss: str
    kid: str
    private_key_pem: bytes

    def token(self, aud: str, ttl: int = DEFAULT_TTL, now: float | None = None) -> str:
        """A CDS Hooks JWT for the endpoint URL ``aud``, with a fresh ``jti`` every time."""
        if not 1 <= ttl <= MAX_TTL:
            raise DevIssuerError(f"--ttl must be between 1 and {MAX_TTL} seconds, got {ttl}")
        issued = int(time.time() if now is None else now)
        claims = {"iss": self.iss, "sub": self.iss, "aud": aud, "iat": issued, "exp": issued + ttl,
                  "jti": str(uuid.uuid4())}
        return jwt.encode(claims, self.private_key_pem, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": "JWT"})


def _public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {"kty": jwk["kty"], "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"], "kid": kid, "alg": ALGORITHM,
            "use": "sig"}


def _write_private(path: Path, data: bytes) -> None:
    # O_EXCL: never overwrite, even if the file appeared since the check; 0600 from the start.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def create_dev_issuer(directory: str | Path) -> DevIssuer:
    """Write the key pair and the trusted-issuer file into ``directory``; refuse to overwrite."""
    folder = Path(directory)
    targets = [folder / KEY_FILE, folder / TRUSTED_ISSUERS_FILE]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise DevIssuerError(f"refusing to overwrite {', '.join(existing)}; choose another folder or delete them")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    suffix = secrets.token_hex(4)
    iss, kid = DEV_ISSUER_PREFIX + suffix, f"dev-{suffix}"
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    trusted = [{
        "_comment": "Development issuer made by `cds-service dev-issuer`: for local trials only, never with "
                    "real patient data. Its private key is in " + KEY_FILE + " beside this file.",
        "iss": iss,
        "jwks": {"keys": [_public_jwk(key, kid)]},
    }]
    _write_private(folder / KEY_FILE, pem)
    _write_private(folder / TRUSTED_ISSUERS_FILE, (json.dumps(trusted, indent=2) + "\n").encode())
    return DevIssuer(iss, kid, pem)


def load_dev_issuer(directory: str | Path) -> DevIssuer:
    """The issuer that ``create_dev_issuer`` wrote into ``directory``."""
    folder = Path(directory)
    try:
        pem = (folder / KEY_FILE).read_bytes()
        entries = json.loads((folder / TRUSTED_ISSUERS_FILE).read_text("utf-8"))
        entry = next(e for e in entries if str(e.get("iss", "")).startswith(DEV_ISSUER_PREFIX))
        kid = entry["jwks"]["keys"][0]["kid"]
    except FileNotFoundError as exc:
        raise DevIssuerError(f"{exc.filename} not found; create the issuer with `cds-service dev-issuer {folder}`") from None
    except (ValueError, KeyError, IndexError, StopIteration, AttributeError, TypeError):
        raise DevIssuerError(f"{folder} does not hold a development issuer made by `cds-service dev-issuer`") from None
    return DevIssuer(entry["iss"], kid, pem)


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    issuer = subparsers.add_parser(
        "dev-issuer", help="create a development JWT issuer (ES384 key pair + trusted-issuers.json) in DIR",
        description="Create an ES384 key pair and DIR/trusted-issuers.json trusting it (files mode 0600; "
                    "never overwrites). Serve with CDS_TRUSTED_ISSUERS=DIR/trusted-issuers.json, then mint "
                    "tokens with `cds-service token --issuer-dir DIR --aud URL`. For local trials only.",
    )
    issuer.add_argument("dir", metavar="DIR")
    issuer.set_defaults(handler=run_dev_issuer)

    token = subparsers.add_parser(
        "token", help="print a signed development JWT for one endpoint URL",
        description="Print a CDS Hooks JWT signed by the development issuer in DIR, with a fresh jti "
                    "(each token is accepted once) and aud the endpoint URL exactly as the service sees it.",
    )
    token.add_argument("--issuer-dir", required=True, metavar="DIR", help="folder made by `cds-service dev-issuer`")
    token.add_argument("--aud", required=True, metavar="URL",
                       help="the URL called, e.g. http://127.0.0.1:8080/cds-services/radioelement-order-sign")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL, metavar="SECONDS",
                       help=f"lifetime in seconds (default {DEFAULT_TTL}, at most {MAX_TTL})")
    token.set_defaults(handler=run_token)


def run_dev_issuer(args: argparse.Namespace) -> int:
    try:
        issuer = create_dev_issuer(args.dir)
    except (DevIssuerError, OSError) as error:
        print(f"cds-service dev-issuer: {error}", file=sys.stderr)
        return 1
    folder = Path(args.dir)
    print(f"development issuer {issuer.iss} (kid {issuer.kid}) written to {folder}/")
    print(f"serve with:  CDS_TRUSTED_ISSUERS={folder / TRUSTED_ISSUERS_FILE} cds-service serve")
    print(f"token with:  cds-service token --issuer-dir {folder} --aud http://127.0.0.1:8080/cds-services/radioelement-order-sign")
    return 0


def run_token(args: argparse.Namespace) -> int:
    try:
        print(load_dev_issuer(args.issuer_dir).token(args.aud, ttl=args.ttl))
    except DevIssuerError as error:
        print(f"cds-service token: {error}", file=sys.stderr)
        return 2
    return 0
