"""Result files on sample_set stay byte-identical: the shipped model's predictions, as infer and evaluate
write them, against the files in tests/golden/ (made with these commands before the package was
reorganised, and compared by hand then).

fp32 (``--precision 32``) in PyTorch (``--runtime torch``), so that the files do not depend on whether the
CPU computes bf16. To make them again after a change that is meant to alter the numbers:
``python tests/test_golden.py``. The default runtime on a CPU, OpenVINO, gives the same rows within
``OPENVINO_TOLERANCE`` (its fp32 kernels sum in another order).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_command

GOLDEN = Path(__file__).parent / "golden"
COMMON = ("-d", "sample_set", "--precision", "32", "--runtime", "torch", "-q")
OPENVINO_TOLERANCE = 1e-4  # as every export's parity check (ExportConfig.tolerance)
INFER = {  # result file -> infer's extra flags
    "infer.csv": (),
    "infer_interval.csv": ("--interval", "0.9"),
    "infer.parquet": ("--format", "parquet"),
    "infer.json": ("--format", "json"),
}
EVALUATE = {  # folder -> evaluate's extra flags; its result files
    "evaluate": (),
    "evaluate_interval": ("--interval", "0.9"),
}
EVALUATE_FILES = ("predictions.csv", "metrics.json", "metrics.csv")


def make(out: Path) -> None:
    """Every golden file, written under ``out`` by the commands (run from the repository's root)."""
    for name, extra in INFER.items():
        result = run_command("infer", *COMMON, *extra, "-o", str(out / name))
        assert result.returncode == 0, result.stderr
    for folder, extra in EVALUATE.items():
        result = run_command("evaluate", *COMMON, *extra, "--explain-samples", "0", "-o", str(out / folder))
        assert result.returncode == 0, result.stderr
        # evaluate writes absolute paths: the golden copy holds them relative to the repository
        predictions = out / folder / "predictions.csv"
        predictions.write_text(predictions.read_text().replace(f"{ROOT}/", ""))


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        make(out)
    return out


@pytest.mark.parametrize("name", [*INFER, *(f"{d}/{f}" for d in EVALUATE for f in EVALUATE_FILES)])
def test_the_result_file_is_byte_identical_to_the_golden_one(written, name):
    assert (written / name).read_bytes() == (GOLDEN / name).read_bytes(), f"{name} differs from tests/golden/{name}"


def test_openvino_gives_the_golden_rows_within_the_tolerance(tmp_path):
    pytest.importorskip("openvino")
    import pandas as pd

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        result = run_command("infer", "-d", "sample_set", "--precision", "32", "--runtime", "openvino", "-q",
                             "--interval", "0.9", "-o", str(tmp_path / "ov.csv"))
    assert result.returncode == 0, result.stderr
    got, golden = pd.read_csv(tmp_path / "ov.csv"), pd.read_csv(GOLDEN / "infer_interval.csv")
    assert list(got.columns) == list(golden.columns) and (got["path"] == golden["path"]).all()
    numbers = [c for c in golden.columns if c not in ("path", "novelty_p", "novel", "error") and not c.startswith("true_")]
    difference = (got[numbers] - golden[numbers]).abs().to_numpy().max()
    assert difference <= OPENVINO_TOLERANCE + 1e-6, difference  # rows rounded to 6 decimals
    # a p-value moves in steps of 1/2001 (the calibration's photos) when a score crosses one of theirs
    assert (got["novelty_p"] - golden["novelty_p"]).abs().max() <= 2 / 2001 and (got["novel"] == golden["novel"]).all()


if __name__ == "__main__":
    import os
    import tempfile

    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as scratch:
        make(Path(scratch))
        for name in [*INFER, *(f"{d}/{f}" for d in EVALUATE for f in EVALUATE_FILES)]:
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(scratch) / name, GOLDEN / name)
    print(f"golden files written to {GOLDEN}", file=sys.stderr)
