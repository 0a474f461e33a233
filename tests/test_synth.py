"""The synthetic car generator: determinism, score geometry, labels.csv and the command line."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perspective.errors import UserError
from perspective.synth import (
    LABEL_COLUMNS,
    PARTS,
    SCORE_COLUMNS,
    VIEWS,
    Camera,
    car_parts,
    default_car,
    generate,
    headon_polygon,
    make_sample,
    part_scores,
    random_camera,
    random_car,
    render,
    shoelace_area,
    view_of,
)

ROOT = Path(__file__).resolve().parent.parent
SMALL = (96, 72)


def shot(azimuth: float, elevation: float, distance: float = 9.0, focal: float = 500.0, **kwargs) -> dict[str, float]:
    """Scores of the default car photographed at 320x240 from the given direction."""
    car = default_car()
    return part_scores(car, Camera.looking_at_car(car, azimuth, elevation, distance, focal, (320, 240), **kwargs))


def facing(part: str, camera: Camera) -> bool:
    face = car_parts(default_car())[part]
    return float(np.dot(face.normal, camera.position - face.centre)) > 0


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "set", 6, seed=5, size=SMALL, progress=False)


def read_rows(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(folder / "labels.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_other_seeds_differ(tmp_path):
    # the second copy is rendered by a process pool: the files must not depend on the worker count
    first = folder_bytes(generate(tmp_path / "a", 4, seed=3, size=SMALL, progress=False))
    again = folder_bytes(generate(tmp_path / "b", 4, seed=3, size=SMALL, progress=False, workers=2))
    other = folder_bytes(generate(tmp_path / "c", 4, seed=4, size=SMALL, progress=False))
    assert sorted(first) == ["images/000000.jpg", "images/000001.jpg", "images/000002.jpg", "images/000003.jpg",
                             "labels.csv"]
    assert first == again
    assert other["labels.csv"] != first["labels.csv"]
    assert all(other[name] != first[name] for name in first if name.startswith("images/"))


def test_an_image_does_not_depend_on_the_count(tmp_path):
    four = folder_bytes(generate(tmp_path / "four", 4, seed=3, size=SMALL, progress=False))
    two = folder_bytes(generate(tmp_path / "two", 2, seed=3, size=SMALL, progress=False))
    assert two["images/000001.jpg"] == four["images/000001.jpg"]
    assert two["labels.csv"].splitlines() == four["labels.csv"].splitlines()[:3]


# --- score geometry ---------------------------------------------------------------------------


def test_front_view_sees_the_hood_and_no_side_or_rear():
    scores = shot(0, 20)
    assert scores["hood"] > 0.3
    assert scores["front_bumper"] > 0.5
    assert scores["backdoor_left"] == 0 and scores["backdoor_right"] == 0 and scores["rear"] == 0


def test_right_side_view_sees_the_right_doors_only():
    scores = shot(270, 10)
    assert scores["backdoor_left"] == 0 and scores["frontdoor_left"] == 0
    assert scores["backdoor_right"] > 0.5 and scores["frontdoor_right"] > 0.5


def test_left_rear_three_quarter_view_sees_the_left_back_door_and_rear():
    scores = shot(135, 10)
    assert scores["backdoor_left"] > 0.5
    assert scores["rear"] > 0.3
    assert scores["backdoor_right"] == 0 and scores["front_bumper"] == 0


def test_a_part_hidden_behind_the_cabin_scores_zero():
    car = default_car()
    camera = Camera.looking_at_car(car, 180, 15, 9.0, 500.0, (320, 240))
    assert facing("hood", camera)  # not back-face culled: the zero below is occlusion by the cabin
    scores = part_scores(car, camera)
    assert scores["hood"] == 0
    assert scores["roof"] > 0 and scores["rear"] > 0.5
    assert shot(180, 30)["hood"] > 0  # higher up, the hood shows over the roof


def test_a_fully_visible_head_on_part_scores_about_one():
    assert shot(180, 0)["rear"] > 0.95
    side = shot(90, 0)
    assert side["frontdoor_left"] > 0.95 and side["backdoor_left"] > 0.95


def test_oblique_view_scores_about_the_cosine():
    # Door seen 60 degrees off its normal, from far away with a long lens: nearly orthographic.
    scores = shot(90 + 60, 0, distance=60.0, focal=4000.0)
    assert scores["backdoor_left"] == pytest.approx(0.5, abs=0.05)


def test_the_frame_cuts_what_is_outside_it():
    full = shot(90, 0)
    car = default_car()
    camera = Camera.looking_at_car(car, 90, 0, 9.0, 500.0, (320, 240))
    u_split = float(camera.project(np.array([[car.door_split, car.width / 2, 0.5]]))[0][0, 0])
    # Move the optical axis so that the door split lands on the right edge of the frame: the back door
    # (image right in this view: the car's rear) leaves the picture, the front door stays.
    cut = part_scores(car, Camera.looking_at_car(car, 90, 0, 9.0, 500.0, (320, 240),
                                                 principal_offset=(320 - u_split, 0.0)))
    assert cut["backdoor_left"] < 0.05 < full["backdoor_left"]
    assert cut["frontdoor_left"] == pytest.approx(full["frontdoor_left"], abs=0.02)


def test_mirrored_views_swap_left_and_right():
    left, right = shot(60, 20), shot(300, 20)
    for part in ("frontdoor", "backdoor"):
        assert left[f"{part}_left"] == pytest.approx(right[f"{part}_right"], abs=0.01)
        assert left[f"{part}_left"] > 0.2 and right[f"{part}_left"] == 0


def test_headon_polygon_is_what_a_camera_on_the_normal_sees():
    car = default_car()
    camera = Camera.looking_at_car(car, 30, 25, 8.0, 400.0, (320, 240))
    for part in ("hood", "rear", "frontdoor_left"):
        face = car_parts(car)[part]
        distance = float(np.linalg.norm(camera.position - face.centre))
        onaxis = Camera.look_at(face.centre + distance * face.normal, face.centre, 400.0, (320, 240))
        projected, _ = onaxis.project(face.vertices)
        expected = face.area * (400.0 / distance) ** 2
        assert shoelace_area(headon_polygon(face, camera)) == pytest.approx(expected, rel=1e-9)
        assert shoelace_area(projected) == pytest.approx(expected, rel=1e-6)


def test_render_returns_the_geometric_scores():
    rng = np.random.default_rng(11)
    car = random_car(rng)
    camera = random_camera(car, rng, (160, 120))
    image, scores = render(car, camera, rng)
    assert image.size == (160, 120) and image.mode == "RGB"
    assert scores == part_scores(car, camera)
    assert list(scores) == list(PARTS)


def test_random_photos_score_in_range_and_only_parts_facing_the_camera():
    for index in range(25):
        rng = np.random.default_rng([1, index])
        car = random_car(rng)
        camera = random_camera(car, rng, (160, 120))
        scores = part_scores(car, camera)
        faces = car_parts(car)
        assert all(0.0 <= s <= 1.0 for s in scores.values())
        assert any(s > 0.3 for s in scores.values())
        for part, score in scores.items():
            if score > 0:
                assert float(np.dot(faces[part].normal, camera.position - faces[part].centre)) > 0, part


@pytest.mark.parametrize("azimuth, view", [
    (0, "front"), (22.49, "front"), (22.5, "front_left"), (90, "left"), (135, "back_left"), (180, "back"),
    (202.4, "back"), (202.5, "back_right"), (270, "right"), (315, "front_right"), (337.6, "front"), (359.99, "front"), (-45, "front_right"),
])
def test_view_of_bins(azimuth, view):
    assert view_of(azimuth) == view


def test_score_columns_pair_left_with_right():
    assert SCORE_COLUMNS[0] == "perspective_score_hood" and len(SCORE_COLUMNS) == 8
    for column in SCORE_COLUMNS:
        if column.endswith("_left"):
            assert column.removesuffix("_left") + "_right" in SCORE_COLUMNS


# --- labels.csv -------------------------------------------------------------------------------


def test_labels_csv_schema_and_images(small_set):
    columns, rows = read_rows(small_set)
    assert columns == ["filename", *SCORE_COLUMNS, "azimuth", "elevation", "view"] == LABEL_COLUMNS
    assert [r["filename"] for r in rows] == [f"{i:06d}.jpg" for i in range(6)]
    for row in rows:
        scores = [float(row[c]) for c in SCORE_COLUMNS]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert any(s > 0 for s in scores)
        azimuth, elevation = float(row["azimuth"]), float(row["elevation"])
        assert 0 <= azimuth < 360 and 0 <= elevation <= 45
        assert row["view"] in VIEWS and row["view"] == view_of(azimuth)
        with Image.open(small_set / "images" / row["filename"]) as image:
            assert image.format == "JPEG" and image.size == SMALL
    assert not (small_set / "labels.csv.partial").exists()


def test_labels_match_the_sample(small_set):
    _, rows = read_rows(small_set)
    sample = make_sample(5, 2, SMALL)
    assert float(rows[2]["azimuth"]) == pytest.approx(sample.azimuth, abs=0.006)
    for part, column in zip(PARTS, SCORE_COLUMNS):
        assert float(rows[2][column]) == pytest.approx(sample.scores[part], abs=6e-5)


@pytest.mark.parametrize("size, count", [((10, 10), 1), ((96, 72), 0), ("abc", 1)])
def test_generate_rejects_bad_arguments(tmp_path, size, count):
    with pytest.raises(UserError):
        generate(tmp_path / "out", count, seed=0, size=size, progress=False)


# --- command line -----------------------------------------------------------------------------


def run_synth(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "perspective", "synth", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_the_data_set(tmp_path):
    result = run_synth("--out", str(tmp_path / "cli"), "--count", "3", "--seed", "0", "--size", "64x48", "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "cli" / "images").iterdir()) == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert len(read_rows(tmp_path / "cli")[1]) == 3
    assert result.stderr == ""  # --quiet hides the progress bar
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "3 images" in lines[0] and "images/s" in lines[0]


@pytest.mark.parametrize("bad", [["--size", "abc"], ["--size", "10x10"], ["--count", "0"]])
def test_cli_usage_errors_are_one_line(tmp_path, bad):
    args = {"--out": str(tmp_path / "bad"), "--count": "2", "--seed": "0", "--size": "64x48"}
    args.update(dict([bad]))
    result = run_synth(*[x for pair in args.items() for x in pair])
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert bad[0] in result.stderr
    assert not (tmp_path / "bad" / "labels.csv").exists()
