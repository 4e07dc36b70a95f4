"""What a live session writes down: states, heartbeats, streams, prompt outcomes and the settlement.

A session only ever names itself and the platform's stream ids, never a database row, so the same session
code can run in the bot's process (`StoreLedger`: SQLite, as always) or in a worker process whose ledger
sends each write to the bot over the bus. Every write can be applied twice with the same result: a write
re-delivered after a restart changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.tryon.models import SessionState

if TYPE_CHECKING:
    from bot.store import Store
    from bot.tryon.account import AccountWatch
    from bot.tryon.quota import QuotaPolicy


class SessionLedger(Protocol):
    """The writes of a live session, keyed by session id and the platform's stream ids."""

    async def state_changed(
        self,
        session_id: str,
        state: SessionState,
        *,
        error: str | None = None,
        error_reason: str | None = None,
    ) -> None:
        """The session moved to `state` (with the member-facing error and its reason on a failure)."""

    async def heartbeat(self, session_id: str, streamed_seconds: float, stream_seconds: float | None) -> None:
        """Seconds streamed so far over every stream (`stream_seconds`: of the current one)."""

    async def stream_started(self, session_id: str, stream_id: str, prompt: str) -> None:
        """A stream of the session started on the platform with `prompt`."""

    async def stream_ended(self, session_id: str, stream_id: str, seconds: float, reason: str) -> None:
        """A stream ended after `seconds`, for `reason`."""

    async def prompt_status(self, prompt_id: int, status: str, refusal_reason: str | None = None) -> None:
        """An outfit the front end recorded was applied, or not (`refused` with the reason)."""

    async def settle(self, session_id: str, streamed_seconds: float) -> None:
        """Charge the seconds streamed (or refund a session that streamed none)."""


@runtime_checkable
class WorkerEventLedger(SessionLedger, Protocol):
    """The bot's ledger for sessions on workers, which also keeps how far each one's events were applied."""

    async def events_applied(self, session_id: str, sequence: int) -> None:
        """The session's events from its worker up to `sequence` were applied (or are being presented)."""


class StoreLedger:
    """The ledger in the bot's own SQLite store; failures that show an account problem go to `account`."""

    def __init__(self, store: Store, quota: QuotaPolicy, account: AccountWatch | None = None) -> None:
        self._store = store
        self._quota = quota
        self._account = account

    async def state_changed(
        self,
        session_id: str,
        state: SessionState,
        *,
        error: str | None = None,
        error_reason: str | None = None,
    ) -> None:
        """Write the state (and error) to the session's row."""
        await self._store.sessions.set_state(session_id, state, error=error, error_reason=error_reason)
        if state is SessionState.FAILED and self._account is not None:
            await self._account.observe(session_id, error_reason)

    async def heartbeat(self, session_id: str, streamed_seconds: float, stream_seconds: float | None) -> None:
        """Write the streamed seconds (what a crash would settle from)."""
        await self._store.sessions.heartbeat(session_id, streamed_seconds, stream_seconds=stream_seconds)

    async def stream_started(self, session_id: str, stream_id: str, prompt: str) -> None:
        """Add the stream's row, unless it is there already."""
        if await self._store.streams.by_odyssey_id(stream_id) is None:
            await self._store.streams.start(session_id, odyssey_stream_id=stream_id, prompt=prompt)

    async def stream_ended(self, session_id: str, stream_id: str, seconds: float, reason: str) -> None:
        """Close the stream's row (a closed one stays as it was)."""
        record = await self._store.streams.by_odyssey_id(stream_id)
        if record is not None and record.session_id == session_id:
            await self._store.streams.end(record.id, seconds=seconds, reason=reason)
        if self._account is not None:
            await self._account.observe(session_id, reason)  # e.g. the platform's quota_exceeded

    async def prompt_status(self, prompt_id: int, status: str, refusal_reason: str | None = None) -> None:
        """Mark the prompt applied or refused."""
        await self._store.prompts.set_status(prompt_id, status, refusal_reason=refusal_reason)

    async def settle(self, session_id: str, streamed_seconds: float) -> None:
        """Write the final seconds and charge them (the quota policy settles a session once)."""
        await self._store.sessions.heartbeat(session_id, streamed_seconds)
        await self._quota.settle(session_id, streamed_seconds)

    async def events_applied(self, session_id: str, sequence: int) -> None:
        """Keep the session's event floor, so a bot restarted after a crash drops what it had applied."""
        await self._store.sessions.mark_events_applied(session_id, sequence)
