"""The authentication hook point every protected endpoint calls.

Returns the verified caller, or None when authentication is switched off (``CDS_AUTH=off``).
JWT verification (CDS Hooks 2.0 §Trusting CDS Clients) plugs in here; until then every call is
accepted without a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app


@dataclass(frozen=True)
class Caller:
    """Who called, as proven by their JWT: issuer, tenant and the FHIR servers they may name."""

    iss: str
    tenant: str | None = None
    jti: str | None = None
    fhir_servers: tuple[str, ...] = field(default_factory=tuple)


def authenticate() -> Caller | None:
    """Verify the request's credentials; raise ApiError(401) when they do not hold."""
    settings = current_app.config["CDS_SETTINGS"]
    if not settings.auth_enabled:
        return None
    return None
