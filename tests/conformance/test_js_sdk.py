"""Conformance with a client nobody here wrote: the official JS SDK in headless Chromium vs our emulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.emulator import ApiKey, Emulator, EmulatorConfig
from bot.odyssey import ClientCredentials, Odyssey
from tests.conftest import EmulatorFactory

JS_DIR = Path(__file__).parent / "js"
RUNNER = JS_DIR / "runner.mjs"
SAMPLE_PHOTO = Path(__file__).parents[2] / "examples" / "astronaut.jpg"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
NPM_PACKAGES = ("@odysseyml/odyssey", "playwright-core")
API_KEY = "ody_conformance_key"
DISABLED_KEY = "ody_conformance_disabled"
LIMITED_KEY = "ody_conformance_no_slots"
RUNNER_TIMEOUT_SECONDS = 60.0
LOOPBACK = "127.0.0.1"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

Report = dict[str, Any]


def missing_prerequisite() -> str | None:
    """Why the browser test cannot run here, or None when Chromium, node and the npm packages are present."""
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not on PATH (Debian: apt-get install nodejs npm)"
    for package in NPM_PACKAGES:
        if not (JS_DIR / "node_modules" / package / "package.json").exists():
            return f"npm package {package} is not installed in {JS_DIR} (run `make js-deps`)"
    return None


@pytest.fixture
def browser_prerequisites() -> None:
    missing = missing_prerequisite()
    if missing is None:
        return
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
    pytest.skip(missing)


async def run_js_sdk(api_url: str, api_key: str, image: Path, *options: str) -> tuple[Report, str]:
    """Run the node runner to completion and return its JSON report and its stderr."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(RUNNER),
        api_url,
        api_key,
        str(image),
        *options,
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUNNER_TIMEOUT_SECONDS)
    finally:
        await stop_process(process)
    lines = stdout.decode(errors="replace").strip().splitlines()
    errors = stderr.decode(errors="replace")
    if not lines:
        pytest.fail(f"runner printed no report (exit {process.returncode}); stderr:\n{errors[-4000:]}")
    report: Report = json.loads(lines[-1])
    return report, errors


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """Ask the runner to stop (playwright closes Chromium on SIGTERM), then kill it if it lingers."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


def explain(report: Report, stderr: str) -> str:
    """Everything needed to see why a run failed, for assertion messages."""
    summary = {key: report.get(key) for key in ("failedStep", "error", "steps", "events", "diagnostics")}
    return json.dumps(summary, indent=1)[-8000:] + f"\nrunner stderr:\n{stderr[-2000:]}"


def step_result(report: Report, label: str) -> Any:
    step = report["steps"][label]
    assert step["ok"], f"step {label} failed: {step.get('error')}"
    return step["result"]


def event_names(report: Report) -> list[str]:
    return [event["name"] for event in report.get("events", [])]


@dataclass
class EmulatorIceView:
    """The ICE candidates the emulator's peer connection held once the browser was connected."""

    local_addresses: set[str] = field(default_factory=set)
    remote_addresses: set[str] = field(default_factory=set)
    connected_peers: int = 0


async def watch_emulator_ice(emulator: Emulator, view: EmulatorIceView) -> None:
    """Record the candidates of every connected peer connection the emulator has, until cancelled."""
    seen: set[int] = set()
    while True:
        for connection in list(emulator.connections):
            pc = connection.pc
            if pc is None or pc.connectionState != "connected":
                continue
            for transceiver in pc.getTransceivers():
                ice = transceiver.sender.transport.transport
                view.local_addresses.update(c.ip for c in ice.iceGatherer.getLocalCandidates())
                view.remote_addresses.update(c.ip for c in ice.getRemoteCandidates())
            if id(pc) not in seen:
                seen.add(id(pc))
                view.connected_peers += 1
        await asyncio.sleep(0.05)


async def test_official_js_sdk_full_flow(
    browser_prerequisites: None, emulator_factory: EmulatorFactory
) -> None:
    emulator = await emulator_factory(api_keys={API_KEY: ApiKey()})
    view = EmulatorIceView()
    watcher = asyncio.create_task(watch_emulator_ice(emulator, view))
    try:
        report, stderr = await run_js_sdk(emulator.url, API_KEY, SAMPLE_PHOTO)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert report["ok"], explain(report, stderr)
    await check_slot_released(emulator)
    check_session(report, emulator.url, emulator.config)
    check_loopback(step_result(report, "ice"), view)
    recording = check_recording(report)
    await check_recording_downloads(recording)


