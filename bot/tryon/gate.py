"""The engine's one gate for what members ask: checks before anything is spent, and the record of refusals.

Front ends never check rules themselves: they ask the engine, which asks this gate, and render the answer.
A refusal moderators should see carries its audit entry (`TryOnError.audit_entry`) for the mod-log.
"""

from __future__ import annotations

from collections.abc import Collection

from bot.store import GuildSettings, Store
from bot.tryon.errors import Blocked, ChannelNotAllowed, Paused, PromptRejected
from bot.tryon.prompts import PromptRules, check_prompt
from bot.tryon.quota import QuotaPolicy


class Gate:
    """Decides whether a member may start or steer here; records every prompt it refuses."""

    def __init__(self, store: Store, quota: QuotaPolicy) -> None:
        self._store = store
        self._quota = quota

    async def outfit(self, guild_id: int, user_id: int, text: str, *, session_id: str | None = None) -> str:
        """The cleaned outfit text; PromptRejected (audited, and stored with the session's prompts) if not.

        Every refusal by the prompt rules is the member's doing, so every one goes to the audit log. A
        platform that fails to apply an accepted outfit is not a refusal and never comes through here.
        """
        blocklist = await self._store.guilds.blocked_words(guild_id)
        try:
            return check_prompt(text, PromptRules(blocklist=blocklist)).text
        except PromptRejected as refusal:
            if session_id is not None:
                await self._store.prompts.add(
                    session_id, text, status="refused", refusal_reason=refusal.reason
                )
            refusal.audit_entry = await self._store.audit.prompt_refused(
                guild_id,
                user_id,
                text,
                reason=refusal.reason,
                blocked_entry=refusal.blocked_entry,
                session_id=session_id,
            )
            raise

    async def open(self, guild_id: int) -> GuildSettings:
        """The server's rules; Paused (with the moderators' message) if they paused try-on here."""
        rules = await self._store.guilds.get(guild_id)
        if rules.paused:
            raise Paused(rules.pause_message or None)
        return rules

    async def place(self, guild_id: int, channel_id: int | None) -> None:
        """ChannelNotAllowed unless try-ons may run in this channel."""
        if channel_id is not None and not await self._store.guilds.is_channel_allowed(guild_id, channel_id):
            raise ChannelNotAllowed()

    async def not_blocked(self, guild_id: int, user_id: int) -> None:
        """Blocked if a moderator blocked the member from try-ons here."""
        if await self._store.blocks.get(guild_id, user_id) is not None:
            raise Blocked()

    async def quota(self, guild_id: int, user_id: int, role_ids: Collection[int] = ()) -> None:
        """QuotaExceeded unless the member's allowance covers a start now (nothing is reserved)."""
        await self._quota.check(guild_id, user_id, role_ids)
