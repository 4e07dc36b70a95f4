"""Small helpers shared by the tests: bot configurations, `/tryon` on the fake Discord, waits."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from bot.config import BotConfig, DiscordSettings, OdysseySettings, StoreSettings
from bot.emulator import DEV_API_KEY
from bot.odyssey import Odyssey
from bot.store import Store
from bot.store.records import SessionRecord
from bot.tryon.settings import EngineSettings
from tests.fakediscord import BotDriver, Delivered, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
from tests.web.sse import events

ROOT = Path(__file__).resolve().parents[1]
PHOTO = (ROOT / "examples" / "astronaut.jpg").read_bytes()
WATCH_LINK = re.compile(r"\[Open the live view\]\((?P<url>http://127\.0\.0\.1:\d+/watch/[A-Za-z0-9_-]+)\)")


def fast_engine(**overrides: Any) -> EngineSettings:
    """Engine settings small and quick enough for tests (short snippets, fast heartbeats and polls)."""
    values: dict[str, Any] = {
        "slots": 2,
        "idle_seconds": 60.0,
        "snippet_seconds": 1.0,
        "snippet_fps": 4,
        "snippet_width": 96,
        "buffer_seconds": 3.0,
        "heartbeat_seconds": 0.3,
        "connect_timeout_seconds": 20.0,
        "recording_poll_first_seconds": 0.1,
        "recording_poll_limit_seconds": 10.0,
        "min_start_seconds": 1.0,
    }
    values.update(overrides)
    return EngineSettings(**values)


def mp4_video(data: bytes) -> tuple[str, int, int, int]:
    """An MP4's video: codec name, width, height and the number of frames it decodes to."""
    with av.open(io.BytesIO(data), "r") as container:
        video = container.streams.video[0]
        frames = len(list(container.decode(video)))
        return video.codec_context.name, video.width, video.height, frames


def bearer(token: str) -> dict[str, str]:
    """The HTTP headers that present `token` as a bearer token (the emulator's REST API)."""
    return {"Authorization": f"Bearer {token}"}


def user_id(ctx: p.InteractionContext) -> int:
    """The user id of the member behind an interaction context."""
    assert ctx.member is not None
    return int(ctx.member["user"]["id"])


def photo_option(fake: FakeDiscord, data: bytes = PHOTO, content_type: str = "image/jpeg") -> p.Resolved:
    """A `photo:` option whose attachment the fake Discord serves from its CDN."""
    return p.opt_attachment(fake.add_attachment("me.jpg", data, content_type, width=512, height=512))


def status_message(fake: FakeDiscord, token: str) -> FakeMessage | None:
    """The session's status message (the "Try-on" embed) among an interaction's messages, if posted."""
    return next(
        (m for m in fake.messages_for(token) if m.embeds and m.embeds[0].get("title") == "Try-on"), None
    )


def session_id_of(status: FakeMessage) -> str:
    """The session id a status message shows in its footer."""
    return str(status.embeds[0]["footer"]["text"]).removeprefix("session ")


async def wait_status(fake: FakeDiscord, token: str, *words: str, within: float = 40.0) -> FakeMessage:
    """The session's status message once it shows any of `words`."""
    found: FakeMessage = await fake.wait_for(
        lambda: (m := status_message(fake, token)) is not None and any(w in m.text for w in words) and m,
        within,
    )
    return found


async def start_streaming(
    driver: BotDriver, member: p.InteractionContext, outfit: str, *, within: float = 40.0, **options: Any
) -> tuple[Delivered, FakeMessage]:
    """`/tryon start` with the example photo, once it streams: the interaction and its status message."""
    start = driver.command(member, "tryon start", photo=photo_option(driver.fake), outfit=outfit, **options)
    status = await wait_status(driver.fake, start.token, "Streaming live", within=within)
    return start, status


def watch_link(status: FakeMessage) -> str | None:
    """The Watch live link a status message shows, if any."""
    match = WATCH_LINK.search(status.text)
    return match["url"] if match else None


