"""SQLite connections are set up for many short writes from several worker processes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from cds_service.storage.db import make_engine


def test_sqlite_uses_wal_without_an_fsync_per_commit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cds.sqlite3'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL (FULL is 2)
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000  # then the spool takes over
    engine.dispose()
