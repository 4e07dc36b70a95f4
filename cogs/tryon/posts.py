"""The bot's public posts of each try-on: written down as they are made, removed on Delete and forget.

Only public messages are recorded (channel posts and DMs): an ephemeral one is seen by its member alone and
cannot be deleted once its interaction token has expired.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import discord

from bot.store import BotPost, Store
from cogs.utils.delivery import describe_failure

log = logging.getLogger(__name__)

# One delete, discord.py's waits on a 429 included.
DELETE_SECONDS = 10.0
# Posts a report names one by one; more are counted.
NAMED_AT_MOST = 10


class PostLog:
    """Writes down the public messages posted for one member's try-ons in one guild."""

    def __init__(self, store: Store, guild_id: int, user_id: int) -> None:
        self._store = store
        self.guild_id = guild_id
        self.user_id = user_id

    async def kept(self, session_id: str, message: discord.Message) -> None:
        """Record `message` as a post of the session (ephemeral ones are skipped); never raises."""
        if message.flags.ephemeral:
            return
        try:
            await self._store.posts.add(
                message_id=message.id,
                channel_id=message.channel.id,
                guild_id=self.guild_id,
                session_id=session_id,
                user_id=self.user_id,
            )
        except Exception:  # the post stands; only a later Delete would miss it
            log.exception("could not record post %s of session %s", message.id, session_id)


@dataclasses.dataclass
class Removal:
    """What removing a list of posts did: removed, already gone, refused (no permission), failed."""

    removed: list[BotPost] = dataclasses.field(default_factory=list)
    gone: list[BotPost] = dataclasses.field(default_factory=list)
    refused: list[BotPost] = dataclasses.field(default_factory=list)
    failed: list[BotPost] = dataclasses.field(default_factory=list)

    @property
    def cleared(self) -> list[int]:
        """Message ids no longer in Discord: their records can go."""
        return [post.message_id for post in self.removed + self.gone]


async def remove_posts(client: discord.Client, store: Store, posts: list[BotPost]) -> Removal:
    """Delete each post from Discord (one at a time: deletes share a per-channel rate limit).

    A 404 (deleted by someone, or its channel gone) counts as gone; a 403 as refused. The records of
    removed and gone posts are dropped; refused and failed ones stay, for a later try.
    """
    removal = Removal()
    for post in posts:
        message = client.get_partial_messageable(post.channel_id).get_partial_message(post.message_id)
        try:
            async with asyncio.timeout(DELETE_SECONDS):
                await message.delete()
        except discord.NotFound:
            removal.gone.append(post)
        except discord.Forbidden:
            removal.refused.append(post)
        except (discord.HTTPException, TimeoutError) as error:
            log.warning("could not delete post %s (%s)", post.message_id, describe_failure(error))
            removal.failed.append(post)
        else:
            removal.removed.append(post)
    await store.posts.remove(removal.cleared)
    return removal


def removal_text(removal: Removal) -> str:
    """What was removed and what was not, in words, with links to the posts left behind."""
    removed = len(removal.removed)
    text = f"Removed {removed} of the bot's post{'s' if removed != 1 else ''}"
    if removal.gone:
        text += f" ({len(removal.gone)} already gone)"
    text += "."
    if removal.refused:
        text += (
            f"\nCould not remove {len(removal.refused)}: the bot may no longer see or post in "
            f"{'that channel' if len(removal.refused) == 1 else 'those channels'}: "
            f"{_links(removal.refused)}. A moderator can delete "
            f"{'it' if len(removal.refused) == 1 else 'them'}."
        )
    if removal.failed:
        text += (
            f"\nDiscord did not answer for {len(removal.failed)} ({_links(removal.failed)}); "
            "try again in a minute."
        )
    return text


def _links(posts: list[BotPost]) -> str:
    shown = " ".join(
        f"https://discord.com/channels/{p.guild_id}/{p.channel_id}/{p.message_id}"
        for p in posts[:NAMED_AT_MOST]
    )
    more = len(posts) - NAMED_AT_MOST
    return shown + (f" and {more} more" if more > 0 else "")
