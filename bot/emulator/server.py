"""The emulator service: REST endpoints, the signaling websocket and signed file downloads (aiohttp)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.emulator.broadcast import BroadcastHub
from bot.emulator.config import ApiKey, EmulatorConfig, Faults
from bot.emulator.cors import cors_middleware
from bot.emulator.loops import SceneLibrary
from bot.emulator.recordings import Recording, RecordingStore
from bot.emulator.simulations import SimulationService
from bot.emulator.streamer import StreamerConnection, StreamerContext, StreamStats
from bot.emulator.tokens import TokenError, decode_jwt, encode_jwt, sign_path, verify_signed_path
from bot.loopback_ice import restrict_ice_to_loopback

MAX_WS_MESSAGE_BYTES = 128 * 1024 * 1024
DEFAULT_PAGE = 50
MAX_PAGE = 100

USAGE_ERRORS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "MONTHLY_LIMIT_REACHED": (
        "Monthly usage limit reached",
        "Upgrade your plan or wait for the reset",
        {"used_hours": 10, "limit_hours": 10, "reset_date": "2030-01-01"},
    ),
    "CONCURRENT_LIMIT_REACHED": (
        "Concurrent session limit reached",
        "End another session and try again",
        {"active_count": 5, "limit": 5},
    ),
    "STREAM_DURATION_EXCEEDED": (
        "Stream duration limit exceeded",
        "Start a new stream",
        {"max_duration_seconds": 150},
    ),
    "ACCOUNT_SUSPENDED": ("Account suspended", "Contact support", {"reason": "Suspended by the emulator"}),
    "RATE_LIMITED": ("Too many requests", "Slow down and retry", {"retry_after_seconds": 1}),
}


def usage_error_body(code: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The §5.1 HTTP 429 body for a usage error code."""
    message, action, default_details = USAGE_ERRORS.get(code, ("Usage limit reached", "Try again later", {}))
    return {
        "detail": {
            "error": code,
            "message": message,
            "action": action,
            "action_url": "https://emulator.invalid/billing",
            "details": default_details if details is None else details,
        }
    }


@dataclass
class Session:
    """A streamer reservation made by `/sessions/request`, held until its websocket ends."""

    session_id: str
    api_key: str
    created: float
    attached: bool = False
    released: bool = False


@dataclass
class AccessToken:
    """An opaque bearer token minted by `/auth/token`."""

    api_key: str
    expires_at: float


@dataclass
class Observations:
    """What clients sent, for tests to assert on."""

    region_latencies: list[dict[str, Any]] = field(default_factory=list)
    telemetry_events: int = 0
    session_requests: int = 0
    token_requests: int = 0


