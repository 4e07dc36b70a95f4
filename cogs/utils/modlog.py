"""The mod-log: every moderator action and refused prompt is posted to the guild's chosen channel."""

from __future__ import annotations

import logging

import discord

from bot.app import NO_MENTIONS, TryOnBot
from bot.store.records import AuditEntry
from cogs.utils.formatting import audit_line

log = logging.getLogger(__name__)


async def post_to_mod_log(bot: TryOnBot, entry: AuditEntry | None) -> None:
    """Post one audit entry to its guild's mod-log channel, if one is set and reachable.

    The audit log in SQLite is the record; the channel is a convenience, so failures are logged, not raised.
    """
    if entry is None:
        return
    settings = await bot.runtime.store.guilds.get(entry.guild_id)
    if settings.mod_log_channel_id is None:
        return
    channel = bot.get_channel(settings.mod_log_channel_id)
    if not isinstance(channel, discord.TextChannel) or channel.guild.id != entry.guild_id:
        log.info(
            "mod-log channel %s of guild %s is not available", settings.mod_log_channel_id, entry.guild_id
        )
        return
    try:
        await channel.send(audit_line(entry), allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as error:
        log.warning("could not post to the mod-log of guild %s: %s", entry.guild_id, error)
