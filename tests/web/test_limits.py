"""The client-error log budget (surveil.web.limits.ClientErrorLog): a flood of bad requests costs at
most a fixed number of log lines per window, and what it drops is counted in one line."""

from __future__ import annotations

import logging

import pytest

from surveil.web.limits import ClientErrorLog

LOGGER = "surveil.test.client_log"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("calls", "logged", "said_dropped"),
    [
        ([(0.0, 3)], 3, []),  # under the budget: every line
        ([(0.0, 5)], 5, []),  # exactly the budget
        ([(0.0, 12)], 5, []),  # over it: 5 lines, 7 counted but not yet said (the window is open)
        ([(0.0, 12), (60.0, 1)], 6, [7]),  # the next window says what the first dropped, then logs again
        ([(0.0, 12), (30.0, 4), (61.0, 2)], 7, [11]),  # drops in one window add up
        ([(0.0, 5), (60.0, 5), (120.0, 5)], 15, []),  # a steady rate at the budget loses nothing
    ],
    ids=["under", "at", "over", "next-window", "adds-up", "steady"],
)
def test_a_flood_costs_a_bounded_number_of_lines(caplog, calls, logged, said_dropped):
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock()
    client_log = ClientErrorLog(logging.getLogger(LOGGER), lines=5, window_s=60.0, clock=clock)
    for at, count in calls:
        clock.now = at
        for i in range(count):
            client_log.info("web 10.0.0.%d: junk", i)
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(infos) == logged
    assert warnings == [f"web: {n} more client error(s) not logged (at most 5 lines per 60 s)" for n in said_dropped]


def test_flush_says_what_the_open_window_dropped_once(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    client_log = ClientErrorLog(logging.getLogger(LOGGER), lines=2, window_s=60.0, clock=Clock())
    for _ in range(10):
        client_log.info("web 10.0.0.1: junk")
    client_log.flush()
    client_log.flush()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["web: 8 more client error(s) not logged (at most 2 lines per 60 s)"]
