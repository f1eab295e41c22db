"""JWT ``jti`` replay cache kept in the database, so it works across gunicorn workers.

Each accepted token inserts ``(iss, jti, expires_at)``; a unique constraint on ``(iss, jti)``
makes a second insert fail in *any* worker or process sharing the database, which is the replay
signal. Rows are purged after they expire (plus leeway); a ``jti`` may be reused only after the
token that first used it has expired.

The table is defined on a ``sqlalchemy.MetaData`` passed in (the application's shared
``storage.db.metadata``), or on ``security_metadata`` when used standalone.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError, OperationalError

log = logging.getLogger(__name__)

TABLE_NAME = "jwt_jti"
MAX_ISS_LENGTH = 512
MAX_JTI_LENGTH = 256

security_metadata = MetaData()


def jti_table(metadata: MetaData | None = None) -> Table:
    """The ``jwt_jti`` table on ``metadata`` (defined once, then reused)."""
    metadata = security_metadata if metadata is None else metadata
    existing = metadata.tables.get(TABLE_NAME)
    if existing is not None:
        return existing
    return Table(
        TABLE_NAME,
        metadata,
        Column("iss", String(MAX_ISS_LENGTH), nullable=False),
        Column("jti", String(MAX_JTI_LENGTH), nullable=False),
        Column("expires_at", BigInteger, nullable=False, index=True),
        UniqueConstraint("iss", "jti", name="uq_jwt_jti_iss_jti"),
    )


class ReplayDetected(Exception):
    """The (iss, jti) pair was already used by a token that has not expired."""


class ReplayCache:
    def __init__(
        self,
        engine: Engine,
        metadata: MetaData | None = None,
        *,
        create: bool = True,
        purge_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ):
        self.engine = engine
        self.table = jti_table(metadata)
        self.purge_interval = purge_interval
        self._clock = clock
        self._last_purge = 0.0
        self._lock = threading.Lock()
        if create:
            self.table.create(engine, checkfirst=True)

    def register(self, iss: str, jti: str, expires_at: float) -> None:
        """Record a token use; raise ReplayDetected if ``(iss, jti)`` is live already.

        ``expires_at`` is the token's ``exp`` plus the verifier's leeway (epoch seconds).
        """
        if not iss or not jti or len(iss) > MAX_ISS_LENGTH or len(jti) > MAX_JTI_LENGTH:
            raise ValueError("iss/jti missing or too long for the replay cache")
        now = int(self._clock())
        self._maybe_purge(now)
        row = {"iss": iss, "jti": jti, "expires_at": int(expires_at) + 1}
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(self.table).values(**row))
                return
            except IntegrityError:
                # Someone used this (iss, jti). If that use has expired, drop it and retry once;
                # otherwise this is a replay.
                with self.engine.begin() as conn:
                    removed = conn.execute(
                        delete(self.table).where(
                            self.table.c.iss == iss,
                            self.table.c.jti == jti,
                            self.table.c.expires_at < now,
                        )
                    ).rowcount
                if not removed or attempt:
                    raise ReplayDetected(f"jti reused for issuer {iss}") from None
            except OperationalError as exc:
                # Database locked / unavailable: fail closed, the caller turns this into a 401.
                raise ReplayDetected(f"replay cache unavailable ({exc.__class__.__name__})") from None

    def seen(self, iss: str, jti: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(self.table.c.jti).where(self.table.c.iss == iss, self.table.c.jti == jti)
                ).first()
                is not None
            )

    def purge(self, now: float | None = None) -> int:
        """Delete expired rows; returns how many."""
        now = int(self._clock() if now is None else now)
        with self.engine.begin() as conn:
            return conn.execute(delete(self.table).where(self.table.c.expires_at < now)).rowcount

    def _maybe_purge(self, now: float) -> None:
        with self._lock:
            if now - self._last_purge < self.purge_interval:
                return
            self._last_purge = now
        try:
            self.purge(now)
        except OperationalError as exc:  # pragma: no cover - best effort
            log.warning("jti purge failed: %s", exc.__class__.__name__)
