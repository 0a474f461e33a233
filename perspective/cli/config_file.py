"""``--config FILE.yaml``: the flags a YAML file stands for, read before the command line's own.

Keys are a flag's field name, or any of its long spellings with underscores (``max_epochs: 30``,
``checkpoint_dir: runs``). The values become words of the command line, so they go through the
same checks as typed flags, and a flag also typed on the command line comes later and wins.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config.flags import Flag

CONFIG_FLAG = "--config"
CONFIG_HELP = "flags as YAML (max_epochs: 30); typed ones win"


def config_words(parser: argparse.ArgumentParser, flags: Sequence[Flag], args: Sequence[str]) -> list[str]:
    """The command-line words the ``--config`` file named in ``args`` stands for (none without one).

    ``flags`` are the parser's; a file's mistake is the parser's one-line error.
    """
    path = _flag_value(args, CONFIG_FLAG)
    if path is None:
        return []
    values = _read(parser, path)
    by_key = _keys(flags)
    words: list[str] = []
    for key, value in values.items():
        flag = by_key.get(str(key))
        if flag is None:
            parser.error(f"--config {path}: unknown key {key!r}; keys are the long flag names with underscores")
        words += _words(parser, path, key, flag, value)
    return words


def _read(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as file:
            values = yaml.safe_load(file)
    except OSError as exc:
        parser.error(f"--config {path}: {exc.strerror or exc}")
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        parser.error(f"--config {path}: not valid YAML ({' '.join(str(exc).split())})")
    if values is None:
        return {}
    if not isinstance(values, dict):
        parser.error(f"--config {path}: expected a mapping of flag names to values (max_epochs: 30)")
    return values


def _keys(flags: Sequence[Flag]) -> dict[str, Flag]:
    """Each flag by its field name and by each long spelling with underscores; positionals are not keys."""
    keys: dict[str, Flag] = {}
    for flag in flags:
        if flag.positional:
            continue
        keys.setdefault(flag.name, flag)
        for option in flag.options:
            if option.startswith("--"):
                keys.setdefault(option[2:].replace("-", "_"), flag)
    return keys


def _words(parser: argparse.ArgumentParser, path: str, key: Any, flag: Flag, value: Any) -> list[str]:
    """One key's value as command-line words."""
    option = next(o for o in flag.options if o.startswith("--"))
    if flag.switch:  # true turns it on
        if not isinstance(value, bool) and value is not None:
            parser.error(f"--config {path}: {key} must be true or false, not {value!r}")
        return [option] if value else []
    if value is None:
        return []
    if isinstance(value, list):
        return [option, *map(str, value)] if flag.nargs in ("+", "*") else [f"{option}={','.join(map(str, value))}"]
    return [f"{option}={value}"]  # one word, so a value starting with "-" stays a value


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value of the last ``flag VALUE`` or ``flag=VALUE`` in ``args``."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value