async def joined_as_spectator(http: httpx.AsyncClient, link: str) -> None:
    """What the viewer page does, in Python: read the link's state, then watch that part over WHEP."""
    state: dict[str, Any] = {}
    async with http.stream("GET", f"{link}/events") as page:
        async with asyncio.timeout(20):
            async for event in events(page):
                if event.name == "state" and event.data["webrtc_url"]:
                    state = event.data
                    break
    async with await Odyssey.connect_to_stream(state["webrtc_url"], state["spectator_token"]) as spectator:
        await asyncio.wait_for(spectator.frames.get(), 10)


def make_bot_config(tmp_path: Path, emulator_url: str | None = None, **overrides: Any) -> BotConfig:
    """A test BotConfig: database under tmp_path, on the emulator at `emulator_url` with `fast_engine()`."""
    # Without an emulator Odyssey points at nothing and the engine keeps its defaults; `overrides` replace
    # whole sections (discord=, odyssey=, store=, engine=...).
    values: dict[str, Any] = {
        "discord": DiscordSettings(token="fake", status_edit_seconds=0.2),
        "odyssey": OdysseySettings(api_key="unused-in-this-test", api_url="http://127.0.0.1:9"),
        "store": StoreSettings(database=tmp_path / "tryon.db"),
    }
    if emulator_url is not None:
        values["odyssey"] = OdysseySettings(api_key=DEV_API_KEY, api_url=emulator_url)
        values["engine"] = fast_engine()
    values.update(overrides)
    return BotConfig(**values)


async def stored_session(
    store: Store,
    guild_id: int,
    user_id: int,
    *,
    channel_id: int | None = None,
    front_end: dict[str, Any] | None = None,
    state: str | None = None,
) -> SessionRecord:
    """A session row as the engine would have left it (optionally moved on to `state`)."""
    record = await store.sessions.create(
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=user_id,
        photo_sha256="0" * 64,
        orientation="portrait",
        front_end=front_end,
    )
    if state is not None:
        await store.sessions.set_state(record.id, state)
    return record


async def until(
    predicate: Callable[[], object],
    within: float = 30.0,
    *,
    every: float = 0.02,
    left: Callable[[], str] | None = None,
) -> None:
    """Poll `predicate` (state that announces nothing, as the engine's) until it holds, for `within` s."""
    # Times out with TimeoutError, or given `left`, fails the test saying what `left()` describes.
    try:
        async with asyncio.timeout(within):
            while not predicate():  # noqa: ASYNC110 (no event to wait on: a short poll is the honest way)
                await asyncio.sleep(every)
    except TimeoutError:
        if left is None:
            raise
        pytest.fail(f"still there after {within} s: {left()}")


def write_run_config(
    path: Path, fake: FakeDiscord, emulator_url: str, database: Path, engine: EngineSettings | None = None
) -> None:
    """A config.toml for `python -m bot run` on the fake Discord and the emulator; `fast_engine()` default."""
    engine = engine or fast_engine()
    path.write_text(
        f"""
[discord]
api_base_url = "{fake.api_base}"
gateway_url = "{fake.gateway_url}"
status_edit_seconds = 0.2

[odyssey]
api_url = "{emulator_url}"

[store]
database = "{database}"

[engine]
slots = {engine.slots}
snippet_seconds = {engine.snippet_seconds}
snippet_fps = {engine.snippet_fps}
snippet_width = {engine.snippet_width}
buffer_seconds = {engine.buffer_seconds}
heartbeat_seconds = {engine.heartbeat_seconds}
connect_timeout_seconds = {engine.connect_timeout_seconds}
recording_poll_first_seconds = {engine.recording_poll_first_seconds}
recording_poll_limit_seconds = {engine.recording_poll_limit_seconds}
min_start_seconds = {engine.min_start_seconds}
""",
        encoding="utf-8",
    )


async def start_bot_process(
    config: Path, *, extra_env: dict[str, str] | None = None, **streams: Any
) -> asyncio.subprocess.Process:
    """`python -m bot run --config …` as a child process, with a fake bot token and the emulator's dev key."""
    env = dict(
        os.environ, DISCORD_TOKEN="fake.process.token", ODYSSEY_API_KEY=DEV_API_KEY, **(extra_env or {})
    )
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), cwd=ROOT, env=env, **streams
    )
