"""Write-through to the database, with the durable spool when the database is away.

Why: a hook call's cards matter more than its bookkeeping, so an outage must not fail the call,
and nothing acknowledged may be lost. Each write goes straight to the database; when that fails
with an outage-class error (down, unreachable, locked, full disk: :func:`db.is_outage`), the
record is appended to this process's spool file and fsynced instead, and the process stays in
outage mode (later writes go straight to the spool, without waiting on a dead database) until a
background flusher finds the database answering again. Then writes go direct again while the
flusher drains the backlog.

Exactly once: a record is applied in one transaction, and applying it twice changes nothing:

* ``call``: the audit row is skipped when a row with the same hook instance, service and start
  time exists; issued cards are inserted with ON CONFLICT DO NOTHING on the card uuid;
* ``feedback``: the batch (one POST) is skipped when its first row (service, card uuid,
  received_at) exists;
* ``jti``: inserted into ``jwt_jti``; a conflict means the token was also used elsewhere while
  the database was away (another replica): logged as a possible replay.

Rows are generic dicts (whatever columns the table has), so columns added later flow through.
Bound: each process's spool file holds at most ``max_bytes``; when full, the oldest records are
kept and the newest refused (:class:`SpoolFull`, counted as ``cds_spool_refused_total``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from sqlalchemy import and_, insert, select, text
from sqlalchemy.engine import Connection, Engine

from cds_service.storage import spool as spool_files
from cds_service.storage.direct import DirectWriter
from cds_service.storage.db import audit, feedback, insert_ignoring_duplicates, is_outage, issued_cards, metadata
from cds_service.storage.spool import SpoolFile, SpoolFull, SpoolWriteFailed

log = logging.getLogger(__name__)

MARKER = "outage"  # created by the first process that enters an outage, removed when all is drained
BATCH = 200


class SpoolRefused(Exception):
    """The database is away and the spool cannot take the record (full, or not writable)."""


class SpoolObserver(Protocol):
    def spool_appended(self, kind: str) -> None: ...
    def spool_refused(self, kind: str) -> None: ...
    def spool_flushed(self, kind: str, count: int) -> None: ...
    def spool_depth(self, depth: int) -> None: ...


class _Quiet:
    def spool_appended(self, kind: str) -> None:
        pass

    def spool_refused(self, kind: str) -> None:
        pass

    def spool_flushed(self, kind: str, count: int) -> None:
        pass

    def spool_depth(self, depth: int) -> None:
        pass


class Outbox:
    def __init__(self, engine: Engine, directory: Path | str, max_bytes: int = 64 * 1024 * 1024, *,
                 observer: SpoolObserver | None = None, flush_interval: float = 0.5,
                 idle_interval: float = 10.0) -> None:
        self.engine = engine
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.observer: SpoolObserver = observer or _Quiet()
        self.flush_interval = flush_interval
        self.idle_interval = idle_interval
        self.periodic: list[Callable[[], object]] = []  # results are ignored
        self._direct = DirectWriter(engine)
        self._pid = -1
        self._reset_process_state()

    # -- per process (gunicorn forks after the app is built) ---------------------------------

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush round at a time (flusher thread, tests, tools)
        self._own: SpoolFile | None = None
        self._claimed: list[SpoolFile] = []
        self._outage = False
        self._outage_since = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._refused_logged = False

    def _here(self) -> None:
        if self._pid != os.getpid():
            self._reset_process_state()

    def start(self) -> None:
        """Start this process's flusher (idempotent): it also flushes the spool files left by
        processes that have exited. ``cds-service serve`` calls it in every worker at start."""
        self._here()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="cds-spool-flusher", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        with self._lock:
            for handle in ([self._own] if self._own else []) + self._claimed:
                handle.close()
            self._own, self._claimed = None, []

    # -- writing ----------------------------------------------------------------------------

    def outage_active(self) -> bool:
        self._here()
        return self._outage

    def report_outage(self, error: BaseException) -> None:
        """Another component (the jti replay check) found the database away."""
        self._here()
        self._enter_outage(error)

    def record_call(self, audit_row: dict[str, Any], card_rows: list[dict[str, Any]]) -> str:
        """Audit row and issued cards of one call: "stored" or "spooled"; SpoolRefused."""
        record = {"kind": "call", "audit": audit_row, "cards": card_rows}
        # The common case, on every hook call: prepared statements on a pooled connection (storage/direct.py).
        return self._write(record, lambda: self._direct.write_call(audit_row, card_rows))

    def record_feedback(self, rows: list[dict[str, Any]]) -> str:
        record = {"kind": "feedback", "rows": rows}
        return self._write(record, lambda: self._in_transaction(
            lambda connection: _apply_feedback(connection, record, check=False)))

    def spool_jti(self, row: dict[str, Any]) -> None:
        """A token id accepted while the database was away, for ``jwt_jti`` once it is back."""
        self._here()
        self._spool({"kind": "jti", "row": row})

    def _in_transaction(self, work: Callable[[Connection], None]) -> None:
        with self.engine.begin() as connection:
            work(connection)

    def _write(self, record: dict[str, Any], store: Callable[[], None]) -> str:
        """Store the record now, or spool it when the database is (or just went) away."""
        self._here()
        if not self._outage:
            try:
                store()
                return "stored"
            except Exception as error:
                if not (is_outage(error) or self._direct.is_outage(error)):
                    raise
                self._enter_outage(error)
        self._spool(record)
        return "spooled"

    def _spool(self, record: dict[str, Any]) -> None:
        kind = record["kind"]
        data = spool_files.encode(record)
        try:
            with self._lock:
                if self._own is None:
                    self._own = SpoolFile.create(self.directory)
                self._own.append(data, self.max_bytes)
        except (SpoolFull, SpoolWriteFailed, OSError) as error:
            self.observer.spool_refused(kind)
            if not self._refused_logged:  # once per outage and process: the metric counts them all
                self._refused_logged = True
                log.error("spool refused a %s record (%s); the newest records are refused until it drains "
                          "(cds_spool_refused_total counts them)", kind, error)
            raise SpoolRefused(str(error)) from None
        self.observer.spool_appended(kind)
        self._publish_depth()
        self.start()
        self._wake.set()

    def _enter_outage(self, error: BaseException) -> None:
        with self._lock:
            if self._outage:
                return
            self._outage = True
            self._outage_since = time.time()
        first = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, str(time.time()).encode())
            os.close(fd)
            first = True
        except FileExistsError:
            pass
        except OSError:
            first = True
        if first:
            log.warning("database unavailable (%s): audit rows, issued cards, feedback and token ids go to "
                        "the spool in %s until it answers again", type(error).__name__, self.directory)
        self.start()

    # -- state ------------------------------------------------------------------------------

    def own_depth(self) -> int:
        self._here()
        with self._lock:
            return (self._own.pending if self._own else 0) + sum(handle.pending for handle in self._claimed)

    def _publish_depth(self) -> None:
        self.observer.spool_depth(self.own_depth())

    def status(self) -> dict[str, Any]:
        """For /readyz: the whole spool folder (all processes), this process's outage flag."""
        records, waiting = spool_files.depth_of(self.directory)
        full = 0
        for path in spool_files.spool_files(self.directory):
            try:
                if path.stat().st_size + 4096 > self.max_bytes:
                    full += 1
            except FileNotFoundError:
                pass
        return {"depth": records, "bytes": waiting, "full_files": full, "max_bytes_per_process": self.max_bytes,
                "outage": self.outage_active() or (self.directory / MARKER).exists()}

    # -- flushing ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.flush_once()
            except Exception:  # the flusher must survive anything; the next round retries
                log.exception("spool flush failed")
            for task in self.periodic:
                try:
                    task()
                except Exception:
                    log.exception("periodic spool task failed")
            busy = self._outage or self.own_depth() > 0
            self._wake.wait(self.flush_interval if busy else self.idle_interval)
            self._wake.clear()

    def _claim_orphans(self) -> None:
        with self._lock:
            held = {handle.path for handle in self._claimed}
            if self._own is not None:
                held.add(self._own.path)
        for path in spool_files.spool_files(self.directory):
            if path in held:
                continue
            handle = SpoolFile.claim(path)
            if handle is None:
                continue
            if handle.pending == 0 and handle.size() == handle.offset:
                handle.remove()
                continue
            log.info("claimed the spool of an exited process: %s (%d records)", path.name, handle.pending)
            with self._lock:
                self._claimed.append(handle)
        self._publish_depth()

    def flush_once(self) -> int:
        """One round: claim orphans, and if the database answers, drain everything held here.
        Returns the number of records applied."""
        self._here()
        with self._flush_lock:
            return self._flush_round()

    def _flush_round(self) -> int:
        self._claim_orphans()
        with self._lock:
            handles = list(self._claimed) + ([self._own] if self._own is not None else [])
        if not any(handle.pending or handle.size() > handle.offset for handle in handles) and not self._outage:
            return 0
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:
            if is_outage(error):
                return 0
            raise
        # The database answers: new writes go direct again while the backlog drains.
        with self._lock:
            self._outage = False
            self._refused_logged = False
        applied = 0
        try:
            for handle in handles:
                applied += self._drain(handle)
        except Exception as error:
            if not is_outage(error):
                raise
            self._enter_outage(error)
            self._publish_depth()
            return applied
        with self._lock:
            if self._own is not None and self._own.size() == self._own.offset:
                if self._own.offset:
                    self._own.reset()
            for handle in list(self._claimed):  # drained: what is left is a line cut short by a crash
                if handle.size() > handle.offset:
                    log.warning("spool of an exited process %s ended with %d bytes of a record cut short by "
                                "the crash (never acknowledged); dropped", handle.path.name,
                                handle.size() - handle.offset)
                self._claimed.remove(handle)
                handle.remove()
        self._publish_depth()
        self._maybe_drained(applied)
        return applied

    def _drain(self, handle: SpoolFile) -> int:
        applied = 0
        batch: list[spool_files.Line] = []
        for line in spool_files.read_lines(handle.fd, handle.offset):
            batch.append(line)
            if len(batch) >= BATCH:
                applied += self._apply_batch(handle, batch)
                batch = []
        if batch:
            applied += self._apply_batch(handle, batch)
        return applied

    def _apply_batch(self, handle: SpoolFile, batch: list[spool_files.Line]) -> int:
        good = [(line, line.record) for line in batch if line.record is not None]
        try:
            with self.engine.begin() as connection:
                for _, record in good:
                    _apply(connection, record)
        except Exception as error:
            if is_outage(error):
                raise
            # one bad record must not block the rest: apply one by one, set aside what fails
            for line, record in good:
                try:
                    with self.engine.begin() as connection:
                        _apply(connection, record)
                except Exception as single:
                    if is_outage(single):
                        raise
                    self._reject(line, type(single).__name__)
        for line in batch:
            if line.record is None:
                self._reject(line, "damaged line")
        kinds: dict[str, int] = {}
        for _, record in good:
            kinds[record["kind"]] = kinds.get(record["kind"], 0) + 1
        for kind, count in kinds.items():
            self.observer.spool_flushed(kind, count)
        with self._lock:
            handle.mark_flushed(batch[-1].end, len(batch))
        return len(good)

    def _reject(self, line: spool_files.Line, reason: str) -> None:
        """Set a record the database refuses aside in rejected.jsonl (kept for an operator)."""
        log.error("spool record set aside in %s: %s", spool_files.REJECTED, reason)
        try:
            fd = os.open(self.directory / spool_files.REJECTED, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.raw + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            log.exception("could not keep the set-aside record")

    def _maybe_drained(self, applied: int) -> None:
        if self.own_depth() or self._outage:
            return
        if spool_files.depth_of(self.directory)[0]:
            return  # another process still holds records; it logs when it has drained
        marker = self.directory / MARKER
        try:
            started = float(marker.read_text() or 0)
            marker.unlink()
        except (FileNotFoundError, ValueError):
            return
        log.warning("spool drained: the database answers again and every spooled record is stored "
                    "(outage of about %.0f s)", max(0.0, time.time() - started))


# -- applying records (idempotent) --------------------------------------------------------------

def _apply(connection: Connection, record: dict[str, Any]) -> None:
    kind = record.get("kind")
    if kind == "call":
        _apply_call(connection, record, check=True)
    elif kind == "feedback":
        _apply_feedback(connection, record, check=True)
    elif kind == "jti":
        _apply_jti(connection, record)
    else:
        raise ValueError(f"unknown spool record kind {kind!r}")


def _known(table, row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key in table.c}


def _exists(connection: Connection, table, row: dict[str, Any], keys: Iterable[str]) -> bool:
    condition = and_(*[table.c[key] == row[key] for key in keys])
    return connection.execute(select(table.c.id).where(condition).limit(1)).first() is not None


def _apply_call(connection: Connection, record: dict[str, Any], check: bool) -> None:
    row = _known(audit, record["audit"])
    if not check or not _exists(connection, audit, row, ("hook_instance", "service_id", "started_at")):
        connection.execute(insert(audit), [row])
    cards = [_known(issued_cards, card) for card in record.get("cards") or []]
    if cards:  # a retried hook instance re-sends the same card uuids: already recorded
        connection.execute(insert_ignoring_duplicates(connection, issued_cards), cards)


def _apply_feedback(connection: Connection, record: dict[str, Any], check: bool) -> None:
    rows = [_known(feedback, row) for row in record["rows"]]
    if not rows:
        return
    if check and _exists(connection, feedback, rows[0], ("service_id", "card_uuid", "received_at")):
        return
    connection.execute(insert(feedback), rows)


def _apply_jti(connection: Connection, record: dict[str, Any]) -> None:
    table = metadata.tables.get("jwt_jti")
    if table is None:
        return  # authentication off in this process: nothing to catch up
    row = record["row"]
    result = connection.execute(insert_ignoring_duplicates(connection, table), [_known(table, row)])
    if result.rowcount == 0:
        log.warning("token id used during the database outage was also used elsewhere (iss=%s jti=%s): "
                    "a possible replay across replicas, or a flush repeated after a crash", row.get("iss"),
                    row.get("jti"))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
