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

import threading
from typing import Any, Callable, Iterable

from sqlalchemy import Table, insert
from sqlalchemy.engine import Engine

from cds_service.storage.db import audit, insert_ignoring_duplicates, issued_cards

Processor = Callable[[Any], Any] | None


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
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(audit_statement.sql, row)
                if cards:
                    cursor.executemany(card_statement.sql, cards)
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
