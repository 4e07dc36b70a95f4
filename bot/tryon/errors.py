"""Errors a member (or moderator) can cause: each carries a human sentence and a short reason code.

Front ends only render these: `str(error)` and `error.message` are the sentence to show, `error.reason` is a
stable machine code (for logs, metrics and tests). Anything that is not a `TryOnError` is a bug or an outage
and is reported as such, never shown verbatim.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.store.records import AuditEntry


class TryOnError(Exception):
    """Base class: something the member can understand and usually fix."""

    default_reason = "error"
    default_message = "That did not work."
    # Set by the engine when it recorded the refusal for moderators: the front end posts it to the mod-log.
    audit_entry: AuditEntry | None = None

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        self.reason = reason if reason is not None else self.default_reason
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r})"


class PhotoRejected(TryOnError):
    """The attached photo cannot be used (type, size, pixels, damage)."""

    default_reason = "photo"
    default_message = "That photo can't be used. Please attach a JPEG, PNG or WebP photo of yourself."


class PromptRejected(TryOnError):
    """The outfit prompt is empty, too long, or uses words this server does not allow."""

    default_reason = "prompt"
    default_message = "That outfit description can't be used. Please describe the outfit differently."

    def __init__(
        self, message: str | None = None, *, reason: str | None = None, blocked_entry: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        # The blocklist entry that matched, for the moderators' log; not part of the member's message.
        self.blocked_entry = blocked_entry


class OutfitNotApplied(TryOnError):
    """The platform failed or timed out applying an outfit: not the member's doing, not for moderators."""

    default_reason = "prompt_not_applied"
    default_message = "That outfit could not be applied right now. Please try again in a moment."


class QuotaExceeded(TryOnError):
    """The member has used up a daily or monthly allowance; says which one and when it resets."""

    default_reason = "quota"
    default_message = "You have used up your try-on time for now."

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        window: str | None = None,
        resets_at: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.window = window
        self.resets_at = resets_at

    @classmethod
    def for_window(
        cls, window: str, what: str, resets_at: float | None, *, none_allowed: bool = False
    ) -> QuotaExceeded:
        """Build the refusal for a spent `window` ("daily"/"monthly"); `what` is "time" or "sessions".

        `none_allowed`: the limit itself is below what a start needs (e.g. a restricted role with 0), so
        nothing was used up and no reset will help; the message says so instead.
        """
        noun = "try-on time" if what == "time" else "try-on sessions"
        reason = f"quota_{window}_{what}"
        if none_allowed:
            message = (
                f"This server gives you no {window} {noun}, so you can't start a try-on. "
                "Ask a moderator if you think this is a mistake."
            )
            return cls(message, reason=reason, window=window, resets_at=None)
        if resets_at is None:
            when = ""
        else:
            stamp = dt.datetime.fromtimestamp(resets_at, tz=dt.UTC)
            when = f" It resets at {stamp:%Y-%m-%d %H:%M} UTC."
        message = f"You have used all of your {window} {noun}.{when}"
        return cls(message, reason=reason, window=window, resets_at=resets_at)


class Blocked(TryOnError):
    """A moderator has blocked this member from try-ons in this server."""

    default_reason = "blocked"
    default_message = "A moderator has blocked you from using try-on in this server."


class QueueFull(TryOnError):
    """The server's waiting line is full; try again in a little while."""

    default_reason = "queue_full"
    default_message = "The try-on queue for this server is full right now. Please try again in a few minutes."


class AlreadyInSession(TryOnError):
    """The member already has a live or queued session (one at a time)."""

    default_reason = "already_in_session"
    default_message = "You already have a try-on running. Stop it first, or steer it with a new outfit."

    def __init__(
        self, message: str | None = None, *, reason: str | None = None, session_id: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.session_id = session_id


class NoSuchSession(TryOnError):
    """The session id is unknown, finished, or belongs to another server."""

    default_reason = "no_such_session"
    default_message = "That try-on session doesn't exist or has already finished."


class NotAllowed(TryOnError):
    """The member may not do this (for example press another member's buttons)."""

    default_reason = "not_allowed"
    default_message = "You're not allowed to do that."


class ChannelNotAllowed(TryOnError):
    """Try-ons are not enabled in this channel by the server's moderators."""

    default_reason = "channel_not_allowed"
    default_message = (
        "Try-on isn't enabled in this channel. Please use one of the channels the moderators allow."
    )


class Paused(TryOnError):
    """The server's moderators paused try-on here; the message is theirs."""

    default_reason = "paused"
    default_message = "Try-on is paused in this server by its moderators. Please try again later."
