"""Reading a viewer's server-sent event stream with httpx, as a page's EventSource would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    """One server-sent event: its name and its JSON data ("comment" for a keepalive line)."""

    name: str
    data: Any


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of an open `text/event-stream` response, in order."""
    name, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield Event("comment", line[1:].strip())
        elif line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data += line.partition(":")[2].strip()
        elif line == "" and data:
            yield Event(name, json.loads(data))
            name, data = "message", ""
