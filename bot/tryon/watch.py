"""Watch live, the engine's side: a narrow interface to the viewer's links, and the presenter that feeds it.

A session shared live streams in broadcast mode; each stream part's `BroadcastReady` (from the session, in
this process or over the bus from a worker) reaches the `WatchingPresenter` the manager wrapped around the
front end's presenter. It hands the WHEP URL and spectator token, the outfit and the end to a `WatchBoard`
(the web server's registry, bot/web), and adds the link and the viewer count to every status it passes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Protocol

from bot.deadline import wait_within
from bot.tryon.models import FINISHING_STATES, TERMINAL_STATES
from bot.tryon.presenter import (
    BroadcastReady,
    ErrorReported,
    Presenter,
    RecordingReady,
    SnapshotReady,
    SnippetReady,
    StatusChanged,
)

log = logging.getLogger(__name__)

# A front end that does not take a re-shown status within this is skipped (as sessions bound theirs).
PRESENT_SECONDS = 30.0


class ViewerCountListener(Protocol):
    """Told how many pages are open on a link whenever that changes."""

    def __call__(self, viewers: int) -> None:
        """Take the new count (must return at once)."""


class WatchBoard(Protocol):
    """Where watch links live (the viewer's web server); every call returns at once."""

    def open(self, session_id: str, on_viewers: ViewerCountListener) -> str:
        """A link for the session (the same one if it has one): its page URL."""

    def broadcast(self, session_id: str, webrtc_url: str, spectator_token: str) -> None:
        """A new stream part is broadcast: open pages switch to it."""

    def outfit(self, session_id: str, outfit: str) -> None:
        """The outfit on screen changed."""

    def end(self, session_id: str) -> None:
        """The try-on ended: pages say so and the link stops working."""


class WatchingPresenter:
    """A session's presenter, wrapped: it keeps the session's watch link up to date and shows it."""

    def __init__(self, inner: Presenter, board: WatchBoard, session_id: str) -> None:
        self.inner = inner
        self.board = board
        self.session_id = session_id
        # The link, once the session is shared; None again once the link died.
        self.url: str | None = None
        self.viewers = 0
        self._last: StatusChanged | None = None
        self._ended = False
        self._refresh: asyncio.Task[None] | None = None

    @property
    def upload_budget_bytes(self) -> int | None:
        """The front end's budget."""
        return self.inner.upload_budget_bytes

    @property
    def shared(self) -> bool:
        """True while the session has a live link."""
        return self.url is not None

    def open(self) -> str:
        """Give the session its link (the status shows it from now on); RuntimeError after the end."""
        if self._ended:
            raise RuntimeError("the session already ended")
        if self.url is None:
            self.url = self.board.open(self.session_id, self._viewers_changed)
            if self._last is not None and self._last.outfit:
                self.board.outfit(self.session_id, self._last.outfit)
            self._show_again()
        return self.url

    def end(self) -> None:
        """The session is over: the link dies (idempotent)."""
        if self._ended:
            return
        self._ended = True
        if self.url is not None:
            self.board.end(self.session_id)
            self.url = None

    # ----- the session's events ----------------------------------------------------------------------

    async def status_changed(self, event: StatusChanged) -> None:
        """Pass the status on with the link and viewer count; the link dies when streaming stops."""
        if event.state in FINISHING_STATES or event.state in TERMINAL_STATES:
            self.end()
        elif self.url is not None and event.outfit:
            self.board.outfit(self.session_id, event.outfit)
        self._last = event
        await self.inner.status_changed(self._with_watch(event))

    async def broadcast_ready(self, event: BroadcastReady) -> None:
        """Pages switch to the new stream part."""
        if self.url is not None:
            self.board.broadcast(self.session_id, event.webrtc_url, event.spectator_token)
        await self.inner.broadcast_ready(event)

    async def snippet_ready(self, event: SnippetReady) -> None:
        """Passed on."""
        await self.inner.snippet_ready(event)

    async def snapshot_ready(self, event: SnapshotReady) -> None:
        """Passed on."""
        await self.inner.snapshot_ready(event)

    async def recording_ready(self, event: RecordingReady) -> None:
        """Passed on (the link died before: the session stopped streaming)."""
        self.end()
        await self.inner.recording_ready(event)

    async def error(self, event: ErrorReported) -> None:
        """Passed on."""
        await self.inner.error(event)

    # ----- viewers -----------------------------------------------------------------------------------

    def _with_watch(self, event: StatusChanged) -> StatusChanged:
        if self.url is None:
            return event
        return dataclasses.replace(event, watch_url=self.url, viewers=self.viewers)

    def _viewers_changed(self, viewers: int) -> None:
        self.viewers = viewers
        self._show_again()

    def _show_again(self) -> None:
        """Show the last status again (new link or count); changes meanwhile are shown by one refresh."""
        if self._last is None or self._ended or (self._refresh is not None and not self._refresh.done()):
            return
        self._refresh = asyncio.get_running_loop().create_task(self._show_last())

    async def _show_last(self) -> None:
        await asyncio.sleep(0)  # let a burst of joins or leaves land first
        last = self._last
        if last is None or self._ended:
            return
        try:
            await wait_within(self.inner.status_changed(self._with_watch(last)), PRESENT_SECONDS)
        except Exception:
            log.exception("session %s: could not show the viewer count", self.session_id)
