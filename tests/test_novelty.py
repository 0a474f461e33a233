"""The novelty flag: the summary's arithmetic, a training run that stores one, the hint and ``evaluate
--calibrate`` for a checkpoint without one, and the columns every prediction path writes."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_command
from PIL import Image

from perspective.models import load_checkpoint, read_checkpoint
from perspective.models.checkpoint import save_atomically
from perspective.models.novelty import (
    BANK_BYTES,
    BANK_IMAGES,
    CHECKPOINT_KEY,
    bank_size,
    make_bank,
    novelty_scores,
    p_values,
    summarise,
)
from perspective.prediction.novelty import halves

HINT = "carries no novelty summary"


def test_the_bank_is_capped_by_count_and_bytes_and_is_a_seeded_sample_of_unit_rows():
    assert bank_size(512) == BANK_IMAGES
    assert bank_size(2048) * 2048 * 2 <= BANK_BYTES < (bank_size(2048) + 1) * 2048 * 2
    features = torch.randn(5000, 64)
    bank = make_bank(features, seed=3)
    assert bank.shape == (BANK_IMAGES, 64) and bank.dtype == torch.float16
    assert torch.allclose(bank.float().norm(dim=1), torch.ones(BANK_IMAGES), atol=1e-3)
    assert torch.equal(bank, make_bank(features, seed=3)) and not torch.equal(bank, make_bank(features, seed=4))
    small = make_bank(features[:10])
    assert len(small) == 10  # fewer photos than the cap: every one is kept


def test_a_bank_photo_scores_zero_and_an_orthogonal_one_scores_one():
    bank = make_bank(torch.eye(4)[:3] * 5)
    scores = novelty_scores(torch.tensor([[0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]]), bank)
    assert scores.tolist() == pytest.approx([0.0, 1.0], abs=1e-3)


def test_p_values_count_the_calibration_scores_at_least_as_large():
    calibration = np.array([0.1, 0.2, 0.2, 0.5])
    assert p_values([0.0, 0.2, 0.3, 0.9], calibration).tolist() == pytest.approx([5 / 5, 4 / 5, 2 / 5, 1 / 5])


def test_photos_like_the_calibration_ones_are_flagged_at_about_the_level():
    rng = np.random.default_rng(0)
    calibration = np.sort(rng.gamma(2.0, size=2000))
    fresh = rng.gamma(2.0, size=(5, 20000))
    shares = (p_values(fresh.ravel(), calibration).reshape(fresh.shape) <= 0.01).mean(axis=1)
    assert ((shares >= 0.005) & (shares <= 0.02)).all(), shares


def test_a_summary_holds_the_bank_and_the_sorted_calibration_scores():
    bank = make_bank(torch.randn(50, 8))
    summary = summarise(bank, torch.randn(30, 8))
    assert summary["method"] == "knn" and summary["bank"].dtype == torch.float16
    calibration = summary["calibration"]
    assert len(calibration) == 30 and torch.equal(calibration, calibration.sort().values)
    with pytest.raises(ValueError):
        summarise(bank, torch.empty(0, 8))


def test_halves_split_every_photo_once():
    paths = [f"{i}.png" for i in range(11)]
    bank, held = halves(paths, seed=1)
    assert sorted(bank + held) == sorted(paths) and len(bank) == 5 and not set(bank) & set(held)


def test_a_training_run_stores_a_summary_from_its_training_and_validation_photos(trained_regression):
    _, best = trained_regression
    summary = read_checkpoint(best)[CHECKPOINT_KEY]
    # 96 photos split 70/15/15: a bank of the 68 training photos, calibrated on the 14 validation ones
    assert (len(summary["bank"]), len(summary["calibration"])) == (68, 14)
    assert summary["bank"].shape[1] == load_checkpoint(best).head[-1].in_features


def _noise(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_infer_gives_novelty_p_and_novel_at_the_level_asked(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((regression_dir / "images").iterdir())[:6]:
        (photos / path.name).symlink_to(path)
    _noise(photos / "zz_noise.png")
    result = run_command("infer", "-c", str(best), "-d", str(photos), "--novelty", "0.1", "-o", str(tmp_path / "r.csv"))
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(tmp_path / "r.csv")
    assert list(rows.columns)[-3:] == ["novelty_p", "novel", "error"]
    assert rows["novelty_p"].between(0, 1).all()
    # p-values are multiples of 1/15 (14 calibration photos), and novel marks those at or below the level
    assert np.allclose(rows["novelty_p"] * 15, (rows["novelty_p"] * 15).round(), atol=1e-4)
    assert (rows["novel"] == (rows["novelty_p"] <= 0.1)).all()
    assert f"{rows['novel'].sum()} of 7 images flagged novel at novelty p <= 0.1" in result.stdout
    never = run_command("infer", "-c", str(best), "-d", str(photos), "--novelty", "0", "-o", str(tmp_path / "n.csv"))
    assert never.returncode == 0 and not pd.read_csv(tmp_path / "n.csv")["novel"].any()


def test_tta_keeps_the_novelty_columns(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    result = run_command("infer", "-c", str(best), "-d", str(regression_dir / "images"), "--tta", "-q",
                         "-o", str(tmp_path / "tta.csv"))
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(tmp_path / "tta.csv")
    assert rows["novelty_p"].between(0, 1).all() and rows["novel"].dtype == bool


def test_a_checkpoint_without_a_summary_gives_a_one_line_hint_and_evaluate_calibrate_adds_one(
        trained_regression, regression_dir, tmp_path, caplog):
    _, best = trained_regression
    old = tmp_path / "old.ckpt"
    content = read_checkpoint(best)
    del content[CHECKPOINT_KEY]
    save_atomically(content, old)
    with caplog.at_level(logging.INFO):
        result = run_command("infer", "-c", str(old), "-d", str(regression_dir / "images"), "-o", str(tmp_path / "a.csv"))
    assert result.returncode == 0, result.stderr
    assert "novelty_p" not in pd.read_csv(tmp_path / "a.csv").columns
    [hint] = [message for message in caplog.messages if HINT in message]
    assert "evaluate" in hint and "--calibrate" in hint

    calibrated = run_command("evaluate", "-c", str(old), "-d", str(regression_dir), "--calibrate", "--samples", "0",
                             "-o", str(tmp_path / "ev"))
    assert calibrated.returncode == 0, calibrated.stderr
    assert "novelty summary of 48 images, calibrated on 48" in calibrated.stdout
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = run_command("infer", "-c", str(old), "-d", str(regression_dir / "images"), "-o", str(tmp_path / "b.csv"))
    assert again.returncode == 0 and "novelty_p" in pd.read_csv(tmp_path / "b.csv").columns
    assert not [message for message in caplog.messages if HINT in message]


def test_evaluate_reports_how_many_photos_were_flagged(trained_regression, regression_dir, tmp_path):
    _, best = trained_regression
    result = run_command("evaluate", "-c", str(best), "-d", str(regression_dir), "--samples", "0",
                         "-o", str(tmp_path / "ev"))
    assert result.returncode == 0, result.stderr
    assert "of 96 images flagged novel at novelty p <= 0.01" in result.stdout
    assert "Novelty" in (tmp_path / "ev" / "report.html").read_text()


def test_an_onnx_export_computes_the_same_novelty_as_the_checkpoint(trained_regression, regression_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    _, best = trained_regression
    exported = run_command("export", "-c", str(best), "--format", "onnx", "-o", str(tmp_path / "m.onnx"), "-q")
    assert exported.returncode == 0, exported.stderr
    rows = {}
    for name, model in (("pt", best), ("onnx", tmp_path / "m.onnx")):
        result = run_command("infer", "-c", str(model), "-d", str(regression_dir / "images"), "--precision", "32", "-q",
                             "-o", str(tmp_path / f"{name}.csv"))
        assert result.returncode == 0, result.stderr
        rows[name] = pd.read_csv(tmp_path / f"{name}.csv")
    assert list(rows["onnx"].columns) == list(rows["pt"].columns)
    np.testing.assert_allclose(rows["onnx"]["novelty_p"], rows["pt"]["novelty_p"], atol=1 / 15 + 1e-6)
    assert (rows["onnx"]["novelty_p"] == rows["pt"]["novelty_p"]).mean() > 0.9


def test_parquet_and_json_keep_novel_as_a_boolean(trained_regression, regression_dir, tmp_path):
    pytest.importorskip("pyarrow")
    _, best = trained_regression
    for fmt in ("parquet", "json"):
        result = run_command("infer", "-c", str(best), "-d", str(regression_dir / "images"), "--format", fmt, "-q",
                             "-o", str(tmp_path / f"r.{fmt}"))
        assert result.returncode == 0, result.stderr
        rows = pd.read_parquet(tmp_path / "r.parquet") if fmt == "parquet" else pd.read_json(tmp_path / "r.json")
        assert rows["novel"].dtype == bool, fmt
