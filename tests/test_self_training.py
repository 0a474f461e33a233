"""train --unlabelled: a teacher, its surest pseudo-labels, a student (tiny data, 32 px)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import run_command
from synthetic import make_class_folders, make_regression_set

from perspective.training.self_training import pseudo_labels

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
    result = run_command("train", "-d", str(labelled), "--unlabelled", str(pool), "--pseudo-share", "0.5", "-e", "3",
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
