"""Verify the CDS Hooks 2.0 JWT a CDS client sends (SPEC "Trusting CDS Clients").

Checks, in order (every failure raises AuthenticationError; the HTTP answer is a bare 401):

* ``Authorization: Bearer <token>`` present, compact JWS, bounded size;
* header ``alg`` in the configured list (default ES384, RS384; ``none`` and HS* can never be
  configured), ``kid`` present, ``typ`` is ``JWT``;
* ``iss`` (read before the signature check only to pick the keys) is a trusted issuer;
* optional ``jku`` is allow-listed for that issuer; keys come from the issuer's inline set
  (jku pinned, never fetched) or from its ``jwks_url`` / the allow-listed ``jku``;
* the key with ``kid`` exists and matches ``alg`` (EC curve / RSA), then the signature verifies;
* claims ``iss``, ``aud`` (the exact public URL of the endpoint called; string or list),
  ``exp``, ``iat`` (not in the future beyond the leeway), ``nbf`` if present, ``jti``;
  optional ``tenant`` must be a string;
* ``(iss, jti)`` has not been seen before within its lifetime (database replay cache).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Protocol, Sequence

import jwt
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
    PyJWKError,
    PyJWTError,
)

from .errors import AuthenticationError, SecurityConfigError
from .issuers import IssuerRegistry, TrustedIssuer
from .jwks import JwksCache, JwksUnavailable
from .network import UrlError, normalise_url
from .replay import MAX_ISS_LENGTH, MAX_JTI_LENGTH, ReplayDetected

log = logging.getLogger(__name__)

DEFAULT_ALGORITHMS = ("ES384", "RS384")
# Asymmetric algorithms that may be configured. "none" and HS* are deliberately absent.
SUPPORTED_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
_EC_CURVE_FOR_ALG = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
MAX_TOKEN_LENGTH = 16 * 1024
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")


@dataclass(frozen=True)
class Caller:
    """An authenticated CDS client."""

    iss: str
    jti: str
    exp: int
    tenant: str | None = None
    # fhirServer URL prefixes this caller may make the service call; None = no prefix limit
    # (dev profile, issuer without fhir_servers), () = none.
    fhir_servers: tuple[str, ...] | None = ()


class JtiStore(Protocol):
    def register(self, iss: str, jti: str, expires_at: float) -> None: ...


def parse_bearer(authorization: str | None) -> str:
    """Extract the token from an ``Authorization`` header value."""
    if not authorization:
        raise AuthenticationError("missing Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Authorization is not a Bearer token")
    return token.strip()


def check_algorithms(algorithms: Iterable[str]) -> tuple[str, ...]:
    algs = tuple(algorithms)
    if not algs:
        raise SecurityConfigError("at least one JWT algorithm must be allowed")
    for alg in algs:
        if alg not in SUPPORTED_ALGORITHMS:
            raise SecurityConfigError(
                f"JWT algorithm {alg!r} cannot be allowed; choose from {sorted(SUPPORTED_ALGORITHMS)} "
                "(none and HS* are never accepted)"
            )
    return algs


class JwtVerifier:
    def __init__(
        self,
        issuers: IssuerRegistry,
        replay_cache: JtiStore,
        *,
        jwks_cache: JwksCache | None = None,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway: float = 60.0,
        fhir_servers_default_any: bool = False,
        clock=time.time,
    ):
        self.issuers = issuers
        self.replay_cache = replay_cache
        self.jwks_cache = jwks_cache or JwksCache(issuers.fetchable_urls())
        self.algorithms = check_algorithms(algorithms)
        self.leeway = leeway
        # Issuers without fhir_servers: any server in dev (True), none in production (False).
        self.fhir_servers_default_any = fhir_servers_default_any
        self._clock = clock

    # -- public ------------------------------------------------------------------------------

    def verify_request(self, authorization: str | None, audience: str | Sequence[str]) -> Caller:
        """Verify the Authorization header for a call whose public URL is ``audience``.

        ``audience`` may be several acceptable URLs (e.g. configured public URL and request URL);
        the token's ``aud`` must contain one of them exactly.
        """
        return self.verify(parse_bearer(authorization), audience)

    def verify(self, token: str, audience: str | Sequence[str]) -> Caller:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError("token missing or too long")
        if not _COMPACT_JWS.fullmatch(token):
            raise AuthenticationError("token is not a compact JWS")
        audiences = [audience] if isinstance(audience, str) else list(audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise SecurityConfigError("verify() needs the endpoint's public URL as audience")

        header = self._check_header(token)
        unverified = self._peek_claims(token)
        peeked_jti = unverified.get("jti")
        try:
            return self._verify_claims(token, header, unverified, audiences)
        except AuthenticationError as exc:
            # Every failure's log line names the token's jti when it had one (unverified: for
            # tracing only), so an operator can find the token the client sent.
            if exc.jti is None and isinstance(peeked_jti, str) and peeked_jti:
                exc.jti = peeked_jti
            raise

    def _verify_claims(self, token: str, header: Mapping[str, Any], unverified: Mapping[str, Any],
                       audiences: list[str]) -> Caller:
        alg, kid = header["alg"], header["kid"]
        iss = unverified.get("iss")
        if not isinstance(iss, str) or not iss:
            raise AuthenticationError("iss claim missing")
        issuer = self.issuers.get(iss)
        if issuer is None:
            raise AuthenticationError("untrusted issuer", iss=iss)

        jwk = self._find_key(issuer, header, kid)
        key = self._key_for_alg(jwk, alg, iss)

        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],  # alg is already checked against the configured list
                audience=audiences,
                issuer=iss,
                leeway=self.leeway,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_iat": True,
                    "verify_nbf": True,
                    "verify_aud": True,
                    "verify_iss": True,
                },
            )
        except InvalidSignatureError:
            raise AuthenticationError("bad signature", iss=iss) from None
        except ExpiredSignatureError:
            raise AuthenticationError("token expired", iss=iss) from None
        except ImmatureSignatureError:
            raise AuthenticationError("token not yet valid (iat/nbf in the future)", iss=iss) from None
        except InvalidAudienceError:
            raise AuthenticationError("aud does not match the endpoint URL", iss=iss) from None
        except MissingRequiredClaimError as exc:
            raise AuthenticationError(f"required claim {exc.claim} missing", iss=iss) from None
        except InvalidIssuerError:
            raise AuthenticationError("iss mismatch", iss=iss) from None
        except (InvalidTokenError, PyJWKError, ValueError, TypeError) as exc:
            raise AuthenticationError(f"invalid token ({exc.__class__.__name__})", iss=iss) from None

        return self._finish(issuer, claims)

    # -- steps ---------------------------------------------------------------------------------

    def _check_header(self, token: str) -> Mapping[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except (InvalidTokenError, ValueError, TypeError):
            raise AuthenticationError("malformed JWT header") from None
        if not isinstance(header, dict):
            raise AuthenticationError("malformed JWT header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthenticationError(f"alg {str(alg)[:20]!r} not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise AuthenticationError("kid missing")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise AuthenticationError("typ is not JWT")
        if "jku" in header and not isinstance(header["jku"], str):
            raise AuthenticationError("jku is not a string")
        # Header parameters that would make a library pick a key from the token itself.
        for embedded in ("jwk", "x5u", "x5c"):
            if embedded in header:
                raise AuthenticationError(f"header parameter {embedded} is not accepted")
        if header.get("crit"):
            raise AuthenticationError("critical header extensions are not supported")
        return header

    @staticmethod
    def _peek_claims(token: str) -> Mapping[str, Any]:
        # Read, without trusting, only to find out which issuer's keys to use. Every claim is
        # verified again by jwt.decode after the signature check.
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except (InvalidTokenError, ValueError, TypeError):
            raise AuthenticationError("malformed JWT payload") from None
        if not isinstance(claims, dict):
            raise AuthenticationError("malformed JWT payload")
        return claims

    def _find_key(self, issuer: TrustedIssuer, header: Mapping[str, Any], kid: str) -> Mapping[str, Any]:
        jku = header.get("jku")
        if jku is not None:
            try:
                jku = normalise_url(jku)
            except UrlError:
                raise AuthenticationError("jku is not a valid URL", iss=issuer.iss) from None
            if jku not in issuer.allowed_jku:
                raise AuthenticationError("jku not on the issuer's list", iss=issuer.iss)
        if issuer.inline_keys is not None:
            jwk = issuer.inline_keys.get(kid)
        else:
            if jku is None and issuer.jwks_url is None:
                raise AuthenticationError("token has no jku and issuer has no jwks_url", iss=issuer.iss)
            url = jku or issuer.jwks_url
            assert url is not None  # one of them is set (checked just above)
            try:
                jwk = self.jwks_cache.get_key(url, kid)
            except JwksUnavailable:
                raise AuthenticationError("issuer JWK Set unavailable", iss=issuer.iss) from None
        if jwk is None:
            raise AuthenticationError("unknown kid", iss=issuer.iss)
        return jwk

    @staticmethod
    def _key_for_alg(jwk: Mapping[str, Any], alg: str, iss: str):
        if jwk.get("alg") not in (None, alg):
            raise AuthenticationError("key alg does not match header alg", iss=iss)
        if alg.startswith("ES"):
            if jwk.get("kty") != "EC" or jwk.get("crv") != _EC_CURVE_FOR_ALG[alg]:
                raise AuthenticationError("key type does not match alg", iss=iss)
        elif jwk.get("kty") != "RSA":
            raise AuthenticationError("key type does not match alg", iss=iss)
        try:
            return jwt.PyJWK(dict(jwk), algorithm=alg).key
        except (PyJWTError, ValueError, TypeError, KeyError):
            raise AuthenticationError("key unusable", iss=iss) from None

    def _finish(self, issuer: TrustedIssuer, claims: Mapping[str, Any]) -> Caller:
        iss = issuer.iss
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise AuthenticationError("jti missing or not a string", iss=iss)
        if len(iss) > MAX_ISS_LENGTH:
            raise AuthenticationError("iss too long", iss=iss)
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_number(exp) or not _is_number(iat):
            raise AuthenticationError("exp/iat not numeric", iss=iss, jti=jti)
        assert exp is not None  # numeric, checked just above
        tenant = claims.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise AuthenticationError("tenant is not a string", iss=iss, jti=jti)
        try:
            self.replay_cache.register(iss, jti, float(exp) + self.leeway)
        except ReplayDetected as exc:
            raise AuthenticationError(str(exc), iss=iss, jti=jti) from None
        fhir_servers = issuer.fhir_servers
        if fhir_servers is None and not self.fhir_servers_default_any:
            fhir_servers = ()
        return Caller(iss=iss, jti=jti, exp=int(exp), tenant=tenant, fhir_servers=fhir_servers)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
