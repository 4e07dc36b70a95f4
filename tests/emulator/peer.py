"""A bare-bones Odyssey client for emulator tests: httpx, websockets and an aiortc answerer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from PIL import Image
from websockets.asyncio.client import ClientConnection

from bot.emulator import DEV_API_KEY
from tests.helpers import bearer

TIMEOUT = 20.0


async def get_token(http: httpx.AsyncClient, api_key: str = DEV_API_KEY) -> str:
    """Exchange an API key for an access token."""
    response = await http.post("/auth/token", json={"api_key": api_key})
    response.raise_for_status()
    return str(response.json()["access_token"])


async def request_session(http: httpx.AsyncClient, token: str) -> tuple[str, str, str]:
    """A session id, its signaling URL and a session token."""
    headers = bearer(token)
    response = await http.post("/sessions/request", json={}, headers=headers)
    response.raise_for_status()
    session = response.json()
    minted = await http.post("/sessions/token", json={"session_id": session["session_id"]}, headers=headers)
    minted.raise_for_status()
    return session["session_id"], session["signalling_url"], minted.json()["session_token"]


@dataclass
class Peer:
    """One connected test client: the websocket, the answering peer connection and received messages."""

    ws: ClientConnection
    pc: RTCPeerConnection
    offer_sdp: str
    messages: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    channels: dict[str, Any] = field(default_factory=dict)
    track: MediaStreamTrack | None = None
    ws_messages: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_ready(self) -> None:
        """Wait for the video track, an open `clientToStreamer` channel and the `streamerToClient` one."""
        await asyncio.wait_for(self.ready.wait(), TIMEOUT)

    def check_ready(self) -> None:
        """Set `ready` once the track and both channels are there (the one we send on open)."""
        # The two channels are announced separately: messages from the streamer need the second one.
        channel = self.channels.get("clientToStreamer")
        both = "streamerToClient" in self.channels
        if self.track is not None and both and channel is not None and channel.readyState == "open":
            self.ready.set()

    def send(self, message: dict[str, Any]) -> None:
        """Send a message on `clientToStreamer`."""
        self.channels["clientToStreamer"].send(json.dumps(message))

    async def send_ws(self, message: dict[str, Any]) -> None:
        """Send a message on the signaling websocket."""
        await self.ws.send(json.dumps(message))

    async def expect(self, kind: str, wait: float = TIMEOUT) -> dict[str, Any]:
        """The next `streamerToClient` message, which must have this type."""
        message = await asyncio.wait_for(self.messages.get(), wait)
        assert message.get("type") == kind, message
        return message

    async def frame(self, wait: float = TIMEOUT) -> av.VideoFrame:
        """The next decoded video frame."""
        assert self.track is not None
        frame = await asyncio.wait_for(self.track.recv(), wait)
        assert isinstance(frame, av.VideoFrame)
        return frame

    async def close(self) -> None:
        """Close the peer connection and the websocket."""
        with contextlib.suppress(Exception):
            await self.ws.send(json.dumps({"type": "client_disconnecting"}))
        await self.pc.close()
        await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


async def connect_peer(signalling_url: str, session_id: str, session_token: str) -> Peer:
    """Open the signaling websocket, answer the emulator's offer and start reading messages."""
    ws = await websockets.connect(
        f"{signalling_url}/client/{session_id}?token={session_token}", max_size=64 * 1024 * 1024
    )
    offer = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert offer["type"] == "offer", offer
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peer = Peer(ws=ws, pc=pc, offer_sdp=offer["sdp"])

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        peer.track = track
        peer.check_ready()

    @pc.on("datachannel")
    def on_datachannel(channel: Any) -> None:
        peer.channels[channel.label] = channel
        channel.on("open", peer.check_ready)
        peer.check_ready()
        if channel.label == "streamerToClient":
            channel.on("message", lambda data: peer.messages.put_nowait(json.loads(data)))

    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await ws.send(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}))

    async def read_ws() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in ws:
                peer.ws_messages.append(json.loads(text))

    peer.reader = asyncio.create_task(read_ws())
    return peer


@contextlib.asynccontextmanager
async def connected_peer(base_url: str, api_key: str = DEV_API_KEY) -> AsyncIterator[Peer]:
    """REST handshake + signaling + WebRTC; yields a ready Peer and closes it afterwards."""
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as http:
        token = await get_token(http, api_key)
        session_id, url, session_token = await request_session(http, token)
    peer = await connect_peer(url, session_id, session_token)
    try:
        await peer.wait_ready()
        yield peer
    finally:
        await peer.close()


def photo_data_url(colour: tuple[int, int, int], size: tuple[int, int] = (300, 400)) -> str:
    """A plain-colour JPEG as a data URL (sizes other than the frame size get cover-cropped)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def start_message(prompt: str, image: str | None = None, portrait: bool = True) -> dict[str, Any]:
    """An `interactive_stream_start` as the official Python SDK sends it."""
    return {
        "type": "interactive_stream_start",
        "prompt": prompt,
        "portrait": portrait,
        "input_image_base64": image,
        "broadcast": False,
    }
