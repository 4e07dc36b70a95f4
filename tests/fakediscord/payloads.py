"""Builders for Discord gateway/REST payloads shaped like the real ones (users, guilds, interactions...)."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
_counter = itertools.count(1)

Payload = dict[str, Any]

# Option types of application commands (Discord's ApplicationCommandOptionType).
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE = 1, 2, 3, 4, 5, 6, 7, 8
NUMBER, ATTACHMENT = 10, 11
ALL_PERMISSIONS = (1 << 53) - 1
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 15) | (1 << 16) | (1 << 31)  # view, send, attach, history
MANAGE_GUILD = 1 << 5


def snowflake(at: float | None = None) -> int:
    """A unique Discord id whose embedded timestamp is `at` (unix seconds, default now)."""
    millis = int((time.time() if at is None else at) * 1000)
    return ((millis - DISCORD_EPOCH_MS) << 22) | (next(_counter) % (1 << 22))


def iso_now() -> str:
    """Discord's ISO-8601 timestamp for now."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())


def user(user_id: int | None = None, name: str = "member", *, bot: bool = False) -> Payload:
    """A user object."""
    uid = user_id or snowflake()
    return {
        "id": str(uid),
        "username": name,
        "global_name": name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
        "flags": 0,
        "primary_guild": None,
    }


