"""Buttons and modals of `/tryon`: persistent session controls and the final post's "Get the full video",
the outfit modal, confirmation, pages."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.app import TryOnBot
from cogs.utils.delivery import report_error, send_reply

if TYPE_CHECKING:
    from cogs.tryon._cog import TryOn

# Fetches the photo of a try-on: its bytes, and the upload's hash when it is the member's kept photo.
PhotoFetcher = Callable[[], Awaitable[tuple[bytes, str | None]]]

log = logging.getLogger(__name__)

ACTIONS = {"outfit": "New outfit", "snap": "Snapshot", "share": "Share live", "stop": "Stop"}
_STYLES = {
    "outfit": discord.ButtonStyle.primary,
    "snap": discord.ButtonStyle.secondary,
    "share": discord.ButtonStyle.success,
    "stop": discord.ButtonStyle.danger,
}


def _cog(interaction: discord.Interaction[TryOnBot]) -> TryOn:
    cog = interaction.client.get_cog("TryOn")
    if cog is None:
        raise RuntimeError("the TryOn cog is not loaded")
    return cog  # type: ignore[return-value]


class SessionButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"tryon:(?P<action>outfit|snap|share|stop):(?P<session>[A-Za-z0-9_-]{1,40})",
):
    """A session control that survives restarts: the custom id carries the action and the session id."""

    def __init__(self, action: str, session_id: str, *, disabled: bool = False) -> None:
        super().__init__(
            discord.ui.Button(
                label=ACTIONS[action],
                style=_STYLES[action],
                custom_id=f"tryon:{action}:{session_id}",
                disabled=disabled,
            )
        )
        self.action = action
        self.session_id = session_id

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls, interaction: discord.Interaction[TryOnBot], item: discord.ui.Button[Any], match: re.Match[str]
    ) -> SessionButton:
        """Rebuild the button from a press (after a restart too)."""
        return cls(match["action"], match["session"])

    async def interaction_check(self, interaction: discord.Interaction[TryOnBot]) -> bool:  # type: ignore[override]
        """Only the session's owner and the server's moderators; the owner is read from SQLite."""
        return await _guarded(interaction, _cog(interaction).may_control(interaction, self.session_id))

    async def callback(self, interaction: discord.Interaction[TryOnBot]) -> None:  # type: ignore[override]
        """Stop, snapshot, share live, or open the outfit modal."""
        await _guarded(interaction, _cog(interaction).press(interaction, self.action, self.session_id))


async def _guarded(interaction: discord.Interaction[TryOnBot], work: Awaitable[bool | None]) -> bool:
    # A dynamic item's errors reach neither the command tree's handler nor a view's `on_error` (discord.py
    # only logs them); render them like every other error.
    try:
        return bool(await work)
    except Exception as error:
        await report_error(interaction, error)
        return False


POST_ACTIONS = {"again": "Try another outfit", "full": "Get the full video", "delete": "Delete"}
_POST_STYLES = {
    "again": discord.ButtonStyle.primary,
    "full": discord.ButtonStyle.primary,
    "delete": discord.ButtonStyle.secondary,
}


class PostButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"tryon:(?P<action>again|full|delete):(?P<session>[A-Za-z0-9_-]{1,40})",
):
    """A button on a finished try-on's posts, working after restarts: "Try another outfit" (its member),
    "Get the full video" (anyone who sees the post), Delete (its member and moderators)."""

    def __init__(self, action: str, session_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=POST_ACTIONS[action],
                style=_POST_STYLES[action],
                custom_id=f"tryon:{action}:{session_id}",
            )
        )
        self.action = action
        self.session_id = session_id

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls, interaction: discord.Interaction[TryOnBot], item: discord.ui.Button[Any], match: re.Match[str]
    ) -> PostButton:
        """Rebuild the button from a press (after a restart too)."""
        return cls(match["action"], match["session"])

    async def callback(self, interaction: discord.Interaction[TryOnBot]) -> None:  # type: ignore[override]
        """Each action checks who may use it (the owner is read from SQLite)."""
        await _guarded(interaction, self._act(interaction))

    async def _act(self, interaction: discord.Interaction[TryOnBot]) -> None:
        cog = _cog(interaction)
        if self.action == "again":
            await cog.try_again(interaction, self.session_id)
        elif self.action == "full":
            await cog.send_full_video(interaction, self.session_id)
        elif await cog.may_control(interaction, self.session_id):
            await cog.delete_posts(interaction, self.session_id)


def ended_controls(session_id: str) -> discord.ui.View:
    """The buttons of a finished try-on's posts (its status and its final message)."""
    view = discord.ui.View(timeout=None)
    view.add_item(PostButton("delete", session_id))
    return view


def session_controls(session_id: str, *, streaming: bool, shareable: bool = False) -> discord.ui.View:
    """The status message's buttons (outfit and snapshot only do something once it streams; "Share live"
    while the try-on can still be shared)."""
    view = discord.ui.View(timeout=None)
    view.add_item(SessionButton("outfit", session_id))
    view.add_item(SessionButton("snap", session_id, disabled=not streaming))
    if shareable:
        view.add_item(SessionButton("share", session_id))
    view.add_item(SessionButton("stop", session_id))
    return view


def final_post_controls(session_id: str, *, deletable: bool = False) -> discord.ui.View:
    """The buttons of a try-on's final post: "Try another outfit" (its member), "Get the full video" and,
    for public posts, Delete."""
    view = discord.ui.View(timeout=None)
    view.add_item(PostButton("again", session_id))
    view.add_item(PostButton("full", session_id))
    if deletable:
        view.add_item(PostButton("delete", session_id))
    return view


