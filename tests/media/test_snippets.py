"""Snippet encoder: valid GIF/MP4 output, byte budget handling, process pool lifecycle, GIF internals."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import struct
from collections.abc import Iterator

import av
import numpy as np
import pytest
from PIL import Image

from bot.media.framebuffer import FrameBuffer, KeptFrame
from bot.media.gif_encoder import encode_rgba_clip, frame_delays_cs
from bot.media.snippets import Snippet, SnippetEncoder, SnippetTooLargeError
from bot.odyssey import StreamFrame


def moving_scene(count: int = 12, width: int = 96, height: int = 160, noise: float = 3.0) -> list[np.ndarray]:
    """A gradient with a moving red square and per-frame noise, like a tiny generated clip."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([40 + 150 * yy / height, 90 + 100 * xx / width, np.full_like(yy, 160.0)], -1)
    frames = []
    for i in range(count):
        img = base.copy()
        x0 = 5 + 4 * i
        img[60:90, x0 : x0 + 30] = (220, 30, 30)
        img += rng.normal(0, noise, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def encoder() -> Iterator[SnippetEncoder]:
    # One pool for the module: spawning a worker (and its numpy/PyAV imports) is the slow part of a test.
    snippet_encoder = SnippetEncoder(max_workers=1)
    try:
        yield snippet_encoder
    finally:
        snippet_encoder.close()


def image_descriptors(gif: bytes) -> list[tuple[int, int, int, int]]:
    """(left, top, width, height) of every frame, read from the GIF block structure."""
    position = 13 + 3 * (2 ** ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)
    boxes = []
    while gif[position] != 0x3B:
        if gif[position] == 0x21:  # extension: label, then sub-blocks
            position += 2
        else:  # image descriptor (no local table here), LZW code size, then sub-blocks
            boxes.append(struct.unpack("<HHHH", gif[position + 1 : position + 9]))
            position += 11
        while gif[position]:
            position += gif[position] + 1
        position += 1
    return boxes


def gif_frames(snippet: Snippet) -> tuple[Image.Image, list[np.ndarray]]:
    image = Image.open(io.BytesIO(snippet.data))
    frames = []
    for index in range(frame_count(image)):
        image.seek(index)
        frames.append(np.asarray(image.convert("RGB"), np.float64))
    return image, frames


def frame_count(image: Image.Image) -> int:
    return int(getattr(image, "n_frames", 1))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


async def test_gif_is_valid_looping_and_timed(encoder: SnippetEncoder) -> None:
    source = moving_scene()
    snippet = await encoder.encode_gif(source, fps=12, budget_bytes=10 * 2**20, max_width=360)
    assert (snippet.kind, snippet.width, snippet.height, snippet.frame_count) == ("gif", 96, 160, 12)
    assert snippet.duration_seconds == pytest.approx(1.0)
    image, frames = gif_frames(snippet)
    assert image.format == "GIF" and image.size == (96, 160) and frame_count(image) == 12
    assert image.info["loop"] == 0
    durations = []
    for index in range(frame_count(image)):
        image.seek(index)
        durations.append(image.info["duration"])
    assert sum(durations) == 1000 and set(durations) <= {80, 90}
    # Every frame, composited over the ones before it, looks like its source (moving square included).
    for decoded, original in zip(frames, source, strict=True):
        assert psnr(original, decoded) > 30
    assert frames[-1][75, 60, 0] > 180 and frames[0][75, 60, 0] < 150


async def test_gif_decodes_the_same_in_ffmpeg(encoder: SnippetEncoder) -> None:
    source = moving_scene(count=6)
    snippet = await encoder.encode_gif(source, fps=6, budget_bytes=2**20)
    with av.open(io.BytesIO(snippet.data), "r") as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    _, pillow_frames = gif_frames(snippet)
    assert len(decoded) == 6
    for ffmpeg_frame, pillow_frame in zip(decoded, pillow_frames, strict=True):
        assert np.array_equal(ffmpeg_frame, pillow_frame.astype(np.uint8))


async def test_gif_from_frame_buffer_frames_is_scaled_to_max_width(encoder: SnippetEncoder) -> None:
    buffer = FrameBuffer(sample_fps=12, max_width=120)
    for i, rgb in enumerate(moving_scene(count=12, width=192, height=320)):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        await buffer.add(StreamFrame(frame, i / 12, "s1"))
    frames: list[KeptFrame] = buffer.window(1.0)
    snippet = await encoder.encode_gif(frames, fps=12, budget_bytes=2**20, max_width=64)
    assert (snippet.width, snippet.height, snippet.frame_count) == (64, 106, 12)
    assert Image.open(io.BytesIO(snippet.data)).size == (64, 106)


async def test_tight_budget_shrinks_size_then_frame_rate(encoder: SnippetEncoder) -> None:
    source = moving_scene(count=12, width=160, height=256, noise=12.0)
    roomy = await encoder.encode_gif(source, fps=12, budget_bytes=2**20, max_width=160)
    assert roomy.attempts == 1 and roomy.width == 160
    budget = len(roomy.data) // 2
    tight = await encoder.encode_gif(source, fps=12, budget_bytes=budget, max_width=160)
    assert len(tight.data) <= budget
    assert tight.attempts > 1 and tight.width < 160 and tight.width >= encoder.min_width
    tighter = await encoder.encode_gif(source, fps=12, budget_bytes=len(roomy.data) // 6, max_width=160)
    assert tighter.fps < 12 and tighter.frame_count < 12
    assert frame_count(Image.open(io.BytesIO(tighter.data))) == tighter.frame_count


async def test_impossible_budget_raises_a_clear_error(encoder: SnippetEncoder) -> None:
    with pytest.raises(SnippetTooLargeError, match="does not fit in 500 bytes"):
        await encoder.encode_gif(moving_scene(count=8), fps=8, budget_bytes=500)


async def test_mp4_opens_with_the_right_frames_and_duration(encoder: SnippetEncoder) -> None:
    snippet = await encoder.encode_mp4(moving_scene(count=12), fps=12, budget_bytes=2**20)
    assert snippet.kind == "mp4" and snippet.frame_count == 12
    assert snippet.data[4:8] == b"ftyp" and snippet.data.index(b"moov") < snippet.data.index(b"mdat")
    with av.open(io.BytesIO(snippet.data), "r") as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert container.duration is not None
        assert container.duration / 1_000_000 == pytest.approx(1.0, abs=0.01)
    assert len(frames) == 12 and (frames[0].width, frames[0].height) == (96, 160)


async def test_rejects_bad_input(encoder: SnippetEncoder) -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        await encoder.encode_gif([], fps=12, budget_bytes=1000)
    with pytest.raises(ValueError, match="uint8 RGB"):
        await encoder.encode_gif([np.zeros((8, 8), np.uint8)], fps=12, budget_bytes=1000)


async def test_close_stops_the_worker_processes() -> None:
    encoder = SnippetEncoder(max_workers=1)
    before = set(multiprocessing.active_children())
    await encoder.encode_gif(moving_scene(count=2), fps=2, budget_bytes=2**20)
    assert set(multiprocessing.active_children()) - before
    await encoder.aclose()
    assert not set(multiprocessing.active_children()) - before
    with pytest.raises(RuntimeError, match="closed"):
        await encoder.encode_gif(moving_scene(count=2), fps=2, budget_bytes=2**20)


def test_delays_add_up_to_the_clip_duration() -> None:
    assert frame_delays_cs(24, 12) == [8, 9, 8] * 8
    assert sum(frame_delays_cs(30, 24)) == 125


def test_static_noise_is_mostly_transparent_after_the_first_frame() -> None:
    rng = np.random.default_rng(1)
    base = np.full((40, 40, 4), 120, np.uint8)
    noisy = [np.clip(base + rng.normal(0, 0.8, base.shape), 0, 255).astype(np.uint8) for _ in range(5)]
    stable = encode_rgba_clip(np.stack(noisy), fps=5)
    changing = encode_rgba_clip(np.stack(noisy), fps=5, change_threshold=-1)
    assert len(stable) < len(changing)
    # Nothing changed beyond the threshold: after the full first frame, each frame is a 1x1 patch.
    assert image_descriptors(stable) == [(0, 0, 40, 40)] + [(0, 0, 1, 1)] * 4
    assert image_descriptors(changing) == [(0, 0, 40, 40)] * 5


def test_frames_are_cropped_to_the_changed_box() -> None:
    frames = np.zeros((3, 50, 60, 4), np.uint8)
    frames[1:, 10:20, 30:45] = 255
    frames[2, 40, 5] = 255
    assert image_descriptors(encode_rgba_clip(frames, fps=3)) == [
        (0, 0, 60, 50),
        (30, 10, 15, 10),
        (5, 40, 1, 1),
    ]


async def test_a_killed_worker_is_replaced() -> None:
    async with SnippetEncoder(max_workers=1) as encoder:
        await encoder.encode_gif(moving_scene(count=2), fps=2, budget_bytes=2**20)
        workers = multiprocessing.active_children()
        for worker in workers:
            if worker.pid is not None and worker.name.startswith("SpawnProcess"):
                os.kill(worker.pid, signal.SIGKILL)
                worker.join(timeout=10)
        snippet = await encoder.encode_gif(moving_scene(count=2), fps=2, budget_bytes=2**20)
        assert snippet.frame_count == 2


def test_slow_global_light_change_is_repainted() -> None:
    # Brightness rises 1 level per frame, noise-free: no pixel ever moves past the per-pixel threshold (12)
    # from the first frame, but the tile means drift, so the picture must keep up with the light.
    frames = np.stack([np.full((32, 32, 4), 100 + i, np.uint8) for i in range(12)])
    decoded = gif_frames_of(encode_rgba_clip(frames, fps=12, change_threshold=12))
    assert np.abs(decoded[-1] - 111).max() <= 3


def gif_frames_of(data: bytes) -> list[np.ndarray]:
    image = Image.open(io.BytesIO(data))
    frames = []
    for index in range(frame_count(image)):
        image.seek(index)
        frames.append(np.asarray(image.convert("RGB"), np.int16))
    return frames


async def test_frames_of_streams_with_different_sizes_share_the_first_size(encoder: SnippetEncoder) -> None:
    buffer = FrameBuffer(sample_fps=12, max_width=96)
    for stream_id, (width, height) in (("a", (96, 160)), ("b", (128, 160))):
        for i, rgb in enumerate(moving_scene(count=4, width=width, height=height)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            await buffer.add(StreamFrame(frame, i / 12, stream_id))
    frames = buffer.window(1.0)
    assert {(f.width, f.height) for f in frames} == {(96, 160), (96, 120)}
    snippet = await encoder.encode_gif(frames, fps=12, budget_bytes=2**20)
    assert (snippet.width, snippet.height, snippet.frame_count) == (96, 160, 8)


async def test_a_job_over_its_time_limit_stops_its_worker() -> None:
    # 0.2 s is far less than a worker needs to start and encode 24 frames of 360x640 (about 1 s), so the
    # job is running when time is up.
    clip = moving_scene(count=24, width=360, height=640)
    async with SnippetEncoder(max_workers=1, job_timeout_seconds=0.2) as encoder:
        before = set(multiprocessing.active_children())
        with pytest.raises(TimeoutError):
            await encoder.encode_gif(clip, fps=12, budget_bytes=2**22)
        # Nobody waits for that job any more: its worker must not keep a core (and the queue) busy with it.
        assert not set(multiprocessing.active_children()) - before
        encoder.job_timeout_seconds = 60.0
        snippet = await encoder.encode_gif(moving_scene(count=2), fps=2, budget_bytes=2**20)
        assert snippet.frame_count == 2
