"""Speed benchmark of our runtimes against the peers; the same as ``zippypoint benchmark``.

    python benchmarks/run_benchmark.py --out runs/benchmark --resolutions 320x240,640x480 --runs 20
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zippypoint.commands.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
