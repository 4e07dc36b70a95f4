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
    port: int = 0  # 0 picks a free port; read the result from `Emulator.url`
    api_keys: dict[str, ApiKey] = field(default_factory=lambda: {DEV_API_KEY: ApiKey()})
    fps: int = 24
    scale: float = 1.0  # frame size factor on 704x1280 / 1280x704 (rounded to multiples of 16)
    loop_seconds: float = 2.0  # length of each scene's pre-encoded loop
    transition_seconds: float = 0.5  # crossfade when the prompt changes
    vp8_bitrate: int = 1_000_000
    concurrency_limit: int = 5  # sessions per key (unless the key sets its own) -> 429
    streamer_slots: int = 16  # sessions in total -> 503 (clients queue)
    stream_cap_seconds: float = 150.0  # -> session_timeout, then the connection drops
    # Idle = no stream running (§12 "inactivity", §20.2 "40 s without a stream"). Both official clients send
    # a keepalive every 10 s, so a timer they reset could never fire for a live client; set
    # keepalive_resets_idle for §20.2's other reading (only a silent, half-dead client times out).
    idle_timeout_seconds: float | None = 40.0  # None disables
    keepalive_resets_idle: bool = False
    connection_max_seconds: float | None = 3600.0  # -> signaling error duration_limit_reached
    access_token_ttl_seconds: float = 3600.0
    session_token_ttl_seconds: float = 600.0  # only gates opening the websocket
    unclaimed_session_seconds: float = 600.0  # a session nobody connects to frees its slot after this
    max_image_bytes: int = MAX_IMAGE_BYTES
    stream_start_delay_seconds: float = 0.0  # extra wait before stream_started
    signed_url_ttl_seconds: float = 3600.0  # recording links and spectator tokens
    max_spectators_per_stream: int = 8  # WHEP viewers of one `broadcast: true` stream -> 503
    preview_seconds: float = 3.0
    recordings_dir: str | None = None  # None: a temporary folder removed by stop()
    simulation_step_seconds: float = 1.0  # time between simulation job status changes
    simulation_queue_cap: int = 10  # pending jobs per key -> 429
    render_workers: int = 2  # threads that render and encode scenes and recordings

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

    fail_503_times: int = 0  # the next N /sessions/request answer 503 (counts down)
    force_429_code: str | None = None  # every /sessions/request answers 429 with this §5.1 code
    signaling_error_reason: str | None = None  # websocket sends {"type":"error","reason":…} and closes
    ws_close_code_on_connect: int | None = None  # websocket closes with this code right after the offer
    stream_error_reason: str | None = None  # every stream start is refused with this reason
    stream_error_message: str = "Injected stream error"
    update_error_reason: str | None = None  # every prompt update is refused with this reason
    drop_peer_after_seconds: float | None = None  # the peer connection closes this long into a stream
    stream_start_delay_seconds: float | None = None  # overrides the configured start delay
    # A recording appears only this long after its stream ended: until then GET /recordings/{id} answers 404
    # and /stream-recordings leaves it out (the platform still processing it).
    recording_delay_seconds: float | None = None
    recordings_missing: bool = False  # every recording answers 404 and is left out of the list (lost)
