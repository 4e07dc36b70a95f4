"""`python -m bot worker`: runs try-on sessions the bot places on it, reporting every event over NATS.

The worker holds the Odyssey connections, frames, snippets, roll-overs, idle and quota stops and the
recordings; it never sees the Discord token or the bot's database. It announces its free room in the
presence bucket, takes `start` requests while it has room, answers `outfit`, `snapshot`, `share` and `stop`
for its sessions, and on SIGTERM drains: it takes nothing new and ends its sessions cleanly (each member
gets the end and the recordings) before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from bot.deadline import wait_within
from bot.media.snippets import SnippetEncoder
from bot.tryon.errors import NoSuchSession, OutfitNotApplied
from bot.tryon.models import EndReason
from bot.tryon.runner import ClientFactory
from bot.tryon.session import SessionServices, TryOnSession
from bot.workers import protocol
from bot.workers.claims import SessionClaims, claims_bucket
from bot.workers.events import BusLedger, BusPresenter, EventPublisher, ensure_events_stream
from bot.workers.presence import Presence
from bot.workers.protocol import Message, ProtocolError, StartCommand
from bot.workers.settings import WorkerSettings

log = logging.getLogger(__name__)

# How long a draining worker lets its sessions end (recordings included) before it exits anyway.
DRAIN_SECONDS = 60.0


def reply(fields: dict[str, Any]) -> bytes:
    """A command's reply body."""
    return json.dumps(fields).encode()


