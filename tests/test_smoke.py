from typing import Any

from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions


async def test_round_trip(service: Any) -> None:
    s = await service.create_session(app_name="a", user_id="u", state={"x": 1})
    e = Event(author="user", invocation_id="i", actions=EventActions(state_delta={"y": 2}))
    await service.append_event(s, e)
    got = await service.get_session(app_name="a", user_id="u", session_id=s.id)
    assert got.state == {"x": 1, "y": 2}
    assert got.events == [e]
