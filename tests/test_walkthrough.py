"""docs/walkthrough.ipynb runs from top to bottom (tiny settings), and git holds it without outputs."""

from __future__ import annotations

import importlib.util
import os

import nbformat
from conftest import ROOT

NOTEBOOK = ROOT / "docs" / "walkthrough.ipynb"


def test_the_committed_notebook_is_the_generated_one_without_outputs():
    spec = importlib.util.spec_from_file_location("make_walkthrough", ROOT / "docs" / "make_walkthrough.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in make.notebook().cells]
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")


def test_the_walkthrough_runs(monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("WALKTHROUGH_TINY", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute(env=dict(os.environ))
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # the curves, the scatter plot, the saliency
    text = "".join(o.get("text", "") for o in outputs)
    assert "best checkpoint:" in text
