"""Security profiles (``CDS_PROFILE``) and the security context the app uses at run time.

Environment variables (names are a contract):

* ``CDS_PROFILE``: ``dev`` (default for ``cds-service serve``) or ``production`` (docker image).
* ``CDS_AUTH``: ``on`` (default) or ``off``; switches JWT authentication off in either profile.
* ``CDS_TRUSTED_ISSUERS``: path of the trusted-issuer JSON file (see issuers.py).
* ``CDS_FHIR_ALLOW_PRIVATE``: ``true`` lets FHIR calls reach private, loopback and link-local
  addresses (on-premise FHIR servers). Cloud metadata addresses stay refused.
* ``CDS_PUBLIC_BASE_URL``: the public base URL (e.g. ``https://cds.example.org``); the JWT ``aud``
  must equal this plus the path called. Without it the request URL is used.
* ``CDS_JWT_ALGORITHMS``: comma-separated JWT algorithms (default ``ES384,RS384``).
* ``CDS_JWT_LEEWAY``: clock-skew leeway in seconds for exp/iat/nbf (default 60).

Profile rules:

============================  ==============================  ===============================
                              dev                             production
============================  ==============================  ===============================
JWT required                  yes (unless CDS_AUTH=off)       yes (unless CDS_AUTH=off)
trusted issuers               file + built-in Sandbox key     file only; none -> refuse start
issuer without fhir_servers   any fhirServer                  no fhirServer
loopback FHIR servers         allowed                         only with CDS_FHIR_ALLOW_PRIVATE
private / link-local FHIR     only with CDS_FHIR_ALLOW_PRIVATE only with CDS_FHIR_ALLOW_PRIVATE
============================  ==============================  ===============================
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence
from urllib.parse import urlsplit

from sqlalchemy import Engine, MetaData

from .dev_issuer import DEV_ISSUER_PREFIX
from .errors import SecurityConfigError

if TYPE_CHECKING:
    from cds_service.config import Settings
from .issuers import SANDBOX_ISS, IssuerRegistry, TrustedIssuer, load_trusted_issuers, sandbox_issuer
from .jwt_verifier import DEFAULT_ALGORITHMS, Caller, JwtVerifier, check_algorithms
from .network import AddressPolicy, FhirAccessGuard, NetworkPolicy
from .replay import ReplayCache

log = logging.getLogger("cds_service.security")

PROFILES = ("dev", "production")

SANDBOX_WARNING = (
    "SECURITY WARNING (dev profile): JWTs signed with the public CDS Hooks Sandbox key "
    f"(iss {SANDBOX_ISS}) are accepted. That private key is published, so anyone can mint such "
    "tokens: use the dev profile only on a developer machine, never with real patient data."
)
LOOPBACK_WARNING = (
    "SECURITY WARNING (dev profile): fhirServer URLs on loopback addresses (localhost, 127.0.0.1, "
    "::1) are allowed, and issuers without fhir_servers may name any FHIR server."
)
AUTH_OFF_WARNING = (
    "SECURITY WARNING: CDS_AUTH=off, JWT authentication is disabled; anyone who can reach the "
    "service can call it and make it query the fhirServer they name (address rules still apply)."
)


@dataclass(frozen=True)
class SecuritySettings:
    profile: str = "dev"
    auth_enabled: bool = True
    trusted_issuers_path: str | None = None
    allow_private_fhir: bool = False
    public_base_url: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SecuritySettings":
        """Parsed by the one settings module (``cds_service.config``), then mapped here."""
        from cds_service.config import ConfigError, Settings

        try:
            settings = Settings.from_env(os.environ if environ is None else environ)
        except ConfigError as exc:
            raise SecurityConfigError(str(exc)) from None
        return cls.from_settings(settings)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "SecuritySettings":
        """The security part of the app's :class:`cds_service.config.Settings`, validated."""
        result = cls(
            profile=settings.profile,
            auth_enabled=settings.auth_enabled,
            trusted_issuers_path=settings.trusted_issuers_path,
            allow_private_fhir=settings.fhir_allow_private,
            public_base_url=settings.public_base_url,
            algorithms=tuple(settings.jwt_algorithms),
            leeway=float(settings.jwt_leeway),
        )
        result.validate()
        return result

    def validate(self) -> None:
        if self.profile not in PROFILES:
            raise SecurityConfigError(f"CDS_PROFILE={self.profile!r}: use one of {', '.join(PROFILES)}")
        check_algorithms(self.algorithms)
        if not 0 <= self.leeway <= 600:
            raise SecurityConfigError("CDS_JWT_LEEWAY must be between 0 and 600 seconds")
        if self.public_base_url is not None:
            normalised_public_base(self.public_base_url)


