"""How fast every command answers ``-h``: a fresh process each time, as a user's shell starts it.

    python benchmarks/bench_help.py --repeats 3

Prints, per command, the minimum, median and maximum wall time of ``python -m perspective <command> -h``
(``(none)``: ``python -m perspective -h``). It needs no data. One row per command is appended to
``benchmarks/results/help.jsonl`` (``--results`` redirects it), case key ``command``, figures
``median_seconds``, ``min_seconds``, ``max_seconds``; then a row for ``every command`` with the
lowest and highest of the medians (``median_seconds_min``, ``median_seconds_max``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from perspective.cli import ArgumentParser, positive_int  # noqa: E402
from perspective.cli.__main__ import COMMANDS  # noqa: E402

BENCHMARK = "help"


def help_seconds(command: str) -> float:
    """Wall seconds of one ``python -m perspective [command] -h`` in a fresh process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "perspective", *([command] if command else []), "-h"], cwd=ROOT,
                   check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    p = ArgumentParser(prog="bench_help.py", description="Time `python -m perspective <command> -h` for every command.")
    p.add_argument("--repeats", type=positive_int, default=5, help="runs per command (default 5)")
    p.add_argument("--results", default=None, metavar="FILE",
                   help=f"append the rows to FILE (default {store.results_file(BENCHMARK).relative_to(ROOT)})")
    args = p.parse_args()
    print(f"{'command':<10} {'min s':>7} {'median s':>9} {'max s':>7}")
    medians = []
    for command in ["", *COMMANDS]:
        times = [help_seconds(command) for _ in range(args.repeats)]
        name = command or "(none)"
        medians.append(statistics.median(times))
        store.record(BENCHMARK, {"command": name}, {"median_seconds": round(medians[-1], 4),
                                                   "min_seconds": round(min(times), 4),
                                                   "max_seconds": round(max(times), 4)}, path=args.results)
        print(f"{name:<10} {min(times):7.3f} {medians[-1]:9.3f} {max(times):7.3f}", flush=True)
    store.record(BENCHMARK, {"command": "every command"}, {"median_seconds_min": round(min(medians), 4),
                                                          "median_seconds_max": round(max(medians), 4)},
                 path=args.results)
    print(f"medians {min(medians):.3f}-{max(medians):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
