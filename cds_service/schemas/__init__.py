"""JSON Schemas for the CDS Hooks 2.0 request, response and feedback bodies, compiled once."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

SCHEMA_FILES = {
    "request": "cds-hooks-request.schema.json",
    "response": "cds-hooks-response.schema.json",
    "feedback": "cds-hooks-feedback.schema.json",
}


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    """The compiled validator for ``request``, ``response`` or ``feedback``."""
    text = resources.files(__package__).joinpath(SCHEMA_FILES[name]).read_text(encoding="utf-8")
    # The files are checked against the 2020-12 metaschema by the test suite
    # (tests/perf/test_startup_work.py), not at every start, where it cost ~0.1 s of cold start.
    return Draft202012Validator(json.loads(text))


def _where(error: ValidationError) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    return path.lstrip(".") or "(body)"


def first_error(name: str, document: Any) -> str | None:
    """A precise, client-safe description of the first schema violation, or None when valid."""
    errors = sorted(validator(name).iter_errors(document), key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path)))
    if not errors:
        return None
    error = errors[0]
    message = error.message
    if len(message) > 300:
        message = message[:300] + "…"
    return f"{_where(error)}: {message}"
