"""The Discord bot assembled: the `commands.Bot` subclass, its runtime (store, engine, Odyssey), run, sync."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bot.config import DEFAULT_CONFIG_PATH, BotConfig, ConfigError, load_config
from bot.emulator import DEV_API_KEY, Emulator, EmulatorConfig
from bot.logsafety import configure_logging
from bot.store import Store
from bot.tls import warm_up as warm_up_tls
from bot.tryon.engine import Engine, build_engine, client_factory
from bot.web import ViewerServer
from bot.workers.local import start_local_workers
from bot.workers.remote import RemoteLauncher
from cogs.utils.delivery import NO_MENTIONS, TryOnCommandTree

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.meta", "cogs.admin", "cogs.tryon")


@dataclasses.dataclass
class Runtime:
    """What the cogs work with: configuration, the store, the engine, and the Odyssey backend in use."""

    config: BotConfig
    store: Store
    engine: Engine[Any]
    odyssey_url: str
    # The Watch live viewer's server, when it runs (`[web]`, or beside the embedded emulator).
    viewer: ViewerServer | None = None


async def open_runtime(
    config: BotConfig, resources: contextlib.AsyncExitStack, *, config_path: Path | None = None
) -> Runtime:
    """Open the store, pick the Odyssey backend (the embedded emulator without an API key), build the engine.

    With `[workers]` (a NATS URL, or local workers started here) sessions run on worker processes.
    Everything opened is registered on `resources`, which closes it in reverse order: the engine first (it
    ends and settles every session), then local workers and NATS, the viewer, the emulator, the store.
    """
    await warm_up_tls()  # before any HTTPS client is created on the loop
    store = await Store.open(config.store.database)
    resources.push_async_callback(store.close)
    if config.odyssey.api_key:
        url, key = config.odyssey.api_url, config.odyssey.api_key
    else:
        emulator = Emulator(
            EmulatorConfig(host=config.odyssey.emulator_host, port=config.odyssey.emulator_port)
        )
        await emulator.start()
        resources.push_async_callback(emulator.stop)
        url, key = emulator.url, DEV_API_KEY
        log.info("no ODYSSEY_API_KEY: using the embedded emulator at %s", url)
    viewer = await open_viewer(config, resources)
    launcher = await open_workers(config, resources, url, key, config_path)
    engine = build_engine(
        store,
        client_factory(key, url),
        config.engine,
        quota_defaults=config.quota.limits,
        launcher=launcher,
        watch_board=None if viewer is None else viewer.registry,
    )
    resources.push_async_callback(engine.aclose)
    return Runtime(config=config, store=store, engine=engine, odyssey_url=url, viewer=viewer)


async def open_viewer(config: BotConfig, resources: contextlib.AsyncExitStack) -> ViewerServer | None:
    """Start the Watch live viewer's web server when configured (or beside the embedded emulator)."""
    if not config.serves_viewer:
        return None
    viewer = ViewerServer(config.web)
    base_url = await viewer.start()
    resources.push_async_callback(viewer.aclose)
    log.info("Watch live links start with %s/watch/", base_url)
    return viewer


async def open_workers(
    config: BotConfig,
    resources: contextlib.AsyncExitStack,
    odyssey_url: str,
    odyssey_key: str,
    config_path: Path | None,
) -> RemoteLauncher | None:
    """The launcher placing sessions on workers (starting local ones first), or None: in-process."""
    workers = config.workers
    if workers.local_workers:
        local = await start_local_workers(
            workers,
            workers.local_workers,
            config.store.database.parent / "nats",
            odyssey_url=odyssey_url,
            odyssey_key=odyssey_key,
            config_path=config_path,
        )
        resources.push_async_callback(local.stop)
        workers = local.settings
    if workers.nats_url is None:
        return None
    launcher = RemoteLauncher(workers, sessions_outlive_bot=not config.workers.local_workers)
    await launcher.open()
    return launcher


RuntimeOpener = Callable[[BotConfig, contextlib.AsyncExitStack], Awaitable[Runtime]]


