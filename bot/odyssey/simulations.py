"""Simulation jobs API: scripted streams rendered in the background."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from bot.odyssey.errors import OdysseyAuthError, OdysseyError
from bot.odyssey.images import ImageInput, image_to_data_url
from bot.odyssey.models import SimulationJobDetail, SimulationJobInfo, SimulationJobsList, SimulationJobStatus
from bot.odyssey.rest import ApiClient, json_body


async def simulate(
    api: ApiClient,
    *,
    script: list[dict[str, Any]] | None = None,
    scripts: list[list[dict[str, Any]]] | None = None,
    script_url: str | None = None,
    portrait: bool = True,
    bypass_prompt_expansion: bool | None = None,
) -> SimulationJobDetail:
    """`POST /simulation-jobs` with exactly one of `script`, `scripts`, `script_url`."""
    if sum(x is not None for x in (script, scripts, script_url)) != 1:
        raise ValueError("Exactly one of script, scripts, or script_url must be provided")
    body: dict[str, Any] = {"portrait": portrait, "output_video": True}
    if bypass_prompt_expansion is not None:
        body["bypass_vlm_expansion"] = bypass_prompt_expansion
    if script is not None:
        body["script"] = await _prepare_script(script, portrait)
    elif scripts is not None:
        body["scripts"] = [await _prepare_script(entries, portrait) for entries in scripts]
    else:
        body["script_url"] = script_url
    response = await api.request("POST", "/simulation-jobs", json=body)
    if response.status_code == 403:
        raise OdysseyAuthError(_detail(response) or "Not allowed to bypass prompt expansion")
    if not response.is_success:
        raise OdysseyError(f"Failed to submit simulation: {response.status_code} {response.text[:500]}")
    return SimulationJobDetail.from_json(json_body(response))


async def get_simulate_status(api: ApiClient, job_id: str) -> SimulationJobDetail:
    """`GET /simulation-jobs/{job_id}`."""
    response = await api.request("GET", f"/simulation-jobs/{quote(job_id, safe='')}")
    _raise_for_job(response.status_code, response.reason_phrase, "get simulation")
    return SimulationJobDetail.from_json(json_body(response))


async def list_simulations(
    api: ApiClient,
    *,
    status: SimulationJobStatus | str | None = None,
    active: bool | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> SimulationJobsList:
    """`GET /simulation-jobs` with optional filters."""
    params: dict[str, Any] = {}
    if status is not None:
        params["status"] = SimulationJobStatus(status).value
    if active is not None:
        params["active"] = "true" if active else "false"
    if limit is not None:
        if not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100")
        params["limit"] = limit
    if offset is not None:
        if offset < 0:
            raise ValueError("offset must be >= 0")
        params["offset"] = offset
    response = await api.request("GET", "/simulation-jobs", params=params)
    if response.status_code == 401:
        raise OdysseyAuthError("Not authorized")
    if not response.is_success:
        raise OdysseyError(f"Failed to list simulations: {response.status_code} {response.reason_phrase}")
    return SimulationJobsList.from_json(json_body(response))


async def cancel_simulation(api: ApiClient, job_id: str) -> SimulationJobInfo:
    """`DELETE /simulation-jobs/{job_id}` (only pending or dispatched jobs can be cancelled)."""
    response = await api.request("DELETE", f"/simulation-jobs/{quote(job_id, safe='')}")
    if response.status_code == 400:
        raise OdysseyError(_detail(response) or "Simulation cannot be cancelled")
    _raise_for_job(response.status_code, response.reason_phrase, "cancel simulation")
    return SimulationJobInfo.from_json(json_body(response))


async def _prepare_script(entries: list[dict[str, Any]], portrait: bool) -> list[dict[str, Any]]:
    prepared = []
    for entry in entries:
        start = entry.get("start")
        if isinstance(start, dict):
            if not isinstance(start.get("prompt"), str):
                raise ValueError("A script 'start' entry needs a prompt")
            if start.get("image") is not None:
                image: ImageInput = start["image"]
                start = {**start, "image": await asyncio.to_thread(image_to_data_url, image, portrait)}
            entry = {**entry, "start": start}
        prepared.append(entry)
    return prepared


def _raise_for_job(status: int, reason: str, action: str) -> None:
    if status == 404:
        raise OdysseyError("Simulation job not found")
    if status == 403:
        raise OdysseyAuthError("Simulation job belongs to another account")
    if status == 401:
        raise OdysseyAuthError("Not authorized")
    if not 200 <= status < 300:
        raise OdysseyError(f"Failed to {action}: {status} {reason}")


def _detail(response: Any) -> str | None:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return None
    return detail if isinstance(detail, str) else None
