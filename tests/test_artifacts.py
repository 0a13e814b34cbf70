"""The artifact service: ADK's ``BaseArtifactService`` contract over both stores.

Each contract test runs against ADK's ``InMemoryArtifactService`` (the
reference) and ``FileArtifactService`` too; where a service differs, its entry
is a strict xfail naming how, so a change on either side shows. The storage tests (dedup,
chunks, size limit, concurrency, blob removal) run on the stores alone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.adk.artifacts import artifact_util
from google.adk.artifacts.base_artifact_service import ArtifactVersion
from google.adk.artifacts.file_artifact_service import FileArtifactService
from google.adk.artifacts.in_memory_artifact_service import InMemoryArtifactService
from google.adk.errors.input_validation_error import InputValidationError
from google.genai import types

from conftest import pool_config
from sqlspec import ImproperConfigurationError, InvalidValueError
from sqlspec.adapters.psycopg import PsycopgAsyncConfig, PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import (
    PsycopgAsyncADKArtifactStore,
    PsycopgAsyncADKStore,
    PsycopgSyncADKArtifactStore,
)
from sqlspec.extensions.adk import (
    SQLSpecArtifactService,
    SQLSpecSessionService,
    SyncSQLSpecArtifactService,
)

APP = "art-app"
USER = "art-user"
SESSION = "s1"
MIB = 1 << 20


SERVICES = ["async", "sync", "memory", "file"]


def references_differ(**differences: tuple[str, type[BaseException]]) -> pytest.MarkDecorator:
    """Parametrize ``artifacts``; each named reference ("memory", "file") is a strict
    xfail, raising the given exception, for the given reason."""
    return pytest.mark.parametrize(
        "artifacts",
        [
            pytest.param(
                kind,
                marks=pytest.mark.xfail(
                    strict=True, raises=differences[kind][1], reason=differences[kind][0]
                ),
            )
            if kind in differences
            else kind
            for kind in SERVICES
        ],
        indirect=True,
    )


async def artifact_service(kind: str, dsn: str, **options: Any) -> AsyncIterator[Any]:
    """An artifact service over a fresh ``kind`` ("async" or "sync") store, closed after."""
    if kind == "async":
        async_store = PsycopgAsyncADKArtifactStore(
            PsycopgAsyncConfig(connection_config=pool_config(dsn)), **options
        )
        await async_store.create_tables()
        async with SQLSpecArtifactService(async_store) as service:
            yield service
        return
    sync_store = PsycopgSyncADKArtifactStore(
        PsycopgSyncConfig(connection_config=pool_config(dsn)), **options
    )
    sync_store.create_tables()
    yield SQLSpecArtifactService(sync_store)
    sync_store.close()


@pytest.fixture(params=SERVICES)
async def artifacts(request: pytest.FixtureRequest, dsn: str, tmp_path: Path) -> AsyncIterator[Any]:
    """The artifact service under test, and ADK's in-memory and file ones as references."""
    if request.param == "memory":
        yield InMemoryArtifactService()
        return
    if request.param == "file":
        yield FileArtifactService(tmp_path)
        return
    async for service in artifact_service(request.param, dsn):
        yield service


@pytest.fixture(params=["async", "sync"])
async def db_artifacts(request: pytest.FixtureRequest, dsn: str) -> AsyncIterator[Any]:
    """The artifact service over each of the two stores."""
    async for service in artifact_service(request.param, dsn):
        yield service


async def save(service: Any, filename: str, part: Any, **kw: Any) -> int:
    kw.setdefault("session_id", SESSION)
    version: int = await service.save_artifact(
        app_name=APP, user_id=USER, filename=filename, artifact=part, **kw
    )
    return version


async def load(service: Any, filename: str, **kw: Any) -> types.Part | None:
    kw.setdefault("session_id", SESSION)
    part: types.Part | None = await service.load_artifact(
        app_name=APP, user_id=USER, filename=filename, **kw
    )
    return part


