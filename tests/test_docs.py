"""The documentation: the CLI reference is the parsers' flags, the MkDocs site builds with --strict
(no broken link, anchor or missing page), and README.md stays a short front door whose links work."""

import importlib
import importlib.util
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from perspective.cli.__main__ import COMMANDS

README = ROOT / "README.md"
MKDOCS_PAGE = re.compile(r'<meta name="generator" content="mkdocs-')


def test_the_cli_reference_is_the_parsers_flags():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "cli_reference.py")
    cli_reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli_reference)
    page = cli_reference.page()
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == page, "run: python docs/cli_reference.py --write"
    for command in ("train", "infer", "evaluate", "serve", "search", "export", "download", "synth", "audit"):
        assert f"## perspective {command}\n" in page, command
    for flag in ("`--output`", "`--device`", "`--config`", "`--logger`", "`--checkpoint-dir`", "`--tta`", "`--gpus`"):
        assert flag in page, flag
    for command in COMMANDS:
        assert f"## perspective {command}\n" in page, command
    for command in ("search", "audit"):  # they list their own flags and name train's, which they take too
        assert f"usage: perspective {command} [-h] [options] [perspective train options]" in page, command


@pytest.mark.parametrize("command", COMMANDS)
def test_help_points_to_docs_pages_that_exist(command):
    """-h is one sentence a flag; the explanations and the measurements are on the page it names."""
    parser = importlib.import_module(f"perspective.cli.{command}").get_args_parser()
    pages = re.findall(r"docs/[\w-]+\.md", parser.format_help())
    assert pages, f"perspective {command} -h names no docs page"
    missing = [page for page in pages if not (ROOT / page).is_file()]
    assert not missing, f"perspective {command} -h names missing pages {missing}"


def test_the_site_builds_strictly_with_the_walkthrough_and_the_cli_pages(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # Pages MkDocs rendered (the static walkthrough.html copy is not one of them).
    pages = {path: path.read_text(encoding="utf-8") for path in site.rglob("*.html")}
    pages = {path: text for path, text in pages.items() if MKDOCS_PAGE.search(text)}
    walkthrough = [p for p, text in pages.items() if 'id="perspective-a-walkthrough"' in text]
    assert walkthrough, f"no page rendered from docs/walkthrough.ipynb among {sorted(map(str, pages))}"
    cli = [p for p, text in pages.items() if "<title>CLI reference" in text]
    assert cli, f"no CLI reference page among {sorted(map(str, pages))}"
    assert 'id="perspective-audit"' in pages[cli[0]]
    assert (site / "walkthrough.html").is_file(), "the rendered walkthrough is linked from the pages"


def test_the_readme_is_short_with_the_test_command_and_working_links():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the details belong in docs/"
    bash_blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert any("python -m pytest" in block for block in bash_blocks), "the test command in a ```bash block"
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    targets = re.findall(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)", prose)
    relative = [t for t in targets if not t.startswith(("http://", "https://", "mailto:", "#"))]
    assert "docs/training.md" in {t.split("#")[0] for t in relative}, relative
    missing = [t for t in relative if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