def role(
    guild_id: int, role_id: int | None = None, name: str = "role", *, permissions: int = 0, position: int = 1
) -> Payload:
    """A role object; the @everyone role has the guild's id."""
    return {
        "id": str(role_id or snowflake()),
        "name": name,
        "color": 0,
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def member(
    user_payload: Payload, *, roles: list[int] | None = None, permissions: int = MEMBER_PERMISSIONS
) -> Payload:
    """A guild member as sent inside interactions (with the resolved `permissions`)."""
    return {
        "user": user_payload,
        "nick": None,
        "avatar": None,
        "roles": [str(r) for r in roles or []],
        "joined_at": iso_now(),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "permissions": str(permissions),
        "communication_disabled_until": None,
    }


def text_channel(
    guild_id: int, channel_id: int | None = None, name: str = "general", *, position: int = 0
) -> Payload:
    """A guild text channel."""
    return {
        "id": str(channel_id or snowflake()),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def dm_channel(recipient: Payload, channel_id: int | None = None) -> Payload:
    """A direct-message channel with one recipient."""
    return {
        "id": str(channel_id or snowflake()),
        "type": 1,
        "flags": 0,
        "recipients": [recipient],
        "last_message_id": None,
    }


@dataclass
class GuildWorld:
    """A guild with an owner, a moderator role, a member role and a couple of channels, built together."""

    guild_id: int
    owner: Payload
    everyone: Payload
    moderator_role: Payload
    member_role: Payload
    channels: list[Payload]
    members: list[Payload]

    def guild_create(self) -> Payload:
        """The GUILD_CREATE dispatch payload for this guild."""
        return {
            "id": str(self.guild_id),
            "name": f"guild-{self.guild_id}",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": self.owner["user"]["id"],
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [self.everyone, self.member_role, self.moderator_role],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": iso_now(),
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "members": [{k: v for k, v in m.items() if k != "permissions"} for m in self.members],
            "channels": [{k: v for k, v in c.items() if k != "guild_id"} for c in self.channels],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    @property
    def channel(self) -> Payload:
        """The first text channel."""
        return self.channels[0]

    def add_member(self, name: str, *, moderator: bool = False, roles: list[int] | None = None) -> Payload:
        """A new member of this guild (a moderator has Manage Server through the moderator role)."""
        role_ids = [int(self.member_role["id"]), *(roles or [])]
        permissions = MEMBER_PERMISSIONS
        if moderator:
            role_ids.append(int(self.moderator_role["id"]))
            permissions |= MANAGE_GUILD
        payload = member(user(name=name), roles=role_ids, permissions=permissions)
        self.members.append(payload)
        return payload


def guild_world(name_prefix: str = "g") -> GuildWorld:
    """A fresh guild: owner (all permissions), roles, two text channels."""
    guild_id = snowflake()
    owner = member(user(name=f"{name_prefix}-owner"), permissions=ALL_PERMISSIONS)
    everyone = role(guild_id, guild_id, "@everyone", permissions=MEMBER_PERMISSIONS, position=0)
    return GuildWorld(
        guild_id=guild_id,
        owner=owner,
        everyone=everyone,
        moderator_role=role(guild_id, name="moderators", permissions=MANAGE_GUILD, position=2),
        member_role=role(guild_id, name="members", position=1),
        channels=[text_channel(guild_id, name="tryon"), text_channel(guild_id, name="chat", position=1)],
        members=[owner],
    )


@dataclass(frozen=True)
class Resolved:
    """An option value that Discord resolves into full objects (user, role, channel, attachment)."""

    kind: int
    value: str
    resolved_key: str
    resolved: Payload
    extra: tuple[tuple[str, str, Payload], ...] = ()


def opt_member(member_payload: Payload) -> Resolved:
    """A USER option pointing at a guild member."""
    user_payload = member_payload["user"]
    partial = {k: v for k, v in member_payload.items() if k not in ("user", "deaf", "mute")}
    return Resolved(
        USER, user_payload["id"], "users", user_payload, (("members", user_payload["id"], partial),)
    )


def opt_role(role_payload: Payload) -> Resolved:
    """A ROLE option."""
    return Resolved(ROLE, role_payload["id"], "roles", role_payload)


def opt_channel(channel_payload: Payload) -> Resolved:
    """A CHANNEL option."""
    partial: Payload = {k: channel_payload[k] for k in ("id", "type", "name") if k in channel_payload}
    partial["permissions"] = str(ALL_PERMISSIONS)
    return Resolved(CHANNEL, channel_payload["id"], "channels", partial)


def opt_attachment(attachment_payload: Payload) -> Resolved:
    """An ATTACHMENT option (the payload comes from `FakeDiscord.add_attachment`)."""
    return Resolved(ATTACHMENT, attachment_payload["id"], "attachments", attachment_payload)


def attachment(
    url: str,
    filename: str,
    size: int,
    content_type: str,
    *,
    width: int | None = None,
    height: int | None = None,
) -> Payload:
    """An attachment object served from `url`."""
    payload: Payload = {
        "id": str(snowflake()),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
        "content_type": content_type,
    }
    if width is not None and height is not None:
        payload["width"], payload["height"] = width, height
    return payload


def _option(name: str, value: Any) -> Payload:
    if isinstance(value, Resolved):
        return {"name": name, "type": value.kind, "value": value.value}
    if isinstance(value, bool):
        return {"name": name, "type": BOOLEAN, "value": value}
    if isinstance(value, int):
        return {"name": name, "type": INTEGER, "value": value}
    if isinstance(value, float):
        return {"name": name, "type": NUMBER, "value": value}
    return {"name": name, "type": STRING, "value": str(value)}


def _resolved(options: dict[str, Any]) -> Payload:
    resolved: Payload = {}
    for value in options.values():
        if isinstance(value, Resolved):
            resolved.setdefault(value.resolved_key, {})[value.value] = value.resolved
            for key, item_id, item in value.extra:
                resolved.setdefault(key, {})[item_id] = item
    return resolved


@dataclass
class InteractionContext:
    """Where and by whom an interaction happens: a guild channel (with member) or a DM (with user)."""

    application_id: int
    channel: Payload
    guild_id: int | None = None
    member: Payload | None = None
    user: Payload | None = None
    created_at: float | None = None
    attachment_size_limit: int = 10 * 1024 * 1024

    def base(self, interaction_type: int) -> Payload:
        """The fields every interaction shares."""
        payload: Payload = {
            "id": str(snowflake(self.created_at)),
            "application_id": str(self.application_id),
            "type": interaction_type,
            "token": "itoken-" + secrets.token_urlsafe(24),
            "version": 1,
            "channel": self.channel,
            "channel_id": self.channel["id"],
            "app_permissions": str(ALL_PERMISSIONS),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": self.attachment_size_limit,
        }
        if self.guild_id is not None:
            assert self.member is not None
            payload.update(
                guild_id=str(self.guild_id),
                guild={"id": str(self.guild_id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=self.member,
                context=0,
                authorizing_integration_owners={"0": str(self.guild_id)},
            )
        else:
            assert self.user is not None
            payload.update(user=self.user, context=1, authorizing_integration_owners={"1": self.user["id"]})
        return payload


def slash_command(
    ctx: InteractionContext,
    command: str,
    options: dict[str, Any] | None = None,
    *,
    command_id: int | None = None,
) -> Payload:
    """An APPLICATION_COMMAND interaction for `command` ("tryon start", "tryonadmin quota set", ...)."""
    name, *path = command.split()
    options = options or {}
    leaf = [_option(k, v) for k, v in options.items()]
    for depth, part in enumerate(reversed(path)):
        kind = SUB_COMMAND if depth == 0 else SUB_COMMAND_GROUP
        leaf = [{"name": part, "type": kind, "options": leaf}]
    data: Payload = {"id": str(command_id or snowflake()), "name": name, "type": 1, "options": leaf}
    resolved = _resolved(options)
    if resolved:
        data["resolved"] = resolved
    if ctx.guild_id is not None:
        data["guild_id"] = str(ctx.guild_id)
    payload = ctx.base(2)
    payload["data"] = data
    return payload


def message_command(ctx: InteractionContext, name: str, message: Payload) -> Payload:
    """An APPLICATION_COMMAND interaction of a message context menu (`name`) used on `message`."""
    data: Payload = {
        "id": str(snowflake()),
        "name": name,
        "type": 3,
        "target_id": message["id"],
        "resolved": {"messages": {message["id"]: message}},
    }
    if ctx.guild_id is not None:
        data["guild_id"] = str(ctx.guild_id)
    payload = ctx.base(2)
    payload["data"] = data
    return payload


def component(
    ctx: InteractionContext, custom_id: str, message: Payload, *, component_type: int = 2
) -> Payload:
    """A MESSAGE_COMPONENT interaction: a button (type 2) pressed on `message`."""
    payload = ctx.base(3)
    payload["data"] = {"custom_id": custom_id, "component_type": component_type}
    payload["message"] = message
    return payload


def modal_submit(
    ctx: InteractionContext, custom_id: str, values: dict[str, str], *, message: Payload | None = None
) -> Payload:
    """A MODAL_SUBMIT interaction with text inputs (custom id -> value), each in its own action row."""
    rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]} for k, v in values.items()]
    payload = ctx.base(5)
    payload["data"] = {"custom_id": custom_id, "components": rows}
    if message is not None:
        payload["message"] = message
    return payload


def button_row(*custom_ids: str) -> Payload:
    """An action row of plain buttons, as found on a message the bot sent earlier."""
    return {
        "type": 1,
        "components": [{"type": 2, "style": 2, "label": cid, "custom_id": cid} for cid in custom_ids],
    }
