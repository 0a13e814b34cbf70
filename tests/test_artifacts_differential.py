"""Differential, property-based: both artifact stores behave as ADK's ``InMemoryArtifactService``.

Hypothesis generates sequences of artifact calls (save of text or bytes with a
mime type and metadata, load of the latest or a numbered version, the key and
version listings, one version's metadata, delete) over session-scoped and
``user:`` files in two sessions and none, and runs each sequence against the
in-memory reference, the async store and the sync store. Every result and every
exception type must match. ``canonical_uri`` and ``create_time`` are each
service's own and are not compared.

Profiles: ``HYPOTHESIS_PROFILE=ci`` (default; fast, derandomized) or ``soak``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.adk.artifacts.in_memory_artifact_service import InMemoryArtifactService
from google.genai import types
from hypothesis import example, given
from hypothesis import strategies as st

from _hypothesis import SOAK, Harness, differential, store_pair
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKArtifactStore, PsycopgSyncADKArtifactStore
from sqlspec.extensions.adk import SQLSpecArtifactService

APP = "diff-app"
USER = "diff-user"
SESSIONS = ("s-1", "s-1", "s-2", None)
FILENAMES = ("a.txt", "a.txt", "dir/b.bin", "user:p.txt", "user:p.txt", "user:q")
#: Table names of the sync store, so the two stores share the scratch database.
SYNC_TABLES: dict[str, Any] = {
    "artifact_table": "diff_artifacts",
    "file_table": "diff_artifact_files",
    "blob_table": "diff_artifact_blobs",
    "chunk_table": "diff_artifact_chunks",
}
ALL_TABLES = (
    "adk_artifacts",
    "adk_artifact_files",
    "adk_artifact_blobs",
    "adk_artifact_chunks",
    *SYNC_TABLES.values(),
)

# ------------------------------------------------------------------ operations


@dataclass(frozen=True)
class Save:
    session: str | None
    filename: str
    part: types.Part
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class Load:
    session: str | None
    filename: str
    version: int | None


@dataclass(frozen=True)
class Keys:
    session: str | None


@dataclass(frozen=True)
class Versions:
    session: str | None
    filename: str


@dataclass(frozen=True)
class VersionInfos:
    session: str | None
    filename: str


@dataclass(frozen=True)
class VersionInfo:
    session: str | None
    filename: str
    version: int | None


@dataclass(frozen=True)
class Delete:
    session: str | None
    filename: str


Op = Save | Load | Keys | Versions | VersionInfos | VersionInfo | Delete

# ------------------------------------------------------------------ strategies

sessions = st.sampled_from(SESSIONS)
filenames = st.sampled_from(FILENAMES)
versions = st.sampled_from([None, None, 0, 1, 2, -1])
mime_types = st.sampled_from(["application/octet-stream", "image/png", "text/csv"])
parts = st.one_of(
    st.builds(lambda text: types.Part(text=text), st.text(max_size=20)),
    st.builds(
        lambda data, mime: types.Part(inline_data=types.Blob(data=data, mime_type=mime)),
        st.binary(max_size=64),
        mime_types,
    ),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
metadata = st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3)

#: Each kind of call, weighted by how often it is drawn (saves and loads most).
WEIGHTED_OPERATIONS: list[st.SearchStrategy[Any]] = [
    *[st.builds(Save, sessions, filenames, parts, metadata)] * 4,
    *[st.builds(Load, sessions, filenames, versions)] * 3,
    st.builds(Keys, sessions),
    st.builds(Versions, sessions, filenames),
    st.builds(VersionInfos, sessions, filenames),
    st.builds(VersionInfo, sessions, filenames, versions),
    st.builds(Delete, sessions, filenames),
]
operations: st.SearchStrategy[Op] = st.sampled_from(WEIGHTED_OPERATIONS).flatmap(lambda s: s)
programs = st.lists(operations, min_size=4, max_size=100 if SOAK else 30)

# ---------------------------------------------------------------------- model


def info_view(info: Any) -> Any:
    """What two services must agree on in an ``ArtifactVersion``."""
    if info is None:
        return None
    return (info.version, info.mime_type, info.custom_metadata)


async def run_op(service: Any, op: Op) -> tuple[str, Any]:
    """Run ``op`` on ``service``; return what a caller could observe of it."""
    ids = {"app_name": APP, "user_id": USER, "session_id": op.session}
    try:
        if isinstance(op, Save):
            version = await service.save_artifact(
                filename=op.filename,
                artifact=op.part.model_copy(deep=True),
                custom_metadata=op.metadata,
                **ids,
            )
            return "ok", version
        if isinstance(op, Load):
            part = await service.load_artifact(filename=op.filename, version=op.version, **ids)
            return "ok", part
        if isinstance(op, Keys):
            return "ok", await service.list_artifact_keys(**ids)
        if isinstance(op, Versions):
            return "ok", await service.list_versions(filename=op.filename, **ids)
        if isinstance(op, VersionInfos):
            infos = await service.list_artifact_versions(filename=op.filename, **ids)
            return "ok", [info_view(i) for i in infos]
        if isinstance(op, VersionInfo):
            info = await service.get_artifact_version(
                filename=op.filename, version=op.version, **ids
            )
            return "ok", info_view(info)
        await service.delete_artifact(filename=op.filename, **ids)
        return "ok", None
    except Exception as exc:
        return "raised", type(exc)


async def run_program(services: dict[str, Any], program: list[Op], outcomes: dict[str, int]) -> int:
    """Run ``program`` on every service, comparing each step; return the steps run."""
    labels = list(services)
    for step, op in enumerate(program):
        observed = [await run_op(services[label], op) for label in labels]
        reference = observed[0]
        for label, seen in zip(labels[1:], observed[1:], strict=True):
            assert seen == reference, (
                f"step {step} {op!r}: {label} differs from {labels[0]}\n"
                f"  {labels[0]}: {reference!r}\n  {label}: {seen!r}"
            )
        kind = type(op).__name__
        result = reference[1].__name__ if reference[0] == "raised" else "ok"
        outcomes[f"{kind}:{result}"] = outcomes.get(f"{kind}:{result}", 0) + 1
    return len(program)


# ----------------------------------------------------------------------- tests


async def play(
    async_service: Any, sync_service: Any, program: list[Op], outcomes: dict[str, int]
) -> int:
    services = {
        "memory": InMemoryArtifactService(),
        "async-store": async_service,
        "sync-store": sync_service,
    }
    return await run_program(services, program, outcomes)


@pytest.fixture
def harness(dsn: str) -> Iterator[Harness]:
    with (
        store_pair(
            dsn, PsycopgAsyncADKArtifactStore, PsycopgSyncADKArtifactStore, **SYNC_TABLES
        ) as pair,
        differential("artifact differential", pair, SQLSpecArtifactService, ALL_TABLES, play) as h,
    ):
        yield h


@given(program=programs)
@example(
    program=[
        Save("s-1", "a.txt", types.Part(text="one"), None),
        Save("s-1", "a.txt", types.Part(text="one"), {"k": [1, None]}),
        Save("s-2", "user:p.txt", types.Part(text=""), None),
        Load(None, "user:p.txt", None),
        Load("s-1", "a.txt", 0),
        Load(None, "a.txt", None),
        Keys("s-1"),
        VersionInfos("s-1", "a.txt"),
        Delete("s-1", "a.txt"),
        Save("s-1", "a.txt", types.Part(inline_data=types.Blob(data=b"", mime_type="x/y")), None),
        Versions("s-1", "a.txt"),
        VersionInfo("s-1", "a.txt", None),
    ]
)
def test_stores_match_in_memory_service(harness: Harness, program: list[Op]) -> None:
    harness.run(program)
