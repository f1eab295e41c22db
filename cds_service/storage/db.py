"""Database engine and tables. SQLite file by default, PostgreSQL when DATABASE_URL says so.

Tables are created on start and missing columns are added (additive migrations only), so an
upgraded service can start on an older database without a separate migration step.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from cds_service.config import ConfigError

log = logging.getLogger(__name__)

metadata = MetaData()

# A list of codes or keys: JSONB on PostgreSQL (cheap to unnest in aggregates), JSON text elsewhere.
_LIST = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(64), nullable=False, index=True),
    Column("card_uuid", String(128), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("accepted_suggestions", JSON, nullable=True),
    Column("override_code", String(128), nullable=True),
    Column("override_system", String(255), nullable=True),
    Column("override_display", String(255), nullable=True),
    Column("user_comment", Text, nullable=True),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False, index=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("issuer", String(255), nullable=True),
)
Index("ix_feedback_service_outcome_timestamp", feedback.c.service_id, feedback.c.outcome_timestamp)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hook_instance", String(64), nullable=False, index=True),
    Column("service_id", String(64), nullable=False),
    Column("hook", String(32), nullable=True),
    Column("status", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, index=True),
    Column("duration_ms", Float, nullable=False),
    Column("fetch_ms", Float, nullable=True),
    Column("engine_ms", Float, nullable=True),
    Column("issuer", String(255), nullable=True),
    Column("fetched_keys", JSON, nullable=True),
    Column("unavailable_keys", JSON, nullable=True),
    Column("decisions", JSON, nullable=True),
    Column("error", String(500), nullable=True),
    # Coded summaries for the performance dashboard (aggregated in SQL; no patient data). JSONB on
    # PostgreSQL so a million rows unnest quickly; empty lists are stored as NULL so the
    # aggregation can skip rows without reading them.
    Column("knowledge_version", String(64), nullable=True),
    Column("decision_count", Integer, nullable=True),
    Column("recommended_codes", _LIST, nullable=True),
    Column("documentation_gaps", _LIST, nullable=True),
    Column("card_types", _LIST, nullable=True),
    Column("checks_unavailable", Boolean, nullable=True),
)
# Date-range aggregation per service (the dashboard's filters).
Index("ix_audit_service_started", audit.c.service_id, audit.c.started_at)

issued_cards = Table(
    "issued_cards",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("card_uuid", String(128), nullable=False),
    Column("hook_instance", String(64), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("card_type", String(64), nullable=True),
    Column("indicator", String(16), nullable=True),
    Column("recommended_code", String(16), nullable=True),
    Column("knowledge_version", String(64), nullable=True),  # the report's breakdown by version
    Column("issued_at", DateTime(timezone=True), nullable=False, index=True),
    UniqueConstraint("card_uuid", name="uq_issued_cards_card_uuid"),
)


def ensure_writable_sqlite(path: Path) -> None:
    """Fail at start with the fix named, rather than on the first call with SQLite's bare
    "unable to open database file" (e.g. a container run with a read-only root file system)."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        problem = None
        if not os.access(folder, os.W_OK | os.X_OK):
            problem = "the folder is not writable"
        elif path.exists() and not os.access(path, os.R_OK | os.W_OK):
            problem = "the file is not readable and writable"
    except OSError as error:
        problem = error.strerror or str(error)
    if problem:
        raise ConfigError(
            f"CDS_SQLITE_PATH: cannot use the SQLite database {path} ({problem}). Mount a writable "
            f"volume at {folder} (the image declares /var/lib/cds-service as one; with a read-only "
            "root file system keep it, e.g. -v cds-state:/var/lib/cds-service), point CDS_SQLITE_PATH "
            "at a writable folder, or set DATABASE_URL to a PostgreSQL database."
        )


