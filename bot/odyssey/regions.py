"""Region latency probing: ping every region concurrently, report what answered within the deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

log = logging.getLogger(__name__)

UNMEASURED_LATENCY_MS = 9999
PROBE_DEADLINE_SECONDS = 1.0
PING_TIMEOUT_SECONDS = 10.0


class RegionProber:
    """Keeps the latest latency per region; slow pings finish in the background and update it."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self.latencies: dict[str, int] = {}
        self._pings: set[asyncio.Task[None]] = set()

    async def probe(
        self, regions_url: str, access_token: str, *, deadline: float = PROBE_DEADLINE_SECONDS
    ) -> None:
        """Fetch the region list and ping each region, returning after at most `deadline` seconds."""
        try:
            async with asyncio.timeout(deadline):
                targets = await self._regions(regions_url, access_token)
                for region_id in targets:
                    self.latencies.setdefault(region_id, UNMEASURED_LATENCY_MS)
                for region_id, ping_url in targets.items():
                    task = asyncio.create_task(self._ping(region_id, ping_url))
                    self._pings.add(task)
                    task.add_done_callback(self._pings.discard)
                if self._pings:
                    await asyncio.wait(set(self._pings))
        except TimeoutError:
            log.debug("region probe deadline passed; %d pings still running", len(self._pings))

    def measured(self) -> dict[str, int]:
        """The latencies to send with a session request (empty when nothing is known)."""
        return dict(self.latencies)

    async def aclose(self) -> None:
        """Stop pings that are still running."""
        for task in list(self._pings):
            task.cancel()
        await asyncio.gather(*self._pings, return_exceptions=True)

    async def _regions(self, url: str, access_token: str) -> dict[str, str]:
        try:
            response = await self._http.get(url, headers={"Authorization": f"Bearer {access_token}"})
            body: Any = response.json() if response.is_success else None
        except (httpx.HTTPError, ValueError):
            return {}
        regions = body.get("regions") if isinstance(body, dict) else None
        if not isinstance(regions, list):
            return {}
        return {
            str(item["id"]): str(item["ping_url"])
            for item in regions
            if isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and isinstance(item.get("ping_url"), str)
        }

    async def _ping(self, region_id: str, ping_url: str) -> None:
        started = time.perf_counter()
        try:
            response = await self._http.get(ping_url, timeout=PING_TIMEOUT_SECONDS)
        except httpx.HTTPError:
            return
        if response.is_success:
            self.latencies[region_id] = round((time.perf_counter() - started) * 1000)
