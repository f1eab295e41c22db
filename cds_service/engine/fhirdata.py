"""Tolerant plain-dict access to FHIR JSON.

Selection happens on raw prefetch resources *before* validation (only what the decision uses is
validated), so these helpers accept both the strict R4 shapes and the lenient single-object
shapes the Sandbox sends. That keeps decisions identical whether or not the plumbing validated
everything first.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Iterable, Iterator

from cds_service.knowledge.model import CodeKey
from cds_service.knowledge.systems import normalise_code, short_system

Resource = dict[str, Any]
_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")


def as_list(value: Any) -> list[Any]:
    """A FHIR element as a list, whether it was sent as a list, a single object or not at all."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def codings(*concepts: Any) -> Iterator[tuple[str | None, str]]:
    """(short system, normalised code) for every coding in the given CodeableConcepts or Codings."""
    for concept in concepts:
        for item in as_list(concept):
            if not isinstance(item, dict):
                continue
            for coding in as_list(item.get("coding")) if "coding" in item else [item]:
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    uri = coding.get("system")  # raw drafts are read before validation
                    system = short_system(uri if isinstance(uri, str) else None)
                    yield system, normalise_code(system or "", coding["code"])


def code_keys(*concepts: Any) -> tuple[CodeKey, ...]:
    return tuple((system, code) for system, code in codings(*concepts) if system)


def texts(*concepts: Any) -> Iterator[str]:
    """Every human-readable string in the given CodeableConcepts (text and coding displays)."""
    for concept in concepts:
        for item in as_list(concept):
            if isinstance(item, str):
                yield item
            elif isinstance(item, dict):
                if isinstance(item.get("text"), str):
                    yield item["text"]
                if isinstance(item.get("display"), str):
                    yield item["display"]
                for coding in as_list(item.get("coding")):
                    if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                        yield coding["display"]


def parse_date(value: Any) -> date | None:
    """The calendar date of a FHIR date/dateTime/instant (partial dates fall on the 1st)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    match = _DATE.match(value)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1))
    except ValueError:
        return None


def first_date(*values: Any) -> date | None:
    for value in values:
        if isinstance(value, dict):  # Period
            found = parse_date(value.get("start")) or parse_date(value.get("end"))
        else:
            found = parse_date(value)
        if found:
            return found
    return None


def reference(resource: Resource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def ref_target(value: Any) -> str | None:
    """The relative reference string of a Reference (``Condition/c1``), without a server base."""
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        ref: str = value["reference"]
        parts = ref.rstrip("/").split("/")
        if len(parts) >= 2 and not ref.startswith("#"):
            if "_history" in parts:
                parts = parts[: parts.index("_history")]
            return "/".join(parts[-2:])
        return ref
    return None


def refs(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(target for value in values if (target := ref_target(value)))


def for_patient(resource: Resource, patient_id: str) -> bool:
    """True unless the resource names a different patient (resources without a subject pass)."""
    subject = resource.get("subject") or resource.get("patient") or resource.get("beneficiary")
    target = ref_target(subject)
    return target is None or target == f"Patient/{patient_id}" or not target.startswith("Patient/")
