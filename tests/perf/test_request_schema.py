"""The request schema's prefetch rule: null or a resource, checked without walking big Bundles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import scenarios  # noqa: E402

from cds_service.schemas import first_error, validator  # noqa: E402


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (5, "prefetch.patient: 5 is not of type 'object', 'null'"),
        ("Patient/1", "prefetch.patient: 'Patient/1' is not of type 'object', 'null'"),
        ([], "prefetch.patient: [] is not of type 'object', 'null'"),
        ({"id": "x"}, "prefetch.patient: 'resourceType' is a required property"),
        ({"resourceType": "not a type"}, "prefetch.patient.resourceType: 'not a type' does not match '^[A-Z][A-Za-z]+$'"),
    ],
)
def test_a_prefetch_value_must_be_null_or_a_resource(value, problem):
    body = scenarios.order_sign_request()
    body["prefetch"]["patient"] = value
    assert first_error("request", body) == problem


def test_null_and_big_bundles_are_accepted():
    body = scenarios.big_chart_request(1000)
    body["prefetch"]["encounter"] = None
    assert first_error("request", body) is None


def test_checking_a_valid_big_prefetch_never_renders_it():
    """The old ``oneOf [null, resource]`` built an error message holding the repr of every
    prefetched Bundle just to discard it. Count reprs: none may happen for a valid body."""
    body = scenarios.big_chart_request(1000)
    rendered = []

    class Watched(dict):
        def __repr__(self) -> str:
            rendered.append(self.get("resourceType"))
            return super().__repr__()

    body["prefetch"] = {key: Watched(value) if isinstance(value, dict) else value for key, value in body["prefetch"].items()}
    assert list(validator("request").iter_errors(body)) == []
    assert rendered == []
