"""The pure pieces of the log budget: ``LogBudget`` (a token bucket per reason, with a fake
clock) and ``logtext`` (texts for plain logging, values cut to size)."""

from __future__ import annotations

import pytest

from compass_auth.logs.budget import OVERFLOW_KEY, LogBudget
from compass_auth.logs.text import LogText, clip, render


def test_a_burst_then_one_line_per_interval_carrying_the_count() -> None:
    now = [0.0]
    budget = LogBudget(burst=3, interval=10.0, clock=lambda: now[0])
    answers = [budget.admit("malformed") for _ in range(1000)]
    assert answers[:3] == [0, 0, 0]
    assert set(answers[3:]) == {None}
    now[0] = 10.0
    assert budget.admit("malformed") == 997  # the next line says how many were left out
    assert budget.admit("malformed") is None
    now[0] = 15.0
    assert budget.admit("malformed") is None
    now[0] = 20.0
    assert budget.admit("malformed") == 2
    # Another reason has a bucket of its own.
    assert budget.admit("expired") == 0


def test_quiet_refills_up_to_the_burst_and_pending_counts_are_taken_once() -> None:
    now = [0.0]
    budget = LogBudget(burst=2, interval=1.0, clock=lambda: now[0])
    assert [budget.admit("a") for _ in range(4)] == [0, 0, None, None]
    assert budget.take_suppressed() == {"a": 2}
    assert budget.take_suppressed() == {}
    now[0] = 100.0
    assert [budget.admit("a") for _ in range(3)] == [0, 0, None]


def test_keys_are_bounded() -> None:
    budget = LogBudget(burst=1, interval=10.0, clock=lambda: 0.0, max_keys=2)
    assert [budget.admit(key) for key in ("a", "b", "c", "d")] == [0, 0, 0, None]
    assert budget.take_suppressed() == {OVERFLOW_KEY: 1}


def test_clip_escapes_and_cuts() -> None:
    assert clip("plain") == "plain"
    assert clip("a\x01b\n") == "a\\x01b\\n"
    assert clip("\x85" * 500, 20) == "\\x85" * 5 + "...[cut from 500 chars]"
    assert clip("y" * 300, 200) == "y" * 200 + "...[cut from 300 chars]"
    assert len(clip("x" * 10_000)) < 230


def test_render_and_the_stable_message() -> None:
    text = render("cannot connect", {"host": "h", "error": "refused"}, fix="check h")
    assert text == "cannot connect: host=h, error=refused; fix: check h"
    assert text.message == "cannot connect"
    assert render("key set loaded", {}) == "key set loaded"
    with pytest.raises(ValueError, match="does not start with"):
        LogText("other text", "cannot connect")
