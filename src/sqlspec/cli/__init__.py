"""The ``sqlspec-adk`` command line."""

from sqlspec.cli._app import app, main

__all__ = ["app", "main"]
