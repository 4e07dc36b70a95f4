"""The console presenter: one readable line per event, files written where it says."""

from __future__ import annotations

from pathlib import Path

from bot.tryon.console import ConsolePresenter
from bot.tryon.models import SessionState
from bot.tryon.presenter import ErrorReported, SnippetReady, StatusChanged


def status(state: SessionState, **fields: object) -> StatusChanged:
    values: dict[str, object] = {
        "session_id": "s",
        "state": state,
        "elapsed_seconds": 0.0,
        "outfit": "red coat",
    }
    values.update(fields)
    return StatusChanged(**values)  # type: ignore[arg-type]


async def test_lines_read_well_from_the_queue_to_the_end(tmp_path: Path) -> None:
    lines: list[str] = []
    presenter = ConsolePresenter(tmp_path, echo=lines.append)
    for event in (
        status(SessionState.QUEUED, queue_position=2, estimated_wait_seconds=240.0),
        status(SessionState.QUEUED, queue_position=1, estimated_wait_seconds=0.0),
        status(SessionState.CONNECTING),
        status(SessionState.CONNECTING, platform_wait_seconds=3.0),
        status(SessionState.STREAMING, remaining_seconds=600.0),
        status(SessionState.STREAMING, elapsed_seconds=1.7, remaining_seconds=598.3),
        status(SessionState.STREAMING, elapsed_seconds=2.5, remaining_seconds=597.5, outfit="blue suit"),
        status(SessionState.STREAMING, elapsed_seconds=9.0, continuing=True, outfit="blue suit"),
        status(SessionState.DONE, elapsed_seconds=10.5, end_reason="member"),
    ):
        await presenter.status_changed(event)
    await presenter.error(ErrorReported("s", "The video platform failed."))

    texts = [line.split("] ", 1)[1] for line in lines]
    assert texts == [
        "queued: position 2, about 240 s to wait",
        "queued: a slot is free, starting now",
        "connecting to the video platform...",
        "waiting for the platform to free a streamer (3 s)",
        "streaming: 0.0 s streamed, 600 s left - now wearing: red coat",
        "streaming: 1.7 s streamed, 598 s left",
        "streaming: 2.5 s streamed, 598 s left - now wearing: blue suit",
        "continuing: the platform caps one stream, so a fresh stream took over at 9.0 s (outfit: blue suit)",
        "done: 10.5 s streamed (ended: member)",
        "error: The video platform failed.",
    ]
    assert len(presenter.statuses) == 9 and len(presenter.errors) == 1


async def test_snippets_are_written_and_listed(tmp_path: Path) -> None:
    lines: list[str] = []
    presenter = ConsolePresenter(tmp_path / "out", label="[a]", echo=lines.append)
    await presenter.snippet_ready(
        SnippetReady("s", b"GIF89a" + bytes(2042), "x.gif", "blue suit", "blue suit", 1.0)
    )
    [written] = presenter.snippets
    assert written.path == tmp_path / "out" / "x.gif" and written.path.read_bytes()[:6] == b"GIF89a"
    assert lines[0].endswith(f"[a] snippet: {written.path} (2 KiB) - blue suit")
