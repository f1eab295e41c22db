"""The coded summary of one hook call that the audit row keeps for the performance dashboard.

Computed once at write time so the dashboard aggregates plain columns in SQL instead of reading
every call's decision JSON. Only codes and keys: no patient, order or free text.
"""

from __future__ import annotations

from typing import Any

from cds_service.hooks.pipeline import CallOutcome
from cds_service.knowledge.vocabulary import CHECKS_UNAVAILABLE_CARD
from cds_service.ops.metrics import code_of, documentation_keys


def audit_columns(outcome: CallOutcome | None, knowledge_version: str | None) -> dict[str, Any]:
    """``knowledge_version``, ``decision_count``, ``recommended_codes`` (one per decision),
    ``documentation_gaps`` (distinct keys), ``card_types`` (one per card) and ``checks_unavailable``.

    Empty lists become None so aggregation can skip those rows without unpacking them. A call
    refused before the engine ran (no outcome) records only the knowledge version.
    """
    if outcome is None:
        return {"knowledge_version": knowledge_version, "decision_count": None, "recommended_codes": None,
                "documentation_gaps": None, "card_types": None, "checks_unavailable": None}
    decisions = list(outcome.decisions)
    codes = [code for code in (code_of(d.get("recommendedCode")) for d in decisions) if code]
    gaps = sorted({key for decision in decisions for key in documentation_keys(decision)})
    card_types = [
        str((card.get("extension") or {}).get("cds-service.card-type") or "unspecified")
        for card in outcome.body.get("cards", []) if isinstance(card, dict)
    ]
    return {
        "knowledge_version": knowledge_version,
        "decision_count": len(decisions),
        "recommended_codes": codes or None,
        "documentation_gaps": gaps or None,
        "card_types": card_types or None,
        "checks_unavailable": CHECKS_UNAVAILABLE_CARD in card_types,
    }
