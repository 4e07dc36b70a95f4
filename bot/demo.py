"""`python -m bot demo`: the whole try-on engine on a photo, printed to the console, files under `out/`.

Without ODYSSEY_API_KEY it runs against the embedded emulator on 127.0.0.1 (with a short stream cap, so a
roll-over is shown); with it, against Odyssey. The engine is the bot's own: fair queue, session state
machine, quota ledger in SQLite (`out/tryon.sqlite3`), GIF snippets, roll-over, recording links, and the
session's highlight MP4 with its stills. `out/final-post.json` and `out/final-post.md` show the final post a
member would see in Discord, built by the bot's own renderer (`cogs/tryon/results.py`). Beside the emulator
the try-on is shared live too (`--no-watch` turns that off): the Watch live viewer runs on 127.0.0.1 and its
link is printed, to open in a browser on this machine while the demo runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bot.media.snippets import DISCORD_UPLOAD_LIMIT
from bot.odyssey import OdysseyError
from bot.store import Store
from bot.tryon.console import ConsolePresenter
from bot.tryon.engine import Engine, build_engine, client_factory
from bot.tryon.errors import NoSuchSession, TryOnError
from bot.tryon.models import EndReason, SessionRequest, SessionState
from bot.tryon.photos import check_photo
from bot.tryon.presenter import RecordingLinks
from bot.tryon.prompts import check_prompt
from bot.tryon.session import TryOnSession
from bot.tryon.settings import EngineSettings
from bot.web import ViewerServer, WebSettings
from cogs.tryon.results import final_post

if TYPE_CHECKING:
    from bot.emulator import EmulatorConfig

SAMPLE_PHOTO = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"
DEFAULT_OUTFITS = ("a red wool coat", "a blue denim jacket", "a green silk evening dress")
# The emulator's per-stream cap in the demo (the platform's is 150 s), so one roll-over fits in a short run.
DEMO_STREAM_CAP_SECONDS = 10.0
DEMO_GUILD, DEMO_USER = 0, 1
DOWNLOAD_TIMEOUT = 60.0


class DemoError(Exception):
    """A problem to report as one line (exit code 1)."""


def main(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code (1 with one `error:` line on a bad photo, prompt or failure)."""
    photo = Path(args.photo) if args.photo else SAMPLE_PHOTO
    outfits = list(args.outfit or DEFAULT_OUTFITS)
    try:
        photo_bytes = photo.read_bytes()
    except OSError as exc:
        print(f"error: cannot read the photo {photo}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(
            run_demo(
                photo_bytes,
                outfits,
                Path(args.out),
                portrait=not args.landscape,
                watch=not getattr(args, "no_watch", False),
            )
        )
    except (TryOnError, DemoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OdysseyError as exc:
        print(f"error: the video platform failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write under {args.out}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # asyncio.run cancelled the demo, which ended its session and closed the engine and the emulator.
        print("interrupted: the try-on was ended", file=sys.stderr)
        return 130
    return 0


@contextlib.asynccontextmanager
async def backend(
    emulator_config: EmulatorConfig | None = None,
) -> AsyncIterator[tuple[str, str | None, float]]:
    """(api_key, api_url, stream cap): Odyssey when ODYSSEY_API_KEY is set, else an embedded emulator."""
    api_key = os.environ.get("ODYSSEY_API_KEY")
    if api_key:
        print("using Odyssey (ODYSSEY_API_KEY is set)")
        yield api_key, None, EngineSettings().stream_cap_seconds
        return
    from bot.emulator import DEV_API_KEY, Emulator, EmulatorConfig
    from bot.loopback_ice import restrict_ice_to_loopback

    restrict_ice_to_loopback()
    config = emulator_config or EmulatorConfig(fps=12, scale=0.5, stream_cap_seconds=DEMO_STREAM_CAP_SECONDS)
    cap = config.stream_cap_seconds
    async with Emulator(config) as emulator:
        print(
            f"using the embedded emulator at {emulator.url} (set ODYSSEY_API_KEY to use Odyssey); its stream "
            f"cap is set to {cap:g} s instead of 150 s so that this short run shows a roll-over to a fresh "
            "stream"
        )
        yield DEV_API_KEY, emulator.url, cap


@contextlib.asynccontextmanager
async def watch_viewer(wanted: bool) -> AsyncIterator[ViewerServer | None]:
    """The Watch live viewer on 127.0.0.1 (a free port) when wanted and no Odyssey key is set, else None."""
    if not wanted or os.environ.get("ODYSSEY_API_KEY"):
        yield None
        return
    viewer = ViewerServer(WebSettings(port=0))
    await viewer.start()
    try:
        yield viewer
    finally:
        await viewer.aclose()


async def run_demo(
    photo: bytes,
    outfits: list[str],
    out: Path,
    *,
    portrait: bool,
    emulator_config: EmulatorConfig | None = None,
    watch: bool = True,
) -> dict[str, Any]:
    """Run one try-on through the engine; writes snippets, recordings and summary.json under `out`.

    With `watch` (and the embedded emulator) the session is shared live: its link is printed."""
    # The engine checks these again at admission; checking first means a typo costs no emulator start.
    await check_photo(photo)
    for outfit in outfits:
        check_prompt(outfit)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    started = time.monotonic()
    async with (
        backend(emulator_config) as (api_key, api_url, cap),
        watch_viewer(watch) as viewer,
        await Store.open(out / "tryon.sqlite3") as store,
    ):
        settings = EngineSettings(
            portrait=portrait,
            stream_cap_seconds=cap,
            rollover_margin_seconds=min(5.0, cap / 10),
            idle_seconds=60.0,
            recording_poll_limit_seconds=60.0,
        )
        board = None if viewer is None else viewer.registry
        engine = build_engine(store, client_factory(api_key, api_url), settings, watch_board=board)
        try:
            return await try_on(engine, photo, outfits, out, cap, started)
        finally:
            await engine.aclose(grace_seconds=30)


async def try_on(
    engine: Engine[TryOnSession], photo: bytes, outfits: list[str], out: Path, cap: float, started: float
) -> dict[str, Any]:
    """Admit one session, steer it through the outfits, end it, download and summarise."""
    manager = engine.manager
    for recovered in await manager.recover():
        print(f"recovered an interrupted session from an earlier run: {recovered.id}")
    # Every outfit is checked before anything is spent, exactly as the first one is at admission.
    outfits = [await engine.services.gate.outfit(DEMO_GUILD, DEMO_USER, outfit) for outfit in outfits]
    presenter = ConsolePresenter(out)
    request = SessionRequest(
        guild_id=DEMO_GUILD,
        user_id=DEMO_USER,
        channel_id=None,
        photo=photo,
        outfit=outfits[0],
        watch=engine.watch_available,
    )
    session = await manager.admit(request, presenter)
    watch_url = presenter.statuses[-1].watch_url if presenter.statuses else None
    if watch_url is not None:
        print(f"watch it live in a browser on this machine: {watch_url}")
    await wait_until(
        session,
        lambda: session.state is not SessionState.QUEUED and session.state is not SessionState.CONNECTING,
        120,
    )
    for outfit in outfits[1:]:
        await asyncio.sleep(1.0)  # let the member look at the last outfit for a moment
        if session.is_finished:
            break
        with contextlib.suppress(NoSuchSession):  # it ended meanwhile: the summary says how
            await manager.steer(session, outfit)
    await session.snapshot()
    if session.rollovers == 0 and not session.is_finished and cap < 60:
        print(f"waiting past the {cap:g} s stream cap to show the roll-over...")
        await wait_until(session, lambda: session.rollovers > 0, cap + 20)
        await asyncio.sleep(1.5)
    if not session.is_finished:
        session.stop(EndReason.MEMBER)
    await wait_until(session, lambda: session.finished.is_set(), 120)
    if session.state is not SessionState.DONE:
        message = presenter.errors[-1].message if presenter.errors else f"the session ended {session.state}"
        raise DemoError(message)
    downloads = await download_recordings(presenter, out)
    await write_final_post(presenter, out)
    summary = await summarise(engine, session, presenter, downloads, time.monotonic() - started)
    summary["watch"] = (
        None if watch_url is None else {"url": watch_url, "broadcast_parts": len(presenter.broadcasts)}
    )
    await asyncio.to_thread((out / "summary.json").write_text, json.dumps(summary, indent=2) + "\n")
    print_summary(summary, out)
    return summary


async def wait_until(session: TryOnSession, condition: Any, seconds: float) -> None:
    """Wait for `condition()` (or the session's end), at most `seconds`; DemoError when it takes longer."""
    try:
        async with asyncio.timeout(seconds):
            # Polling: roll-overs and states belong to the session and have no event of their own.
            while not condition() and not session.finished.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise DemoError(f"the try-on was still {session.state} after {seconds:g} s") from None


async def download_recordings(presenter: ConsolePresenter, out: Path) -> list[dict[str, Any]]:
    """Fetch every stream's MP4 and thumbnail into `out`."""
    files: list[dict[str, Any]] = []
    if not presenter.recordings:
        return files
    async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT) as http:
        for index, links in enumerate(presenter.recordings[-1].recordings, start=1):
            files.append(await download_one(http, links, index, out))
    return files


async def download_one(
    http: httpx.AsyncClient, links: RecordingLinks, index: int, out: Path
) -> dict[str, Any]:
    saved: dict[str, Any] = {"stream_id": links.stream_id, "duration_seconds": links.duration_seconds}
    for key, url, name in (
        ("video", links.video_url, f"recording-{index}.mp4"),
        ("thumbnail", links.thumbnail_url, f"thumbnail-{index}.jpg"),
    ):
        if url is None:
            continue
        try:
            response = await http.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise DemoError(f"downloading the {key} of stream {links.stream_id} failed: {exc}") from exc
        path = out / name
        await asyncio.to_thread(path.write_bytes, response.content)
        saved[key] = str(path)
    return saved


async def write_final_post(presenter: ConsolePresenter, out: Path) -> None:
    """The final post as Discord would receive it (JSON) and as a member would read it (Markdown)."""
    if not presenter.recordings:
        return
    post = final_post(presenter.recordings[-1], DEMO_USER, DISCORD_UPLOAD_LIMIT)
    preview = post.preview()
    await asyncio.to_thread((out / "final-post.json").write_text, json.dumps(preview, indent=2) + "\n")
    await asyncio.to_thread((out / "final-post.md").write_text, final_post_markdown(preview))


def final_post_markdown(preview: dict[str, Any]) -> str:
    """A readable rendering of `FinalPost.preview()`: attachments, embed, buttons."""
    [embed] = preview["embeds"]
    lines = [f"Message text: `{preview['content']}` (the member's mention)", "", "Attachments:", ""]
    lines += ["| file | type | size |", "|---|---|---:|"]
    lines += [
        f"| {a['filename']} | {a['content_type']} | {a['size'] / 1024:.0f} KiB |"
        for a in preview["attachments"]
    ]
    if preview["left_out"]:
        lines += ["", f"Left out (over the upload limit): {', '.join(preview['left_out'])}"]
    lines += ["", "Embed:", "", f"> **{embed['title']}**", ">"]
    # Discord shows <t:…:R> in the reader's own terms ("2 minutes ago", later "3 days ago").
    description = re.sub(
        r"<t:(\d+):R>", r"`<t:\1:R>` (shown as a relative time)", embed.get("description", "")
    )
    lines += [f"> {line}" for line in description.splitlines()]
    for part in ("thumbnail", "image"):
        if part in embed:
            lines += [">", f"> {part}: `{embed[part]['url']}`"]
    lines += [">", f"> _{embed['footer']['text']}_", "", "Buttons:", ""]
    lines += [
        f"- **{button['label']}** (`{button['custom_id']}`)"
        for row in preview["components"]
        for button in row["components"]
    ]
    return "\n".join(lines) + "\n"


async def summarise(
    engine: Engine[TryOnSession],
    session: TryOnSession,
    presenter: ConsolePresenter,
    downloads: list[dict[str, Any]],
    wall_seconds: float,
) -> dict[str, Any]:
    store = engine.services.store
    streams = await store.streams.for_session(session.id)
    prompts = await store.prompts.for_session(session.id)
    ledger = await store.usage.for_session(session.id)
    return {
        "session_id": session.id,
        "state": str(session.state),
        "end_reason": str(session.end_reason),
        "streamed_seconds": round(session.streamed_seconds, 2),
        "charged_seconds": round(sum(e.seconds for e in ledger if e.kind == "charge"), 2),
        "rollovers": session.rollovers,
        # Time without video at each roll-over (old stream ended -> new stream started), in seconds.
        "rollover_gaps_seconds": [
            round(after.started_at - before.ended_at, 2)
            for before, after in itertools.pairwise(streams)
            if before.ended_at is not None
        ],
        "streams": [
            {
                "index": s.index,
                "odyssey_stream_id": s.odyssey_stream_id,
                "seconds": round(s.seconds, 2),
                "end_reason": s.end_reason,
            }
            for s in streams
        ],
        "outfits": [{"text": p.text, "status": p.status} for p in prompts],
        "snippets": [
            {"path": str(f.path), "bytes": f.size_bytes, "outfit": f.caption} for f in presenter.snippets
        ],
        "snapshots": [str(f.path) for f in presenter.snapshots],
        "before_after": str(presenter.before_after) if presenter.before_after else None,
        "thumbnail": str(presenter.thumbnail) if presenter.thumbnail else None,
        "highlight": (
            {"path": str(presenter.highlight.path), "bytes": presenter.highlight.size_bytes}
            if presenter.highlight
            else None
        ),
        "recordings": downloads,
        "wall_seconds": round(wall_seconds, 1),
    }


def print_summary(summary: dict[str, Any], out: Path) -> None:
    print()
    print(f"Summary ({out / 'summary.json'}):")
    print(
        f"  session {summary['session_id']}: {summary['state']} ({summary['end_reason']}), "
        f"{summary['streamed_seconds']:.1f} s streamed over {len(summary['streams'])} stream(s) "
        f"with {summary['rollovers']} roll-over(s); {summary['charged_seconds']:.1f} s charged to the member"
    )
    if summary["rollover_gaps_seconds"]:
        gaps = ", ".join(f"{gap:.1f} s" for gap in summary["rollover_gaps_seconds"])
        print(f"  roll-over gap(s) without video: {gaps}")
    for outfit in summary["outfits"]:
        print(f"  outfit {outfit['status']}: {outfit['text']}")
    for snippet in summary["snippets"]:
        print(f"  snippet {snippet['path']} ({snippet['bytes'] / 1024:.0f} KiB): {snippet['outfit']}")
    for recording in summary["recordings"]:
        print(f"  recording {recording.get('video')} (thumbnail {recording.get('thumbnail')})")
    if summary["before_after"]:
        print(f"  before/after still: {summary['before_after']}")
    if summary["highlight"]:
        highlight = summary["highlight"]
        print(f"  highlight video: {highlight['path']} ({highlight['bytes'] / 1024:.0f} KiB)")
    print(f"  the final post as Discord would show it: {out / 'final-post.md'} (and final-post.json)")
    print(f"  finished in {summary['wall_seconds']:.1f} s")
