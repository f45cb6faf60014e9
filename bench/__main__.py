"""Run every benchmark module present (``make bench``), one after the other.

Each ``bench/<area>.py`` with a ``main()`` runs in its own process, in name
order; the exit code is the first failure's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SKIP = {"__init__", "__main__"}


def main() -> int:
    here = Path(__file__).resolve().parent
    modules = sorted(p.stem for p in here.glob("*.py") if p.stem not in SKIP and not p.stem.startswith("_"))
    rc = 0
    for name in modules:
        print(f"== bench.{name} ==", flush=True)
        result = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=here.parent, check=False)
        if result.returncode and not rc:
            rc = result.returncode
    return rc


if __name__ == "__main__":
    sys.exit(main())