def blob(data: bytes, mime_type: str = "application/x-test") -> types.Part:
    return types.Part(inline_data=types.Blob(mime_type=mime_type, data=data))


async def blob_rows(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT count(*) FROM adk_artifact_blobs")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def chunk_rows(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT count(*) FROM adk_artifact_chunks")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


# ------------------------------------------------------------------ the contract


async def test_versions_count_from_zero_and_load_latest_or_one(artifacts: Any) -> None:
    assert await save(artifacts, "a.txt", types.Part(text="one")) == 0
    assert await save(artifacts, "a.txt", types.Part(text="two")) == 1
    assert await save(artifacts, "a.txt", types.Part(text="three")) == 2
    assert await load(artifacts, "a.txt") == types.Part(text="three")
    assert await load(artifacts, "a.txt", version=0) == types.Part(text="one")
    assert await load(artifacts, "a.txt", version=1) == types.Part(text="two")
    assert await load(artifacts, "a.txt", version=3) is None
    assert await load(artifacts, "a.txt", version=-1) is None
    assert await load(artifacts, "absent.txt") is None


@pytest.mark.parametrize(
    "data", [b"", b"\xff\xfe\x00\x80 not utf-8", bytes(range(256))], ids=["empty", "bin", "all"]
)
async def test_bytes_round_trip(artifacts: Any, data: bytes) -> None:
    part = blob(data, "application/octet-stream" if data else "image/png")
    await save(artifacts, "b.bin", part)
    assert await load(artifacts, "b.bin") == part


async def test_rewind_tombstone_and_empty_part_load_as_absent(artifacts: Any) -> None:
    await save(artifacts, "t.bin", blob(b"data"))
    await save(artifacts, "t.bin", artifact_util._new_rewind_tombstone())
    assert await load(artifacts, "t.bin") is None
    assert await load(artifacts, "t.bin", version=0) == blob(b"data")


@references_differ(
    file=("the file service cannot write text holding a lone surrogate", UnicodeEncodeError)
)
async def test_text_and_other_part_fields_round_trip(artifacts: Any) -> None:
    part = types.Part(text="héllo \x00 \ud800 wörld", thought=True, thought_signature=b"\x01\x02")
    await save(artifacts, "t.txt", part)
    assert await load(artifacts, "t.txt") == part


async def test_a_dict_artifact_is_read_as_a_part(artifacts: Any) -> None:
    await save(artifacts, "d.txt", {"inlineData": {"mimeType": "text/csv", "data": "YSxi"}})
    assert await load(artifacts, "d.txt") == blob(b"a,b", "text/csv")


@references_differ(file=("the file service stores inline data and text only", InputValidationError))
async def test_file_data_reference_round_trips(artifacts: Any) -> None:
    part = types.Part(
        file_data=types.FileData(file_uri="gs://b/x.pdf", mime_type="application/pdf")
    )
    await save(artifacts, "f.pdf", part)
    assert await load(artifacts, "f.pdf") == part
    info = await artifacts.get_artifact_version(
        app_name=APP, user_id=USER, filename="f.pdf", session_id=SESSION
    )
    assert info.mime_type == "application/pdf"


@references_differ(file=("the file service words the refusal differently", AssertionError))
async def test_an_empty_part_is_refused(artifacts: Any) -> None:
    with pytest.raises(InputValidationError, match="Not supported"):
        await save(artifacts, "e", types.Part())
    assert await artifacts.list_artifact_keys(app_name=APP, user_id=USER, session_id=SESSION) == []


