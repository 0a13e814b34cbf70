"""The sqlspec demo agent as an ADK agents-directory package."""

from . import agent

__all__ = ["agent"]
