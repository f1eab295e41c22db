"""The Da Vinci CRD coverage-information systemAction (CRD STU 2.0.1, coverage information).

Returned on order-sign when the patient has a Coverage: the whole draft order, updated with one
``ext-coverage-information`` repetition per Coverage. Repetitions for the same Coverage share one
``coverage-assertion-id`` across the response, as CRD requires.
"""

from __future__ import annotations

import copy
import uuid
from datetime import date
from typing import Any

from cds_service.engine.decision import Decision
from cds_service.engine.facts import CoverageFact
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.systems import CPT_URI

COVERAGE_INFO_URL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"


def _extension(decision: Decision, coverage: CoverageFact, assertion_id: str, today: date,
               knowledge: Knowledge) -> dict[str, Any]:
    policy = knowledge.payer(coverage.identifiers)
    info = knowledge.codes.get(decision.code)
    billing = {"system": CPT_URI, "code": decision.code}
    if info:
        billing["display"] = info.descriptor
    parts: list[dict[str, Any]] = [
        {"url": "coverage", "valueReference": {"reference": coverage.reference}},
        {"url": "covered", "valueCode": policy.covered},
    ]
    # crd-ci-q2: pa-needed is required unless the service is not covered.
    if policy.covered != "not-covered":
        parts.append({"url": "pa-needed", "valueCode": policy.pa_needed})
    if decision.missing:
        parts.append({"url": "doc-needed", "valueCode": "clinical"})
        parts.append({"url": "doc-purpose", "valueCode": "withclaim"})
    parts.append({"url": "billingCode", "valueCoding": billing})
    parts.append({"url": "date", "valueDate": today.isoformat()})
    parts.append({"url": "coverage-assertion-id", "valueString": assertion_id})
    return {"url": COVERAGE_INFO_URL, "extension": parts}


def coverage_actions(decisions: tuple[Decision, ...], coverages: tuple[CoverageFact, ...], today: date,
                     knowledge: Knowledge) -> list[dict[str, Any]]:
    if not coverages:
        return []
    assertion_ids = {coverage.reference: str(uuid.uuid4()) for coverage in coverages}
    actions = []
    for decision in decisions:
        resource = decision.order.resource
        # The order is sent back as drafted: a systemAction may be applied without the clinician,
        # so it must not change the code; the code change is the card suggestion's job.
        updated = copy.deepcopy(resource)
        updated["extension"] = list(updated.get("extension", [])) + [
            _extension(decision, coverage, assertion_ids[coverage.reference], today, knowledge) for coverage in coverages]
        documentation = "; clinical documentation is needed" if decision.missing else ""
        actions.append({
            "type": "update",
            "description": f"Coverage information for {decision.order.reference}: bill CPT {decision.code}{documentation}",
            "resource": updated,
        })
    return actions
