"""The compiled request check (hooks/schema_check.py) agrees with jsonschema on every body.

It may only ever say "valid" where jsonschema does (it is a fast yes; anything else goes to
jsonschema); here it must in fact agree both ways, on the fixtures' requests, on the benchmark's
bodies, and on generated mutations of them that change, drop or retype any member.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import scenarios  # noqa: E402

from cds_service.hooks.envelope import fast_request_check  # noqa: E402
from cds_service.hooks.schema_check import Unsupported, compile_schema  # noqa: E402
from cds_service.schemas import validator  # noqa: E402


def requests() -> list[dict[str, Any]]:
    found = []
    for path in sorted((ROOT / "fhir_fixtures").rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("request"), dict):
            found.append(data["request"])
    found.append(scenarios.order_sign_request())
    found.append(scenarios.order_select_request())
    found.extend(scenarios.not_therapy_requests("https://ehr.example.org/fhir", 2))
    return found


REQUESTS = requests()
CHECK = fast_request_check()


def same(body: Any) -> None:
    assert CHECK is not None
    assert CHECK(body) == validator("request").is_valid(body), json.dumps(body, default=str)[:500]


def test_the_request_schema_compiles() -> None:
    assert CHECK is not None, "the request schema uses a keyword hooks/schema_check.py does not know"


def test_every_fixture_request_gets_the_same_verdict() -> None:
    assert len(REQUESTS) > 50
    for body in REQUESTS:
        same(body)


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "order-sign", "order-select", "Bearer", "Bundle", "Patient/1", "http://a",
                     "ftp://a", "d7c2a1c4-3b1e-4c8e-9f0a-0a1b2c3d4e5f", "ServiceRequest/sr-1", "Practitioner/x y",
                     "Observation"]),
    st.just([]), st.just({}), st.just(["x"]), st.just({"resourceType": "Patient"}), st.just({"resourceType": 1}),
)


def _paths(value: Any, prefix: tuple[Any, ...] = (), depth: int = 0) -> list[tuple[Any, ...]]:
    found = [prefix]
    if depth >= 6:
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key), depth + 1))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            found.extend(_paths(item, (*prefix, index), depth + 1))
    return found


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_requests_get_the_same_verdict(data: st.DataObject) -> None:
    body = copy.deepcopy(data.draw(st.sampled_from(REQUESTS)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(body)))
        if not path:
            continue
        parent = body
        for part in path[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["set", "delete", "add"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["fhirAuthorization", "selections", "extra", "encounterId", "entry",
                                              "resourceType", "hook", "fhirServer"]))] = copy.deepcopy(data.draw(VALUES))
        else:
            parent[path[-1]] = copy.deepcopy(data.draw(VALUES))  # the strategy's own objects stay unchanged
    same(body)


@pytest.mark.parametrize("schema", [
    {"type": "object", "patternProperties": {"^x": {}}},
    {"anyOf": [{"type": "string"}]},
    {"properties": {"a": {"const": 1}}},
    {"additionalProperties": False},
])
def test_an_unknown_keyword_or_value_is_refused_at_compile_time(schema: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        compile_schema(schema)
