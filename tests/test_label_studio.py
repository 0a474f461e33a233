"""The data loop against a real Label Studio server: select and audit send tasks with pre-annotations,
annotations are submitted through the API as an annotator would, ``perspective labels`` brings them
back as labels.csv, and ``train`` reads it; a repeated select adds no task twice, and an import cut off by
the server going away is completed by the next run."""

from __future__ import annotations

import math
import os
import shutil
import time

import pandas as pd
import pytest
from browser import chromium, needs_chromium
from conftest import ROOT, run_command
from label_studio_server import EMAIL, PASSWORD, PROGRAM, TOKEN, start_label_studio

pytestmark = pytest.mark.skipif(
    not PROGRAM, reason="needs the label-studio program: .ci/run installs it in a virtual environment of its own "
                        "(or set PERSPECTIVE_LABEL_STUDIO to its path)")
pytest.importorskip("label_studio_sdk")

SAMPLES = ROOT / "sample_set"
SCREENSHOT = ROOT / "docs" / "label_studio.png"  # the data-loop page's picture (PERSPECTIVE_WRITE_SCREENSHOT=1)
TARGETS = ["perspective_score_hood", "perspective_score_backdoor_left", "perspective_score_front_bumper",
           "perspective_score_rear", "perspective_score_roof", "perspective_score_frontdoor_left",
           "perspective_score_frontdoor_right", "perspective_score_backdoor_right"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = start_label_studio(tmp_path_factory.mktemp("label_studio"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def env(server, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(server.root))
    return server


def client(server):
    from label_studio_sdk.client import LabelStudio

    return LabelStudio(base_url=server.url, api_key=TOKEN)


def project_tasks(server, title):
    ls = client(server)
    [project] = [p for p in ls.projects.list(title=title) if p.title == title]
    return project, list(ls.tasks.list(project=project.id, fields="all", page_size=100))


def number(name, value):
    return {"from_name": name, "to_name": "image", "type": "number", "value": {"number": value}}


def photos_in(folder, count=None):
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(SAMPLES.glob("*.jpg"))[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def test_select_then_annotate_then_labels_csv_then_train(env, tmp_path):
    server = env
    photos = photos_in(server.root / "photos")
    first = run_command("select", "-d", str(photos), "-n", "6", "--label-studio", server.url, "--project", "cars",
                        "-o", str(tmp_path / "sel1"), "-q")
    assert first.returncode == 0, first.stderr
    assert "Label Studio project 'cars': 6 tasks added, 0 already there" in first.stdout
    again = run_command("select", "-d", str(photos), "-n", "10", "--label-studio", server.url, "--project", "cars",
                        "-o", str(tmp_path / "sel2"), "-q")
    assert again.returncode == 0, again.stderr
    chosen = [pd.read_csv(tmp_path / f"sel{i}" / "select.csv") for i in (1, 2)]
    union = set(chosen[0]["filename"]) | set(chosen[1]["filename"])
    project, tasks = project_tasks(server, "cars")
    photos_of_tasks = [t.data["photo"] for t in tasks]
    assert len(photos_of_tasks) == len(set(photos_of_tasks)) == len(union)  # each photo once
    assert {p.split("/")[-1] for p in photos_of_tasks} == union
    added = 10 - len(set(chosen[0]["filename"]) & set(chosen[1]["filename"]))
    assert f"{added} tasks added, {10 - added} already there" in again.stdout

    # every task carries the model's scores as a pre-annotation, as select.csv has them
    scores = chosen[1].set_index("filename")
    for task in tasks:
        [prediction] = task.predictions
        prediction = prediction if isinstance(prediction, dict) else prediction.dict()
        assert prediction["model_version"] == "resnet18_synthetic"
        given = {r["from_name"]: r["value"]["number"] for r in prediction["result"]}
        assert list(given) == TARGETS
        name = task.data["photo"].split("/")[-1]
        if name in scores.index:
            for target in TARGETS:
                assert given[target] == pytest.approx(scores.at[name, f"predicted_{target}"], abs=0.005)

    # annotators answer: task 0 skips the roof, task 1 twice (the later one wins, the roof from the first),
    # task 2 only a skipped ("cancelled") annotation, the last task none
    ls = client(server)
    expected = {}
    for i, task in enumerate(tasks[:-1]):
        values = {t: round((i * 7 + j * 3) % 10 / 10 + 0.05, 2) for j, t in enumerate(TARGETS)}
        name = task.data["photo"].split("/")[-1]
        if i == 0:
            del values["perspective_score_roof"]
        if i == 2:
            ls.annotations.create(id=task.id, result=[], was_cancelled=True)
            continue
        ls.annotations.create(id=task.id, result=[number(t, v) for t, v in values.items()])
        if i == 1:
            time.sleep(0.05)
            later = {t: v for t, v in values.items() if t != "perspective_score_roof"}
            later["perspective_score_hood"] = 0.99
            ls.annotations.create(id=task.id, result=[number(t, v) for t, v in later.items()])
            values["perspective_score_hood"] = 0.99
        expected[name] = values

    labels = photos / "labels.csv"
    back = run_command("labels", "--label-studio", server.url, "--project", "cars", "-o", str(labels))
    assert back.returncode == 0, back.stderr
    assert f"{len(expected)} photos' labels from 'cars'" in back.stdout and "2 tasks without a finished" in back.stdout
    frame = pd.read_csv(labels).set_index("filename")
    assert list(frame.columns) == TARGETS and set(frame.index) == set(expected)
    for name, values in expected.items():
        for target in TARGETS:
            got = frame.at[name, target]
            if target in values:
                assert got == values[target], (name, target)
            else:
                assert math.isnan(got), (name, target)  # skipped: blank, not the model's value

    assert "--allow-missing-targets" in back.stdout  # the roof skipped on one photo
    trained = run_command("train", "-d", str(photos), "--allow-missing-targets", "--weights", "none", "-e", "1",
                          "--image-size", "32", "-s", "4", "-w", "0", "--augment", "none", "-c", str(tmp_path / "ckpt"), "--logs-location",
                          str(tmp_path / "logs"), "-q")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "best checkpoint: " in trained.stdout


@needs_chromium
def test_an_annotator_sees_the_photo_and_the_models_scores_in_a_browser(env, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = env
    photos = photos_in(server.root / "shown", count=8)
    chosen = run_command("select", "-d", str(photos), "-n", "4", "--label-studio", server.url, "--project", "shown",
                         "-o", str(tmp_path / "sel"), "-q")
    assert chosen.returncode == 0, chosen.stderr
    project, tasks = project_tasks(server, "shown")
    first = next(t for t in tasks if t.data["note"].startswith("#1 "))
    prediction = first.predictions[0] if isinstance(first.predictions[0], dict) else first.predictions[0].dict()
    scores = [r["value"]["number"] for r in prediction["result"]]

    with chromium(1400, 1250) as browser:
        wait = WebDriverWait(browser, 90)
        browser.get(f"{server.url}/user/login/")
        wait.until(lambda d: d.find_elements(By.NAME, "email"))
        browser.find_element(By.NAME, "email").send_keys(EMAIL)
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/user/login" not in d.current_url)
        browser.get(f"{server.url}/projects/{project.id}/data?task={first.id}")
        # the photo, served from the local-files storage, and the note saying why it was sent
        wait.until(lambda d: d.execute_script(
            "return [...document.images].some(i => i.src.includes('/data/local-files/') && i.complete && "
            "i.naturalWidth > 0)"))
        wait.until(lambda d: first.data["note"][:40] in d.find_element(By.TAG_NAME, "body").text)
        # the model's pre-annotation, opened as the annotator would: its scores fill the number fields
        tab = wait.until(lambda d: d.find_elements(By.XPATH, "//*[contains(text(), 'resnet18')]"))[0]
        tab.click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "input[type=number]")) == len(TARGETS))
        shown = [float(e.get_attribute("value")) for e in browser.find_elements(By.CSS_SELECTOR, "input[type=number]")]
        assert shown == scores
        browser.find_element(By.TAG_NAME, "body").click()  # no tooltip over the picture
        time.sleep(1)
        shot = SCREENSHOT if os.environ.get("PERSPECTIVE_WRITE_SCREENSHOT") == "1" else tmp_path / "label_studio.png"
        assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_audit_sends_its_worst_rows_with_the_given_label_and_the_models(env, tmp_path):
    server = env
    data = server.root / "audited"
    photos_in(data / "images")
    shutil.copy(SAMPLES / "labels.csv", data / "labels.csv")
    result = run_command("audit", "-d", str(data), "--weights", "none", "--folds", "2", "-e", "1", "--image-size", "32",
                         "-s", "8", "-w", "0", "--augment", "none", "-n", "5", "--label-studio", server.url,
                         "--project", "audit", "-o", str(tmp_path / "audit"), "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Label Studio project 'audit': 5 tasks added" in result.stdout
    worst = pd.read_csv(tmp_path / "audit" / "audit.csv").head(5).set_index("filename")
    given = pd.read_csv(SAMPLES / "labels.csv").set_index("filename")
    _, tasks = project_tasks(server, "audit")
    assert {t.data["photo"].split("/")[-1] for t in tasks} == set(worst.index)
    for task in tasks:
        name = task.data["photo"].split("/")[-1]
        suspect = worst.at[name, "suspect"]
        assert task.data["suspect"] == suspect and f"label in doubt: {suspect}" in task.data["note"]
        versions = {}
        for prediction in task.predictions:
            prediction = prediction if isinstance(prediction, dict) else prediction.dict()
            versions[prediction["model_version"]] = {r["from_name"]: r["value"]["number"] for r in prediction["result"]}
        assert set(versions) == {"given label", "out-of-fold models (2 folds)"}
        assert versions["given label"][suspect] == pytest.approx(given.at[name, suspect], abs=0.005)
        assert versions["out-of-fold models (2 folds)"][suspect] == pytest.approx(worst.at[name, "predicted"], abs=0.005)


def test_an_import_cut_off_by_the_server_going_away_is_completed_by_the_next_run(env, monkeypatch):
    from perspective.errors import UserError
    from perspective.labelling import connect, send, studio
    from perspective.labelling.tasks import photo_task

    server = env
    photos = photos_in(server.root / "cut", count=7)
    paths = sorted(str(p) for p in photos.glob("*.jpg"))
    linked = connect(server.url)
    tasks = [photo_task(linked, p, "a note", []) for p in paths]
    monkeypatch.setattr(studio, "IMPORT_CHUNK", 3)
    real_import = linked.client.projects.import_tasks

    def import_then_stop(**kwargs):
        answer = real_import(**kwargs)
        server.stop()  # the server goes away after the first chunk
        return answer

    linked.client.projects.import_tasks = import_then_stop
    with pytest.raises(UserError, match="cannot reach Label Studio"):
        send(linked, "cut", "regression", TARGETS, tasks, photos)
    server.start()
    imported, present = send(connect(server.url), "cut", "regression", TARGETS, tasks, photos)
    assert (imported, present) == (4, 3)
    _, held = project_tasks(server, "cut")
    assert sorted(t.data["photo"].split("/")[-1] for t in held) == [p.split("/")[-1] for p in paths]


def test_a_wrong_token_or_address_is_one_line(env, tmp_path):
    server = env
    wrong = run_command("labels", "--label-studio", server.url, "--project", "cars", "--label-studio-key", "nope",
                        "-o", str(tmp_path / "l.csv"))
    assert wrong.returncode == 2 and "refused the API token" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    nowhere = run_command("labels", "--label-studio", "http://127.0.0.1:9", "--project", "cars",
                          "-o", str(tmp_path / "l.csv"))
    assert nowhere.returncode == 2 and "cannot reach Label Studio" in nowhere.stderr
    assert len(nowhere.stderr.splitlines()) == 1
