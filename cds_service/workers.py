"""gunicorn's threaded worker, taking its fair share of connections.

Why: gunicorn's workers all wait on the one listening socket, and whichever wakes first accepts
every connection that is waiting. An EHR (and the benchmark) opens its keep-alive connections in
a burst, and measured splits of 16 connections over two workers were 15 + 1, 13 + 3, even 16 + 0:
one worker did nearly all the work while the other idled, so throughput halved and the calls on
the crowded worker waited several times longer than the others (p99 8-15x p50).

Here each worker publishes how many connections it holds in a small table shared by the master
and its workers, and accepts a new one only while it holds no more than any other live worker;
otherwise it stops listening and looks again every few milliseconds, leaving the connection to
a worker with fewer. With equal counts both may accept, so the split is even within one. A
worker whose loop has not reported for ``STALE_SECONDS`` (hung, or still starting) is not
waited for, so a stuck worker can never stop the others from accepting. Nothing else of
gunicorn's worker changes.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: At most this many workers share the table (CDS_WORKERS is at most 64).
SLOTS = 64
#: A worker's row older than this (its event loop reports at least once a second) is ignored.
STALE_SECONDS = 2.0
_FIELDS = 3  # pid, connections, last report (monotonic milliseconds; the clock is system-wide)
_table: Any = None  # created in the master before it forks


def create_table() -> None:
    """Called once in the master (``cds-service serve``) before the workers fork."""
    global _table
    if _table is None:
        _table = multiprocessing.Array("q", _FIELDS * SLOTS)


def forget(pid: int) -> None:
    """The master calls this when a worker exits, whatever killed it."""
    if _table is None:
        return
    with _table.get_lock():
        for slot in range(SLOTS):
            if _table[_FIELDS * slot] == pid:
                _table[_FIELDS * slot] = _table[_FIELDS * slot + 1] = _table[_FIELDS * slot + 2] = 0


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BalancedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, accepting a connection only while no live worker holds fewer."""

    RECHECK_SECONDS = 0.005

    def init_process(self) -> None:
        self._slot = -1
        if _table is not None:
            with _table.get_lock():
                for slot in range(SLOTS):
                    pid = _table[_FIELDS * slot]
                    if pid == 0 or not _alive(pid):
                        base = _FIELDS * slot
                        _table[base], _table[base + 1], _table[base + 2] = os.getpid(), 0, _now_ms()
                        self._slot = slot
                        break
        super().init_process()

    def _publish(self) -> None:
        if self._slot >= 0:
            _table[_FIELDS * self._slot + 1] = self.nr_conns
            _table[_FIELDS * self._slot + 2] = _now_ms()

    def _fair(self) -> bool:
        """True when no other live, reporting worker holds fewer connections than this one."""
        if self._slot < 0:
            return True
        mine = self.nr_conns
        fresh = _now_ms() - int(STALE_SECONDS * 1000)
        for slot in range(SLOTS):
            if slot == self._slot:
                continue
            base = _FIELDS * slot
            pid = _table[base]
            if pid and _table[base + 1] < mine and _table[base + 2] >= fresh:
                if _alive(pid):
                    return False
                forget(pid)  # a worker that died without the master noticing yet
        return True

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self._fair())

    def accept(self, listener: Any) -> None:
        super().accept(listener)
        self._publish()
        if self._accepting and not self._fair():
            super().set_accept_enabled(False)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        self._publish()
        could_accept = self.alive and self.nr_conns < self.worker_connections
        if could_accept and not self._accepting:
            super().set_accept_enabled(self._fair())
            if not self._accepting:
                timeout = min(timeout, self.RECHECK_SECONDS)  # look again soon
        super().wait_for_and_dispatch_events(timeout)
        self._publish()

    def run(self) -> None:
        try:
            super().run()
        finally:
            if self._slot >= 0:
                forget(os.getpid())
