import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from perspective.data import load_image, read_labelled_data, split_data
from perspective.data.datasets import LabelledImageDataset
from perspective.errors import UserError


def test_folder_with_labels_csv_is_regression_on_every_numeric_column(regression_dir):
    data = read_labelled_data(regression_dir)
    assert data.task == "regression" and data.names == ["redness", "greenness"]
    assert len(data.frame) == 96 and data.targets().shape == (96, 2)
    assert all(p.endswith(".png") and "images" in p for p in data.frame["path"])


def test_perspective_score_columns_are_the_default_targets_of_the_car_format(regression_dir, tmp_path):
    frame = pd.read_csv(regression_dir / "labels.csv").rename(columns={"redness": "perspective_score_hood"})
    frame["azimuth"] = 90.0
    frame.to_csv(tmp_path / "labels.csv", index=False)
    data = read_labelled_data(tmp_path / "labels.csv", images=regression_dir / "images")
    assert data.names == ["perspective_score_hood"]


def test_csv_path_with_images_flag_and_target_subset(regression_dir, tmp_path):
    shutil.copytree(regression_dir / "images", tmp_path / "pics")
    data = read_labelled_data(regression_dir / "labels.csv", images=tmp_path / "pics", targets=["greenness"])
    assert data.names == ["greenness"] and str(tmp_path / "pics") in data.frame["path"][0]


def test_imgs_folder_is_accepted(regression_dir, tmp_path):
    shutil.copytree(regression_dir / "images", tmp_path / "imgs")
    shutil.copy(regression_dir / "labels.csv", tmp_path)
    assert len(read_labelled_data(tmp_path).frame) == 96


def test_image_folder_layout_is_classification(class_dir):
    data = read_labelled_data(class_dir)
    assert data.task == "classification" and data.names == ["blue", "green", "red"]
    assert sorted(np.bincount(data.targets()).tolist()) == [12, 12, 12]


def test_csv_with_label_column_is_classification(class_dir, tmp_path):
    rows = [{"filename": f"{c}/{c}{i:02d}.png", "colour": c} for c in ("red", "green") for i in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    data = read_labelled_data(tmp_path / "labels.csv", images=class_dir, label_column="colour")
    assert data.task == "classification" and data.names == ["green", "red"] and len(data.frame) == 6


@pytest.mark.parametrize(
    "csv, kwargs, message",
    [
        ("name,score\na.png,1\n", {}, "no 'filename' column"),
        ("filename,score\n", {}, "no rows"),
        ("filename,score\nimg000.png,0.5\n", {"targets": ["height"]}, "unknown target column"),
        ("filename,kind\nimg000.png,car\n", {"task": "regression"}, "no numeric target columns"),
        ("filename,score\nimg000.png,\nimg001.png,0.2\n", {}, "missing target values on line(s) 2"),
        ("filename,score\nnope.png,0.5\n", {}, "none of the listed images exists"),
        ("filename,score\nimg000.png,0.5\n", {"task": "classification"}, "no label column 'label'"),
    ],
)
def test_bad_csv_layouts_are_data_errors(regression_dir, tmp_path, csv, kwargs, message):
    (tmp_path / "labels.csv").write_text(csv)
    with pytest.raises(UserError) as err:
        read_labelled_data(tmp_path / "labels.csv", images=regression_dir / "images", **kwargs)
    assert message in str(err.value)


def test_missing_data_and_empty_folders_are_data_errors(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        read_labelled_data(tmp_path / "nothing")
    with pytest.raises(UserError, match="class subfolders"):
        read_labelled_data(tmp_path)
    with pytest.raises(UserError, match="regression needs labels.csv"):
        read_labelled_data(tmp_path, task="regression")


def test_stratified_split_keeps_class_proportions_and_is_seeded(tmp_path):
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(100)], "label": labels})
    from perspective.data import LabelledData

    data = LabelledData(frame, "classification", ["a", "b", "c"], "test")
    train, val, test = split_data(data, 0.2, 0.2, seed=3)
    assert (len(train), len(val), len(test)) == (60, 20, 20)
    for part in (val, test):
        assert part["label"].value_counts().to_dict() == {"a": 12, "b": 6, "c": 2}
    assert set(train.path) | set(val.path) | set(test.path) == set(frame.path)
    again = split_data(data, 0.2, 0.2, seed=3)
    assert again[1].path.tolist() == val.path.tolist()
    assert split_data(data, 0.2, 0.2, seed=4)[1].path.tolist() != val.path.tolist()


def test_split_fractions_are_checked(regression_dir):
    data = read_labelled_data(regression_dir)
    with pytest.raises(UserError):
        split_data(data, 0.6, 0.5, seed=0)


def test_images_of_every_mode_become_rgb_with_exif_orientation(tmp_path):
    Image.new("RGBA", (10, 6), (255, 0, 0, 0)).save(tmp_path / "rgba.png")
    Image.new("P", (10, 6)).save(tmp_path / "p.png")
    Image.new("L", (10, 6), 128).save(tmp_path / "l.jpg")
    Image.fromarray(np.full((6, 10), 65535, dtype=np.uint16)).save(tmp_path / "i16.png")
    for name in ("rgba.png", "p.png", "l.jpg", "i16.png"):
        img = load_image(tmp_path / name)
        assert img.mode == "RGB" and img.size == (10, 6), name
    assert load_image(tmp_path / "rgba.png").getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert load_image(tmp_path / "i16.png").getpixel((0, 0)) == (255, 255, 255)  # 16-bit white stays white

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: a 10x6 sensor image is shown 6x10
    Image.new("RGB", (10, 6)).save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").size == (6, 10)


def test_dataset_flip_mirrors_the_image_and_swaps_side_targets(tmp_path):
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    pixels[:, :2] = 255  # left half white
    Image.fromarray(pixels).save(tmp_path / "half.png")
    targets = np.array([[1.0, 0.0, 0.5]], dtype=np.float32)  # left, right, hood
    to_tensor = lambda img: torch.from_numpy(np.asarray(img).copy())  # noqa: E731
    dataset = LabelledImageDataset([str(tmp_path / "half.png")], targets, to_tensor, flip_permutation=[1, 0, 2])
    seen = set()
    torch.manual_seed(0)
    for _ in range(40):
        image, target = dataset[0]
        flipped = image[0, 0, 0].item() == 0
        assert target.tolist() == ([0.0, 1.0, 0.5] if flipped else [1.0, 0.0, 0.5])
        seen.add(flipped)
    assert seen == {True, False}
