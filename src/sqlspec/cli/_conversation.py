"""Render a stored session for people: a header, its state, then the conversation."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from google.adk.events.event import Event
from google.adk.sessions.session import Session
from google.genai import types
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sqlspec.cli._common import format_age, format_time

__all__ = ["event_lines", "print_conversation", "print_session_header", "session_summary"]

_MAX_VALUE = 240


def _compact(value: Any, full: bool) -> str:
    """A JSON value on one line, cut at ``_MAX_VALUE`` characters unless ``full``."""
    text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=False)
    if not full and len(text) > _MAX_VALUE:
        text = text[: _MAX_VALUE - 1] + "…"
    return text


def session_summary(session: Session, limit: int = 40) -> str:
    """Its state on one line, short: for listings."""
    if not session.state:
        return ""
    text = json.dumps(session.state, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _part_lines(part: types.Part, full: bool) -> list[Text]:
    lines: list[Text] = []
    if part.text is not None and part.text != "":
        if part.thought:
            lines.append(Text(f"(thinking) {part.text}", style="dim italic"))
        else:
            lines.append(Text(part.text))
    if part.function_call is not None:
        call = part.function_call
        args = ", ".join(f"{k}={_compact(v, full)}" for k, v in (call.args or {}).items())
        lines.append(Text(f"-> {call.name}({args})", style="yellow"))
    if part.function_response is not None:
        response = part.function_response
        lines.append(
            Text(
                f"<- {response.name}: {_compact(response.response, full)}",
                style="magenta",
            )
        )
    if part.inline_data is not None:
        blob = part.inline_data
        size = len(blob.data or b"")
        lines.append(Text(f"[{blob.mime_type or 'data'}, {size} bytes]", style="cyan"))
    if part.file_data is not None:
        lines.append(
            Text(f"[{part.file_data.mime_type or 'file'} {part.file_data.file_uri}]", style="cyan")
        )
    if part.executable_code is not None:
        code = part.executable_code
        language = str(code.language or "").lower().replace("language.", "")
        lines.append(Text(f"code ({language or 'unknown'}):\n{code.code}", style="yellow"))
    if part.code_execution_result is not None:
        result = part.code_execution_result
        lines.append(Text(f"result ({result.outcome}): {result.output or ''}", style="magenta"))
    return lines


def event_lines(event: Event, full: bool = False) -> list[Text]:
    """What one event says, a line per part, then its errors and actions."""
    lines: list[Text] = []
    if event.content is not None:
        for part in event.content.parts or []:
            lines.extend(_part_lines(part, full))
    if event.error_code or event.error_message:
        lines.append(
            Text(f"error {event.error_code or ''}: {event.error_message or ''}", style="bold red")
        )
    actions = event.actions
    if actions is not None:
        if actions.state_delta:
            delta = " · ".join(f"{k} = {_compact(v, full)}" for k, v in actions.state_delta.items())
            lines.append(Text(f"state: {delta}", style="dim"))
        if actions.artifact_delta:
            saved = ", ".join(f"{k} v{v}" for k, v in actions.artifact_delta.items())
            lines.append(Text(f"artifacts: {saved}", style="dim"))
        if actions.transfer_to_agent:
            lines.append(Text(f"transfer to {actions.transfer_to_agent}", style="blue"))
        if actions.escalate:
            lines.append(Text("escalate", style="blue"))
    if not lines:
        lines.append(Text("(no content)", style="dim"))
    return lines


def print_session_header(console: Console, session: Session) -> None:
    """Who, when, and the merged state, one key per line."""
    head = Text.assemble(
        ("Session ", "bold"),
        (session.id, "bold cyan"),
        "  app ",
        (session.app_name, "bold"),
        "  user ",
        (session.user_id, "bold"),
    )
    console.print(head)
    console.print(
        f"updated {format_time(session.last_update_time)} UTC "
        f"({format_age(session.last_update_time)} ago)",
        style="dim",
    )
    if session.state:
        state = Table(show_header=False, box=None, padding=(0, 1), title="state")
        state.title_justify = "left"
        state.add_column(style="bold", no_wrap=True)
        state.add_column(overflow="fold")
        for key, value in session.state.items():
            state.add_row(key, _compact(value, full=True))
        console.print(state)
    else:
        console.print("state: {}", style="dim")


def _author_style(author: str) -> str:
    return "bold cyan" if author == "user" else "bold green"


def print_conversation(console: Console, events: Iterable[Event], full: bool = False) -> int:
    """Print events as they come (times in UTC); return how many there were."""
    count = 0
    day: str | None = None
    invocation: str | None = None
    for event in events:
        moment = datetime.fromtimestamp(event.timestamp, timezone.utc)
        if moment.strftime("%Y-%m-%d") != day:
            day = moment.strftime("%Y-%m-%d")
            console.rule(Text(day, style="dim"), style="dim")
        elif event.invocation_id != invocation:
            console.print()
        invocation = event.invocation_id
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="dim")
        grid.add_column(no_wrap=True, min_width=10)
        grid.add_column(overflow="fold")
        for index, line in enumerate(event_lines(event, full)):
            if index == 0:
                author = Text(event.author or "?", style=_author_style(event.author))
                grid.add_row(moment.strftime("%H:%M:%S"), author, line)
            else:
                grid.add_row("", "", line)
        console.print(grid)
        count += 1
    return count
