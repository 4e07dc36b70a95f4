"""Watch links: one unguessable id per shared try-on, what its viewer page shows, and who is watching.

The engine feeds it (through its `WatchBoard` interface, bot/tryon/watch.py): `open` a link for a session,
`broadcast` each stream part's WHEP URL and spectator token, the `outfit` on screen, and the `end`. The web
server reads it: a page finds its link by id and follows its changes; every open page counts as a viewer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Told the number of pages open on a link whenever it changes.
ViewerListener = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class WatchState:
    """What a viewer page shows: the part of the stream to play, the outfit, and whether it is over."""

    webrtc_url: str | None = None
    spectator_token: str | None = None
    # 1 for the first stream part broadcast, +1 per roll-over: a new part means a new WHEP URL and token.
    part: int = 0
    outfit: str | None = None
    ended: bool = False

    def to_json(self) -> dict[str, Any]:
        """The page's view of it (the spectator token lets anyone watch, nothing more)."""
        return dataclasses.asdict(self)


class Watch:
    """One shared try-on's link: its state, a way to wait for the next change, and its viewers."""

    def __init__(self, watch_id: str, session_id: str, on_viewers: ViewerListener) -> None:
        self.id = watch_id
        self.session_id = session_id
        self.state = WatchState()
        self.version = 0
        self.viewers = 0
        self._on_viewers = on_viewers
        self._changed = asyncio.Event()

    def update(self, **changes: Any) -> None:
        """Change what the page shows; every page waiting for a change wakes up."""
        self.state = dataclasses.replace(self.state, **changes)
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def next_change(self, seen_version: int) -> None:
        """Return once the state is newer than `seen_version` (at once if it already is)."""
        if self.version == seen_version:
            await self._changed.wait()

    def joined(self) -> None:
        """A page opened."""
        self.viewers += 1
        self._tell_viewers()

    def left(self) -> None:
        """A page closed (or its connection dropped)."""
        self.viewers -= 1
        self._tell_viewers()

    def _tell_viewers(self) -> None:
        try:
            self._on_viewers(self.viewers)
        except Exception:
            log.exception("the viewer count listener of a watch link failed")


class WatchRegistry:
    """Every live watch link by id and by session; links die when their session ends."""

    def __init__(self, *, max_viewers_per_link: int) -> None:
        self.max_viewers_per_link = max_viewers_per_link
        # Where the server is reached (set once it listens): links are `<base_url>/watch/<id>`.
        self.base_url: str | None = None
        self._by_id: dict[str, Watch] = {}
        self._by_session: dict[str, Watch] = {}

    def open(self, session_id: str, on_viewers: ViewerListener) -> str:
        """A watch link for the session (the same one if it has one); its page URL."""
        if self.base_url is None:
            raise RuntimeError("the viewer server is not listening yet")
        watch = self._by_session.get(session_id)
        if watch is None:
            watch = Watch(secrets.token_urlsafe(18), session_id, on_viewers)
            self._by_id[watch.id] = watch
            self._by_session[session_id] = watch
        return f"{self.base_url}/watch/{watch.id}"

    def broadcast(self, session_id: str, webrtc_url: str, spectator_token: str) -> None:
        """A new stream part is broadcast: pages switch to it (the same part again changes nothing)."""
        watch = self._by_session.get(session_id)
        if watch is None:
            return
        if (watch.state.webrtc_url, watch.state.spectator_token) != (webrtc_url, spectator_token):
            watch.update(webrtc_url=webrtc_url, spectator_token=spectator_token, part=watch.state.part + 1)

    def outfit(self, session_id: str, outfit: str) -> None:
        """The outfit on screen changed."""
        watch = self._by_session.get(session_id)
        if watch is not None and watch.state.outfit != outfit:
            watch.update(outfit=outfit)

    def end(self, session_id: str) -> None:
        """The try-on ended: open pages say so, and the link stops working at once."""
        watch = self._by_session.pop(session_id, None)
        if watch is None:
            return
        del self._by_id[watch.id]
        watch.update(ended=True, webrtc_url=None, spectator_token=None)

    def end_all(self) -> None:
        """The server is stopping: every link ends."""
        for session_id in list(self._by_session):
            self.end(session_id)

    def viewers(self, session_id: str) -> int:
        """Pages open on the session's link (0 without one)."""
        watch = self._by_session.get(session_id)
        return 0 if watch is None else watch.viewers

    def find(self, watch_id: str) -> Watch | None:
        """The live link with this id, or None (unknown, or its try-on ended)."""
        return self._by_id.get(watch_id)
