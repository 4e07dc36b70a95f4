"""Odyssey platform client: REST (httpx), signaling websocket and WebRTC (aiortc).

Shaped like the official Python SDK (`Odyssey.connect/start_stream/interact/end_stream/disconnect`,
recordings, simulations, client credentials), without its flaws: every wait is bounded, pending requests
fail when the connection drops, callbacks may be async, and frames never pile up. The engine reads decoded
frames from `client.frames` (a bounded `FrameQueue` of `StreamFrame`, native pixel format, stream-relative
seconds); `on_video_frame` gets the SDK's RGB `VideoFrame`, converted in a worker thread. Spectators of a
broadcast join with `connect_to_stream(webrtc_url, spectator_token)` (WHEP, no API key).
"""

from bot.odyssey.client import Odyssey
from bot.odyssey.connection import ConnectionTimeouts
from bot.odyssey.errors import (
    AccountSuspendedError,
    ConcurrentLimitReachedError,
    MonthlyLimitReachedError,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStreamError,
    OdysseyUsageError,
    RateLimitError,
    StreamDurationExceededError,
    TooManySpectatorsError,
)
from bot.odyssey.frames import FrameQueue, StreamFrame
from bot.odyssey.models import (
    BroadcastInfo,
    Capabilities,
    ClientCredentials,
    ConnectionStatus,
    Recording,
    SimulationJobDetail,
    SimulationJobInfo,
    SimulationJobsList,
    SimulationJobStatus,
    SimulationStream,
    StreamRecording,
    StreamRecordingsList,
    VideoFrame,
)
from bot.odyssey.signaling import RetryPolicy
from bot.odyssey.spectator import SpectatorConnection, SpectatorTimeouts, connect_to_stream

__all__ = [
    "AccountSuspendedError",
    "BroadcastInfo",
    "Capabilities",
    "ClientCredentials",
    "ConcurrentLimitReachedError",
    "ConnectionStatus",
    "ConnectionTimeouts",
    "FrameQueue",
    "MonthlyLimitReachedError",
    "Odyssey",
    "OdysseyAuthError",
    "OdysseyConnectionError",
    "OdysseyError",
    "OdysseyStreamError",
    "OdysseyUsageError",
    "RateLimitError",
    "Recording",
    "RetryPolicy",
    "SimulationJobDetail",
    "SimulationJobInfo",
    "SimulationJobStatus",
    "SimulationJobsList",
    "SimulationStream",
    "SpectatorConnection",
    "SpectatorTimeouts",
    "StreamDurationExceededError",
    "StreamFrame",
    "StreamRecording",
    "StreamRecordingsList",
    "TooManySpectatorsError",
    "VideoFrame",
    "connect_to_stream",
]