@references_differ(file=("the file service stores inline data and text only", InputValidationError))
async def test_artifact_references_are_followed_in_scope(artifacts: Any) -> None:
    await save(artifacts, "target.txt", types.Part(text="v0"))
    await save(artifacts, "target.txt", types.Part(text="v1"))
    uri = artifact_util.get_artifact_uri(APP, USER, "target.txt", 0, session_id=SESSION)
    ref = types.Part(file_data=types.FileData(file_uri=uri))
    await save(artifacts, "ref", ref)
    assert await load(artifacts, "ref") == types.Part(text="v0")
    info = await artifacts.get_artifact_version(
        app_name=APP, user_id=USER, filename="ref", session_id=SESSION
    )
    assert info.mime_type is None
    user_uri = artifact_util.get_artifact_uri(APP, USER, "user:u", 0)
    await save(artifacts, "user:u", types.Part(text="mine"))
    await save(artifacts, "uref", types.Part(file_data=types.FileData(file_uri=user_uri)))
    assert await load(artifacts, "uref") == types.Part(text="mine")
    # Out of scope, or not an artifact URI.
    other = artifact_util.get_artifact_uri(APP, "someone", "x", 0)
    with pytest.raises(InputValidationError, match="same app and user"):
        await save(artifacts, "bad", types.Part(file_data=types.FileData(file_uri=other)))
    with pytest.raises(InputValidationError, match="Invalid artifact reference"):
        await save(
            artifacts, "bad", types.Part(file_data=types.FileData(file_uri="artifact://nope"))
        )
    other_session = artifact_util.get_artifact_uri(APP, USER, "x", 0, session_id="s2")
    with pytest.raises(InputValidationError, match="same session"):
        await save(artifacts, "bad", types.Part(file_data=types.FileData(file_uri=other_session)))
    # A reference to a missing version loads as absent.
    missing = artifact_util.get_artifact_uri(APP, USER, "target.txt", 9, session_id=SESSION)
    await save(artifacts, "dangling", types.Part(file_data=types.FileData(file_uri=missing)))
    assert await load(artifacts, "dangling") is None


@references_differ(file=("the file service stores inline data and text only", InputValidationError))
async def test_a_reference_cycle_stops_at_adk_depth(artifacts: Any) -> None:
    uri = artifact_util.get_artifact_uri(APP, USER, "loop", 0, session_id=SESSION)
    await save(artifacts, "loop", types.Part(file_data=types.FileData(file_uri=uri)))
    with pytest.raises(InputValidationError, match="maximum recursion depth"):
        await load(artifacts, "loop")


async def test_user_files_are_shared_across_sessions(artifacts: Any) -> None:
    await save(artifacts, "user:profile", types.Part(text="p"), session_id="s1")
    await save(artifacts, "user:profile", types.Part(text="q"), session_id=None)
    assert await load(artifacts, "user:profile", session_id="s2") == types.Part(text="q")
    assert await load(artifacts, "user:profile", session_id=None) == types.Part(text="q")
    versions = await artifacts.list_versions(app_name=APP, user_id=USER, filename="user:profile")
    assert versions == [0, 1]
    assert await load(artifacts, "user:profile", session_id=None, version=0) == types.Part(text="p")


@references_differ(
    file=("the file service keeps a session file without a session id", pytest.fail.Exception)
)
async def test_session_files_need_a_session_and_stay_in_it(artifacts: Any) -> None:
    with pytest.raises(InputValidationError, match="Session ID must be provided"):
        await save(artifacts, "s.txt", types.Part(text="x"), session_id=None)
    with pytest.raises(InputValidationError, match="Session ID must be provided"):
        await load(artifacts, "s.txt", session_id=None)
    await save(artifacts, "s.txt", types.Part(text="x"), session_id="s1")
    assert await load(artifacts, "s.txt", session_id="s2") is None
    assert await load(artifacts, "s.txt", session_id="s1") == types.Part(text="x")
    # Another user or app sees nothing.
    assert (
        await artifacts.load_artifact(
            app_name=APP, user_id="other", filename="s.txt", session_id="s1"
        )
        is None
    )
    assert (
        await artifacts.load_artifact(
            app_name="other", user_id=USER, filename="s.txt", session_id="s1"
        )
        is None
    )


