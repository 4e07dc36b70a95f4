"""Synthetic try-on frames: the photo (or a drawn figure) with the outfit words painted on the torso.

Everything here is pure CPU work on numpy arrays; callers run it off the event loop.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import textwrap
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

RGB = tuple[int, int, int]
Frame = NDArray[np.uint8]

IDLE_COLOUR: RGB = (10, 10, 14)
MARKER_TEXT = "EMULATED"

COLOURS: dict[str, RGB] = {
    "red": (200, 30, 40),
    "crimson": (170, 20, 50),
    "maroon": (110, 20, 30),
    "burgundy": (120, 20, 45),
    "orange": (240, 130, 20),
    "yellow": (245, 215, 40),
    "gold": (212, 170, 50),
    "mustard": (210, 170, 40),
    "green": (40, 150, 60),
    "olive": (110, 120, 40),
    "emerald": (20, 140, 90),
    "teal": (20, 128, 128),
    "cyan": (40, 200, 220),
    "turquoise": (60, 210, 200),
    "blue": (30, 80, 210),
    "navy": (20, 30, 90),
    "indigo": (60, 30, 130),
    "purple": (120, 40, 160),
    "violet": (150, 80, 200),
    "lavender": (190, 170, 230),
    "magenta": (210, 40, 170),
    "pink": (245, 150, 190),
    "brown": (120, 75, 40),
    "tan": (200, 160, 110),
    "beige": (220, 200, 160),
    "khaki": (190, 175, 120),
    "cream": (245, 235, 205),
    "white": (240, 240, 240),
    "ivory": (245, 240, 220),
    "silver": (190, 195, 200),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "charcoal": (60, 62, 66),
    "black": (22, 22, 24),
}
COLOUR_MODIFIERS = {"light": 0.45, "pale": 0.55, "pastel": 0.5, "dark": -0.45, "deep": -0.35, "bright": 0.15}
PATTERNS = {
    "striped": "stripes",
    "stripes": "stripes",
    "stripe": "stripes",
    "pinstripe": "stripes",
    "checked": "checks",
    "checkered": "checks",
    "check": "checks",
    "plaid": "checks",
    "tartan": "checks",
    "gingham": "checks",
    "polka": "dots",
    "dots": "dots",
    "dotted": "dots",
    "spotted": "dots",
    "floral": "floral",
    "flowers": "floral",
    "flowery": "floral",
}
MATERIALS = {
    "denim": "denim",
    "jean": "denim",
    "jeans": "denim",
    "leather": "leather",
    "wool": "knit",
    "woolen": "knit",
    "knit": "knit",
    "knitted": "knit",
    "sweater": "knit",
    "cashmere": "knit",
    "silk": "silk",
    "satin": "silk",
    "linen": "linen",
    "cotton": "linen",
    "tweed": "linen",
    "velvet": "velvet",
    "corduroy": "velvet",
    "sequin": "sparkle",
    "sequined": "sparkle",
    "glitter": "sparkle",
    "metallic": "sparkle",
}


@dataclass(frozen=True)
class Outfit:
    """What the prompt's words ask the garment to look like."""

    colour: RGB
    accent: RGB
    pattern: str | None
    material: str | None


def parse_outfit(prompt: str) -> Outfit:
    """Colour, pattern and material from the outfit words; unknown words still give a stable colour."""
    words = re.findall(r"[a-z]+", prompt.lower())
    colours: list[RGB] = []
    for index, word in enumerate(words):
        if word in COLOURS:
            modifier = COLOUR_MODIFIERS.get(words[index - 1], 0.0) if index else 0.0
            colours.append(_shade(COLOURS[word], modifier))
    pattern = next((PATTERNS[w] for w in words if w in PATTERNS), None)
    material = next((MATERIALS[w] for w in words if w in MATERIALS), None)
    colour = colours[0] if colours else _colour_from_text(prompt)
    accent = colours[1] if len(colours) > 1 else _contrasting(colour)
    return Outfit(colour=colour, accent=accent, pattern=pattern, material=material)


