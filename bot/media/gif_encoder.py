"""Fast GIF encoding of short noisy video clips: one palette, vectorised mapping, temporal stabilisation.

Why it is fast and small on generated video (whose frames carry per-pixel noise):
- one palette for the whole clip: median cut on a subsample, refined by a few weighted k-means steps over
  the clip's colour histogram (6 bits per channel), so every pixel counts and the work is tiny;
- nearest-colour mapping through a lookup table over those 6-bit cells, built only for cells that occur;
- temporal stabilisation: a pixel whose colour on screen is still within `change_threshold` of the new
  frame is left transparent (disposal "do not dispose"), so noise does not repaint the frame and LZW sees
  long runs, while 4x4 tiles whose mean colour drifted are repainted whole (slow light changes); each frame
  is cropped to the box of pixels that do change;
- Pillow's C LZW encoder for the image data; the container is written here (it is a few dozen bytes).
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterator

import numpy as np
from PIL import Image

TRANSPARENT_INDEX = 255
MAX_COLORS = 255  # index 255 is reserved for "unchanged"
_CELL_BITS = 6
_CELL_COUNT = 1 << (3 * _CELL_BITS)
_CHUNK = 8192
_SAMPLE_PIXELS = 20_000
_FAR_DISTANCE_SQUARED = 24.0**2  # RGB distance beyond which a colour deserves its own entry
_RESEEDS_PER_STEP = 16
_TILE = 4
DRIFT_THRESHOLD = 2.0  # mean level change per channel over a tile that forces a repaint


def rgba_cells(rgba: np.ndarray) -> np.ndarray:
    """Map RGBA pixels (..., 4) to 18-bit colour cells (6 bits per channel, red lowest), as uint32."""
    packed = rgba.view("<u4")[..., 0]  # read as little-endian on any machine: r | g << 8 | b << 16 | a << 24
    cells = packed >> 2
    cells &= 0x3F3F3F
    compact = cells & 0x3F
    cells >>= 2
    compact |= cells & 0xFC0
    cells >>= 2
    compact |= cells & 0x3F000
    return compact


def _cell_colors(cells: np.ndarray) -> np.ndarray:
    """Centre colour of each cell, float32 (n, 3)."""
    channels = [cells & 0x3F, (cells >> 6) & 0x3F, (cells >> 12) & 0x3F]
    return np.stack(channels, axis=1).astype(np.float32) * 4 + 1.5


def nearest_colors(points: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest palette colour for each point, and the squared RGB distance to it."""
    palette_norms = (palette * palette).sum(axis=1)
    minus_two_palette_t = -2 * palette.T
    nearest = np.empty(len(points), np.intp)
    distance = np.empty(len(points), np.float32)
    for start in range(0, len(points), _CHUNK):
        chunk = points[start : start + _CHUNK]
        distances = chunk @ minus_two_palette_t
        distances += palette_norms
        nearest[start : start + _CHUNK] = best = distances.argmin(axis=1)
        closest = np.take_along_axis(distances, best[:, None], axis=1)[:, 0]
        distance[start : start + _CHUNK] = closest + (chunk * chunk).sum(axis=1)
    return nearest, distance


