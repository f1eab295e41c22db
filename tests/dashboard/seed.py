"""A seeded, known data set for the dashboard tests: calls, issued cards and feedback written
through the real Store, and kept in memory so the tests can recount it independently."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.engine import Engine

from cds_service.storage.db import migrate
from cds_service.storage.records import Store

SIGN = "radioelement-order-sign"
SELECT = "radioelement-order-select"
FIRST_DAY = datetime(2026, 11, 2, tzinfo=timezone.utc)  # a Monday
DAYS = 21
CODES = ("77750", "79101", "79005", "79403")
GAPS = ("imaging-confirmation", "written-directive", "dosimetry-plan", "pathology")
CARD_TYPES = ("code", "documentation", "edit")  # the engine's card types
REASONS = (("payer-policy", "Payer policy"), ("clinical-judgement", "Clinical judgement"), (None, None))
# Patient-like strings that the audit row may hold and the dashboard must never show.
PATIENT_MARKERS = ("Patient/pat-secret-4711", "Jane Secretpatient")


@dataclass
class Call:
    hook_instance: str
    service: str
    started_at: datetime
    status: int
    duration_ms: float
    version: str
    codes: list[str]
    gaps: list[str]
    checks_unavailable: bool
    unavailable: list[str]
    cards: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Feedback:
    card: str
    service: str
    outcome: str
    at: datetime
    reason: str | None
    display: str | None


@dataclass
class Dataset:
    calls: list[Call]
    feedback: list[Feedback]
    card_info: dict[str, dict[str, Any]]


def make_dataset(seed: int = 15, calls: int = 160) -> Dataset:
    rng = random.Random(seed)
    out: list[Call] = []
    card_info: dict[str, dict[str, Any]] = {}
    for index in range(calls):
        day = rng.randrange(DAYS)
        started = FIRST_DAY + timedelta(days=day, seconds=rng.randrange(86_400))
        service = SIGN if rng.random() < 0.75 else SELECT
        status = 200 if rng.random() < 0.9 else 400
        version = "2026.1" if day < 10 else "2026.2"
        codes = [rng.choice(CODES) for _ in range(rng.choice((1, 1, 1, 2)))] if status == 200 else []
        gaps = sorted(set(rng.sample(GAPS, rng.choice((0, 0, 1, 2))))) if codes else []
        unavailable = sorted(rng.sample(["coverage", "observations", "reports"], rng.choice((0, 0, 0, 0, 1, 2))))
        checks_unavailable = bool(unavailable) and bool(codes)
        call = Call(f"call-{index}", service, started, status, round(rng.uniform(5, 400), 3), version,
                    codes, gaps, checks_unavailable, unavailable)
        for number, code in enumerate(codes):
            uuid = f"card-{index}-{number}"
            card_type = rng.choice(CARD_TYPES)
            call.cards.append({"uuid": uuid, "indicator": "info",
                               "extension": {"cds-service.card-type": card_type, "cds-service.recommended-code": code}})
            card_info[uuid] = {"card_type": card_type, "code": code, "version": version, "service": service}
        out.append(call)
    feedback: list[Feedback] = []
    for uuid, info in card_info.items():
        for _ in range(rng.choice((0, 1, 1, 2))):
            call_day = int(uuid.split("-")[1])
            at = out[call_day].started_at + timedelta(hours=rng.randrange(1, 72))
            outcome = "accepted" if rng.random() < 0.6 else "overridden"
            reason, display = rng.choice(REASONS) if outcome == "overridden" else (None, None)
            feedback.append(Feedback(uuid, info["service"], outcome, at, reason, display))
    # Feedback about a card this database never issued.
    feedback.append(Feedback("card-from-elsewhere", SIGN, "accepted", FIRST_DAY + timedelta(days=3), None, None))
    return Dataset(out, feedback, card_info)


def write_dataset(engine: Engine, data: Dataset) -> None:
    migrate(engine)
    store = Store(engine)
    for call in data.calls:
        row = {
            "hook_instance": call.hook_instance, "service_id": call.service, "hook": "order-sign",
            "status": call.status, "started_at": call.started_at, "duration_ms": call.duration_ms,
            "fetched_keys": [], "unavailable_keys": call.unavailable,
            # what a real row may quote: the dashboard must never show it
            "decisions": [{"order": PATIENT_MARKERS[0]}], "error": PATIENT_MARKERS[1] if call.status != 200 else None,
            "knowledge_version": call.version, "decision_count": len(call.codes),
            "recommended_codes": call.codes or None, "documentation_gaps": call.gaps or None,
            "card_types": [card["extension"]["cds-service.card-type"] for card in call.cards] or None,
            "checks_unavailable": call.checks_unavailable if call.status == 200 else None,
        }
        store.add_audit(row, call.cards)
    by_service: dict[str, list[dict[str, Any]]] = {}
    for item in data.feedback:
        entry: dict[str, Any] = {"card": item.card, "outcome": item.outcome, "outcomeTimestamp": item.at.isoformat()}
        if item.reason:
            entry["overrideReason"] = {"reason": {"code": item.reason, "display": item.display},
                                       "userComment": PATIENT_MARKERS[1]}
        by_service.setdefault(item.service, []).append(entry)
    for service, items in by_service.items():
        store.add_feedback(service, items)
