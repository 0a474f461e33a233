"""Prediction over many images: part files, resume after SIGKILL, several processes, lists, parquet."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, run_command, run_script

from perspective.cli.infer import main as infer_main
from perspective.data import list_images, read_path_list
from perspective.errors import UserError
from perspective.prediction import parts as bulk
from perspective.results import ResultWriter

SAMPLES = ROOT / "sample_set"


def infer(*args: str) -> int:
    return infer_main(["-q", "--show", "0", "-w", "0", "--precision", "32", *args])


def read(path: Path) -> pd.DataFrame:
    """A result file; an unread image's empty ``novel`` cell as NaN in every format (parquet gives None)."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if "novel" in frame:
        frame["novel"] = frame["novel"].astype(object).where(frame["novel"].notna(), float("nan"))
    return frame


# --- listing -----------------------------------------------------------------------------------------


def test_a_text_list_and_a_csv_list_name_images_relative_to_their_folder(tmp_path):
    (tmp_path / "lists").mkdir()
    text = tmp_path / "lists" / "photos.txt"
    text.write_text(f"# photos of the week\n\na.jpg\n  sub/b.png  \n{tmp_path / 'c.jpg'}\n")
    assert read_path_list(text) == [str(tmp_path / "lists" / "a.jpg"), str(tmp_path / "lists" / "sub" / "b.png"),
                                    str(tmp_path / "c.jpg")]
    table = tmp_path / "lists" / "labels.csv"
    pd.DataFrame({"filename": ["x.jpg", "y.jpg"], "score": [0.1, 0.2]}).to_csv(table, index=False)
    assert read_path_list(table) == [str(tmp_path / "lists" / "x.jpg"), str(tmp_path / "lists" / "y.jpg")]
    pd.DataFrame({"path": ["/abs/z.jpg"]}).to_csv(table, index=False)
    assert read_path_list(table) == ["/abs/z.jpg"]
    pd.DataFrame({"image": ["z.jpg"]}).to_csv(table, index=False)
    with pytest.raises(ValueError, match="'filename' or 'path' column"):
        read_path_list(table)


