"""The data loop's rules that need no server: the labelling interface, how several annotations of a photo
become one row, the labels.csv paths, and the one-line errors before any request."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from perspective.errors import UserError
from perspective.labelling import Answers, interface_of, labelling_config, merged_values, write_labels
from perspective.labelling.studio import connect
from perspective.labelling.tasks import prediction


def number(name, value):
    return {"from_name": name, "type": "number", "value": {"number": value}}


def test_the_interface_has_a_number_per_target_or_the_classes_and_reads_back():
    config = labelling_config("regression", ["hood", "roof & more"])
    assert config.count("<Number ") == 2 and 'min="0" max="1"' in config and '"roof &amp; more"' in config
    assert interface_of(config) == ("regression", ["hood", "roof & more"])
    classes = labelling_config("classification", ["cat", "dog"])
    assert interface_of(classes) == ("classification", ["label"]) and classes.count("<Choice ") == 2
    with pytest.raises(UserError, match="neither Number fields"):
        interface_of('<View><Image name="image" value="$image"/></View>')


def test_each_target_comes_from_the_latest_annotation_that_gives_it_and_skips_count_for_nothing():
    annotations = [
        {"updated_at": "2026-12-07T10:00:02Z", "result": [number("hood", 0.9)]},
        {"updated_at": "2026-12-07T10:00:01Z", "result": [number("hood", 0.1), number("roof", 0.4)]},
        {"updated_at": "2026-12-07T10:00:03Z", "was_cancelled": True, "result": [number("hood", 0.0)]},
        {"updated_at": "2026-12-07T10:00:04Z", "result": [number("bonnet", 0.5)]},  # not a target of the project
    ]
    assert merged_values(annotations, ["hood", "roof", "rear"]) == {"hood": 0.9, "roof": 0.4}
    assert merged_values([{"result": [{"from_name": "label", "value": {"choices": ["dog"]}}]}], ["label"]) == {
        "label": "dog"}


def test_pre_annotations_are_clipped_and_leave_out_missing_values():
    made = prediction("m", "regression", ["a", "b", "c"], {"a": 1.2, "b": float("nan"), "c": 0.123456})
    assert made["model_version"] == "m"
    assert [(r["from_name"], r["value"]["number"]) for r in made["result"]] == [("a", 1.0), ("c", 0.12)]
    assert prediction("m", "classification", ["x"], None) is None


def test_labels_csv_names_photos_relative_to_its_images_folder(tmp_path):
    (tmp_path / "data" / "images" / "sub").mkdir(parents=True)
    frame = pd.DataFrame({"path": [str(tmp_path / "data" / "images" / "sub" / "b.jpg"), str(tmp_path / "else.jpg")],
                          "hood": [0.5, None]})
    written = write_labels(Answers(frame, "regression", waiting=0), tmp_path / "data" / "labels.csv")
    rows = pd.read_csv(written)
    assert list(rows.columns) == ["filename", "hood"]
    assert rows["filename"].tolist() == [str(tmp_path / "else.jpg"), "sub/b.jpg"]
    with pytest.raises(UserError, match="nothing to write"):
        write_labels(Answers(frame.iloc[:0], "regression", waiting=3), tmp_path / "x.csv")


def test_a_missing_token_or_document_root_is_one_line_before_any_request(monkeypatch, tmp_path):
    pytest.importorskip("label_studio_sdk")
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", raising=False)
    with pytest.raises(UserError, match="no API token"):
        connect("http://127.0.0.1:9")
    with pytest.raises(UserError, match="where does the server serve local files from"):
        connect("http://127.0.0.1:9", key="t")


def test_without_the_client_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "label_studio_sdk", None)
    monkeypatch.setitem(sys.modules, "label_studio_sdk.client", None)
    with pytest.raises(UserError, match=r"pip install 'perspective\[label-studio\]'"):
        connect("http://127.0.0.1:9", key="t", document_root=".")
