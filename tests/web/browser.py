"""Headless Chromium for the viewer tests, driven line by line through tests/web/js/browser.mjs.

Skipped (not failed) where Chromium, node or the npm packages are missing, as the conformance test is,
unless REQUIRE_BROWSER=1 (CI) turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

DRIVER = Path(__file__).parent / "js" / "browser.mjs"
NPM_DIR = Path(__file__).parents[1] / "conformance" / "js"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ANSWER_SECONDS = 60.0


def missing_prerequisite() -> str | None:
    """Why the browser cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not on PATH (Debian: apt-get install nodejs npm)"
    if not (NPM_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        return f"npm package playwright-core is not installed in {NPM_DIR} (run `make js-deps`)"
    return None


def require_browser() -> None:
    """Skip the test when the browser cannot run (fail instead under REQUIRE_BROWSER=1)."""
    missing = missing_prerequisite()
    if missing is None:
        return
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
    pytest.skip(missing)


class BrowserError(AssertionError):
    """The driver could not do what was asked (a wait timed out, a page failed)."""


class Chromium:
    """One headless Chromium: open pages, wait for what they show, read them."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._lock = asyncio.Lock()

    async def _ask(self, op: str, **fields: Any) -> dict[str, Any]:
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        async with self._lock:
            process.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), ANSWER_SECONDS)
        if not line:
            raise BrowserError(f"the browser driver exited (code {process.returncode})")
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok"):
            raise BrowserError(json.dumps(answer, indent=1))
        return answer

    async def open(self, url: str) -> dict[str, Any]:
        """Open `url` in a new tab: its index (`page`), HTTP status and visible text."""
        return await self._ask("open", url=url)

    async def wait(self, page: int, until: str, seconds: float = 20.0) -> dict[str, Any]:
        """Wait until the JS expression `until` holds, then read; it sees `viewer` (the page's
        `window.viewer`) and `state` (what `read` returns: `state.outfit`, `state.notice`, ...)."""
        return await self._ask("wait", page=page, until=until, ms=int(seconds * 1000))

    async def read(self, page: int) -> dict[str, Any]:
        """The page's `viewer` state, its notice and outfit text, console errors."""
        return await self._ask("read", page=page)

    async def close(self, page: int) -> None:
        """Close a tab (as a member closing it)."""
        await self._ask("close", page=page)

    async def quit(self) -> None:
        process = self._process
        if process.returncode is None and process.stdin is not None:
            process.stdin.write(json.dumps({"op": "quit"}).encode() + b"\n")
            try:
                await asyncio.wait_for(process.wait(), 10)
                return
            except TimeoutError:
                process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def chromium() -> AsyncIterator[Chromium]:
    """A running browser (use as a fixture body: `yield` from it)."""
    process = await asyncio.create_subprocess_exec(
        "node", str(DRIVER), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    browser = Chromium(process)
    try:
        yield browser
    finally:
        await browser.quit()