class Emulator:
    """A local Odyssey-compatible service; `async with Emulator(config) as emu:` then use `emu.url`."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.faults = Faults()
        self.observed = Observations()
        self.secret = secrets.token_bytes(32)
        self.sessions: dict[str, Session] = {}
        self.connections: set[StreamerConnection] = set()
        self._tokens: dict[str, AccessToken] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._connection_tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        cfg = self.config
        self.library = SceneLibrary(
            cfg.fps, cfg.loop_seconds, cfg.transition_seconds, cfg.vp8_bitrate, cfg.render_workers
        )
        self.recordings = RecordingStore(self.library, cfg.fps, cfg.preview_seconds, cfg.recordings_dir)
        self.simulations = SimulationService(
            cfg,
            self.library,
            self.recordings,
            caller=self.caller,
            is_privileged=self.is_privileged,
            recording_json=self.recording_json,
        )
        self.broadcasts = BroadcastHub(self.secret, cfg.signed_url_ttl_seconds, cfg.max_spectators_per_stream)

    # ---- lifecycle -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the API (also the signaling origin)."""
        if self._runner is None:
            raise RuntimeError("the emulator is not running")
        return f"http://{self.config.host}:{self._port}"

    async def start(self) -> None:
        """Bind the port and serve."""
        restrict_ice_to_loopback()
        runner = web.AppRunner(self._build_app(), handle_signals=False, access_log=None)
        self._runner = runner
        try:
            await self.recordings.resume()  # an earlier run's recordings, when the folder is configured
            await runner.setup()
            await web.TCPSite(runner, self.config.host, self.config.port).start()
        except BaseException:
            await self.stop()  # e.g. the port is taken: no threads or temporary folder left behind
            raise
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Close every connection, task, thread and temporary file (safe to call twice)."""
        if self._stopped:
            return
        self._stopped = True
        await self.drop_connections(code=1001)
        await self.broadcasts.close()
        await self.simulations.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._connection_tasks):
            task.cancel()
        await asyncio.gather(*self._connection_tasks, return_exceptions=True)
        await self.recordings.cancel_writers()
        await self.library.close()
        await self.recordings.remove_files()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---- runtime controls for tests --------------------------------------------------------------------

    async def drop_connections(self, code: int = 1011) -> None:
        """Close every signaling websocket with this close code (1011 = abnormal)."""
        await asyncio.gather(*(c.close(code, "closed by the emulator") for c in list(self.connections)))

    async def drop_peer_connections(self) -> None:
        """Close every peer connection but keep the websockets open."""
        await asyncio.gather(*(c.drop_peer() for c in list(self.connections)))

    def fail_streams(self, reason: str, message: str = "Injected stream error") -> None:
        """Send `interactive_stream_error` with this reason to every running stream and end it."""
        for connection in list(self.connections):
            connection.stream_error(reason, message)

    def active_sessions(self, api_key: str | None = None) -> list[Session]:
        """Sessions holding a streamer (optionally for one key)."""
        self._expire_unclaimed_sessions()
        return [s for s in self.sessions.values() if not s.released and api_key in (None, s.api_key)]

    def stream_stats(self) -> list[StreamStats]:
        """Per live connection: frames and bytes sent, keyframe restarts and the look shown (benchmarks)."""
        found = (connection.stats() for connection in list(self.connections))
        return sorted((s for s in found if s is not None), key=lambda s: s.session_id)

    def release_session(self, session: Session) -> None:
        """Free a session's streamer slot."""
        session.released = True
        self.connections.difference_update({c for c in self.connections if c.session is session})

    def is_privileged(self, api_key: str) -> bool:
        """Whether the key may bypass prompt expansion."""
        key = self.config.key(api_key)
        return key is not None and key.privileged

    def _expire_unclaimed_sessions(self) -> None:
        deadline = time.monotonic() - self.config.unclaimed_session_seconds
        for session in self.sessions.values():
            if not session.attached and not session.released and session.created < deadline:
                session.released = True

    # ---- app -------------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_WS_MESSAGE_BYTES, middlewares=[cors_middleware])
        app.add_routes(
            [
                web.post("/auth/token", self._auth_token),
                web.get("/regions", self._regions),
                web.get("/ping", self._ping),
                web.post("/sessions/request", self._sessions_request),
                web.post("/sessions/token", self._sessions_token),
                web.get("/config", self._ice_config),
                web.get("/client/{session_id}", self._signaling),
                web.get("/recordings/{stream_id}", self._recording),
                web.get("/stream-recordings", self._stream_recordings),
                web.get("/files/{stream_id}/{name}", self._file),
                web.post("/telemetry", self._telemetry),
            ]
        )
        self.simulations.add_routes(app)
        self.broadcasts.add_routes(app)
        return app

    def caller(self, request: web.Request) -> str:
        """The API key behind the request's bearer token; raises 401 when missing, unknown or expired."""
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        grant = self._tokens.get(token)
        if grant is None or grant.expires_at <= time.time():
            raise web.HTTPUnauthorized(
                text=json.dumps({"detail": "Not authorized"}), content_type="application/json"
            )
        return grant.api_key

    async def _auth_token(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        api_key = body.get("api_key") if isinstance(body, dict) else None
        if not isinstance(api_key, str):
            detail = [{"loc": ["body", "api_key"], "msg": "Field required", "type": "missing"}]
            return web.json_response({"detail": detail}, status=422)
        key: ApiKey | None = self.config.key(api_key)
        if key is None:
            return web.json_response({"detail": "Invalid API key"}, status=401)
        if key.disabled:
            return web.json_response({"detail": "This API key has been disabled"}, status=403)
        token = secrets.token_urlsafe(32)
        ttl = self.config.access_token_ttl_seconds
        now = time.time()
        self._tokens = {value: grant for value, grant in self._tokens.items() if grant.expires_at > now}
        self._tokens[token] = AccessToken(api_key=api_key, expires_at=time.time() + ttl)
        return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": int(ttl)})

    async def _regions(self, request: web.Request) -> web.Response:
        self.caller(request)
        return web.json_response({"regions": [{"id": "local", "ping_url": f"{self.url}/ping"}]})

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _sessions_request(self, request: web.Request) -> web.Response:
        api_key = self.caller(request)
        body = await _json_body(request)
        self.observed.session_requests += 1
        if isinstance(body, dict) and isinstance(body.get("region_latencies"), dict):
            self.observed.region_latencies.append(body["region_latencies"])
        faults = self.faults
        if faults.force_429_code is not None:
            return web.json_response(usage_error_body(faults.force_429_code), status=429)
        if faults.fail_503_times > 0:
            faults.fail_503_times -= 1
            return web.json_response({"detail": "No streamers available"}, status=503)
        key = self.config.key(api_key)
        limit = key.concurrency_limit if key is not None and key.concurrency_limit is not None else None
        limit = self.config.concurrency_limit if limit is None else limit
        mine = len(self.active_sessions(api_key))
        if mine >= limit:
            details = {"active_count": mine, "limit": limit}
            return web.json_response(usage_error_body("CONCURRENT_LIMIT_REACHED", details), status=429)
        if len(self.active_sessions()) >= self.config.streamer_slots:
            return web.json_response({"detail": "No streamers available"}, status=503)
        session = Session(session_id=str(uuid.uuid4()), api_key=api_key, created=time.monotonic())
        self.sessions[session.session_id] = session
        return web.json_response(
            {
                "session_id": session.session_id,
                "signalling_url": f"ws://{self.config.host}:{self._port}",
                "streamer_id": "emu-0",
                "model": "emulator",
                "region": "local",
                "capabilities": {"image_to_video": True},
            }
        )

    async def _sessions_token(self, request: web.Request) -> web.Response:
        api_key = self.caller(request)
        body = await _json_body(request)
        self.observed.token_requests += 1
        session_id = body.get("session_id") if isinstance(body, dict) else None
        session = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None or session.api_key != api_key or session.released:
            return web.json_response({"detail": "Session not found or not authorized"}, status=404)
        ttl = int(self.config.session_token_ttl_seconds)
        issued = int(time.time())
        claims = {"session_id": session.session_id, "sub": api_key[:8], "iat": issued, "exp": issued + ttl}
        return web.json_response({"session_token": encode_jwt(claims, self.secret), "expires_in": ttl})

    async def _ice_config(self, request: web.Request) -> web.Response:
        return web.json_response({"iceServers": []})

    async def _signaling(self, request: web.Request) -> web.StreamResponse:
        session_id = request.match_info["session_id"]
        try:
            claims = decode_jwt(request.query.get("token", ""), self.secret)
        except TokenError as error:
            raise web.HTTPUnauthorized(text=str(error)) from error
        if claims.get("session_id") != session_id:
            raise web.HTTPForbidden(text="token is for another session")
        session = self.sessions.get(session_id)
        if session is None or session.released:
            raise web.HTTPNotFound(text="session not found")
        if session.attached:
            raise web.HTTPConflict(text="session already connected")
        session.attached = True
        ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE_BYTES, autoping=True)
        task = asyncio.current_task()
        if task is not None:
            self._connection_tasks.add(task)
        try:
            await ws.prepare(request)
            connection = StreamerConnection(self._streamer_context(session), session, ws)
            self.connections.add(connection)
            await connection.run()
        finally:
            self.release_session(session)
            if task is not None:
                self._connection_tasks.discard(task)
        return ws

    def _streamer_context(self, session: Session) -> StreamerContext:
        return StreamerContext(
            config=self.config,
            library=self.library,
            recordings=self.recordings,
            broadcasts=self.broadcasts,
            base_url=self.url,
            faults=lambda: self.faults,
            is_privileged=self.is_privileged,
            release=lambda: self.release_session(session),
        )

    def recording_json(self, recording: Recording) -> dict[str, Any]:
        """The `GET /recordings/{id}` body with signed, expiring file URLs."""
        ready = recording.ready.is_set() and not recording.failed  # links only to written files

        def link(name: str) -> str | None:
            if not ready:
                return None
            path = f"/files/{recording.stream_id}/{name}"
            return self.url + sign_path(path, self.secret, self.config.signed_url_ttl_seconds)

        return {
            "stream_id": recording.stream_id,
            "video_url": link("video.mp4"),
            "events_url": link("events.jsonl"),
            "thumbnail_url": link("thumbnail.jpg"),
            "preview_url": link("preview.mp4"),
            "frame_count": recording.frame_count,
            "duration_seconds": recording.duration_seconds,
        }

    def recording_hidden(self, recording: Recording) -> bool:
        """Fault injection: the recording is missing, or has not appeared yet."""
        delay = self.faults.recording_delay_seconds
        appears_at = recording.ended_at + (delay or 0.0)
        return self.faults.recordings_missing or (delay is not None and time.time() < appears_at)

    async def _recording(self, request: web.Request) -> web.Response:
        api_key = self.caller(request)
        stream_id = request.match_info["stream_id"]
        if any(r.stream_id == stream_id and self.recording_hidden(r) for r in self.recordings.list(api_key)):
            return web.json_response({"detail": "Recording not found"}, status=404)
        recording = await self.recordings.get(stream_id, api_key)
        if recording is None:
            return web.json_response({"detail": "Recording not found"}, status=404)
        return web.json_response(self.recording_json(recording))

    async def _stream_recordings(self, request: web.Request) -> web.Response:
        api_key = self.caller(request)
        try:
            limit = int(request.query.get("limit", DEFAULT_PAGE))
            offset = int(request.query.get("offset", 0))
        except ValueError:
            return web.json_response({"detail": "limit and offset must be integers"}, status=422)
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            return web.json_response({"detail": "limit must be 1..100 and offset >= 0"}, status=422)
        mine = [r for r in self.recordings.list(api_key) if not self.recording_hidden(r)]
        page = [r.summary() for r in mine[offset : offset + limit]]
        return web.json_response({"recordings": page, "total": len(mine), "limit": limit, "offset": offset})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        stream_id, name = request.match_info["stream_id"], request.match_info["name"]
        expires, signature = request.query.get("expires", ""), request.query.get("sig", "")
        if not verify_signed_path(f"/files/{stream_id}/{name}", expires, signature, self.secret):
            return web.json_response({"detail": "Signature invalid or expired"}, status=403)
        path = self.recordings.file_path(stream_id, name)
        if path is None:
            return web.json_response({"detail": "File not found"}, status=404)
        return web.FileResponse(path)

    async def _telemetry(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, dict) and isinstance(body.get("events"), list):
            self.observed.telemetry_events += len(body["events"])
        return web.Response(status=204)


async def _json_body(request: web.Request) -> Any:
    with contextlib.suppress(ValueError):
        return await request.json()
    return None
