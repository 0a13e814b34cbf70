"""Artifacts too big to hold: streamed saves and loads; the sweep of contents no version holds."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.genai import types
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from conftest import pool_config
from helpers import RoundTripCounter, trace_bursts
from sqlspec import InvalidValueError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKArtifactStore, PsycopgSyncADKArtifactStore
from sqlspec.extensions.adk import SQLSpecArtifactService

APP, USER, SESSION = "app", "user", "s1"
MIB = 1 << 20
KEY: dict[str, Any] = {"app_name": APP, "user_id": USER, "session_id": SESSION}


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[PsycopgAsyncADKArtifactStore]:
    store = PsycopgAsyncADKArtifactStore(
        PsycopgAsyncConfig(connection_config=pool_config(dsn)), max_artifact_bytes=8 * MIB
    )
    await store.create_tables()
    yield store
    await store.close()


def blocks(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in blocks of ``size`` bytes, as a file read gives them."""
    return (data[i : i + size] for i in range(0, len(data), size))


async def read_back(
    store: PsycopgAsyncADKArtifactStore, filename: str, version: int | None = None
) -> tuple[types.Part, list[bytes]] | None:
    async with store.open_version(filename=filename, version=version, **KEY) as found:
        if found is None:
            return None
        return found.part, [chunk async for chunk in found.chunks]


async def count(dsn: str, table: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_a_streamed_save_reads_back_whole_through_the_service(
    store: PsycopgAsyncADKArtifactStore, dsn: str
) -> None:
    data = os.urandom(3 * MIB + 17)
    first = await store.save_stream(
        filename="big.bin",
        content=blocks(data, 300_001),
        mime_type="application/pdf",
        custom_metadata={"source": "upload"},
        **KEY,
    )
    assert first == 0
    service = SQLSpecArtifactService(store)
    again = await service.save_artifact(
        filename="big.bin", artifact=types.Part.from_bytes(data=data, mime_type="x/y"), **KEY
    )
    assert again == 1
    part = await service.load_artifact(filename="big.bin", version=0, **KEY)
    assert part == types.Part.from_bytes(data=data, mime_type="application/pdf")
    info = await service.get_artifact_version(filename="big.bin", version=0, **KEY)
    assert info is not None
    assert (info.mime_type, info.custom_metadata) == ("application/pdf", {"source": "upload"})
    # Both versions hold the same bytes: one content, in 1 MiB chunks.
    assert (await count(dsn, "adk_artifact_blobs"), await count(dsn, "adk_artifact_chunks")) == (
        1,
        4,
    )


async def test_a_version_is_read_chunk_by_chunk(store: PsycopgAsyncADKArtifactStore) -> None:
    data = os.urandom(2 * MIB + 5)
    await SQLSpecArtifactService(store).save_artifact(
        filename="f", artifact=types.Part.from_bytes(data=data, mime_type="image/png"), **KEY
    )
    found = await read_back(store, "f")
    assert found is not None
    part, chunks = found
    assert part == types.Part.from_bytes(data=b"", mime_type="image/png")
    assert [len(chunk) for chunk in chunks] == [MIB, MIB, 5]
    assert b"".join(chunks) == data
    assert await read_back(store, "f", version=1) is None
    assert await read_back(store, "missing") is None


async def test_text_and_empty_content_stream_as_they_are_stored(
    store: PsycopgAsyncADKArtifactStore,
) -> None:
    service = SQLSpecArtifactService(store)
    await service.save_artifact(filename="t", artifact=types.Part(text="héllo"), **KEY)
    await service.save_artifact(
        filename="e", artifact=types.Part.from_bytes(data=b"", mime_type="a/b"), **KEY
    )
    assert await read_back(store, "t") == (types.Part(text=""), ["héllo".encode()])
    assert await read_back(store, "e") == (types.Part.from_bytes(data=b"", mime_type="a/b"), [])
    await store.save_stream(filename="e", content=iter(()), mime_type="a/b", **KEY)
    assert await service.load_artifact(filename="e", version=1, **KEY) == types.Part.from_bytes(
        data=b"", mime_type="a/b"
    )


async def test_a_streamed_save_over_the_limit_or_failing_writes_nothing(
    store: PsycopgAsyncADKArtifactStore, dsn: str
) -> None:
    with pytest.raises(InvalidValueError, match="max_artifact_bytes"):
        await store.save_stream(
            filename="big", content=blocks(bytes(9 * MIB), MIB), mime_type="a/b", **KEY
        )

    def broken() -> Iterator[bytes]:
        yield bytes(2 * MIB)
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="went away"):
        await store.save_stream(filename="big", content=broken(), mime_type="a/b", **KEY)
    assert await store.list_keys(**KEY) == []
    assert await count(dsn, "adk_artifact_chunks") == 0


