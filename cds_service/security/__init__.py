"""Security for the CDS service: CDS Hooks JWT authentication, trusted issuers, profiles,
jti replay protection and SSRF-safe outbound FHIR access.

The web layer uses :func:`build_security` once at start-up and then, per request,
``context.authenticate(authorization_header, context.audiences(path, request.url))`` (returns a
:class:`Caller`, or None when ``CDS_AUTH=off``; raises :class:`AuthenticationError` → bare 401) and
``context.fhir_guard(caller)`` for outbound FHIR calls.
"""

from .errors import AuthenticationError, FhirAccessDenied, SecurityConfigError
from .jwt_verifier import Caller, JwtVerifier
from .network import AddressPolicy, FhirAccessGuard, NetworkPolicy
from .profiles import SecurityContext, SecuritySettings, build_security

__all__ = [
    "AddressPolicy",
    "AuthenticationError",
    "Caller",
    "FhirAccessDenied",
    "FhirAccessGuard",
    "JwtVerifier",
    "NetworkPolicy",
    "SecurityConfigError",
    "SecurityContext",
    "SecuritySettings",
    "build_security",
]
