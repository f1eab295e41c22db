"""cds_service/turns.py: a worker's request threads run one at a time, in arrival order, and a
call waiting on a FHIR server lets the others run meanwhile."""

from __future__ import annotations

import threading
import time
from typing import Any

from cds_service.turns import CpuTurns, taking_turns


def test_turns_are_taken_one_at_a_time_in_arrival_order() -> None:
    turns = CpuTurns()
    order: list[int] = []
    inside = [0]
    most = [0]
    turns.acquire()  # held while the others queue up, in a known order

    def call(number: int) -> None:
        with turns.turn():
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            order.append(number)
            time.sleep(0.002)
            inside[0] -= 1

    threads = []
    for number in range(8):
        thread = threading.Thread(target=call, args=(number,))
        thread.start()
        threads.append(thread)
        while len(turns._queue) < number + 1:  # wait until this one is queued
            time.sleep(0.001)
    turns.release()
    for thread in threads:
        thread.join(5)
    assert order == list(range(8)) and most[0] == 1


def test_waiting_gives_the_turn_up_and_queues_again() -> None:
    turns = CpuTurns()
    events: list[str] = []
    waiting_started = threading.Event()

    def slow_fhir_call() -> None:
        with turns.turn():
            events.append("slow starts")
            with turns.waiting():  # e.g. the FHIR server takes its time
                waiting_started.set()
                time.sleep(0.05)
            assert turns.held_here()
            events.append("slow ends")

    def quick_call() -> None:
        waiting_started.wait(5)
        with turns.turn():
            events.append("quick runs")

    threads = [threading.Thread(target=slow_fhir_call), threading.Thread(target=quick_call)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert events == ["slow starts", "quick runs", "slow ends"]


def test_waiting_outside_a_turn_does_nothing_and_the_middleware_releases_on_errors() -> None:
    turns = CpuTurns()
    with turns.waiting():
        assert not turns.held_here()

    def failing_app(environ: dict[str, Any], start_response: Any) -> Any:
        assert turns.held_here()
        raise RuntimeError("boom")

    app = taking_turns(failing_app, turns)
    for _ in range(2):  # the second call would block forever if the first kept its turn
        try:
            app({}, lambda *args: None)
        except RuntimeError:
            pass
    assert turns._holder is None