class Worker:
    """Runs the sessions placed on it; `open()` starts taking them, `drain()` ends them and stops."""

    def __init__(
        self,
        client: Client,
        settings: WorkerSettings,
        clients: ClientFactory,
        *,
        capacity: int | None = None,
        worker_id: str | None = None,
        encoder: SnippetEncoder | None = None,
        start_reply_delay_seconds: float = 0.0,
    ) -> None:
        self.client = client
        self.settings = settings
        self.capacity = capacity or settings.capacity
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._clients = clients
        self._encoder = encoder or SnippetEncoder()
        self.sessions: dict[str, TryOnSession] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._commands: set[asyncio.Task[None]] = set()
        self._start_subscription: Subscription | None = None
        self._claims: SessionClaims | None = None
        # For tests only: a start's reply held back this long, as if lost on its way to the bot.
        self._start_reply_delay_seconds = start_reply_delay_seconds
        self._draining = False
        self.presence = Presence(client, settings, self.id, self.capacity, lambda: self.streaming)

    @property
    def streaming(self) -> int:
        """Sessions holding a stream (one only fetching its recordings leaves room for the next)."""
        return sum(1 for session in self.sessions.values() if not session.done_streaming.is_set())

    async def open(self) -> None:
        """Create the events stream if needed, take start requests, and announce the worker."""
        await ensure_events_stream(self.client, self.settings)
        self._claims = SessionClaims(await claims_bucket(self.client, self.settings))
        subject = protocol.start_subject(self.settings, self.id)
        self._start_subscription = await self.client.subscribe(subject, cb=self._on_start)
        await self.presence.announce()
        log.info("worker %s: taking up to %d sessions", self.id, self.capacity)

    # ----- starting -----------------------------------------------------------------------------------------

    async def _on_start(self, msg: Msg) -> None:
        try:
            command = StartCommand.from_message(Message.parse(msg.headers, msg.data))
        except ProtocolError as error:
            log.warning("worker %s: bad start request: %s", self.id, error)
            await msg.respond(reply({"accepted": False, "reason": "bad_request"}))
            return
        answer = await self._take(command)
        if answer["accepted"] and self._start_reply_delay_seconds:
            await asyncio.sleep(self._start_reply_delay_seconds)
        await msg.respond(reply(answer))

    async def _take(self, command: StartCommand) -> dict[str, Any]:
        """Claim and start the session if there is room; the reply to its `start`."""
        if self._draining or self.streaming >= self.capacity:
            return {"accepted": False, "reason": "draining" if self._draining else "full"}
        if command.session_id in self.sessions:  # the same start twice: it runs here already
            return {"accepted": True}
        if not await self._claim(command):
            return {"accepted": False, "reason": "claimed"}
        try:
            await self._start(command)
        except Exception:
            # Claimed but not running: the bot's next worker cannot claim it either, so it fails plainly.
            log.exception("worker %s: session %s could not start", self.id, command.session_id)
            return {"accepted": False, "reason": "failed"}
        return {"accepted": True}

    async def _claim(self, command: StartCommand) -> bool:
        """Own the session before starting it; refused when the bot gave up on this start meanwhile."""
        assert self._claims is not None  # set by open(), before any start can arrive
        try:
            if await self._claims.claim(command.session_id, self.id, command.claim_revision):
                return True
        except Exception as error:
            log.warning("worker %s: could not claim session %s (%r)", self.id, command.session_id, error)
            return False
        log.info("worker %s: session %s was given up on or taken; refused", self.id, command.session_id)
        return False

    async def _start(self, command: StartCommand) -> None:
        publisher = EventPublisher(self.client, self.settings, command.session_id)
        ledger = BusLedger(publisher)
        services = SessionServices(
            ledger=ledger,
            encoder=self._encoder,
            client_factory=self._clients,
            settings=command.settings,
        )
        session = TryOnSession(
            command.session_id,
            command.request,
            BusPresenter(publisher, command.upload_budget_bytes),
            services,
            allowance_seconds=command.allowance_seconds,
            idle_seconds=command.idle_seconds,
        )
        session.pending_prompt_ids.extend(command.pending_prompt_ids)
        ledger.count_frames = lambda: session.frames_received
        self.sessions[session.id] = session
        subject = protocol.command_subject(self.settings, session.id, "*")
        self._subscriptions[session.id] = await self.client.subscribe(subject, cb=self._on_command)
        self._runs[session.id] = asyncio.create_task(self._run(session, publisher), name=f"run-{session.id}")
        log.info("worker %s: session %s started", self.id, session.id)

    async def _run(self, session: TryOnSession, publisher: EventPublisher) -> None:
        try:
            await session.run()
            fields = {"state": str(session.state), "end_reason": str(session.end_reason or "")}
            await publisher.publish(Message("finished", fields))
        except Exception:
            log.exception("worker %s: could not report the end of session %s", self.id, session.id)
        finally:
            subscription = self._subscriptions.pop(session.id, None)
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
            self.sessions.pop(session.id, None)
            self._runs.pop(session.id, None)
            with contextlib.suppress(Exception):
                await self.presence.refresh()

    # ----- commands -----------------------------------------------------------------------------------------

    async def _on_command(self, msg: Msg) -> None:
        # Each command in its own task: an outfit takes seconds (its snippet), a stop must not wait for it.
        task = asyncio.create_task(self._answer(msg))
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _answer(self, msg: Msg) -> None:
        session_id, command = msg.subject.split(".")[-2:]
        session = self.sessions.get(session_id)
        try:
            if session is None or session.is_finished:
                raise NoSuchSession()
            fields = Message.parse(msg.headers, msg.data).fields
            answer = await self._carry_out(session, command, fields)
        except NoSuchSession:
            answer = {"error": "no_session"}
        except OutfitNotApplied:
            answer = {"error": "not_applied"}
        except ProtocolError as error:
            answer = {"error": "bad_request", "detail": str(error)}
        except Exception:
            log.exception("worker %s: %s for session %s failed", self.id, command, session_id)
            answer = {"error": "failed"}
        with contextlib.suppress(Exception):
            await msg.respond(reply(answer))

    async def _carry_out(self, session: TryOnSession, command: str, fields: dict[str, Any]) -> dict[str, Any]:
        if command == "outfit":
            await session.apply_outfit(str(fields["outfit"]), int(fields["prompt_id"]))
            return {"ok": True}
        if command == "snapshot":
            return {"ok": await session.snapshot() is not None}
        if command == "share":
            await session.share_live()
            return {"ok": True}
        if command == "status":
            return {
                "ok": True,
                "worker_id": self.id,
                "state": str(session.state),
                "streamed_seconds": session.streamed_seconds,
                "stream_ids": session.stream_ids,
                "outfit": session.latest_outfit,
                "end_reason": None if session.end_reason is None else str(session.end_reason),
            }
        if command == "stop":
            session.stop(EndReason(fields["reason"]))
            return {"ok": True}
        raise ProtocolError(f"unknown command {command!r}")

    # ----- the end ------------------------------------------------------------------------------------------

    async def drain(self, grace_seconds: float = DRAIN_SECONDS) -> None:
        """Take nothing new, end every session cleanly (members get their end and recordings), then close."""
        self._draining = True
        with contextlib.suppress(Exception):
            await self.presence.drain()
        for session in list(self.sessions.values()):
            session.stop(EndReason.SHUTDOWN)
        runs = list(self._runs.values())
        if runs:
            _, late = await asyncio.wait(runs, timeout=grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
        await self.aclose()

    async def aclose(self) -> None:
        """Withdraw from the presence bucket and stop taking requests (sessions must be over)."""
        if self._start_subscription is not None:
            with contextlib.suppress(Exception):
                await self._start_subscription.unsubscribe()
        for task in list(self._commands):
            task.cancel()
        await asyncio.gather(*self._commands, return_exceptions=True)
        await self.presence.withdraw()
        await self._encoder.aclose()


async def run_worker(worker: Worker, stop: asyncio.Event) -> None:
    """Open the worker, run until `stop` is set, then drain it."""
    await worker.open()
    try:
        await stop.wait()
    finally:
        log.info("worker %s: draining %d sessions", worker.id, len(worker.sessions))
        await wait_within(worker.drain(), DRAIN_SECONDS + 30.0)
