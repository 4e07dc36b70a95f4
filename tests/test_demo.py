"""The engine demo: one clear error line for bad input; a run streams, rolls over, snippets and records."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot import demo
from bot.emulator import DEV_API_KEY, Emulator, EmulatorConfig
from bot.store import Store
from bot.tryon.engine import build_engine, client_factory
from bot.tryon.models import SessionState
from bot.tryon.settings import EngineSettings
from tests.helpers import ROOT, mp4_video

pytestmark = pytest.mark.timeout(120)


def args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {"photo": None, "outfit": None, "out": "out", "landscape": False}
    values.update(overrides)
    return argparse.Namespace(**values)


def test_bad_photo_or_prompt_is_one_clear_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"this is not an image")
    out = tmp_path / "out"
    assert demo.main(args(photo=str(bad), out=str(out))) == 1
    assert demo.main(args(photo=str(tmp_path / "missing.jpg"), out=str(out))) == 1
    assert demo.main(args(outfit=["a red coat", "\u200b"], out=str(out))) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "photo" in err[0] and "missing.jpg" in err[1] and "outfit" in err[2]
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()  # nothing started, nothing written


async def test_demo_runs_the_engine_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ODYSSEY_API_KEY", raising=False)
    summary = await demo.run_demo(
        demo.SAMPLE_PHOTO.read_bytes(),
        ["a red wool coat", "a blue denim jacket"],
        tmp_path,
        portrait=True,
        emulator_config=EmulatorConfig.small(stream_cap_seconds=4.0),
    )
    check_outputs(summary, tmp_path)


def check_outputs(summary: dict[str, Any], out: Path) -> None:
    assert summary == json.loads((out / "summary.json").read_text())
    # Shared live beside the emulator: every stream part was broadcast to the viewer.
    assert summary["watch"]["url"].startswith("http://127.0.0.1:")
    assert summary["watch"]["broadcast_parts"] == len(summary["streams"])
    assert summary["state"] == "done" and summary["rollovers"] >= 1
    assert len(summary["streams"]) == len(summary["recordings"]) >= 2
    assert [o["status"] for o in summary["outfits"]] == ["applied", "applied"]
    assert len(summary["snippets"]) == 2
    for snippet in summary["snippets"]:
        assert Path(snippet["path"]).read_bytes()[:4] == b"GIF8"
    for recording in summary["recordings"]:
        assert Path(recording["video"]).read_bytes()[4:8] == b"ftyp"
    assert summary["charged_seconds"] == pytest.approx(summary["streamed_seconds"], abs=0.05)
    assert (out / "tryon.sqlite3").exists()
    # The highlight of the whole session, and the final post as Discord would get it.
    highlight = Path(summary["highlight"]["path"])
    assert highlight.name.endswith("-highlight.mp4") and mp4_video(highlight.read_bytes())[0] == "h264"
    post = json.loads((out / "final-post.json").read_text())
    files = [(a["filename"], a["content_type"]) for a in post["attachments"]]
    assert files == [
        ("highlight.mp4", "video/mp4"),
        ("thumbnail.jpg", "image/jpeg"),
        ("before-after.png", "image/png"),
    ]
    assert post["attachments"][0]["size"] == summary["highlight"]["bytes"]
    [embed] = post["embeds"]
    assert embed["image"]["url"] == "attachment://before-after.png" and "local links" in embed["description"]
    buttons = [button["label"] for button in post["components"][0]["components"]]
    assert buttons == ["Try another outfit", "Get the full video"]
    rendered = (out / "final-post.md").read_text()
    assert "| highlight.mp4 | video/mp4 |" in rendered and "**Get the full video**" in rendered


async def test_a_session_that_ends_early_is_summarised_not_misreported(
    tmp_path: Path, emulator_factory: Callable[..., Awaitable[Emulator]]
) -> None:
    emulator = await emulator_factory(stream_cap_seconds=1.5)
    async with await Store.open(tmp_path / "tryon.sqlite3") as store:
        settings = EngineSettings(
            slots=1,
            snippet_seconds=1.0,
            buffer_seconds=2.0,
            stream_cap_seconds=1.5,
            rollover_margin_seconds=0.5,
        )
        engine = build_engine(store, client_factory(DEV_API_KEY, emulator.url), settings)
        try:

            async def refuse_the_roll_over() -> None:
                while not any(s.state is SessionState.STREAMING for s in engine.manager.sessions()):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                emulator.faults.stream_error_reason = "concurrent_limit_exceeded"

            refusing = asyncio.create_task(refuse_the_roll_over())
            photo = demo.SAMPLE_PHOTO.read_bytes()
            summary = await demo.try_on(engine, photo, ["a red wool coat"], tmp_path, 1.5, 0.0)
            await refusing
        finally:
            await engine.aclose(grace_seconds=10)
    assert summary["state"] == "done" and summary["end_reason"] == "connection_lost"
    assert len(summary["recordings"]) == 1


async def test_a_wait_that_runs_out_is_a_demo_error_not_a_traceback() -> None:
    stuck = SimpleNamespace(finished=asyncio.Event(), state=SessionState.CONNECTING)
    with pytest.raises(demo.DemoError, match=r"still connecting after 0\.1 s"):
        await demo.wait_until(stuck, lambda: False, 0.1)  # type: ignore[arg-type]


def test_an_output_folder_that_cannot_be_made_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "out"
    taken.write_text("a file, not a folder")
    assert demo.main(args(out=str(taken))) == 1
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"error: cannot write under {taken}")
    assert "Traceback" not in captured.err + captured.out


async def test_ctrl_c_ends_the_demo_with_one_line(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "ODYSSEY_API_KEY"}
    # Its own process group, as a shell gives a foreground job: Ctrl-C signals the whole group.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", "--out", str(tmp_path / "out"),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(90):
            # The first snippet means the encoder's worker process runs (it starts with the first job).
            while b"snippet:" not in (line := await process.stdout.readline()):
                assert line, "the demo ended before its first snippet"
        os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        async with asyncio.timeout(60):
            rest, errors = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = (rest + errors).decode(errors="replace")
    assert process.returncode == 130, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert errors.decode().strip().splitlines() == ["interrupted: the try-on was ended"]
