"""`Odyssey`: the public client, shaped like the official Python SDK (connect, streams, recordings, jobs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from types import TracebackType
from typing import Any

import httpx

from bot.loopback_ice import is_loopback_url, restrict_ice_to_loopback
from bot.odyssey import recordings, simulations
from bot.odyssey.auth import TokenCache
from bot.odyssey.callbacks import Callback, CallbackRunner, Callbacks
from bot.odyssey.connection import ConnectionTimeouts, StreamConnection
from bot.odyssey.errors import OdysseyConnectionError, OdysseyError, OdysseyStreamError
from bot.odyssey.frames import DEFAULT_FRAME_QUEUE_SIZE, FrameQueue
from bot.odyssey.images import ImageInput, image_to_data_url
from bot.odyssey.models import (
    Capabilities,
    ClientCredentials,
    ConnectionStatus,
    Recording,
    SessionGrant,
    SimulationJobDetail,
    SimulationJobInfo,
    SimulationJobsList,
    SimulationJobStatus,
    StreamRecordingsList,
)
from bot.odyssey.regions import RegionProber
from bot.odyssey.rest import ApiClient
from bot.odyssey.signaling import RetryPolicy, fetch_ice_servers, open_signaling
from bot.odyssey.spectator import connect_to_stream
from bot.tls import tls_context

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.odyssey.ml"
DEFAULT_QUEUE_TIMEOUT = 30.0
HTTP_TIMEOUT_SECONDS = 15.0
SIGNALING_OPEN_TIMEOUT = 10.0
_BUSY = (ConnectionStatus.AUTHENTICATING, ConnectionStatus.CONNECTING, ConnectionStatus.CONNECTED)


class Odyssey:
    """Client for the Odyssey platform: one connection (one streamer) at a time, streams one after another."""

    def __init__(
        self,
        api_key: str,
        api_url: str | None = None,
        *,
        queue_timeout: float = DEFAULT_QUEUE_TIMEOUT,
        retry: RetryPolicy | None = None,
        timeouts: ConnectionTimeouts | None = None,
        frame_queue_size: int = DEFAULT_FRAME_QUEUE_SIZE,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """`api_url` defaults to $ODYSSEY_API_URL, then https://api.odyssey.ml.

        `queue_timeout`: seconds to keep polling while no streamer is free (0 fails at once);
        `retry`: signaling connect retries; `timeouts`: every other wait; `frame_queue_size`: frames
        `client.frames` keeps before dropping the oldest; `http`: a shared httpx client (not closed here).
        """
        self.api_url = (api_url or os.environ.get("ODYSSEY_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.queue_timeout = queue_timeout
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or ConnectionTimeouts()
        self._frame_queue_size = frame_queue_size
        self._owns_http = http is None
        # Proxy settings from the environment apply to the real platform, never to a local emulator.
        trust_env = not is_loopback_url(self.api_url)
        self._http = http or httpx.AsyncClient(
            timeout=HTTP_TIMEOUT_SECONDS, trust_env=trust_env, verify=tls_context(trust_env)
        )
        self._tokens = TokenCache(self._http, self.api_url, api_key)
        self._api = ApiClient(self._http, self.api_url, self._tokens)
        self._regions = RegionProber(self._http)
        self._region_probe: asyncio.Task[None] | None = None
        self._status = ConnectionStatus.DISCONNECTED
        self._callbacks = Callbacks()
        self._runner = CallbackRunner()
        self._connection: StreamConnection | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._aborting_connect = False
        self._capabilities: Capabilities | None = None
        self._last_token_lifetime = 600.0
        self.frames = FrameQueue(frame_queue_size)

    def __repr__(self) -> str:  # never show the key
        return f"Odyssey(api_url={self.api_url!r}, status={self._status.value})"

    async def __aenter__(self) -> Odyssey:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- properties ---------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        connection = self._connection
        return self._status is ConnectionStatus.CONNECTED and connection is not None and connection.is_open

    @property
    def current_status(self) -> ConnectionStatus:
        return self._status

    @property
    def current_session_id(self) -> str | None:
        return self._connection.session_id if self._connection else None

    @property
    def current_stream_id(self) -> str | None:
        return self._connection.stream_id if self._connection else None

    @property
    def last_applied_prompt(self) -> str | None:
        return self._connection.last_applied_prompt if self._connection else None

    @property
    def dropped_callback_frames(self) -> int:
        """Frames `on_video_frame` skipped because the callback was behind (this connection)."""
        return self._connection.dropped_callback_frames if self._connection else 0

    # -- connecting ---------------------------------------------------------------------------------

    async def connect(
        self,
        on_connected: Callback | None = None,
        on_disconnected: Callback | None = None,
        on_video_frame: Callback | None = None,
        on_stream_started: Callback | None = None,
        on_stream_ended: Callback | None = None,
        on_interact_acknowledged: Callback | None = None,
        on_stream_error: Callback | None = None,
        on_error: Callback | None = None,
        on_status_change: Callback | None = None,
        on_broadcast_ready: Callback | None = None,
        on_queue: Callback | None = None,
    ) -> None:
        """Reserve a streamer (queueing while none is free) and connect to it; returns once ready."""
        callbacks = Callbacks(**{k: v for k, v in locals().items() if k != "self"})
        await self._settle_server_close()
        self._begin(callbacks)
        await self._run_connect(self._connect_to_platform())

    async def _connect_to_platform(self) -> None:
        async with self._connecting():
            grant, token = await self._reserve_session()
            self._capabilities = grant.capabilities
            await self._open(grant.signalling_url, grant.session_id, token)

    async def create_client_credentials(self) -> ClientCredentials:
        """Reserve a streamer for a client elsewhere (spec §7); this client does not connect."""
        grant, token = await self._reserve_session()
        return ClientCredentials(
            signaling_url=grant.signalling_url,
            session_token=token,
            expires_in=self._last_token_lifetime,
            session_id=grant.session_id,
            capabilities=grant.capabilities,
        )

    async def connect_with_credentials(
        self, credentials: ClientCredentials, **callbacks: Callback | None
    ) -> None:
        """Connect with credentials from `create_client_credentials` (no API key needed)."""
        await self._settle_server_close()
        self._begin(Callbacks(**callbacks))
        await self._run_connect(self._connect_with(credentials))

    async def _connect_with(self, credentials: ClientCredentials) -> None:
        async with self._connecting():
            session_id = credentials.token_session_id()
            self._capabilities = credentials.capabilities
            await self._open(credentials.signaling_url, session_id, credentials.session_token)

    async def disconnect(self) -> None:
        """Close the connection (frees the streamer at once); safe to call at any time.

        A `connect()` still under way is abandoned: it raises OdysseyConnectionError.
        """
        aborted = await self._abort_connect()
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
        if aborted or self._status is not ConnectionStatus.FAILED:
            self._set_status(ConnectionStatus.DISCONNECTED, None)

    async def aclose(self) -> None:
        """Disconnect and release the HTTP client and background pings."""
        await self.disconnect()
        if self._region_probe is not None and not self._region_probe.done():
            self._region_probe.cancel()
            await asyncio.gather(self._region_probe, return_exceptions=True)
        await self._regions.aclose()
        await self._runner.drain(self.timeouts.close)
        if self._owns_http:
            await self._http.aclose()

    async def _settle_server_close(self) -> None:
        """Let a teardown the server started finish, so the status says whether a new connect may begin."""
        connection = self._connection
        if connection is not None and connection.is_closing:
            await connection.wait_closed()

    def _begin(self, callbacks: Callbacks) -> None:
        if self._status in _BUSY:
            raise OdysseyConnectionError(f"Already {self._status.value}")
        self._callbacks = callbacks
        if self.frames.closed:
            self.frames = FrameQueue(self._frame_queue_size)
        self._set_status(ConnectionStatus.AUTHENTICATING, None)

    async def _run_connect(self, steps: Coroutine[Any, Any, None]) -> None:
        """Run the connect steps as a task `disconnect()` can abandon (the caller then gets an error)."""
        task = asyncio.create_task(steps, name="odyssey-connect")
        self._connect_task = task
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                raise OdysseyConnectionError("Disconnected while connecting") from None
            raise
        finally:
            if self._connect_task is task:
                self._connect_task = None

    async def _abort_connect(self) -> bool:
        """Stop a connect under way and wait until it has cleaned up; True if there was one."""
        task = self._connect_task
        if task is None or task.done() or task is asyncio.current_task():
            return False
        self._aborting_connect = True
        try:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            self._aborting_connect = False
        return True

    @contextlib.asynccontextmanager
    async def _connecting(self) -> AsyncIterator[None]:
        """Whatever stops a connect (error or cancellation) leaves the client FAILED, never half-way."""
        try:
            yield
        except OdysseyError as exc:
            if self._status is not ConnectionStatus.FAILED:
                self._fail(exc)
            raise
        except BaseException:
            if not self._aborting_connect:  # `disconnect()` sets DISCONNECTED itself
                self._set_status(ConnectionStatus.FAILED, "connect interrupted")
            raise

    async def _reserve_session(self) -> tuple[SessionGrant, str]:
        access_token = await self._tokens.token()
        if self._region_probe is None:
            # Probed once per client, in parallel with the first session request (which awaits it).
            probe = self._regions.probe(f"{self.api_url}/regions", access_token)
            self._region_probe = asyncio.create_task(probe, name="odyssey-region-probe")

        async def latencies() -> dict[str, int]:
            if self._region_probe is not None:
                await asyncio.shield(self._region_probe)
            return self._regions.measured()

        async def queued(waited_seconds: float) -> None:
            self._runner.call(self._callbacks.on_queue, waited_seconds)

        grant = await self._api.request_session(latencies, queue_timeout=self.queue_timeout, on_queue=queued)
        token, self._last_token_lifetime = await self._api.session_token(grant.session_id)
        return grant, token

    async def _open(self, signaling_url: str, session_id: str, token: str) -> None:
        previous, self._connection = self._connection, None
        if previous is not None:  # closed by the server earlier: make sure its teardown finished
            await previous.close()
        self._set_status(ConnectionStatus.CONNECTING, None)
        if is_loopback_url(signaling_url):  # the peer is on this machine (the emulator)
            restrict_ice_to_loopback()
        websocket, ice_servers = await self._open_signaling(signaling_url, session_id, token)
        connection = StreamConnection(
            session_id=session_id,
            websocket=websocket,
            ice_servers=ice_servers,
            callbacks=self._callbacks,
            runner=self._runner,
            frames=self.frames,
            set_status=self._set_status,
            timeouts=self.timeouts,
        )
        self._connection = connection
        connection.start()
        try:
            await connection.wait_ready()
        except BaseException:
            self._connection = None
            await connection.close()
            raise
        self._set_status(ConnectionStatus.CONNECTED, None)
        self._runner.call(self._callbacks.on_connected)

    async def _open_signaling(self, url: str, session_id: str, token: str) -> tuple[Any, list[Any]]:
        attempt = 0
        while True:
            ice_servers = await fetch_ice_servers(self._http, url)  # TURN credentials expire: refetch per try
            try:
                websocket = await open_signaling(url, session_id, token, open_timeout=SIGNALING_OPEN_TIMEOUT)
            except OdysseyConnectionError as exc:
                if attempt >= self.retry.max_retries:
                    raise
                delay = self.retry.delay(attempt)
                log.info("signaling attempt %d failed (%s); retrying in %.1fs", attempt + 1, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            return websocket, ice_servers

    def _set_status(self, status: ConnectionStatus, message: str | None) -> None:
        if status is self._status:
            return
        self._status = status
        self._runner.call(self._callbacks.on_status_change, status, message)

    def _fail(self, error: OdysseyError) -> None:
        self._set_status(ConnectionStatus.FAILED, str(error))
        self._runner.call(self._callbacks.on_error, error, True)

    def _require_connection(self) -> StreamConnection:
        connection = self._connection
        if connection is None or not connection.is_open:
            raise OdysseyStreamError("Not connected")
        return connection

    # -- streams ------------------------------------------------------------------------------------

    async def start_stream(
        self,
        prompt: str = "",
        portrait: bool = True,
        image: ImageInput | None = None,
        image_path: str | None = None,
        bypass_prompt_expansion: bool | None = None,
        broadcast: bool = False,
    ) -> str:
        """Start a stream (text-to-video, or image-to-video with `image`); returns its stream id."""
        connection = self._require_connection()
        source = image if image is not None else image_path
        data_url = None
        if source is not None:
            if self._capabilities is not None and not self._capabilities.image_to_video:
                raise OdysseyStreamError("This streamer does not support image-to-video")
            data_url = await asyncio.to_thread(image_to_data_url, source, portrait)
        return await connection.start_stream(
            prompt,
            portrait=portrait,
            image_data_url=data_url,
            bypass_prompt_expansion=bypass_prompt_expansion,
            broadcast=broadcast,
        )

    async def interact(self, prompt: str) -> str:
        """Change the running stream's prompt; returns the prompt the streamer applied."""
        return await self._require_connection().interact(prompt)

    async def end_stream(self) -> None:
        """End the running stream (its recording becomes available); the connection stays up."""
        await self._require_connection().end_stream()

    # -- spectators (no API key needed) -------------------------------------------------------------

    # The SDKs' `Odyssey.connect_to_stream(webrtc_url, spectator_token)`: watch a broadcast over WHEP with
    # the details of `on_broadcast_ready` (see bot/odyssey/spectator.py).
    connect_to_stream = staticmethod(connect_to_stream)

    # -- recordings and simulations (no connection needed) -------------------------------------------

    async def get_recording(self, stream_id: str) -> Recording:
        return await recordings.get_recording(self._api, stream_id)

    async def list_stream_recordings(
        self, limit: int | None = None, offset: int | None = None
    ) -> StreamRecordingsList:
        return await recordings.list_stream_recordings(self._api, limit=limit, offset=offset)

    async def simulate(
        self,
        *,
        script: list[dict[str, Any]] | None = None,
        scripts: list[list[dict[str, Any]]] | None = None,
        script_url: str | None = None,
        portrait: bool = True,
        bypass_prompt_expansion: bool | None = None,
    ) -> SimulationJobDetail:
        return await simulations.simulate(
            self._api,
            script=script,
            scripts=scripts,
            script_url=script_url,
            portrait=portrait,
            bypass_prompt_expansion=bypass_prompt_expansion,
        )

    async def get_simulate_status(self, job_id: str) -> SimulationJobDetail:
        return await simulations.get_simulate_status(self._api, job_id)

    async def list_simulations(
        self,
        *,
        status: SimulationJobStatus | str | None = None,
        active: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> SimulationJobsList:
        return await simulations.list_simulations(
            self._api, status=status, active=active, limit=limit, offset=offset
        )

    async def cancel_simulation(self, job_id: str) -> SimulationJobInfo:
        return await simulations.cancel_simulation(self._api, job_id)