async def test_list_artifact_keys_sorted_with_the_users_files(artifacts: Any) -> None:
    for name, session in [("b.txt", "s1"), ("a.txt", "s1"), ("c.txt", "s2"), ("user:z", None)]:
        await save(artifacts, name, types.Part(text=name), session_id=session)
    await save(artifacts, "a.txt", types.Part(text="again"), session_id="s1")
    keys = await artifacts.list_artifact_keys(app_name=APP, user_id=USER, session_id="s1")
    assert keys == ["a.txt", "b.txt", "user:z"]
    assert await artifacts.list_artifact_keys(app_name=APP, user_id=USER, session_id="s2") == [
        "c.txt",
        "user:z",
    ]
    assert await artifacts.list_artifact_keys(app_name=APP, user_id=USER) == ["user:z"]
    assert await artifacts.list_artifact_keys(app_name=APP, user_id="nobody") == []


async def test_delete_removes_every_version_and_numbering_restarts(artifacts: Any) -> None:
    await save(artifacts, "d.txt", types.Part(text="1"))
    await save(artifacts, "d.txt", types.Part(text="2"))
    await save(artifacts, "keep.txt", types.Part(text="k"))
    await artifacts.delete_artifact(
        app_name=APP, user_id=USER, filename="d.txt", session_id=SESSION
    )
    assert await load(artifacts, "d.txt") is None
    assert await load(artifacts, "d.txt", version=0) is None
    assert (
        await artifacts.list_versions(
            app_name=APP, user_id=USER, filename="d.txt", session_id=SESSION
        )
        == []
    )
    assert (
        await artifacts.list_artifact_versions(
            app_name=APP, user_id=USER, filename="d.txt", session_id=SESSION
        )
        == []
    )
    assert await artifacts.list_artifact_keys(app_name=APP, user_id=USER, session_id=SESSION) == [
        "keep.txt"
    ]
    assert await save(artifacts, "d.txt", types.Part(text="3")) == 0
    # Deleting what is not there is no error.
    await artifacts.delete_artifact(app_name=APP, user_id=USER, filename="nope", session_id=SESSION)
    await artifacts.delete_artifact(app_name=APP, user_id=USER, filename="user:nope")


@references_differ(file=("the file service records no mime type for text", AssertionError))
async def test_version_metadata(artifacts: Any) -> None:
    await save(artifacts, "m", types.Part(text="t"), custom_metadata={"k": [1, "x"], "f": 1.5})
    await save(artifacts, "m", blob(b"\x89PNG", "image/png"))
    infos = await artifacts.list_artifact_versions(
        app_name=APP, user_id=USER, filename="m", session_id=SESSION
    )
    assert [i.version for i in infos] == [0, 1]
    assert [i.mime_type for i in infos] == ["text/plain", "image/png"]
    assert infos[0].custom_metadata == {"k": [1, "x"], "f": 1.5}
    assert infos[1].custom_metadata == {}
    assert infos[0].create_time <= infos[1].create_time
    assert all(isinstance(i, ArtifactVersion) for i in infos)
    assert len({i.canonical_uri for i in infos}) == 2
    latest = await artifacts.get_artifact_version(
        app_name=APP, user_id=USER, filename="m", session_id=SESSION
    )
    assert latest == infos[1]
    first = await artifacts.get_artifact_version(
        app_name=APP, user_id=USER, filename="m", session_id=SESSION, version=0
    )
    assert first == infos[0]
    for absent in (2, -1):
        assert (
            await artifacts.get_artifact_version(
                app_name=APP, user_id=USER, filename="m", session_id=SESSION, version=absent
            )
            is None
        )
    assert (
        await artifacts.get_artifact_version(
            app_name=APP, user_id=USER, filename="none", session_id=SESSION
        )
        is None
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("app_name", "../etc"),
        ("user_id", ""),
        ("user_id", "/abs"),
        ("session_id", "a/../b"),
        ("session_id", "C:x"),
        ("app_name", "a/apps/b"),
    ],
)
async def test_path_segments_are_checked_as_adk_does(
    artifacts: Any, field: str, value: str
) -> None:
    ids = {"app_name": APP, "user_id": USER, "session_id": SESSION, field: value}
    with pytest.raises(InputValidationError):
        await artifacts.save_artifact(filename="x", artifact=types.Part(text="x"), **ids)
    with pytest.raises(InputValidationError):
        await artifacts.load_artifact(filename="x", **ids)
    with pytest.raises(InputValidationError):
        await artifacts.list_versions(filename="x", **ids)
    with pytest.raises(InputValidationError):
        await artifacts.list_artifact_keys(**ids)