def _initial_palette(rgba: np.ndarray, colors: int) -> np.ndarray:
    """Median cut (Pillow, C) on a spatial subsample of every frame, about 20k pixels."""
    frames, height, width = rgba.shape[:3]
    step = max(1, int((frames * height * width / _SAMPLE_PIXELS) ** 0.5))
    sample = np.ascontiguousarray(rgba[:, ::step, ::step, :3]).reshape(1, -1, 3)
    quantized = Image.fromarray(sample).quantize(colors, method=Image.Quantize.MEDIANCUT)
    flat = quantized.getpalette() or [0, 0, 0]
    used = min(colors, len(flat) // 3, int(np.asarray(quantized).max()) + 1)
    return np.asarray(flat[: used * 3], np.float32).reshape(-1, 3)


def _reseed(palette: np.ndarray, points: np.ndarray, distance: np.ndarray, mass: np.ndarray) -> None:
    """Give colours that the subsample missed (small objects, rare frames) a palette entry.

    Free slots first, then the lightest clusters, go to the worst-served cells, if those are far off.
    """
    far = np.flatnonzero(distance > _FAR_DISTANCE_SQUARED)
    if far.size == 0:
        return
    worst = far[np.argsort(distance[far])[::-1][:_RESEEDS_PER_STEP]]
    lightest = np.argsort(mass)[: len(worst)]
    palette[lightest] = points[worst]


def clip_palette(
    rgba: np.ndarray, cells: np.ndarray, colors: int = MAX_COLORS, iterations: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """A palette for the whole clip and a lookup table from colour cell to palette index.

    Median cut on a subsample gives the start; weighted k-means steps over the full 6-bit histogram of the
    clip refine it, and far-off colours are reseeded into the lightest clusters.
    """
    histogram = np.bincount(cells.ravel(), minlength=_CELL_COUNT)
    occupied = np.flatnonzero(histogram)
    weights = histogram[occupied].astype(np.float32)
    points = _cell_colors(occupied)
    initial = _initial_palette(rgba, colors)
    palette = np.zeros((min(colors, len(occupied)), 3), np.float32)
    started = min(len(initial), len(palette))
    palette[:started] = initial[:started]
    free_slots_first = np.zeros(len(palette))
    free_slots_first[:started] = 1.0  # slots beyond the median cut's colours are reseeded first
    _, distance = nearest_colors(points, palette[:started])
    _reseed(palette, points, distance, free_slots_first)
    for _ in range(iterations):
        nearest, distance = nearest_colors(points, palette)
        mass = np.bincount(nearest, weights=weights, minlength=len(palette))
        filled = mass > 0
        for channel in range(3):
            total = np.bincount(nearest, weights=weights * points[:, channel], minlength=len(palette))
            palette[filled, channel] = total[filled] / mass[filled]
        _reseed(palette, points, distance, mass)
    lookup = np.zeros(_CELL_COUNT, np.uint8)
    lookup[occupied] = nearest_colors(points, palette)[0]
    return np.clip(np.rint(palette), 0, 255).astype(np.uint8), lookup


def block_sums(planes: np.ndarray, block: int) -> np.ndarray:
    """Sums over block x block tiles of (..., h, w) uint8 planes, as uint16 (..., h // block, w // block)."""
    rows, cols = planes.shape[-2] // block * block, planes.shape[-1] // block * block
    tiled = planes[..., :rows, :cols]
    across = tiled[..., 0::block].astype(np.uint16)
    for k in range(1, block):
        across += tiled[..., k::block]
    sums = across[..., 0::block, :].copy()
    for k in range(1, block):
        sums += across[..., k::block, :]
    return sums


def _expand(blocks: np.ndarray, block: int, height: int, width: int) -> np.ndarray:
    """Per-pixel mask from a per-tile mask; the few pixels past the last whole tile follow that tile."""
    pixels = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)
    return np.pad(pixels, ((0, height - pixels.shape[0]), (0, width - pixels.shape[1])), mode="edge")


def stabilise(
    indices: np.ndarray,
    rgba: np.ndarray,
    palette: np.ndarray,
    threshold: int,
    drift_threshold: float = DRIFT_THRESHOLD,
) -> np.ndarray:
    """Replace pixels that need no repaint with the transparent index.

    A pixel keeps its on-screen colour while that stays within `threshold` (per channel) of the new frame,
    which absorbs the noise. Slow changes (a light sweeping over the scene) stay under that threshold pixel
    by pixel, so 4x4 tiles whose mean colour has moved more than `drift_threshold` since they were last
    repainted are repainted whole: the noise averages out in a tile's mean, the drift does not.
    """
    frames, height, width = indices.shape
    planes = np.moveaxis(rgba[..., :3], -1, 0).copy()  # contiguous channel planes: much faster ops below
    tiles = block_sums(planes, _TILE).astype(np.int32)  # (3, frames, tile rows, tile columns)
    tiled = tiles.shape[2] > 0 and tiles.shape[3] > 0
    painted = tiles[:, 0].copy()
    drift_limit = drift_threshold * _TILE * _TILE
    tables = [np.zeros(256, np.uint8) for _ in range(3)]
    for channel, table in enumerate(tables):
        table[: len(palette)] = palette[:, channel]
    out = np.empty_like(indices)
    out[0] = indices[0]
    canvas = indices[0].copy()
    shown, difference, worst = (np.empty((height, width), np.uint8) for _ in range(3))
    keep = np.empty((height, width), bool)
    for i in range(1, frames):
        worst.fill(0)
        for channel, table in enumerate(tables):
            source = planes[channel, i]
            np.take(table, canvas, out=shown)
            np.maximum(source, shown, out=difference)
            np.minimum(source, shown, out=shown)
            difference -= shown  # |source - shown| without leaving uint8
            np.maximum(worst, difference, out=worst)
        np.less_equal(worst, threshold, out=keep)
        if tiled:
            drifted = (np.abs(tiles[:, i] - painted) > drift_limit).any(axis=0)
            painted[:, drifted] = tiles[:, i][:, drifted]
            keep &= ~_expand(drifted, _TILE, height, width)
        keep |= indices[i] == canvas
        np.copyto(out[i], np.where(keep, np.uint8(TRANSPARENT_INDEX), indices[i]))
        np.copyto(canvas, indices[i], where=~keep)
    return out


def frame_delays_cs(frame_count: int, fps: float) -> list[int]:
    """Per-frame delays in centiseconds whose running sum tracks the true timeline (no drift)."""
    edges = [round(i * 100 / fps) for i in range(frame_count + 1)]
    return [max(1, b - a) for a, b in itertools.pairwise(edges)]


def _changed_box(frame: np.ndarray) -> tuple[int, int, int, int]:
    changed = frame != TRANSPARENT_INDEX
    rows = np.flatnonzero(changed.any(axis=1))
    if rows.size == 0:
        return 0, 0, 1, 1
    cols = np.flatnonzero(changed[rows[0] : rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _lzw(indices: np.ndarray) -> bytes:
    """GIF image data (LZW, 8-bit codes, in sub-blocks) for an index image, via Pillow's C encoder."""
    return Image.fromarray(np.ascontiguousarray(indices), "P").tobytes("gif", "P")


def _frame_blocks(frames: np.ndarray, delays: list[int]) -> Iterator[bytes]:
    for i, (frame, delay) in enumerate(zip(frames, delays, strict=True)):
        x0, y0, x1, y1 = (0, 0, frame.shape[1], frame.shape[0]) if i == 0 else _changed_box(frame)
        # Graphic control: disposal 1 (keep the previous frame underneath), transparency on.
        yield struct.pack("<3sBHBB", b"\x21\xf9\x04", 0b0000_0101, delay, TRANSPARENT_INDEX, 0)
        yield struct.pack("<BHHHHB", 0x2C, x0, y0, x1 - x0, y1 - y0, 0)
        yield b"\x08" + _lzw(frame[y0:y1, x0:x1]) + b"\x00"


def write_gif(frames: np.ndarray, palette: np.ndarray, fps: float, loop: int = 0) -> bytes:
    """A looping GIF89a from index frames (n, h, w) sharing one global palette of at most 255 colours."""
    _, height, width = frames.shape
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = palette
    out = io.BytesIO()
    out.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0))
    out.write(table.tobytes())
    out.write(b"\x21\xff\x0bNETSCAPE2.0" + struct.pack("<BBHB", 3, 1, loop, 0))
    for block in _frame_blocks(frames, frame_delays_cs(len(frames), fps)):
        out.write(block)
    out.write(b"\x3b")
    return out.getvalue()


def encode_rgba_clip(rgba: np.ndarray, fps: float, change_threshold: int = 6) -> bytes:
    """Encode RGBA frames (n, h, w, 4) uint8 as a looping GIF."""
    if rgba.ndim != 4 or rgba.shape[-1] != 4 or rgba.dtype != np.uint8 or len(rgba) == 0:
        raise ValueError("expected a non-empty uint8 array of shape (frames, height, width, 4)")
    rgba = np.ascontiguousarray(rgba)
    cells = rgba_cells(rgba)
    palette, lookup = clip_palette(rgba, cells)
    indices = np.take(lookup, cells)
    return write_gif(stabilise(indices, rgba, palette, change_threshold), palette, fps)
