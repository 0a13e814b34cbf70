"""``python benchmarks/run.py``: the same command as ``python -m benchmarks``."""

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable so ``benchmarks`` resolves.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cli import main

if __name__ == "__main__":
    main()