class MemberModal(discord.ui.Modal):
    """A modal only the member it was shown to may submit (discord.py routes a submit by custom id alone)."""

    def __init__(self, user_id: int, *, title: str, custom_id: str) -> None:
        super().__init__(title=title, custom_id=custom_id, timeout=600)
        self.user_id = user_id

    async def interaction_check(self, interaction: discord.Interaction[TryOnBot]) -> bool:  # type: ignore[override]
        """Only the member it was shown to."""
        if interaction.user.id != self.user_id:
            await send_reply(interaction, "Only the member who opened this can use it.")
            return False
        return True

    async def on_error(self, interaction: discord.Interaction[TryOnBot], error: Exception) -> None:  # type: ignore[override]
        """Members' errors as written, anything else with an id (as for commands)."""
        await report_error(interaction, error)


class OutfitModal(MemberModal):
    """Asks for the next outfit of a session."""

    outfit: discord.ui.TextInput[OutfitModal] = discord.ui.TextInput(
        label="Outfit", placeholder="a red wool coat with brass buttons", min_length=3, max_length=300
    )

    def __init__(self, session_id: str, user_id: int) -> None:
        # The user id keeps the owner's and a moderator's open modals apart.
        super().__init__(user_id, title="New outfit", custom_id=f"tryon:outfit-modal:{session_id}:{user_id}")
        self.session_id = session_id

    async def on_submit(self, interaction: discord.Interaction[TryOnBot]) -> None:  # type: ignore[override]
        """Apply the outfit to the session."""
        await _cog(interaction).apply_outfit(interaction, self.session_id, self.outfit.value)


class StartModal(MemberModal):
    """Asks for the outfit of a new try-on whose photo is already known (kept, or in a message)."""

    outfit: discord.ui.TextInput[StartModal] = discord.ui.TextInput(
        label="Outfit", placeholder="a red wool coat with brass buttons", min_length=1, max_length=300
    )

    def __init__(self, user_id: int, fetch_photo: PhotoFetcher) -> None:
        super().__init__(user_id, title="Try on", custom_id=f"tryon:start-modal:{user_id}")
        self.fetch_photo = fetch_photo

    async def on_submit(self, interaction: discord.Interaction[TryOnBot]) -> None:  # type: ignore[override]
        """Start the try-on."""
        await _cog(interaction).begin(interaction, self.fetch_photo, self.outfit.value)


class InvokerOnlyView(discord.ui.View):
    """A short-lived view only the member who opened it may use."""

    def __init__(self, invoker_id: int, *, timeout: float = 300) -> None:
        super().__init__(timeout=timeout)
        self.invoker_id = invoker_id
        # The interaction whose message shows this view, so the buttons can be removed when they expire.
        self.origin: discord.Interaction[TryOnBot] | None = None

    async def on_timeout(self) -> None:
        """Take the buttons off the message: pressed later, they could only fail."""
        if self.origin is None or self.origin.is_expired():
            return
        try:
            await self.origin.edit_original_response(view=None)
        except discord.HTTPException as error:
            log.info("could not remove expired buttons: %s", error)

    async def interaction_check(self, interaction: discord.Interaction[TryOnBot]) -> bool:  # type: ignore[override]
        """Refuse everyone else, privately."""
        if interaction.user.id != self.invoker_id:
            await send_reply(interaction, "Only the member who opened this can use it.")
            return False
        return True

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[TryOnBot], error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        """Members' errors as written, anything else with an id (as for commands)."""
        await report_error(interaction, error)


class ForgetConfirmation(InvokerOnlyView):
    """ "Delete my try-on data?" with Delete / Keep."""

    def __init__(
        self, invoker_id: int, forget: Callable[[discord.Interaction[TryOnBot]], Awaitable[None]]
    ) -> None:
        super().__init__(invoker_id, timeout=120)
        self._forget = forget

    @discord.ui.button(label="Delete my data", style=discord.ButtonStyle.danger, custom_id="tryon:forget:yes")
    async def confirm(
        self, interaction: discord.Interaction[TryOnBot], button: discord.ui.Button[Any]
    ) -> None:
        """Delete, then close the question."""
        self.stop()
        await self._forget(interaction)

    @discord.ui.button(label="Keep it", style=discord.ButtonStyle.secondary, custom_id="tryon:forget:no")
    async def cancel(
        self, interaction: discord.Interaction[TryOnBot], button: discord.ui.Button[Any]
    ) -> None:
        """Leave everything as it is."""
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


class HistoryPages(InvokerOnlyView):
    """Previous / Next through the member's own sessions."""

    def __init__(
        self, invoker_id: int, page: int, has_next: bool, render: Callable[[int], Awaitable[tuple[str, bool]]]
    ) -> None:
        super().__init__(invoker_id)
        self.page = page
        self._render = render
        self.previous.disabled = page == 0
        self.next.disabled = not has_next

    async def _show(self, interaction: discord.Interaction[TryOnBot], page: int) -> None:
        text, has_next = await self._render(page)
        view = HistoryPages(self.invoker_id, page, has_next, self._render)
        view.origin = interaction  # a component's "original response" is the message it sits on
        self.stop()
        await interaction.response.edit_message(content=text, view=view)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary, custom_id="tryon:history:prev")
    async def previous(
        self, interaction: discord.Interaction[TryOnBot], button: discord.ui.Button[Any]
    ) -> None:
        """One page newer."""
        await self._show(interaction, max(0, self.page - 1))

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary, custom_id="tryon:history:next")
    async def next(self, interaction: discord.Interaction[TryOnBot], button: discord.ui.Button[Any]) -> None:
        """One page older."""
        await self._show(interaction, self.page + 1)
