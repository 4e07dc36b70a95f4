"""A try-on's final post: the highlight video and stills uploaded with it, its embed, and the answers of its
"Get the full video" button.

Everything meant to last is uploaded with the post (the highlight MP4, the thumbnail, the before/after still)
and the embed refers to the stills by `attachment://`; the recording links expire, so the post says when
they were made and the button issues fresh ones.
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import time
from typing import Any
from urllib.parse import urlsplit

import discord

from bot.tryon.presenter import RecordingLinks, RecordingReady
from cogs.tryon.render import recording_links_text
from cogs.tryon.views import final_post_controls
from cogs.utils.formatting import duration, timestamp

HIGHLIGHT_FILE = "highlight.mp4"
THUMBNAIL_FILE = "thumbnail.jpg"
BEFORE_AFTER_FILE = "before-after.png"
CONTENT_TYPES = {HIGHLIGHT_FILE: "video/mp4", THUMBNAIL_FILE: "image/jpeg", BEFORE_AFTER_FILE: "image/png"}
EMBED_DESCRIPTION_LIMIT = 4096
LOCAL_LINKS_NOTE = (
    "These are **local links**: they point at 127.0.0.1, the video service emulator running beside this "
    "bot, so they open only on the computer running the bot. The highlight video uploaded with the post is "
    "your result."
)


@dataclasses.dataclass(frozen=True)
class FinalPost:
    """The final message of a try-on: what it says, its embed, the files uploaded with it and its button."""

    content: str
    embed: discord.Embed
    # (file name, bytes) in upload order; only what fits the upload limit.
    files: list[tuple[str, bytes]]
    view: discord.ui.View | None
    # Files left out because they did not fit.
    left_out: list[str]

    def discord_files(self) -> list[discord.File]:
        """Fresh file objects for one upload attempt."""
        return [discord.File(io.BytesIO(data), name) for name, data in self.files]

    def preview(self) -> dict[str, Any]:
        """What Discord is sent, as JSON: the text, embed, attachments (name, type, size) and buttons."""
        return {
            "content": self.content,
            "embeds": [self.embed.to_dict()],
            "attachments": [
                {"filename": name, "content_type": CONTENT_TYPES.get(name), "size": len(data)}
                for name, data in self.files
            ],
            "components": self.view.to_components() if self.view is not None else [],
            "left_out": self.left_out,
        }


def final_post(
    event: RecordingReady,
    owner_id: int,
    upload_limit: int,
    *,
    made_at: float | None = None,
    deletable: bool = False,
) -> FinalPost:
    """The final post of `event` for the session's owner, its files within `upload_limit` bytes in all.

    The highlight has the first claim on the limit, then the thumbnail, then the before/after still.
    """
    wanted = [
        (HIGHLIGHT_FILE, event.highlight.data if event.highlight else None),
        (THUMBNAIL_FILE, event.thumbnail_jpeg),
        (BEFORE_AFTER_FILE, event.before_after_png),
    ]
    files: list[tuple[str, bytes]] = []
    left_out: list[str] = []
    room = upload_limit
    for name, data in wanted:
        if data is None:
            continue
        if len(data) <= room:
            files.append((name, data))
            room -= len(data)
        else:
            left_out.append(name)
    attached = {name for name, _ in files}
    embed = results_embed(event, attached, made_at=time.time() if made_at is None else made_at)
    controls = final_post_controls(event.session_id, deletable=deletable)
    return FinalPost(f"<@{owner_id}>", embed, files, controls, left_out)


def results_embed(event: RecordingReady, attached: set[str], *, made_at: float) -> discord.Embed:
    """The final post's embed: the highlight, links with their age, stills by `attachment://`."""
    title = "Your try-on recording" + (" (recovered after a restart)" if event.recovered else "")
    lines = []
    highlight = event.highlight
    if highlight is not None and HIGHLIGHT_FILE in attached:
        outfits = f"{highlight.outfits} outfit{'s' if highlight.outfits != 1 else ''}"
        length = duration(highlight.duration_seconds)
        lines.append(f"**Highlight:** {length} of your {outfits}, uploaded here.")
    links = recording_links_text(event.recordings)
    made = timestamp(made_at, "R")
    tail = [f"Links made {made} work for about an hour; **Get the full video** makes new ones."]
    if links_are_local(event.recordings):
        tail.append(LOCAL_LINKS_NOTE)
    description = "\n".join([*lines, links, *tail])
    if len(description) > EMBED_DESCRIPTION_LIMIT:  # many long presigned links: the videos alone
        description = "\n".join([*lines, recording_links_text(event.recordings, video_only=True), *tail])
    embed = discord.Embed(title=title, description=description[:EMBED_DESCRIPTION_LIMIT])
    if THUMBNAIL_FILE in attached:
        embed.set_thumbnail(url=f"attachment://{THUMBNAIL_FILE}")
    if BEFORE_AFTER_FILE in attached:
        embed.set_image(url=f"attachment://{BEFORE_AFTER_FILE}")
    session_id = event.session_id
    embed.set_footer(text=f"/tryon show id:{session_id} also makes new links")
    return embed


def links_are_local(recordings: tuple[RecordingLinks, ...] | list[RecordingLinks]) -> bool:
    """Whether any link points at this machine (the embedded emulator): nobody else can open it."""
    urls = [
        url
        for links in recordings
        for url in (links.video_url, links.preview_url, links.thumbnail_url)
        if url is not None
    ]
    return any(_is_loopback(url) for url in urls)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def full_video_answer(session_id: str, recordings: list[RecordingLinks]) -> discord.Embed:
    """The private answer to "Get the full video": fresh links to every part, and whether they are local."""
    embed = discord.Embed(title="The full video", colour=discord.Colour.blurple())
    if not recordings:
        embed.description = (
            "The video service has no recording of this try-on right now (it may still be processing it). "
            "Please try again in a few minutes; the highlight in the post stays either way."
        )
        return embed
    lines = [
        f"[{_part_label(index, len(recordings), links)}]({links.video_url})"
        if links.video_url
        else f"{_part_label(index, len(recordings), links)}: not ready yet"
        for index, links in enumerate(recordings, start=1)
    ]
    notes = ["Fresh links, made just now for you; they work for about an hour."]
    if links_are_local(recordings):
        notes.append(LOCAL_LINKS_NOTE)
    embed.description = "\n".join([*lines, "", *notes])[:EMBED_DESCRIPTION_LIMIT]
    embed.set_footer(text=f"session {session_id}")
    return embed


def _part_label(index: int, count: int, links: RecordingLinks) -> str:
    label = f"Part {index} of {count}" if count > 1 else "Full video"
    return label + (f" ({duration(links.duration_seconds)})" if links.duration_seconds else "")


def full_video_limit_text(times: int, per_seconds: float, retry_after: float) -> str:
    """What a member who pressed too often hears: the limit, and when to try again."""
    again = timestamp(time.time() + retry_after, "R")
    return (
        f"You can ask for fresh links {times} times every {duration(per_seconds)}. "
        f"Please try again {again}; the highlight in the post is there meanwhile."
    )
