"""perspective pretrain: self-supervised pretraining on unlabelled images (tiny data, 32 px)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT, run_command
from synthetic import make_regression_set

from perspective.config import PRETRAIN_METHODS

FAST = ["--image-size", "32", "-s", "8", "-w", "0", "--logger", "csv", "-q"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """48 unlabelled photos in nested folders, a labels.csv that pretraining ignores."""
    root = make_regression_set(tmp_path_factory.mktemp("photos"), n=48)
    (root / "images" / "more").mkdir()
    for path in sorted((root / "images").glob("img04*.png")):
        path.rename(root / "images" / "more" / path.name)
    return root


@pytest.fixture(scope="module")
def pretrained(photos, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, Path]:
    work = tmp_path_factory.mktemp("pretrain")
    out = work / "backbone.ckpt"
    # VICReg: its loss falls clearly within 6 epochs of 48 tiny photos (29 to 22 when written). SimCLR's
    # swings with each epoch's random views more than it falls at this size; the loop is the same.
    result = run_command("pretrain", "-d", str(photos), "-o", str(out), "-e", "6", "--method", "vicreg",
                         "-c", str(work / "ckpt"),
                         "--logs-location", str(work / "logs"), "--run-name", "r", *FAST)
    return result, out, work


def test_pretraining_learns_and_writes_a_backbone_file(pretrained):
    result, out, work = pretrained
    assert result.returncode == 0, result.stderr
    assert "pretrained on 48 images (0 unreadable, skipped)" in result.stdout  # subfolders too
    losses = pd.read_csv(work / "logs" / "pretrain-resnet18" / "r" / "metrics.csv")["train_loss_epoch"]
    assert len(losses) == 6 and losses.iloc[-2:].mean() < 0.9 * losses.iloc[:2].mean(), losses.tolist()
    content = torch.load(out, weights_only=True)
    assert all(k.startswith("backbone.") for k in content["state_dict"])
    info = content["hyper_parameters"]
    assert info["backbone"] == "resnet18" and info["preprocessing"]["image_size"] == 32
    assert info["pretrain"]["method"] == "vicreg" and info["pretrain"]["images"] == 48
    assert (work / "ckpt" / "pretrain-resnet18" / "r" / "last.ckpt").is_file()


def test_the_output_starts_train_at_its_size_with_self_supervised_fine_tuning(pretrained, tmp_path):
    _, out, _ = pretrained
    data = make_regression_set(tmp_path / "labelled", n=32, seed=3)
    result = run_command("train", "-d", str(data), "--weights", str(out), "-e", "2", "-s", "8", "-w", "0",
                         "--augment", "none", "-c", str(tmp_path / "ckpt"), "--logger", "none", "-q")
    assert result.returncode == 0, result.stderr
    best = Path(result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: "))
    hparams = torch.load(best, weights_only=True)["hyper_parameters"]
    assert hparams["preprocessing"]["image_size"] == 32  # the pretraining's size, no --image-size given
    assert hparams["freeze_epochs"] == 0 and hparams["backbone_lr_scale"] == 1.0
    initial = torch.load(out, weights_only=True)["state_dict"]["backbone.conv1.weight"]
    fresh = torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False).weight
    assert not torch.allclose(initial, fresh)  # the file holds learnt weights, not a new initialisation
    other = run_command("train", "-d", str(data), "--weights", str(out), "-b", "resnet34", "-e", "1", "-q")
    assert other.returncode == 2 and "holds a resnet18 backbone" in other.stderr


def test_a_killed_run_resumes_where_it_stopped(photos, tmp_path):
    out = tmp_path / "backbone.ckpt"
    command = [sys.executable, "-m", "perspective", "pretrain", "-d", str(photos), "-o", str(out), "-e", "40",
               "-c", str(tmp_path / "ckpt"), "--logs-location", str(tmp_path / "logs"), "--run-name", "k", *FAST]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "ckpt" / "pretrain-resnet18" / "k" / "last.ckpt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (last.is_file() and torch.load(last, weights_only=True)["epoch"] >= 1):
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert 1 <= killed_at < 39 and not out.exists()  # nothing written half
    result = run_command("pretrain", "-d", str(photos), "-o", str(out), "-e", str(killed_at + 3), "--resume",
                         "-c", str(tmp_path / "ckpt"), "--logs-location", str(tmp_path / "logs"), *FAST)
    assert result.returncode == 0, result.stderr
    assert torch.load(last, weights_only=True)["epoch"] == killed_at + 2  # the last of the resumed epochs
    assert out.is_file()


def test_bad_input_is_one_line_and_nothing_is_written(photos, tmp_path):
    out = tmp_path / "backbone.ckpt"
    empty = tmp_path / "empty"
    empty.mkdir()
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted((photos / "images").glob("img00*.png"))[:5]:
        (few / path.name).write_bytes(path.read_bytes())
    for folder, message in ((empty, "no images found"), (few, "5 readable image(s), fewer than one batch")):
        result = run_command("pretrain", "-d", str(folder), "-o", str(out), "-e", "1", *FAST)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    (few / "broken.png").write_bytes(b"not a png")
    result = run_command("pretrain", "-d", str(few), "-o", str(out), "-e", "1", "-c", str(tmp_path / "c"),
                         "--logs-location", str(tmp_path / "l"), *FAST, "-s", "4")
    assert result.returncode == 0 and "pretrained on 5 images (1 unreadable, skipped)" in result.stdout, result.stderr


def test_a_missing_lightly_is_named_in_one_line(photos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lightly", None)  # import lightly now raises ImportError
    result = run_command("pretrain", "-d", str(photos), "-o", str(tmp_path / "b.ckpt"), *FAST)
    assert result.returncode == 2 and "pip install 'perspective[pretrain]'" in result.stderr


@pytest.mark.parametrize("method", PRETRAIN_METHODS)
def test_hflip_prob_zero_never_mirrors_a_view(method):
    """--hflip-prob 0 (car photos: the mirror swaps left and right): an image with a chequered left half and
    a flat right half keeps its chequer on the left in every view, whatever the colour changes; the default
    mirrors some views."""
    from PIL import Image

    from perspective.models.backbones import default_preprocessing
    from perspective.training.pretrain import view_transform

    pixels = torch.full((64, 64, 3), 128, dtype=torch.uint8)
    pixels[:, :32] = ((torch.arange(64)[:, None] // 2 + torch.arange(32)[None, :] // 2) % 2 * 255)[..., None]
    image = Image.fromarray(pixels.numpy())
    pre = default_preprocessing("resnet18", 32)

    def mirrored_views(hflip_prob: float) -> int:
        torch.manual_seed(0)
        views = [v for _ in range(20) for v in view_transform(method, pre, hflip_prob)(image)]
        # the chequer's side: its half varies more (a crop may hold one half only: both vary alike then)
        return sum(bool(v[:, :, 16:].std() > 2 * v[:, :, :16].std() + 1e-3) for v in views)

    assert mirrored_views(0.0) == 0
    assert mirrored_views(0.5) > 0


def blur_chances(transform) -> list[float]:
    """The chance of every lightly GaussianBlur inside a (multi-)view transform, however deeply nested."""
    from lightly.transforms.gaussian_blur import GaussianBlur

    if isinstance(transform, GaussianBlur):
        return [transform.prob]
    found = []
    for child in getattr(transform, "transforms", None) or [getattr(transform, "transform", None)]:
        if child is not None:
            found += blur_chances(child)
    return found


@pytest.mark.parametrize("method", PRETRAIN_METHODS)
def test_blur_prob_sets_every_views_blur_and_none_keeps_the_methods_own(method):
    from perspective.models.backbones import default_preprocessing
    from perspective.training.pretrain import view_transform

    pre = default_preprocessing("resnet18", 32)
    own = blur_chances(view_transform(method, pre))
    assert len(own) == 2 and max(own) > 0  # two views, each with lightly's own chance
    assert blur_chances(view_transform(method, pre, blur_prob=0.0)) == [0.0, 0.0]
    assert blur_chances(view_transform(method, pre, blur_prob=0.3)) == [0.3, 0.3]


@pytest.mark.parametrize("method", PRETRAIN_METHODS)
def test_every_method_gives_a_finite_loss_that_reaches_the_backbone(method):
    """One step of each method on two views of 8 random images: a finite loss whose gradient reaches the
    backbone's first layer (the part train --weights keeps)."""
    from perspective.training.pretrain import PretrainModule

    torch.manual_seed(0)
    module = PretrainModule("resnet18", "none", method, 32, 1e-3, 1e-4, 1.0)
    if method == "byol":  # its momentum schedule reads the trainer's step count
        module.trainer = type("T", (), {"estimated_stepping_batches": 10, "global_step": 0})()
    module.log = lambda *a, **k: None
    views = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    loss = module.training_step(views, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert module.backbone.conv1.weight.grad is not None and module.backbone.conv1.weight.grad.abs().sum() > 0
