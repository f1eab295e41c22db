"""Property-based hostile input against the endpoints: malformed envelopes, malformed FHIR
resources, arbitrary JSON and bytes. Whatever arrives, the answer is never a 5xx and always a
JSON body."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from cds_service.app import create_app
from cds_service.config import Settings
from tests.conftest import therapy_request

SIGN = "/cds-services/radioelement-order-sign"
SELECT = "/cds-services/radioelement-order-select"
FEEDBACK = SIGN + "/feedback"

HYPO = hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "Patient/pat-1", "ServiceRequest/sr-ra223", "77750", "order-sign", "2026-13-45", "\u0000", "{{context.patientId}}"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=12), children, max_size=5),
    ),
    max_leaves=25,
)
RESOURCE_TYPES = ["ServiceRequest", "MedicationRequest", "Patient", "Bundle", "Condition", "Observation",
                  "Coverage", "OperationOutcome", "Procedure", "DiagnosticReport", "Nope", ""]
fhir_like = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(RESOURCE_TYPES)},
    optional={
        "id": json_scalars,
        "status": json_scalars,
        "intent": json_scalars,
        "subject": json_values,
        "code": json_values,
        "category": json_values,
        "entry": st.lists(st.fixed_dictionaries({"resource": json_values}), max_size=3),
        "reasonCode": json_values,
        "medicationCodeableConcept": json_values,
        "dosageInstruction": json_values,
    },
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    db = tmp_path_factory.mktemp("hostile") / "h.sqlite3"
    app = create_app(Settings(database_url=f"sqlite:///{db}", auth_enabled=False, fhir_total_budget=0.5))
    return app.test_client()


def assert_sane(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    assert response.is_json, response.get_data(as_text=True)[:200]
    response.get_json()  # parses


def _paths(value: Any, prefix=()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, prefix + (index,))
    return out


def _mutate(body: dict, path: tuple, action: str, new: Any) -> dict:
    body = copy.deepcopy(body)
    if not path:
        return new if action == "replace" else body
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return body


@HYPO
@given(data=st.data(), new=json_values, action=st.sampled_from(["replace", "delete"]), hook=st.sampled_from(["order-sign", "order-select"]))
def test_mutated_envelopes_never_5xx(client, data, new, action, hook):
    body = therapy_request(hook=hook)
    body["fhirServer"] = "http://127.0.0.1:9/fhir"  # closed port: any fetch fails fast
    paths = _paths(body)
    path = data.draw(st.sampled_from(paths))
    mutated = _mutate(body, path, action, new)
    assert_sane(client.post(SIGN if hook == "order-sign" else SELECT, json=mutated))


@HYPO
@given(orders=st.lists(fhir_like, max_size=4), prefetch=st.dictionaries(
    st.sampled_from(["patient", "conditions", "observations", "coverage", "procedures", "reports", "x"]),
    st.one_of(st.none(), fhir_like, json_values), max_size=5))
def test_malformed_fhir_resources_never_5xx(client, orders, prefetch):
    body = therapy_request()
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in orders]}
    body["prefetch"] = prefetch
    assert_sane(client.post(SIGN, json=body))


@HYPO
@given(value=json_values, path=st.sampled_from([SIGN, SELECT, FEEDBACK, "/cds-services/unknown"]))
def test_arbitrary_json_never_5xx(client, value, path):
    assert_sane(client.post(path, data=json.dumps(value), content_type="application/json"))


@HYPO
@given(raw=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "application/fhir+json", "text/plain", ""]))
def test_arbitrary_bytes_never_5xx(client, raw, content_type):
    assert_sane(client.post(SIGN, data=raw, content_type=content_type))


@HYPO
@given(items=st.lists(st.one_of(json_values, st.fixed_dictionaries(
    {"card": st.text(max_size=40), "outcome": st.sampled_from(["accepted", "overridden", "bogus"]),
     "outcomeTimestamp": st.sampled_from(["2026-11-27T10:00:00Z", "yesterday", "2026-02-30T25:61:00Z"])},
    optional={"acceptedSuggestions": json_values, "overrideReason": json_values})), max_size=4))
def test_malformed_feedback_never_5xx(client, items):
    assert_sane(client.post(FEEDBACK, json={"feedback": items}))


@pytest.mark.parametrize("stamp", ["2026-02-30T10:00:00Z", "2026-11-27T25:61:00Z", "2026-11-27T10:00:00+99:00"])
def test_impossible_feedback_timestamp_is_400(client, stamp):
    # Found by the property test above: the schema accepts the shape, the date does not exist.
    response = client.post(FEEDBACK, json={"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": stamp}]})
    assert response.status_code == 400
    assert "outcomeTimestamp" in response.get_json()["error"]


def test_json_limits_boundaries():
    from cds_service.security.web import JsonLimitError, check_json_limits

    def nested(depth):
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return value

    check_json_limits(nested(64))
    with pytest.raises(JsonLimitError, match="nested deeper than 64"):
        check_json_limits(nested(65))
    check_json_limits({"a": list(range(10_000))})
    with pytest.raises(JsonLimitError, match="more than 10000 items"):
        check_json_limits({"a": list(range(10_001))})
    check_json_limits({str(i): i for i in range(2_000)})
    with pytest.raises(JsonLimitError, match="more than 2000 members"):
        check_json_limits({str(i): i for i in range(2_001)})
    with pytest.raises(JsonLimitError, match="more than 1000 values"):
        check_json_limits([[0] * 500, [0] * 500], max_nodes=1000)
    for scalar in (None, 1, "x", 1.5, True):
        check_json_limits(scalar)
