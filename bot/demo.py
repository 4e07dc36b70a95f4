"""`python -m bot demo`: try outfits on a photo through the Odyssey client, saving frames and the recording.

Without ODYSSEY_API_KEY it runs against the embedded emulator on 127.0.0.1; with it, against Odyssey.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from PIL import Image, UnidentifiedImageError

from bot.odyssey import Odyssey, OdysseyError, StreamFrame

if TYPE_CHECKING:
    from bot.emulator import EmulatorConfig

SAMPLE_PHOTO = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
DEFAULT_OUTFITS = ("a red wool coat", "a blue denim jacket")
SECONDS_PER_OUTFIT = 2.0
DOWNLOAD_TIMEOUT = 60.0


def main(args: argparse.Namespace) -> int:
    """Run the demo; returns the process exit code (1 with one error line on failure)."""
    photo = Path(args.photo) if args.photo else SAMPLE_PHOTO
    outfits = list(args.outfit or DEFAULT_OUTFITS)
    problem = photo_problem(photo)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        asyncio.run(run_demo(photo, outfits, Path(args.out), portrait=not args.landscape))
    except OdysseyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def photo_problem(photo: Path) -> str | None:
    """Why the photo can't be used, or None when Pillow can read it."""
    try:
        with Image.open(photo) as image:
            image.verify()
    except FileNotFoundError:
        return f"photo not found: {photo}"
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        return f"{photo} is not a readable image ({type(exc).__name__})"
    return None


@contextlib.asynccontextmanager
async def odyssey_backend(
    emulator_config: EmulatorConfig | None = None,
) -> AsyncIterator[tuple[str, str | None]]:
    """(api_key, api_url): the real platform when ODYSSEY_API_KEY is set, else an embedded emulator."""
    api_key = os.environ.get("ODYSSEY_API_KEY")
    if api_key:
        yield api_key, None
        return
    from bot.emulator import DEV_API_KEY, Emulator, EmulatorConfig

    async with Emulator(emulator_config or EmulatorConfig(host="127.0.0.1", fps=12)) as emulator:
        print(f"using the embedded emulator at {emulator.url} (set ODYSSEY_API_KEY to use Odyssey)")
        yield DEV_API_KEY, emulator.url


async def run_demo(
    photo: Path,
    outfits: list[str],
    out: Path,
    *,
    portrait: bool,
    emulator_config: EmulatorConfig | None = None,
) -> None:
    """Connect, stream the outfits one after another, save frames, end, download the recording."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    started = time.monotonic()
    async with (
        odyssey_backend(emulator_config) as (api_key, api_url),
        Odyssey(api_key=api_key, api_url=api_url) as client,
    ):
        await client.connect(on_queue=lambda waited: print(f"waiting for a streamer ({waited:.0f}s)"))
        print(f"connected (session {client.current_session_id})")
        stream_id = await client.start_stream(outfits[0], portrait=portrait, image=photo)
        saved: list[Path] = []
        for index, outfit in enumerate(outfits):
            applied = outfit if index == 0 else await client.interact(outfit)
            frame = await newest_frame(client, stream_id, SECONDS_PER_OUTFIT)
            path = out / f"frame_{index + 1}.png"
            await asyncio.to_thread(save_png, frame, path)
            saved.append(path)
            print(f"outfit {index + 1}: {applied!r} -> {path}")
        dropped = client.frames.dropped
        await client.end_stream()
        await client.disconnect()
        video, thumbnail = await download_recording(client, stream_id, out)
    print(
        f"done in {time.monotonic() - started:.1f}s: {len(saved)} frames, recording {video}, "
        f"thumbnail {thumbnail} (frames dropped by the bounded queue: {dropped})"
    )


async def newest_frame(client: Odyssey, stream_id: str, seconds: float) -> StreamFrame:
    """Read frames for `seconds` and return the newest one of this stream."""
    newest: StreamFrame | None = None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for frame in client.frames:
                if frame.stream_id == stream_id:
                    newest = frame
    if newest is None:
        raise OdysseyError(f"no video received within {seconds:g}s")
    return newest


def save_png(frame: StreamFrame, path: Path) -> None:
    """Convert one decoded frame to RGB and write it (blocking; run in a thread)."""
    Image.fromarray(frame.frame.to_ndarray(format="rgb24")).save(path, "PNG")


async def download_recording(client: Odyssey, stream_id: str, out: Path) -> tuple[Path | None, Path | None]:
    """Fetch the recording's MP4 and thumbnail into `out`."""
    recording = await client.get_recording(stream_id)
    targets = [(recording.video_url, out / "recording.mp4"), (recording.thumbnail_url, out / "thumbnail.jpg")]
    saved: list[Path | None] = []
    async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT) as http:
        for url, path in targets:
            if url is None:
                saved.append(None)
                continue
            try:
                response = await http.get(url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise OdysseyError(f"downloading {path.name} failed: {type(exc).__name__}") from exc
            await asyncio.to_thread(path.write_bytes, response.content)
            saved.append(path)
    return saved[0], saved[1]
