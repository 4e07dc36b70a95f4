"""Scene loops encoded once (VP8 for WebRTC, H.264 for recordings) and shared by every stream."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TypeVar

import av
from av.video.frame import PictureType

from bot.emulator.scene import Frame, SceneArt, crossfade, idle_frame

T = TypeVar("T")


@dataclass
class RenderWork:
    """What the render threads did since start, per kind of job: jobs finished and their CPU seconds.

    Streams replay cached packets, so this is the emulator's CPU beyond RTP and SRTP: benchmarks read it to
    tell a busy emulator's streams from its rendering, encoding and recording work.
    """

    jobs: dict[str, int] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    pending: int = 0  # submitted and not finished (queued or running)

    def add(self, kind: str, cpu_seconds: float) -> None:
        """Count one finished job of `kind`."""
        self.jobs[kind] = self.jobs.get(kind, 0) + 1
        self.cpu_seconds[kind] = self.cpu_seconds.get(kind, 0.0) + cpu_seconds

    def snapshot(self) -> dict[str, object]:
        """A JSON-ready copy."""
        return {"jobs": dict(self.jobs), "cpu_seconds": dict(self.cpu_seconds), "pending": self.pending}


def _timed(function: Callable[..., T], *args: object) -> tuple[T, float]:
    began = time.thread_time()
    result = function(*args)
    return result, time.thread_time() - began


@dataclass(frozen=True)
class EncodedClip:
    """VP8 frames of one clip; the first is a keyframe and the rest depend only on earlier ones."""

    packets: tuple[bytes, ...]
    width: int
    height: int


@dataclass
class Scene:
    """One look (photo + prompt + size): its still art, its VP8 loop and, on demand, its H.264 loop."""

    key: str
    size: tuple[int, int]
    prompt: str
    art: SceneArt | None
    loop: EncodedClip
    first_frame: Frame
    h264_loop: bytes | None = None
    h264_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def scene_key(size: tuple[int, int], prompt: str, image_bytes: bytes | None) -> str:
    """The cache key of a scene: image hash, prompt and size."""
    image_hash = hashlib.sha256(image_bytes).hexdigest() if image_bytes is not None else "-"
    return hashlib.sha256(f"{size[0]}x{size[1]}|{image_hash}|{prompt}".encode()).hexdigest()[:24]


def encode_vp8(frames: Iterable[Frame], fps: int, bitrate: int) -> EncodedClip:
    """Encode frames as one VP8 clip whose first frame is a keyframe and the rest are inter frames."""
    codec: av.VideoCodecContext | None = None
    packets: list[bytes] = []
    width = height = 0
    for index, pixels in enumerate(frames):
        height, width = pixels.shape[:2]
        if codec is None:
            codec = _vp8_encoder(width, height, fps, bitrate)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = Fraction(1, fps)
        frame.pict_type = PictureType.I if index == 0 else PictureType.NONE
        packets.extend(bytes(packet) for packet in codec.encode(frame))
    if codec is not None:
        packets.extend(bytes(packet) for packet in codec.encode(None))
    return EncodedClip(packets=tuple(packets), width=width, height=height)


def _vp8_encoder(width: int, height: int, fps: int, bitrate: int) -> av.VideoCodecContext:
    codec = av.CodecContext.create("libvpx", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.bit_rate = bitrate
    codec.gop_size = 100_000  # only the first frame is a keyframe; loops restart at it
    codec.qmin = 4
    codec.qmax = 56
    codec.thread_count = 1
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "partitions": "0"}
    return codec


def encode_h264_mp4(frames: Iterable[Frame], fps: int) -> bytes:
    """An MP4 (H.264, one keyframe first, no B-frames) of the frames, for remuxing into recordings."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream: av.VideoStream | None = None
        for index, pixels in enumerate(frames):
            if stream is None:
                stream = _h264_stream(container, pixels.shape[1], pixels.shape[0], fps)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            frame.pict_type = PictureType.I if index == 0 else PictureType.NONE
            container.mux(stream.encode(frame))
        if stream is not None:
            container.mux(stream.encode(None))
    return buffer.getvalue()


def _h264_stream(
    container: av.container.OutputContainer, width: int, height: int, fps: int
) -> av.VideoStream:
    stream = container.add_stream("libx264", rate=fps)
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, fps)
    stream.codec_context.gop_size = 100_000
    stream.codec_context.thread_count = 1
    stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "30", "bf": "0"}
    return stream


