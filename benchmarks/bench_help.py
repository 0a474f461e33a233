"""How fast every command answers ``-h``: a fresh process each time, as a user's shell starts it.

    python benchmarks/bench_help.py [--repeats 5]

Prints, per command, the minimum, median and maximum wall time of ``python -m perspective <command> -h``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perspective.cli import ArgumentParser, positive_int  # noqa: E402
from perspective.cli.__main__ import COMMANDS  # noqa: E402


def main() -> int:
    p = ArgumentParser(description="Time `python -m perspective <command> -h` for every command.")
    p.add_argument("--repeats", type=positive_int, default=5, help="runs per command (default 5)")
    args = p.parse_args()
    print(f"{'command':<10} {'min s':>7} {'median s':>9} {'max s':>7}")
    for command in ["", *COMMANDS]:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "perspective", *([command] if command else []), "-h"], cwd=ROOT,
                           check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(f"{command or '(none)':<10} {min(times):7.3f} {statistics.median(times):9.3f} {max(times):7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
