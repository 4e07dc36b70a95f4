"""Recordings API: one stream's artifacts, and the paginated list of the caller's streams."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bot.odyssey.errors import OdysseyAuthError, OdysseyError
from bot.odyssey.models import Recording, StreamRecordingsList
from bot.odyssey.rest import ApiClient, json_body


async def get_recording(api: ApiClient, stream_id: str) -> Recording:
    """`GET /recordings/{stream_id}`."""
    response = await api.request("GET", f"/recordings/{quote(stream_id, safe='')}")
    if response.status_code == 404:
        raise OdysseyError("Recording not found")
    if response.status_code == 401:
        raise OdysseyAuthError("Not authorized")
    if not response.is_success:
        raise OdysseyError(f"Failed to get recording: {response.status_code} {response.reason_phrase}")
    return Recording.from_json(json_body(response))


async def list_stream_recordings(
    api: ApiClient, *, limit: int | None = None, offset: int | None = None
) -> StreamRecordingsList:
    """`GET /stream-recordings`, most recent first; each paging parameter is only sent when set."""
    params: dict[str, Any] = {}
    if limit is not None:
        params["limit"] = limit
    if offset is not None:
        params["offset"] = offset
    response = await api.request("GET", "/stream-recordings", params=params)
    if response.status_code == 401:
        raise OdysseyAuthError("Not authorized")
    if not response.is_success:
        raise OdysseyError(f"Failed to list recordings: {response.status_code} {response.reason_phrase}")
    return StreamRecordingsList.from_json(json_body(response))
