"""A whole session's highlight: a bounded, time-spread sample of its frames, one chapter per outfit.

The frame buffer keeps only the last few seconds; the highlight must cover the whole session, across every
stream of it (roll-overs included), within a fixed memory bound. So the reel keeps its own sample:

- frames come from the buffer (already scaled down, yuv420p) at `fps`, and are stored as JPEG: the yuv420p
  planes go in as YCbCr 4:2:0 with no colour conversion (~2 ms and 20-35 KB for a 360x656 frame, 10-17x
  smaller than the raw planes, ~46 dB PSNR against them);
- each outfit is a chapter; when the reel holds more than `max_frames` frames or `max_bytes` of JPEG, the
  chapter with the most frames drops every other frame and samples at half the rate from then on, so every
  chapter stays an even time-lapse of itself and long chapters are compressed most;
- the memory held is at most `max_bytes` (3 MiB by default) plus the one frame being compressed.

The MP4 is encoded from these frames at the end, in the snippet encoder's process pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time

import av
import numpy as np
from PIL import Image

from bot.media.framebuffer import KeptFrame, scale_into_yuv420p, scaled_size

MIB = 1024 * 1024
# A frame this close to its due time (as a share of the period) is taken: rounding must not halve a rate.
_DUE_TOLERANCE = 0.25


@dataclasses.dataclass(frozen=True, slots=True)
class ReelFrame:
    """One frame of the highlight: its place on the session timeline and its yuv420p planes as a JPEG."""

    timeline_seconds: float
    width: int
    height: int
    jpeg: bytes


def yuv420p_to_jpeg(planes: np.ndarray, width: int, height: int, quality: int = 85) -> bytes:
    """Planes packed as `KeptFrame.yuv420p` -> a 4:2:0 JPEG of the same YCbCr values (CPU: use a thread)."""
    flat = planes.reshape(-1)
    luma, chroma = width * height, width * height // 4
    half = (width // 2, height // 2)
    y = Image.fromarray(flat[:luma].reshape(height, width))
    # Nearest-neighbour upsampling, which the encoder's 2x2 averaging for 4:2:0 undoes exactly.
    cb, cr = (
        Image.fromarray(flat[start : start + chroma].reshape(half[1], half[0])).resize(
            (width, height), Image.Resampling.NEAREST
        )
        for start in (luma, luma + chroma)
    )
    out = io.BytesIO()
    Image.merge("YCbCr", (y, cb, cr)).save(out, format="JPEG", quality=quality, subsampling="4:2:0")
    return out.getvalue()


def jpeg_to_yuv420p(data: bytes) -> np.ndarray:
    """A JPEG made by `yuv420p_to_jpeg` -> planes packed as `KeptFrame.yuv420p` (CPU: run it off the loop)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("YCbCr", image.size)  # decode to YCbCr as stored, without a conversion to RGB
        ycbcr = image.convert("YCbCr")
    width, height = ycbcr.size
    y, cb, cr = ycbcr.split()
    half = (width // 2, height // 2)
    planes = [np.asarray(y)] + [np.asarray(c.resize(half, Image.Resampling.BOX)) for c in (cb, cr)]
    return np.concatenate([plane.reshape(-1) for plane in planes]).reshape(height * 3 // 2, width)


@dataclasses.dataclass
class Chapter:
    """The frames of one outfit, sampled every `period` seconds of the session timeline."""

    label: str
    period: float
    frames: list[ReelFrame] = dataclasses.field(default_factory=list)
    next_due: float | None = None


class HighlightReel:
    """A bounded sample of a whole session's frames, one chapter per outfit, for its highlight video."""

    def __init__(
        self,
        *,
        fps: float = 6.0,
        max_frames: int = 90,
        max_bytes: int = 3 * MIB,
        max_width: int = 360,
        quality: int = 85,
    ) -> None:
        if fps <= 0 or max_frames < 2 or max_bytes <= 0 or max_width < 2:
            raise ValueError("fps and max_bytes must be positive, max_frames and max_width at least 2")
        self.fps = fps
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.max_width = max_width
        self.quality = quality
        self._chapters: list[Chapter] = []
        self._generation = 0  # bumped by clear(), so a frame compressed across it is discarded
        self.nbytes = 0
        # CPU seconds spent compressing frames (thread time; for the benchmarks).
        self.cpu_seconds = 0.0

    def begin_chapter(self, label: str) -> None:
        """Frames from now on belong to a new outfit (an empty current chapter is just renamed)."""
        if self._chapters and not self._chapters[-1].frames:
            self._chapters[-1].label = label
            return
        self._chapters.append(Chapter(label, 1.0 / self.fps))

    async def add(self, kept: KeptFrame) -> ReelFrame | None:
        """Offer a frame the buffer kept; compressed (off the loop) and kept if its chapter wants one now."""
        if not self._chapters:
            self.begin_chapter("")
        chapter = self._chapters[-1]
        if not self._is_due(chapter, kept.timeline_seconds):
            return None
        generation = self._generation
        width, height = scaled_size(kept.width, kept.height, self.max_width)
        jpeg, cpu = await asyncio.to_thread(self._compress, kept, width, height)
        self.cpu_seconds += cpu
        if generation != self._generation:
            return None
        frame = ReelFrame(kept.timeline_seconds, width, height, jpeg)
        chapter.frames.append(frame)
        self.nbytes += len(jpeg)
        self._fit()
        return frame

    def _is_due(self, chapter: Chapter, timeline: float) -> bool:
        due = chapter.next_due
        if due is not None and timeline < due - _DUE_TOLERANCE * chapter.period:
            return False
        if due is None or timeline > due + chapter.period:
            chapter.next_due = timeline + chapter.period  # the first frame, or after a gap: start afresh
        else:
            chapter.next_due = due + chapter.period  # on schedule: a frame taken early does not drift it
        return True

    def _compress(self, kept: KeptFrame, width: int, height: int) -> tuple[bytes, float]:
        started = time.thread_time()
        planes = kept.yuv420p
        if (width, height) != (kept.width, kept.height):
            source = av.VideoFrame.from_ndarray(kept.yuv420p, format="yuv420p")
            planes = scale_into_yuv420p(source, np.empty((height * 3 // 2, width), np.uint8))
        jpeg = yuv420p_to_jpeg(planes, width, height, self.quality)
        return jpeg, time.thread_time() - started

    def _fit(self) -> None:
        """Thin the fullest chapter until the reel is within its frame and byte bounds."""
        while len(self) > self.max_frames or self.nbytes > self.max_bytes:
            fullest = max(self._chapters, key=lambda chapter: len(chapter.frames))  # the oldest on a tie
            if len(fullest.frames) >= 2:
                dropped, fullest.frames = fullest.frames[1::2], fullest.frames[::2]
                fullest.period *= 2
                if fullest.next_due is not None:
                    fullest.next_due = fullest.frames[-1].timeline_seconds + fullest.period
            elif len(self._chapters) > 2:
                # One frame per outfit and still too many: keep the first look and the latest outfits.
                dropped = self._chapters.pop(1).frames
            else:
                return
            self.nbytes -= sum(len(frame.jpeg) for frame in dropped)

    def frames(self) -> list[ReelFrame]:
        """Every kept frame, chapter after chapter, oldest first."""
        return [frame for chapter in self._chapters for frame in chapter.frames]

    @property
    def outfits(self) -> int:
        """Chapters that hold at least one frame."""
        return sum(1 for chapter in self._chapters if chapter.frames)

    def __len__(self) -> int:
        return sum(len(chapter.frames) for chapter in self._chapters)

    def clear(self) -> None:
        """Forget every frame and chapter."""
        self._generation += 1
        self._chapters.clear()
        self.nbytes = 0
