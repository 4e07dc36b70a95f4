"""Odyssey platform client: REST (httpx), signaling websocket and WebRTC (aiortc)."""

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
    "StreamDurationExceededError",
    "StreamFrame",
    "StreamRecording",
    "StreamRecordingsList",
    "VideoFrame",
]