def test_a_folder_tree_is_listed_as_path_strings_in_the_order_of_their_parts(tmp_path):
    for name in ("b.jpg", "a/z.png", "a.b/c.jpg", "a/y/x.jpg", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = list_images(tmp_path, recursive=True)
    assert all(isinstance(p, str) for p in found)
    assert found == sorted(found, key=lambda p: Path(p).parts)  # the order pathlib's sorting gave
    assert [os.path.relpath(p, tmp_path) for p in found] == ["a/y/x.jpg", "a/z.png", "a.b/c.jpg", "b.jpg"]
    assert [os.path.basename(p) for p in list_images(tmp_path)] == ["b.jpg"]


def test_infer_refuses_a_list_without_a_path_column_in_one_line(tmp_path):
    table = tmp_path / "list.csv"
    table.write_text("image\nx.jpg\n")
    result = run_command("infer", "--list", str(table), "-o", str(tmp_path / "out.csv"))
    assert result.returncode == 2 and "filename' or 'path' column" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- part files --------------------------------------------------------------------------------------


def test_a_row_cut_off_by_a_kill_is_dropped_and_parts_merge_in_input_order(tmp_path):
    columns = ["path", "perspective_score_hood", "error"]
    store = bulk.PartStore(tmp_path / "out.csv", columns)
    with bulk.PartWriter(bulk.part_path(store.folder, 1, 0), columns) as part:
        for index in (0, 2, 4):
            part.write(index, {"path": f"img{index}.jpg", "perspective_score_hood": index / 10, "error": ""})
    with bulk.PartWriter(bulk.part_path(store.folder, 1, 1), columns) as part:
        part.write(1, {"path": "img1.jpg", "perspective_score_hood": None, "error": "OSError: broken"})
    with open(bulk.part_path(store.folder, 1, 1), "a") as file:
        file.write("3,img3.jpg,0.3")  # SIGKILL in the middle of a row
    with bulk.PartWriter(bulk.part_path(store.folder, 2, 0), columns) as part:
        part.write(3, {"path": "img3.jpg", "perspective_score_hood": 0.000001, "error": ""})
    paths = [f"img{i}.jpg" for i in range(6)]
    store.prepare(resume=True, paths=paths, result_format="csv")
    assert store.done(paths).tolist() == [True, True, True, True, True, False]
    rows, counts = bulk.merge(store, generation=2)
    rows = list(rows)
    assert [r["path"] for r in rows] == [f"img{i}.jpg" for i in range(5)]
    assert rows[1] == {"path": "img1.jpg", "perspective_score_hood": None, "error": "OSError: broken"}
    assert rows[3]["perspective_score_hood"] == 0.000001 and rows[4]["perspective_score_hood"] == 0.4
    assert rows[0]["error"] == ""  # as Predictor.row writes it (JSON results say "", not null)
    assert (counts.rows, counts.unreadable, counts.predicted_now) == (5, 1, 1)


def test_resume_refuses_parts_of_another_image_list(tmp_path):
    columns = ["path", "perspective_score_hood", "error"]
    store = bulk.PartStore(tmp_path / "out.csv", columns)
    with bulk.PartWriter(bulk.part_path(store.folder, 1, 0), columns) as part:
        part.write(0, {"path": "old.jpg", "perspective_score_hood": 0.5, "error": ""})
    with pytest.raises(UserError, match="the image list changed"):
        bulk.start_run(store, ["new.jpg", "old.jpg"], resume=True, result_format="csv")


def test_parquet_reads_back_to_the_frame_of_the_csv(tmp_path):
    columns = ["path", "label", "confidence", "prob_a", "prob_b", "error"]
    rows = [{"path": "x.jpg", "label": "a", "confidence": 0.75, "prob_a": 0.75, "prob_b": 0.25, "error": ""},
            {"path": "y.jpg", "label": None, "confidence": None, "prob_a": None, "prob_b": None,
             "error": "OSError: cannot identify image file"}]
    for fmt in ("csv", "parquet"):
        with ResultWriter(tmp_path / f"out.{fmt}", columns, fmt) as out:
            for row in rows:
                out.write(row)
    parquet, text = read(tmp_path / "out.parquet"), read(tmp_path / "out.csv")
    assert list(parquet.columns) == columns and len(parquet) == 2
    pd.testing.assert_frame_equal(parquet, text, check_dtype=False)


# --- whole runs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_images(tmp_path_factory) -> Path:
    """The 24 sample photos listed 10 times over (240 rows, repeated paths included), in a text list."""
    folder = tmp_path_factory.mktemp("many")
    listing = folder / "photos.txt"
    listing.write_text("\n".join(str(p) for p in list_images(SAMPLES) * 10) + "\n")
    return listing


@pytest.fixture(scope="module")
def clean_result(tmp_path_factory, many_images) -> Path:
    out = tmp_path_factory.mktemp("clean") / "clean.csv"
    assert infer("--list", str(many_images), "-o", str(out)) == 0
    return out


def test_a_killed_run_resumes_to_the_clean_result_predicting_no_image_twice(tmp_path, many_images, clean_result,
                                                                              capsys, caplog):
    out = tmp_path / "scores.csv"
    command = [sys.executable, str(ROOT / "infer.py"), "--list", str(many_images), "-o", str(out), "-s", "1", "-w",
               "0", "-q", "--precision", "32"]
    run = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = bulk.parts_folder(out)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and run.poll() is None:
        written = sum(p.read_text().count("\n") - 1 for p in parts.glob("*.csv")) if parts.is_dir() else 0
        if written >= 12:
            break
        time.sleep(0.05)
    assert run.poll() is None, "the run ended before it could be killed: " + run.stderr.read().decode()[-2000:]
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not out.exists()  # nothing merged: the rows so far are in the parts
    store_rows = sum(p.read_text().count("\n") - 1 for p in parts.glob("*.csv"))  # complete rows end in a newline
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        assert infer_main(["--list", str(many_images), "-o", str(out), "--resume", "-s", "8", "-w", "0", "--show",
                           "0", "--precision", "32", "--log-every", "64"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "240 of 240 images predicted" in summary
    assert f"{store_rows} skipped, already predicted by the interrupted run; {240 - store_rows} predicted now" in summary
    assert not any("appears in two part files" in r.message for r in caplog.records)
    assert not parts.exists()
    # the same rows; the numbers agree to the float32 noise of other batch compositions (fp32 kernels
    # may pick another algorithm for another batch size), far below the 6 decimals written
    pd.testing.assert_frame_equal(read(out), read(clean_result), check_exact=False, atol=2e-6, rtol=0)


def test_a_finished_or_interrupted_result_file_is_resumed_from_in_any_format(tmp_path, many_images, clean_result,
                                                                              capsys):
    half = tmp_path / "half.txt"
    lines = many_images.read_text().splitlines()
    half.write_text("\n".join(lines[:100]) + "\n")
    out = tmp_path / "scores.json"
    assert infer("--list", str(half), "-o", str(out), "--format", "json") == 0
    capsys.readouterr()
    assert infer("--list", str(many_images), "-o", str(out), "--format", "json", "--resume") == 0
    assert "100 skipped, already predicted by the interrupted run; 140 predicted now" in capsys.readouterr().out
    resumed = pd.read_json(out, orient="records")
    assert (resumed["error"] == "").all()  # JSON keeps the empty string; CSV reads back an empty cell
    pd.testing.assert_frame_equal(resumed.drop(columns="error"), pd.read_csv(clean_result).drop(columns="error"),
                                  check_dtype=False)


def test_two_cpu_processes_write_the_rows_of_one(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in list_images(SAMPLES)[:9]:
        (folder / os.path.basename(path)).write_bytes(Path(path).read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image")
    listing = folder / "list.csv"
    pd.DataFrame({"filename": sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg")}).to_csv(listing,
                                                                                                   index=False)
    assert infer("-d", str(folder), "-o", str(tmp_path / "one.csv"), "-s", "4") == 0
    result = run_script("infer.py", "--list", str(listing), "-o", str(tmp_path / "two.parquet"), "--format", "parquet",
                        "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "-s", "4", "-w", "0", "-q",
                        "--precision", "32", "--show", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("images predicted") == 1  # the first process reports
    assert "9 of 10 images predicted" in result.stdout and "(1 unreadable)" in result.stdout
    one, two = read(tmp_path / "one.csv"), read(tmp_path / "two.parquet")
    assert list(two["path"]) == list(one["path"])  # input order, every row once
    assert two["error"].fillna("").str.contains("UnidentifiedImageError|cannot identify").sum() == 1
    pd.testing.assert_frame_equal(two, one, check_dtype=False, atol=1e-5)
    assert not bulk.parts_folder(tmp_path / "two.parquet").exists()