@references_differ(
    file=('the file service does not reserve the session id "user"', pytest.fail.Exception)
)
async def test_a_session_named_user_is_refused_on_save(artifacts: Any) -> None:
    with pytest.raises(InputValidationError, match="reserved"):
        await save(artifacts, "x", types.Part(text="x"), session_id="user")


@references_differ(
    memory=("the in-memory service keeps any Python object as metadata", pytest.fail.Exception),
    file=("the file service lets pydantic's ValueError through", ValueError),
)
async def test_metadata_that_is_not_json_is_refused(artifacts: Any) -> None:
    with pytest.raises(InvalidValueError):
        await save(artifacts, "x", types.Part(text="x"), custom_metadata={"o": object()})


@references_differ(
    memory=("the in-memory service keeps any filename", pytest.fail.Exception),
    file=("the file service lets the file system's ValueError through", ValueError),
)
async def test_a_filename_with_nul_is_refused(artifacts: Any) -> None:
    with pytest.raises(InvalidValueError):
        await save(artifacts, "a\x00b", types.Part(text="x"))


# ------------------------------------------------------------------ storage


async def test_json_nested_too_deep_to_read_back_is_refused(db_artifacts: Any) -> None:
    # Deeper than pydantic reads (~200 levels), within what it writes (~250).
    deep: Any = 0
    for _ in range(230):
        deep = [deep]
    with pytest.raises(InvalidValueError, match="nested too deeply"):
        await save(db_artifacts, "m", types.Part(text="x"), custom_metadata={"d": deep})
    call = types.FunctionCall(name="f", args={"d": deep})
    with pytest.raises(InvalidValueError, match="nested too deeply"):
        await save(db_artifacts, "p", types.Part(text="x", function_call=call))
    assert (
        await db_artifacts.list_artifact_keys(app_name=APP, user_id=USER, session_id=SESSION) == []
    )


async def test_canonical_uri_is_a_sqlspec_uri(db_artifacts: Any) -> None:
    await save(db_artifacts, "a b/c.txt", types.Part(text="x"))
    await save(db_artifacts, "user:u", types.Part(text="x"))
    info = await db_artifacts.get_artifact_version(
        app_name=APP, user_id=USER, filename="a b/c.txt", session_id=SESSION
    )
    assert info.canonical_uri == (
        "sqlspec://adk_artifacts/apps/art-app/users/art-user/sessions/s1"
        "/artifacts/a%20b%2Fc.txt/versions/0"
    )
    info = await db_artifacts.get_artifact_version(app_name=APP, user_id=USER, filename="user:u")
    assert info.canonical_uri == (
        "sqlspec://adk_artifacts/apps/art-app/users/art-user/artifacts/user%3Au/versions/0"
    )


async def test_three_mib_spans_chunks(db_artifacts: Any, dsn: str) -> None:
    data = os.urandom(3 * MIB + 17)
    await save(db_artifacts, "big.bin", blob(data))
    assert await load(db_artifacts, "big.bin") == blob(data)
    assert await chunk_rows(dsn) == 4


async def test_identical_bytes_share_one_blob(db_artifacts: Any, dsn: str) -> None:
    data = os.urandom(2 * MIB)
    await save(db_artifacts, "a.bin", blob(data))
    await save(db_artifacts, "a.bin", blob(data, "other/type"))
    await save(db_artifacts, "user:b.bin", blob(data))
    await save(db_artifacts, "t.txt", types.Part(text="same"))
    await save(db_artifacts, "t2.txt", blob(b"same"))
    assert await blob_rows(dsn) == 2
    assert await chunk_rows(dsn) == 3
    assert await load(db_artifacts, "a.bin", version=1) == blob(data, "other/type")


