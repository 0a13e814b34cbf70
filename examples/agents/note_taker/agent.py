"""``root_agent`` for ``adk web`` / ``adk api_server`` / ``adk run``: the sqlspec demo agent.

Its model is scripted (no network, no API key): for each message it calls the
``remember`` tool, which writes state in every scope, then answers.
"""

from sqlspec.cli.demo import build_agent

root_agent = build_agent()
