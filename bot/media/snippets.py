"""GIF and MP4 snippets of the live view, encoded in a process pool within an upload byte budget."""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import multiprocessing.context
import os
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from bot.deadline import wait_within
from bot.media.framebuffer import KeptFrame, scaled_size
from bot.media.highlight import ReelFrame
from bot.media.worker import ClipJob, JobResult, PixelFormat, SnippetKind, init_worker, run_job

DISCORD_UPLOAD_LIMIT = 10 * 1024 * 1024

ClipFrames = Sequence[KeptFrame] | Sequence[np.ndarray] | Sequence[ReelFrame]
Pixels = np.ndarray | tuple[bytes, ...]


class SnippetTooLargeError(Exception):
    """No size or frame rate within the encoder's limits fits the byte budget."""


@dataclass(frozen=True, slots=True)
class Snippet:
    """An encoded clip ready to upload."""

    data: bytes
    kind: SnippetKind
    width: int
    height: int
    fps: float
    frame_count: int
    duration_seconds: float
    attempts: int = 1  # encodings tried to meet the budget
    cpu_seconds: float = 0.0  # worker-process CPU over all attempts

    @property
    def filename(self) -> str:
        """A file name with the right extension for uploading."""
        return f"snippet.{self.kind}"


@dataclass(frozen=True, slots=True)
class _Plan:
    width: int
    height: int
    fps: float
    step: int  # keep every `step`-th frame


def _stack(frames: ClipFrames) -> tuple[Pixels, PixelFormat, int, int]:
    """One contiguous array (or the JPEGs) for the worker, plus its pixel format and frame size."""
    first = frames[0]
    if isinstance(first, ReelFrame):
        reel = [frame for frame in frames if isinstance(frame, ReelFrame)]
        if len(reel) != len(frames):
            raise ValueError("a clip of highlight frames cannot mix in other kinds of frames")
        return tuple(frame.jpeg for frame in reel), "jpeg", first.width, first.height
    if isinstance(first, KeptFrame):
        kept = [frame for frame in frames if isinstance(frame, KeptFrame)]
        if len(kept) == len(frames) and all(k.yuv420p.shape == first.yuv420p.shape for k in kept):
            return np.stack([k.yuv420p for k in kept]), "yuv420p", first.width, first.height
        # Sizes changed mid-clip (a new stream with another resolution): bring all to the first size.
        rgb = [_rgb_of(f, first.width, first.height) for f in frames]
        return np.stack(rgb), "rgb24", first.width, first.height
    arrays = [np.asarray(frame) for frame in frames]
    if any(
        a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or a.shape != arrays[0].shape for a in arrays
    ):
        raise ValueError("array frames must all be uint8 RGB of one shape (height, width, 3)")
    height, width = arrays[0].shape[:2]
    return np.stack(arrays), "rgb24", width, height


def _rgb_of(frame: KeptFrame | np.ndarray | ReelFrame, width: int, height: int) -> np.ndarray:
    if isinstance(frame, ReelFrame):
        raise ValueError("a clip of kept frames cannot mix in highlight frames")
    return frame.to_rgb(width, height) if isinstance(frame, KeptFrame) else frame


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread meanwhile; a process started meanwhile starts with it blocked.

    The signal mask survives fork and exec, so a Ctrl-C arriving while the worker's interpreter starts
    (before `init_worker` ignores SIGINT) stays pending and is then discarded. Signals are not lost here:
    one arriving meanwhile is delivered to this process when the mask is restored (or to another thread).
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _QuietSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned pool worker that never sees the terminal's Ctrl-C (its parent shuts it down)."""

    def start(self) -> None:
        """Start the process with SIGINT blocked; `init_worker` then ignores it."""
        with _sigint_blocked():
            super().start()


class _QuietSpawnContext(multiprocessing.context.SpawnContext):
    """The spawn start method, with pool workers that ignore SIGINT from their first instruction."""

    Process = _QuietSpawnProcess


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's worker processes and wait for the pool to wind down (blocking)."""
    # ProcessPoolExecutor has no public way to stop a running job before Python 3.14 (terminate_workers).
    processes = pool._processes or {}  # None once the pool has been shut down
    for process in list(processes.values()):
        process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


