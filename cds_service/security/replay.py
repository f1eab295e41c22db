"""JWT ``jti`` replay cache kept in the database, so it works across gunicorn workers.

Each accepted token inserts ``(iss, jti, expires_at)``; a unique constraint on ``(iss, jti)``
makes a second insert fail in *any* worker or process sharing the database, which is the replay
signal. Rows are purged after they expire (plus leeway); a ``jti`` may be reused only after the
token that first used it has expired.

The table is defined on a ``sqlalchemy.MetaData`` passed in (the application's shared
``storage.db.metadata``), or on ``security_metadata`` when used standalone.

While the database is away, refusing every token would stop order-sign, so with an
``outage`` fallback configured the check moves to :class:`LocalJtiCache`: one file per token id
in a folder shared by every worker of this host (created with O_EXCL, so two workers cannot both
accept the same token), and the accepted id is handed to ``catch_up`` (the spool), which inserts
it into ``jwt_jti`` once the database is back. Trade-off: during the outage a token replayed to
*another replica* (another host) is not refused; it is detected when the spool catches up and
logged as a possible replay. A replay to this host is still refused, and so is any later replay
once the id is in the database. If the local cache or the spool cannot be written, the check
fails closed with :class:`ReplayCheckUnavailable` (503, Retry-After).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

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
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

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


class ReplayCheckUnavailable(Exception):
    """The replay check cannot run (database away and no durable local record possible): the
    request is refused with 503 and Retry-After, never accepted unchecked."""


class OutageSignal(Protocol):
    """What the replay cache needs from the storage layer's outbox (duck-typed)."""

    def outage_active(self) -> bool: ...
    def report_outage(self, error: BaseException) -> None: ...


def _is_outage(error: BaseException) -> bool:
    if isinstance(error, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(error, DBAPIError) and not isinstance(error, IntegrityError) and bool(error.connection_invalidated)


class LocalJtiCache:
    """Token ids accepted on this host while the database was away: one small file each."""

    def __init__(self, directory: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self._clock = clock
        self._last_purge = 0.0

    def _path(self, iss: str, jti: str) -> Path:
        digest = hashlib.sha256(iss.encode() + b"\0" + jti.encode()).hexdigest()
        return self.directory / digest

    def _expiry(self, path: Path) -> float | None:
        try:
            return float(path.read_text() or 0)
        except FileNotFoundError:
            return None
        except ValueError:
            return 0.0

    def live(self, iss: str, jti: str) -> bool:
        """Seen here within its lifetime (one stat when the folder is empty or absent)."""
        expiry = self._expiry(self._path(iss, jti))
        return expiry is not None and expiry >= self._clock()

    def register(self, iss: str, jti: str, expires_at: float) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(iss, jti)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                expiry = self._expiry(path)
                if expiry is not None and expiry >= self._clock():
                    raise ReplayDetected(f"jti reused for issuer {iss} (seen during a database outage)") from None
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                continue
            try:
                os.write(fd, str(int(expires_at) + 1).encode())
            finally:
                os.close(fd)
            return
        raise ReplayDetected(f"jti reused for issuer {iss} (seen during a database outage)")

    def forget(self, iss: str, jti: str) -> None:
        try:
            self._path(iss, jti).unlink()
        except FileNotFoundError:
            pass

    def maybe_purge(self, interval: float = 30.0) -> int:
        """Purge at most once per ``interval`` seconds (the spool flusher calls this every round)."""
        if self._clock() - self._last_purge < interval:
            return 0
        return self.purge()

    def purge(self) -> int:
        now = self._clock()
        self._last_purge = now
        removed = 0
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        for name in names:
            expiry = self._expiry(self.directory / name)
            if expiry is not None and expiry < now:
                try:
                    (self.directory / name).unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed


class ReplayCache:
    def __init__(
        self,
        engine: Engine,
        metadata: MetaData | None = None,
        *,
        create: bool = True,
        purge_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        local: LocalJtiCache | None = None,
        outage: OutageSignal | None = None,
        catch_up: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.engine = engine
        self.local = local
        self.outage = outage
        self.catch_up = catch_up
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
        row = {"iss": iss, "jti": jti, "expires_at": int(expires_at) + 1}
        if self.local is not None:
            if self.local.live(iss, jti):  # used here during an outage, maybe not yet caught up
                raise ReplayDetected(f"jti reused for issuer {iss} (seen during a database outage)")
            if self.outage is not None and self.outage.outage_active():
                self._register_locally(row)  # the database is away: do not wait on it per call
                return
        self._maybe_purge(now)
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
            except Exception as exc:
                if not _is_outage(exc):
                    raise
                if self.local is None:
                    # No outage fallback: fail closed, the caller turns this into a 401.
                    raise ReplayDetected(f"replay cache unavailable ({exc.__class__.__name__})") from None
                if self.outage is not None:
                    self.outage.report_outage(exc)
                self._register_locally(row)
                return

    def _register_locally(self, row: dict[str, Any]) -> None:
        """The database is away: check and record on this host, and spool the id for later."""
        assert self.local is not None
        try:
            self.local.register(row["iss"], row["jti"], row["expires_at"] - 1)
        except ReplayDetected:
            raise
        except OSError as exc:
            raise ReplayCheckUnavailable(f"local replay cache not writable ({exc.strerror or exc})") from None
        if self.catch_up is not None:
            try:
                self.catch_up(row)
            except Exception as exc:  # spool full or unwritable: do not accept an id no one will keep
                self.local.forget(row["iss"], row["jti"])
                raise ReplayCheckUnavailable(f"token id cannot be kept for the database ({exc})") from None

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
        except (OperationalError, InterfaceError, PoolTimeout) as exc:  # pragma: no cover - best effort
            log.warning("jti purge failed: %s", exc.__class__.__name__)
