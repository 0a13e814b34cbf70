"""The memory service in ADK's own machinery: its service registry, and a Runner's tools."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest
from google.adk.agents.llm_agent import LlmAgent
from google.adk.cli import service_registry
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.tools.preload_memory_tool import PreloadMemoryTool
from google.genai import types
from pydantic import Field

from helpers import service_uri
from sqlspec.registry import (
    SQLSpecURIMemoryService,
    SQLSpecURISessionService,
    create_memory_service,
    register_memory_services,
)

APP = "recall-app"
USER = "recall-user"


class PastConversationEcho(BaseLlm):
    """An offline model that repeats what memory put in its request, or says it knows nothing."""

    model: str = "echo-offline"
    seen: list[str] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        text = " ".join(
            part.text or ""
            for content in llm_request.contents or []
            for part in content.parts or []
        )
        self.seen.append(text)
        recalled = "PAST_CONVERSATIONS" in text and "Kyoto" in text
        answer = "you like Kyoto" if recalled else "I do not know"
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=answer)]),
            turn_complete=True,
        )


def test_the_registry_builds_the_memory_service_for_each_scheme() -> None:
    registry = service_registry.ServiceRegistry()
    register_memory_services(registry)
    service = registry.create_memory_service("sqlspec+postgresql://h/db", agents_dir="/x")
    assert isinstance(service, SQLSpecURIMemoryService)
    assert repr(service) == "SQLSpecURIMemoryService('dbname=db host=h')"
    assert registry.create_memory_service("other://h/db") is None
    assert isinstance(create_memory_service("sqlspec://"), SQLSpecURIMemoryService)


def test_each_service_takes_its_own_store_options_and_they_share_one_pool() -> None:
    uri = (
        "sqlspec+postgresql://h/db?session_table=chat_sessions&memory_table=chat_memories"
        "&text_search_config=simple&max_size=3"
    )
    sessions = SQLSpecURISessionService(uri)
    memory = SQLSpecURIMemoryService(uri)
    assert sessions.store.session_table == "chat_sessions"
    assert memory.store.memory_table == "chat_memories"
    assert memory.store.text_search_config == "simple"
    assert memory.store.config is sessions.store.config


async def test_a_runner_recalls_an_earlier_conversation_through_memory(dsn: str) -> None:
    uri = service_uri(dsn)
    sessions = SQLSpecURISessionService(uri)
    memory = SQLSpecURIMemoryService(uri)
    model = PastConversationEcho()
    agent = LlmAgent(name="recaller", model=model, tools=[PreloadMemoryTool()])
    runner = Runner(app_name=APP, agent=agent, session_service=sessions, memory_service=memory)

    async def say(session_id: str, text: str) -> str:
        message = types.Content(role="user", parts=[types.Part(text=text)])
        replies = [
            part.text
            for event in [
                e
                async for e in runner.run_async(
                    user_id=USER, session_id=session_id, new_message=message
                )
            ]
            if event.content
            for part in event.content.parts or []
            if part.text
        ]
        return " ".join(replies)

    try:
        first = await sessions.create_session(app_name=APP, user_id=USER)
        assert await say(first.id, "My favourite city is Kyoto") == "I do not know"
        stored = await sessions.get_session(app_name=APP, user_id=USER, session_id=first.id)
        assert stored is not None
        await memory.add_session_to_memory(stored)

        second = await sessions.create_session(app_name=APP, user_id=USER)
        assert await say(second.id, "Which city is my favourite?") == "you like Kyoto"
    finally:
        await memory.close()
        await sessions.close()


@pytest.mark.parametrize("query", ["favourite", "Kyoto"])
async def test_memories_written_through_the_uri_service_are_found(dsn: str, query: str) -> None:
    memory = SQLSpecURIMemoryService(service_uri(dsn))
    try:
        await memory.add_events_to_memory(
            app_name=APP, user_id=USER, events=[_said("my favourite city is Kyoto")]
        )
        response = await memory.search_memory(app_name=APP, user_id=USER, query=query)
        assert [m.content.parts[0].text for m in response.memories if m.content.parts] == [
            "my favourite city is Kyoto"
        ]
    finally:
        await memory.close()


def _said(text: str) -> Any:
    from google.adk.events.event import Event

    return Event(
        author="user",
        invocation_id="inv",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
    )
