"""The real service (``cds-service serve``: gunicorn, two workers) against a PostgreSQL cluster
of its own that the tests stop and start: outage during order-sign and feedback, outage across a
crash and restart of the service, SIGKILL of workers mid-write, spool full.

Each test counts what was answered, spooled, flushed and stored, and asserts that nothing the
service acknowledged is missing from the database afterwards, and that no answer was a 5xx
(except the documented 503 + Retry-After for feedback the full spool could not take)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from cds_service.ops import metrics as ops_metrics
from cds_service.storage.db import audit, feedback, issued_cards, make_engine
from tests.ops.live import free_port, get, metric_samples, running
from tests.reliability.conftest import BASE, Tokens, feedback_body
from tests.reliability.test_outbox import FEEDBACK, SIGN, sign_body

def post(url: str, body: dict[str, Any], token: str | None = None, timeout: float = 20.0) -> tuple[int | None, Any, dict]:
    """(status, JSON body, headers); status None when the connection broke (no answer)."""
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)
    except (OSError, http.client.HTTPException):  # cut off by a killed worker: not an answer
        return None, None, {}


@dataclass
class Tally:
    """What the clients saw."""

    calls: dict[int | None, int] = field(default_factory=dict)
    feedback: dict[int | None, int] = field(default_factory=dict)
    answered_instances: set[str] = field(default_factory=set)
    answered_cards: set[str] = field(default_factory=set)
    acknowledged_feedback: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, base: str, tokens: Tokens | None) -> list[str]:
        body = sign_body()
        status, answer, _ = post(base + SIGN, body, tokens.make(SIGN) if tokens else None)
        cards = [card["uuid"] for card in answer["cards"]] if status == 200 else []
        with self.lock:
            self.calls[status] = self.calls.get(status, 0) + 1
            if status == 200:
                assert answer["cards"], "order-sign answered without cards"
                self.answered_instances.add(body["hookInstance"])
                self.answered_cards.update(cards)
        return cards

    def send_feedback(self, base: str, cards: list[str], tokens: Tokens | None) -> int | None:
        if not cards:
            return None
        status, answer, headers = post(base + FEEDBACK, feedback_body(cards), tokens.make(FEEDBACK) if tokens else None)
        with self.lock:
            self.feedback[status] = self.feedback.get(status, 0) + 1
            if status == 200:
                assert answer == {"stored": len(cards)}
                self.acknowledged_feedback += len(cards)
            elif status == 503:
                assert headers.get("Retry-After")
        return status

    def no_5xx(self, allowed_feedback_503: bool = False) -> None:
        assert all(status is None or status < 500 for status in self.calls), self.calls
        bad = [s for s in self.feedback if s is not None and s >= 500 and not (allowed_feedback_503 and s == 503)]
        assert not bad, self.feedback


class Load:
    """Clients calling order-sign then sending feedback about its cards, in a loop, until stopped."""

    def __init__(self, base: str, tally: Tally, threads: int = 3, tokens: Tokens | None = None) -> None:
        self.base, self.tally, self.tokens = base, tally, tokens
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            cards = self.tally.call(self.base, self.tokens)
            self.tally.send_feedback(self.base, cards[:1], self.tokens)
            time.sleep(0.02)

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def stored(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                "audit_instances": {row[0] for row in connection.execute(select(audit.c.hook_instance))},
                "audit": connection.execute(select(func.count()).select_from(audit)).scalar_one(),
                "cards": {row[0] for row in connection.execute(select(issued_cards.c.card_uuid))},
                "feedback": connection.execute(select(func.count()).select_from(feedback)).scalar_one(),
            }
    finally:
        engine.dispose()


def metric_sum(base: str, name: str, **labels: str) -> float:
    status, text = get(base + "/metrics")
    assert status == 200
    return sum(value for (metric, found), value in metric_samples(text.decode()).items()
               if metric == name and all(dict(found).get(k) == v for k, v in labels.items()))


def readyz(base: str) -> dict[str, Any]:
    status, body = get(base + "/readyz")
    answer = json.loads(body)
    assert status == (503 if answer["status"] == "unavailable" else 200)
    return answer


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def worker_pids(master: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                found.append(int(entry))
    return sorted(found)


@pytest.fixture
def service(tmp_path: Path, pg_url: str):
    """Start ``cds-service serve`` (2 workers) on the test's database; yields a starter so a test
    can start it again (same spool folder) after a crash."""

    def start(log_name: str = "server.log", **env_overrides: str):
        port = free_port()
        env = {**os.environ, "DATABASE_URL": pg_url, "CDS_SPOOL_DIR": str(tmp_path / "spool"),
               "CDS_AUTH": "off", "CDS_LOG_LEVEL": "WARNING", "CDS_THREADS": "4", "CDS_WORKERS": "2"}
        env.pop(ops_metrics.MULTIPROC_ENV, None)
        env.update(env_overrides)
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", "2"]
        return base, running(command, env, base, tmp_path / log_name)

    return start


def report(name: str, tally: Tally, spooled: float, flushed: float, db: dict[str, Any]) -> None:
    """The counts, printed for the closing note (pytest -s shows them)."""
    print(f"\n[{name}] answered calls={tally.calls} feedback={tally.feedback} "
          f"acknowledged feedback items={tally.acknowledged_feedback} spooled={spooled:.0f} flushed={flushed:.0f} "
          f"stored audit={db['audit']} cards={len(db['cards'])} feedback={db['feedback']}")


def assert_nothing_lost(tally: Tally, db: dict[str, Any]) -> None:
    assert tally.answered_instances <= db["audit_instances"], "audit rows of answered calls are missing"
    assert tally.answered_cards <= db["cards"], "issued cards of answered calls are missing"
    assert db["feedback"] >= tally.acknowledged_feedback, "acknowledged feedback is missing"


def test_outage_during_order_sign_and_feedback(service, pg, pg_url, tmp_path) -> None:
    tokens = Tokens(tmp_path)
    base, server = service(CDS_AUTH="on", CDS_PROFILE="production", CDS_PUBLIC_BASE_URL=BASE,
                           CDS_TRUSTED_ISSUERS=str(tokens.issuers_file))
    tally = Tally()
    with server:
        with Load(base, tally, tokens=tokens):
            wait_until(lambda: len(tally.answered_instances) >= 5, what="calls before the outage")
            pg.stop()
            before = len(tally.answered_instances)
            wait_until(lambda: len(tally.answered_instances) >= before + 20, what="calls during the outage")
            state = readyz(base)
            assert state["status"] == "degraded" and state["checks"]["database"]["ok"] is False
            assert state["checks"]["spool"]["depth"] > 0
            assert metric_sum(base, "cds_spool_depth") > 0
            assert get(base + "/healthz")[0] == 200  # liveness untouched
            pg.start()
            wait_until(lambda: readyz(base)["status"] == "ready", what="the spool to drain")
        wait_until(lambda: readyz(base)["status"] == "ready", what="the spool to drain")
        spooled = metric_sum(base, "cds_spool_appended_total")
        flushed = metric_sum(base, "cds_spool_flushed_total")
    log = (tmp_path / "server.log").read_text()
    db = stored(pg_url)
    assert tally.calls.get(200, 0) == len(tally.answered_instances) and set(tally.calls) == {200}
    assert set(tally.feedback) == {200}
    tally.no_5xx()
    assert_nothing_lost(tally, db)
    assert db["audit"] == len(tally.answered_instances)  # exactly once: no duplicates either
    assert db["cards"] == tally.answered_cards
    assert db["feedback"] == tally.acknowledged_feedback
    assert log.count("database unavailable") == 1, log
    assert log.count("spool drained") == 1, log
    assert spooled > 0 and flushed == spooled
    report("outage during order-sign and feedback", tally, spooled, flushed, db)


def test_outage_across_a_crash_and_restart_of_the_service(service, pg, pg_url, tmp_path) -> None:
    """The whole service is SIGKILLed (a power cut of the container) while its records are only in
    the spool; the database comes back while it is down; the next start flushes the spool."""
    base, server = service("first.log")
    tally = Tally()
    with server as process:
        pg.stop()
        for _ in range(10):
            tally.send_feedback(base, tally.call(base, None)[:2], None)
        assert readyz(base)["checks"]["spool"]["depth"] == 20
        spooled = metric_sum(base, "cds_spool_appended_total")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    pg.start()
    assert stored(pg_url)["audit"] == 0  # nothing reached the database before the restart
    base, server = service("second.log")
    with server:
        wait_until(lambda: readyz(base)["status"] == "ready", what="the spool of the crashed run to be flushed")
        flushed = metric_sum(base, "cds_spool_flushed_total")
    db = stored(pg_url)
    tally.no_5xx()
    assert tally.calls == {200: 10} and tally.feedback == {200: 10}
    assert_nothing_lost(tally, db)
    assert db["audit"] == 10 and db["feedback"] == tally.acknowledged_feedback == 20
    assert spooled == flushed == 20
    assert "spool drained" in (tmp_path / "second.log").read_text()
    report("outage across a crash and restart", tally, spooled, flushed, db)


def test_sigkill_of_workers_mid_write_loses_nothing_acknowledged(service, pg, pg_url) -> None:
    """Workers are SIGKILLed while calls and feedback arrive: once with the database up (direct
    writes), once during an outage (spool writes). Calls cut off get no answer (the client sees a
    reset, never a 5xx); everything that was answered is stored, exactly once."""
    base, server = service()
    tally = Tally()
    with server as process:
        with Load(base, tally, threads=4):
            wait_until(lambda: len(tally.answered_instances) >= 10, what="calls before the first kill")
            os.kill(worker_pids(process.pid)[0], signal.SIGKILL)
            count = len(tally.answered_instances)
            wait_until(lambda: len(tally.answered_instances) >= count + 10, what="calls after the first kill")
            pg.stop()
            count = len(tally.answered_instances)
            wait_until(lambda: len(tally.answered_instances) >= count + 15, what="calls during the outage")
            for pid in worker_pids(process.pid):  # both workers, each holding spooled records
                os.kill(pid, signal.SIGKILL)
            count = len(tally.answered_instances)
            wait_until(lambda: len(tally.answered_instances) >= count + 15, what="calls after the second kill")
            pg.start()
            wait_until(lambda: readyz(base)["status"] == "ready", what="the spool to drain")
        wait_until(lambda: readyz(base)["status"] == "ready", what="the spool to drain")
        flushed = metric_sum(base, "cds_spool_flushed_total")  # survivors' and replacements' counts
        spooled = metric_sum(base, "cds_spool_appended_total")  # killed workers' counts are kept
    db = stored(pg_url)
    tally.no_5xx()
    assert_nothing_lost(tally, db)
    # exactly once: rows beyond the answered ones can only be calls cut off after their write
    assert db["audit"] == len(db["audit_instances"])
    assert db["audit"] - len(tally.answered_instances) <= tally.calls.get(None, 0)
    # a record spooled by a killed worker and flushed by another is counted once on each side;
    # (and a worker killed before noting its position has its records flushed again, skipped as known)
    assert flushed > 0 and spooled > 0
    report("SIGKILL of workers mid-write", tally, spooled, flushed, db)


def test_spool_full_keeps_the_oldest_and_refuses_the_newest(service, pg, pg_url) -> None:
    base, server = service(CDS_SPOOL_MAX_BYTES="65536")
    tally = Tally()
    with server:
        pg.stop()
        for _ in range(150):
            tally.send_feedback(base, tally.call(base, None)[:1], None)
            if tally.feedback.get(503, 0) >= 3:
                break
        assert tally.feedback.get(503, 0) >= 3, "the spool never filled"
        refused_calls = metric_sum(base, "cds_spool_refused_total", kind="call")
        refused_feedback = metric_sum(base, "cds_spool_refused_total", kind="feedback")
        spooled = metric_sum(base, "cds_spool_appended_total")
        assert refused_feedback == tally.feedback[503]
        assert readyz(base)["status"] == "degraded"  # still answering order-sign: stay in rotation
        pg.start()
        wait_until(lambda: readyz(base)["status"] == "ready", what="the spool to drain")
        flushed = metric_sum(base, "cds_spool_flushed_total")
    db = stored(pg_url)
    tally.no_5xx(allowed_feedback_503=True)
    assert set(tally.calls) == {200}  # order-sign answered throughout
    assert db["feedback"] == tally.acknowledged_feedback  # every acknowledged item, nothing refused
    assert db["audit"] == len(tally.answered_instances) - refused_calls  # the newest were refused, counted
    assert flushed == spooled
    report("spool full", tally, spooled, flushed, db)
