"""Recordings written at stream end: H.264 MP4 remuxed from cached scene loops, thumbnail, preview, events."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

from bot.emulator.loops import Scene, SceneLibrary
from bot.emulator.scene import Frame

log = logging.getLogger(__name__)

VIDEO_FILE = "video.mp4"
PREVIEW_FILE = "preview.mp4"
THUMBNAIL_FILE = "thumbnail.jpg"
EVENTS_FILE = "events.jsonl"
WRITE_TIMEOUT_SECONDS = 10.0  # how long GET /recordings waits for files before answering without links


@dataclass
class Segment:
    """A scene shown from `start_seconds` (stream time) until the next segment or the stream's end."""

    start_seconds: float
    scene: Scene
    transition_from: Scene | None = None
    transition_start: int = 0


@dataclass
class Recording:
    """One stream's recording: metadata plus the folder its files are written to."""

    stream_id: str
    owner: str
    width: int
    height: int
    started_at: float
    ended_at: float
    fps: int
    frame_count: int
    directory: Path
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False

    @property
    def duration_seconds(self) -> float:
        """Length of the video in seconds."""
        return self.frame_count / self.fps

    def summary(self) -> dict[str, Any]:
        """The list item of `GET /stream-recordings`."""
        return {
            "stream_id": self.stream_id,
            "width": self.width,
            "height": self.height,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_seconds": self.duration_seconds,
        }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _read_packets(mp4: bytes) -> tuple[list[bytes], list[bool]]:
    with av.open(io.BytesIO(mp4), "r") as container:
        packets = [p for p in container.demux(video=0) if p.size]
        return [bytes(p) for p in packets], [p.is_keyframe for p in packets]


def remux_timeline(path: Path, parts: list[tuple[bytes, int]], fps: int) -> None:
    """Write an MP4 playing each (scene loop MP4, frame count) in turn, looping packets; no re-encoding."""
    with (
        av.open(io.BytesIO(parts[0][0]), "r") as template_source,
        av.open(str(path), "w", format="mp4") as out,
    ):
        stream = out.add_stream_from_template(template_source.streams.video[0])
        stream.time_base = Fraction(1, fps)
        position = 0
        for loop_mp4, frame_count in parts:
            payloads, keyframes = _read_packets(loop_mp4)
            for index in range(frame_count):
                packet = av.Packet(payloads[index % len(payloads)])
                packet.pts = packet.dts = position
                packet.duration = 1
                packet.time_base = Fraction(1, fps)
                packet.is_keyframe = keyframes[index % len(payloads)]
                packet.stream = stream
                out.mux(packet)
                position += 1


def write_files(
    directory: Path,
    parts: list[tuple[bytes, int]],
    fps: int,
    preview_frames: int,
    first_frame: Frame,
    events: list[dict[str, Any]],
) -> None:
    """Write the video, the preview, the thumbnail and the events log of one recording."""
    directory.mkdir(parents=True, exist_ok=True)
    remux_timeline(directory / VIDEO_FILE, parts, fps)
    preview: list[tuple[bytes, int]] = []
    remaining = preview_frames
    for loop_mp4, count in parts:
        if remaining <= 0:
            break
        preview.append((loop_mp4, min(count, remaining)))
        remaining -= count
    remux_timeline(directory / PREVIEW_FILE, preview, fps)
    Image.fromarray(first_frame, "RGB").save(directory / THUMBNAIL_FILE, "JPEG", quality=85)
    with (directory / EVENTS_FILE).open("w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")


class RecordingStore:
    """In-memory index of recordings, their files under one folder, and their background writers."""

    def __init__(self, library: SceneLibrary, fps: int, preview_seconds: float, root: str | None) -> None:
        self._library = library
        self._fps = fps
        self._preview_frames = max(1, round(preview_seconds * fps))
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="odyssey-emulator-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._recordings: dict[str, Recording] = {}
        self._writers: set[asyncio.Task[None]] = set()

    def add(
        self,
        stream_id: str,
        owner: str,
        segments: list[Segment],
        duration_seconds: float,
        started_at: float,
        events: list[dict[str, Any]],
    ) -> Recording:
        """Register a finished stream and write its files in the background."""
        size = segments[0].scene.size
        frame_count = max(1, round(duration_seconds * self._fps))
        recording = Recording(
            stream_id=stream_id,
            owner=owner,
            width=size[0],
            height=size[1],
            started_at=started_at,
            ended_at=started_at + duration_seconds,
            fps=self._fps,
            frame_count=frame_count,
            directory=self.root / stream_id,
        )
        self._recordings[stream_id] = recording
        task = asyncio.create_task(self._write(recording, segments, events))
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)
        return recording

    async def _write(
        self, recording: Recording, segments: list[Segment], events: list[dict[str, Any]]
    ) -> None:
        try:
            parts: list[tuple[bytes, int]] = []
            for index, segment in enumerate(segments):
                start = round(segment.start_seconds * self._fps)
                end = (
                    round(segments[index + 1].start_seconds * self._fps)
                    if index + 1 < len(segments)
                    else recording.frame_count
                )
                end = min(end, recording.frame_count)
                if end > start or (not parts and index == len(segments) - 1):
                    parts.extend(await self._segment_parts(segment, max(1, end - start)))
            await self._library.run_blocking(
                write_files,
                recording.directory,
                parts,
                self._fps,
                self._preview_frames,
                segments[0].scene.first_frame,
                events,
            )
        except Exception:
            log.exception("writing recording %s failed", recording.stream_id)
            recording.failed = True
        finally:
            recording.ready.set()

    async def _segment_parts(self, segment: Segment, frame_count: int) -> list[tuple[bytes, int]]:
        parts: list[tuple[bytes, int]] = []
        if segment.transition_from is not None:
            library = self._library
            intro = await library.h264_transition(
                segment.transition_from, segment.scene, segment.transition_start
            )
            intro_frames = min(frame_count, library.loop_frames - segment.transition_start)
            parts.append((intro, intro_frames))
            frame_count -= intro_frames
        if frame_count > 0:
            parts.append((await self._library.h264_loop(segment.scene), frame_count))
        return parts

    async def get(self, stream_id: str, owner: str) -> Recording | None:
        """The caller's recording (waiting a while for its files; check `files_ready`), or None."""
        recording = self._recordings.get(stream_id)
        if recording is None or recording.owner != owner:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(recording.ready.wait(), WRITE_TIMEOUT_SECONDS)
        return recording

    def list(self, owner: str) -> list[Recording]:
        """The caller's recordings, most recent first."""
        mine = [r for r in self._recordings.values() if r.owner == owner]
        return sorted(mine, key=lambda r: r.started_at, reverse=True)

    def file_path(self, stream_id: str, name: str) -> Path | None:
        """The path of one written file of a recording, if it exists."""
        recording = self._recordings.get(stream_id)
        if recording is None or name not in (VIDEO_FILE, PREVIEW_FILE, THUMBNAIL_FILE, EVENTS_FILE):
            return None
        path = recording.directory / name
        return path if path.is_file() else None

    async def cancel_writers(self) -> None:
        """Stop the writers that have not finished (their render-thread work still runs to its end)."""
        for task in list(self._writers):
            task.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)

    async def remove_files(self) -> None:
        """Remove the files, unless they live in a configured folder; call once no thread writes."""
        if self._owns_root:
            await asyncio.to_thread(shutil.rmtree, self.root, True)
