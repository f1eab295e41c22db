"""The authentication hook point every protected endpoint calls.

Returns the verified caller, or None when authentication is switched off (``CDS_AUTH=off``).
JWT verification (CDS Hooks 2.0 §Trusting CDS Clients) is done by :mod:`cds_service.security`;
any failure is the same bare 401 (the reason goes to the log, never to the client).
Preflight OPTIONS requests are answered in :mod:`cds_service.web.cors` before this runs.
"""

from __future__ import annotations

from cds_service.security import AuthenticationError, Caller
from cds_service.security.replay import ReplayCheckUnavailable
from cds_service.security.web import UNAUTHORIZED_MESSAGE, authenticate_request
from cds_service.web.errors import ApiError

__all__ = ["Caller", "authenticate"]


def authenticate() -> Caller | None:
    """Verify the request's credentials; raise ApiError(401) when they do not hold."""
    try:
        return authenticate_request()
    except AuthenticationError:
        raise ApiError(401, UNAUTHORIZED_MESSAGE, {"WWW-Authenticate": "Bearer"}) from None
    except ReplayCheckUnavailable:  # database away and the token id cannot be kept locally either
        raise ApiError(503, "the token replay check is unavailable right now; send the request again later",
                       {"Retry-After": "5"}) from None
