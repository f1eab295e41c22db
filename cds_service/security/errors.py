"""Exceptions raised by the security package.

Each carries an internal ``reason`` meant for server logs only. None of them may carry a token,
and the web layer must never send the reason to the client (a failed JWT is a bare 401).
"""

from __future__ import annotations


class SecurityConfigError(ValueError):
    """The security configuration (trusted-issuer file, profile, env vars) is unusable.

    Raised at start-up so the service refuses to run rather than running unprotected.
    """


class AuthenticationError(Exception):
    """The request did not carry an acceptable CDS Hooks JWT.

    ``reason`` is for logs; the HTTP answer is always a bare 401.
    """

    def __init__(self, reason: str, *, iss: str | None = None, jti: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.iss = iss
        self.jti = jti

    def log_fields(self) -> dict[str, str]:
        """Fields that are safe to log (never the token itself)."""
        fields = {"auth_failure": self.reason}
        if self.iss:
            fields["iss"] = _clip(self.iss)
        if self.jti:
            fields["jti"] = _clip(self.jti)
        return fields


class FhirAccessDenied(Exception):
    """A fhirServer URL (or a redirect / paging link) is not allowed for this caller or profile."""

    def __init__(self, reason: str, url: str | None = None):
        super().__init__(reason)
        self.reason = reason
        # Only scheme://host[:port] is kept, so query strings (which can hold patient ids) stay
        # out of logs.
        self.origin = _origin_only(url) if url else None


def _clip(value: str, limit: int = 200) -> str:
    value = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return value if len(value) <= limit else value[:limit] + "..."


def _origin_only(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return _clip(f"{parts.scheme}://{host}{port}")
    except ValueError:
        return "<unparseable url>"
