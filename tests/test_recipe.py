"""The training recipe: weight averaging, schedule-aware stopping, freezing, balance, TTA, partial labels."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from conftest import run_command, run_script
from synthetic import make_regression_set

from perspective.config import TrainConfig
from perspective.data.datasets import balanced_sampler
from perspective.models import PerspectiveModel, load_checkpoint
from perspective.models.module import balanced_class_weights, regression_loss
from perspective.prediction import Predictor, mirror_average, mirror_permutation
from perspective.training import fine_tuning, train
from perspective.training.callbacks import (
    ScheduleAwareEarlyStopping,
    default_min_epochs,
    default_patience,
    ema_decay_at,
)
from perspective.training.run import kept_head


def _config(data: Path, tmp: Path, **overrides) -> TrainConfig:
    settings = dict(data=str(data), weights="none", image_size=32, workers=0, augment="none", batch_size=8,
                    max_epochs=2, checkpoints_location=str(tmp / "ckpt"), logs_location=str(tmp / "logs"),
                    run_name="run", quiet=True, test=False, precision="32-true")
    return TrainConfig(**{**settings, **overrides})


class _InterruptAfterFirstEpoch(pl.Callback):
    """Ctrl-C at the end of epoch 0, as a user would press it."""

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            raise KeyboardInterrupt


def _interrupted_then_resumed(cfg: TrainConfig, *resumed_callbacks: pl.Callback):
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[_InterruptAfterFirstEpoch()])
    # Lightning's graceful stop leaves SIGINT ignored; train puts the handler back, so Ctrl-C still works
    # here and the processes started later (the other tests' commands) do not inherit an ignored SIGINT
    assert signal.getsignal(signal.SIGINT) is handler
    last = Path(cfg.checkpoints_location) / cfg.backbone / cfg.run_name / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0
    from dataclasses import replace

    result = train(replace(cfg, resume=str(last)), callbacks=list(resumed_callbacks))
    assert [p.name for p in last.parent.glob("last*.ckpt")] == ["last.ckpt"]  # refreshed, no last-v1.ckpt beside it
    return result


@pytest.fixture(scope="module")
def small_regression(tmp_path_factory) -> Path:
    return make_regression_set(tmp_path_factory.mktemp("small"), n=40)


# --- weight averaging ------------------------------------------------------------------------------


def test_ema_decay_warms_up_with_the_step_count_and_stops_at_the_cap():
    assert ema_decay_at(0, 0.999) == 0.0  # the first update copies the weights
    assert 0.8 < ema_decay_at(10, 0.999) < 0.85  # an average of the last few steps early on
    assert 0.96 < ema_decay_at(100, 0.999) < 0.97
    assert ema_decay_at(100_000, 0.999) == 0.999
    # a 200-step run keeps almost nothing of its random start (0.999 ** 200 would keep 82%)
    kept = np.prod([ema_decay_at(t, 0.999) for t in range(1, 200)])
    assert kept < 1e-4


def test_the_averaged_weights_are_saved_validated_and_predicted_with(small_regression, tmp_path):
    result = train(_config(small_regression, tmp_path, max_epochs=3, learning_rate=3e-3))
    checkpoint = torch.load(result.best_checkpoint, weights_only=True)
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert set(averaged) == set(raw)
    assert not torch.equal(averaged["head.1.weight"], raw["head.1.weight"])
    assert int(checkpoint["averaging_state"]["n_averaged"]) == checkpoint["global_step"]

    images = sorted((small_regression / "images").glob("*.png"))[:8]
    loaded = load_checkpoint(result.best_checkpoint)
    rows = list(Predictor(loaded, "cpu", "32").predict_paths(images, progress=False))
    again = list(Predictor(load_checkpoint(result.best_checkpoint), "cpu", "32").predict_paths(images, progress=False))
    assert rows == again  # the file alone gives the same numbers
    raw_model = load_checkpoint(result.best_checkpoint)
    raw_model.load_state_dict(raw)
    raw_rows = list(Predictor(raw_model, "cpu", "32").predict_paths(images, progress=False))
    assert [r["redness"] for r in rows] != [r["redness"] for r in raw_rows]


# --- checkpoints and stopping ----------------------------------------------------------------------


class _ScriptedLoss(pl.LightningModule):
    """A tiny model whose validation loss follows a script, one value per epoch."""

    def __init__(self, losses):
        super().__init__()
        self.losses = losses
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.tensor(self.losses[self.current_epoch]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=4)

    def val_dataloader(self):
        return self.train_dataloader()


def _epochs_run(losses, stopping, tmp_path, **trainer_args) -> int:
    trainer = pl.Trainer(max_epochs=len(losses), callbacks=[stopping], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         **trainer_args)
    trainer.fit(_ScriptedLoss(losses))
    return trainer.current_epoch


def test_early_stopping_waits_for_its_start_epoch_then_counts_patience(tmp_path):
    losses = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # worse every epoch
    plain = ScheduleAwareEarlyStopping(0, monitor="val_loss", patience=2)
    assert _epochs_run(losses, plain, tmp_path) == 3  # stopped after epoch 2
    waiting = ScheduleAwareEarlyStopping(4, monitor="val_loss", patience=2)
    assert _epochs_run(losses, waiting, tmp_path) == 7  # epoch 4 sets the score; 5 and 6 fail it


def test_early_stopping_starts_halfway_under_the_cosine_schedule_and_is_off_unless_asked():
    assert default_min_epochs(30, "cosine") == 8
    assert default_min_epochs(15, "cosine") == 4
    assert default_min_epochs(1, "cosine") == 0  # a one-epoch run still has a best checkpoint
    assert default_min_epochs(30, "plateau") == 0
    assert default_patience("cosine") is None and default_patience("plateau") == 5


class _BetterEveryEpochThenWorse(pl.Callback):
    """A validation loss that improves until epoch 1, then worsens: a lucky early model."""

    def on_validation_epoch_end(self, trainer, pl_module):
        pl_module.log("val_loss", [0.5, 0.1, 0.9, 0.8, 0.7, 0.6][trainer.current_epoch])


def test_no_checkpoint_is_called_best_before_min_epochs(small_regression, tmp_path):
    result = train(_config(small_regression, tmp_path, max_epochs=6, ema_decay=0.0, min_epochs=3),
                   callbacks=[_BetterEveryEpochThenWorse()])
    run = Path(result.run_dir)
    # epoch 1 had the best score of the run, but in the high-rate half; the best of the rest is epoch 5
    assert sorted(p.name.split("-")[0] for p in run.glob("epoch=*.ckpt")) == ["epoch=03", "epoch=04", "epoch=05"]
    assert Path(result.best_checkpoint).name.startswith("epoch=05")
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == 5  # no early stop under cosine


class _WorseEveryEpoch(pl.Callback):
    """Reports a validation loss that rises each epoch, so only the first epochs are among the best."""

    def on_validation_epoch_end(self, trainer, pl_module):
        pl_module.log("val_loss", float(trainer.current_epoch + 1))


def test_last_checkpoint_is_refreshed_every_epoch_even_without_a_new_best(small_regression, tmp_path):
    result = train(_config(small_regression, tmp_path, max_epochs=5, ema_decay=0.0, min_epochs=0),
                   callbacks=[_WorseEveryEpoch()])
    run = Path(result.run_dir)
    assert sorted(p.name.split("-")[0] for p in run.glob("epoch=*.ckpt")) == ["epoch=00", "epoch=01", "epoch=02"]
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == 4


class _TiedScores(pl.Callback):
    def on_validation_epoch_end(self, trainer, pl_module):
        pl_module.log("val_loss", [0.5, 0.3, 0.3, 0.3, 0.4][trainer.current_epoch])


def test_of_equally_scored_checkpoints_the_latest_is_the_best(small_regression, tmp_path):
    result = train(_config(small_regression, tmp_path, max_epochs=5, ema_decay=0.0, min_epochs=0),
                   callbacks=[_TiedScores()])
    run = Path(result.run_dir)
    assert sorted(p.name.split("-")[0] for p in run.glob("epoch=*.ckpt")) == ["epoch=01", "epoch=02", "epoch=03"]
    assert Path(result.best_checkpoint).name.startswith("epoch=03")  # Lightning alone keeps epoch 1
    for saved in ("last.ckpt", Path(result.best_checkpoint).name):  # what --resume reads
        states = torch.load(run / saved, weights_only=False)["callbacks"].values()
        assert [Path(s["best_model_path"]).name for s in states if "best_model_path" in s] == [
            Path(result.best_checkpoint).name]


class _BetterEveryEpoch(pl.Callback):
    def on_validation_epoch_end(self, trainer, pl_module):
        pl_module.log("val_loss", 1.0 / (trainer.current_epoch + 1))


def test_background_checkpoint_writes_keep_their_order_and_a_run_without_loggers_trains(small_regression, tmp_path):
    """Saves, the last.ckpt link and the removal of a checkpoint that fell out of the top 3 all run in the
    writer's thread: at the end only the newest three remain, last.ckpt is the newest one's file, and
    nothing half-written is left. ``--logger none`` trains (the learning-rate monitor needs a logger)."""
    result = train(_config(small_regression, tmp_path, max_epochs=5, ema_decay=0.0, min_epochs=0, logger="none"),
                   callbacks=[_BetterEveryEpoch()])
    run = Path(result.run_dir)
    assert sorted(p.name.split("-")[0] for p in run.glob("epoch=*.ckpt")) == ["epoch=02", "epoch=03", "epoch=04"]
    assert Path(result.best_checkpoint).name.startswith("epoch=04")
    assert (run / "last.ckpt").stat().st_ino == Path(result.best_checkpoint).stat().st_ino
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == 4
    assert not list(run.glob("*partial*")) and not (tmp_path / "logs").exists()

# --- fine-tuning controls --------------------------------------------------------------------------


class _BackboneRecorder(pl.Callback):
    """Whether the backbone's and the head's weights changed during each training epoch."""

    def __init__(self):
        self.changed: dict[int, tuple[bool, bool]] = {}

    def _weights(self, module):
        return [p.detach().clone() for p in module.parameters()]

    def on_train_epoch_start(self, trainer, pl_module):
        self._before = self._weights(pl_module.backbone), self._weights(pl_module.head)

    def on_train_epoch_end(self, trainer, pl_module):
        after = self._weights(pl_module.backbone), self._weights(pl_module.head)
        self.changed[trainer.current_epoch] = tuple(
            any(not torch.equal(a, b) for a, b in zip(before, now)) for before, now in zip(self._before, after)
        )


def test_freeze_epochs_train_the_head_alone_then_the_backbone(small_regression, tmp_path):
    recorder = _BackboneRecorder()
    result = train(_config(small_regression, tmp_path, max_epochs=3, freeze_epochs=2, ema_decay=0.0),
                   callbacks=[recorder])
    assert recorder.changed == {0: (False, True), 1: (False, True), 2: (True, True)}
    checkpoint = torch.load(result.best_checkpoint, weights_only=True)  # --ema-decay 0: no average kept
    assert "current_model_state" not in checkpoint and "averaging_state" not in checkpoint


def test_a_resume_between_frozen_and_unfrozen_epochs_keeps_the_schedule_and_the_average(small_regression, tmp_path):
    recorder = _BackboneRecorder()
    cfg = _config(small_regression, tmp_path, max_epochs=3, freeze_epochs=2)
    result = _interrupted_then_resumed(cfg, recorder)
    # epoch 1 is still frozen after the resume (not frozen for ever, nor unfrozen early)
    assert recorder.changed == {1: (False, True), 2: (True, True)}
    # the weight average went on from where it stopped: one update per optimizer step of the whole run
    checkpoint = torch.load(Path(result.run_dir) / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 2
    assert int(checkpoint["averaging_state"]["n_averaged"]) == checkpoint["global_step"]


def test_fine_tuning_defaults_follow_the_starting_weights(tmp_path):
    assert fine_tuning(TrainConfig(weights="none")) == (0, 1.0)
    assert fine_tuning(TrainConfig(weights="imagenet")) == (1, 0.1)
    assert fine_tuning(TrainConfig(weights=str(tmp_path / "x.ckpt"))) == (1, 0.1)
    assert fine_tuning(TrainConfig(weights="imagenet", freeze_epochs=0, backbone_lr_scale=0.5)) == (0, 0.5)


def test_backbone_lr_scale_gives_the_backbone_its_share_of_the_rate():
    model = PerspectiveModel(weights="none", target_names=["a"], learning_rate=1e-3, backbone_lr_scale=0.1)
    groups = {g["name"]: g for g in model.parameter_groups()}
    assert groups["head"]["lr"] == pytest.approx(1e-3) and groups["backbone"]["lr"] == pytest.approx(1e-4)
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))


def test_a_toolkit_checkpoint_starts_a_run_and_brings_its_head_for_the_same_targets(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    from perspective.models.backbones import create_backbone

    backbone = create_backbone("resnet18", str(best), 32)
    saved = torch.load(best, weights_only=True)["state_dict"]
    assert torch.equal(backbone.state_dict()["conv1.weight"], saved["backbone.conv1.weight"])
    result = run_script("train.py", "-d", str(regression_dir), "--weights", str(best), "--image-size", "32", "-e", "2",
                        "-s", "16", "-w", "0", "--augment", "none", "-c", str(tmp_path / "c"), "--logs-location",
                        str(tmp_path / "l"), "--test-fraction", "0", "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    hparams = torch.load(result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: "),
                         weights_only=True)["hyper_parameters"]
    assert (hparams["freeze_epochs"], hparams["backbone_lr_scale"]) == (0, 0.1)  # same targets: the head came too


def test_a_checkpoint_of_the_same_outputs_brings_its_head(trained_regression):
    _, best = trained_regression
    saved = torch.load(best, weights_only=True)
    info, names = saved["hyper_parameters"], saved["hyper_parameters"]["target_names"]
    head = kept_head(str(best), info, "regression", names, info["output_activation"])
    assert torch.equal(head["1.weight"], saved["state_dict"]["head.1.weight"].float())
    assert kept_head(str(best), info, "regression", names[::-1], info["output_activation"]) is None  # other order
    assert kept_head(str(best), info, "regression", names, "none") is None  # other activation
    assert kept_head(str(best), info, "classification", names, "none") is None
    assert fine_tuning(TrainConfig(weights=str(best)), info, head_kept=True) == (0, 0.1)
    assert fine_tuning(TrainConfig(weights=str(best)), info) == (1, 0.1)


# --- class balance ---------------------------------------------------------------------------------


def test_the_balanced_sampler_draws_classes_about_evenly():
    labels = [0] * 80 + [1] * 15 + [2] * 5
    torch.manual_seed(0)
    drawn = torch.tensor(labels)[list(balanced_sampler(labels))]
    assert len(drawn) == len(labels)
    torch.manual_seed(0)
    many = torch.tensor(labels)[[i for _ in range(30) for i in balanced_sampler(labels)]]
    shares = torch.bincount(many, minlength=3) / len(many)
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.04), shares


def test_balanced_loss_weights_are_inverse_class_frequencies():
    assert balanced_class_weights([30, 10]) == pytest.approx([40 / 60, 40 / 20])
    model = PerspectiveModel(weights="none", task="classification", class_names=["a", "b"], balance="loss",
                             train_stats={"counts": {"a": 30, "b": 10}})
    assert model.class_weights.tolist() == pytest.approx([2 / 3, 2.0])
    assert PerspectiveModel(weights="none", task="classification", class_names=["a", "b"]).class_weights is None


@pytest.mark.parametrize("balance", ["sampler", "loss"])
def test_balance_is_recorded_in_the_checkpoint(balance, class_dir, tmp_path):
    result = run_script("train.py", "-d", str(class_dir), "--weights", "none", "--image-size", "32", "-e", "1",
                        "-s", "8", "-w", "0", "--balance", balance, "-c", str(tmp_path / "c"),
                        "--logs-location", str(tmp_path / "l"), "--test-fraction", "0", "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    best = result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: ")
    assert torch.load(best, weights_only=True)["hyper_parameters"]["balance"] == balance


def test_balance_is_refused_for_regression(regression_dir, tmp_path):
    result = run_command("train", "-d", str(regression_dir), "--weights", "none", "--balance", "sampler",
                         "-c", str(tmp_path / "c"), "-q")
    assert result.returncode == 2 and "--balance is for classification" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- test-time augmentation ------------------------------------------------------------------------


def _half_brightness(x: torch.Tensor) -> torch.Tensor:
    """A stand-in model: target 0 is the left half's brightness, target 1 the right half's."""
    half = x.shape[-1] // 2
    return torch.stack([x[..., :half].mean((1, 2, 3)), x[..., half:].mean((1, 2, 3))], dim=1)


def test_tta_swaps_the_mirrors_left_and_right_targets_back():
    image = torch.zeros(1, 3, 8, 8)
    image[..., :4] = 1.0  # bright on the left
    swapped = mirror_average(_half_brightness, image, [1, 0])
    assert swapped.tolist() == [[1.0, 0.0]]  # the mirror's "right" is the image's left
    unswapped = mirror_average(_half_brightness, image, [0, 1])
    assert unswapped.tolist() == [[0.5, 0.5]]  # what a plain mirror average would give


def test_tta_uses_the_checkpoints_flip_pairs_and_refuses_a_side_without_a_twin():
    model = PerspectiveModel(weights="none", target_names=["door_left", "hood", "door_right"],
                             flip_permutation=[2, 1, 0])
    assert mirror_permutation(model) == [2, 1, 0]
    lonely = PerspectiveModel(weights="none", target_names=["door_left", "hood"], flip_permutation=None)
    with pytest.raises(Exception, match="--tta"):
        mirror_permutation(lonely)
    # a checkpoint from before flip_permutation was recorded: test_shipped_model.py (load_checkpoint)


def test_predictor_with_tta_averages_an_image_with_its_mirror(tmp_path):
    model = PerspectiveModel(weights="none", target_names=["a_left", "a_right"], flip_permutation=[1, 0],
                             preprocessing={"image_size": 32, "resize_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1],
                                            "interpolation": "bilinear", "resize_mode": "full"})
    model.predict_outputs = _half_brightness
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, :16] = 255
    from PIL import Image

    Image.fromarray(pixels).save(tmp_path / "left.png")
    plain = next(Predictor(model, "cpu", "32").predict_paths([tmp_path / "left.png"], progress=False))
    tta = next(Predictor(model, "cpu", "32", tta=True).predict_paths([tmp_path / "left.png"], progress=False))
    assert plain["a_left"] == pytest.approx(1.0) and plain["a_right"] == pytest.approx(0.0)
    assert tta["a_left"] == pytest.approx(1.0) and tta["a_right"] == pytest.approx(0.0)


def test_infer_and_evaluate_take_tta(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    plain = run_command("infer", "-d", str(regression_dir / "images"), "-c", str(best), "-r", str(tmp_path / "a.csv"), "-q")
    tta = run_command("infer", "-d", str(regression_dir / "images"), "-c", str(best), "-r", str(tmp_path / "b.csv"),
                     "-q", "--tta")
    assert plain.returncode == tta.returncode == 0, tta.stderr
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert not np.allclose(a["redness"], b["redness"])  # the mirror changes the numbers ...
    assert np.corrcoef(a["redness"], b["redness"])[0, 1] > 0.9  # ... not what they say
    result = run_command("evaluate", "-c", str(best), "-d", str(regression_dir), "-o", str(tmp_path / "e"), "-q",
                        "--tta", "--samples", "0")
    assert result.returncode == 0, result.stderr


# --- partial labels --------------------------------------------------------------------------------


def test_the_masked_loss_ignores_blank_cells():
    pred = torch.tensor([[0.5, 0.2], [0.1, 0.9]])
    target = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    loss = regression_loss("mse")(pred, target)
    assert loss.item() == pytest.approx((0.25 + 0.01 + 0.01) / 3)
    full = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert regression_loss("mse")(pred, full).item() == pytest.approx(torch.nn.functional.mse_loss(pred, full).item())
    assert torch.isfinite(regression_loss("weighted_mse")(pred, target))


def test_validation_metrics_count_only_labelled_cells():
    model = PerspectiveModel(weights="none", target_names=["a", "b"])
    out = torch.tensor([[0.5, 0.2], [0.1, 0.9], [0.3, 0.3]])
    y = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [0.5, 0.0]])
    model._update_metrics(out, y)
    a, b = (metrics.compute() for metrics in model.val_metrics)
    assert a["mse"].item() == pytest.approx((0.25 + 0.01 + 0.04) / 3)
    assert b["mse"].item() == pytest.approx((0.01 + 0.09) / 2)  # the blank cell is not a zero


@pytest.fixture
def partly_labelled(tmp_path) -> Path:
    data = make_regression_set(tmp_path / "partial", n=40)
    frame = pd.read_csv(data / "labels.csv")
    frame.loc[::3, "greenness"] = np.nan  # a third of one target left blank
    frame.to_csv(data / "labels.csv", index=False)
    return data


def test_allow_missing_targets_trains_and_scores_the_labelled_cells(partly_labelled, tmp_path):
    common = ["-d", str(partly_labelled), "--weights", "none", "--image-size", "32", "-e", "2", "-s", "8", "-w", "0",
              "--augment", "none", "-c", str(tmp_path / "c"), "--logs-location", str(tmp_path / "l"), "-q"]
    refused = run_script("train.py", *common)
    assert refused.returncode == 2 and "--allow-missing-targets" in refused.stderr
    result = run_script("train.py", *common, "--allow-missing-targets")
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    run = Path(result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: ")).parent
    metrics = json.loads((run / "test_report" / "metrics.json").read_text())
    truth = pd.read_csv(partly_labelled / "labels.csv")
    assert metrics["n_labelled"]["redness"] == metrics["n"] > metrics["n_labelled"]["greenness"] > 0
    assert truth["greenness"].isna().sum() > 0


def test_a_row_without_any_target_is_still_refused(partly_labelled, tmp_path):
    frame = pd.read_csv(partly_labelled / "labels.csv")
    frame.loc[4, ["redness", "greenness"]] = np.nan
    frame.to_csv(partly_labelled / "labels.csv", index=False)
    result = run_command("train", "-d", str(partly_labelled), "--weights", "none", "--allow-missing-targets",
                         "-c", str(tmp_path / "c"), "-q")
    assert result.returncode == 2 and "no target value at all on line(s) 6" in result.stderr


# --- learning-rate finder --------------------------------------------------------------------------


def test_lr_find_saves_its_plot_and_trains_with_the_suggestion(small_regression, tmp_path):
    result = train(_config(small_regression, tmp_path, max_epochs=1, lr_find=True))
    assert (Path(result.run_dir) / "lr_find.png").stat().st_size > 1000
    assert result.found_learning_rate is not None and result.found_learning_rate > 0
    hparams = torch.load(Path(result.run_dir) / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["learning_rate"] == pytest.approx(result.found_learning_rate)
