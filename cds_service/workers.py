"""gunicorn's threaded worker, taking its fair share of connections.

Why: gunicorn's workers all wait on the one listening socket, and whichever wakes first accepts
every connection that is waiting. An EHR (and the benchmark) opens its keep-alive connections in
a burst, and measured splits of 16 connections over two workers were 15 + 1, 13 + 3, even 16 + 0:
one worker did nearly all the work while the other idled, so throughput halved and the calls on
the crowded worker waited several times longer than the others (p99 8-15x p50).

Here each worker publishes how many connections it holds in a small table shared by the master
and its workers, and accepts a new one only while it holds no more than any other live worker;
otherwise it stops listening and looks again every few milliseconds, leaving the connection to
a worker with fewer. With equal counts both may accept, so the split is even within one.
Nothing else of gunicorn's worker changes.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: At most this many workers share the table (CDS_WORKERS is at most 64).
SLOTS = 64
_table: Any = None  # (pid, connections) pairs; created in the master before it forks


def create_table() -> None:
    """Called once in the master (``cds-service serve``) before the workers fork."""
    global _table
    if _table is None:
        _table = multiprocessing.Array("q", 2 * SLOTS)


def forget(pid: int) -> None:
    """The master calls this when a worker exits, whatever killed it."""
    if _table is None:
        return
    with _table.get_lock():
        for slot in range(SLOTS):
            if _table[2 * slot] == pid:
                _table[2 * slot] = 0
                _table[2 * slot + 1] = 0


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
                    pid = _table[2 * slot]
                    if pid == 0 or not _alive(pid):
                        _table[2 * slot], _table[2 * slot + 1] = os.getpid(), 0
                        self._slot = slot
                        break
        super().init_process()

    def _publish(self) -> None:
        if self._slot >= 0:
            _table[2 * self._slot + 1] = self.nr_conns

    def _fair(self) -> bool:
        """True when no other live worker holds fewer connections than this one."""
        if self._slot < 0:
            return True
        mine = self.nr_conns
        for slot in range(SLOTS):
            if slot == self._slot:
                continue
            pid = _table[2 * slot]
            if pid and _table[2 * slot + 1] < mine:
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
