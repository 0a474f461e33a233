"""The README's flag table, generated from the commands' own parsers (one table for every command).

    python docs/flag_table.py            # print the table
    python docs/flag_table.py --write    # replace the table between the markers in README.md

tests/test_docs.py fails when README.md's table differs from what this prints, so the table cannot
drift from the flags.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perspective.cli.__main__ import COMMANDS  # noqa: E402

BEGIN, END = "<!-- flag table: begin (python docs/flag_table.py --write) -->", "<!-- flag table: end -->"
DEFAULT = re.compile(r"\s*\(default[: ]\s*((?:[^()]|\([^()]*\))*)\)\s*$")


def _rows() -> list[tuple[str, list[str], str, str]]:
    """(flags, commands, meaning, default) per distinct flag, in the order the commands list them."""
    rows: dict[tuple[str, str], list[str]] = {}
    for command in COMMANDS:
        parser = importlib.import_module(f"perspective.cli.{command}").get_args_parser()
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            flags = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.metavar or action.dest}`"
            if action.choices and not action.option_strings == []:
                flags += f" {{{','.join(map(str, action.choices))}}}"
            rows.setdefault((flags, action.help or ""), []).append(command)
    out = []
    for (flags, help_text), commands in rows.items():
        found = DEFAULT.search(help_text)
        meaning = DEFAULT.sub("", help_text) if found else help_text
        default = found.group(1) if found else ""
        out.append((flags, commands, meaning.replace("|", "\\|"), default.replace("|", "\\|")))
    return out


def table() -> str:
    lines = ["| flag | commands | meaning | default |", "|---|---|---|---|"]
    every = set(COMMANDS)
    for flags, commands, meaning, default in _rows():
        which = "all" if set(commands) == every else ", ".join(commands)
        lines.append(f"| {flags} | {which} | {meaning} | {default} |")
    return "\n".join(lines)


def readme_with_table(text: str) -> str:
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + table() + "\n" + text[stop:]


def main() -> int:
    if "--write" in sys.argv[1:]:
        readme = ROOT / "README.md"
        readme.write_text(readme_with_table(readme.read_text()))
    else:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
