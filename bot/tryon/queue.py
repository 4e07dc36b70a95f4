"""A fair waiting line for try-on sessions: round-robin across guilds, first come first served inside one."""

from __future__ import annotations

import collections
import dataclasses
import statistics
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from bot.tryon.errors import QueueFull

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class QueueEntry(Generic[T]):
    """One waiting item: `key` identifies it (a session id), `guild` is the fairness group."""

    key: str
    guild: Hashable
    item: T


class FairQueue(Generic[T]):
    """Round-robin by guild, then FIFO within a guild, so one busy guild cannot starve the others.

    The guild served last moves to the back of the rotation; a guild that starts waiting joins at the back.
    Positions are 1-based and describe the exact order `pop()` will follow if nothing else arrives.
    """

    def __init__(self, cap_per_guild: int) -> None:
        if cap_per_guild < 1:
            raise ValueError("cap_per_guild must be at least 1")
        self.cap_per_guild = cap_per_guild
        # Insertion order of this dict is the rotation order of guilds.
        self._lines: dict[Hashable, collections.deque[QueueEntry[T]]] = {}
        self._guild_of: dict[str, Hashable] = {}

    def __len__(self) -> int:
        return len(self._guild_of)

    def __contains__(self, key: object) -> bool:
        return key in self._guild_of

    def push(self, key: str, guild: Hashable, item: T, *, cap: int | None = None) -> int:
        """Add `item` at the back of its guild's line and return its position; QueueFull past the cap.

        `cap` overrides `cap_per_guild` for this guild (a guild's own setting).
        """
        if key in self._guild_of:
            raise ValueError(f"{key!r} is already queued")
        line = self._lines.get(guild)
        if line is not None and len(line) >= (cap if cap is not None else self.cap_per_guild):
            raise QueueFull()
        if line is None:
            line = self._lines[guild] = collections.deque()
        line.append(QueueEntry(key, guild, item))
        self._guild_of[key] = guild
        position = self.position(key)
        assert position is not None
        return position

    def pop(self) -> QueueEntry[T] | None:
        """Take the next entry in fair order, or None when nobody waits."""
        for guild, line in self._lines.items():
            entry = line.popleft()
            del self._lines[guild]
            if line:
                self._lines[guild] = line  # re-inserted: moves the guild to the back of the rotation
            del self._guild_of[entry.key]
            return entry
        return None

    def remove(self, key: str) -> T | None:
        """Take `key` out of the line (a cancel); returns its item, or None if it was not waiting."""
        guild = self._guild_of.pop(key, None)
        if guild is None:
            return None
        line = self._lines[guild]
        for entry in line:
            if entry.key == key:
                line.remove(entry)
                break
        if not line:
            del self._lines[guild]
        return entry.item

    def ordered(self) -> Iterator[QueueEntry[T]]:
        """Every waiting entry in the order `pop()` would return them."""
        lines = [list(line) for line in self._lines.values()]
        depth = max((len(line) for line in lines), default=0)
        for round_index in range(depth):
            for line in lines:
                if round_index < len(line):
                    yield line[round_index]

    def positions(self) -> dict[str, int]:
        """1-based position of every waiting key."""
        return {entry.key: index for index, entry in enumerate(self.ordered(), start=1)}

    def position(self, key: str) -> int | None:
        """1-based position of `key`, or None when it is not waiting."""
        if key not in self._guild_of:
            return None
        return self.positions()[key]

    def waiting_in(self, guild: Hashable) -> int:
        """How many entries of `guild` are waiting."""
        line = self._lines.get(guild)
        return len(line) if line is not None else 0


class WaitEstimator:
    """Estimates the wait for a queue position from recent session durations."""

    def __init__(self, slots: int, default_seconds: float, samples: int = 20) -> None:
        self.slots = slots
        self.default_seconds = default_seconds
        self._durations: collections.deque[float] = collections.deque(maxlen=samples)

    def record(self, duration_seconds: float) -> None:
        """Remember how long a finished session held its slot."""
        if duration_seconds > 0:
            self._durations.append(duration_seconds)

    @property
    def typical_seconds(self) -> float:
        """Median of recent session durations (the default until one is known)."""
        if not self._durations:
            return self.default_seconds
        return statistics.median(self._durations)

    def wait_seconds(self, position: int) -> float:
        """Expected seconds until the entry at 1-based `position` gets a slot when every slot is busy.

        With every slot busy, slots free up about once per `typical / slots` seconds on average.
        """
        if position < 1:
            return 0.0
        return position * self.typical_seconds / self.slots
