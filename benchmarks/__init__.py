"""Benchmarks of the sqlspec ADK session stores against ADK's DatabaseSessionService.

Run ``python -m benchmarks --help`` from the repository root; see ``benchmarks/README.md``.
"""
