"""The pages speak to users and stay current: no lab notes, measured tables generated from the
results store, and the maps of the code (index, architecture, development, benchmarks) naming every
command, page, module and benchmark there is."""

import importlib.util
import re

from conftest import ROOT

from perspective.cli.__main__ import COMMANDS

# Words of the workshop, not of the product: who measured, when, for which target. A page says which
# hardware and which command a figure came from, and what it means for the user.
WORKSHOP_WORDS = re.compile(
    r"\blent\b|\bgoals?\b|today'?s default|\bsessions?\b(?! ?(?:storage|options)\b)|\bissue #?\d+|these machines|"
    r"development machine|/work/|/root/|/home/\w+/|pytest-of-",
    re.IGNORECASE)
# Where these words are the product's own (onnxruntime's InferenceSession, the browser's sessionStorage)
# or a library's (an upstream bug report).
ALLOWED = re.compile(r"InferenceSession|SessionOptions|sessionStorage|browser session|\.session\b|"
                     r"(?:Lightning|PyTorch|torchvision|lightly|NNCF|OpenVINO)(?:'s)? issue #\d+")


def _published_files():
    for folder in ("docs", "trained_models", "benchmarks", "perspective"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".md", ".py", ".sh", ".html", ".ipynb", ".yml", ".jsonl", ".toml"):
                yield path
    yield ROOT / "README.md"


def test_the_pages_the_package_and_the_benchmarks_speak_to_users_about_the_product():
    found = []
    for path in _published_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if WORKSHOP_WORDS.search(ALLOWED.sub("", line)):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "lab notes in the published files:\n" + "\n".join(found)


def test_examples_name_the_checkpoints_a_run_writes():
    """A run writes epoch=NN-<metric>=X.ckpt and last.ckpt; an example with any other name cannot be followed."""
    found = [f"{path.relative_to(ROOT)}:{number}" for path in _published_files()
             for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
             if "best.ckpt" in line]
    assert not found, f"examples name best.ckpt, a file no run writes: {found}"


def _results_tables():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "docs" / "results_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_measured_table_is_the_results_store_as_generated():
    tables = _results_tables()
    pages = tables.regenerated()
    assert ROOT / "README.md" in pages, "README.md's Measured table is generated from the store"
    stale = [str(page.relative_to(ROOT)) for page, (old, new) in pages.items() if old != new]
    assert not stale, f"{stale} differ from benchmarks/results: run python docs/results_tables.py --write"


def test_a_changed_row_in_the_store_makes_its_page_stale(monkeypatch):
    tables = _results_tables()
    rows = tables.store.read("recipe")
    shown = max((r for r in rows if r["case"].get("dataset") == "digits"), key=lambda r: r["date"])  # what a table shows
    changed = [{**r, "figures": {**r["figures"], "test_accuracy": 0.123456}} if r is shown else r for r in rows]
    real_read = tables.store.read
    monkeypatch.setattr(tables.store, "read", lambda benchmark=None, path=None:
                        changed if benchmark == "recipe" else real_read(benchmark, path))
    pages = tables.regenerated()
    assert any(old != new for old, new in pages.values()), "a changed row must change a generated table"


def test_the_home_page_lists_every_command_and_page():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"`perspective {name}`" not in index]
    assert not missing, f"docs/index.md's command table lacks {missing}"
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r":\s*([\w-]+\.(?:md|ipynb))\s*$", nav, flags=re.MULTILINE)
    unlisted = [page for page in pages if page not in ("index.md",) and f"]({page}" not in index]
    assert not unlisted, f"docs/index.md's page list lacks {unlisted}"


def test_the_architecture_page_names_every_module():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [p for p in (ROOT / "perspective").rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    missing = sorted(str(p.relative_to(ROOT)) for p in modules if not re.search(rf"\b{re.escape(p.stem)}\b", page))
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_the_benchmark_index_and_the_development_page_name_every_benchmark():
    scripts = sorted(p.name for p in (ROOT / "benchmarks").iterdir()
                     if p.suffix in (".py", ".sh") and p.name.startswith(("bench_", "pretrain_")))
    index = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    development = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    assert not [s for s in scripts if s not in index], f"benchmarks/README.md lacks {[s for s in scripts if s not in index]}"
    assert "benchmarks/README.md" in development
