"""Simulation jobs: validation, queue cap, status timeline, cancel rules, recordings of completed jobs."""

from __future__ import annotations

import asyncio
import io

import av
import httpx

from bot.emulator import ApiKey
from tests.emulator.peer import get_token, photo_data_url
from tests.helpers import bearer

SCRIPT = [
    {"timestamp_ms": 0, "start": {"prompt": "red shirt"}},
    {"timestamp_ms": 1000, "interact": {"prompt": "blue shirt"}},
    {"timestamp_ms": 2000, "end": {}},
]


async def wait_for_status(http, token: str, job_id: str, wanted: str):
    async with asyncio.timeout(30):
        while True:
            job = (await http.get(f"/simulation-jobs/{job_id}", headers=bearer(token))).json()
            if job["status"] == wanted:
                return job
            assert job["status"] in ("pending", "dispatched", "processing"), job
            await asyncio.sleep(0.05)


async def test_job_runs_to_completion_with_recordings(emulator_factory) -> None:
    emu = await emulator_factory(simulation_step_seconds=0.1)
    async with httpx.AsyncClient(base_url=emu.url, timeout=30) as http:
        token = await get_token(http)
        scripts = [
            SCRIPT,
            [
                {"timestamp_ms": 0, "start": {"prompt": "x", "image": photo_data_url((0, 200, 0))}},
                {"timestamp_ms": 500, "end": {}},
            ],
        ]
        submitted = await http.post(
            "/simulation-jobs",
            json={"scripts": scripts, "portrait": False, "output_video": True},
            headers=bearer(token),
        )
        assert submitted.status_code == 200
        job = submitted.json()
        assert job["status"] == "pending" and job["priority"] and job["created_at"]
        done = await wait_for_status(http, token, job["job_id"], "completed")
        assert done["dispatched_at"] and done["started_at"] and done["completed_at"]
        assert [s["script_index"] for s in done["streams"]] == [0, 1]
        first = done["streams"][0]
        assert first["duration_seconds"] == 2.0
        with av.open(io.BytesIO((await http.get(first["video_url"])).content), "r") as container:
            frames = list(container.decode(video=0))
        assert len(frames) == first["frame_count"] and (
            frames[0].width,
            frames[0].height,
        ) == emu.config.frame_size(False)
        listed = (
            await http.get("/simulation-jobs", params={"status": "completed"}, headers=bearer(token))
        ).json()
        assert listed["total"] == 1 and listed["jobs"][0]["job_id"] == job["job_id"]
        assert (await http.get("/simulation-jobs?active=true", headers=bearer(token))).json()["total"] == 0


async def test_validation_and_privileges(emulator_factory) -> None:
    emu = await emulator_factory(api_keys={"a": ApiKey(), "vip": ApiKey(privileged=True)})
    async with httpx.AsyncClient(base_url=emu.url) as http:
        token = await get_token(http, "a")
        for body in (
            {},
            {"script": SCRIPT, "script_url": "http://x"},
            {"script": SCRIPT, "scripts": [SCRIPT]},
        ):
            response = await http.post("/simulation-jobs", json=body, headers=bearer(token))
            assert response.status_code == 422
            assert "Exactly one of" in response.json()["detail"]
        bad_scripts = [
            [{"timestamp_ms": 0, "interact": {"prompt": "x"}}, {"timestamp_ms": 10, "end": {}}],
            [
                {"timestamp_ms": 0, "start": {"prompt": "x"}},
                {"timestamp_ms": 10, "interact": {"prompt": "y"}},
            ],
            [{"timestamp_ms": 0, "start": {}}, {"timestamp_ms": 10, "end": {}}],
            [
                {"timestamp_ms": 0, "start": {"prompt": "x"}},
                {"timestamp_ms": 20, "interact": {"prompt": "y"}},
                {"timestamp_ms": 10, "end": {}},
            ],
            # longer than a stream may last (150 s by default): would render for days
            [{"timestamp_ms": 0, "start": {"prompt": "x"}}, {"timestamp_ms": 10**9, "end": {}}],
        ]
        for script in bad_scripts:
            assert (
                await http.post("/simulation-jobs", json={"script": script}, headers=bearer(token))
            ).status_code == 422
        bypass = {"script": SCRIPT, "bypass_vlm_expansion": True}
        assert (await http.post("/simulation-jobs", json=bypass, headers=bearer(token))).status_code == 403
        vip = await get_token(http, "vip")
        assert (await http.post("/simulation-jobs", json=bypass, headers=bearer(vip))).status_code == 200
        assert (await http.post("/simulation-jobs", json={"script": SCRIPT})).status_code == 401


async def test_queue_cap_cancel_rules_and_ownership(emulator_factory) -> None:
    emu = await emulator_factory(
        simulation_step_seconds=30, simulation_queue_cap=2, api_keys={"a": ApiKey(), "b": ApiKey()}
    )
    async with httpx.AsyncClient(base_url=emu.url) as http:
        token, other = await get_token(http, "a"), await get_token(http, "b")
        jobs = [
            (await http.post("/simulation-jobs", json={"script": SCRIPT}, headers=bearer(token))).json()
            for _ in range(2)
        ]
        assert (
            await http.post("/simulation-jobs", json={"script": SCRIPT}, headers=bearer(token))
        ).status_code == 429
        job_id = jobs[0]["job_id"]
        assert (await http.get(f"/simulation-jobs/{job_id}", headers=bearer(other))).status_code == 403
        assert (await http.delete(f"/simulation-jobs/{job_id}", headers=bearer(other))).status_code == 403
        assert (await http.get("/simulation-jobs/nope", headers=bearer(token))).status_code == 404
        cancelled = await http.delete(f"/simulation-jobs/{job_id}", headers=bearer(token))
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = await http.delete(f"/simulation-jobs/{job_id}", headers=bearer(token))
        assert again.status_code == 400 and "cancel" in again.json()["detail"].lower()
        active = (await http.get("/simulation-jobs", params={"active": "true"}, headers=bearer(token))).json()
        assert [j["job_id"] for j in active["jobs"]] == [jobs[1]["job_id"]]
        page = (
            await http.get("/simulation-jobs", params={"limit": 1, "offset": 1}, headers=bearer(token))
        ).json()
        assert page["total"] == 2 and page["limit"] == 1 and len(page["jobs"]) == 1
        assert (await http.get("/simulation-jobs?limit=0", headers=bearer(token))).status_code == 422


async def test_processing_job_cannot_be_cancelled_and_script_url_fails(emulator_factory) -> None:
    emu = await emulator_factory(simulation_step_seconds=0.05)
    async with httpx.AsyncClient(base_url=emu.url, timeout=30) as http:
        token = await get_token(http)
        job = (await http.post("/simulation-jobs", json={"script": SCRIPT}, headers=bearer(token))).json()
        await wait_for_status(http, token, job["job_id"], "completed")
        assert (
            await http.delete(f"/simulation-jobs/{job['job_id']}", headers=bearer(token))
        ).status_code == 400
        remote = (
            await http.post(
                "/simulation-jobs",
                json={"script_url": "https://example.invalid/s.json"},
                headers=bearer(token),
            )
        ).json()
        failed = await wait_for_status(http, token, remote["job_id"], "failed")
        assert "script_url" in failed["error_message"]
