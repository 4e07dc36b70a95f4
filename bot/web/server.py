"""The viewer's web server (aiohttp): the page at `/watch/<id>`, the state it follows at `/watch/<id>/events`.

`/watch/<id>/events` is a server-sent event stream: a `state` event with the current WHEP URL and spectator
token, outfit and ended flag whenever they change (a comment every few seconds keeps proxies from closing
it), or one `full` event when the link already has as many pages open as allowed. Each open stream is one
viewer. Nothing else is served; anything unknown, or an id that is wrong or whose try-on ended, gets a
plain HTML page, and an unexpected failure a plain page with an id for the logs, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from html import escape
from importlib import resources

from aiohttp import web

from bot.deadline import wait_within
from bot.web.registry import Watch, WatchRegistry
from bot.web.settings import WebSettings

log = logging.getLogger(__name__)

WATCH_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
# A comment this often keeps idle proxies from closing a page's event stream.
KEEPALIVE_SECONDS = 15.0
# A page that does not take its events within this is dropped.
WRITE_SECONDS = 10.0
SHUTDOWN_SECONDS = 5.0
GONE_MESSAGE = "This watch link doesn't exist, or the try-on it showed has ended."

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def plain_page(status: int, title: str, text: str) -> web.Response:
    """A small HTML page saying one thing (errors, expired links)."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>"
        f"<p>{escape(text, quote=False)}</p></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8")


def inline_hashes(page: str, tag: str) -> str:
    """CSP sources allowing exactly the page's inline `<script>` or `<style>` blocks."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() for block in blocks)
    return " ".join(f"'sha256-{digest}'" for digest in digests)


def page_policy(page: str) -> str:
    """The viewer page's Content-Security-Policy: its own script and style, WHEP and /config fetches."""
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {inline_hashes(page, 'script')}",
            f"style-src {inline_hashes(page, 'style')}",
            # The platform's WHEP endpoint and ICE /config are on another origin, known only at run time.
            "connect-src 'self' https: http:",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


@web.middleware
async def plain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a plain page; unexpected ones logged with an id the page shows."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return plain_page(404, "Not found", GONE_MESSAGE)
    except web.HTTPMethodNotAllowed:
        return plain_page(405, "Not allowed", "This page can only be viewed.")
    except web.HTTPException as error:
        return plain_page(error.status, error.reason, "This request can't be answered.")
    except (asyncio.CancelledError, ConnectionError):
        raise  # the page went away
    except Exception:
        error_id = uuid.uuid4().hex[:8]
        log.exception("viewer request failed (error id %s)", error_id)
        return plain_page(500, "Something went wrong", f"Please try again later (error id {error_id}).")


async def safe_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers on every response: nothing cached or framed, no referrer (the URL holds the link's id)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.pop("Server", None)


class ViewerServer:
    """Serves watch links from `registry`; `start()` listens, `aclose()` ends every link and stops."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.registry = WatchRegistry(max_viewers_per_link=settings.max_viewers_per_link)
        self._page = ""
        self._policy = ""
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> str:
        """Listen; returns the base URL links start with (`public_url`, else http://host:port)."""
        self._page = await asyncio.to_thread(
            resources.files("bot.web").joinpath("viewer.html").read_text, "utf-8"
        )
        self._policy = page_policy(self._page)
        app = web.Application(middlewares=[plain_errors])
        app.on_response_prepare.append(safe_headers)
        app.add_routes(
            [
                web.get("/watch/{watch_id}", self._page_of),
                web.get("/watch/{watch_id}/events", self._events_of),
            ]
        )
        # Cancelling a handler when its page goes away is what counts a closed tab as a viewer gone at once.
        # No access log: every request line holds a link's id.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
        )
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port or 0)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        base = self.settings.public_url or f"http://{self.settings.host}:{self.port}"
        self.registry.base_url = base.rstrip("/")
        log.info("Watch live viewer listening on %s:%d", self.settings.host, self.port)
        return self.registry.base_url

    async def aclose(self) -> None:
        """End every link (open pages say so), then stop listening."""
        self.registry.end_all()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _watch_of(self, request: web.Request) -> Watch:
        watch_id = request.match_info["watch_id"]
        watch = self.registry.find(watch_id) if WATCH_ID.fullmatch(watch_id) else None
        if watch is None:
            raise web.HTTPNotFound()
        return watch

    async def _page_of(self, request: web.Request) -> web.Response:
        self._watch_of(request)
        response = web.Response(text=self._page, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = self._policy
        return response

    async def _events_of(self, request: web.Request) -> web.StreamResponse:
        watch = self._watch_of(request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        if watch.viewers >= self.registry.max_viewers_per_link:
            await self._send(response, "event: full\ndata: {}\n\n")
            return response
        watch.joined()
        try:
            await self._follow(watch, response)
        except (ConnectionError, TimeoutError):
            pass  # the page went away, or stopped reading
        finally:
            watch.left()
        return response

    async def _follow(self, watch: Watch, response: web.StreamResponse) -> None:
        """Send the state, then every change, until the try-on ends."""
        seen = -1
        while True:
            if watch.version != seen:
                seen = watch.version
                state = json.dumps(watch.state.to_json(), separators=(",", ":"))
                await self._send(response, f"event: state\ndata: {state}\n\n")
                if watch.state.ended:
                    return
            try:
                await wait_within(watch.next_change(seen), KEEPALIVE_SECONDS)
            except TimeoutError:
                await self._send(response, ": keepalive\n\n")

    @staticmethod
    async def _send(response: web.StreamResponse, text: str) -> None:
        await wait_within(response.write(text.encode()), WRITE_SECONDS)
