"""Recordings written at stream end: H.264 MP4 remuxed from cached scene loops, thumbnail, preview, events."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

from bot.deadline import wait_within
from bot.emulator.loops import Scene, SceneLibrary
from bot.emulator.scene import Frame

log = logging.getLogger(__name__)

VIDEO_FILE = "video.mp4"
PREVIEW_FILE = "preview.mp4"
THUMBNAIL_FILE = "thumbnail.jpg"
EVENTS_FILE = "events.jsonl"
# Kept beside a recording in a configured folder, so a restarted emulator can finish and serve it.
JOURNAL_FILE = "journal.jsonl"  # the stream's start, every outfit change, its end, "written" once done
PROGRESS_FILE = "progress"  # wall-clock time the stream was last seen running (for a stream cut by a kill)
PHOTO_FILE = "photo"  # the stream's input image, to render its scenes again
PROGRESS_INTERVAL_SECONDS = 0.5
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
        # Only a configured folder outlives the process, so only then are running streams journaled (by one
        # thread, in order). No fsync: a killed process loses nothing the kernel already has.
        self._journal = None if root is None else ThreadPoolExecutor(1, thread_name_prefix="emulator-journal")
        self._live: set[str] = set()  # journaled streams still running
        self._ticker: asyncio.Task[None] | None = None

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
        if stream_id in self._live:
            self._live.discard(stream_id)
            self._journal_line(stream_id, {"kind": "end", "duration": duration_seconds, "events": events})
        self._start_writer(self._write(recording, segments, events))
        return recording

    def _start_writer(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

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
                "recording",
                write_files,
                recording.directory,
                parts,
                self._fps,
                self._preview_frames,
                segments[0].scene.first_frame,
                events,
            )
            self._journal_line(recording.stream_id, {"kind": "written"})
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
            await wait_within(recording.ready.wait(), WRITE_TIMEOUT_SECONDS)
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
        tasks = [*self._writers, *([self._ticker] if self._ticker is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._journal is not None:
            await asyncio.to_thread(self._journal.shutdown, True)

    async def remove_files(self) -> None:
        """Remove the files, unless they live in a configured folder; call once no thread writes."""
        if self._owns_root:
            await asyncio.to_thread(shutil.rmtree, self.root, True)

    # ---- surviving a restart (configured folder only) ------------------------------------------------

    def stream_started(
        self,
        stream_id: str,
        owner: str,
        segment: Segment,
        started_at: float,
        image_bytes: bytes | None,
        event: dict[str, Any],
    ) -> None:
        """Journal a stream as it starts, so an emulator restarted after a kill can still record it."""
        if self._journal is None:
            return
        width, height = segment.scene.size
        start = {
            "kind": "start",
            "stream_id": stream_id,
            "owner": owner,
            "width": width,
            "height": height,
            "fps": self._fps,
            "started_at": started_at,
            "photo": image_bytes is not None,
        }
        self._live.add(stream_id)
        self._submit(_begin_journal, self.root / stream_id, start, image_bytes)
        self.stream_updated(stream_id, segment, event)
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._mark_progress())

    def stream_updated(self, stream_id: str, segment: Segment, event: dict[str, Any]) -> None:
        """Journal a running stream's new segment (an outfit change) and its event."""
        if stream_id not in self._live:
            return
        before = segment.transition_from
        line = {
            "kind": "segment",
            "t": segment.start_seconds,
            "prompt": segment.scene.prompt,
            "from": None if before is None else before.prompt,
            "transition_start": segment.transition_start,
            "event": event,
        }
        self._journal_line(stream_id, line)

    async def _mark_progress(self) -> None:
        # How long a stream cut by a kill ran: the last mark, at most this interval short.
        while self._live:
            now = time.time()
            for stream_id in self._live:
                self._submit(_write_progress, self.root / stream_id, now)
            await asyncio.sleep(PROGRESS_INTERVAL_SECONDS)

    def _journal_line(self, stream_id: str, line: dict[str, Any]) -> None:
        if self._journal is not None:
            self._submit(_append_line, self.root / stream_id / JOURNAL_FILE, line)

    def _submit(self, function: Callable[..., None], *args: object) -> None:
        if self._journal is None:
            return
        try:
            future = self._journal.submit(function, *args)
        except RuntimeError:  # shut down: the emulator is stopping
            return
        future.add_done_callback(_log_failure)

    async def resume(self) -> None:
        """Serve an earlier run's recordings from the configured folder; finish those it could not write.

        A stream cut by a kill ends at its last progress mark and is marked ended by `streamer_restarted`.
        """
        if self._journal is None:
            return
        for stored in await asyncio.to_thread(_read_journals, self.root):
            if stored.stream_id in self._recordings:
                continue
            fps = self._fps if not stored.complete else stored.fps
            recording = Recording(
                stream_id=stored.stream_id,
                owner=stored.owner,
                width=stored.width,
                height=stored.height,
                started_at=stored.started_at,
                ended_at=stored.started_at + stored.duration,
                fps=fps,
                frame_count=max(1, round(stored.duration * fps)),
                directory=self.root / stored.stream_id,
            )
            self._recordings[stored.stream_id] = recording
            if stored.complete:
                recording.ready.set()
                continue
            if not stored.ended:
                ended = {
                    "type": "stream_ended",
                    "t": round(stored.duration, 3),
                    "reason": "streamer_restarted",
                }
                stored.events.append(ended)
                line = {"kind": "end", "duration": stored.duration, "events": stored.events}
                self._journal_line(stored.stream_id, line)
            self._start_writer(self._write_again(recording, stored))

    async def _write_again(self, recording: Recording, stored: StoredStream) -> None:
        try:
            image = await asyncio.to_thread(_read_photo, recording.directory) if stored.photo else None
            size = (stored.width, stored.height)
            library = self._library
            segments = []
            for line in stored.segments:
                scene = await library.scene(size, str(line["prompt"]), image)
                before = line.get("from")
                old = None if before is None else await library.scene(size, str(before), image)
                start = min(int(line.get("transition_start", 0)), library.loop_frames - 1)
                segments.append(Segment(float(line["t"]), scene, old, start))
            if not segments:
                raise ValueError("the journal has no segment")
        except Exception:
            log.exception("recording %s could not be rebuilt after a restart", recording.stream_id)
            recording.failed = True
            recording.ready.set()
            return
        await self._write(recording, segments, stored.events)


