"""Errors every layer may raise toward the client, with no web framework attached.

The hook plumbing decides that a call is malformed (400), that the patient data is unobtainable
(412) or that a draft order is not FHIR (422); the web layer turns the error into a response.
Keeping the class here lets ``hooks`` stay free of any import from ``web``.
"""

from __future__ import annotations


class ApiError(Exception):
    """A client-facing error: HTTP status plus a message that is safe to show."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
