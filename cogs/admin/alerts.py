"""Account problems of the bot's Odyssey account, delivered: the server's mod-log and the bot's owner by DM.

The engine decides when (once per problem and window, see bot/tryon/account.py); this only delivers.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from bot.app import TryOnBot
from bot.tryon.account import ALERT_EVERY_SECONDS, AccountAlert
from cogs.utils.delivery import NO_MENTIONS, describe_failure, post_to_mod_log

log = logging.getLogger(__name__)

CALL_SECONDS = 10.0


async def announce_account_problem(bot: TryOnBot, alert: AccountAlert) -> None:
    """Post the problem to the server's mod-log (if it has one) and DM the application's owner(s)."""
    await post_to_mod_log(bot, alert.audit_entry)
    if alert.to_owner:
        await _tell_owners(bot, alert)


async def _tell_owners(bot: TryOnBot, alert: AccountAlert) -> None:
    text = (
        f"**Try-on bot: a problem with its Odyssey account** (met in server {alert.guild_id}): "
        f"{alert.problem.sentence}. Members are told to try again later. You and each server's mod-log "
        f"hear of it at most once every {ALERT_EVERY_SECONDS / 3600:g} hours."
    )
    try:
        async with asyncio.timeout(CALL_SECONDS):
            info = await bot.application_info()
    except (discord.HTTPException, TimeoutError) as error:
        log.warning("account alert: no application info (%s)", describe_failure(error))
        return
    owner_ids = [member.id for member in info.team.members] if info.team else [info.owner.id]
    for owner_id in owner_ids:
        try:
            async with asyncio.timeout(CALL_SECONDS):
                dm = await bot.create_dm(discord.Object(id=owner_id))
                await dm.send(text, allowed_mentions=NO_MENTIONS)
        except (discord.HTTPException, TimeoutError) as error:
            log.warning("account alert: could not DM owner %s (%s)", owner_id, describe_failure(error))
