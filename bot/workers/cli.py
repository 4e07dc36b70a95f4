"""`python -m bot worker --nats URL --capacity N`: a session worker until SIGTERM or Ctrl-C, then a drain.

A worker the bot started (`--exit-with-parent`) ignores Ctrl-C: the bot drains it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import re
import signal
import sys
from pathlib import Path

from bot.config import BotConfig, ConfigError, load_config
from bot.logsafety import configure_logging
from bot.tls import warm_up as warm_up_tls
from bot.tryon.engine import client_factory
from bot.workers.bus import BusUnavailable, connect
from bot.workers.worker import Worker, run_worker

log = logging.getLogger(__name__)

WORKER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker's options."""
    parser.add_argument(
        "--config", default=None, help="configuration file (default: ./config.toml if present)"
    )
    parser.add_argument(
        "--nats", default=None, help="NATS URL (default: [workers] nats_url / TRYON_NATS_URL)"
    )
    parser.add_argument("--capacity", type=int, default=None, help="sessions at once (default: [workers])")
    parser.add_argument("--id", default=None, help="worker id (default: host-pid-random)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="lower this worker's CPU priority by N (0-19) on a machine it shares with the bot",
    )
    # Set by `run --local-workers`: the bot's children drain and exit when the bot is gone (even SIGKILLed).
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    # For tests: answer each accepted start this many seconds late, as if the reply were lost on its way.
    parser.add_argument("--start-reply-delay", type=float, default=0.0, help=argparse.SUPPRESS)


def worker_config(args: argparse.Namespace) -> BotConfig:
    """The configuration with the command line's overrides; ConfigError when a worker cannot run on it."""
    config = load_config(Path(args.config) if args.config else None)
    try:
        workers = dataclasses.replace(
            config.workers,
            nats_url=args.nats or config.workers.nats_url,
            capacity=args.capacity or config.workers.capacity,
        )
    except ValueError as error:
        raise ConfigError(f"workers: {error}") from None
    if args.id is not None and not WORKER_ID.fullmatch(args.id):
        raise ConfigError("--id: 1-64 letters, digits, '-' or '_' (it is part of NATS subjects)")
    if workers.nats_url is None:
        raise ConfigError("workers.nats_url: pass --nats URL or set TRYON_NATS_URL")
    if not config.odyssey.api_key:
        raise ConfigError(
            "odyssey.api_key: a worker needs ODYSSEY_API_KEY (and ODYSSEY_API_URL for an emulator, "
            "e.g. one started with `python -m bot emulator`)"
        )
    return dataclasses.replace(config, workers=workers)


async def stop_when_orphaned(stop: asyncio.Event, parent_pid: int) -> None:
    """Set `stop` once this process's parent has gone (it is re-parented)."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("worker: the bot (pid %d) is gone; draining", parent_pid)
            stop.set()
            return
        await asyncio.sleep(1.0)


async def serve(
    config: BotConfig,
    worker_id: str | None,
    *,
    exit_with_parent: bool = False,
    start_reply_delay_seconds: float = 0.0,
) -> int:
    """Connect, take sessions until SIGTERM/SIGINT, drain, exit."""
    await warm_up_tls()
    try:
        client = await connect(config.workers, "tryon-worker")
    except BusUnavailable as error:
        print(f"worker: {error}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The bot's own worker ignores SIGINT (see `main`): its parent drains it with SIGTERM.
    for signum in (signal.SIGTERM,) if exit_with_parent else (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    orphan_watch = asyncio.create_task(stop_when_orphaned(stop, os.getppid())) if exit_with_parent else None
    odyssey = client_factory(config.odyssey.api_key or "", config.odyssey.api_url)
    worker = Worker(
        client,
        config.workers,
        odyssey,
        worker_id=worker_id,
        start_reply_delay_seconds=start_reply_delay_seconds,
    )
    try:
        await run_worker(worker, stop)
    finally:
        if orphan_watch is not None:
            orphan_watch.cancel()
        await client.close()
    return 0


def main(args: argparse.Namespace) -> int:
    """Load the configuration (stopping on errors that name the key), then serve."""
    if args.exit_with_parent:
        # A child of `run --local-workers`: Ctrl-C is for the bot, which drains this worker (SIGTERM) and
        # stops NATS last; a worker stopping on its own would only race that.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not 0 <= args.nice <= 19:
        print("configuration error: --nice: 0 to 19", file=sys.stderr)
        return 2
    if args.nice:
        os.nice(args.nice)  # the pool of snippet encoders it starts inherits it
    try:
        config = worker_config(args)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    # The worker never uses the Discord token; it is masked all the same should a config file carry it.
    secrets = [config.odyssey.api_key, config.discord.token, *config.workers.secrets]
    configure_logging(config.log_level, secrets)
    return asyncio.run(
        serve(
            config,
            args.id,
            exit_with_parent=args.exit_with_parent,
            start_reply_delay_seconds=args.start_reply_delay,
        )
    )
