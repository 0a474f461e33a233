"""Fixtures: tiny generated datasets and, once per session, models trained on them by train.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import make_class_folders, make_regression_set  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _a_share_of_the_cores() -> None:
    """Each pytest-xdist worker, and every process it starts, computes on its share of the cores.

    With torch's default (a thread per core) in each of two workers, the threads of one wait on those
    of the other: two train.py runs of the trained_regression fixture took 57 s side by side on 2 cores,
    21 s with one thread each. An OMP_NUM_THREADS already set is kept.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // workers))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


_a_share_of_the_cores()


def run_script(script: str, *args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """Run ``python <script> args`` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd or ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def ctrl_c_at_default() -> None:
    """``preexec_fn`` of a child that a test interrupts: a suite started in the background (``cmd &``), or
    by a runner's worker, ignores SIGINT, and the child would inherit that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_command(command: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``perspective <command> args`` in this process, through the command's own exit path.

    For tests that check what a command writes, not how a fresh process starts: each saves the ~10 s
    of importing torch and Lightning again. An exception other than the command's one-line errors
    escapes and fails the test, as it would print a traceback for a user.
    """
    import contextlib
    import importlib
    import io

    from perspective.cli.common import run

    main = importlib.import_module(f"perspective.cli.{command}").main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run(lambda: main(list(args)), command)
        except SystemExit as exc:
            code = exc.code
    return subprocess.CompletedProcess([command, *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def regression_dir(tmp_path_factory) -> Path:
    return make_regression_set(tmp_path_factory.mktemp("regression"), n=96)


@pytest.fixture(scope="session")
def class_dir(tmp_path_factory) -> Path:
    return make_class_folders(tmp_path_factory.mktemp("classes"))


def _train(tmp: Path, data: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    result = run_script(
        "train.py", "-d", str(data), "--weights", "none", "--image-size", "32", "-w", "0",
        "--augment", "none", "-c", str(tmp / "ckpt"), "--logs-location", str(tmp / "logs"), "--quiet", *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("best checkpoint: "), result.stdout
    return result, Path(last.removeprefix("best checkpoint: "))


@pytest.fixture(scope="session")
def trained_regression(tmp_path_factory, regression_dir):
    """(CompletedProcess, best checkpoint) of train.py on the regression set."""
    # 96 images at 32 px, 10 epochs: mean test R² 0.92-0.97 over seeds 1-4 when this was written
    return _train(tmp_path_factory.mktemp("train_reg"), regression_dir, "-s", "8", "-e", "10", "-l", "2e-3",
                  "--patience", "10", "--logger", "tensorboard,csv")


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory, class_dir):
    # 36 images at 32 px, 8 epochs at -l 1e-3: accuracy 1.0 on them for seeds 42, 1, 2 with one thread and
    # with two; at 3e-3, seed 42 with one thread stopped at 0.67
    return _train(tmp_path_factory.mktemp("train_cls"), class_dir, "-s", "4", "-e", "8", "-l", "1e-3")


@pytest.fixture
def evil_checkpoint(tmp_path):
    """A checkpoint whose unpickling would create ``marker``: (path, marker)."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    torch.save({"hyper_parameters": {}, "state_dict": {}, "x": Evil()}, tmp_path / "evil.ckpt")
    return tmp_path / "evil.ckpt", marker
