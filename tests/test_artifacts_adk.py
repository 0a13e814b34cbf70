"""The artifact service in ADK's own machinery: its registry and its command line's factory.

ADK falls back to in-memory artifacts for a scheme nobody registered, silently:
these tests prove the ``sqlspec://`` service is the one in use once registered.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.adk.artifacts.in_memory_artifact_service import InMemoryArtifactService
from google.adk.cli import service_registry
from google.adk.cli.fast_api import get_fast_api_app
from google.adk.cli.utils import service_factory
from google.genai import types

from helpers import service_uri
from sqlspec.adapters.psycopg import PsycopgSyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgSyncADKArtifactStore
from sqlspec.registry import (
    SQLSpecURIArtifactService,
    SQLSpecURISessionService,
    create_artifact_service,
    register_artifact_services,
)

APP = "files-app"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "agents"
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


ARCHIVIST = '''"""An offline agent whose tool saves the user's message as an artifact."""

from collections.abc import AsyncGenerator

from google.adk.agents.llm_agent import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools.tool_context import ToolContext
from google.genai import types


async def save_note(text: str, tool_context: ToolContext) -> dict[str, int]:
    """Save the text as the artifact note.txt."""
    version = await tool_context.save_artifact("note.txt", types.Part(text=text))
    return {"version": version}


class Scripted(BaseLlm):
    model: str = "scripted-archivist"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        parts = llm_request.contents[-1].parts or []
        if any(p.function_response for p in parts):
            part = types.Part(text="saved")
        else:
            text = next(p.text for p in parts if p.text)
            call = types.FunctionCall(name="save_note", args={"text": text})
            part = types.Part(function_call=call)
        yield LlmResponse(content=types.Content(role="model", parts=[part]))


root_agent = LlmAgent(name="archivist", model=Scripted(), tools=[save_note])
'''


@pytest.fixture
def archivist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An agents directory holding the archivist, with the example services.yaml."""
    monkeypatch.setattr(service_registry, "_service_registry_instance", None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    agents = tmp_path / "agents"
    agents.mkdir()
    shutil.copy(EXAMPLES / "services.yaml", agents / "services.yaml")  # registers sqlspec://
    (agents / "archivist").mkdir()
    (agents / "archivist" / "__init__.py").write_text("from . import agent\n")
    (agents / "archivist" / "agent.py").write_text(ARCHIVIST)
    yield agents
    for name in [m for m in sys.modules if m == "services" or m.startswith("archivist")]:
        del sys.modules[name]


async def test_an_artifact_a_tool_saves_shows_through_the_api_server(
    archivist: Path, dsn: str
) -> None:
    uri = service_uri(dsn, scheme="sqlspec+postgresql")
    app = get_fast_api_app(
        agents_dir=str(archivist),
        session_service_uri=uri,
        artifact_service_uri=uri,
        use_local_storage=False,
        web=False,
    )
    base = "/apps/archivist/users/u1/sessions/s1"
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
    ):
        assert (await client.post(base, json={})).status_code == 200
        run = await client.post(
            "/run",
            json={
                "app_name": "archivist",
                "user_id": "u1",
                "session_id": "s1",
                "new_message": {"role": "user", "parts": [{"text": "buy oat milk"}]},
            },
        )
        assert run.status_code == 200, run.text
        assert (await client.get(f"{base}/artifacts")).json() == ["note.txt"]
        loaded = await client.get(f"{base}/artifacts/note.txt")
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["text"] == "buy oat milk"
    # Stored in PostgreSQL, not in ADK's in-memory fallback.
    config = PsycopgSyncConfig(connection_config={"conninfo": dsn, "min_size": 1})
    store = PsycopgSyncADKArtifactStore(config)
    try:
        versions = store.list_versions(
            app_name="archivist", user_id="u1", filename="note.txt", session_id="s1"
        )
        assert versions == [0]
    finally:
        config.close()
