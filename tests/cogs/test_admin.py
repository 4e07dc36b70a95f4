"""`/tryonadmin` through the real bot: permissions, every action audited and mod-logged, guild scoping."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from bot.app import TryOnBot
from bot.media.charts import UsageChart
from bot.store.records import QuotaLimits
from tests.fakediscord import BotDriver, FakeDiscord
from tests.fakediscord import payloads as p
from tests.helpers import stored_session

Ctx = Callable[..., p.InteractionContext]
Steps = list[tuple[str, dict[str, Any]]]


async def test_commands_are_hidden_from_members_and_guild_only(
    bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    await bot.tree.sync()
    admin = next(c for c in fake_discord.synced_commands[None] if c["name"] == "tryonadmin")
    assert int(admin["default_member_permissions"]) == 1 << 5  # Manage Server
    assert admin["contexts"] == [0]
    assert admin["integration_types"] == [0]
    groups = {o["name"]: o for o in admin["options"]}
    assert {"quota", "channels", "blocklist", "block", "unblock", "usage", "modlog", "audit"} <= set(groups)
    assert {o["name"] for o in groups["quota"]["options"]} == {
        "set-member",
        "set-role",
        "set-default",
        "reset-member",
        "reset-role",
        "reset-default",
        "show",
    }


async def test_runtime_check_refuses_members_without_manage_server(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot
) -> None:
    eve = as_member("eve")  # an admin could have overridden default_permissions for her
    target = world.add_member("target")
    sent = driver.command(eve, "tryonadmin block", member=p.opt_member(target))
    reply = await sent.reply()
    assert reply.ephemeral
    assert "Manage Server" in reply.content
    assert await bot.runtime.store.blocks.get(world.guild_id, int(target["user"]["id"])) is None


async def test_quota_set_show_reset_for_member_role_and_default(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot
) -> None:
    mod = as_member("mod", moderator=True)
    alice = world.add_member("alice")
    alice_id = int(alice["user"]["id"])
    store = bot.runtime.store

    reply = await driver.command(
        mod, "tryonadmin quota set-member", member=p.opt_member(alice), daily_minutes=5.0, monthly_sessions=20
    ).reply()
    assert reply.ephemeral and "5 min per day" in reply.content and "20 sessions per month" in reply.content
    override = await store.quotas.get_user(world.guild_id, alice_id)
    assert override is not None and override.limits == QuotaLimits(daily_seconds=300.0, monthly_sessions=20)

    await driver.command(
        mod, "tryonadmin quota set-role", role=p.opt_role(world.member_role), monthly_minutes=60.0
    ).reply()
    role = await store.quotas.get_role(world.guild_id, int(world.member_role["id"]))
    assert role is not None and role.limits.monthly_seconds == 3600.0

    await driver.command(mod, "tryonadmin quota set-default", daily_sessions=3).reply()
    assert (await store.guilds.get(world.guild_id)).default_limits == QuotaLimits(daily_sessions=3)

    shown = await driver.command(mod, "tryonadmin quota show", member=p.opt_member(alice)).reply()
    assert (
        "3 sessions per day" in shown.text
        and "5 min per day" in shown.text
        and "60 min per month" in shown.text
    )
    assert "today 0 s in 0 sessions" in shown.text
    # Discord renders mentions in field values only; a name would show the raw `<@&id>`.
    fields = shown.embeds[0]["fields"]
    assert not any("<@" in f["name"] for f in fields)
    assert any(f"<@&{world.member_role['id']}>" in f["value"] for f in fields)

    await driver.command(mod, "tryonadmin quota reset-member", member=p.opt_member(alice)).reply()
    await driver.command(mod, "tryonadmin quota reset-role", role=p.opt_role(world.member_role)).reply()
    await driver.command(mod, "tryonadmin quota reset-default").reply()
    assert await store.quotas.get_user(world.guild_id, alice_id) is None
    assert await store.quotas.get_role(world.guild_id, int(world.member_role["id"])) is None
    assert (await store.guilds.get(world.guild_id)).default_limits.is_empty()
    again = await driver.command(mod, "tryonadmin quota reset-member", member=p.opt_member(alice)).reply()
    assert "had no own quota" in again.content

    actions = [e.action for e in await store.audit.list(world.guild_id, limit=50)]
    assert actions.count("quota_user_set") == 1 and actions.count("quota_user_cleared") == 1
    assert "quota_role_set" in actions and "quota_role_cleared" in actions
    assert actions.count("guild_quota_set") == 2


async def test_block_unblock_with_mod_log(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    mod = as_member("mod", moderator=True)
    log_channel = world.channels[1]
    await driver.command(mod, "tryonadmin modlog", channel=p.opt_channel(log_channel)).reply()
    bob = world.add_member("bob")
    bob_id = int(bob["user"]["id"])

    reply = await driver.command(
        mod, "tryonadmin block", member=p.opt_member(bob), reason="spam @everyone", days=2
    ).reply()
    assert "is blocked from try-on until" in reply.content
    block = await bot.runtime.store.blocks.get(world.guild_id, bob_id)
    assert block is not None and block.reason == "spam @everyone"

    await fake_discord.wait_for(lambda: len(fake_discord.channel_messages(int(log_channel["id"]))) >= 2)
    lines = [m.content for m in fake_discord.channel_messages(int(log_channel["id"]))]
    assert "set the mod-log channel" in lines[0]
    assert f"blocked <@{bob_id}>" in lines[1]
    assert "reason=spam @\u200beveryone" in lines[1]  # member-chosen text is escaped, never a live mention
    create = fake_discord.requests_to("POST", rf"^/channels/{log_channel['id']}/messages$")[-1]
    assert create.json["allowed_mentions"] == {"parse": []}

    await driver.command(mod, "tryonadmin unblock", member=p.opt_member(bob)).reply()
    assert await bot.runtime.store.blocks.get(world.guild_id, bob_id) is None
    again = await driver.command(mod, "tryonadmin unblock", member=p.opt_member(bob)).reply()
    assert "was not blocked" in again.content
    await fake_discord.wait_for(lambda: len(fake_discord.channel_messages(int(log_channel["id"]))) >= 3)
    assert f"unblocked <@{bob_id}>" in fake_discord.channel_messages(int(log_channel["id"]))[2].content


async def test_channel_allowlist(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot
) -> None:
    mod = as_member("mod", moderator=True)
    empty = await driver.command(mod, "tryonadmin channels list").reply()
    assert "every channel" in empty.content
    await driver.command(mod, "tryonadmin channels allow", channel=p.opt_channel(world.channel)).reply()
    listed = await driver.command(mod, "tryonadmin channels list").reply()
    assert f"<#{world.channel['id']}>" in listed.content
    assert await bot.runtime.store.guilds.is_channel_allowed(world.guild_id, int(world.channel["id"]))
    assert not await bot.runtime.store.guilds.is_channel_allowed(world.guild_id, int(world.channels[1]["id"]))
    await driver.command(mod, "tryonadmin channels remove", channel=p.opt_channel(world.channel)).reply()
    assert await bot.runtime.store.guilds.allowed_channels(world.guild_id) == frozenset()


async def test_prompt_blocklist_is_normalised_and_escaped(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot
) -> None:
    mod = as_member("mod", moderator=True)
    added = await driver.command(mod, "tryonadmin blocklist add", word="  Fur   COAT ").reply()
    assert "fur coat" in added.content
    await driver.command(mod, "tryonadmin blocklist add", word="**under_wear**").reply()
    refused = await driver.command(mod, "tryonadmin blocklist add", word="***").reply()
    assert "no letters or digits" in refused.content
    listed = await driver.command(mod, "tryonadmin blocklist list").reply()
    assert listed.content == "“fur coat”, “underwear”"  # stored the way the prompt check matches words
    assert await bot.runtime.store.guilds.blocked_words(world.guild_id) == ["fur coat", "underwear"]
    await driver.command(mod, "tryonadmin blocklist remove", word="FUR coat").reply()
    assert await bot.runtime.store.guilds.blocked_words(world.guild_id) == ["underwear"]


async def test_usage_report_and_audit_view_are_guild_scoped(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot
) -> None:
    store = bot.runtime.store
    alice = world.add_member("alice")
    alice_id = int(alice["user"]["id"])
    await store.usage.adjust(
        guild_id=world.guild_id, user_id=alice_id, seconds=90, sessions=1, moderator_id=None
    )
    other = p.guild_world("other")
    driver.add_guild(other)
    await store.usage.adjust(
        guild_id=other.guild_id, user_id=alice_id, seconds=999, sessions=5, moderator_id=None
    )
    await store.blocks.block(other.guild_id, alice_id, moderator_id=None, reason="other guild")

    mod = as_member("mod", moderator=True)
    report = await driver.command(mod, "tryonadmin usage", days=7).reply()
    assert "1 min 30 s in 1 sessions" in report.text
    assert f"<@{alice_id}>: 1 min 30 s" in report.text
    assert "16 min" not in report.text

    audit = await driver.command(mod, "tryonadmin audit", member=p.opt_member(alice)).reply()
    assert "adjusted usage of" in audit.text and "other guild" not in audit.text
    assert "blocked" not in audit.text


async def test_dm_invocations_are_refused(driver: BotDriver, fake_discord: FakeDiscord) -> None:
    stranger = p.user(name="stranger")
    sent = driver.command(driver.dm_context(stranger), "tryonadmin usage")
    reply = await sent.reply()
    assert reply.ephemeral and "only works inside a server" in reply.content


async def test_bad_option_values_are_explained(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx
) -> None:
    mod = as_member("mod", moderator=True)
    stranger = p.user(name="left-the-server")
    not_a_member = p.Resolved(p.USER, stranger["id"], "users", stranger)  # a user without member data
    reply = await driver.command(mod, "tryonadmin block", member=not_a_member).reply()
    assert reply.ephemeral and reply.content.startswith("That value can't be used here")


async def test_moderators_never_see_or_change_another_guilds_data(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    store = bot.runtime.store
    ours = as_member("our-mod", moderator=True)
    alice = world.add_member("alice")
    alice_id = int(alice["user"]["id"])
    ours_steps: Steps = [
        ("tryonadmin blocklist add", {"word": "velvet"}),
        ("tryonadmin channels allow", {"channel": p.opt_channel(world.channel)}),
        ("tryonadmin block", {"member": p.opt_member(alice), "reason": "ours"}),
        ("tryonadmin quota set-default", {"daily_sessions": 2}),
        ("tryonadmin quota set-member", {"member": p.opt_member(alice), "daily_minutes": 1.0}),
    ]
    for command, options in ours_steps:
        await driver.command(ours, command, **options).reply()
    session = await stored_session(store, world.guild_id, alice_id, channel_id=int(world.channel["id"]))

    other = p.guild_world("other")
    driver.add_guild(other)
    theirs = driver.context(other, other.add_member("their-mod", moderator=True))
    alice_there = other.add_member("alice-there")
    alice_there["user"] = alice["user"]  # the same person is a member of both servers

    looks: Steps = [
        ("tryonadmin blocklist list", {}),
        ("tryonadmin channels list", {}),
        ("tryonadmin audit", {}),
        ("tryonadmin quota show", {"member": p.opt_member(alice_there)}),
        ("tryonadmin sessions list", {}),
        ("tryon show", {"id": session.id}),
    ]
    seen = [(await driver.command(theirs, command, **options).reply()).text for command, options in looks]
    assert "No words are blocked." in seen[0]
    assert "every channel" in seen[1]
    assert "No audit entries." in seen[2]
    assert "2 sessions per day" not in seen[3] and "1 min per day" not in seen[3] and "Blocked" not in seen[3]
    assert "No try-ons are running" in seen[4]
    assert "No try-on of yours" in seen[5]

    changes: Steps = [
        ("tryonadmin blocklist remove", {"word": "velvet"}),
        ("tryonadmin unblock", {"member": p.opt_member(alice_there)}),
        ("tryonadmin quota reset-default", {}),
        ("tryonadmin quota reset-member", {"member": p.opt_member(alice_there)}),
        ("tryonadmin channels remove", {"channel": p.opt_channel(world.channel)}),
    ]
    for command, options in changes:
        await driver.command(theirs, command, **options).reply()
    assert await store.guilds.blocked_words(world.guild_id) == ["velvet"]
    assert await store.blocks.get(world.guild_id, alice_id) is not None
    assert (await store.guilds.get(world.guild_id)).default_limits == QuotaLimits(daily_sessions=2)
    assert await store.quotas.get_user(world.guild_id, alice_id) is not None
    assert await store.guilds.allowed_channels(world.guild_id) == {int(world.channel["id"])}
    assert len(await store.audit.list(world.guild_id, limit=50)) == 5  # only our own moderator's actions


async def test_usage_attaches_a_png_chart_drawn_off_the_event_loop(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = world.add_member("alice")
    await bot.runtime.store.usage.adjust(
        guild_id=world.guild_id, user_id=int(alice["user"]["id"]), seconds=600, sessions=1, moderator_id=None
    )
    drawn_in: list[threading.Thread] = []
    # The module as loaded by this bot (discord.py re-imports an extension's modules for every bot).
    admin_cog = sys.modules[type(bot.get_cog("TryOnAdmin")).__module__]
    draw: Callable[[UsageChart], bytes] = admin_cog.usage_chart_png

    def watched(chart: UsageChart) -> bytes:
        drawn_in.append(threading.current_thread())
        assert [minutes for _, minutes in chart.days][-1] == 10.0 and len(chart.days) == 30
        return draw(chart)

    monkeypatch.setattr(admin_cog, "usage_chart_png", watched)
    report = await driver.command(as_member("mod", moderator=True), "tryonadmin usage").reply()
    assert drawn_in and drawn_in[0] is not threading.main_thread()  # the loop runs in the main thread
    assert [a["filename"] for a in report.attachments] == ["usage.png"]
    assert report.embeds[0]["image"]["url"] == "attachment://usage.png"
    upload = next(f for r in fake_discord.requests for f in r.files if f.filename == "usage.png")
    with Image.open(io.BytesIO(upload.data)) as chart:
        assert chart.format == "PNG" and chart.width == 960