@dataclass
class StoredStream:
    """What a journal says about one stream of an earlier run."""

    stream_id: str
    owner: str
    width: int
    height: int
    fps: int
    started_at: float
    photo: bool
    segments: list[dict[str, Any]]
    events: list[dict[str, Any]]
    duration: float
    ended: bool
    complete: bool


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("journaling a recording failed", exc_info=future.exception())


def _begin_journal(directory: Path, start: dict[str, Any], image: bytes | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if image is not None:
        (directory / PHOTO_FILE).write_bytes(image)
    _append_line(directory / JOURNAL_FILE, start)


def _append_line(path: Path, line: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def _write_progress(directory: Path, now: float) -> None:
    temporary = directory / (PROGRESS_FILE + ".tmp")
    temporary.write_text(repr(now), encoding="utf-8")
    temporary.replace(directory / PROGRESS_FILE)  # atomic: a kill never leaves half a number


def _read_photo(directory: Path) -> bytes:
    return (directory / PHOTO_FILE).read_bytes()


def _read_journals(root: Path) -> list[StoredStream]:
    found = []
    for journal in sorted(root.glob(f"*/{JOURNAL_FILE}")):
        try:
            stored = _read_journal(journal.parent)
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("unreadable recording journal %s", journal, exc_info=True)
            continue
        if stored is not None:
            found.append(stored)
    return found


def _read_journal(directory: Path) -> StoredStream | None:
    lines = []
    for text in (directory / JOURNAL_FILE).read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            break  # a line cut short by the kill; nothing after it was written
    if not lines or lines[0].get("kind") != "start" or lines[0].get("stream_id") != directory.name:
        return None
    start = lines[0]
    segments = [line for line in lines if line.get("kind") == "segment"]
    end = next((line for line in lines if line.get("kind") == "end"), None)
    if end is not None:
        duration, events = float(end["duration"]), list(end["events"])
    else:
        progress = directory / PROGRESS_FILE
        last_seen = float(progress.read_text(encoding="utf-8")) if progress.is_file() else start["started_at"]
        duration = max(0.0, last_seen - float(start["started_at"]))
        events = [line["event"] for line in segments if isinstance(line.get("event"), dict)]
    written = any(line.get("kind") == "written" for line in lines)
    files = (VIDEO_FILE, PREVIEW_FILE, THUMBNAIL_FILE, EVENTS_FILE)
    return StoredStream(
        stream_id=directory.name,
        owner=str(start["owner"]),
        width=int(start["width"]),
        height=int(start["height"]),
        fps=int(start.get("fps", 0)) or 1,
        started_at=float(start["started_at"]),
        photo=bool(start.get("photo")),
        segments=segments,
        events=events,
        duration=duration,
        ended=end is not None,
        complete=written and all((directory / name).is_file() for name in files),
    )
