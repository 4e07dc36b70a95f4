"""Encoding jobs run in worker processes: frames in (contiguous uint8), GIF or MP4 bytes out."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from bot.media.framebuffer import YUV_TO_RGB_INTERPOLATION
from bot.media.gif_encoder import encode_rgba_clip
from bot.media.highlight import jpeg_to_yuv420p

# "jpeg": the highlight reel's frames, yuv420p planes stored as 4:2:0 JPEGs, decoded here.
PixelFormat = Literal["yuv420p", "rgb24", "jpeg"]
SnippetKind = Literal["gif", "mp4"]


@dataclass(frozen=True, slots=True)
class ClipJob:
    """One encoding request; cheap to pickle (one stacked array plus a few numbers)."""

    pixels: np.ndarray | tuple[bytes, ...]  # yuv420p: (n, h * 3 // 2, w); rgb24: (n, h, w, 3); jpeg: bytes
    pixel_format: PixelFormat
    width: int  # output size
    height: int
    fps: float
    kind: SnippetKind
    change_threshold: int = 6
    crf: int = 23


@dataclass(frozen=True, slots=True)
class JobResult:
    """Encoded bytes and the CPU seconds the worker process spent on them."""

    data: bytes
    cpu_seconds: float


def _scaled_frames(job: ClipJob, pixel_format: str) -> list[av.VideoFrame]:
    """Convert and scale in one libswscale pass per frame (frames of any size come out at the job's)."""
    source_format = "rgb24" if job.pixel_format == "rgb24" else "yuv420p"
    to_rgb = source_format == "yuv420p" and pixel_format != "yuv420p"
    interpolation = YUV_TO_RGB_INTERPOLATION if to_rgb else "AREA"
    return [
        av.VideoFrame.from_ndarray(_planes(job, pixels), format=source_format).reformat(
            job.width, job.height, pixel_format, interpolation=interpolation
        )
        for pixels in job.pixels
    ]


def _planes(job: ClipJob, pixels: np.ndarray | bytes) -> np.ndarray:
    if job.pixel_format == "jpeg":
        return jpeg_to_yuv420p(bytes(pixels))
    assert isinstance(pixels, np.ndarray)
    return pixels


def _encode_gif(job: ClipJob) -> bytes:
    rgba = np.stack([frame.to_ndarray() for frame in _scaled_frames(job, "rgba")])
    return encode_rgba_clip(rgba, job.fps, job.change_threshold)


def _encode_mp4(job: ClipJob) -> bytes:
    # faststart rewrites the file to move the index to the front, which needs a real file, not a BytesIO.
    with tempfile.TemporaryDirectory(prefix="snippet-") as directory:
        path = Path(directory) / "snippet.mp4"
        _write_mp4(job, path)
        return path.read_bytes()


def _write_mp4(job: ClipJob, path: Path) -> None:
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(job.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = job.width, job.height, "yuv420p"
        stream.codec_context.thread_count = 1  # one worker process is one core
        stream.options = {"crf": str(job.crf), "preset": "veryfast"}
        for index, frame in enumerate(_scaled_frames(job, "yuv420p")):
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


PARENT_CHECK_SECONDS = 0.5


def init_worker(parent: int) -> None:
    """Worker start-up: one BLAS thread (OpenBLAS's idle threads spin and cost more CPU than they save).

    SIGINT is ignored: Ctrl-C in a terminal reaches the whole process group, and the bot, not each worker,
    decides how to stop (it shuts the pool down). The worker was started with SIGINT blocked (see
    `bot.media.snippets`), so a Ctrl-C during its start-up is discarded here instead of raising
    KeyboardInterrupt in it. The worker also exits on its own once the bot process is gone: a bot killed
    with SIGKILL cannot stop its pool, and the workers would otherwise run on as orphans (`parent`: the
    pid of the process that made the pool).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards a SIGINT pending since the start, too
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threadpool_limits(limits=1, user_api="blas")
    # `parent` is the bot's pid, passed in: a bot killed while this worker was starting has already made it
    # an orphan, so the worker's own first getppid() would be init's and it would never notice.
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:  # an orphan is adopted by init or a subreaper
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def run_job(job: ClipJob) -> JobResult:
    """Entry point in the worker process (module level, so it pickles under the spawn start method)."""
    started = time.process_time()
    data = _encode_gif(job) if job.kind == "gif" else _encode_mp4(job)
    return JobResult(data=data, cpu_seconds=time.process_time() - started)
