"""Reading a JSON request body safely: content type, size, syntax."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request

from cds_service.security.web import JsonLimitError, check_json_limits
from cds_service.web import jsonio
from cds_service.web.errors import ApiError


def json_body() -> Any:
    """The parsed body, or an ApiError naming exactly what is wrong with it."""
    mimetype = (request.mimetype or "").lower()
    if mimetype not in {"application/json", "application/fhir+json"} and not mimetype.endswith("+json"):
        raise ApiError(415, f"Content-Type must be application/json, got {request.content_type or 'none'!r}")
    limit = current_app.config["CDS_SETTINGS"].max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"request body is {length} bytes; the limit is {limit} bytes")
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH also bounds chunked bodies
    if len(raw) > limit:
        raise ApiError(413, f"request body is larger than the limit of {limit} bytes")
    if not raw.strip():
        raise ApiError(400, "request body is empty; a JSON object is required")
    try:
        document = jsonio.loads(raw)  # orjson, or json where they would differ
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not UTF-8 encoded JSON") from None
    except json.JSONDecodeError as error:
        raise ApiError(400, f"request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    except ValueError as error:  # NaN / Infinity: not JSON (RFC 8259), and they could not be echoed back
        raise ApiError(400, f"request body is not valid JSON: {error}") from None
    try:
        check_json_limits(document)  # depth, array and object size caps: a hostile body must not exhaust the parser
    except JsonLimitError as error:
        raise ApiError(400, f"request body rejected: {error}") from None
    return document
