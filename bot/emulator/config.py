"""Settings and runtime fault switches of the emulator."""

from __future__ import annotations

from dataclasses import dataclass, field

DEV_API_KEY = "ody_emulator_dev_key"
PORTRAIT_SIZE = (704, 1280)
LANDSCAPE_SIZE = (1280, 704)
MAX_IMAGE_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class ApiKey:
    """What one accepted API key may do."""

    disabled: bool = False
    privileged: bool = False
    concurrency_limit: int | None = None


@dataclass
class EmulatorConfig:
    """Everything configurable about the emulator; tests shrink sizes, fps and limits."""

    host: str = "127.0.0.1"
    port: int = 0
    api_keys: dict[str, ApiKey] = field(default_factory=lambda: {DEV_API_KEY: ApiKey()})
    fps: int = 24
    scale: float = 1.0
    loop_seconds: float = 2.0
    transition_seconds: float = 0.5
    vp8_bitrate: int = 1_000_000
    concurrency_limit: int = 5
    streamer_slots: int = 16
    stream_cap_seconds: float = 150.0
    idle_timeout_seconds: float | None = 40.0
    connection_max_seconds: float | None = 3600.0
    access_token_ttl_seconds: float = 3600.0
    session_token_ttl_seconds: float = 600.0
    unclaimed_session_seconds: float = 600.0
    max_image_bytes: int = MAX_IMAGE_BYTES
    stream_start_delay_seconds: float = 0.0
    signed_url_ttl_seconds: float = 3600.0
    preview_seconds: float = 3.0
    recordings_dir: str | None = None
    simulation_step_seconds: float = 1.0
    simulation_queue_cap: int = 10
    render_workers: int = 2

    @classmethod
    def small(cls, **overrides: object) -> EmulatorConfig:
        """Quarter-size frames at a low frame rate: cheap enough for tests on two cores."""
        settings: dict[str, object] = {"scale": 0.25, "fps": 8, "loop_seconds": 1.0}
        settings.update(overrides)
        return cls(**settings)  # type: ignore[arg-type]

    def frame_size(self, portrait: bool) -> tuple[int, int]:
        """Width and height of the video for one orientation, rounded to multiples of 16."""
        width, height = PORTRAIT_SIZE if portrait else LANDSCAPE_SIZE
        return _round16(width * self.scale), _round16(height * self.scale)

    def key(self, api_key: str) -> ApiKey | None:
        """The settings of an accepted key, or None for an unknown one."""
        return self.api_keys.get(api_key)


def _round16(value: float) -> int:
    return max(16, round(value / 16) * 16)


@dataclass
class Faults:
    """Runtime fault injection: tests flip these on a running emulator (`emu.faults`)."""

    fail_503_times: int = 0
    force_429_code: str | None = None
    signaling_error_reason: str | None = None
    ws_close_code_on_connect: int | None = None
    stream_error_reason: str | None = None
    stream_error_message: str = "Injected stream error"
    drop_peer_after_seconds: float | None = None
    stream_start_delay_seconds: float | None = None
