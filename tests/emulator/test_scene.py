"""Rendering: outfit words, garment-only recolouring, cover-crop, captions, encoded loops."""

from __future__ import annotations

import asyncio
import io

import av
import numpy as np
from PIL import Image

from bot.emulator import garment_box, parse_outfit
from bot.emulator.loops import SceneLibrary
from bot.emulator.scene import COLOURS, SceneArt, idle_frame, load_photo


def test_outfit_words() -> None:
    outfit = parse_outfit("A red and white striped denim shirt")
    assert outfit.colour == COLOURS["red"] and outfit.accent == COLOURS["white"]
    assert outfit.pattern == "stripes" and outfit.material == "denim"
    assert parse_outfit("polka dot dress").pattern == "dots"
    assert parse_outfit("plaid flannel").pattern == "checks"
    assert parse_outfit("floral silk blouse").pattern == "floral"
    assert parse_outfit("floral silk blouse").material == "silk"
    light, plain = parse_outfit("light blue tee").colour, parse_outfit("blue tee").colour
    assert sum(light) > sum(plain)
    assert parse_outfit("something else") == parse_outfit("something else")
    assert parse_outfit("something else").colour != parse_outfit("another thing").colour


def photo(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def region_mean(frame: np.ndarray, box: tuple[int, int, int, int]):
    left, top, right, bottom = box
    return frame[top:bottom, left:right].reshape(-1, 3).mean(axis=0)


def test_only_the_garment_changes_and_the_caption_is_drawn() -> None:
    size = (176, 320)
    image = photo((500, 300), (30, 160, 40))  # landscape source, cover-cropped to portrait
    assert load_photo(image, size).size == size
    red = SceneArt.build(size, "red shirt", image)
    blue = SceneArt.build(size, "blue shirt", image)
    box = garment_box(*size)
    red_garment, blue_garment = region_mean(red.dressed, box), region_mean(blue.dressed, box)
    assert red_garment[0] > red_garment[1] + 60 and blue_garment[2] > blue_garment[1] + 40
    head = (60, 80, 116, 140)
    assert np.array_equal(red.dressed[80:140, 60:116], blue.dressed[80:140, 60:116])
    assert region_mean(red.dressed, head)[1] > 140
    frame = red.frame(0.0)
    assert frame.shape == (320, 176, 3)
    badge = frame[2:12, 2:40].reshape(-1, 3).mean(axis=0)
    assert badge[0] > badge[1] + 60  # the red EMULATED badge
    assert not np.array_equal(red.frame(0.0), red.frame(0.25))  # gentle motion


def test_the_garment_has_shoulders_and_sleeves_not_just_a_chest_patch() -> None:
    size = (176, 320)
    image = photo(size, (128, 128, 128))
    red, blue = SceneArt.build(size, "red shirt", image), SceneArt.build(size, "blue shirt", image)
    for x, y in ((0.25, 0.56), (0.75, 0.56), (0.06, 0.9), (0.94, 0.9)):  # shoulders, sleeves
        point = (int(y * size[1]), int(x * size[0]))
        assert red.dressed[point][0] > red.dressed[point][2] + 60, (x, y)
        assert blue.dressed[point][2] > blue.dressed[point][0] + 60, (x, y)
    for x, y in ((0.1, 0.45), (0.9, 0.45), (0.5, 0.52)):  # beside the neck and inside the V-neck
        point = (int(y * size[1]), int(x * size[0]))
        assert np.array_equal(red.dressed[point], blue.dressed[point]), (x, y)


def test_text_only_scene_and_idle_frame() -> None:
    figure = SceneArt.build((176, 320), "green wool sweater", None)
    assert region_mean(figure.dressed, garment_box(176, 320))[1] > 100
    assert idle_frame((176, 320)).mean() < 20


async def test_loops_start_with_a_keyframe_and_are_cached() -> None:
    library = SceneLibrary(fps=8, loop_seconds=1.0, transition_seconds=0.5, bitrate=300_000, workers=1)
    try:
        first, again = await asyncio.gather(
            library.scene((176, 320), "red shirt", None), library.scene((176, 320), "red shirt", None)
        )
        assert first is again and library.encoded_scene_count == 1
        other = await library.scene((176, 320), "blue shirt", None)
        transition = await library.transition(first, other, 3)
        assert len(first.loop.packets) == 8 and len(transition.packets) == 8 - 3  # from phase 3 to the wrap
        assert library.transition_start(2, 1) == 3 and library.transition_start(5, 1) == 0
        for clip in (first.loop, transition):
            # VP8 frame tag: bit 0 of the first byte is 0 for a keyframe, 1 for an inter frame.
            assert clip.packets[0][0] & 1 == 0 and all(p[0] & 1 == 1 for p in clip.packets[1:])
            decoder = av.CodecContext.create("libvpx", "r")  # a fresh decoder can start at packet 0
            assert len(decoder.decode(av.Packet(clip.packets[0]))) == 1
    finally:
        await library.close()
