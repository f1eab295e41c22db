"""The ``observations`` prefetch query asks for every code the engine reads from Observations.

The stand-in FHIR server ignores code filters, so a missing code would never fail an end-to-end
test; this checks the template against the loaded knowledge directly.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH, SERVICES
from cds_service.knowledge import load_knowledge
from cds_service.knowledge.systems import LOINC_URI, SNOMED_URI
from cds_service.knowledge.vocabulary import OBSERVATION_EVIDENCE_GROUPS

URIS = {"loinc": LOINC_URI, "snomed": SNOMED_URI}


def _template_tokens() -> set[str]:
    query = urlsplit(ORDER_SIGN_PREFETCH["observations"]).query
    params = parse_qs(query)
    assert list(params) == ["patient", "code"]  # one code parameter, OR-ed values
    return set(params["code"][0].split(","))


def test_every_code_the_engine_reads_is_in_the_observations_template() -> None:
    knowledge = load_knowledge()
    tokens = _template_tokens()
    missing = []
    for group in OBSERVATION_EVIDENCE_GROUPS:
        codes = knowledge.evidence[group]
        assert codes, group
        for system, code in codes:
            assert system in URIS, (group, system)  # an Observation group in a system no search can name
            if f"{URIS[system]}|{code}" not in tokens:
                missing.append((group, system, code))
    assert missing == []


def test_the_drifted_codes_are_asked_for() -> None:
    """The codes the old hand-kept copy lacked: STU1 response, STU3+ SNOMED T/N/M, extra weight code."""
    tokens = _template_tokens()
    for token in (f"{LOINC_URI}|88040-1", f"{SNOMED_URI}|78873005", f"{SNOMED_URI}|277206009",
                  f"{SNOMED_URI}|277208005", f"{LOINC_URI}|3141-9"):
        assert token in tokens


def test_template_uses_only_the_patient_token_and_stays_a_sane_url() -> None:
    template = ORDER_SIGN_PREFETCH["observations"]
    assert re.findall(r"\{\{[^}]*\}\}", template) == ["{{context.patientId}}"]
    assert all(re.fullmatch(r"https?://[\w./-]+\|[\w.-]+", token) for token in _template_tokens())
    # Percent-encoded as a FHIR client sends it, with a 64-character patient id: well under the
    # 2,000 characters that proxies and servers reliably accept.
    filled = template.replace("{{context.patientId}}", "p" * 64)
    path, _, query = filled.partition("?")
    sent = path + "?" + "&".join(f"{k}={quote(v, safe=',')}" for k, v in (p.split("=", 1) for p in query.split("&")))
    assert len(sent) < 2000, len(sent)


def test_discovery_carries_the_generated_template() -> None:
    sign = [s for s in SERVICES if "observations" in s.prefetch]
    assert sign and all(s.prefetch["observations"] == ORDER_SIGN_PREFETCH["observations"] for s in sign)
