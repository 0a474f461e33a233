"""train --unlabelled: a teacher, then FixMatch from it, or its surest pseudo-labels and a student (tiny data, 32 px)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import run_command
from PIL import Image
from synthetic import make_class_folders, make_regression_set

from perspective.config import FIXMATCH_LEARNING_RATE, FIXMATCH_RATIO
from perspective.models.backbones import default_preprocessing
from perspective.models.transforms import fixmatch_views
from perspective.training.checkpointing import ended_run_best
from perspective.training.semi.fixmatch import FixMatchModel
from perspective.training.semi.self_training import pseudo_labels

FAST = ["--weights", "none", "--image-size", "32", "-s", "8", "-w", "0", "--augment", "none", "--logger", "none", "-q"]


def test_pseudo_labels_take_the_surest_of_each_predicted_class():
    rows = [{"path": f"{c}{i}", "label": c, "confidence": conf, "error": ""}
            for c, confs in (("a", [0.9, 0.5, 0.99, 0.7]), ("b", [0.6, 0.8])) for i, conf in enumerate(confs)]
    rows.append({"path": "broken", "label": None, "confidence": None, "error": "cannot read"})
    picked = pseudo_labels(rows, ["a", "b", "c"], share=0.5, pool=12)  # 6 photos, 2 for each class
    assert picked.to_dict("list") == {"path": ["a2", "a0", "b1", "b0"], "label": ["a", "a", "b", "b"],
                                      "confidence": [0.99, 0.9, 0.8, 0.6]}


def test_a_student_learns_from_the_teacher_and_keeps_its_pseudo_labels(tmp_path):
    labelled = make_class_folders(tmp_path / "labelled", per_class=8)
    pool = make_class_folders(tmp_path / "pool", per_class=10, seed=5)
    (pool / "already_labelled.png").symlink_to(next((labelled / "red").glob("*.png")))  # not taught twice
    (pool / "broken.png").write_bytes(b"not an image")
    result = run_command("train", "-d", str(labelled), "--unlabelled", str(pool), "--semi", "self-training", "--pseudo-share", "0.5", "-e", "3",
                         "-c", str(tmp_path / "ckpt"), "--run-name", "st", *FAST)
    assert result.returncode == 0, result.stderr
    student = tmp_path / "ckpt" / "resnet18" / "st"
    assert Path(result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: ")).parent == student
    assert (tmp_path / "ckpt" / "resnet18" / "st-teacher" / "last.ckpt").is_file()
    picked = pd.read_csv(student / "pseudo_labels.csv")
    assert 0 < len(picked) <= 3 * 6 and picked.groupby("label").size().max() <= 6  # half of the 31 listed, per class
    assert not picked["path"].str.contains("already_labelled|broken").any()
    assert set(picked["label"]) <= {"red", "green", "blue"}
    assert (student / "test_report" / "metrics.json").is_file()


def test_self_training_refuses_scores_and_a_missing_folder_in_one_line(tmp_path):
    scores = make_regression_set(tmp_path / "scores", n=16)
    for args, says in ((["-d", str(scores), "--unlabelled", str(scores / "images")], "is for classes"),
                       (["-d", str(scores), "--unlabelled", str(tmp_path / "nowhere")], "not a folder")):
        result = run_command("train", *args, "-e", "1", "-c", str(tmp_path / "ckpt"), *FAST)
        assert result.returncode == 2 and says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_fixmatch_continues_the_teacher_on_labelled_and_unlabelled_photos(tmp_path):
    labelled = make_class_folders(tmp_path / "labelled", per_class=8)
    pool = make_class_folders(tmp_path / "pool", per_class=10, seed=5)
    (pool / "broken.png").write_bytes(b"not an image")  # skipped if drawn, the run goes on
    fast = [*FAST[:-3], "-q"]  # a CSV log instead of none
    result = run_command("train", "-d", str(labelled), "--unlabelled", str(pool), "--fixmatch-steps", "5", "-e", "2",
                         "-l", "2e-3", "-c", str(tmp_path / "ckpt"), "--run-name", "fm", "--logger", "csv",
                         "--logs-location", str(tmp_path / "logs"), *fast)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "ckpt" / "resnet18" / "fm"
    best = Path(result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: "))
    assert best.parent == run and (run / "test_report" / "metrics.json").is_file()
    teacher_best = next((tmp_path / "ckpt" / "resnet18" / "fm-teacher").glob("epoch=*.ckpt"))
    student, teacher = (torch.load(p, map_location="cpu", weights_only=False) for p in (best, teacher_best))
    assert student["hyper_parameters"]["weights"] == str(teacher_best)  # it continued the teacher, head and all
    assert student["hyper_parameters"]["learning_rate"] == FIXMATCH_LEARNING_RATE
    assert student["global_step"] == 5
    assert not torch.equal(student["state_dict"]["head.1.weight"], teacher["state_dict"]["head.1.weight"])
    metrics = pd.read_csv(tmp_path / "logs" / "resnet18" / "fm" / "metrics.csv")
    assert metrics["train_pseudo_labelled_epoch"].dropna().between(0, 1).all()
    repeated = yaml.safe_load((run / "config.yaml").read_text())  # the user's settings, not the phase's
    assert (repeated["semi"], repeated["learning_rate"], repeated["max_epochs"]) == ("fixmatch", 2e-3, 2)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # the step runs outside a Trainer
def test_fixmatch_with_val_learns_the_validation_photos_and_claims_no_validation_score(tmp_path):
    labelled = make_class_folders(tmp_path / "labelled", per_class=8)
    pool = make_class_folders(tmp_path / "pool", per_class=10, seed=5)
    result = run_command("train", "-d", str(labelled), "--unlabelled", str(pool), "--fixmatch-steps", "3",
                         "--fixmatch-with-val", "-e", "2", "-c", str(tmp_path / "ckpt"), "--run-name", "fm", *FAST)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "ckpt" / "resnet18" / "fm"
    best = Path(result.stdout.strip().splitlines()[-1].removeprefix("best checkpoint: "))
    assert best == run / "epoch=00.ckpt" and (run / "test_report" / "metrics.json").is_file()
    teacher_best = next((tmp_path / "ckpt" / "resnet18" / "fm-teacher").glob("epoch=*.ckpt"))
    student, teacher = (torch.load(p, map_location="cpu", weights_only=False) for p in (best, teacher_best))
    assert student["hyper_parameters"]["weights"] == str(teacher_best) and student["global_step"] == 3
    # 24 photos: the teacher trained on the rows outside validation (4) and test, the phase on validation's too
    assert student["hyper_parameters"]["train_stats"]["n"] == teacher["hyper_parameters"]["train_stats"]["n"] + 4
    assert "conformal" in teacher and "conformal" not in student  # a calibration on photos it learned would lie
    refused = run_command("train", "-d", str(labelled), "--unlabelled", str(pool), "--semi", "self-training",
                          "--fixmatch-with-val", "-e", "1", "-c", str(tmp_path / "ckpt"), *FAST)
    assert refused.returncode == 2 and "--fixmatch-with-val is for --semi fixmatch" in refused.stderr


def test_resume_continues_an_unfinished_teacher_and_restarts_the_fixmatch_phase(tmp_path):
    labelled = make_class_folders(tmp_path / "labelled", per_class=8)
    pool = make_class_folders(tmp_path / "pool", per_class=10, seed=5)
    common = ["-d", str(labelled), "--unlabelled", str(pool), "--fixmatch-steps", "3", "-c", str(tmp_path / "ckpt"), *FAST]
    assert run_command("train", *common, "-e", "2", "--run-name", "fm").returncode == 0
    runs = tmp_path / "ckpt" / "resnet18"
    teacher_last, phase_best = runs / "fm-teacher" / "last.ckpt", next((runs / "fm").glob("epoch=00-*.ckpt"))

    def step_and_mtime(path):
        return torch.load(path, map_location="cpu", weights_only=True)["global_step"], path.stat().st_mtime_ns

    teacher_before, phase_before = step_and_mtime(teacher_last), step_and_mtime(runs / "fm" / "last.ckpt")
    # a phase stopped before its end has last.ckpt alone; the teacher had ended, so only the phase runs again
    phase_best.unlink()
    again = run_command("train", *common, "-e", "2", "--resume", str(runs / "fm" / "last.ckpt"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == f"best checkpoint: {phase_best}"  # the same teacher, seed, score
    assert step_and_mtime(teacher_last) == teacher_before
    assert step_and_mtime(phase_best)[0] == 3 and step_and_mtime(phase_best)[1] > phase_before[1]
    assert "exists and is not empty" not in again.stderr
    # the teacher's checkpoint with more epochs asked for: the teacher goes on, then the phase
    longer = run_command("train", *common, "-e", "3", "--resume", str(teacher_last))
    assert longer.returncode == 0, longer.stderr
    assert torch.load(teacher_last, map_location="cpu", weights_only=True)["epoch"] == 2
    teacher_best = torch.load(phase_best, map_location="cpu", weights_only=False)["hyper_parameters"]["weights"]
    assert Path(teacher_best).parent == runs / "fm-teacher"
    # a checkpoint of a run without a teacher beside it
    (tmp_path / "other").mkdir()
    stray = tmp_path / "other" / "last.ckpt"
    stray.write_bytes(phase_best.read_bytes())
    refused = run_command("train", *common, "-e", "2", "--resume", str(stray))
    assert refused.returncode == 2 and "not a run of --unlabelled" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_a_run_has_ended_when_its_epochs_are_trained_or_early_stopping_stopped_it(tmp_path):
    best = tmp_path / "epoch=03-val_acc=0.9000.ckpt"
    best.write_bytes(b"")

    def last(trained: int, stopped_epoch: int) -> Path:
        path = tmp_path / f"last-{trained}-{stopped_epoch}.ckpt"
        torch.save({"epoch": trained - 1,
                    "loops": {"fit_loop": {"epoch_progress": {"current": {"processed": trained}}}},
                    "callbacks": {"ScheduleAwareEarlyStopping{...}": {"stopped_epoch": stopped_epoch, "wait_count": 2},
                                  "RunCheckpoint{...}": {"best_model_path": str(best), "last_model_path": ""}}}, path)
        return path

    assert ended_run_best(last(6, 0), max_epochs=10) is None  # epochs left
    assert ended_run_best(last(6, 5), max_epochs=10) == str(best)  # stopped early
    assert ended_run_best(last(10, 0), max_epochs=10) == str(best)  # all trained
    assert ended_run_best(last(10, 0), max_epochs=12) is None  # more asked for: it goes on


def test_fixmatch_teaches_only_the_unlabelled_photos_it_is_sure_of():
    """Zero head weights: every photo gets the head's bias as logits, whatever the backbone sees."""
    model = FixMatchModel(weights="none", task="classification", class_names=["a", "b", "c"],
                          preprocessing=default_preprocessing("resnet18", 32).to_dict())
    labelled = (torch.randn(2, 3, 32, 32), torch.tensor([1, 2]))
    unlabelled = (torch.randn(2 * FIXMATCH_RATIO, 3, 32, 32), torch.randn(2 * FIXMATCH_RATIO, 3, 32, 32))
    torch.nn.init.zeros_(model.head[1].weight)
    torch.nn.init.zeros_(model.head[1].bias)  # p = 1/3 for every class: no pseudo-label
    assert math.isclose(model.fixmatch_step(labelled, unlabelled).item(), math.log(3), rel_tol=1e-5)
    model.head[1].bias.data = torch.tensor([5.0, 0.0, 0.0])  # p(a) = 0.987: every unlabelled photo is taught "a"
    sure = math.log(math.exp(5) + 2) - 5  # the cross-entropy of "a"
    expected = math.log(math.exp(5) + 2) + sure  # the labelled photos are b and c
    assert math.isclose(model.fixmatch_step(labelled, unlabelled).item(), expected, rel_tol=1e-5)
    assert model.training  # the weak views were predicted in evaluation mode, and training goes on


def test_fixmatch_views_are_a_mild_and_a_strong_view_of_the_photo():
    pre = default_preprocessing("resnet18", 32)
    photo = Image.effect_noise((48, 40), 64).convert("RGB")
    torch.manual_seed(0)
    weak, strong = fixmatch_views(pre)(photo)
    assert weak.shape == strong.shape == (3, 32, 32) and weak.dtype == torch.float32
    assert not torch.equal(weak, strong)
    black = (torch.zeros(3) - torch.tensor(pre.mean)) / torch.tensor(pre.std)  # the cut-out, normalised
    assert (strong == black[:, None, None]).all(0).sum() >= 0.02 * 32 * 32
