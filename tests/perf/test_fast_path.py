"""The fast path changes the cost of an answer, never the answer.

By default the pipeline hands prefetch resources to the engine as plain dicts and the engine
validates only those it selects; ``CDS_STRICT_FHIR=true`` validates every prefetched resource up
front. For every fixture with a prefetch, and for generated charts up to 1,000 resources, the
two must give the same HTTP status and the same response (cards, systemActions, decisions), up
to the fresh uuids. The one allowed difference: an invalid resource the decision never reads
makes strict mode answer 422 while the fast path answers as if it were not there.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import scenarios  # noqa: E402

from cds_service.fhir.parsing import normalise, validate_resource  # noqa: E402

FIXTURES = ROOT / "fhir_fixtures"
SIGN = f"/cds-services/{scenarios.ORDER_SIGN_SERVICE}"
SELECT = f"/cds-services/{scenarios.ORDER_SELECT_SERVICE}"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def scrub(value: Any) -> Any:
    """The response with every uuid (cards, suggestions, coverage assertion ids) replaced."""
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, str) and _UUID.match(value):
        return "<uuid>"
    return value


def fixture_files() -> list[Any]:
    found = []
    for path in sorted(FIXTURES.rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(FIXTURES).parts):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        request = data.get("request") if isinstance(data, dict) else None
        if isinstance(request, dict) and isinstance(request.get("prefetch"), dict):
            found.append(pytest.param(path, id=str(path.relative_to(FIXTURES))))
    return found


@pytest.fixture
def answer(make_app: Callable[..., Any]) -> Callable[[bool, str, dict[str, Any]], tuple[int, Any]]:
    apps = {strict: make_app(strict_fhir=strict) for strict in (False, True)}

    def call(strict: bool, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        sent = copy.deepcopy(body)
        response = apps[strict].test_client().post(path, json=sent)
        assert sent == body, "handling a call must not change the request it was given"
        return response.status_code, scrub(response.get_json())

    return call


def assert_same(answer: Callable[..., tuple[int, Any]], path: str, body: dict[str, Any]) -> tuple[int, Any]:
    strict_status, strict_body = answer(True, path, body)
    fast_status, fast_body = answer(False, path, body)
    if strict_status == 422:
        # Strict mode refuses any invalid resource; the fast path only those the decision reads.
        assert fast_status in (200, 422), fast_body
    else:
        assert fast_status == strict_status, (fast_body, strict_body)
        assert fast_body == strict_body
    return fast_status, fast_body


@pytest.mark.parametrize("path", fixture_files())
def test_fixture_answers_are_identical_with_and_without_the_fast_path(answer, path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    request = data["request"]
    service = data.get("service") or (
        scenarios.ORDER_SELECT_SERVICE if request.get("hook") == "order-select" else scenarios.ORDER_SIGN_SERVICE)
    assert_same(answer, f"/cds-services/{service}", request)


# --- generated charts ---------------------------------------------------------------------------


def _drop(body: dict[str, Any], *ids: str) -> dict[str, Any]:
    """The request without the prefetched resources of these ids."""
    for key, value in body["prefetch"].items():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            value["entry"] = [e for e in value["entry"] if e["resource"]["id"] not in ids]
            value["total"] = len(value["entry"])
    return body


def _find(body: dict[str, Any], ident: str) -> dict[str, Any]:
    for value in body["prefetch"].values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            for entry in value["entry"]:
                if entry["resource"]["id"] == ident:
                    return entry["resource"]
    raise KeyError(ident)


def _office(body: dict[str, Any]) -> dict[str, Any]:
    encounter = body["prefetch"]["encounter"]
    encounter["class"] = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
    encounter["type"] = [{"text": "Oncology clinic visit"}]
    return body


def _completed_procedure(body: dict[str, Any]) -> dict[str, Any]:
    """Charge capture: the therapy was given 30 days ago and is sent as a completed Procedure, so
    the post-treatment checks (visits, notes, adverse events, response) read the chart too."""
    entries = body["context"]["draftOrders"]["entry"]
    order = entries[0]["resource"]
    given = (date.fromisoformat(order["authoredOn"]) - timedelta(days=30)).isoformat()
    entries[0]["resource"] = {
        "resourceType": "Procedure", "id": "proc-therapy", "status": "completed", "code": order["code"],
        "subject": order["subject"], "encounter": order["encounter"], "performedDateTime": given,
        "reasonCode": order["reasonCode"], "bodySite": order["bodySite"],
    }
    entries[1]["resource"]["basedOn"] = [{"reference": "Procedure/proc-therapy"}]
    return body


CHARTS: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
    "completed-procedure": lambda: (SIGN, _completed_procedure(scenarios.order_sign_request())),
    "ra223-complete": lambda: (SIGN, scenarios.order_sign_request("ra223")),
    "lu177-complete": lambda: (SIGN, scenarios.order_sign_request("lu177-psma")),
    "lu177-order-select": lambda: (SELECT, scenarios.order_select_request("lu177-psma")),
    "ra223-order-select": lambda: (SELECT, scenarios.order_select_request("ra223")),
    "no-follow-up-evidence": lambda: (SIGN, _drop(scenarios.order_sign_request(), "cp-ra223", "sr-followup")),
    "documentation-gaps": lambda: (SIGN, _drop(scenarios.order_sign_request(), "obs-ecog-0", "obs-ecog-1",
                                               "obs-ecog-2", "dr-bone-scan", "dr-ct-ap", "dr-ct-chest",
                                               "dr-psma-pet", "obs-stage-21908-9", "obs-stage-21905-5",
                                               "obs-stage-21906-3", "obs-stage-21907-1")),
    "no-coverage-office": lambda: (SIGN, _office(_drop(scenarios.order_sign_request(), "cov-medicare"))),
    "chart-100": lambda: (SIGN, scenarios.big_chart_request(100)),
    "chart-1000": lambda: (SIGN, scenarios.big_chart_request(1000)),
    "chart-1000-lu177-gaps": lambda: (SIGN, _drop(scenarios.big_chart_request(1000, "lu177-psma", seed=7),
                                                  "cp-lu177-psma", "sr-followup", "obs-ecog-0", "obs-ecog-1")),
}


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_generated_chart_answers_are_identical_with_and_without_the_fast_path(answer, name: str) -> None:
    path, body = CHARTS[name]()
    status, response = assert_same(answer, path, body)
    assert status == 200
    # Every generated chart holds a radioelement order: a comparison of two empty answers proves nothing.
    assert response["extension"]["cds-service.decisions"], response


def test_the_generated_charts_lead_to_different_decisions(answer) -> None:
    """The chart variants exercise different branches (else the identity above is cheap)."""
    seen = set()
    for name in ("ra223-complete", "no-follow-up-evidence", "documentation-gaps", "no-coverage-office"):
        path, body = CHARTS[name]()
        _, response = answer(False, path, body)
        seen.add(json.dumps(response["extension"]["cds-service.decisions"], sort_keys=True))
    assert len(seen) == 4


def test_an_invalid_resource_the_decision_ignores_is_not_validated(answer) -> None:
    path, body = CHARTS["chart-1000"]()
    clean_status, clean = answer(False, path, body)
    noise = _find(body, "obs-f1")  # a years-old routine lab
    noise["valueQuantity"]["value"] = "not a number"
    noise["status"] = "no-such-status"
    strict_status, strict = answer(True, path, body)
    fast_status, fast = answer(False, path, body)
    assert strict_status == 422 and "obs-f1" in strict["error"]
    assert (fast_status, fast) == (clean_status, clean) == (200, clean)


def test_an_invalid_resource_the_decision_reads_is_still_refused(answer) -> None:
    path, body = CHARTS["chart-1000"]()
    _find(body, "obs-ecog-0")["valueInteger"] = "one"  # the performance status the decision uses
    for strict in (True, False):
        status, response = answer(strict, path, body)
        assert status == 422 and "obs-ecog-0" in response["error"], (strict, response)


# --- the pieces the fast path relies on -----------------------------------------------------------


def test_validation_never_changes_the_resource_it_reads() -> None:
    """Validated copies share nested values with the request (no deep copy), so validation must
    leave the request as it was: otherwise strict mode would change what the engine sees."""
    body = scenarios.big_chart_request(200)
    before = copy.deepcopy(body)
    for value in body["prefetch"].values():
        for resource in [e["resource"] for e in value["entry"]] if value["resourceType"] == "Bundle" else [value]:
            assert validate_resource(resource) == resource
    for entry in body["context"]["draftOrders"]["entry"]:
        validate_resource(entry["resource"])
    assert body == before


def test_normalise_repairs_the_sandbox_shapes_without_touching_the_original() -> None:
    order = {"resourceType": "MedicationRequest", "id": "m1", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": {"text": "Xofigo"},
             "category": {"coding": [{"code": "community"}]}}
    original = copy.deepcopy(order)
    fixed = normalise(order)
    assert fixed["category"] == [{"coding": [{"code": "community"}]}]
    assert order == original
    assert validate_resource(order)["category"] == [{"coding": [{"code": "community"}]}]
