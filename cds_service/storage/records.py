"""Writing and reading the durable records: feedback, audit rows, issued cards."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from cds_service.storage.db import audit, feedback, insert_ignoring_duplicates, issued_cards
from cds_service.storage.outbox import Outbox, SpoolRefused

log = logging.getLogger(__name__)


class StorageUnavailable(Exception):
    """The database is away and the record could not be kept durably either: the caller must
    not acknowledge it (feedback answers 503 with Retry-After)."""


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    # Stored in UTC: SQLite keeps no offset, so a local time would otherwise shift date ranges.
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass
class Store:
    """Writes go through ``outbox`` when there is one (the service): straight to the database,
    or to the durable spool while the database is away. Without one (reports, tools) they go
    straight to the database and its errors reach the caller."""

    engine: Engine
    outbox: Outbox | None = None

    def add_feedback(self, service_id: str, items: Iterable[dict[str, Any]], issuer: str | None = None) -> int:
        now = datetime.now(timezone.utc)
        rows = []
        for item in items:
            reason = (item.get("overrideReason") or {}).get("reason") or {}
            rows.append(
                {
                    "service_id": service_id,
                    "card_uuid": item["card"],
                    "outcome": item["outcome"],
                    "accepted_suggestions": [s["id"] for s in item.get("acceptedSuggestions") or []] or None,
                    "override_code": reason.get("code"),
                    "override_system": reason.get("system"),
                    "override_display": reason.get("display"),
                    "user_comment": (item.get("overrideReason") or {}).get("userComment"),
                    "outcome_timestamp": _timestamp(item["outcomeTimestamp"]),
                    "received_at": now,
                    "issuer": issuer,
                }
            )
        if self.outbox is not None:
            try:
                self.outbox.record_feedback(rows)
            except SpoolRefused as error:
                raise StorageUnavailable(str(error)) from None
            return len(rows)
        with self.engine.begin() as connection:
            connection.execute(insert(feedback), rows)
        return len(rows)

    def feedback_for_card(self, card_uuid: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            result = connection.execute(select(feedback).where(feedback.c.card_uuid == card_uuid).order_by(feedback.c.id))
            return [dict(row._mapping) for row in result]

    def add_audit(self, row: dict[str, Any], cards: Iterable[dict[str, Any]] = ()) -> None:
        now = datetime.now(timezone.utc)
        card_rows = [
            {
                "card_uuid": card["uuid"],
                "hook_instance": row["hook_instance"],
                "service_id": row["service_id"],
                "card_type": (card.get("extension") or {}).get("cds-service.card-type"),
                "indicator": card.get("indicator"),
                "recommended_code": (card.get("extension") or {}).get("cds-service.recommended-code"),
                "knowledge_version": row.get("knowledge_version"),
                "issued_at": now,
            }
            for card in cards
            if card.get("uuid")
        ]
        if self.outbox is not None:
            try:
                self.outbox.record_call(dict(row), card_rows)
            except SpoolRefused:  # counted (cds_spool_refused_total) and logged by the outbox
                log.warning("audit row of hook instance %s not kept: database away and spool full",
                            row.get("hook_instance"))
            return
        with self.engine.begin() as connection:  # one transaction: the row and its cards, or neither
            connection.execute(insert(audit), [row])
            if card_rows:  # a replayed hook instance re-sent the same card uuids: already recorded
                connection.execute(insert_ignoring_duplicates(connection, issued_cards), card_rows)

    def audit_rows(self, hook_instance: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            result = connection.execute(select(audit).where(audit.c.hook_instance == hook_instance).order_by(audit.c.id))
            return [dict(row._mapping) for row in result]
