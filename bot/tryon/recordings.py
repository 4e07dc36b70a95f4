"""Recording links after a stream ends: polling until ready, and platform usage errors in plain words."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.deadline import wait_within
from bot.odyssey import (
    AccountSuspendedError,
    ConcurrentLimitReachedError,
    MonthlyLimitReachedError,
    Odyssey,
    OdysseyAuthError,
    OdysseyError,
    OdysseyStreamError,
    OdysseyUsageError,
    RateLimitError,
    Recording,
    StreamDurationExceededError,
)
from bot.tryon.presenter import RecordingLinks
from bot.tryon.settings import EngineSettings

log = logging.getLogger(__name__)


def links_from(recording: Recording) -> RecordingLinks:
    """The presenter's view of a platform recording."""
    return RecordingLinks(
        stream_id=recording.stream_id,
        video_url=recording.video_url,
        preview_url=recording.preview_url,
        thumbnail_url=recording.thumbnail_url,
        events_url=recording.events_url,
        duration_seconds=recording.duration_seconds,
    )


async def fetch_recording_links(
    client: Odyssey,
    stream_id: str,
    settings: EngineSettings,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RecordingLinks | None:
    """Poll `GET /recordings/{id}` with backoff until the video link is there; None if it never comes.

    A recording that exists but is still incomplete at the time limit is returned as it is.
    """
    deadline = clock() + settings.recording_poll_limit_seconds
    delay = settings.recording_poll_first_seconds
    latest: Recording | None = None
    while True:
        try:
            latest = await wait_within(client.get_recording(stream_id), settings.end_timeout_seconds)
        except OdysseyAuthError:
            log.exception("recording %s: not authorised", stream_id)
            return None
        except (OdysseyError, TimeoutError) as exc:
            log.debug("recording %s not ready: %r", stream_id, exc)
        if latest is not None and latest.video_url:
            return links_from(latest)
        if clock() + delay > deadline:
            break
        await sleep(delay)
        delay = min(delay * settings.recording_poll_factor, settings.recording_poll_max_seconds)
    log.warning("recording %s was not ready within %.0f s", stream_id, settings.recording_poll_limit_seconds)
    return links_from(latest) if latest is not None else None


async def collect_recording_links(
    client: Odyssey, stream_ids: list[str], settings: EngineSettings
) -> list[RecordingLinks]:
    """Poll every stream's recording at once (each within the settings' time limit); the ones that came."""
    results = await asyncio.gather(
        *(fetch_recording_links(client, stream_id, settings) for stream_id in stream_ids)
    )
    return [links for links in results if links is not None]


def start_failure_message(error: BaseException) -> str:
    """Why the platform could not start a try-on, for members: their photo, or try again later."""
    if isinstance(error, OdysseyStreamError) and error.reason == "invalid_image":
        return "The video platform could not use your photo. Please try a different photo."
    return "The video platform could not start your try-on right now. Please try again in a minute."


def usage_error_message(error: OdysseyUsageError) -> str:
    """A platform 429/usage error as a sentence for members (the bot's account, not theirs, hit the limit)."""
    if isinstance(error, MonthlyLimitReachedError):
        when = f" It resets on {error.reset_date}." if error.reset_date else ""
        return f"The bot has used all of its video time for this month.{when} Please try again then."
    if isinstance(error, ConcurrentLimitReachedError):
        return "The bot is running as many try-ons as its plan allows. Please try again in a few minutes."
    if isinstance(error, StreamDurationExceededError):
        # Only a start can meet it (a refused roll-over has its own message): say what to do.
        return "The video platform reached its time limit for one stream. Please try again in a minute."
    if isinstance(error, AccountSuspendedError):
        return "The bot's video account is suspended, so try-ons are unavailable. Please tell a moderator."
    if isinstance(error, RateLimitError):
        after = error.retry_after_seconds
        seconds = max(1, round(after)) if isinstance(after, int | float) else None
        wait = "a moment" if seconds is None else f"about {seconds} second{'s' if seconds != 1 else ''}"
        return f"The video platform asked us to slow down. Please try again in {wait}."
    return "The video platform refused to start a try-on right now. Please try again later."