def _shade(colour: RGB, amount: float) -> RGB:
    target = 255 if amount > 0 else 0
    mix = abs(amount)
    r, g, b = (round(c + (target - c) * mix) for c in colour)
    return r, g, b


def _colour_from_text(text: str) -> RGB:
    digest = hashlib.sha256(text.strip().lower().encode()).digest()
    hue = digest[0] / 255
    r, g, b = (round(255 * (0.45 + 0.4 * math.cos(2 * math.pi * (hue + k / 3)))) for k in range(3))
    return r, g, b


def _contrasting(colour: RGB) -> RGB:
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (235, 235, 230) if luma < 140 else _shade(colour, -0.6)


# A shirt outline (neckline, shoulders, sleeves, body) in fractions of a portrait frame; landscape frames
# narrow it around the centre. Without a segmentation model this is where an upper-body photo's torso is.
SHIRT_OUTLINE: tuple[tuple[float, float], ...] = (
    (0.40, 0.50),  # neckline, left
    (0.50, 0.60),  # bottom of the V
    (0.60, 0.50),  # neckline, right
    (0.80, 0.535),  # right shoulder
    (0.97, 0.68),  # right sleeve
    (0.99, 1.00),
    (0.01, 1.00),
    (0.03, 0.68),  # left sleeve
    (0.20, 0.535),  # left shoulder
)
SLEEVE_SEAMS: tuple[tuple[tuple[float, float], tuple[float, float]], ...] = (
    ((0.78, 0.55), (0.82, 1.0)),
    ((0.22, 0.55), (0.18, 1.0)),
)
LANDSCAPE_SHIRT_WIDTH = 0.5


def garment_box(width: int, height: int) -> tuple[int, int, int, int]:
    """A box (left, top, right, bottom) well inside the garment region, for tests that sample colour."""
    half = 0.21 if height >= width else 0.1
    return int(width * (0.5 - half)), int(height * 0.69), int(width * (0.5 + half)), int(height * 0.91)


def _shirt_points(
    points: tuple[tuple[float, float], ...], width: int, height: int
) -> list[tuple[float, float]]:
    squeeze = 1.0 if height >= width else LANDSCAPE_SHIRT_WIDTH
    return [((0.5 + (x - 0.5) * squeeze) * width, y * height) for x, y in points]


def load_photo(image_bytes: bytes, size: tuple[int, int]) -> Image.Image:
    """Decode a photo and cover-crop it to the frame size (a no-op resize for client-prepared images)."""
    with Image.open(io.BytesIO(image_bytes)) as opened:
        photo = ImageOps.exif_transpose(opened).convert("RGB")
    if photo.size == size:
        return photo
    return ImageOps.fit(photo, size, method=Image.Resampling.LANCZOS)


