"""Write fhir_fixtures/vendors/{epic,oracle}/ from existing fixtures, reshaped the way each EHR
sends its requests (run from the repository root: ``python tests/vendors/make_vendor_fixtures.py``).

Each vendor fixture keeps its base fixture's ``expect``: the vendor's request shape must not
change a decision. Sources of each shape are named in the fixture's ``description``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fhir_fixtures"
OUT = FIXTURES / "vendors"

# Epic sends a short-lived token (Epic CDS Hooks tutorial: e.g. 300 s); never a real one here.
EPIC_AUTH = {"access_token": "epic-fixture-token", "token_type": "Bearer", "expires_in": 300,
             "scope": "patient/Patient.read patient/Condition.read patient/Observation.read "
                      "patient/DiagnosticReport.read patient/Procedure.read patient/CarePlan.read "
                      "patient/ServiceRequest.read patient/Coverage.read patient/Encounter.read",
             "subject": "epic-client-id"}
ORACLE_AUTH = dict(EPIC_AUTH, access_token="oracle-fixture-token", subject="oracle-service-client")

# What an Epic build might call the same searches (Epic: prefetch is configured by the health
# system, not read from discovery).
EPIC_KEY_NAMES = {"patient": "PAT", "conditions": "ProblemList", "observations": "Obs", "reports": "Imaging",
                  "procedures": "SurgicalHistory", "carePlans": "CarePlan", "serviceRequests": "Orders",
                  "coverage": "Insurance", "encounter": "Visit"}

# Epic's answer to a search that found nothing (Epic CDS Hooks tutorial): a Bundle holding only
# an OperationOutcome entry with search mode "outcome".
def epic_empty_search() -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": [{
        "resource": {"resourceType": "OperationOutcome", "issue": [{
            "severity": "warning", "code": "processing",
            "details": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369", "code": "4101",
                                    "display": "Resource request returns no results."}],
                        "text": "Resource request returns no results."}}]},
        "search": {"mode": "outcome"}}]}


def load(relative: str) -> dict[str, Any]:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def resources_of(prefetch: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource in a prefetch object, for the FHIR stand-in to serve."""
    found: list[dict[str, Any]] = []
    for value in prefetch.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            found += [e["resource"] for e in value.get("entry", []) if "resource" in e]
        elif isinstance(value, dict):
            found.append(value)
    return found


def write(vendor: str, name: str, fixture: dict[str, Any]) -> None:
    path = OUT / vendor / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def epic() -> None:
    base = load("engine/77750-iv-radium-bone-metastases.json")
    prefetch = base["request"]["prefetch"]

    renamed = copy.deepcopy(base)
    renamed["description"] = ("Epic: the health system named its prefetch keys itself (PAT, ProblemList, ...), so "
                              "none matches the service's templates; everything comes from fhirServer with a "
                              "300 s token. Same decisions as " "engine/77750-iv-radium-bone-metastases.")
    renamed["request"]["prefetch"] = {EPIC_KEY_NAMES[key]: value for key, value in prefetch.items()}
    renamed["request"]["fhirAuthorization"] = EPIC_AUTH
    renamed["fhir"] = resources_of(prefetch)
    write("epic", "renamed-prefetch-keys", renamed)

    missing = copy.deepcopy(base)
    missing["description"] = ("Epic: only the patient and the encounter were configured as prefetch; the "
                              "other keys are missing and are fetched from fhirServer. Same decisions as "
                              "engine/77750-iv-radium-bone-metastases.")
    missing["request"]["prefetch"] = {key: prefetch[key] for key in ("patient", "encounter")}
    missing["request"]["fhirAuthorization"] = EPIC_AUTH
    missing["fhir"] = resources_of({k: v for k, v in prefetch.items() if k not in ("patient", "encounter")})
    write("epic", "missing-prefetch-keys", missing)

    empty = copy.deepcopy(base)
    empty["description"] = ("Epic: the searches that found nothing (procedures, serviceRequests, encounters, "
                            "notes, adverseEvents) come back as a "
                            "Bundle holding only an OperationOutcome. That is 'nothing found': no refetch, no "
                            "'checks could not run' card, the same decisions as the empty Bundles of "
                            "engine/77750-iv-radium-bone-metastases.")
    for key in ("procedures", "serviceRequests"):
        assert not prefetch[key].get("entry")
        empty["request"]["prefetch"][key] = epic_empty_search()
    for key in ORDER_SIGN_PREFETCH:  # the templates the base fixture predates: empty too
        empty["request"]["prefetch"].setdefault(key, epic_empty_search())
    empty["request"]["fhirAuthorization"] = EPIC_AUTH
    empty["fhir"] = []  # a FHIR server is there; the test checks it is never asked
    write("epic", "empty-search-operationoutcome", empty)

    med = load("sandbox/rx-sign-radium-medicationrequest.json")
    med["description"] = ("Epic (since early 2024): the Medication of the draft MedicationRequest is contained "
                          "and referenced as '#'. Same decisions as sandbox/rx-sign-radium-medicationrequest.")
    for entry in med["request"]["context"]["draftOrders"]["entry"]:
        order = entry["resource"]
        if order.get("resourceType") == "MedicationRequest" and "medicationCodeableConcept" in order:
            concept = order.pop("medicationCodeableConcept")
            order["contained"] = [{"resourceType": "Medication", "id": "med-1", "code": concept}]
            order["medicationReference"] = {"reference": "#med-1", "display": concept.get("text")}
    med["request"]["fhirAuthorization"] = EPIC_AUTH
    write("epic", "contained-medication", med)

    hdr = load("brachytherapy/77771-hdr-cervix-3-channels.json")
    hdr["description"] = ("Epic: a card with a recommended code and alternatives (at-most-one with several "
                          "suggestions in standard CDS Hooks); the epic profile must send selectionBehavior any "
                          "with the recommended suggestion only. Same decisions as "
                          "brachytherapy/77771-hdr-cervix-3-channels.")
    write("epic", "alternatives-any-only", hdr)


def oracle() -> None:
    plain = load("fallback/ra223-no-prefetch.json")
    plain["description"] = ("Oracle Health: no prefetch; the data comes from the FHIR server registered for the "
                            "service, with the registered scopes. Same decisions as fallback/ra223-no-prefetch.")
    plain["request"]["fhirAuthorization"] = ORACLE_AUTH
    write("oracle", "no-prefetch-registered-fhir-server", plain)

    long = load("fallback/empty-chart-on-server.json")
    long["description"] = ("Oracle Health: the longest documentation card (every item missing) must fit the "
                           "side panel: summary on its own, detail shortened. Same decisions as "
                           "fallback/empty-chart-on-server.")
    long["request"]["fhirAuthorization"] = ORACLE_AUTH
    write("oracle", "long-documentation-detail", long)

    seeds = load("engine/77778-prostate-seeds.json")
    seeds["description"] = ("Oracle Health: a card with suggestions and the reference link; the link is kept "
                            "only when its host is registered. Same decisions as engine/77778-prostate-seeds.")
    write("oracle", "suggestions-and-link", seeds)


if __name__ == "__main__":
    epic()
    oracle()
