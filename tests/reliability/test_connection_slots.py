"""The pure parts of the connection budget: slots per address (``service/connection_slots.py``)
and the fit under ``RLIMIT_NOFILE`` (``service/fd_budget.py``), with a fake limit."""

from __future__ import annotations

import resource

import pytest

from service.connection_slots import ConnectionSlots, Slot
from service.fd_budget import DescriptorBudget, DescriptorBudgetError, fit_descriptor_limit


def test_one_address_holds_at_most_its_share_and_the_total_caps_everyone() -> None:
    slots = ConnectionSlots(max_total=4, max_per_address=2)
    mine = [slots.acquire("10.0.0.1") for _ in range(3)]
    assert mine[2] == "address"
    theirs = [slots.acquire("10.0.0.2"), slots.acquire("10.0.0.3")]
    assert all(isinstance(slot, Slot) for slot in theirs)
    assert slots.acquire("10.0.0.4") == "total"
    assert (slots.total, slots.held_by("10.0.0.1")) == (4, 2)
    first = mine[0]
    assert isinstance(first, Slot)
    first.release()
    first.release()  # idempotent: a socket closed twice frees one slot
    assert (slots.total, slots.held_by("10.0.0.1")) == (3, 1)
    assert isinstance(slots.acquire("10.0.0.4"), Slot)


def test_addresses_seen_once_are_forgotten() -> None:
    slots = ConnectionSlots(max_total=10, max_per_address=10)
    for index in range(100):
        slot = slots.acquire(f"10.0.1.{index}")
        assert isinstance(slot, Slot)
        slot.release()
    assert slots.total == 0
    assert not slots._by_address  # bounded by the open connections, not by history


def test_a_share_above_the_total_is_the_total() -> None:
    assert ConnectionSlots(max_total=3, max_per_address=50).max_per_address == 3


BUDGET = DescriptorBudget(max_connections=300, max_websockets=150, listeners=2,
                          api_connections=12)


class FakeLimit:
    def __init__(self, soft: int, hard: int) -> None:
        self.limit = (soft, hard)

    def get(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.limit

    def set(self, which: int, limit: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        self.limit = limit


@pytest.mark.parametrize(("soft", "hard", "expected"), [
    (BUDGET.needed, BUDGET.needed, BUDGET.needed),  # fits exactly
    (1024, 1024, 1024),
    (resource.RLIM_INFINITY, resource.RLIM_INFINITY, resource.RLIM_INFINITY),
    (200, 4096, BUDGET.needed),  # raised to the need, no further
    (200, resource.RLIM_INFINITY, BUDGET.needed),
])
def test_a_budget_that_fits(soft: int, hard: int, expected: int) -> None:
    limit = FakeLimit(soft, hard)
    assert fit_descriptor_limit(BUDGET, getrlimit=limit.get, setrlimit=limit.set) == expected
    assert limit.limit == (expected, hard)


def test_a_budget_over_the_hard_limit_names_the_numbers_to_change() -> None:
    limit = FakeLimit(200, 300)
    with pytest.raises(DescriptorBudgetError) as raised:
        fit_descriptor_limit(BUDGET, getrlimit=limit.get, setrlimit=limit.set)
    assert limit.limit == (200, 300)
    message = str(raised.value)
    assert message.startswith(f"--max-connections 300 needs {BUDGET.needed} file descriptors")
    assert f"lower --max-connections to at most {300 - BUDGET.reserved}" in message
    assert f"raise the limit to at least {BUDGET.needed}" in message
    assert "--max-websockets 150" in message


def test_when_only_the_limit_can_help_the_sentence_says_so() -> None:
    limit = FakeLimit(40, 40)
    with pytest.raises(DescriptorBudgetError, match="lowering --max-connections cannot make it "
                       "fit, or raise the limit"):
        fit_descriptor_limit(BUDGET, getrlimit=limit.get, setrlimit=limit.set)
