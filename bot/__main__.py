"""Command line: `python -m bot {run,worker,demo,emulator,sync}`; start-up only, the work is elsewhere."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of every entry point."""
    parser = argparse.ArgumentParser(prog="tryon-bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser("emulator", help="run the local Odyssey-compatible emulator")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=0, help="0 picks a free port")
    emulator.add_argument("--api-key", default=None, help="accepted API key (default: the development key)")
    emulator.add_argument(
        "--recordings-dir",
        default=None,
        help="keep recordings here, across restarts (default: a temporary folder removed on exit)",
    )
    limits = emulator.add_argument_group("limits and video (default: the platform's values)")
    limits.add_argument("--concurrency-limit", type=int, help="sessions per key, then 429 (default 5)")
    limits.add_argument("--streamer-slots", type=int, help="sessions in total, then 503 (default 16)")
    limits.add_argument(
        "--stream-cap", type=float, help="seconds per stream, then session_timeout (default 150)"
    )
    limits.add_argument(
        "--idle-timeout", type=float, help="seconds without a stream before closing; 0: never (40)"
    )
    limits.add_argument(
        "--max-spectators", type=int, help="WHEP viewers of one broadcast stream, then 503 (default 8)"
    )
    limits.add_argument("--fps", type=int, help="video frame rate (default 24)")
    limits.add_argument("--scale", type=float, help="frame size factor on 704x1280, e.g. 0.5 (default 1)")

    run = commands.add_parser("run", help="run the Discord bot")
    run.add_argument("--config", default=None, help="configuration file (default: ./config.toml if present)")
    run.add_argument(
        "--local-workers",
        type=int,
        default=None,
        metavar="N",
        help="start a NATS server and N session workers as children (uses every core of one machine)",
    )

    sync = commands.add_parser("sync", help="publish the slash commands to Discord (global or one guild)")
    sync.add_argument("--config", default=None, help="configuration file (default: ./config.toml if present)")
    sync.add_argument("--guild", type=int, default=None, help="publish to this guild only (instant)")

    worker = commands.add_parser("worker", help="run try-on sessions the bot places here over NATS")
    from bot.workers.cli import add_arguments as worker_arguments

    worker_arguments(worker)

    demo = commands.add_parser("demo", help="run a try-on against the emulator (or Odyssey with a key)")
    demo.add_argument("--photo", default=None, help="photo to try outfits on (default: the sample photo)")
    demo.add_argument("--outfit", action="append", default=None, help="an outfit prompt; repeat for more")
    demo.add_argument("--out", default="out", help="folder for frames, snippets and recordings")
    demo.add_argument("--landscape", action="store_true", help="stream 1280x704 instead of 704x1280")
    demo.add_argument(
        "--no-watch", action="store_true", help="do not share it live (the viewer runs beside the emulator)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    args = build_parser().parse_args(argv)
    if args.command == "emulator":
        from bot.emulator.cli import main as emulator_main

        return emulator_main(args)
    if args.command == "demo":
        from bot.demo import main as demo_main

        return demo_main(args)
    if args.command == "worker":
        from bot.workers.cli import main as worker_main

        return worker_main(args)
    if args.command in ("run", "sync"):
        from bot.app import main as app_main

        return app_main(args)
    raise SystemExit(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
