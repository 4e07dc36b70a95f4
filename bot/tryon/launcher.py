"""Where admitted try-ons run: in the bot's own process, or (bot/workers) on worker processes over NATS.

The manager decides (admission, quota, the fair queue) and holds one `ManagedSession` per try-on; a
`SessionLauncher` makes them. `InProcess` runs each as a `TryOnSession` on the bot's own event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from bot.tryon.session import TryOnSession

# Given a session found unfinished at start-up, the presenter to tell its member (None: nobody).
RecoveryPresenterFactory = Callable[["SessionRecord"], "Presenter | None"]

if TYPE_CHECKING:
    from bot.store.records import SessionRecord
    from bot.tryon.models import EndReason, SessionRequest, SessionState, SessionSummary
    from bot.tryon.presenter import Presenter, SnapshotReady, SnippetReady
    from bot.tryon.session import SessionServices


class ManagedSession(Protocol):
    """One admitted try-on as the manager sees it, wherever it streams."""

    id: str
    request: SessionRequest
    state: SessionState
    end_reason: EndReason | None
    started_at: float | None
    # Prompts recorded before the first stream started; the start applies the latest of them.
    pending_prompt_ids: list[int]
    # Set once the session holds no platform connection any more (its slot may go to the next member).
    done_streaming: asyncio.Event
    finished: asyncio.Event

    @property
    def is_finished(self) -> bool:
        """True once the session reached a terminal state."""

    @property
    def streamed_seconds(self) -> float:
        """Seconds streamed so far."""

    def summary(self) -> SessionSummary:
        """What a front end may know of the session right now."""

    async def run(self) -> None:
        """Connect, stream, end, settle and report; never raises."""

    async def apply_outfit(self, outfit: str, prompt_id: int) -> SnippetReady | None:
        """Apply a checked outfit; returns once it is on screen (with its snippet, when known here)."""

    async def snapshot(self) -> SnapshotReady | None:
        """Present a still of the current frame; None before the first frame."""

    async def share_live(self) -> None:
        """Broadcast from the next stream part on (at once: a fresh part); NoSuchSession once it stops."""

    def stop(self, reason: EndReason) -> None:
        """Ask the session to end; the first reason wins."""

    async def cancel_queued(self, reason: EndReason = ...) -> None:
        """Leave the queue before a slot was granted: refund and mark cancelled."""

    async def report_queue_position(self, position: int | None, wait_seconds: float | None) -> None:
        """Tell the member where they stand in the queue."""


Session_co = TypeVar("Session_co", bound=ManagedSession, covariant=True)


class SessionLauncher(Protocol[Session_co]):
    """Makes the sessions the manager admits, and says whether any can run now."""

    def create(
        self,
        session_id: str,
        request: SessionRequest,
        presenter: Presenter,
        services: SessionServices,
        *,
        allowance_seconds: float,
        idle_seconds: float | None,
    ) -> Session_co:
        """A queued session, not yet running."""

    async def check_available(self) -> None:
        """Raise a TryOnError saying why no session could run now (e.g. no worker); cheap."""

    async def reattach(
        self, records: list[SessionRecord], presenter_for: RecoveryPresenterFactory, services: SessionServices
    ) -> Sequence[Session_co]:
        """At start-up: the sessions of `records` still running elsewhere (a worker), taken back live."""

    def detach(self, session: ManagedSession) -> bool:
        """At a graceful stop: let `session` stream on without this process (the next start takes it back);
        False when it cannot outlive the bot, so the manager ends it."""

    async def aclose(self) -> None:
        """Release what the launcher holds (connections, tasks); sessions are ended by the manager."""


class InProcess:
    """Every session streams on the bot's own event loop (no workers configured)."""

    def create(
        self,
        session_id: str,
        request: SessionRequest,
        presenter: Presenter,
        services: SessionServices,
        *,
        allowance_seconds: float,
        idle_seconds: float | None,
    ) -> TryOnSession:
        """A `TryOnSession`."""
        return TryOnSession(
            session_id,
            request,
            presenter,
            services,
            allowance_seconds=allowance_seconds,
            idle_seconds=idle_seconds,
        )

    async def check_available(self) -> None:
        """Always available."""

    async def reattach(
        self, records: list[SessionRecord], presenter_for: RecoveryPresenterFactory, services: SessionServices
    ) -> list[TryOnSession]:
        """Nothing outlives this process."""
        return []

    def detach(self, session: ManagedSession) -> bool:
        """Nothing outlives this process."""
        return False

    async def aclose(self) -> None:
        """Nothing to release."""
