"""Assembles the engine from its parts: store, quota policy, checks, snippet encoder and client factory."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable

from bot.media.snippets import SnippetEncoder
from bot.odyssey import Odyssey
from bot.store import QuotaLimits, Store
from bot.tryon.manager import SessionManager
from bot.tryon.models import StreamPhoto
from bot.tryon.photos import check_photo
from bot.tryon.prompts import PromptRules, check_prompt
from bot.tryon.quota import QuotaPolicy
from bot.tryon.session import ClientFactory, EngineServices
from bot.tryon.settings import EngineSettings


def client_factory(api_key: str, api_url: str | None = None) -> ClientFactory:
    """Fresh Odyssey clients for one platform: the real one, or an emulator by its URL (same code)."""
    return functools.partial(Odyssey, api_key, api_url)


def prompt_checker(store: Store) -> Callable[[int, str], Awaitable[str]]:
    """Checks an outfit against the limits and the guild's blocklist; returns the cleaned text."""

    async def check(guild_id: int, text: str) -> str:
        blocklist = await store.guilds.blocked_words(guild_id)
        return check_prompt(text, PromptRules(blocklist=blocklist)).text

    return check


async def checked_photo(data: bytes) -> StreamPhoto:
    """Run the photo checks (off the loop); PhotoRejected on a bad photo, else the upright JPEG to stream."""
    photo = await check_photo(data)
    return StreamPhoto(data=photo.jpeg, sha256=photo.sha256)  # of the upload, hashed in the worker thread


@dataclasses.dataclass
class Engine:
    """The running engine: the session manager plus the parts it owns and must close."""

    manager: SessionManager
    services: EngineServices

    async def aclose(self, grace_seconds: float = 60.0) -> None:
        """End and settle every session, then stop the encoder's worker processes."""
        try:
            await self.manager.shutdown(grace_seconds)
        finally:
            await self.services.encoder.aclose()


def build_engine(
    store: Store,
    clients: ClientFactory,
    settings: EngineSettings | None = None,
    *,
    quota_defaults: QuotaLimits | None = None,
    encoder: SnippetEncoder | None = None,
) -> Engine:
    """An engine on `store` that makes Odyssey clients with `clients`; defaults match the Free plan."""
    settings = settings or EngineSettings()
    quota = QuotaPolicy(store, quota_defaults or QuotaLimits(), min_start_seconds=settings.min_start_seconds)
    services = EngineServices(
        store=store,
        quota=quota,
        encoder=encoder or SnippetEncoder(),
        client_factory=clients,
        settings=settings,
        check_photo=checked_photo,
        check_prompt=prompt_checker(store),
    )
    return Engine(SessionManager(services), services)