def normalised_public_base(value: str) -> str:
    """``CDS_PUBLIC_BASE_URL`` without a trailing slash; must be an absolute http(s) URL."""
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SecurityConfigError(
            f"CDS_PUBLIC_BASE_URL={value!r} must be an absolute http(s) URL without query or fragment"
        )
    return value.rstrip("/")


@dataclass
class SecurityContext:
    """Everything the web layer needs: authenticate a request, build an outbound FHIR guard."""

    settings: SecuritySettings
    issuers: IssuerRegistry
    verifier: JwtVerifier | None
    network: NetworkPolicy
    warnings: list[str] = field(default_factory=list)

    @property
    def auth_enabled(self) -> bool:
        return self.verifier is not None

    def audiences(self, path: str, request_url: str) -> list[str]:
        """The ``aud`` values accepted for a call to ``path``.

        With CDS_PUBLIC_BASE_URL set: exactly base + path. Otherwise the URL of the request as
        received (scheme, host and path, no query string).
        """
        if self.settings.public_base_url:
            return [normalised_public_base(self.settings.public_base_url) + path]
        parts = urlsplit(request_url)
        return [f"{parts.scheme}://{parts.netloc}{parts.path}"]

    def authenticate(self, authorization: str | None, audiences: str | Sequence[str]) -> Caller | None:
        """The authenticated caller, or None when authentication is off.

        Raises AuthenticationError (→ bare 401).
        """
        if self.verifier is None:
            return None
        return self.verifier.verify_request(authorization, audiences)

    def fhir_guard(self, caller: Caller | None, **kwargs) -> FhirAccessGuard:
        """The outbound guard for this caller: issuer prefixes (if authenticated) + address rules."""
        prefixes = None if caller is None else caller.fhir_servers
        return self.network.guard_for(prefixes, **kwargs)


def build_security(
    settings: SecuritySettings,
    engine: Engine | None = None,
    metadata: MetaData | None = None,
    *,
    replay_cache=None,
    jwks_cache=None,
    resolver=None,
    logger: logging.Logger | None = None,
) -> SecurityContext:
    """Apply the profile rules and build the security context; raise SecurityConfigError if the
    configuration must not start."""
    logger = logger or log
    settings.validate()
    dev = settings.profile == "dev"
    warnings: list[str] = []

    file_issuers: list[TrustedIssuer] = []
    if settings.trusted_issuers_path:
        file_issuers = load_trusted_issuers(settings.trusted_issuers_path)

    registry = IssuerRegistry(file_issuers)
    if dev and SANDBOX_ISS not in registry:
        registry.add(sandbox_issuer())
    if dev:
        warnings.append(SANDBOX_WARNING)
        warnings.append(LOOPBACK_WARNING)
    if not dev:
        for issuer in registry:
            if issuer.iss.startswith(DEV_ISSUER_PREFIX):
                warnings.append(
                    f"SECURITY WARNING (production profile): the trusted-issuer file trusts the development "
                    f"issuer {issuer.iss} made by `cds-service dev-issuer`; remove it before real use."
                )
    if not dev and SANDBOX_ISS in registry:
        warnings.append(
            f"SECURITY WARNING (production profile): the trusted-issuer file trusts {SANDBOX_ISS}, "
            "whose private key is public."
        )

    if settings.auth_enabled and not dev and len(registry) == 0:
        raise SecurityConfigError(
            "production profile with authentication on, but no trusted issuer: set "
            "CDS_TRUSTED_ISSUERS to a trusted-issuer JSON file (or CDS_AUTH=off to disable "
            "authentication deliberately)"
        )

    verifier = None
    if settings.auth_enabled:
        if replay_cache is None:
            if engine is None:
                raise SecurityConfigError("authentication needs a database engine for the jti replay cache")
            replay_cache = ReplayCache(engine, metadata)
        verifier = JwtVerifier(
            registry,
            replay_cache,
            jwks_cache=jwks_cache,
            algorithms=settings.algorithms,
            leeway=settings.leeway,
            fhir_servers_default_any=dev,
        )
    else:
        warnings.append(AUTH_OFF_WARNING)

    if settings.allow_private_fhir:
        warnings.append(
            "CDS_FHIR_ALLOW_PRIVATE=true: FHIR calls may reach private, loopback and link-local "
            "addresses (cloud metadata addresses stay blocked)."
        )
    network = NetworkPolicy(
        AddressPolicy(allow_loopback=dev, allow_private=settings.allow_private_fhir),
        resolver=resolver,
    )

    for message in warnings:
        logger.warning(message)
    logger.info(
        "security: profile=%s auth=%s issuers=%s algorithms=%s",
        settings.profile,
        "on" if settings.auth_enabled else "off",
        ",".join(sorted(i.iss for i in registry)) or "-",
        ",".join(settings.algorithms),
    )
    return SecurityContext(settings, registry, verifier, network, warnings)