class TryOnBot(commands.Bot):
    """The try-on bot: loads the cogs in `setup_hook`, owns the runtime (store, engine, Odyssey backend)."""

    def __init__(
        self,
        config: BotConfig,
        *,
        open_runtime: RuntimeOpener | None = open_runtime,
        intents: discord.Intents | None = None,
        **options: Any,
    ) -> None:
        # No privileged intents: interactions carry the member, roles and permissions they need.
        intents = intents or discord.Intents.default()
        super().__init__(
            # Without the privileged message-content intent, prefix commands still arrive in DMs and
            # when the bot is mentioned, which is enough for the owner-only `!sync`.
            command_prefix=commands.when_mentioned_or(config.discord.command_prefix),
            intents=intents,
            tree_cls=TryOnCommandTree,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            **options,
        )
        self.config = config
        self._open_runtime = open_runtime
        self._runtime: Runtime | None = None
        self._resources = contextlib.AsyncExitStack()
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def runtime(self) -> Runtime:
        """Store and engine; present once `setup_hook` has run (absent in `sync`, which needs no engine)."""
        if self._runtime is None:
            raise RuntimeError("the bot was started without a runtime (sync-only mode)")
        return self._runtime

    @property
    def has_runtime(self) -> bool:
        """False in `sync`, where only the command definitions are loaded."""
        return self._runtime is not None

    async def setup_hook(self) -> None:
        """Open the runtime, then load every extension (commands are synced only on request)."""
        if self._open_runtime is not None:
            self._runtime = await self._open_runtime(self.config, self._resources)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        # A full garbage collection walks every object the imports and start-up made (~100 000: about
        # 100 ms on a small shared machine, all of it stalling the event loop). Frozen, they are skipped
        # from now on; close() unfreezes them.
        gc.freeze()

    def run_in_background(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` alongside the bot; `close()` cancels it before the engine and the store close."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def is_owner(self, user: discord.abc.User) -> bool:
        """The application's owner(s) and the users listed in `discord.owner_ids`."""
        return user.id in self.config.discord.owner_ids or await super().is_owner(user)

    async def close(self) -> None:
        """End and settle every session, close the store and the emulator, then disconnect."""
        if self._closing:
            return
        self._closing = True
        try:
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self._resources.aclose()
        finally:
            gc.unfreeze()
            await super().close()


async def sync_commands(bot: TryOnBot, guild_id: int | None = None) -> list[app_commands.AppCommand]:
    """Publish the slash commands globally, or copy them to one guild (instant, for testing)."""
    if guild_id is None:
        return await bot.tree.sync()
    guild = discord.Object(id=guild_id)
    bot.tree.copy_global_to(guild=guild)
    return await bot.tree.sync(guild=guild)


def use_api(config: BotConfig) -> None:
    """Point discord.py's REST routes (bot API and webhooks) and first gateway connection at the config."""
    discord.http.Route.BASE = config.discord.api_base_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.discord.gateway_url)


async def run_bot(config: BotConfig, config_path: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly (sessions ended and settled)."""
    if not config.discord.token:
        raise SystemExit("discord.token: set DISCORD_TOKEN in the environment or token in config.toml")
    use_api(config)
    bot = TryOnBot(config, open_runtime=functools.partial(open_runtime, config_path=config_path))
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    runner = asyncio.create_task(bot.start(config.discord.token))
    stopper = asyncio.create_task(stop_requested.wait())
    try:
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        log.info("shutting down: ending every session (or handing it over, on remote workers)")
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def sync_once(config: BotConfig, guild_id: int | None) -> int:
    """`python -m bot sync`: log in over HTTP only, publish the commands, print what was published."""
    if not config.discord.token:
        raise SystemExit("discord.token: set DISCORD_TOKEN in the environment or token in config.toml")
    use_api(config)
    async with TryOnBot(config, open_runtime=None) as bot:
        await bot.login(config.discord.token)
        published = await sync_commands(bot, guild_id)
    where = f"guild {guild_id}" if guild_id else "every server (global; may take up to an hour)"
    print(f"published {len(published)} commands to {where}: {', '.join(c.name for c in published)}")
    return 0


def with_local_workers(config: BotConfig, count: int) -> BotConfig:
    """`--local-workers N` over the configuration; ConfigError if N is out of range."""
    try:
        workers = dataclasses.replace(config.workers, local_workers=count)
    except ValueError as error:
        raise ConfigError(f"--local-workers: {error}") from None
    return dataclasses.replace(config, workers=workers)


def existing(path: Path) -> Path | None:
    """`path` if the file exists."""
    return path if path.is_file() else None


def main(args: argparse.Namespace) -> int:
    """`python -m bot run|sync`: load the configuration (stopping on errors that name the key), then go."""
    try:
        config_path = Path(args.config) if args.config else None
        config = load_config(config_path)
        if getattr(args, "local_workers", None) is not None:
            config = with_local_workers(config, args.local_workers)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(
        config.log_level, [config.discord.token, config.odyssey.api_key, *config.workers.secrets]
    )
    try:
        if args.command == "sync":
            return asyncio.run(sync_once(config, args.guild))
        asyncio.run(run_bot(config, config_path or existing(DEFAULT_CONFIG_PATH)))
    except discord.LoginFailure:
        print("configuration error: discord.token: Discord rejected the bot token", file=sys.stderr)
        return 2
    return 0
