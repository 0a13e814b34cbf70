"""Run a module as ``python -m`` does, then write its peak resident memory to a file.

``python -m benchmarks.peak PEAK_FILE MODULE ARGS...``. The peak is the process's
own (``VmHWM``, reset when it started): a parent's ``wait4`` would also count the
memory of the process it was forked from, before it began.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

__all__ = ["main"]


def _peak_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    peak_file, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        Path(peak_file).write_text(str(_peak_bytes()))


if __name__ == "__main__":
    main()
