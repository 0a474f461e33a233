"""The README's first commands as a new user runs them: wall time and held-out R² (a benchmark).

    python benchmarks/bench_quickstart.py                  # the training run and the smoke run, once each
    python benchmarks/bench_quickstart.py --runs smoke     # only the smoke run

Each run starts from nothing: a fresh ``$PERSPECTIVE_HOME``, so the built-in synthetic data is
generated as on a first use, and the wall time counts everything the user waits for (imports, data,
training, the test report). The commands are the README's, with only the output folders moved:

- ``train``: ``perspective train --weights none``;
- ``smoke``: ``perspective train --weights none`` with ``SMOKE_FLAGS`` (the README's one-minute check).

Rows (``benchmarks/results/quickstart.jsonl``): case ``run`` (``train`` or ``smoke``) and ``command``
(the user's command); figures ``seconds`` (wall), ``test_r2`` (mean R² of the 8 scores on the run's
own test split, which it never trained on), ``epochs``. No data to download.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import store  # noqa: E402
from perspective.cli import ArgumentParser  # noqa: E402

SMOKE_FLAGS = ["-e", "1"]
RUNS = {"train": [], "smoke": SMOKE_FLAGS}


def get_args_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench_quickstart.py")
    p.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="(default: both)")
    p.add_argument("--results", default=None, help="results file (default: benchmarks/results/quickstart.jsonl)")
    return p


def run(name: str, results: str | None) -> dict:
    flags = RUNS[name]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        command = ["perspective", "train", "--weights", "none", *flags]
        env = {**os.environ, "PERSPECTIVE_HOME": str(work / "home")}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "perspective", *command[1:], "-c", str(work / "checkpoints"),
                        "--logs-location", str(work / "logs"), "--run-name", name],
                       check=True, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = store.timed(start)
        run_dir = work / "checkpoints" / "resnet18" / name
        metrics = json.loads((run_dir / "test_report" / "metrics.json").read_text())
        config = (run_dir / "config.yaml").read_text()
        epochs = next(int(line.split(":")[1]) for line in config.splitlines() if line.startswith("max_epochs:"))
    from perspective.hardware import default_precision

    figures = {"seconds": seconds, "test_r2": metrics["mean"]["r2"], "epochs": epochs}
    store.record("quickstart", {"run": name, "command": shlex.join(command)}, figures,
                 precision=default_precision("auto"), path=results)
    print(f"{shlex.join(command)}: {seconds:.0f} s, test R² {figures['test_r2']:.3f}", flush=True)
    return figures


def main() -> int:
    args = get_args_parser().parse_args()
    for name in args.runs:
        run(name, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
