"""How try-on sessions look in Discord: the status embed, recording links, quota and history lines."""

from __future__ import annotations

import discord

from bot.store.records import MemberSettings, SessionRecord
from bot.tryon.models import FINISHING_STATES, SessionState
from bot.tryon.presenter import RecordingLinks, StatusChanged
from bot.tryon.quota import Remaining
from cogs.utils.formatting import duration, quote_safely, timestamp

_COLOURS = {
    SessionState.QUEUED: discord.Colour.light_grey(),
    SessionState.CONNECTING: discord.Colour.blurple(),
    SessionState.STREAMING: discord.Colour.green(),
    SessionState.DONE: discord.Colour.dark_green(),
    SessionState.FAILED: discord.Colour.red(),
    SessionState.CANCELLED: discord.Colour.dark_grey(),
}
_ENDINGS = {
    "member": "you ended it",
    "idle": "no new outfit for a while",
    "quota": "your try-on time ran out",
    "limit": "it reached the longest session allowed",
    "moderator": "a moderator ended it",
    "shutdown": "the bot is restarting",
    "connection_lost": "the connection to the video service was lost",
}
_RESTART_NOTES = {
    "handing_over": "\nThe bot is restarting: your try-on keeps streaming; the buttons work again shortly.",
    "taken_back": "\nThe bot restarted; your try-on kept streaming and nothing was lost.",
}
LIVE_STATES = (SessionState.QUEUED, SessionState.CONNECTING, SessionState.STREAMING)


def status_line(event: StatusChanged) -> str:
    """One sentence for the session's state."""
    state = event.state
    if state is SessionState.QUEUED:
        if event.queue_position is None:
            return "Waiting for a free slot…"
        wait = (
            f", about {duration(event.estimated_wait_seconds)} to go" if event.estimated_wait_seconds else ""
        )
        return f"Waiting in line: position **{event.queue_position}**{wait}."
    if state is SessionState.CONNECTING:
        if event.platform_wait_seconds is not None:
            # Odyssey answers 503 while every streamer is busy; the client asks again every second.
            waited = duration(event.platform_wait_seconds)
            return f"The video service is busy: waiting in its queue for a free streamer ({waited} so far)…"
        return "Connecting to the video service…"
    if state is SessionState.STREAMING:
        prefix = "Continuing on a fresh stream" if event.continuing else "Streaming live"
        return (
            f"{prefix} · {duration(event.elapsed_seconds)}{_RESTART_NOTES.get(event.bot_restart or '', '')}"
        )
    if state in FINISHING_STATES:
        return "Finishing up and fetching your recording…"
    why = _ENDINGS.get(event.end_reason or "", "")
    because = f" ({why})" if why else ""
    if state is SessionState.DONE:
        return f"Done after {duration(event.elapsed_seconds)}{because}."
    if state is SessionState.CANCELLED:
        return f"Cancelled{because}."
    if state is SessionState.INTERRUPTED:
        return "Interrupted by a restart."
    return f"Stopped: something went wrong{because}."


def status_embed(event: StatusChanged, owner_id: int) -> discord.Embed:
    """The session's status message."""
    embed = discord.Embed(
        title="Try-on",
        description=status_line(event),
        colour=_COLOURS.get(event.state, discord.Colour.orange()),
    )
    embed.add_field(name="Member", value=f"<@{owner_id}>")
    if event.outfit:
        embed.add_field(name="Outfit", value=quote_safely(event.outfit, 300), inline=False)
    if event.state is SessionState.STREAMING and event.remaining_seconds is not None:
        embed.add_field(name="Time left", value=duration(event.remaining_seconds))
    if event.watch_url:
        embed.add_field(
            name="Watch live", value=watch_line(event.watch_url, event.viewers or 0), inline=False
        )
    embed.set_footer(text=f"session {event.session_id}")
    return embed


def watch_line(url: str, viewers: int) -> str:
    """The shared try-on's link, for anyone, and how many are watching."""
    watching = "nobody watching yet" if viewers == 0 else f"{viewers} watching"
    return f"[Open the live view]({url}) · {watching}"


def recording_links_text(
    recordings: tuple[RecordingLinks, ...] | list[RecordingLinks], *, video_only: bool = False
) -> str:
    """Markdown links for every stream's recording (several after roll-overs)."""
    lines = []
    for index, links in enumerate(recordings, start=1):
        parts = []
        if links.video_url:
            parts.append(f"[video]({links.video_url})")
        if links.preview_url and not video_only:
            parts.append(f"[preview]({links.preview_url})")
        if links.thumbnail_url and not video_only:
            parts.append(f"[thumbnail]({links.thumbnail_url})")
        length = f" ({duration(links.duration_seconds)})" if links.duration_seconds else ""
        label = f"Part {index}" if len(recordings) > 1 else "Recording"
        lines.append(f"{label}{length}: {' · '.join(parts) or 'not available'}")
    return "\n".join(lines) or "No recording is available."


def quota_text(remaining: Remaining) -> str:
    """What a member has left, in words."""
    if remaining.blocked:
        until = f" until {timestamp(remaining.block_expires_at)}" if remaining.block_expires_at else ""
        return f"A moderator has blocked you from try-on here{until}."
    lines = []
    for window in remaining.windows:
        name = "Today" if window.window == "daily" else "This month"
        time_left = (
            "unlimited time" if window.seconds_left is None else f"{duration(window.seconds_left)} left"
        )
        sessions = "" if window.sessions_left is None else f", {window.sessions_left} sessions left"
        lines.append(
            f"**{name}:** {time_left}{sessions} (used {duration(window.seconds_used)}; "
            f"resets {timestamp(window.resets_at, 'R')})"
        )
    return "\n".join(lines)


def history_line(record: SessionRecord) -> str:
    """One session in `/tryon history`."""
    return (
        f"`{record.id}` · {timestamp(record.created_at, 'f')} · {record.state} · "
        f"{duration(record.streamed_seconds)}"
    )


def member_settings_text(prefs: MemberSettings) -> str:
    """A member's `/tryon settings`, one line each, saying which are the defaults."""
    private = "default (public)" if prefs.private is None else ("yes" if prefs.private else "no")
    orientation = prefs.orientation or "default (portrait)"
    snippets = "default (on)" if prefs.snippets is None else ("on" if prefs.snippets else "off")
    return (
        f"**Private:** {private}\n**Orientation:** {orientation}\n**Clips after each outfit:** {snippets}\n"
        "The options of `/tryon start` win over these; `/tryon forget` deletes them."
    )
