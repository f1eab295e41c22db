"""A patient's FHIR Bundle becomes an order-sign request; replay prints its cards and can record it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cds_service.cli import main
from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH
from cds_service.replay.bundle import build_request
from cds_service.replay.fixtures import FixtureError

BUNDLE = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "bundles" / "synthea-prostate-ra223.json"
PATIENT = "7d1f3c2a-5b7e-4f0a-9c1d-000000000001"


def uid(number: int) -> str:
    return f"7d1f3c2a-5b7e-4f0a-9c1d-{number:012d}"


@pytest.fixture
def bundle() -> dict:
    return json.loads(BUNDLE.read_text())


def prefetched(request: dict, key: str) -> list[dict]:
    return [entry["resource"] for entry in request["prefetch"][key].get("entry", [])]


def test_only_the_therapy_order_is_signed_and_sent_as_a_draft(bundle):
    request, notes = build_request(bundle)
    orders = [entry["resource"] for entry in request["context"]["draftOrders"]["entry"]]
    assert [(o["resourceType"], o["id"], o["status"]) for o in orders] == [("MedicationRequest", uid(31), "draft")]
    assert any("status 'active' sent as 'draft'" in note for note in notes)
    assert request["hook"] == "order-sign"
    assert request["context"]["patientId"] == PATIENT
    # the order's encounter becomes the context encounter, and is prefetched as a resource
    assert request["context"]["encounterId"] == uid(3)
    assert request["prefetch"]["encounter"]["id"] == uid(3)


def test_the_rest_is_prefetch_by_key_with_references_resolved_and_queries_applied(bundle):
    request, _ = build_request(bundle)
    assert set(request["prefetch"]) == set(ORDER_SIGN_PREFETCH)
    assert request["prefetch"]["patient"]["id"] == PATIENT
    conditions = prefetched(request, "conditions")
    assert {c["id"] for c in conditions} == {uid(4), uid(5), uid(6)}
    assert all(c["subject"] == {"reference": f"Patient/{PATIENT}"} for c in conditions)
    # the observations key asks for stage, performance status and weight: BMI, PSA and blood pressure stay out
    assert {o["id"] for o in prefetched(request, "observations")} == {uid(10), uid(13)}
    assert [r["id"] for r in prefetched(request, "reports")] == [uid(20)]
    assert [p["id"] for p in prefetched(request, "procedures")] == [uid(21)]
    assert [c["id"] for c in prefetched(request, "carePlans")] == [uid(40)]
    assert [c["id"] for c in prefetched(request, "coverage")] == [uid(41)]
    assert prefetched(request, "serviceRequests") == []
    # the statin is an active order too, but not radioelement therapy: it is not signed; it is part
    # of the medication history (the ``medications`` key), and nowhere else
    assert [m["id"] for m in prefetched(request, "medications")] == [uid(30)]
    text = json.dumps({key: value for key, value in request["prefetch"].items() if key != "medications"}
                      | {"context": request["context"]})
    assert uid(30) not in text and "Claim" not in text and "Immunization" not in text
    assert "urn:uuid:" not in text
    # the therapy order's reason now points at the Condition by relative reference
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    assert order["reasonReference"] == [{"reference": f"Condition/{uid(5)}"}]


def test_all_orders_sends_every_open_order(bundle):
    request, _ = build_request(bundle, all_orders=True)
    ids = {entry["resource"]["id"] for entry in request["context"]["draftOrders"]["entry"]}
    assert ids == {uid(30), uid(31)}


def test_order_select_gets_selections_and_only_its_prefetch_keys(bundle):
    request, _ = build_request(bundle, "radioelement-order-select")
    assert request["hook"] == "order-select"
    assert request["context"]["selections"] == [f"MedicationRequest/{uid(31)}"]
    assert "observations" not in request["prefetch"] and "conditions" in request["prefetch"]


def test_a_bundle_without_a_therapy_order_or_with_two_patients_is_refused(bundle):
    without = dict(bundle, entry=[e for e in bundle["entry"] if e["resource"]["id"] != uid(31)])
    with pytest.raises(FixtureError, match="no draft or active radioelement"):
        build_request(without)
    two = dict(bundle, entry=bundle["entry"] + [{"resource": {"resourceType": "Patient", "id": "other"}}])
    with pytest.raises(FixtureError, match="exactly one Patient"):
        build_request(two)


def test_replay_of_a_bundle_prints_cards_and_write_expected_records_a_fixture(tmp_path, capsys):
    copy = tmp_path / "patient.json"
    shutil.copy(BUNDLE, copy)
    assert main(["replay", str(copy), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"RAN {copy}" in out
    assert f"MedicationRequest/{uid(31)}" in out
    assert "HTTP 200" in out, out

    assert main(["replay", str(tmp_path), "--no-progress", "--write-expected"]) == 0
    written = tmp_path / "patient.replay.json"
    document = json.loads(written.read_text())
    assert document["generated_from"] == "patient.json"
    assert document["expect"]["status"] == 200
    assert [d["order"] for d in document["expect"]["decisions"]] == [f"MedicationRequest/{uid(31)}"]
    capsys.readouterr()

    # the folder now replays the generated fixture (compared) and skips the Bundle it came from
    assert main(["replay", str(tmp_path), "--no-progress", "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(f["name"].rsplit("/", 1)[-1], f["outcome"]) for f in report["fixtures"]] == [("patient.replay.json", "passed")]
