"""The issue-2 demo: a bad photo is one error line; a run writes frames and the recording."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from PIL import Image

from bot import demo
from bot.emulator import EmulatorConfig


def args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {"photo": None, "outfit": None, "out": "out", "landscape": False}
    values.update(overrides)
    return argparse.Namespace(**values)


def test_bad_photo_is_one_clear_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"this is not an image")
    assert demo.main(args(photo=str(bad), out=str(tmp_path / "out"))) == 1
    assert demo.main(args(photo=str(tmp_path / "missing.jpg"), out=str(tmp_path / "out"))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "not a readable image" in err[0] and "not found" in err[1]
    assert not (tmp_path / "out").exists()


async def test_demo_writes_frames_and_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ODYSSEY_API_KEY", raising=False)
    monkeypatch.setattr(demo, "SECONDS_PER_OUTFIT", 0.8)
    await demo.run_demo(
        demo.SAMPLE_PHOTO,
        ["a red wool coat", "a blue denim jacket"],
        tmp_path,
        portrait=True,
        emulator_config=EmulatorConfig.small(),
    )
    check_outputs(tmp_path)


def check_outputs(out: Path) -> None:
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 2
    with Image.open(frames[0]) as image:
        assert image.height > image.width
    assert (out / "recording.mp4").read_bytes()[4:8] == b"ftyp"
    with Image.open(out / "thumbnail.jpg") as thumbnail:
        assert thumbnail.format == "JPEG"
