"""``--runtime``: a checkpoint's OpenVINO twin made once and cached, never trusted when stale or corrupt,
safe when two processes make it at once, and PyTorch with one log line whenever it cannot be had."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT, run_command

from perspective.errors import UserError
from perspective.models import load_checkpoint
from perspective.prediction import converted
from perspective.prediction.converted import DIGESTS, cache_folder, converted_model, predicting_model
from perspective.prediction.runtimes import OpenVinoModel

pytest.importorskip("openvino")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def checkpoint(trained_regression):
    return trained_regression[1]


def test_auto_on_the_cpu_converts_once_and_then_reads_the_cache(home, checkpoint, monkeypatch, caplog):
    model = load_checkpoint(checkpoint)
    with caplog.at_level(logging.INFO):
        first = predicting_model("auto", checkpoint, model, "cpu")
    assert isinstance(first, OpenVinoModel) and first.names == model.names
    assert any("runtime: OpenVINO" in m for m in caplog.messages)
    folder = cache_folder(checkpoint, "openvino")
    assert (folder / DIGESTS).is_file() and folder.parent == home / "converted"
    monkeypatch.setattr(converted, "_convert", lambda *a: pytest.fail("converted again"))
    assert isinstance(predicting_model("auto", checkpoint, model, "cpu"), OpenVinoModel)
    assert predicting_model("auto", checkpoint, model, "cuda") is model  # a GPU keeps PyTorch
    assert predicting_model("torch", checkpoint, model, "cpu") is model


def test_a_corrupt_cache_is_made_again_never_used(home, checkpoint, caplog):
    model = load_checkpoint(checkpoint)
    converted_model(checkpoint, model)
    weights = cache_folder(checkpoint, "openvino") / "model.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO):
        again = converted_model(checkpoint, model)
    assert [m for m in caplog.messages if "incomplete or changed: converting again" in m]
    assert isinstance(again, OpenVinoModel) and weights.read_bytes() != bytes(data)


def test_a_changed_checkpoint_or_runtime_gets_its_own_conversion(home, checkpoint, tmp_path, monkeypatch):
    from perspective.models.checkpoint import store_calibration

    model = load_checkpoint(checkpoint)
    converted_model(checkpoint, model)
    copy = tmp_path / "copy.ckpt"
    copy.write_bytes(checkpoint.read_bytes())
    assert cache_folder(copy, "openvino") == cache_folder(checkpoint, "openvino")  # the content names it
    changed = {**model.novelty, "calibration": model.novelty["calibration"] + 0.01}
    store_calibration(copy, novelty=changed)  # another content
    assert cache_folder(copy, "openvino") != cache_folder(checkpoint, "openvino")
    monkeypatch.setattr(converted, "runtime_version", lambda runtime: "9999.0")
    assert not cache_folder(checkpoint, "openvino").exists()  # an upgraded runtime converts afresh


def test_a_failed_conversion_or_a_disagreement_falls_back_to_pytorch_with_one_line(home, checkpoint, monkeypatch,
                                                                                     caplog):
    model = load_checkpoint(checkpoint)

    def broken(*args, **kwargs):
        raise RuntimeError("this graph cannot be converted\nmore detail")

    monkeypatch.setattr(converted, "openvino_graph", broken)
    with caplog.at_level(logging.INFO):
        assert predicting_model("auto", checkpoint, model, "cpu") is model
    [line] = [m for m in caplog.messages if "runtime: PyTorch" in m]
    assert "conversion to openvino failed" in line and "\n" not in line
    with pytest.raises(UserError, match="conversion to openvino failed"):
        predicting_model("openvino", checkpoint, model, "cpu")
    monkeypatch.undo()
    monkeypatch.setenv("PERSPECTIVE_HOME", str(home))
    with pytest.raises(UserError, match="differs from PyTorch"):
        converted_model(checkpoint, model, tolerance=0.0)
    assert not list((home / "converted").glob(".converting-*"))  # no half-made folder left behind
    assert not cache_folder(checkpoint, "openvino").exists()  # nothing unchecked enters the cache


def test_the_cache_keeps_the_most_recently_used_conversions(home, checkpoint, tmp_path, monkeypatch):
    from perspective.models.checkpoint import store_calibration

    monkeypatch.setattr(converted, "KEEP", 2)
    model = load_checkpoint(checkpoint)
    copies = []
    for i in range(3):  # three checkpoints of different content
        copy = tmp_path / f"copy{i}.ckpt"
        copy.write_bytes(checkpoint.read_bytes())
        store_calibration(copy, novelty={**model.novelty, "calibration": model.novelty["calibration"] + i})
        copies.append(copy)
    converted_model(copies[0], model)
    converted_model(copies[1], model)
    time.sleep(0.05)
    converted_model(copies[0], model)  # used again: now the most recent
    converted_model(copies[2], model)
    kept = sorted(f.name for f in (home / "converted").iterdir())
    assert kept == sorted(cache_folder(c, "openvino").name for c in (copies[0], copies[2]))


def test_two_processes_converting_at_once_leave_one_whole_conversion(home, checkpoint):
    script = textwrap.dedent(f"""
        from perspective.models import load_checkpoint
        from perspective.prediction.converted import converted_model
        model = converted_model({str(checkpoint)!r}, load_checkpoint({str(checkpoint)!r}))
        print(type(model).__name__)
    """)
    env = {"PERSPECTIVE_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    processes = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["OpenVinoModel", "OpenVinoModel"]
    folders = list((home / "converted").iterdir())
    assert [f.name for f in folders] == [cache_folder(checkpoint, "openvino").name]  # one, and no scratch left


def test_what_needs_pytorch_keeps_it(home, checkpoint, regression_dir, tmp_path):
    model = load_checkpoint(checkpoint)
    assert predicting_model("auto", checkpoint, model, "cpu", needs_torch="saliency") is model
    with pytest.raises(UserError, match="needs the model in PyTorch"):
        predicting_model("openvino", checkpoint, model, "cpu", needs_torch="saliency")
    refused = run_command("select", "-d", str(regression_dir / "images"), "-c", str(checkpoint), "--runtime",
                          "openvino", "-o", str(tmp_path / "sel"))
    assert refused.returncode == 2 and "select reads the backbone's features" in refused.stderr
