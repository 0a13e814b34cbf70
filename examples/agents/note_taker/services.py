"""Registers the sqlspec session, memory and artifact URI schemes for ``adk run`` here.

``adk run`` (and ``adk api_server`` pointed at this folder alone) read
``services.py``/``services.yaml`` from the agent's own folder; ``adk web`` and
``adk api_server`` on the parent directory read the parent's ``services.yaml``.

    adk run examples/agents/note_taker "I like tea." --session_id s1 \
        --session_service_uri "sqlspec+postgresql://user:pw@host:5432/db"
"""

from sqlspec.registry import (
    register_artifact_services,
    register_memory_services,
    register_session_services,
)

register_session_services()
register_memory_services()
register_artifact_services()