async def test_delete_removes_orphan_blobs_and_keeps_shared_ones(
    db_artifacts: Any, dsn: str
) -> None:
    await save(db_artifacts, "a", blob(b"shared"))
    await save(db_artifacts, "a", blob(b"only-a"))
    await save(db_artifacts, "a", blob(b"only-a"))
    await save(db_artifacts, "b", blob(b"shared"))
    assert await blob_rows(dsn) == 2
    await db_artifacts.delete_artifact(app_name=APP, user_id=USER, filename="a", session_id=SESSION)
    assert await blob_rows(dsn) == 1
    assert await load(db_artifacts, "b") == blob(b"shared")
    await db_artifacts.delete_artifact(app_name=APP, user_id=USER, filename="b", session_id=SESSION)
    assert await blob_rows(dsn) == 0
    assert await chunk_rows(dsn) == 0


async def test_too_large_is_refused_before_anything_is_written(dsn: str) -> None:
    async for service in artifact_service("async", dsn, max_artifact_bytes=1000):
        await save(service, "ok", blob(b"x" * 1000))
        with pytest.raises(InvalidValueError, match="max_artifact_bytes"):
            await save(service, "big", blob(b"x" * 1001))
        with pytest.raises(InvalidValueError, match="max_artifact_bytes"):
            await save(service, "ok", types.Part(text="é" * 501))
        assert await service.list_artifact_keys(app_name=APP, user_id=USER, session_id=SESSION) == [
            "ok"
        ]
        assert await blob_rows(dsn) == 1
        assert await service.list_versions(
            app_name=APP, user_id=USER, filename="ok", session_id=SESSION
        ) == [0]