async def test_official_js_sdk_error_paths(
    browser_prerequisites: None, emulator_factory: EmulatorFactory
) -> None:
    keys = {API_KEY: ApiKey(), DISABLED_KEY: ApiKey(disabled=True), LIMITED_KEY: ApiKey(concurrency_limit=0)}
    emulator = await emulator_factory(api_keys=keys)
    emulator.faults.stream_error_reason = "moderation_rejected"
    emulator.faults.stream_error_message = "The outfit prompt was rejected"
    report, stderr = await run_js_sdk(
        emulator.url,
        API_KEY,
        SAMPLE_PHOTO,
        "--scenario=errors",
        f"--disabled-key={DISABLED_KEY}",
        f"--limited-key={LIMITED_KEY}",
    )
    assert report["ok"], explain(report, stderr)

    unknown = step_result(report, "unknownKey")
    assert (unknown["rejected"], unknown["message"], unknown["status"]) == (True, "Invalid API key", "failed")
    disabled = step_result(report, "disabledKey")  # the SDK shows the 403 body's `detail`
    assert disabled["rejected"] and "disabled" in disabled["message"].lower(), disabled
    limited = step_result(report, "limitedKey")
    assert limited["rejected"] and limited["name"] == "ConcurrentLimitReachedError", limited
    assert limited["code"] == "CONCURRENT_LIMIT_REACHED"
    assert limited["details"] == {"active_count": 0, "limit": 0}

    refused = step_result(report, "refusedStart")
    assert refused["rejected"], refused
    assert refused["message"] == "Stream error: moderation_rejected - The outfit prompt was rejected"
    assert refused["status"] == "connected"  # a refused start leaves the connection usable
    stream_errors = [e["detail"] for e in report["events"] if e["name"] == "stream_error"]
    assert stream_errors == [{"reason": "moderation_rejected", "message": "The outfit prompt was rejected"}]


async def test_official_js_sdk_spectator_watches_a_broadcast_over_whep(
    browser_prerequisites: None, emulator_factory: EmulatorFactory
) -> None:
    emulator = await emulator_factory(api_keys={API_KEY: ApiKey()})
    report, stderr = await run_js_sdk(emulator.url, API_KEY, SAMPLE_PHOTO, "--scenario=broadcast")
    assert report["ok"], explain(report, stderr)
    ready = [e["detail"] for e in report["events"] if e["name"] == "broadcast_ready"]
    assert len(ready) == 1 and ready[0]["hlsUrl"] is None
    assert ready[0]["webrtcUrl"].startswith(emulator.url + "/broadcast/") and ready[0]["spectatorToken"]
    watched = step_result(report, "spectate")
    assert watched["codec"] == "video/VP8" and watched["videoTracks"] == 1
    assert (watched["frameWidth"], watched["frameHeight"]) == emulator.config.frame_size(portrait=True)
    assert watched["connectionState"] == "connected"
    step_result(report, "leaveSpectating")
    assert (emulator.broadcasts.spectators_joined, emulator.broadcasts.spectators_left) == (1, 1)
    assert "stream_error" not in event_names(report) and "error" not in event_names(report)
    # The SDK never reads its fire-and-forget DELETE's response, so Chromium lists that request as aborted
    # although the emulator received and answered it (counted above); anything else is a real failure.
    diagnostics = report["diagnostics"]
    unread_delete = re.compile(r"DELETE .*/broadcast/[^/]+/whep/[^/?]+: net::ERR_ABORTED")
    assert all(unread_delete.fullmatch(failed) for failed in diagnostics["failedRequests"]), diagnostics
    assert (diagnostics["console"], diagnostics["pageErrors"]) == ([], []), diagnostics


async def check_slot_released(emulator: Emulator) -> None:
    """The SDK's clean disconnect (client_disconnecting, close 1000) freed the streamer slot."""
    for _ in range(100):
        if not emulator.active_sessions() and not emulator.connections:
            break
        await asyncio.sleep(0.05)
    assert emulator.active_sessions() == []
    assert not emulator.connections
    assert list(emulator.observed.region_latencies[0]) == ["local"]  # the SDK probed /regions first


def check_session(report: Report, api_url: str, config: EmulatorConfig) -> None:
    """Connect, an image start, two interacts, end and a second stream all behaved as the SDK documents."""
    connected = step_result(report, "connect")
    assert connected["apiUrl"] == api_url  # window.__ODYSSEY_API_URL__ was honoured
    assert connected["status"] == "connected"
    assert connected["videoTracks"] == 1
    assert connected["capabilities"] == {"image_to_video": True}

    started = step_result(report, "startStream")
    assert isinstance(started["streamId"], str) and started["streamId"]
    assert isinstance(started["lastAppliedPrompt"], str) and started["lastAppliedPrompt"]
    assert started["imageType"] == "image/jpeg"

    frames = step_result(report, "framesAfterStart")
    assert frames["codec"] == "video/VP8"
    assert (frames["frameWidth"], frames["frameHeight"]) == config.frame_size(portrait=True)
    assert step_result(report, "framesAfterInteract")["framesDecoded"] > frames["framesDecoded"]

    for label, words in (("interact1", "red leather jacket"), ("interact2", "blue denim jacket")):
        ack = step_result(report, label)
        assert isinstance(ack["acknowledged"], str) and words in ack["acknowledged"]
        assert ack["lastAppliedPrompt"] == ack["acknowledged"]

    step_result(report, "endStream")
    landscape = step_result(report, "startLandscape")  # text-only: sent over the data channel
    assert landscape["streamId"] not in ("", started["streamId"])
    assert landscape["lastAppliedPrompt"]
    landscape_frames = step_result(report, "framesLandscape")
    assert (landscape_frames["frameWidth"], landscape_frames["frameHeight"]) == config.frame_size(
        portrait=False
    )
    step_result(report, "endLandscape")

    names = event_names(report)
    assert names.count("stream_started") == 2
    assert names.count("interact_acknowledged") == 2
    assert names.count("stream_ended") == 2
    assert "stream_error" not in names and "error" not in names, report["events"]
    # Nothing failed on the side either: no CORS refusal (e.g. of the region ping), no page error.
    assert report["diagnostics"] == {"console": [], "pageErrors": [], "failedRequests": []}


