"""Commands whose output goes to a file (``> run.log 2>&1``: nohup, CI, a scheduler) write a clean log.

Real commands in subprocesses, stdout and stderr into one file, on 24 generated 64 px images: no
carriage return (a progress bar's frames), no Lightning advertisement or chatter, no warning a user
cannot act on, and training's one line per epoch. The helper that picks a bar or log lines is tested
on its own below.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic import make_regression_set

from perspective.progress import LogLines, NoProgress, draws_bar, progress, track

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--image-size", "32", "-s", "8", "-w", "0"]


def logged(tmp: Path, name: str, *args: str) -> str:
    """``perspective <args> > name.log 2>&1`` in ``tmp``; the log's text once the command succeeded."""
    log = tmp / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(log, "w") as out:
        code = subprocess.run([sys.executable, "-m", "perspective", *args], cwd=tmp, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=300).returncode
    text = log.read_text(encoding="utf-8")
    assert code == 0, text[-3000:]
    return text


def assert_clean(text: str) -> None:
    assert "\r" not in text  # no bar redrawn into the file
    assert "litlogger" not in text and "Tip:" not in text
    assert not re.search(r"Warning\b|UserWarning", text), text
    for chatter in ("GPU available", "TPU available", "Loading `train_dataloader`", "`Trainer.fit` stopped",
                    "Automatic Mixed Precision", "model summary", "Trainable params", "┏"):
        assert chatter not in text, chatter


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("quiet")
    make_regression_set(work / "data", n=24, size=64)
    (work / "space.yaml").write_text("learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}\naugment: none\n")
    return work


def test_train_and_bulk_prediction_logs(work):
    text = logged(work, "train", "train", "-d", "data", "--weights", "none", "-e", "2", *FAST, "-c", "ck",
                  "--logger", "none")
    assert_clean(text)
    epochs = re.findall(r"epoch (\d+/\d+):", text)
    assert epochs == ["1/2", "2/2"], text
    assert "training on the CPU, precision " in text
    best = text.strip().splitlines()[-1].removeprefix("best checkpoint: ")

    text = logged(work, "infer", "infer", "-c", best, "--data", "data/images", "-o", "rows.csv", "-s", "8",
                  "--log-every", "8")
    assert_clean(text)
    lines = re.findall(r"(\d+) of 24 images, [\d.]+ images/s, about \S+ left", text)
    assert lines == ["8", "16"], text  # a line every 8 images, none at the end (the summary says it)


def test_synth_pretrain_and_search_logs(work):
    assert_clean(logged(work, "synth", "synth", "-o", "synth", "-n", "24", "--seed", "0", "--size", "64x48"))
    text = logged(work, "pretrain", "pretrain", "-d", "data", "-o", "bb.ckpt", "-e", "1", *FAST, "-c", "ck",
                  "--logger", "none")
    assert_clean(text)
    assert re.findall(r"epoch (\d+/\d+):", text) == ["1/1"]
    text = logged(work, "search", "search", "-d", "data", "-o", "search", "-e", "1", "-w", "0", "--weights", "none",
                  "--image-size", "32", "--space", "space.yaml", "--trials", "1")
    assert_clean(text)
    assert re.findall(r"epoch (\d+/\d+):", text) == ["1/1"]


# --- the helper -------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_only_on_a_terminal_and_never_when_quiet(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not draws_bar()
    assert isinstance(progress(logging.getLogger("t"), 10), LogLines)
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert draws_bar() and not draws_bar(quiet=True) and not draws_bar(stream=io.StringIO())
    assert not isinstance(progress(logging.getLogger("t"), 10), (LogLines, NoProgress))  # a tqdm bar
    assert isinstance(progress(logging.getLogger("t"), 10, bar=False), LogLines)  # another rank's lines
    assert type(progress(logging.getLogger("t"), 10, show=False)) is NoProgress


def test_log_lines_by_count_and_by_time(monkeypatch, caplog):
    clock = iter(range(0, 1000, 10))  # each reading of the clock is 10 s after the last
    monkeypatch.setattr("perspective.progress.time.perf_counter", lambda: next(clock))
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    log = logging.getLogger("t")
    with caplog.at_level(logging.INFO, logger="t"):
        list(track(range(10), log, 10, desc="synth", seconds=25))  # a line each third item: 30 s since the last
    assert [r.getMessage() for r in caplog.records] == [
        "synth: 3 of 10 images, 0.1 images/s, about 1m10s left",
        "synth: 6 of 10 images, 0.1 images/s, about 40s left",
        "synth: 9 of 10 images, 0.1 images/s, about 10s left"]  # none at the end
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="t"):
        meter = LogLines(log, 100, noun="files", every=40, seconds=None)
        for _ in range(10):
            meter.update(10)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["40 of 100 files", "80 of 100 files"]
