"""Bad data, crashes and hostile files: every case ends in a clear message, and nothing is lost."""

import glob
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT, ctrl_c_at_default, run_command, run_script
from PIL import Image
from synthetic import make_regression_set

TRAIN = ["--weights", "none", "--image-size", "32", "-w", "0", "--augment", "none", "-s", "8", "-q"]


@pytest.fixture
def small_set(tmp_path):
    return make_regression_set(tmp_path / "data", n=40)


def _train_args(data, tmp_path, *extra) -> list[str]:
    return ["-d", str(data), *TRAIN, "-c", str(tmp_path / "ck"), "--logs-location", str(tmp_path / "lg"), *extra]


def _train(data, tmp_path, *extra, **kwargs):
    return run_script("train.py", *_train_args(data, tmp_path, *extra), **kwargs)


def _train_here(data, tmp_path, *extra):
    """train in this process through its own exit path: for refusals, which end before any training."""
    return run_command("train", *_train_args(data, tmp_path, *extra))


def _one_line_exit_2(result, message):
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


# --- bad images in training data --------------------------------------------------------------


@pytest.fixture
def set_with_bad_images(small_set):
    images = small_set / "images"
    labels = pd.read_csv(small_set / "labels.csv")
    (images / "img000.png").unlink()                                   # listed but missing
    (images / "img001.png").write_bytes(b"")                           # zero bytes
    data = (images / "img002.png").read_bytes()
    (images / "img002.png").write_bytes(data[: len(data) // 2])       # truncated
    (images / "img003.png").write_text("<html>not an image</html>")   # not an image
    Image.new("LAB", (64, 64)).save(images / "img004.tif")             # an unusual mode: converted, not skipped
    labels.loc[4, "filename"] = "img004.tif"
    labels.to_csv(small_set / "labels.csv", index=False)
    return small_set


def test_bad_images_are_skipped_with_a_warning_and_training_finishes(set_with_bad_images, tmp_path):
    # batch 32 > the 19 training images: no batch is dropped, so every image is read
    result = _train(set_with_bad_images, tmp_path, "-e", "2", "--val-fraction", "0.3", "--test-fraction", "0.2",
                    "-s", "32")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 image(s) not found, skipped: img000.png" in result.stderr
    assert "1 image(s) empty (0 bytes), skipped: img001.png" in result.stderr
    for name in ("img002.png", "img003.png"):  # found while loading (training, validation or the test report)
        assert str(set_with_bad_images / "images" / name) in result.stderr
    assert "img004.tif" not in result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("best checkpoint: ")


def test_strict_refuses_bad_images_before_training(set_with_bad_images, tmp_path):
    result = _train_here(set_with_bad_images, tmp_path, "-e", "1", "--strict")
    _one_line_exit_2(result, "--strict: 4 of 40 image(s) cannot be read")
    assert not (tmp_path / "ck").exists()  # nothing trained


# --- CSV validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("case, message", [
    ("no_filename", "no 'filename' column"),
    ("unknown_target", "unknown target column(s) blueness"),
    ("non_numeric", "target column redness is not numeric: 'high' on line(s) 5"),
    ("nan", "missing target values on line(s) 4"),
    ("duplicates", "1 duplicate filename(s), each must be listed once: img005.png"),
    ("empty", "no rows"),
    ("empty_split", "the test split is empty"),
])
def test_bad_csv_is_a_one_line_error_before_training(case, message, small_set, tmp_path):
    labels = pd.read_csv(small_set / "labels.csv")
    extra = []
    if case == "no_filename":
        labels = labels.rename(columns={"filename": "file"})
    elif case == "unknown_target":
        extra = ["--targets", "redness,blueness"]
    elif case == "non_numeric":
        labels["redness"] = labels["redness"].astype(str)
        labels.loc[3, "redness"] = "high"
    elif case == "nan":
        labels.loc[2, "greenness"] = None
    elif case == "duplicates":
        labels.loc[6, "filename"] = "img005.png"
    elif case == "empty":
        labels = labels.iloc[:0]
    elif case == "empty_split":
        labels = labels.iloc[:6]
        extra = ["--val-fraction", "0.3", "--test-fraction", "0.05"]
    labels.to_csv(small_set / "labels.csv", index=False)
    _one_line_exit_2(_train_here(small_set, tmp_path, "-e", "1", *extra), message)