def test_max_artifact_bytes_is_checked(sync_config: PsycopgSyncConfig) -> None:
    for bad in (-1, True, "1", 10**12):
        with pytest.raises(ImproperConfigurationError, match="max_artifact_bytes"):
            PsycopgSyncADKArtifactStore(sync_config, max_artifact_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(ImproperConfigurationError, match="four names"):
        PsycopgSyncADKArtifactStore(sync_config, blob_table="adk_artifacts")


async def test_concurrent_saves_take_consecutive_versions(db_artifacts: Any) -> None:
    versions = await asyncio.gather(
        *(save(db_artifacts, "race", blob(str(i).encode())) for i in range(20))
    )
    assert sorted(versions) == list(range(20))
    assert await db_artifacts.list_versions(
        app_name=APP, user_id=USER, filename="race", session_id=SESSION
    ) == list(range(20))
    for i, version in enumerate(versions):
        assert await load(db_artifacts, "race", version=version) == blob(str(i).encode())


async def test_concurrent_saves_of_the_same_bytes_share_one_blob(
    db_artifacts: Any, dsn: str
) -> None:
    data = os.urandom(1000)
    versions = await asyncio.gather(*(save(db_artifacts, f"f{i}", blob(data)) for i in range(10)))
    assert versions == [0] * 10
    assert await blob_rows(dsn) == 1


async def test_the_sync_service_blocks_outside_a_loop(sync_config: PsycopgSyncConfig) -> None:
    store = PsycopgSyncADKArtifactStore(sync_config)
    service = SQLSpecArtifactService(store)
    assert isinstance(service, SyncSQLSpecArtifactService)

    def work() -> Any:
        store.create_tables()
        version = service.save_artifact(
            app_name=APP, user_id=USER, filename="user:s", artifact=types.Part(text="s")
        )
        return version, service.load_artifact(app_name=APP, user_id=USER, filename="user:s")

    assert await asyncio.to_thread(work) == (0, types.Part(text="s"))


async def test_create_tables_is_idempotent(dsn: str) -> None:
    store = PsycopgAsyncADKArtifactStore(PsycopgAsyncConfig(connection_config=pool_config(dsn)))
    try:
        await store.create_tables()
        await store.create_tables()
        assert await store.schema_version() == 2
        assert await store.migrate(repair=True) == (2, 2)
    finally:
        await store.close()


async def chunk_column(dsn: str) -> tuple[str, str]:
    """How the chunk bytes are kept: (compression, storage)."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT attcompression::text, attstorage::text FROM pg_attribute"
            " WHERE attrelid = 'adk_artifact_chunks'::regclass AND attname = 'data'"
        )
        row = await cur.fetchone()
        assert row is not None
        return row[0], row[1]


async def expected_chunk_column(dsn: str) -> tuple[str, str]:
    """LZ4 where the server has it, else stored uncompressed (storage external)."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        row = await cur.fetchone()
        assert row is not None
        return ("l", "x") if row[0] else ("", "e")


async def test_chunks_skip_pglz_also_after_an_upgrade_from_version_1(dsn: str) -> None:
    store = PsycopgAsyncADKArtifactStore(PsycopgAsyncConfig(connection_config=pool_config(dsn)))
    try:
        await store.create_tables()
        expected = await expected_chunk_column(dsn)
        assert await chunk_column(dsn) == expected
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(
                "ALTER TABLE adk_artifact_chunks ALTER COLUMN data SET COMPRESSION DEFAULT,"
                " ALTER COLUMN data SET STORAGE EXTENDED"
            )
            await conn.execute(
                "UPDATE sqlspec_adk_schema SET version = 1 WHERE session_table = 'adk_artifacts'"
            )
        assert await chunk_column(dsn) == ("", "x")
        assert await store.migrate() == (1, 2)
        assert await chunk_column(dsn) == expected
        await save(SQLSpecArtifactService(store), "user:x", blob(b"\x00" * 3 * MIB))
    finally:
        await store.close()


async def test_fifty_mb_round_trips_through_the_service(db_artifacts: Any, dsn: str) -> None:
    data = os.urandom(50 * MIB)
    assert await save(db_artifacts, "big.bin", blob(data)) == 0
    assert await load(db_artifacts, "big.bin") == blob(data)
    assert await chunk_rows(dsn) == 50


async def test_deleting_a_session_leaves_its_artifacts_and_the_users(dsn: str) -> None:
    """The session store knows no artifacts: they stay until ``delete_artifact``."""
    config = PsycopgAsyncConfig(connection_config=pool_config(dsn))
    session_store = PsycopgAsyncADKStore(config)
    await session_store.create_tables()
    sessions = SQLSpecSessionService(session_store)
    store = PsycopgAsyncADKArtifactStore(config)
    await store.create_tables()
    try:
        artifacts = SQLSpecArtifactService(store)
        session = await sessions.create_session(app_name=APP, user_id=USER)
        await save(artifacts, "notes.txt", types.Part(text="in the session"), session_id=session.id)
        await save(artifacts, "user:profile", types.Part(text="the user's"), session_id=session.id)
        await sessions.delete_session(app_name=APP, user_id=USER, session_id=session.id)
        assert await load(artifacts, "notes.txt", session_id=session.id) == types.Part(
            text="in the session"
        )
        assert await load(artifacts, "user:profile", session_id=None) == types.Part(
            text="the user's"
        )
        await artifacts.delete_artifact(
            app_name=APP, user_id=USER, filename="notes.txt", session_id=session.id
        )
        assert await load(artifacts, "notes.txt", session_id=session.id) is None
    finally:
        await config.close()


async def test_saving_leaves_the_callers_part_as_it_was(artifacts: Any) -> None:
    part = blob(b"bytes")
    text = types.Part(text="words")
    await save(artifacts, "b", part)
    await save(artifacts, "t", text)
    assert part == blob(b"bytes")
    assert text == types.Part(text="words")
