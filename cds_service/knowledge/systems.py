"""Code-system URIs the knowledge and the engine understand, folded to short names.

FHIR resources spell one system several ways (URL, OID, http vs https); folding them once here
lets every look-up be a plain ``(short_name, code)`` dict access.
"""

from __future__ import annotations

CPT_URI = "http://www.ama-assn.org/go/cpt"
HCPCS_URI = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
SNOMED_URI = "http://snomed.info/sct"
LOINC_URI = "http://loinc.org"

_SYSTEMS: dict[str, str] = {
    "http://snomed.info/sct": "snomed",
    "urn:oid:2.16.840.1.113883.6.96": "snomed",
    "http://loinc.org": "loinc",
    "urn:oid:2.16.840.1.113883.6.1": "loinc",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "urn:oid:2.16.840.1.113883.6.88": "rxnorm",
    "http://hl7.org/fhir/sid/ndc": "ndc",
    "urn:oid:2.16.840.1.113883.6.69": "ndc",
    "http://www.ama-assn.org/go/cpt": "cpt",
    "urn:oid:2.16.840.1.113883.6.12": "cpt",
    "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets": "hcpcs",
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets": "hcpcs",
    "urn:oid:2.16.840.1.113883.6.285": "hcpcs",
    "urn:oid:2.16.840.1.113883.6.14": "hcpcs",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10cm",
    "urn:oid:2.16.840.1.113883.6.90": "icd10cm",
    "http://dicom.nema.org/resources/ontology/DCM": "dicom",
    "urn:oid:1.2.840.10008.2.16.4": "dicom",
    "http://terminology.hl7.org/CodeSystem/v2-0074": "v2-0074",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode": "v3-ActCode",
    "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set": "pos",
    "https://www.cms.gov/medicare/coding-billing/place-of-service-codes/code-sets": "pos",
    "urn:oid:2.16.840.1.113883.15.5": "pos",
}


def short_system(uri: str | None) -> str | None:
    """The short name of a code-system URI, or None when the system is not one we reason with."""
    if not uri:
        return None
    return _SYSTEMS.get(uri.rstrip("/"))


def normalise_ndc(code: str) -> str:
    """An NDC in 11-digit 5-4-2 form, so 4-4-2, 5-3-2 and 5-4-1 spellings of one package match."""
    parts = code.strip().split("-")
    if len(parts) == 3 and all(part.isdigit() for part in parts):
        return parts[0].zfill(5) + parts[1].zfill(4) + parts[2].zfill(2)
    return "".join(ch for ch in code if ch.isdigit())


def normalise_code(system: str, code: str) -> str:
    """The form a code is indexed under: NDCs folded, HCPCS/CPT upper-cased, others stripped."""
    code = code.strip()
    if system == "ndc":
        return normalise_ndc(code)
    if system in ("cpt", "hcpcs", "icd10cm"):
        return code.upper()
    return code
