"""Kept photos: one per member and server, a private file in the data folder, gone when expired or forgotten
(the forget of the whole store included)."""

from __future__ import annotations

import stat
from pathlib import Path

from bot.store import Store
from tests.store.conftest import FakeClock

JPEG = b"\xff\xd8\xff\xe0 a checked photo \xff\xd9"


def files(store: Store) -> list[str]:
    return sorted(p.name for p in store.photos.folder.iterdir()) if store.photos.folder.exists() else []


async def test_a_kept_photo_is_a_private_file_in_the_data_folder(store: Store, tmp_path: Path) -> None:
    await store.photos.keep(1, 10, JPEG, "sha-a", hours=24)
    kept = await store.photos.get(1, 10)
    assert kept is not None and kept.data == JPEG and kept.upload_sha256 == "sha-a"
    assert store.photos.folder == tmp_path / "photos" and files(store) == ["1-10.jpg"]
    assert stat.S_IMODE((store.photos.folder / "1-10.jpg").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.photos.folder.stat().st_mode) == 0o700
    assert await store.photos.get(2, 10) is None  # another server: nothing kept there


async def test_the_next_photo_replaces_the_last(store: Store) -> None:
    await store.photos.keep(1, 10, JPEG, "sha-a", hours=24)
    await store.photos.keep(1, 10, b"\xff\xd8 newer \xff\xd9", "sha-b", hours=24)
    kept = await store.photos.get(1, 10)
    assert kept is not None and kept.upload_sha256 == "sha-b" and kept.data.startswith(b"\xff\xd8 newer")
    assert files(store) == ["1-10.jpg"]


async def test_an_expired_photo_is_not_used_and_the_sweep_removes_it(store: Store, clock: FakeClock) -> None:
    await store.photos.keep(1, 10, JPEG, "sha-a", hours=1)
    await store.photos.keep(1, 11, JPEG, "sha-b", hours=48)
    clock.now += 3601
    assert await store.photos.get(1, 10) is None
    assert files(store) == ["1-11.jpg"]  # reading an expired photo removes it
    await store.photos.keep(1, 12, JPEG, "sha-c", hours=1)
    clock.now += 3601
    assert await store.photos.sweep() == 1
    assert files(store) == ["1-11.jpg"]


async def test_zero_hours_keeps_nothing_and_drops_the_last(store: Store) -> None:
    await store.photos.keep(1, 10, JPEG, "sha-a", hours=24)
    await store.photos.keep(1, 10, JPEG, "sha-b", hours=0)
    assert await store.photos.get(1, 10) is None and files(store) == []


async def test_a_file_removed_by_hand_means_no_photo(store: Store) -> None:
    await store.photos.keep(1, 10, JPEG, "sha-a", hours=24)
    (store.photos.folder / "1-10.jpg").unlink()
    assert await store.photos.get(1, 10) is None
    assert await store.photos.drop(1, 10) == 0  # the row went with it


async def test_forget_removes_the_members_photos_in_every_server(store: Store) -> None:
    await store.photos.keep(1, 10, JPEG, "sha-a", hours=24)
    await store.photos.keep(2, 10, JPEG, "sha-a", hours=24)
    await store.photos.keep(1, 11, JPEG, "sha-b", hours=24)
    result = await store.forget(10)
    assert result.photos_deleted == 2
    assert files(store) == ["1-11.jpg"]
