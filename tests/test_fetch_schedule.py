"""The cool-down rule on its own (compass_auth/keys/schedule.py): pure, a table of moments.

The key cache records its fetches in the schedule and the memory of unknown kids asks it what to
do (tests/test_keys.py runs them together); here the rule alone, with the moments written out.
"""

from __future__ import annotations

import pytest

from compass_auth.keys.schedule import FetchSchedule, Plan

COOL_DOWN = 10.0


def schedule(*, attempt: float | None = None, started: float | None = None,
             fetched_from: float | None = None, hold: float | None = None) -> FetchSchedule:
    result = FetchSchedule(COOL_DOWN)
    result.last_attempt, result.started = attempt, started
    result.fetched_from, result.not_before = fetched_from, hold
    return result


CASES: list[tuple[str, FetchSchedule, float, float, Plan]] = [
    # name, schedule, first asked, now, plan
    ("never fetched", schedule(), 100.0, 100.0, "fetch"),
    ("the cool-down has passed", schedule(attempt=80.0, fetched_from=80.0), 100.0, 100.0,
     "fetch"),
    ("within the cool-down", schedule(attempt=95.0, fetched_from=95.0), 100.0, 100.0, "later"),
    ("a fetch that started after the first ask came back", schedule(
        attempt=101.0, fetched_from=101.0), 100.0, 102.0, "answered"),
    ("asked again within the cool-down, after a fetch that missed it", schedule(
        attempt=101.0, fetched_from=101.0), 100.0, 103.0, "answered"),
    ("a fetch under way started after the ask", schedule(
        attempt=101.0, started=101.0, fetched_from=80.0), 100.0, 101.5, "join"),
    ("a fetch under way started before the ask", schedule(
        attempt=99.0, started=99.0, fetched_from=80.0), 100.0, 100.0, "join_then_check"),
    ("a Retry-After hold outlasts the cool-down", schedule(
        attempt=80.0, fetched_from=70.0, hold=120.0), 100.0, 100.0, "later"),
    ("the hold has passed", schedule(attempt=80.0, fetched_from=70.0, hold=95.0), 100.0, 100.0,
     "fetch"),
]


@pytest.mark.parametrize(("name", "plan_of", "first_asked", "now", "expected"), CASES,
                         ids=[case[0] for case in CASES])
def test_plan(name: str, plan_of: FetchSchedule, first_asked: float, now: float,
              expected: Plan) -> None:
    assert plan_of.plan(first_asked, now) == expected, name


def test_fetches_recorded_move_the_cool_down_and_clear_the_hold() -> None:
    rule = FetchSchedule(COOL_DOWN)
    assert rule.next_allowed() == float("-inf")
    rule.begin(100.0)
    assert (rule.started, rule.next_allowed()) == (100.0, 110.0)
    rule.ended()
    rule.failed(100.5, retry_after=30.0)  # the server asked to wait
    assert (rule.started, rule.next_allowed()) == (None, 130.5)
    assert rule.seconds_until_retry(101.0, retry_interval=60.0) == pytest.approx(59.5)
    assert rule.seconds_until_retry(101.0, retry_interval=5.0) == pytest.approx(29.5)
    rule.begin(131.0)
    rule.ended()
    rule.succeeded(131.0)
    assert (rule.fetched_from, rule.not_before, rule.next_allowed()) == (131.0, None, 141.0)
    assert rule.unanswered(130.0) is False  # asked before that fetch started
    assert rule.unanswered(132.0) is True
    assert rule.unanswered(None) is False
