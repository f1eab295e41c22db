"""The audit row and issued cards of a hook call, written with one prepared statement each.

Why: every hook call writes its audit row and its cards before it answers, and through
SQLAlchemy's ORM-free Core path that cost ~0.75 ms a call on the project's machine (statement
objects rebuilt, parameters processed column by column, connection checkout, two round trips
through the execution context), about as much as the rest of a call that is not therapy. Here
the INSERTs are compiled once per dialect and sent on the pool's DBAPI connection: half the
time, the same transaction (row and cards, or neither), the same stored values.

The stored values are exactly SQLAlchemy's: each value goes through the column type's own bind
processor (JSON text, SQLite's DateTime strings, booleans), and a column the row does not name
is left NULL as an INSERT that omits it would leave it. tests/reliability/test_direct_writer.py
compares the rows with those written by ``insert(audit)``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import nullcontext
from typing import Any, Callable, Iterable

from sqlalchemy import Table, insert
from sqlalchemy.engine import Engine

from cds_service.storage.db import audit, insert_ignoring_duplicates, issued_cards

Processor = Callable[[Any], Any] | None
log = logging.getLogger(__name__)


class WalCheckpointer:
    """Checkpoints a SQLite WAL from a background thread of each process that writes, since the
    service's engine does not let commits do it (``make_engine(background_checkpoints=True)``).

    A PASSIVE checkpoint never waits for a lock and never blocks a writer; the thread runs it
    every ``interval`` seconds while this process writes, so the WAL stays a few thousand pages.
    """

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._writes = 0

    def wrote(self) -> None:
        """Called after each write: starts the thread in this process if it is not running."""
        with self._lock:
            self._writes += 1
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="cds-wal-checkpoint", daemon=True)
                self._thread.start()

    #: The thread ends after this many quiet intervals (the next write starts it again), so that
    #: processes that build many apps, such as the test suite, do not collect idle threads.
    IDLE_ROUNDS = 60

    def _run(self) -> None:
        seen = -1
        quiet = 0
        while True:
            time.sleep(self.interval)
            if self._writes == seen:
                quiet += 1
                if quiet >= self.IDLE_ROUNDS:
                    with self._lock:
                        if self._writes == seen:  # nothing written meanwhile: stop here
                            self._thread = None
                            return
                continue  # nothing written since the last checkpoint
            seen, quiet = self._writes, 0
            try:
                with self.engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception as error:  # the next round retries; an outage is the outbox's business
                log.debug("WAL checkpoint failed: %s", error)


class _Statement:
    """One table's INSERT of every column but ``id``, compiled for one dialect."""

    def __init__(self, engine: Engine, table: Table, ignore_duplicates: bool) -> None:
        columns = [column for column in table.c if column.name != "id"]
        statement: Any = insert_ignoring_duplicates(engine, table) if ignore_duplicates else insert(table)
        compiled = statement.values({column.name: None for column in columns}).compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        # compiled.positiontup names the parameters in order (positional styles such as qmark);
        # named styles take a dict keyed by compiled.binds' names, which are the column names here.
        self.names: list[str] = list(compiled.positiontup or []) if self.positional else [c.name for c in columns]
        self.processors: dict[str, Processor] = {
            column.name: column.type._cached_bind_processor(engine.dialect) for column in columns
        }

    def parameters(self, row: dict[str, Any]) -> Any:
        values = []
        for name in self.names:
            if name in row:
                value = row[name]
                processor = self.processors[name]
                values.append(processor(value) if processor is not None else value)
            else:
                values.append(None)  # as an INSERT that omits the column: NULL (no column has a default)
        return values if self.positional else dict(zip(self.names, values))


class _WriterTurn:
    """SQLite writers of all processes take turns through a lock file, first come first served.

    Why: when two gunicorn workers commit at once, SQLite makes the second one sleep and poll
    (1, 2, 5, 10, ... ms) until the first is done, although a commit takes ~0.3 ms: those sleeps
    were a large part of the tail under concurrent load. ``flock`` instead wakes the waiting
    writer the moment the lock is free. A thread lock orders the threads of one process (flock
    does not, within a process); SQLite's own locking still guards every other writer.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._pid = -1
        self._fd = -1
        self._threads = threading.Lock()

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._pid != os.getpid():  # a forked worker opens its own file description
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError:  # no lock file (read-only folder, ...): SQLite's locking alone, as before
            pass
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            self._threads.release()


class DirectWriter:
    """Writes call records (audit row + issued cards) in one transaction on a DBAPI connection.

    Errors are the DBAPI's own (``sqlite3.OperationalError``, ``psycopg.OperationalError``) or
    SQLAlchemy's for a failed checkout; :meth:`is_outage` classifies both as the outbox needs.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._statements: tuple[_Statement, _Statement] | None = None
        dbapi = engine.dialect.loaded_dbapi
        self._outage_errors: tuple[type[BaseException], ...] = (dbapi.OperationalError, dbapi.InterfaceError)
        self._checkpointer = WalCheckpointer(engine) if engine.dialect.name == "sqlite" else None
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._turn = _WriterTurn(f"{database}-writers") if database and database != ":memory:" else None

    def _prepared(self) -> tuple[_Statement, _Statement]:
        if self._statements is None:
            with self._lock:
                if self._statements is None:
                    self._statements = (_Statement(self.engine, audit, False),
                                        _Statement(self.engine, issued_cards, True))
        return self._statements

    def write_call(self, audit_row: dict[str, Any], card_rows: Iterable[dict[str, Any]]) -> None:
        audit_statement, card_statement = self._prepared()
        cards = [card_statement.parameters(card) for card in card_rows]
        row = audit_statement.parameters(audit_row)
        with self._turn if self._turn is not None else nullcontext():
            self._write(audit_statement.sql, row, card_statement.sql, cards)
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    def _write(self, audit_sql: str, row: Any, card_sql: str, cards: list[Any]) -> None:
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(audit_sql, row)
                if cards:
                    cursor.executemany(card_sql, cards)
            finally:
                cursor.close()
            connection.commit()
        except BaseException:
            try:
                connection.rollback()
            except Exception:
                connection.invalidate()  # a broken connection must not go back to the pool
            raise
        finally:
            connection.close()  # back to the pool

    def is_outage(self, error: BaseException) -> bool:
        return isinstance(error, self._outage_errors)