def synthetic_figure(size: tuple[int, int], prompt: str) -> Image.Image:
    """A simple person-shaped figure on a colour field, for text-only streams."""
    width, height = size
    top = np.array(_shade(_colour_from_text("bg" + prompt), -0.55), dtype=np.float32)
    bottom = np.array(_shade(_colour_from_text("bg" + prompt), -0.2), dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    field = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1)
    image = Image.fromarray(field.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    neck_left, _v, neck_right, *_rest = _shirt_points(SHIRT_OUTLINE, width, height)
    cx, neck_y = width / 2, neck_left[1]
    head_r = (neck_right[0] - neck_left[0]) * 0.75
    head_cy = neck_y - head_r * 1.5
    skin = (214, 170, 140)
    draw.rectangle((cx - head_r * 0.35, head_cy, cx + head_r * 0.35, neck_y + height * 0.05), fill=skin)
    draw.ellipse((cx - head_r, head_cy - head_r * 1.2, cx + head_r, head_cy + head_r * 1.1), fill=skin)
    draw.ellipse(
        (cx - head_r, head_cy - head_r * 1.3, cx + head_r, head_cy - head_r * 0.1), fill=(60, 40, 30)
    )
    draw.polygon(_shirt_points(SHIRT_OUTLINE, width, height), fill=(150, 150, 150))
    return image


def _garment_mask(width: int, height: int) -> NDArray[np.float32]:
    """1 inside the shirt outline, 0 outside, with a soft edge."""
    outline = Image.new("L", (width, height), 0)
    ImageDraw.Draw(outline).polygon(_shirt_points(SHIRT_OUTLINE, width, height), fill=255)
    softened = outline.filter(ImageFilter.GaussianBlur(radius=max(1.0, min(width, height) / 90)))
    return _f32(np.asarray(softened, dtype=np.float32) / 255)


def _seam_shading(width: int, height: int) -> NDArray[np.float32]:
    """A factor below 1 along the sleeve seams, so the recoloured region reads as a sewn garment."""
    seams = Image.new("L", (width, height), 0)
    seam_width = max(1, min(width, height) // 150)
    for start, end in SLEEVE_SEAMS:
        line = _shirt_points((start, end), width, height)
        ImageDraw.Draw(seams).line(line, fill=255, width=seam_width)
    shadow = np.asarray(seams.filter(ImageFilter.GaussianBlur(seam_width)), dtype=np.float32) / 255
    return _f32(1 - 0.4 * shadow)


def _f32(values: object) -> NDArray[np.float32]:
    return np.asarray(values, dtype=np.float32)


def _pattern_mask(pattern: str | None, width: int, height: int) -> NDArray[np.float32]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    period = max(6.0, min(width, height) / 14)
    if pattern == "stripes":
        return _f32(((xs // (period / 2)) % 2).astype(np.float32))
    if pattern == "checks":
        return _f32((((xs // period) + (ys // period)) % 2).astype(np.float32))
    if pattern == "dots":
        shifted = xs + (ys // period % 2) * period / 2
        dx = shifted % period - period / 2
        dy = ys % period - period / 2
        return _f32((dx * dx + dy * dy < (period * 0.28) ** 2).astype(np.float32))
    if pattern == "floral":
        shifted = xs + (ys // period % 2) * period / 2
        dx = shifted % period - period / 2
        dy = ys % period - period / 2
        radius = np.sqrt(dx * dx + dy * dy)
        petals = period * 0.38 * (0.55 + 0.45 * np.cos(5 * np.arctan2(dy, dx)))
        return _f32((radius < petals).astype(np.float32))
    return _f32(np.zeros((height, width), dtype=np.float32))


def _texture(material: str | None, width: int, height: int, seed: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.standard_normal((height, width)).astype(np.float32)
    if material == "denim":
        return _f32(1.0 + 0.09 * np.sin((xs + ys) * math.pi / 2) + 0.05 * noise)
    if material == "leather":
        coarse = np.asarray(
            Image.fromarray(((noise + 3) * 40).clip(0, 255).astype(np.uint8))
            .resize((max(1, width // 24), max(1, height // 24)))
            .resize((width, height), Image.Resampling.BICUBIC),
            dtype=np.float32,
        )
        return _f32(
            0.9 + 0.25 * (coarse / 255) + 0.12 * np.exp(-(((xs - width * 0.42) / (width * 0.08)) ** 2))
        )
    if material == "knit":
        return _f32(
            1.0 + 0.12 * np.abs(np.sin(xs * math.pi / 5 + np.abs(np.sin(ys * math.pi / 8)) * 2)) - 0.06
        )
    if material == "silk":
        return _f32(0.95 + 0.2 * np.exp(-(((xs - ys * 0.3 - width * 0.35) / (width * 0.12)) ** 2)))
    if material == "linen":
        return _f32(1.0 + 0.04 * np.sin(xs * math.pi / 1.5) * np.sin(ys * math.pi / 1.5) + 0.04 * noise)
    if material == "velvet":
        return _f32(0.85 + 0.2 * np.clip(noise * 0.2 + 0.5, 0, 1))
    if material == "sparkle":
        return _f32(1.0 + 0.6 * (noise > 2.2).astype(np.float32))
    return _f32(np.ones((height, width), dtype=np.float32))


def dress(base: Image.Image, prompt: str) -> Frame:
    """The base picture with the garment region recoloured, patterned and textured from the prompt."""
    outfit = parse_outfit(prompt)
    pixels = np.asarray(base, dtype=np.float32)
    height, width = pixels.shape[:2]
    luma = (pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255
    shading = (0.45 + 0.75 * luma)[:, :, None]
    pattern = _pattern_mask(outfit.pattern, width, height)[:, :, None]
    colours = (
        np.array(outfit.colour, np.float32) * (1 - pattern) + np.array(outfit.accent, np.float32) * pattern
    )
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
    texture = _texture(outfit.material, width, height, seed)[:, :, None]
    seams = _seam_shading(width, height)[:, :, None]
    garment = np.clip(colours * shading * texture * seams, 0, 255)
    mask = (_garment_mask(width, height) * 0.92)[:, :, None]
    return (pixels * (1 - mask) + garment * mask).astype(np.uint8)


def caption_overlay(size: tuple[int, int], prompt: str) -> Image.Image:
    """A transparent layer with the EMULATED badge and the applied prompt as a caption."""
    width, height = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    badge_font = ImageFont.load_default(size=max(9, height // 30))
    margin = max(4, height // 80)
    left, _top, right, bottom = draw.textbbox((0, 0), MARKER_TEXT, font=badge_font)
    draw.rectangle(
        (margin, margin, margin + right - left + 2 * margin, margin + bottom + margin),
        fill=(200, 20, 30, 230),
    )
    draw.text(
        (2 * margin - left, margin + margin // 2), MARKER_TEXT, font=badge_font, fill=(255, 255, 255, 255)
    )
    if prompt:
        font_size = max(10, height // 42)
        font = ImageFont.load_default(size=font_size)
        average = max(1.0, draw.textlength("abcdefghij", font=font) / 10)
        lines = textwrap.wrap(prompt, width=max(8, int((width - 4 * margin) / average)))[:3]
        line_height = font_size + max(2, font_size // 4)
        box_top = height - margin - line_height * len(lines) - margin
        draw.rectangle((0, box_top, width, height), fill=(0, 0, 0, 150))
        for number, line in enumerate(lines):
            draw.text((2 * margin, box_top + margin + number * line_height), line, font=font, fill="white")
    return layer


@dataclass
class SceneArt:
    """The still picture of a scene plus its caption; frames are gentle moves over it."""

    dressed: Frame
    overlay: Image.Image

    @classmethod
    def build(cls, size: tuple[int, int], prompt: str, image_bytes: bytes | None) -> SceneArt:
        """Dress the photo (or a drawn figure) for the prompt and prepare the caption layer."""
        base = load_photo(image_bytes, size) if image_bytes is not None else synthetic_figure(size, prompt)
        return cls(dressed=dress(base, prompt), overlay=caption_overlay(size, prompt))

    def frame(self, phase: float) -> Frame:
        """The frame at a point of the loop (phase 0..1): a slow zoom and sway, then the caption."""
        height, width = self.dressed.shape[:2]
        angle = 2 * math.pi * phase
        zoom = 1.05 + 0.025 * math.sin(angle)
        box_w, box_h = width / zoom, height / zoom
        x0 = (width - box_w) / 2 + (width - box_w) * 0.35 * math.sin(angle)
        y0 = (height - box_h) / 2 + (height - box_h) * 0.25 * math.cos(angle)
        still = Image.fromarray(self.dressed, "RGB")
        moved = still.resize((width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + box_w, y0 + box_h))
        composed = Image.alpha_composite(moved.convert("RGBA"), self.overlay).convert("RGB")
        return np.asarray(composed, dtype=np.uint8)


def crossfade(old: Frame, new: Frame, weight: float) -> Frame:
    """`new` blended over `old` with the given weight (0 = old, 1 = new)."""
    mixed = old.astype(np.float32) * (1 - weight) + new.astype(np.float32) * weight
    return mixed.astype(np.uint8)


def idle_frame(size: tuple[int, int]) -> Frame:
    """The dark frame shown while no stream runs."""
    width, height = size
    return np.full((height, width, 3), IDLE_COLOUR, dtype=np.uint8)
