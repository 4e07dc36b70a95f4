"""Recording polling after a session: backoff, the time limit, incomplete and unauthorised recordings."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from bot.odyssey import Odyssey, OdysseyAuthError, OdysseyError, Recording
from bot.tryon.recordings import fetch_recording_links
from bot.tryon.settings import EngineSettings

SETTINGS = EngineSettings(
    recording_poll_first_seconds=0.5,
    recording_poll_factor=2.0,
    recording_poll_max_seconds=3.0,
    recording_poll_limit_seconds=20.0,
    end_timeout_seconds=0.2,
)


class FakeTime:
    """A clock that only moves when the poller sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Platform:
    """Answers `get_recording` from a script: an exception to raise or a Recording to return per call."""

    def __init__(self, *answers: Recording | Exception | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def get_recording(self, stream_id: str) -> Recording:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if answer is None:
            await asyncio.sleep(10)  # hangs: the poller's own timeout must end the call
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, Recording)
        return answer


def client(platform: Platform) -> Odyssey:
    return cast(Odyssey, platform)


async def poll(platform: Platform, time: FakeTime, **overrides: Any) -> Any:
    settings = SETTINGS if not overrides else EngineSettings(**{**SETTINGS.__dict__, **overrides})
    return await fetch_recording_links(client(platform), "s1", settings, sleep=time.sleep, clock=time.clock)


async def test_polls_with_growing_delays_until_the_video_is_ready() -> None:
    not_yet = OdysseyError("404 Recording not found")
    incomplete = Recording("s1", video_url=None, thumbnail_url="t")
    ready = Recording("s1", video_url="v", thumbnail_url="t", duration_seconds=3.0)
    platform, time = Platform(not_yet, None, incomplete, ready), FakeTime()
    links = await poll(platform, time)
    assert links is not None and links.video_url == "v" and links.duration_seconds == 3.0
    assert time.sleeps == [0.5, 1.0, 2.0]  # a hung call (None) is one attempt, ended by its timeout
    assert platform.calls == 4


async def test_stops_at_the_time_limit_with_delays_capped() -> None:
    platform, time = Platform(OdysseyError("404")), FakeTime()
    assert await poll(platform, time) is None
    assert time.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert sum(time.sleeps) <= SETTINGS.recording_poll_limit_seconds


async def test_an_incomplete_recording_at_the_limit_is_returned_as_it_is() -> None:
    platform, time = Platform(Recording("s1", video_url=None, thumbnail_url="t")), FakeTime()
    links = await poll(platform, time, recording_poll_limit_seconds=2.0)
    assert links is not None and links.video_url is None and links.thumbnail_url == "t"
    assert sum(time.sleeps) <= 2.0


async def test_an_unauthorised_key_stops_at_once() -> None:
    platform, time = Platform(OdysseyAuthError("401")), FakeTime()
    assert await poll(platform, time) is None
    assert platform.calls == 1 and time.sleeps == []


@pytest.mark.parametrize("limit", [0.0, 0.4])
async def test_a_limit_shorter_than_the_first_delay_asks_once(limit: float) -> None:
    platform, time = Platform(OdysseyError("404")), FakeTime()
    assert await poll(platform, time, recording_poll_limit_seconds=limit) is None
    assert platform.calls == 1