def test_the_sync_store_streams_too(dsn: str) -> None:
    store = PsycopgSyncADKArtifactStore(PsycopgSyncConfig(connection_config=pool_config(dsn)))
    try:
        store.create_tables()
        data = os.urandom(MIB + 1)
        assert store.save_stream(filename="f", content=[data], mime_type="a/b", **KEY) == 0
        with store.open_version(filename="f", **KEY) as found:
            assert found is not None
            assert found.part.inline_data is not None
            assert (found.part.inline_data.mime_type, found.size) == ("a/b", MIB + 1)
            assert b"".join(found.chunks) == data
    finally:
        store.close()


async def test_prune_removes_contents_no_version_holds(
    store: PsycopgAsyncADKArtifactStore, dsn: str
) -> None:
    service = SQLSpecArtifactService(store)
    for name, data in (("a", b"kept"), ("b", b"left behind"), ("c", b"kept")):
        await service.save_artifact(
            filename=name, artifact=types.Part.from_bytes(data=data, mime_type="a/b"), **KEY
        )
    # What two racing deletes can leave: a content whose versions are gone.
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute("DELETE FROM adk_artifacts WHERE filename IN ('b', 'c')")
    pruned = await store.prune_blobs()
    assert (pruned.blobs, pruned.bytes) == (1, len(b"left behind"))
    assert await count(dsn, "adk_artifact_blobs") == 1
    assert await service.load_artifact(filename="a", **KEY) == types.Part.from_bytes(
        data=b"kept", mime_type="a/b"
    )
    assert (await store.prune_blobs()).blobs == 0


async def test_racing_deletes_and_saves_lose_no_content_and_prune_leaves_none(
    store: PsycopgAsyncADKArtifactStore, dsn: str
) -> None:
    service = SQLSpecArtifactService(store)
    shared = types.Part.from_bytes(data=os.urandom(1000), mime_type="a/b")

    async def save(name: str) -> Any:
        return await service.save_artifact(filename=name, artifact=shared, **KEY)

    async def delete(name: str) -> None:
        await service.delete_artifact(filename=name, **KEY)

    for _ in range(5):
        await asyncio.gather(*(save(f"f{i}") for i in range(8)))
        await asyncio.gather(
            *(delete(f"f{i}") for i in range(6)), store.prune_blobs(), save("kept"), save("f7")
        )
        for name in ("kept", "f6", "f7"):
            assert await service.load_artifact(filename=name, **KEY) == shared
    await store.prune_blobs()
    assert await count(dsn, "adk_artifact_blobs") == 1


def test_the_readme_streaming_sample_runs(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    (sample,) = [
        block.split("```", 1)[0]
        for block in readme.split("```python\n")[1:]
        if "save_stream(" in block.split("```", 1)[0]
    ]
    # The sample's config names no server: libpq's environment names this one.
    for key, value in conninfo_to_dict(dsn).items():
        monkeypatch.setenv(f"PG{key.upper()}" if key != "dbname" else "PGDATABASE", str(value))
    monkeypatch.chdir(tmp_path)
    data = os.urandom(MIB * 2 + 3)
    (tmp_path / "scan.pdf").write_bytes(data)
    exec(compile(sample, "README.md", "exec"), {})
    assert (tmp_path / "copy.pdf").read_bytes() == data


def test_each_service_call_is_one_round_trip(dsn: str) -> None:
    config = PsycopgSyncConfig(connection_config=pool_config(dsn))
    store = PsycopgSyncADKArtifactStore(config)
    store.create_tables()
    counter = RoundTripCounter(config)
    counter.take_sync()
    service: Any = SQLSpecArtifactService(store)
    big = bytes(3 * MIB)
    try:
        calls: dict[str, Callable[[int], object]] = {
            "save (3 MiB)": lambda i: service.save_artifact(
                filename="f",
                artifact=types.Part.from_bytes(data=big + bytes([i]), mime_type="a/b"),
                **KEY,
            ),
            "load": lambda _: service.load_artifact(filename="f", **KEY),
            "list_artifact_keys": lambda _: service.list_artifact_keys(**KEY),
            "list_versions": lambda _: service.list_versions(filename="f", **KEY),
            "list_artifact_versions": lambda _: service.list_artifact_versions(filename="f", **KEY),
            "get_artifact_version": lambda _: service.get_artifact_version(filename="f", **KEY),
            "scope_versions": lambda _: store.scope_versions(**KEY),
        }
        for i in range(8):  # past psycopg's prepare threshold
            for name, call in calls.items():
                call(i)
                assert counter.take_sync() == 1, (name, trace_bursts(counter.last_trace))
        service.delete_artifact(filename="f", **KEY)
        assert counter.take_sync() == 1, counter.last_trace
    finally:
        config.close()
