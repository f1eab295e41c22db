"""Every error leaves as JSON with a precise message, never as a stack trace.

The body is a FHIR OperationOutcome (CRD asks for one) that also carries a plain ``error``
field, so both FHIR-aware clients and humans with curl can read it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from cds_service.errors import ApiError  # re-exported: the web modules import it from here

log = logging.getLogger(__name__)

_ISSUE_CODES = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    412: "incomplete",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    500: "exception",
    503: "transient",
}




def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "error": message,
        "status": status,
        "issue": [
            {
                "severity": "error" if status < 500 else "fatal",
                "code": _ISSUE_CODES.get(status, "processing"),
                "diagnostics": message,
            }
        ],
    }


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error_body(status, message))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.message, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        messages = {
            404: "no such endpoint; the services are listed at GET /cds-services",
            405: "method not allowed on this endpoint",
            413: "request body is larger than the configured limit",
        }
        message = messages.get(status, error.description or error.name)
        headers = {}
        if status == 405 and error.get_response().headers.get("Allow"):
            headers["Allow"] = error.get_response().headers["Allow"]
        return error_response(status, message, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # A bug on our side: log the trace for operators, tell the client only that it happened.
        log.exception("unhandled error while serving a request")
        return error_response(500, "internal error; the incident was logged")
