"""The demo: an offline ADK agent whose conversations persist in PostgreSQL.

The model is scripted (no network, no API key): for each user message it calls
the ``remember`` tool, then answers with what it now knows. The tool writes state
in every scope (``app:``, ``user:``, ``temp:`` and plain), so a run shows what a
store keeps and what it drops. Running the demo again resumes the conversation
stored by the previous run. Each conversation is also added to memory, and the
agent preloads the memories that match each message: a new conversation
(``--conversation``) recalls what earlier ones were told.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.adk.agents.llm_agent import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.session import Session
from google.adk.tools.preload_memory_tool import PreloadMemoryTool
from google.adk.tools.tool_context import ToolContext
from google.genai import types

from sqlspec.adapters.psycopg import PsycopgAsyncConfig
from sqlspec.adapters.psycopg.adk import PsycopgAsyncADKMemoryStore, PsycopgAsyncADKStore
from sqlspec.exceptions import ImproperConfigurationError
from sqlspec.extensions.adk import SQLSpecMemoryService, SQLSpecSessionService

__all__ = ["DemoResult", "ScriptedLlm", "build_agent", "remember", "run_demo"]

APP_NAME = "sqlspec_demo"
USER_ID = "demo_user"
SESSION_ID = "demo_session"
DEFAULT_MESSAGES = ("My favourite colour is teal.", "I live in Lisbon.")


def remember(note: str, tool_context: ToolContext) -> dict[str, Any]:
    """Remember a note about the user, in every state scope."""
    state = tool_context.state
    notes = [*state.get("notes", []), note]
    state["notes"] = notes
    state["user:notes_total"] = state.get("user:notes_total", 0) + 1
    state["app:notes_total"] = state.get("app:notes_total", 0) + 1
    state["temp:last_tool_call"] = note
    return {"remembered": note, "notes_in_session": len(notes)}


class ScriptedLlm(BaseLlm):
    """A model that needs no network: it calls ``remember``, then summarizes the result."""

    model: str = "scripted-demo-model"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        # Memory's preloaded block is context, not the turn to answer.
        turns = [c for c in llm_request.contents or [] if not _is_memory(c)]
        last = turns[-1] if turns else None
        parts = (last.parts or []) if last is not None else []
        response = next((p.function_response for p in parts if p.function_response), None)
        if response is not None:
            result = response.response or {}
            text = (
                f"Noted: {result.get('remembered')!r}. "
                f"I now know {result.get('notes_in_session')} thing(s) about you."
            )
            recalled = [n for n in _recalled(llm_request) if n != result.get("remembered")]
            if recalled:
                text += " Earlier you told me: " + "; ".join(map(repr, recalled)) + "."
            yield _response(types.Part(text=text))
            return
        user_text = next((p.text for p in parts if p.text), "")
        yield _response(
            types.Part(function_call=types.FunctionCall(name="remember", args={"note": user_text}))
        )


def _is_memory(content: types.Content) -> bool:
    return any("<PAST_CONVERSATIONS>" in (p.text or "") for p in content.parts or [])


def _recalled(llm_request: LlmRequest) -> list[str]:
    """What the user said in earlier conversations, as memory put it in the request."""
    texts = [p.text or "" for c in llm_request.contents or [] for p in c.parts or []]
    block = next((t for t in texts if "<PAST_CONVERSATIONS>" in t), "")
    said = [line.removeprefix("user: ") for line in block.splitlines() if line.startswith("user: ")]
    return list(dict.fromkeys(said))


def _response(part: types.Part) -> LlmResponse:
    usage = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=0, candidates_token_count=0, total_token_count=0
    )
    return LlmResponse(content=types.Content(role="model", parts=[part]), usage_metadata=usage)


def build_agent() -> LlmAgent:
    """The demo agent: the scripted model with the ``remember`` tool, and memory preloaded."""
    return LlmAgent(
        name="note_taker",
        model=ScriptedLlm(),
        instruction="Remember what the user tells you.",
        tools=[remember, PreloadMemoryTool()],
    )


async def _memory_or_none(
    config: PsycopgAsyncConfig, echo: Callable[[str], None]
) -> SQLSpecMemoryService | None:
    """The memory service, or ``None`` (and why) where the role may not set its table up."""
    store = PsycopgAsyncADKMemoryStore(config)
    try:
        await store.create_tables()
    except ImproperConfigurationError as exc:
        echo(f"(memory is off: {exc})")
        return None
    return SQLSpecMemoryService(store)


@dataclass(frozen=True)
class DemoResult:
    """What one demo run did, and the session as stored afterwards."""

    resumed: bool
    replies: list[str]
    session: Session


async def run_demo(
    connection_config: Mapping[str, Any] | None = None,
    messages: tuple[str, ...] = DEFAULT_MESSAGES,
    echo: Callable[[str], None] = print,
    conversation: str = SESSION_ID,
) -> DemoResult:
    """Run the conversation on the configured server (the embedded one by default)."""
    config = PsycopgAsyncConfig(connection_config=dict(connection_config or {}))
    store = PsycopgAsyncADKStore(config)
    await store.create_tables()
    memory = await _memory_or_none(config, echo)
    async with SQLSpecSessionService(store) as service:
        session = await service.get_session(
            app_name=APP_NAME, user_id=USER_ID, session_id=conversation
        )
        resumed = session is not None
        if session is None:
            session = await service.create_session(
                app_name=APP_NAME, user_id=USER_ID, session_id=conversation
            )
            echo(f"new conversation {conversation!r}")
        else:
            echo(f"resuming conversation {conversation!r} with {len(session.events)} stored events")
        runner = Runner(
            app_name=APP_NAME,
            agent=build_agent(),
            session_service=service,
            memory_service=memory,
        )
        replies: list[str] = []
        for message in messages:
            echo(f"user  > {message}")
            content = types.Content(role="user", parts=[types.Part(text=message)])
            async for event in runner.run_async(
                user_id=USER_ID, session_id=conversation, new_message=content
            ):
                parts = (event.content.parts or []) if event.content else []
                text = "".join(p.text or "" for p in parts)
                if text and event.author != "user":
                    replies.append(text)
                    echo(f"agent > {text}")
        await runner.close()
        stored = await service.get_session(
            app_name=APP_NAME, user_id=USER_ID, session_id=conversation
        )
        assert stored is not None
        if memory is not None:
            await memory.add_session_to_memory(stored)
        echo(f"stored: {len(stored.events)} events; state {stored.state}")
        return DemoResult(resumed=resumed, replies=replies, session=stored)
