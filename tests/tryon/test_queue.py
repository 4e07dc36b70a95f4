"""The fair queue: round-robin across guilds, FIFO inside a guild, caps, cancels and wait estimates."""

from __future__ import annotations

import random

import pytest

from bot.tryon.errors import QueueFull
from bot.tryon.queue import FairQueue, WaitEstimator


def drain(queue: FairQueue[str]) -> list[str]:
    keys = []
    while (entry := queue.pop()) is not None:
        keys.append(entry.key)
    return keys


def test_fifo_within_one_guild() -> None:
    queue: FairQueue[str] = FairQueue(cap_per_guild=10)
    for key in ["a1", "a2", "a3"]:
        queue.push(key, "A", key)
    assert drain(queue) == ["a1", "a2", "a3"]


def test_busy_guild_cannot_starve_others() -> None:
    queue: FairQueue[str] = FairQueue(cap_per_guild=10)
    for index in range(5):
        queue.push(f"a{index}", "A", "x")
    queue.push("b0", "B", "x")
    queue.push("c0", "C", "x")
    queue.push("b1", "B", "x")
    assert drain(queue) == ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]


def test_positions_predict_pop_order() -> None:
    queue: FairQueue[str] = FairQueue(cap_per_guild=10)
    for key, guild in [("a0", "A"), ("a1", "A"), ("a2", "A"), ("b0", "B"), ("c0", "C")]:
        queue.push(key, guild, key)
    assert queue.positions() == {"a0": 1, "b0": 2, "c0": 3, "a1": 4, "a2": 5}
    queue.pop()
    # A was just served, so it moved to the back of the rotation.
    assert queue.positions() == {"b0": 1, "c0": 2, "a1": 3, "a2": 4}
    assert queue.position("a2") == 4
    assert queue.position("gone") is None


def test_guild_arriving_late_joins_the_rotation_at_the_back() -> None:
    queue: FairQueue[str] = FairQueue(cap_per_guild=10)
    queue.push("a0", "A", "x")
    queue.push("a1", "A", "x")
    assert queue.pop() is not None
    assert queue.push("b0", "B", "x") == 2
    assert drain(queue) == ["a1", "b0"]


def test_cap_is_per_guild() -> None:
    queue: FairQueue[str] = FairQueue(cap_per_guild=2)
    queue.push("a0", "A", "x")
    queue.push("a1", "A", "x")
    with pytest.raises(QueueFull):
        queue.push("a2", "A", "x")
    assert queue.push("b0", "B", "x") == 2
    assert queue.waiting_in("A") == 2
    assert len(queue) == 3


def test_duplicate_key_is_refused() -> None:
    queue: FairQueue[str] = FairQueue(cap_per_guild=2)
    queue.push("a0", "A", "x")
    with pytest.raises(ValueError):
        queue.push("a0", "B", "x")


def test_cancel_removes_and_positions_close_up() -> None:
    queue: FairQueue[str] = FairQueue(cap_per_guild=10)
    for key, guild in [("a0", "A"), ("b0", "B"), ("a1", "A")]:
        queue.push(key, guild, key.upper())
    assert queue.remove("b0") == "B0"
    assert queue.remove("b0") is None
    assert "b0" not in queue
    assert queue.positions() == {"a0": 1, "a1": 2}
    assert queue.waiting_in("B") == 0
    assert drain(queue) == ["a0", "a1"]


def test_wait_estimate_uses_recent_durations() -> None:
    estimator = WaitEstimator(slots=2, default_seconds=100.0, samples=3)
    assert estimator.wait_seconds(1) == 50.0
    for seconds in [10.0, 20.0, 30.0, 1000.0]:
        estimator.record(seconds)
    # Only the last 3 samples count; the median resists the outlier.
    assert estimator.typical_seconds == 30.0
    assert estimator.wait_seconds(4) == 60.0
    assert estimator.wait_seconds(0) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_positions_always_predict_the_pops_whatever_happens_between(seed: int) -> None:
    rng = random.Random(seed)
    queue: FairQueue[str] = FairQueue(cap_per_guild=4)
    counter = 0
    for _ in range(60):
        action = rng.random()
        if action < 0.5:
            guild = rng.choice("ABCD")
            if queue.waiting_in(guild) < 4:
                counter += 1
                key = f"{guild}{counter}"
                assert queue.push(key, guild, key) == queue.position(key)
        elif action < 0.8:
            predicted = queue.positions()
            entry = queue.pop()
            if entry is not None:
                assert predicted[entry.key] == 1
                # Everyone else moves up by exactly one place.
                assert queue.positions() == {k: p - 1 for k, p in predicted.items() if k != entry.key}
        elif len(queue):
            predicted = queue.positions()
            gone = rng.choice(sorted(predicted))
            assert queue.remove(gone) == gone
            # A cancel may pull later members of the same guild forward a round; nobody loses place.
            after = queue.positions()
            assert gone not in after and all(after[k] <= predicted[k] for k in after)
    predicted = queue.positions()
    assert drain(queue) == sorted(predicted, key=predicted.__getitem__)
