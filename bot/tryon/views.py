"""What a session shows, built the same way wherever it runs: its summary and its status events."""

from __future__ import annotations

from typing import Protocol

from bot.tryon.models import FINISHING_STATES, EndReason, SessionRequest, SessionState, SessionSummary
from bot.tryon.presenter import BotRestart, StatusChanged


class SessionView(Protocol):
    """The fields of a session (in this process or on a worker) its summary and statuses are made of."""

    id: str
    request: SessionRequest
    state: SessionState
    end_reason: EndReason | None
    latest_outfit: str
    queue_position: int | None
    estimated_wait_seconds: float | None
    last_status: StatusChanged | None

    @property
    def streamed_seconds(self) -> float:
        """Seconds streamed so far."""

    @property
    def remaining_seconds(self) -> float:
        """Streaming seconds left."""


def summary_of(session: SessionView) -> SessionSummary:
    """What a front end may know of the session right now."""
    return SessionSummary(
        id=session.id,
        guild_id=session.request.guild_id,
        user_id=session.request.user_id,
        state=session.state,
        outfit=session.latest_outfit,
        streamed_seconds=session.streamed_seconds,
        remaining_seconds=session.remaining_seconds,
        finishing=session.end_reason is not None or session.state in FINISHING_STATES,
        last_status=session.last_status,
    )


def status_of(
    session: SessionView,
    *,
    continuing: bool = False,
    platform_wait_seconds: float | None = None,
    bot_restart: BotRestart | None = None,
) -> StatusChanged:
    """The status event for the session as it is now (queue position only while queued)."""
    queued = session.state is SessionState.QUEUED
    ended = session.end_reason is not None and session.state is not SessionState.STREAMING
    return StatusChanged(
        session_id=session.id,
        state=session.state,
        elapsed_seconds=round(session.streamed_seconds, 1),
        outfit=session.latest_outfit,
        queue_position=session.queue_position if queued else None,
        estimated_wait_seconds=session.estimated_wait_seconds if queued else None,
        continuing=continuing,
        platform_wait_seconds=platform_wait_seconds,
        remaining_seconds=round(session.remaining_seconds, 1),
        end_reason=str(session.end_reason) if ended else None,
        bot_restart=bot_restart,
    )
