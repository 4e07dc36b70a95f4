"""GIF snippet benchmark: our encoder against ffmpeg's palettegen/paletteuse on the noisy benchmark clip.

`python -m bench.bench_snippets [--runs 3] [--out DIR]` prints a markdown block. The clip is every second
frame of `bench.noisy_frames.make_frames()`: 24 frames of 704x1280, i.e. 2 s at 12 fps, encoded at 360 px
wide. CPU is counted in every process that works on it:
for ffmpeg the child process; for us the event-loop process (FrameBuffer sampling and scaling threads,
stacking, pickling) plus the pool worker (conversion, palette, mapping, LZW), which reports its own CPU.
PSNR is the mean over frames against the source frames bilinear-downscaled to the snippet's size.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
from PIL import Image

from bench.noisy_frames import make_frames
from bot.media.framebuffer import FrameBuffer
from bot.media.snippets import Snippet, SnippetEncoder
from bot.odyssey import StreamFrame

WIDTH = 360
FPS = 12
SOURCE_FPS = 24
GOAL_CPU_SECONDS = 0.5
GOAL_BYTES = int(2.5 * 2**20)
GOAL_PSNR_MARGIN_DB = 2.0
BUDGET_BYTES = 10 * 2**20
FFMPEG_FILTER = (
    f"scale={WIDTH}:-2:flags=lanczos,split[a][b];[a]palettegen=stats_mode=diff[p];"
    "[b][p]paletteuse=dither=bayer:bayer_scale=5:diff_mode=rectangle"
)


@dataclass
class Result:
    name: str
    cpu_seconds: list[float]
    data: bytes
    psnr_db: float

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_seconds)

    @property
    def mib(self) -> float:
        return len(self.data) / 2**20


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def gif_frames(data: bytes) -> list[np.ndarray]:
    image = Image.open(io.BytesIO(data))
    frames = []
    for index in range(int(getattr(image, "n_frames", 1))):
        image.seek(index)
        frames.append(np.asarray(image.convert("RGB")))
    return frames


def mp4_frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data), "r") as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def mean_psnr(decoded: list[np.ndarray], reference: list[np.ndarray]) -> float:
    if len(decoded) != len(reference):
        raise SystemExit(f"decoded {len(decoded)} frames, expected {len(reference)}")
    values = []
    for got, want in zip(decoded, reference, strict=True):
        mse = np.mean((got.astype(np.float64) - want.astype(np.float64)) ** 2)
        values.append(10 * np.log10(255**2 / mse))
    return float(np.mean(values))


def run_ffmpeg(clip: list[np.ndarray], runs: int) -> tuple[list[float], bytes]:
    height, width = clip[0].shape[:2]
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{width}x{height}", "-r", str(FPS), "-i", "-",
        "-filter_complex", FFMPEG_FILTER, "-f", "gif", "-",
    ]  # fmt: skip
    raw = b"".join(frame.tobytes() for frame in clip)
    cpu, data = [], b""
    for _ in range(runs):
        before = children_cpu()
        data = subprocess.run(command, input=raw, capture_output=True, check=True).stdout
        cpu.append(children_cpu() - before)
    return cpu, data


async def snippet_from_live_frames(
    encoder: SnippetEncoder, decoded: list[av.VideoFrame]
) -> tuple[float, Snippet]:
    """The product path: the FrameBuffer samples a 24 fps stream at 12 fps, then the window is encoded."""
    started = time.process_time()
    buffer = FrameBuffer(sample_fps=FPS, window_seconds=6, max_width=WIDTH)
    for index, frame in enumerate(decoded):
        await buffer.add(StreamFrame(frame, index / SOURCE_FPS, "bench"))
    window = buffer.window(len(decoded) / SOURCE_FPS)
    snippet = await encoder.encode_gif(window, FPS, BUDGET_BYTES, max_width=WIDTH)
    return time.process_time() - started + snippet.cpu_seconds, snippet


@dataclass
class OurRuns:
    first_cpu: float  # the first snippet on a freshly spawned worker (imports, page faults)
    live: list[tuple[float, Snippet]]
    rgb_cpu: list[float]
    rgb_data: bytes
    mp4_cpu: list[float]
    mp4_data: bytes
    worker_lifetime_cpu: float
    snippets: int


async def timed(encode: Awaitable[Snippet]) -> tuple[float, Snippet]:
    started = time.process_time()
    snippet = await encode
    return time.process_time() - started + snippet.cpu_seconds, snippet


async def run_ours(source: list[np.ndarray], clip: list[np.ndarray], runs: int) -> OurRuns:
    decoded = [av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p") for rgb in source]
    before = children_cpu()
    async with SnippetEncoder(max_workers=1) as encoder:
        first_cpu, _ = await snippet_from_live_frames(encoder, decoded)
        live = [await snippet_from_live_frames(encoder, decoded) for _ in range(runs)]
        rgb = [await timed(encoder.encode_gif(clip, FPS, BUDGET_BYTES, max_width=WIDTH)) for _ in range(runs)]
        mp4 = [await timed(encoder.encode_mp4(clip, FPS, BUDGET_BYTES, max_width=WIDTH)) for _ in range(runs)]
    return OurRuns(
        first_cpu=first_cpu,
        live=live,
        rgb_cpu=[cpu for cpu, _ in rgb],
        rgb_data=rgb[-1][1].data,
        mp4_cpu=[cpu for cpu, _ in mp4],
        mp4_data=mp4[-1][1].data,
        worker_lifetime_cpu=children_cpu() - before,  # the pool is shut down and its process reaped
        snippets=1 + 3 * runs,
    )


def contact_sheet(rows: list[list[np.ndarray]], path: Path, picks: tuple[int, ...] = (0, 8, 16, 23)) -> None:
    height, width = rows[0][0].shape[:2]
    sheet = Image.new("RGB", (width * len(picks), height * len(rows)))
    for row_index, frames in enumerate(rows):
        for column, pick in enumerate(picks):
            sheet.paste(Image.fromarray(frames[pick]), (column * width, row_index * height))
    sheet.save(path)


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per encoder (median reported)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_snippets"), help="sample outputs")
    args = parser.parse_args()
    source = make_frames()
    clip = source[::2][: 2 * FPS]
    height = round(clip[0].shape[0] * WIDTH / clip[0].shape[1] / 2) * 2
    reference = [
        np.asarray(Image.fromarray(f).resize((WIDTH, height), Image.Resampling.BILINEAR)) for f in clip
    ]

    ffmpeg_cpu, ffmpeg_data = run_ffmpeg(clip, args.runs)
    baseline = Result(
        "ffmpeg palettegen+paletteuse", ffmpeg_cpu, ffmpeg_data, mean_psnr(gif_frames(ffmpeg_data), reference)
    )
    ours = asyncio.run(run_ours(source, clip, args.runs))
    live_gif = ours.live[-1][1].data
    results = [
        baseline,
        Result("ours: FrameBuffer (yuv420p stream) + GIF", [cpu for cpu, _ in ours.live], live_gif,
               mean_psnr(gif_frames(live_gif), reference)),
        Result("ours: GIF from RGB frames", ours.rgb_cpu, ours.rgb_data,
               mean_psnr(gif_frames(ours.rgb_data), reference)),
        Result("ours: MP4 (H.264 crf 23) from RGB frames", ours.mp4_cpu, ours.mp4_data,
               mean_psnr(mp4_frames(ours.mp4_data), reference)),
    ]  # fmt: skip

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ffmpeg.gif").write_bytes(ffmpeg_data)
    (args.out / "ours.gif").write_bytes(live_gif)
    (args.out / "ours.mp4").write_bytes(ours.mp4_data)
    contact_sheet([reference, gif_frames(ffmpeg_data), gif_frames(live_gif)], args.out / "contact_sheet.png")

    product = results[1]
    goal = (
        product.cpu <= GOAL_CPU_SECONDS
        and len(product.data) <= GOAL_BYTES
        and product.psnr_db >= baseline.psnr_db - GOAL_PSNR_MARGIN_DB
    )
    print(f"### GIF snippets: {len(clip)} frames, {WIDTH}x{height}, {FPS} fps (median of {args.runs} runs)\n")
    print(f"Machine: {machine()} (shared with other work: absolute times are noisy, ratios less so).\n")
    print("| encoder | CPU s | size MiB | PSNR dB | CPU vs ffmpeg | size vs ffmpeg |")
    print("|---|---:|---:|---:|---:|---:|")
    for result in results:
        print(
            f"| {result.name} | {result.cpu:.3f} | {result.mib:.2f} | {result.psnr_db:.2f} | "
            f"{result.cpu / baseline.cpu:.3f}x | {len(result.data) / len(baseline.data):.2f}x |"
        )
    print(
        f"\nFirst snippet on a freshly spawned worker: {ours.first_cpu:.3f} s CPU. The worker over its "
        f"whole life (spawn, imports, {ours.snippets} encodings), by RUSAGE_CHILDREN after shutdown: "
        f"{ours.worker_lifetime_cpu:.2f} s CPU."
    )
    print(
        f"\nGoal for the FrameBuffer path: CPU <= {GOAL_CPU_SECONDS} s, size <= 2.5 MiB, "
        f"PSNR >= {baseline.psnr_db - GOAL_PSNR_MARGIN_DB:.2f} dB: **{'met' if goal else 'NOT met'}**."
    )
    print(f"\nSamples written to {args.out}/ (ours.gif, ffmpeg.gif, ours.mp4, contact_sheet.png).")
    if not goal:
        sys.exit(1)


if __name__ == "__main__":
    main()