# --- crash safety -----------------------------------------------------------------------------


def _start(data, tmp_path, epochs):
    command = [sys.executable, str(ROOT / "train.py"), *_train_args(data, tmp_path, "-e", str(epochs))]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_at_default)


def _wait_for_last(tmp_path, process, timeout=240):
    deadline = time.monotonic() + timeout
    while not glob.glob(str(tmp_path / "ck" / "resnet18" / "*" / "last.ckpt")):
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    return Path(glob.glob(str(tmp_path / "ck" / "resnet18" / "*" / "last.ckpt"))[0])


def _epoch_events(log_file: Path) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_file))
    events.Reload()
    return len(events.Scalars("train_loss_epoch")) if "train_loss_epoch" in events.Tags()["scalars"] else 0


def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_planned_epochs(small_set, tmp_path):
    planned = 8
    process = _start(small_set, tmp_path, planned)
    last = _wait_for_last(tmp_path, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    saved_epoch = torch.load(last, weights_only=True)["epoch"]
    assert saved_epoch < planned - 1, "the run finished before it could be killed"

    resumed = _train(small_set, tmp_path, "-e", str(planned), "--resume", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr and "exists and is not empty" not in resumed.stderr
    final = torch.load(last, weights_only=True)
    assert final["epoch"] == planned - 1
    # the resumed process trained only the epochs that were left, in the same run folder
    logs = sorted((tmp_path / "lg" / "resnet18" / last.parent.name).glob("events.out.tfevents.*"),
                  key=lambda p: int(p.name.split(".")[3]))  # events.out.tfevents.<time>.<host>.<pid>.<n>
    resumed_pid = logs[-1].name.split(".")[-2]
    epochs_run = sum(_epoch_events(f) for f in logs if f.name.split(".")[-2] == resumed_pid)
    assert epochs_run == planned - 1 - saved_epoch


def test_ctrl_c_stops_gracefully_and_keeps_a_resumable_last_checkpoint(small_set, tmp_path):
    process = _start(small_set, tmp_path, 50)
    last = _wait_for_last(tmp_path, process)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-2000:]
    assert "train.py: interrupted" in stderr and f"--resume {last}" in stderr
    assert "Traceback" not in stderr
    state = torch.load(last, weights_only=True)
    assert state["global_step"] > 0 and "optimizer_states" in state


# --- hostile files ----------------------------------------------------------------------------


@pytest.mark.parametrize("script, args", [
    ("evaluate.py", ["-d", "DATA", "-c", "EVIL", "-o", "OUT"]),
    ("export.py", ["-c", "EVIL", "-o", "OUT/m.onnx"]),
    ("serve.py", ["-c", "EVIL", "--port", "0"]),
    ("train.py", ["-d", "DATA", "--weights", "EVIL", "--image-size", "32", "-e", "1", "-c", "OUT", "--logs-location", "OUT"]),
])
def test_a_hostile_pickle_is_refused_everywhere_and_never_runs(script, args, evil_checkpoint, small_set, tmp_path):
    evil, marker = evil_checkpoint
    swap = {"EVIL": str(evil), "DATA": str(small_set), "OUT": str(tmp_path / "out")}
    result = run_script(script, *[swap.get(a, a.replace("OUT", str(tmp_path / "out"))) for a in args], cwd=tmp_path,
                        timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refused" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_a_decompression_bomb_is_refused_without_decoding_it(tmp_path):
    Image.new("L", (15_000, 10_000)).save(tmp_path / "bomb.png")  # 150 MP in a small file
    assert (tmp_path / "bomb.png").stat().st_size < 1_000_000
    result = run_script("infer.py", "-i", str(tmp_path / "bomb.png"), "-r", str(tmp_path / "r.csv"), "-q")
    assert result.returncode == 1  # nothing could be predicted, the row says why
    assert "over the limit" in pd.read_csv(tmp_path / "r.csv")["error"].iloc[0]
