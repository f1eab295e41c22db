"""One request at a time runs Python in a worker; the others wait their turn, first come first served.

Why: a gunicorn gthread worker runs several requests in threads, but a hook call is CPU work
under the GIL, so threads only interleave it. Worse, every time a running call lets go of the
GIL for a moment (a socket write, a SQLite commit, a log line) it must win it back from a
thread that is in the middle of its own CPU work, and may wait a whole switch interval (5 ms)
for each such step: calls that need 10 ms of CPU took 50 ms and more at the tail (the "GIL
convoy"). Threads are still worth having for the one thing that waits: the FHIR fallback's
network requests. So a worker's request threads take turns (a FIFO lock held for the whole
call), and a call gives its turn up while it waits for a FHIR server (:meth:`CpuTurns.waiting`)
and queues again afterwards. Installed by ``cds-service serve`` when a worker has more than one
thread; elsewhere (tests, tools) nobody holds a turn and ``waiting()`` does nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterator


class CpuTurns:
    """A first-come-first-served lock that knows which thread holds it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._queue: deque[threading.Event] = deque()
        self._holder: int | None = None

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._guard:
            if self._holder is None:
                self._holder = me
                return
            turn = threading.Event()
            self._queue.append(turn)
        turn.wait()  # the releasing thread hands the turn over directly (no barging)
        self._holder = me

    def release(self) -> None:
        with self._guard:
            if self._queue:
                self._holder = -1  # handed over: taken by the woken thread
                self._queue.popleft().set()
            else:
                self._holder = None

    def held_here(self) -> bool:
        return self._holder == threading.get_ident()

    @contextmanager
    def turn(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Give the turn up while this thread waits on the network (a no-op if it holds none)."""
        if not self.held_here():
            yield
            return
        self.release()
        try:
            yield
        finally:
            self.acquire()


#: The process's turns (each gunicorn worker is its own process).
TURNS = CpuTurns()


def taking_turns(wsgi_app: Callable[..., Any], turns: CpuTurns = TURNS) -> Callable[..., Any]:
    """WSGI middleware: the application runs while holding a turn. The response body is built by
    then (Flask returns it whole), so writing it to the socket happens outside the turn."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with turns.turn():
            return wsgi_app(environ, start_response)

    return app
