"""train.py and infer.py run as a user runs them, through subprocesses."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_command, run_script


def test_train_prints_test_metrics_and_writes_checkpoints(trained_regression):
    result, best = trained_regression
    assert "test metrics of the best checkpoint" in result.stdout
    for column in ("mse", "mae", "rmse", "r2"):
        assert column in result.stdout
    for row in ("redness", "greenness", "mean"):
        assert row in result.stdout
    run_dir = best.parent
    assert best.is_file() and best.name.startswith("epoch=") and "val_loss=" in best.name
    assert (run_dir / "last.ckpt").is_file()
    assert run_dir.parent.name == "resnet18"
    assert 1 <= len(list(run_dir.glob("epoch=*.ckpt"))) <= 3
    logs = run_dir.parent.parent.parent / "logs" / "resnet18" / run_dir.name
    assert list(logs.glob("events.out.tfevents.*")), "TensorBoard events missing"


def test_checkpoint_alone_rebuilds_the_model_and_infer_predicts_a_directory(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    out = tmp_path / "results.csv"
    result = run_script("infer.py", "-d", str(regression_dir / "images"), "-c", str(best), "-r", str(out), "-q")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    # labels.csv beside the images folder is found: its truth goes beside the predictions
    assert list(frame.columns) == ["path", "redness", "greenness", "novelty_p", "novel", "true_redness",
                                   "true_greenness", "error"]
    assert len(frame) == 96 and frame["error"].isna().all()
    truth = pd.read_csv(regression_dir / "labels.csv")
    frame["filename"] = frame["path"].map(lambda p: p.rsplit("/", 1)[-1])
    merged = frame.merge(truth, on="filename", suffixes=("_pred", ""))
    for target in ("redness", "greenness"):
        r = np.corrcoef(merged[f"{target}_pred"], merged[target])[0, 1]
        assert r > 0.8, f"{target}: correlation {r:.2f}"
    assert "96 of 96 images predicted" in result.stdout


def test_infer_single_images_globs_json_and_a_bad_file(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    shutil.copy(regression_dir / "images" / "img000.png", tmp_path / "a.png")
    out = tmp_path / "out.json"
    result = run_script(
        "infer.py", "-i", str(tmp_path / "a.png"), str(tmp_path / "broken.jpg"), str(regression_dir / "images" / "img00[1-3].png"),
        "-c", str(best), "-r", str(out), "--format", "json", "-q",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == ["a.png", "broken.jpg", "img001.png", "img002.png", "img003.png"]
    assert rows[1]["error"] and rows[1]["redness"] is None
    assert all(0 <= r["redness"] <= 1 and r["error"] == "" for i, r in enumerate(rows) if i != 1)
    assert not (tmp_path / "out.json.partial").exists()


def test_infer_exits_1_when_no_image_can_be_read(trained_regression, tmp_path):
    _, best = trained_regression
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    result = run_script("infer.py", "-i", str(tmp_path / "x.png"), "-c", str(best), "-r", str(tmp_path / "o.csv"), "-q")
    assert result.returncode == 1
    assert pd.read_csv(tmp_path / "o.csv")["error"].notna().all()  # the row is still written


@pytest.mark.parametrize(
    "args, message",
    [
        (["-d", "/no/such/folder"], "not a folder"),
            (["-d", ".", "-c", "x.ckpt"], "no such file: x.ckpt"),
        (["-i", "a.png", "-c", "/no/such.ckpt"], "no such file"),
        ([], "give images with -i, a folder with -d or a list with --list"),
        (["-i", "a.png", "--batch_size", "0"], "must be at least 1"),
    ],
)
def test_infer_usage_errors_are_one_line_and_exit_2(args, message, tmp_path):
    result = run_script("infer.py", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_csv_given_as_checkpoint_is_called_not_a_checkpoint(tmp_path):
    (tmp_path / "labels.csv").write_text("filename,redness\na.png,0.5\n")
    (tmp_path / "a.png").write_bytes(b"")
    result = run_script("infer.py", "-i", "a.png", "-c", "labels.csv", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "labels.csv: not a checkpoint" in result.stderr and "text file" in result.stderr


def test_hostile_pickle_checkpoint_is_refused_without_running_it(evil_checkpoint, tmp_path):
    evil, marker = evil_checkpoint
    (tmp_path / "a.png").write_bytes(b"")
    result = run_script("infer.py", "-i", str(tmp_path / "a.png"), "-c", str(evil))
    assert result.returncode == 2 and "refused" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-b", "resnet9000"], "unknown backbone 'resnet9000'; choose one of: resnet18"),
        (["-d", "/no/such/data"], "no such file or folder"),
        (["--max_epochs", "0"], "must be at least 1"),
        (["--loss", "cosine"], "invalid choice"),
    ],
)
def test_train_usage_errors_are_one_line_and_exit_2(args, message, tmp_path):
    result = run_script("train.py", *args, "--weights", "none", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_without_cached_imagenet_weights_says_what_to_do(regression_dir, tmp_path):
    env = {"TORCH_HOME": str(tmp_path / "torch"), "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = run_script("train.py", "-d", str(regression_dir), "-c", str(tmp_path / "c"), "--logs-location",
                        str(tmp_path / "l"), "-q", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "resnet18-f37072fd.pth" in result.stderr and "--weights none" in result.stderr
    assert "Traceback" not in result.stderr


def test_classification_end_to_end(trained_classifier, class_dir, tmp_path):
    result, best = trained_classifier
    assert "accuracy" in result.stdout and "val_acc=" in best.name
    out = tmp_path / "cls.csv"
    result = run_script("infer.py", "-d", str(class_dir), "-R", "-c", str(best), "-r", str(out), "-q")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["path", "label", "confidence", "prob_blue", "prob_green", "prob_red", "novelty_p",
                                   "novel", "error"]
    assert len(frame) == 36
    probs = frame[["prob_blue", "prob_green", "prob_red"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert np.allclose(frame["confidence"], probs.max(axis=1), atol=1e-6)
    truth = frame["path"].map(lambda p: p.split("/")[-2])
    assert (frame["label"] == truth).mean() >= 0.8


def test_ddp_on_two_cpu_processes_trains_with_the_weight_average_and_a_frozen_epoch(regression_dir, tmp_path):
    result = run_script(
        "train.py", "-d", str(regression_dir), "--weights", "none", "--image-size", "32", "-e", "2", "-s", "8",
        "-w", "0", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--precision", "32",
        "--freeze-epochs", "1", "-c", str(tmp_path / "ckpt"), "--logs-location", str(tmp_path / "logs"), "-q",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("best checkpoint: ") == 1  # printed by rank 0 only
    lasts = list((tmp_path / "ckpt" / "resnet18").glob("*/last.ckpt"))
    assert len(lasts) == 1
    import torch

    checkpoint = torch.load(lasts[0], weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["hyper_parameters"]["freeze_epochs"] == 1
    # one average update per optimizer step; each process steps once per batch of its shard
    assert int(checkpoint["averaging_state"]["n_averaged"]) == checkpoint["global_step"] > 0
    # the conformal calibration holds the validation errors of both processes (each validated half)
    from perspective.data import read_labelled_data, split_data

    _, val, _ = split_data(read_labelled_data(regression_dir), 0.15, 0.15, 42)
    errors = sum(len(e) for e in checkpoint["conformal"]["targets"]["redness"]["errors"])
    assert len(val) <= errors <= len(val) + 1  # the sampler pads an odd split with one repeat


def test_without_a_terminal_training_logs_a_line_per_epoch(regression_dir, tmp_path):
    """Under `perspective train > train.log` (no terminal) there is no progress bar: one log line per epoch."""
    result = run_script("train.py", "-d", str(regression_dir), "--weights", "none", "--image-size", "32", "-w", "0",
                        "--augment", "none", "-e", "2", "-s", "16", "-c", str(tmp_path / "ckpt"), "--logger", "none")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "perspective.train: epoch " in line]
    assert [line.split("epoch ")[1].split(":")[0] for line in lines] == ["1/2", "2/2"], result.stderr[-3000:]
    for line in lines:
        assert "train_loss" in line and "val_loss" in line and "(monitored)" in line
        assert "images/s" in line and "left" in line
    assert "\r" not in result.stdout + result.stderr  # no bar redrawn into the log


def test_the_time_left_follows_the_latest_epochs_not_a_slow_spell(monkeypatch, caplog):
    """Epochs of 10, 100 (another job on the cores), 10, 10, 10 s: after the fifth, 5 of 10 epochs are
    left at 10 s each, 50 s; the mean of all five epochs (28 s) would say 2m20s."""
    from types import SimpleNamespace

    from perspective.training import epoch_log

    clock = [0.0]
    monkeypatch.setattr(epoch_log.time, "perf_counter", lambda: clock[0])
    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False, max_epochs=10, current_epoch=0,
                              callback_metrics={}, world_size=1)
    callback = epoch_log.EpochLog("val_loss")
    callback.on_train_start(trainer, None)
    with caplog.at_level("INFO", logger="perspective.train"):
        for epoch, seconds in enumerate([10, 100, 10, 10, 10]):
            trainer.current_epoch = epoch
            callback.on_train_epoch_start(trainer, None)
            clock[0] += seconds
            callback.on_train_epoch_end(trainer, None)
    lines = [r.getMessage() for r in caplog.records if r.name == "perspective.train"]
    assert lines[1].endswith("about 7m20s left")  # 8 epochs at 55 s, the mean of 10 and 100
    assert lines[-1].startswith("epoch 5/10") and lines[-1].endswith("about 50s left"), lines


@pytest.mark.parametrize("data, flags", [
    ("class_dir", ["--mix", "cutmix", "--augment", "trivial"]),
    ("regression_dir", ["--mix", "cmixup", "--augment", "randaugment"]),
])
def test_mixing_and_the_policy_augmentations_train(data, flags, request, tmp_path):
    result = run_command("train", "-d", str(request.getfixturevalue(data)), "--weights", "none", "--image-size", "32",
                         "-w", "0", "-e", "2", "-s", "8", "-c", str(tmp_path / "ckpt"), "--logger", "none", "-q", *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    best = result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: ")
    import torch

    hparams = torch.load(best, weights_only=True)["hyper_parameters"]
    assert hparams["mix"] == flags[1]