class SceneLibrary:
    """Renders and encodes scenes off the event loop, caching them by (image hash, prompt, size)."""

    def __init__(self, fps: int, loop_seconds: float, transition_seconds: float, bitrate: int, workers: int):
        self.fps = fps
        self.loop_frames = max(2, round(loop_seconds * fps))
        self.transition_frames = max(1, round(transition_seconds * fps))
        self.bitrate = bitrate
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="emulator-render")
        self._scenes: OrderedDict[str, asyncio.Future[Scene]] = OrderedDict()
        self._idle: dict[tuple[int, int], asyncio.Future[Scene]] = {}
        self.max_cached_scenes = 12
        self.encoded_scene_count = 0
        self.work = RenderWork()

    async def _run(self, kind: str, function: Callable[..., T], *args: object) -> T:
        # Counted on the event loop, never from the render threads, so the counters need no lock.
        self.work.pending += 1
        try:
            result, cpu = await asyncio.get_running_loop().run_in_executor(
                self._executor, _timed, function, *args
            )
        finally:
            self.work.pending -= 1
        self.work.add(kind, cpu)
        return result

    async def close(self) -> None:
        """Cancel queued renders and wait for the running ones to finish."""
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        for future in [*self._scenes.values(), *self._idle.values()]:
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()
        self._scenes.clear()
        self._idle.clear()

    async def scene(self, size: tuple[int, int], prompt: str, image_bytes: bytes | None) -> Scene:
        """The scene for this look, rendered and encoded once, then shared."""
        key = scene_key(size, prompt, image_bytes)
        future = self._scenes.get(key)
        if future is None or (future.done() and (future.cancelled() or future.exception() is not None)):
            future = asyncio.ensure_future(self._build(key, size, prompt, image_bytes))
            self._scenes[key] = future
            self._evict()
        self._scenes.move_to_end(key)
        return await asyncio.shield(future)

    def _evict(self) -> None:
        while len(self._scenes) > self.max_cached_scenes:
            _, oldest = self._scenes.popitem(last=False)
            if oldest.done() and not oldest.cancelled():
                oldest.exception()

    async def _build(self, key: str, size: tuple[int, int], prompt: str, image_bytes: bytes | None) -> Scene:
        return await self._run("scene", self._build_sync, key, size, prompt, image_bytes)

    def _build_sync(self, key: str, size: tuple[int, int], prompt: str, image_bytes: bytes | None) -> Scene:
        art = SceneArt.build(size, prompt, image_bytes)
        frames = [art.frame(index / self.loop_frames) for index in range(self.loop_frames)]
        loop = encode_vp8(frames, self.fps, self.bitrate)
        self.encoded_scene_count += 1
        return Scene(key=key, size=size, prompt=prompt, art=art, loop=loop, first_frame=frames[0])

    async def idle(self, size: tuple[int, int]) -> Scene:
        """The dark scene shown while no stream runs (one keyframe and a few tiny frames)."""
        future = self._idle.get(size)
        if future is None:
            future = asyncio.ensure_future(self._run("idle", self._build_idle, size))
            self._idle[size] = future
        return await asyncio.shield(future)

    def _build_idle(self, size: tuple[int, int]) -> Scene:
        dark = idle_frame(size)
        loop = encode_vp8([dark] * max(2, self.fps), self.fps, self.bitrate)
        return Scene(
            key=f"idle-{size[0]}x{size[1]}", size=size, prompt="", art=None, loop=loop, first_frame=dark
        )

    def idle_now(self, size: tuple[int, int]) -> Scene | None:
        """The idle scene if it is already encoded (it is, once any connection has offered)."""
        future = self._idle.get(size)
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            return None
        return future.result()

    def transition_start(self, playing: int, lead: int) -> int:
        """Where a transition should begin: `lead` frames ahead, and early enough for a full crossfade.

        A transition runs to the end of the loop (so the new loop follows at its keyframe); when too few
        frames are left before the wrap, it begins at the wrap instead and covers one whole loop.
        """
        start = (playing + lead) % self.loop_frames
        if self.loop_frames - start < min(self.transition_frames, self.loop_frames):
            return 0
        return start

    async def transition(self, old: Scene, new: Scene, start: int) -> EncodedClip:
        """A keyframe-first clip from loop phase `start` to the wrap: a crossfade, then the new scene.

        Both scenes move in step (same phase), so only the outfit and caption change; the clip ends where
        the new loop begins, so the loop's keyframe follows without a jump.
        """
        return await self._run("transition", self._transition_sync, old, new, start)

    def _transition_sync(self, old: Scene, new: Scene, start: int) -> EncodedClip:
        return encode_vp8(self._transition_frames(old, new, start), self.fps, self.bitrate)

    def _transition_frames(self, old: Scene, new: Scene, start: int) -> list[Frame]:
        frames = []
        for index in range(start, self.loop_frames):
            phase = index / self.loop_frames
            new_frame = new.art.frame(phase) if new.art is not None else new.first_frame
            step = index - start
            if step < self.transition_frames:
                old_frame = old.art.frame(phase) if old.art is not None else old.first_frame
                new_frame = crossfade(old_frame, new_frame, (step + 1) / (self.transition_frames + 1))
            frames.append(new_frame)
        return frames

    async def h264_transition(self, old: Scene, new: Scene, start: int) -> bytes:
        """The same transition as `transition`, as a small H.264 MP4 for recordings."""
        frames = self._transition_frames
        return await self._run("h264_transition", lambda: encode_h264_mp4(frames(old, new, start), self.fps))

    async def h264_loop(self, scene: Scene) -> bytes:
        """The scene's loop as a small H.264 MP4 (encoded on first use, then kept)."""
        async with scene.h264_lock:
            if scene.h264_loop is None:
                scene.h264_loop = await self._run("h264_loop", self._h264_sync, scene)
            return scene.h264_loop

    def _h264_sync(self, scene: Scene) -> bytes:
        if scene.art is None:
            return encode_h264_mp4([scene.first_frame] * self.loop_frames, self.fps)
        art = scene.art
        return encode_h264_mp4((art.frame(i / self.loop_frames) for i in range(self.loop_frames)), self.fps)

    async def run_blocking(self, kind: str, function: Callable[..., T], *args: object) -> T:
        """Run other CPU-heavy emulator work (recordings) on the render threads, counted as `kind`."""
        return await self._run(kind, function, *args)
