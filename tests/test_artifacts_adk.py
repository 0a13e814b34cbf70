"""The artifact service in ADK's own machinery: its registry and its command line's factory.

ADK falls back to in-memory artifacts for a scheme nobody registered, silently:
these tests prove the ``sqlspec://`` service is the one in use once registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.adk.artifacts.in_memory_artifact_service import InMemoryArtifactService
from google.adk.cli import service_registry
from google.adk.cli.utils import service_factory
from google.genai import types

from helpers import service_uri
from sqlspec.registry import (
    SQLSpecURIArtifactService,
    SQLSpecURISessionService,
    create_artifact_service,
    register_artifact_services,
)

APP = "files-app"
USER = "files-user"


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Any:
    """ADK's registry singleton as a new process has it."""
    monkeypatch.setattr(service_registry, "_service_registry_instance", None)
    return service_registry.get_service_registry()


def test_the_registry_builds_the_artifact_service_for_each_scheme() -> None:
    registry = service_registry.ServiceRegistry()
    register_artifact_services(registry)
    service = registry.create_artifact_service("sqlspec+postgres://h/db", agents_dir="/x")
    assert isinstance(service, SQLSpecURIArtifactService)
    assert repr(service) == "SQLSpecURIArtifactService('dbname=db host=h')"
    assert registry.create_artifact_service("other://h/db") is None
    assert isinstance(create_artifact_service("sqlspec://"), SQLSpecURIArtifactService)


def test_adk_falls_back_to_memory_unless_the_scheme_is_registered(
    fresh_registry: Any, tmp_path: Path
) -> None:
    before = service_factory.create_artifact_service_from_options(
        base_dir=tmp_path, artifact_service_uri="sqlspec+postgresql://h/db"
    )
    assert isinstance(before, InMemoryArtifactService)
    register_artifact_services()
    after = service_factory.create_artifact_service_from_options(
        base_dir=tmp_path, artifact_service_uri="sqlspec+postgresql://h/db?max_artifact_bytes=1024"
    )
    assert isinstance(after, SQLSpecURIArtifactService)
    assert after.store.max_artifact_bytes == 1024


async def test_artifacts_saved_through_the_uri_service_load_back(dsn: str) -> None:
    uri = service_uri(dsn, artifact_table="agent_artifacts")
    artifacts = SQLSpecURIArtifactService(uri)
    sessions = SQLSpecURISessionService(uri)
    assert artifacts.store.config is sessions.store.config  # one pool per connection
    try:
        part = types.Part(inline_data=types.Blob(mime_type="image/png", data=b"\x89PNG\x00"))
        version = await artifacts.save_artifact(
            app_name=APP, user_id=USER, filename="user:logo.png", artifact=part
        )
        assert version == 0
        loaded = await artifacts.load_artifact(app_name=APP, user_id=USER, filename="user:logo.png")
        assert loaded == part
        assert await artifacts.list_artifact_keys(app_name=APP, user_id=USER) == ["user:logo.png"]
    finally:
        await artifacts.close()
