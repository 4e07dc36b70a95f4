"""A Presenter for terminals: prints one line per event and writes snippets, stills and the highlight to a
folder."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from bot.tryon.presenter import (
    BroadcastReady,
    ErrorReported,
    RecordingReady,
    SnapshotReady,
    SnippetReady,
    StatusChanged,
)


@dataclasses.dataclass
class WrittenFile:
    """A file the presenter wrote, for the run's summary."""

    path: Path
    size_bytes: int
    caption: str


class ConsolePresenter:
    """Prints every event of one session and keeps them, so a caller can summarise the run afterwards."""

    def __init__(self, out_dir: Path, *, label: str = "", echo: Callable[[str], None] = print) -> None:
        self.out_dir = out_dir
        self.label = label
        self.echo = echo
        self.statuses: list[StatusChanged] = []
        self.snippets: list[WrittenFile] = []
        self.snapshots: list[WrittenFile] = []
        self.recordings: list[RecordingReady] = []
        self.errors: list[ErrorReported] = []
        self.broadcasts: list[BroadcastReady] = []
        self.before_after: Path | None = None
        self.highlight: WrittenFile | None = None
        self.thumbnail: Path | None = None
        # Files on disk: the engine's own snippet budget is the only limit.
        self.upload_budget_bytes: int | None = None
        self._shown_outfit: str | None = None
        self._started = time.monotonic()

    def _say(self, text: str) -> None:
        prefix = f"{self.label} " if self.label else ""
        self.echo(f"[{time.monotonic() - self._started:6.1f}s] {prefix}{text}")

    async def _write(self, filename: str, data: bytes) -> Path:
        path = self.out_dir / filename
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, data)
        return path

    async def status_changed(self, event: StatusChanged) -> None:
        """One line: the state, and the queue position or the streaming progress."""
        self.statuses.append(event)
        if event.queue_position is not None:
            wait = event.estimated_wait_seconds or 0.0
            if wait > 0:
                self._say(f"queued: position {event.queue_position}, about {wait:.0f} s to wait")
            else:
                self._say("queued: a slot is free, starting now")
        elif event.platform_wait_seconds is not None:
            self._say(f"waiting for the platform to free a streamer ({event.platform_wait_seconds:.0f} s)")
        elif event.continuing:
            self._say(
                f"continuing: the platform caps one stream, so a fresh stream took over at "
                f"{event.elapsed_seconds:.1f} s (outfit: {event.outfit})"
            )
        elif event.state == "connecting":
            self._say("connecting to the video platform...")
        elif event.state == "streaming":
            line = f"streaming: {event.elapsed_seconds:.1f} s streamed"
            if event.watch_url:
                line += f", watch live: {event.watch_url} ({event.viewers or 0} watching)"
            if event.remaining_seconds is not None:
                line += f", {event.remaining_seconds:.0f} s left"
            if event.outfit != self._shown_outfit:
                line += f" - now wearing: {event.outfit}"
                self._shown_outfit = event.outfit
            self._say(line)
        else:
            line = f"{event.state}: {event.elapsed_seconds:.1f} s streamed"
            if event.end_reason:
                line += f" (ended: {event.end_reason})"
            self._say(line)

    async def snippet_ready(self, event: SnippetReady) -> None:
        """Write the snippet and say where it is."""
        path = await self._write(event.filename, event.data)
        self.snippets.append(WrittenFile(path, len(event.data), event.caption))
        self._say(f"snippet: {path} ({len(event.data) / 1024:.0f} KiB) - {event.caption}")

    async def snapshot_ready(self, event: SnapshotReady) -> None:
        """Write the still and say where it is."""
        path = await self._write(event.filename, event.data)
        self.snapshots.append(WrittenFile(path, len(event.data), event.caption))
        self._say(f"snapshot: {path}")

    async def broadcast_ready(self, event: BroadcastReady) -> None:
        """Say that this stream part is broadcast (never the spectator token)."""
        self.broadcasts.append(event)
        self._say(f"broadcasting stream {event.stream_id}: spectators join at {event.webrtc_url}")

    async def recording_ready(self, event: RecordingReady) -> None:
        """List the recording links; write the highlight video, the before/after still and the thumbnail."""
        self.recordings.append(event)
        kind = "recovered recording" if event.recovered else "recording"
        for links in event.recordings:
            self._say(f"{kind} of stream {links.stream_id}: {links.video_url}")
        prefix = f"tryon-{event.session_id}"
        if event.highlight is not None:
            highlight = event.highlight
            path = await self._write(f"{prefix}-highlight.mp4", highlight.data)
            caption = f"{highlight.duration_seconds:.1f} s, {highlight.outfits} outfit(s)"
            self.highlight = WrittenFile(path, len(highlight.data), caption)
            self._say(f"highlight: {path} ({len(highlight.data) / 1024:.0f} KiB, {caption})")
        if event.before_after_png is not None:
            self.before_after = await self._write(f"{prefix}-before-after.png", event.before_after_png)
            self._say(f"before/after: {self.before_after}")
        if event.thumbnail_jpeg is not None:
            self.thumbnail = await self._write(f"{prefix}-thumbnail.jpg", event.thumbnail_jpeg)

    async def error(self, event: ErrorReported) -> None:
        """Print the member-facing sentence."""
        self.errors.append(event)
        self._say(f"error: {event.message}")
