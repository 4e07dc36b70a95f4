"""Simulation jobs (§15): scripted streams rendered offline into recordings, with a status timeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.emulator.config import EmulatorConfig
from bot.emulator.loops import SceneLibrary
from bot.emulator.recordings import Recording, RecordingStore, Segment
from bot.emulator.streamer import StreamRefused, decode_data_url

log = logging.getLogger(__name__)

STATUSES = ("pending", "dispatched", "processing", "completed", "failed", "cancelled")
ACTIVE = ("pending", "dispatched", "processing")
CANCELLABLE = ("pending", "dispatched")
DEFAULT_LIST_LIMIT = 20


class ScriptError(ValueError):
    """A simulation script that breaks the documented rules."""


@dataclass
class ScriptStep:
    """One timed action of a script."""

    at_seconds: float
    action: str
    prompt: str = ""
    image: bytes | None = None


@dataclass
class Job:
    """One simulation job and the recordings it produced."""

    job_id: str
    owner: str
    portrait: bool
    scripts: list[list[ScriptStep]] | None
    script_url: str | None
    created_at: float = field(default_factory=time.time)
    status: str = "pending"
    dispatched_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    error_message: str | None = None
    streams: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The list item of `GET /simulation-jobs`."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "priority": "normal",
            "created_at": _iso(self.created_at),
            "completed_at": _iso(self.completed_at),
            "error_message": self.error_message,
        }

    def detail(self) -> dict[str, Any]:
        """The body of `GET /simulation-jobs/{id}`."""
        return {
            **self.summary(),
            "estimated_wait_minutes": 0.1 if self.status == "pending" else None,
            "dispatched_at": _iso(self.dispatched_at),
            "started_at": _iso(self.started_at),
            "assigned_region": "local" if self.dispatched_at is not None else None,
            "retry_count": 0,
            "streams": self.streams,
        }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def parse_script(entries: object, max_image_bytes: int, max_seconds: float) -> list[ScriptStep]:
    """Check one script against the rules (start at 0 first, chronological, end last, not too long)."""
    if not isinstance(entries, list) or len(entries) < 2:
        raise ScriptError("a script is a list of at least a start and an end entry")
    steps: list[ScriptStep] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("timestamp_ms"), int):
            raise ScriptError("every script entry needs an integer timestamp_ms")
        at = entry["timestamp_ms"] / 1000
        if steps and at < steps[-1].at_seconds:
            raise ScriptError("script entries must be in chronological order")
        steps.append(_parse_step(entry, at, max_image_bytes))
    if steps[0].action != "start" or steps[0].at_seconds != 0:
        raise ScriptError("the first entry must be a start at timestamp_ms 0")
    if steps[-1].action != "end" or steps[-1].at_seconds <= 0:
        raise ScriptError("the last entry must be an end after the start")
    if steps[-1].at_seconds > max_seconds:
        raise ScriptError(f"a script may last at most {max_seconds:g} s (the per-stream limit)")
    if any(step.action == "start" for step in steps[1:]) or any(s.action == "end" for s in steps[:-1]):
        raise ScriptError("a script has exactly one start (first) and one end (last)")
    return steps


def _parse_step(entry: dict[str, Any], at: float, max_image_bytes: int) -> ScriptStep:
    if isinstance(entry.get("start"), dict):
        start = entry["start"]
        if not isinstance(start.get("prompt"), str):
            raise ScriptError("a start needs a prompt")
        try:
            image = decode_data_url(start.get("image"), max_image_bytes)
        except StreamRefused as refusal:
            raise ScriptError(refusal.message) from refusal
        return ScriptStep(at, "start", start["prompt"].strip(), image)
    if isinstance(entry.get("interact"), dict):
        prompt = entry["interact"].get("prompt")
        if not isinstance(prompt, str):
            raise ScriptError("an interact needs a prompt")
        return ScriptStep(at, "interact", prompt.strip())
    if isinstance(entry.get("end"), dict):
        return ScriptStep(at, "end")
    raise ScriptError("every entry needs one of start, interact or end")


class SimulationService:
    """In-memory simulation jobs whose status advances on a timer."""

    def __init__(
        self,
        config: EmulatorConfig,
        library: SceneLibrary,
        recordings: RecordingStore,
        *,
        caller: Callable[[web.Request], str],
        is_privileged: Callable[[str], bool],
        recording_json: Callable[[Recording], dict[str, Any]],
    ) -> None:
        self._config = config
        self._library = library
        self._recordings = recordings
        self._caller = caller
        self._is_privileged = is_privileged
        self._recording_json = recording_json
        self.jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add_routes(self, app: web.Application) -> None:
        """Mount the `/simulation-jobs` endpoints."""
        app.add_routes(
            [
                web.post("/simulation-jobs", self._submit),
                web.get("/simulation-jobs", self._list),
                web.get("/simulation-jobs/{job_id}", self._get),
                web.delete("/simulation-jobs/{job_id}", self._cancel),
            ]
        )

    async def close(self) -> None:
        """Stop every job's timer."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _submit(self, request: web.Request) -> web.Response:
        owner = self._caller(request)
        body: Any = None
        with contextlib.suppress(ValueError):
            body = await request.json()
        if not isinstance(body, dict):
            return web.json_response({"detail": "body must be a JSON object"}, status=422)
        given = [name for name in ("script", "scripts", "script_url") if body.get(name) is not None]
        if len(given) != 1:
            detail = "Exactly one of script, scripts, or script_url must be provided"
            return web.json_response({"detail": detail}, status=422)
        if body.get("bypass_vlm_expansion") and not self._is_privileged(owner):
            return web.json_response({"detail": "Bypassing prompt expansion is not allowed"}, status=403)
        config = self._config
        try:
            # Off the loop: scripts may carry several images of up to 25 MiB to decode.
            scripts = await asyncio.to_thread(
                self._scripts, body, config.max_image_bytes, config.stream_cap_seconds
            )
        except ScriptError as error:
            return web.json_response({"detail": str(error)}, status=422)
        script_url = body.get("script_url")
        if scripts is None and not isinstance(script_url, str):
            return web.json_response({"detail": "script_url must be a string"}, status=422)
        # Checked after the last await, so concurrent submissions cannot overshoot the cap.
        queued = sum(1 for job in self.jobs.values() if job.owner == owner and job.status == "pending")
        if queued >= config.simulation_queue_cap:
            detail = f"Too many queued simulation jobs (limit {config.simulation_queue_cap})"
            return web.json_response({"detail": detail}, status=429)
        portrait = body.get("portrait", True)
        job = Job(
            job_id=str(uuid.uuid4()),
            owner=owner,
            portrait=portrait if isinstance(portrait, bool) else True,
            scripts=scripts,
            script_url=script_url if scripts is None else None,
        )
        self.jobs[job.job_id] = job
        task = asyncio.create_task(self._advance(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(job.detail())

    @staticmethod
    def _scripts(
        body: dict[str, Any], max_image_bytes: int, max_seconds: float
    ) -> list[list[ScriptStep]] | None:
        if body.get("script") is not None:
            return [parse_script(body["script"], max_image_bytes, max_seconds)]
        if body.get("scripts") is not None:
            if not isinstance(body["scripts"], list) or not body["scripts"]:
                raise ScriptError("scripts must be a non-empty list of scripts")
            return [parse_script(script, max_image_bytes, max_seconds) for script in body["scripts"]]
        return None

    def _owned(self, request: web.Request) -> Job:
        owner = self._caller(request)
        job = self.jobs.get(request.match_info["job_id"])
        if job is None:
            raise web.HTTPNotFound(
                text='{"detail": "Simulation job not found"}', content_type="application/json"
            )
        if job.owner != owner:
            raise web.HTTPForbidden(
                text='{"detail": "Not your simulation job"}', content_type="application/json"
            )
        return job

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(self._owned(request).detail())

    async def _cancel(self, request: web.Request) -> web.Response:
        job = self._owned(request)
        if job.status not in CANCELLABLE:
            return web.json_response({"detail": f"Cannot cancel a job that is {job.status}"}, status=400)
        job.status = "cancelled"
        return web.json_response(job.detail())

    async def _list(self, request: web.Request) -> web.Response:
        owner = self._caller(request)
        query = request.query
        try:
            limit = int(query.get("limit", DEFAULT_LIST_LIMIT))
            offset = int(query.get("offset", 0))
        except ValueError:
            return web.json_response({"detail": "limit and offset must be integers"}, status=422)
        status = query.get("status")
        if not 1 <= limit <= 100 or offset < 0 or (status is not None and status not in STATUSES):
            return web.json_response({"detail": "invalid status, limit or offset"}, status=422)
        jobs = sorted((j for j in self.jobs.values() if j.owner == owner), key=lambda j: -j.created_at)
        if status is not None:
            jobs = [j for j in jobs if j.status == status]
        active = query.get("active")
        if active is not None:
            wanted = active.lower() == "true"
            jobs = [j for j in jobs if (j.status in ACTIVE) == wanted]
        page = [j.summary() for j in jobs[offset : offset + limit]]
        return web.json_response({"jobs": page, "total": len(jobs), "limit": limit, "offset": offset})

    async def _advance(self, job: Job) -> None:
        step = self._config.simulation_step_seconds
        await asyncio.sleep(step)
        if job.status != "pending":
            return
        job.status, job.dispatched_at = "dispatched", time.time()
        await asyncio.sleep(step)
        if job.status != "dispatched":
            return
        job.status, job.started_at = "processing", time.time()
        try:
            if job.scripts is None:
                raise ScriptError("the emulator cannot download script_url scripts (offline)")
            for index, script in enumerate(job.scripts):
                job.streams.append(await self._render(job, index, script))
            job.status = "completed"
        except ScriptError as error:
            job.status, job.error_message = "failed", str(error)
        except Exception as error:  # a broken image or encoder failure fails the job, not the emulator
            log.exception("simulation %s failed", job.job_id)
            job.status, job.error_message = "failed", f"render failed: {error}"
        job.completed_at = time.time()

    async def _render(self, job: Job, index: int, steps: list[ScriptStep]) -> dict[str, Any]:
        size = self._config.frame_size(job.portrait)
        image = steps[0].image
        segments: list[Segment] = []
        events: list[dict[str, Any]] = []
        for step in steps[:-1]:
            try:
                scene = await self._library.scene(size, step.prompt, image)
            except OSError as error:
                raise ScriptError(f"could not decode the start image: {error}") from error
            segments.append(Segment(step.at_seconds, scene))
            events.append(
                {
                    "type": "stream_started" if step.action == "start" else "update",
                    "t": step.at_seconds,
                    "prompt": step.prompt,
                }
            )
        duration = steps[-1].at_seconds
        events.append({"type": "stream_ended", "t": duration, "reason": "script_end"})
        recording = self._recordings.add(
            str(uuid.uuid4()), job.owner, segments, duration, time.time(), events
        )
        await recording.ready.wait()
        return {**self._recording_json(recording), "script_index": index}
