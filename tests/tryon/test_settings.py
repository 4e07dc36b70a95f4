"""Engine settings: the limits they refuse, and the frame memory bound of one live session."""

from __future__ import annotations

import pytest

from bot.tryon.settings import MIB, SESSION_FRAME_MEMORY_LIMIT_BYTES, EngineSettings


def test_the_defaults_keep_a_session_under_30_mib_of_frames() -> None:
    settings = EngineSettings()
    # 73 kept 360x656 frames (~354 KB each), one 704x1280 source frame (~1.35 MB), and the highlight reel:
    # 3 MiB of JPEG frames plus the one it is compressing.
    kept_frame = 360 * 656 * 3 // 2
    assert settings.frame_memory_bytes == 73 * kept_frame + 704 * 1280 * 3 // 2 + 3 * MIB + kept_frame
    assert settings.frame_memory_bytes < SESSION_FRAME_MEMORY_LIMIT_BYTES == 30 * MIB


def test_the_highlight_memory_counts_toward_the_bound() -> None:
    with pytest.raises(ValueError, match="MiB of frames per session"):
        EngineSettings(highlight_memory_bytes=4 * MIB)


@pytest.mark.parametrize(
    "overrides",
    [
        {"buffer_seconds": 10.0},  # 121 frames of 360 px
        {"snippet_fps": 24},
        {"snippet_width": 480, "buffer_seconds": 5.0},
    ],
)
def test_settings_past_the_memory_bound_are_refused(overrides: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="MiB of frames per session"):
        EngineSettings(**overrides)  # type: ignore[arg-type]


def test_a_smaller_width_buys_a_longer_window() -> None:
    assert EngineSettings(snippet_width=240, buffer_seconds=12.0).frame_memory_bytes < 30 * MIB


@pytest.mark.parametrize(
    "overrides",
    [
        {"slots": 0},
        {"rollover_margin_seconds": 150.0},
        {"snippet_seconds": 0.0},
        {"buffer_seconds": 1.0, "snippet_seconds": 2.0},
    ],
)
def test_inconsistent_settings_are_refused(overrides: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EngineSettings(**overrides)  # type: ignore[arg-type]