class SnippetEncoder:
    """Encodes clips off the event loop in a spawn-safe process pool; shrinks them to fit a byte budget.

    Over budget, the next attempt scales the width by the square root of the size ratio (size follows
    area); below `min_width` it halves the frame rate instead, down to `min_fps`, then gives up.
    """

    def __init__(
        self,
        max_workers: int = 1,
        *,
        min_width: int = 120,
        min_fps: float = 3.0,
        max_attempts: int = 6,
        change_threshold: int = 6,
        job_timeout_seconds: float = 60.0,
    ) -> None:
        self.max_workers = max_workers
        self.min_width = min_width
        self.min_fps = min_fps
        self.max_attempts = max_attempts
        self.change_threshold = change_threshold
        self.job_timeout_seconds = job_timeout_seconds
        self._pool = self._new_pool()
        self.closed = False

    def _new_pool(self) -> ProcessPoolExecutor:
        # Spawn: fork would copy the event loop's threads and sockets.
        return ProcessPoolExecutor(
            max_workers=self.max_workers,
            mp_context=_QuietSpawnContext(),
            initializer=init_worker,
            initargs=(os.getpid(),),
        )

    async def encode_gif(
        self, frames: ClipFrames, fps: float, budget_bytes: int = DISCORD_UPLOAD_LIMIT, max_width: int = 360
    ) -> Snippet:
        """A looping GIF of the frames (oldest first, sampled at `fps`), at most `budget_bytes` long."""
        return await self._encode("gif", frames, fps, budget_bytes, max_width, crf=23)

    async def encode_mp4(
        self,
        frames: ClipFrames,
        fps: float,
        budget_bytes: int = DISCORD_UPLOAD_LIMIT,
        max_width: int = 360,
        crf: int = 23,
    ) -> Snippet:
        """An H.264 MP4 (yuv420p, faststart) of the frames, at most `budget_bytes` long."""
        return await self._encode("mp4", frames, fps, budget_bytes, max_width, crf=crf)

    async def _encode(
        self, kind: SnippetKind, frames: ClipFrames, fps: float, budget_bytes: int, max_width: int, crf: int
    ) -> Snippet:
        if self.closed:
            raise RuntimeError("SnippetEncoder is closed")
        if not frames or fps <= 0 or budget_bytes <= 0:
            raise ValueError("need at least one frame, a positive fps and a positive byte budget")
        pixels, pixel_format, width, height = await asyncio.to_thread(_stack, frames)
        plan = self._first_plan(width, height, fps, max_width)
        cpu_seconds = 0.0
        for attempt in range(1, self.max_attempts + 1):
            clip = pixels[:: plan.step]
            job = ClipJob(
                clip, pixel_format, plan.width, plan.height, plan.fps, kind, self.change_threshold, crf
            )
            result = await self._run(job)
            cpu_seconds += result.cpu_seconds
            if len(result.data) <= budget_bytes:
                return Snippet(
                    data=result.data,
                    kind=kind,
                    width=plan.width,
                    height=plan.height,
                    fps=plan.fps,
                    frame_count=len(clip),
                    duration_seconds=len(clip) / plan.fps,
                    attempts=attempt,
                    cpu_seconds=cpu_seconds,
                )
            next_plan = self._shrink(plan, width, height, len(result.data), budget_bytes, len(pixels))
            if next_plan is None:
                break
            plan = next_plan
        raise SnippetTooLargeError(
            f"a {kind} of these {len(pixels)} frames does not fit in {budget_bytes} bytes, even at "
            f"{plan.width}x{plan.height} and {plan.fps:g} fps (the smallest this encoder tries)"
        )

    def _first_plan(self, width: int, height: int, fps: float, max_width: int) -> _Plan:
        target_width, target_height = scaled_size(width, height, max(max_width, 2))
        return _Plan(target_width, target_height, fps, 1)

    def _shrink(
        self, plan: _Plan, width: int, height: int, size: int, budget: int, frame_count: int
    ) -> _Plan | None:
        narrower = math.floor(plan.width * math.sqrt(budget / size) * 0.95)
        smallest = min(self.min_width, width)
        if narrower >= smallest:
            return _Plan(*scaled_size(width, height, narrower), plan.fps, plan.step)
        if plan.fps / 2 >= self.min_fps and frame_count > plan.step:
            return _Plan(plan.width, plan.height, plan.fps / 2, plan.step * 2)
        if plan.width > smallest:
            return _Plan(*scaled_size(width, height, smallest), plan.fps, plan.step)
        return None

    async def _run(self, job: ClipJob) -> JobResult:
        pool = self._pool
        try:
            return await self._run_on(pool, job)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): replace the pool once and retry on a fresh worker.
            if self.closed:
                raise
            if self._pool is pool:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            return await self._run_on(self._pool, job)

    async def _run_on(self, pool: ProcessPoolExecutor, job: ClipJob) -> JobResult:
        future = pool.submit(run_job, job)
        try:
            return await wait_within(asyncio.wrap_future(future), self.job_timeout_seconds)
        except TimeoutError:
            if future.running():
                # Nobody waits for this job any more, but its worker would finish it while later snippets
                # queue behind it: stop the pool's workers (other jobs on it retry on the new pool).
                if self._pool is pool and not self.closed:
                    self._pool = self._new_pool()
                await asyncio.to_thread(_stop_workers, pool)
            raise

    def close(self) -> None:
        """Stop the worker processes (waits for them to exit; pending encodings are cancelled)."""
        self.closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        """`close()` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> SnippetEncoder:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
