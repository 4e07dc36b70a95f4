"""`/tryon help`: what the bot does, how to get a good result, what is kept and for how long, how to forget.

The limits quoted are the ones the bot enforces (bot/tryon/photos.py, the command's own checks), so the
guide cannot drift from what a member will be told when a photo is refused.
"""

from __future__ import annotations

import dataclasses

import discord

from bot.tryon.photos import MAX_ASPECT_RATIO, MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, MIN_SHORT_SIDE
from cogs.utils.formatting import duration

# The notice shown with the first try-on of a server (once, ever; see `Notices`).
FIRST_TRY_ON_NOTICE = "first_try_on_help"
PHOTO_FORMATS = "JPEG, PNG, WebP, HEIC/HEIF, AVIF, GIF (first frame) or BMP"


@dataclasses.dataclass(frozen=True)
class GuideFacts:
    """The numbers the guide quotes that depend on the bot's configuration."""

    idle_seconds: float
    max_session_seconds: float
    # How long the bot may keep a member's photo for another try-on (this server's setting; 0: not at all).
    photo_retention_hours: float
    max_outfit_chars: int = 300


def help_embed(facts: GuideFacts) -> discord.Embed:
    """The whole guide as one embed (well within Discord's 6000 characters)."""
    embed = discord.Embed(
        title="How try-on works",
        description=(
            "Try outfits on your own photo as live AI video. `/tryon start` with a photo of yourself and an "
            "outfit (e.g. *a red wool coat with brass buttons*): the bot streams a video of you wearing it, "
            "posts short clips as the outfit changes, and the recording when you stop. Change the outfit "
            "with **New outfit** or `/tryon outfit`; **Stop** or `/tryon stop` ends it. `/tryon settings` "
            "sets your defaults: private, orientation, clips."
        ),
        colour=discord.Colour.blurple(),
    )
    embed.add_field(name="A good photo", value=_photo_guidance(), inline=False)
    embed.add_field(name="A good outfit", value=_outfit_guidance(facts), inline=False)
    embed.add_field(name="What is kept, and for how long", value=_what_is_kept(facts), inline=False)
    embed.add_field(name="Forgetting", value=_how_to_forget(), inline=False)
    embed.set_footer(text="/tryon help shows this again at any time.")
    return embed


def _photo_guidance() -> str:
    return (
        "• **One person**: just you, nobody else in the frame.\n"
        "• **Face and body visible**: facing the camera, head to at least the waist (head to toe is best), "
        "nothing covering the face.\n"
        "• **Good light**: daylight or a bright room, no strong backlight; a plain background helps.\n"
        f"• **Format and size**: {PHOTO_FORMATS}; at most {MAX_PHOTO_BYTES // 2**20} MiB and "
        f"{MAX_PHOTO_PIXELS // 1_000_000} megapixels, at least {MIN_SHORT_SIDE} px on the short side, and "
        f"no longer than {MAX_ASPECT_RATIO:g}:1 (no panoramas). The bot turns it upright and drops its "
        "metadata (location included) before using it."
    )


def _outfit_guidance(facts: GuideFacts) -> str:
    return (
        f"Describe the clothes in up to {facts.max_outfit_chars} characters: garment, colour, material, "
        "style (*a navy linen suit with a white shirt*). A try-on ends on its own after "
        f"{duration(facts.idle_seconds)} without a new outfit, and lasts at most "
        f"{duration(facts.max_session_seconds)} (or what is left of your quota: `/tryon quota`)."
    )


def _what_is_kept(facts: GuideFacts) -> str:
    hours = facts.photo_retention_hours
    kept = (
        f"the bot keeps your latest photo here for {hours:g} h (this server's setting), only in its own "
        "data folder, so `/tryon start` without a photo and **Try another outfit** can use it again"
        if hours > 0
        else "the bot does not keep it (this server's setting)"
    )
    return (
        f"• **Your photo** goes to the video platform (Odyssey) for the live video; {kept}. Its fingerprint "
        "(SHA-256) is stored with the try-on.\n"
        "• **Each try-on**: when and where, its outfits, how long it streamed, its recording ids (so "
        "`/tryon show` can make fresh links) and the ids of the bot's public posts of it. Kept until you "
        "run `/tryon forget`.\n"
        "• **Recordings** are stored by Odyssey; the links the bot posts expire in about an hour.\n"
        "• **Usage** (minutes, sessions) of this month is kept for quotas even after forgetting, no longer "
        "linked to your try-ons; older months are deleted when you forget.\n"
        "• **Refused outfits** appear in this server's moderator log."
    )


def _how_to_forget() -> str:
    return (
        "**Delete** under a finished try-on removes the bot's posts of it (you or a moderator). "
        "`/tryon forget` deletes your try-ons, outfits, recording ids, settings and any kept photo in every "
        "server, removes "
        "the bot's posts of your try-ons that it can still reach (and says which it could not), and your "
        "words from moderator logs. A try-on still running is kept: stop it first."
    )