def make_engine(database_url: str, busy_timeout: float = 5.0, background_checkpoints: bool = False) -> Engine:
    """``busy_timeout``: seconds a SQLite write waits for the lock before it counts as an outage
    (the record then goes to the spool instead of holding the EHR's call for longer).

    ``background_checkpoints`` (the service): SQLite's automatic WAL checkpoint is switched off,
    because it runs inside whichever commit crosses 1,000 pages and syncs the file there: about
    one hook call in a hundred waited 20-40 ms for it on the project's machine, the whole p99.
    The service checkpoints from a background thread instead (storage/direct.py)."""
    url = make_url(database_url)
    busy_ms = int(busy_timeout * 1000)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            ensure_writable_sqlite(Path(url.database).expanduser())
        engine = create_engine(url, connect_args={"timeout": busy_timeout})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets several gunicorn workers read while one writes. synchronous=NORMAL (the
            # setting SQLite recommends with WAL) syncs at checkpoints instead of at every commit:
            # the file stays consistent and no commit is lost when the service crashes, only the
            # last ones on a power cut. With FULL every hook call waited ~2 ms for an fsync while
            # holding the database's single write lock, which capped all workers together at a
            # few hundred calls a second. Use PostgreSQL where power-cut durability matters.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            if background_checkpoints:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        return engine
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2") and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    # A bounded connect: a database that does not answer is an outage after 5 s (the spool takes
    # over), not a call that hangs; the pool's own wait is bounded the same way. DATABASE_URL may
    # still set its own ?connect_timeout=.
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": 5}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=5,
                         connect_args=connect_args)


def insert_ignoring_duplicates(engine_or_connection: Engine | Connection, table: Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the engine's dialect (SQLite and PostgreSQL)."""
    if engine_or_connection.dialect.name == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def is_outage(error: BaseException) -> bool:
    """True when a database error means "the database is away" (down, unreachable, locked, full
    disk, pool exhausted) rather than "this row is wrong": only then is the record spooled."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, TimeoutError as PoolTimeout

    if isinstance(error, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)



# How long a starting replica waits for its PostgreSQL server before giving up.
DATABASE_WAIT_SECONDS = 30.0


def wait_for_database(engine: Engine, timeout: float = DATABASE_WAIT_SECONDS,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> None:
    """Replicas may start before their database accepts connections (podman-compose and
    Kubernetes do not wait for it): wait a while, saying so, instead of dying with a traceback
    and a restart loop; then stop with a message naming DATABASE_URL."""
    deadline = clock() + timeout
    delay = 0.5
    while True:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return
        except OperationalError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]
            where = f"{engine.url.host or 'localhost'}:{engine.url.port or 5432}"
            if clock() + delay > deadline:
                raise ConfigError(
                    f"DATABASE_URL: the database at {where} did not accept connections within "
                    f"{timeout:.0f} s ({reason}); check that it runs and that the URL, user and "
                    "password are right"
                ) from None
            log.warning("database at %s not reachable yet (%s); retrying in %.1f s", where, reason, delay)
            sleep(delay)
            delay = min(delay * 2, 5.0)


# Any constant shared by every replica: serialises schema changes in one PostgreSQL database.
MIGRATION_LOCK_KEY = 7_775_077_750


def migrate(engine: Engine, meta: MetaData = metadata) -> None:
    """Create missing tables, then add columns that newer code expects (additive only).

    Several replicas may start at once on an empty database (docker compose does exactly that):
    on PostgreSQL they queue on an advisory lock held for the migrating transaction; on SQLite a
    start that loses the race retries once the winner's tables exist.
    """
    if engine.dialect.name == "postgresql":
        wait_for_database(engine)
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            _migrate(connection, meta)
        return
    for attempt in range(5):
        try:
            with engine.begin() as connection:
                _migrate(connection, meta)
            return
        except (OperationalError, IntegrityError):
            if attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))


def _migrate(connection: Connection, meta: MetaData) -> None:
    meta.create_all(connection)
    inspector = inspect(connection)
    for table in meta.sorted_tables:
        existing = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing:
                continue
            column_type = column.type.compile(dialect=connection.dialect)
            log.info("adding column %s.%s", table.name, column.name)
            connection.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {column_type}'))
        # create_all makes the indexes of new tables only; an older table gets the newer ones here.
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name and index.name not in indexes:
                log.info("creating index %s", index.name)
                index.create(connection)


def redacted_url(database_url: str) -> str:
    """The URL without its password, for logs and readiness output."""
    return make_url(database_url).render_as_string(hide_password=True)
