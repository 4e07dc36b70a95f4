"""The viewer's web server over real HTTP: pages, event stream, viewer counts, dead links, plain errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.web import ViewerServer, WebSettings
from bot.web import server as server_module
from tests.helpers import until
from tests.web.sse import Event, events

SESSION = "s1"


@pytest.fixture
async def viewer() -> AsyncIterator[ViewerServer]:
    server = ViewerServer(WebSettings(port=0, max_viewers_per_link=2))
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def assert_plain_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text and "aiohttp" not in response.text
    assert response.text.startswith("<!doctype html>")


async def next_event(stream: AsyncIterator[Event], name: str = "state") -> Event:
    async with asyncio.timeout(10):
        async for event in stream:
            if event.name == name:
                return event
    raise AssertionError("the stream ended")


async def test_a_link_serves_the_page_with_safe_headers_and_nothing_secret(
    viewer: ViewerServer, http: httpx.AsyncClient
) -> None:
    link = viewer.registry.open(SESSION, lambda count: None)
    watch_id = link.rpartition("/")[2]
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", watch_id)  # secrets.token_urlsafe(18): 144 random bits
    assert viewer.registry.open(SESSION, lambda count: None) == link  # one link per session
    viewer.registry.broadcast(SESSION, "http://127.0.0.1:9/broadcast/x", "spectator-secret")
    page = await http.get(link)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "spectator-secret" not in page.text and watch_id not in page.text  # the page is the same for all
    headers = page.headers
    assert (headers["referrer-policy"], headers["cache-control"]) == ("no-referrer", "no-store")
    assert headers["x-frame-options"] == "DENY" and "server" not in headers
    policy = headers["content-security-policy"]
    script = re.search(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy
    assert "'unsafe-inline'" not in policy


async def test_bad_and_unknown_ids_get_a_plain_page(viewer: ViewerServer, http: httpx.AsyncClient) -> None:
    base = viewer.registry.base_url
    for path in (
        "/watch/" + "A" * 24,
        "/watch/short",
        "/watch/..%2F..%2Fetc",
        "/",
        "/watch/",
        "/favicon.ico",
    ):
        response = await http.get(f"{base}{path}")
        assert_plain_page(response, 404)
        assert "doesn't exist" in response.text
    assert_plain_page(await http.get(f"{base}/watch/{'B' * 24}/events"), 404)
    link = viewer.registry.open(SESSION, lambda count: None)
    assert_plain_page(await http.post(link, content=b"x"), 405)


async def test_an_unexpected_failure_is_a_plain_page_with_an_error_id(
    viewer: ViewerServer, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = viewer.registry.open(SESSION, lambda count: None)

    def broken(watch_id: str) -> None:
        raise RuntimeError("the registry's secret insides")

    monkeypatch.setattr(viewer.registry, "find", broken)
    response = await http.get(link)
    assert_plain_page(response, 500)
    assert "error id" in response.text and "secret insides" not in response.text


async def test_pages_follow_the_state_are_counted_and_see_the_end(
    viewer: ViewerServer, http: httpx.AsyncClient
) -> None:
    counts: list[int] = []
    link = viewer.registry.open(SESSION, counts.append)
    viewer.registry.outfit(SESSION, "a red coat")
    async with http.stream("GET", f"{link}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        first = await next_event(stream)
        assert first.data == {
            "webrtc_url": None,
            "spectator_token": None,
            "part": 0,
            "outfit": "a red coat",
            "ended": False,
        }
        await until(lambda: counts == [1], 5)
        assert viewer.registry.viewers(SESSION) == 1

        viewer.registry.broadcast(SESSION, "http://127.0.0.1:9/broadcast/a", "token-a")
        part = (await next_event(stream)).data
        assert (part["webrtc_url"], part["spectator_token"], part["part"]) == (
            "http://127.0.0.1:9/broadcast/a",
            "token-a",
            1,
        )
        viewer.registry.outfit(SESSION, "a blue jacket")  # the member steers
        assert (await next_event(stream)).data["outfit"] == "a blue jacket"
        viewer.registry.broadcast(SESSION, "http://127.0.0.1:9/broadcast/b", "token-b")  # a roll-over
        assert (await next_event(stream)).data["part"] == 2

        viewer.registry.end(SESSION)
        last = (await next_event(stream)).data
        assert last["ended"] and last["webrtc_url"] is None and last["spectator_token"] is None
        async with asyncio.timeout(5):
            assert [event async for event in stream] == []  # the server closed the stream
    await until(lambda: counts[-1] == 0, 5)
    # The link died with the try-on.
    assert_plain_page(await http.get(link), 404)
    assert_plain_page(await http.get(f"{link}/events"), 404)
    assert viewer.registry.viewers(SESSION) == 0


async def test_a_closed_page_stops_counting_at_once_and_extra_pages_are_turned_away(
    viewer: ViewerServer, http: httpx.AsyncClient
) -> None:
    counts: list[int] = []
    link = viewer.registry.open(SESSION, counts.append)
    async with http.stream("GET", f"{link}/events") as one, http.stream("GET", f"{link}/events") as two:
        await next_event(events(one))
        await next_event(events(two))
        await until(lambda: viewer.registry.viewers(SESSION) == 2, 5)
        async with http.stream("GET", f"{link}/events") as third:  # over max_viewers_per_link
            turned_away = events(third)
            assert (await next_event(turned_away, "full")).data == {}
            async with asyncio.timeout(5):
                assert [event async for event in turned_away] == []
        assert viewer.registry.viewers(SESSION) == 2
    # Both pages closed (like closed tabs): counted out without waiting for a keepalive to fail.
    await until(lambda: viewer.registry.viewers(SESSION) == 0, 5)
    assert counts == [1, 2, 1, 0]


async def test_idle_streams_get_keepalives(
    viewer: ViewerServer, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "KEEPALIVE_SECONDS", 0.1)
    link = viewer.registry.open(SESSION, lambda count: None)
    async with http.stream("GET", f"{link}/events") as response:
        stream = events(response)
        await next_event(stream)
        assert (await next_event(stream, "comment")).data == "keepalive"


async def test_stopping_the_server_ends_every_open_page(
    viewer: ViewerServer, http: httpx.AsyncClient
) -> None:
    link = viewer.registry.open(SESSION, lambda count: None)
    async with http.stream("GET", f"{link}/events") as response:
        stream = events(response)
        await next_event(stream)
        closing = asyncio.create_task(viewer.aclose())
        assert (await next_event(stream)).data["ended"]
        await asyncio.wait_for(closing, 10)
