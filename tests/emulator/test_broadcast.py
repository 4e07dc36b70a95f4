"""`broadcast: true`: `broadcast_ready`, then a WHEP spectator (§16) receives the same picture."""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urljoin

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from bot.emulator import Emulator
from tests.emulator.peer import TIMEOUT, connected_peer, start_message
from tests.emulator.test_stream import garment_mean
from tests.helpers import until


async def whep_offer(pc: RTCPeerConnection) -> str:
    """What an official spectator sends: recvonly video then audio, candidates gathered into the SDP."""
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def garment_turns(track: MediaStreamTrack, channel: int) -> None:
    async with asyncio.timeout(10):
        while True:
            mean = garment_mean(await track.recv())
            if mean[channel] > max(mean[i] for i in range(3) if i != channel) + 40:
                return


async def test_a_whep_spectator_sees_the_stream_and_its_prompt_changes(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer, httpx.AsyncClient(timeout=TIMEOUT) as http:
        peer.send({**start_message("a red shirt"), "broadcast": True})
        started = await peer.expect("stream_started")
        ready = await peer.expect("broadcast_ready")
        assert ready["webrtc_url"].startswith(emulator.url) and ready["spectator_token"]
        whep = f"{ready['webrtc_url']}/whep"
        assert (await http.get(f"{emulator.url}/config")).json() == {"iceServers": []}

        spectator = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        got_track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        @spectator.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                got_track.set_result(track)

        try:
            offer = await whep_offer(spectator)
            answer = await http.post(
                f"{whep}?token={quote(ready['spectator_token'])}",
                content=offer,
                headers={"Content-Type": "application/sdp"},
            )
            assert answer.status_code == 201, answer.text
            assert answer.headers["content-type"].startswith("application/sdp")
            await spectator.setRemoteDescription(RTCSessionDescription(sdp=answer.text, type="answer"))
            track = await asyncio.wait_for(got_track, TIMEOUT)
            await garment_turns(track, 0)  # red, like the interactive client
            peer.send({"type": "update", "prompt": "a blue shirt"})
            await peer.expect("update_acknowledged")
            await garment_turns(track, 2)  # and the spectator follows the change
            assert emulator.broadcasts.spectator_count(started["stream_id"]) == 1
            location = urljoin(whep, answer.headers["Location"])
            assert (await http.delete(location)).status_code == 200
            assert emulator.broadcasts.spectator_count(started["stream_id"]) == 0
            assert (await http.delete(location)).status_code == 404
        finally:
            await spectator.close()
        peer.send({"type": "interactive_stream_end"})
        await peer.expect("stream_ended")
        ended = await http.post(f"{whep}?token={quote(ready['spectator_token'])}", content=offer)
        assert ended.status_code == 404  # the stream is over


async def test_whep_refuses_bad_tokens_and_plain_streams_send_no_broadcast_ready(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer, httpx.AsyncClient(timeout=TIMEOUT) as http:
        peer.send({**start_message("a green shirt"), "broadcast": True})
        await peer.expect("stream_started")
        ready = await peer.expect("broadcast_ready")
        whep = f"{ready['webrtc_url']}/whep"
        assert (await http.post(f"{whep}?token=forged", content="v=0")).status_code == 401
        other = f"{emulator.url}/broadcast/another-stream/whep?token={quote(ready['spectator_token'])}"
        assert (await http.post(other, content="v=0")).status_code == 401
        not_sdp = await http.post(f"{whep}?token={quote(ready['spectator_token'])}", content="hello")
        assert not_sdp.status_code == 400
        peer.send({"type": "interactive_stream_end"})
        await peer.expect("stream_ended")
        peer.send(start_message("a yellow shirt"))  # broadcast: false
        await peer.expect("stream_started")
        peer.send({"type": "interactive_stream_end"})
        assert (await peer.expect("stream_ended")) == {"type": "stream_ended"}  # nothing in between


async def test_a_spectator_that_vanishes_without_delete_is_dropped(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer, httpx.AsyncClient(timeout=TIMEOUT) as http:
        peer.send({**start_message("a white shirt"), "broadcast": True})
        stream_id = (await peer.expect("stream_started"))["stream_id"]
        ready = await peer.expect("broadcast_ready")
        spectator = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            answer = await http.post(
                f"{ready['webrtc_url']}/whep?token={quote(ready['spectator_token'])}",
                content=await whep_offer(spectator),
            )
            await spectator.setRemoteDescription(RTCSessionDescription(sdp=answer.text, type="answer"))
            await until(lambda: spectator.connectionState == "connected", 10)  # aiortc state
            assert emulator.broadcasts.spectator_count(stream_id) == 1
        finally:
            await spectator.close()  # no DELETE, like a closed browser tab
        await until(lambda: not emulator.broadcasts.spectator_count(stream_id), 10)  # emulator state