def check_loopback(ice: Report, emulator_view: EmulatorIceView) -> None:
    """Media went 127.0.0.1 <-> 127.0.0.1, and the emulator's ICE agent never knew another address."""
    assert emulator_view.connected_peers == 1
    assert emulator_view.local_addresses == {LOOPBACK}
    assert emulator_view.remote_addresses == {LOOPBACK}, emulator_view
    pair = ice["selectedPair"]
    assert pair is not None, ice
    assert pair["local"]["address"] == LOOPBACK, pair
    assert pair["remote"]["address"] == LOOPBACK, pair
    assert pair["bytesReceived"] > 0
    assert ice["offerCandidateLines"], "the emulator's offer carried no candidates"
    for line in ice["offerCandidateLines"]:
        assert f" {LOOPBACK} " in line, line
    assert ice["offerHasMsid"]


def check_recording(report: Report) -> Report:
    """getRecording and listStreamRecordings both know the stream that just ended."""
    stream_id = step_result(report, "startStream")["streamId"]
    recording: Report = step_result(report, "getRecording")["recording"]
    assert recording["stream_id"] == stream_id
    for key in ("video_url", "events_url", "thumbnail_url", "preview_url"):
        assert isinstance(recording[key], str) and recording[key].startswith("http"), (key, recording)
    assert recording["frame_count"] > 0
    assert recording["duration_seconds"] > 0

    media = step_result(report, "recordingMedia")
    assert media["thumbnail"]["loaded"], media
    assert media["video"]["loaded"], media
    assert media["video"]["duration"] > 0

    listing = step_result(report, "listStreamRecordings")
    landscape_id = step_result(report, "startLandscape")["streamId"]
    assert listing["total"] == 2
    assert [r["stream_id"] for r in listing["recordings"]] == [landscape_id, stream_id]  # most recent first
    landscape, portrait = listing["recordings"]
    assert landscape["width"] > landscape["height"] and portrait["width"] < portrait["height"]
    for listed in listing["recordings"]:
        assert isinstance(listed["started_at"], str) and isinstance(listed["ended_at"], str)
        assert listed["duration_seconds"] > 0
    return recording


async def check_recording_downloads(recording: Report) -> None:
    """The presigned URLs the SDK handed out serve real files."""
    async with httpx.AsyncClient(timeout=10) as http:
        video = await http.get(recording["video_url"])
        preview = await http.get(recording["preview_url"])
        thumbnail = await http.get(recording["thumbnail_url"])
        events = await http.get(recording["events_url"])
    for response in (video, preview, thumbnail, events):
        assert response.status_code == 200, response.url
    assert video.content[4:8] == b"ftyp"
    assert preview.content[4:8] == b"ftyp"
    assert thumbnail.content[:3] == b"\xff\xd8\xff"
    lines = [line for line in events.text.splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)


async def test_client_credentials_work_across_sdks(
    browser_prerequisites: None, emulator_factory: EmulatorFactory
) -> None:
    """Credentials our Python client mints work in the JS SDK, and the JS SDK's work in our client."""
    emulator = await emulator_factory(api_keys={API_KEY: ApiKey()})
    async with Odyssey(api_key=API_KEY, api_url=emulator.url) as minter:
        ours = await minter.create_client_credentials()
    report, stderr = await run_js_sdk(
        emulator.url,
        API_KEY,
        SAMPLE_PHOTO,
        "--scenario=credentials",
        f"--credentials={json.dumps(ours.to_dict())}",
    )
    assert report["ok"], explain(report, stderr)
    connected = step_result(report, "connectWithCredentials")
    assert connected["status"] == "connected"
    assert connected["sessionId"] == ours.session_id
    assert connected["capabilities"] == {"image_to_video": True}
    assert step_result(report, "startStream")["streamId"]
    step_result(report, "endStream")

    minted = step_result(report, "mintCredentials")
    theirs = ClientCredentials.from_dict(minted)
    assert theirs.token_session_id() == minted["session_id"]
    async with Odyssey(api_key="", api_url=emulator.url) as client:
        await client.connect_with_credentials(theirs)
        try:
            stream_id = await client.start_stream("a person in a navy suit")
            await client.end_stream()
        finally:
            await client.disconnect()
    assert stream_id
