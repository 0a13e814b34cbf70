"""``python -m sqlspec.cli``: the same as the ``sqlspec-adk`` command."""

from sqlspec.cli import main

main()
