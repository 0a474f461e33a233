"""The README's flag table is the commands' own flags (docs/flag_table.py generates it)."""

import importlib.util

from conftest import ROOT


def test_the_readme_flag_table_is_the_parsers_flags():
    spec = importlib.util.spec_from_file_location("flag_table", ROOT / "docs" / "flag_table.py")
    flag_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flag_table)
    readme = (ROOT / "README.md").read_text()
    assert flag_table.readme_with_table(readme) == readme, "run: python docs/flag_table.py --write"
    for flag in ("`--output`", "`--device`", "`--config`", "`--logger`", "`--checkpoint-dir`", "`--tta`"):
        assert flag in readme, flag
