"""The one function that builds a command's parser, from the command's config dataclasses.

``command_parser(prog, TrainConfig, ...)`` adds a flag for every field that declares one
(``perspective.config.flags``), under the -h headings the command shows, with ``--config`` first
and ``-q`` last. The parser's own defaults are all ``SUPPRESS``: a parse holds only what the user
typed or a ``--config`` file gave, which is what a search repeats in its best command; the defaults
come from the dataclasses afterwards (``CommandParser.parse``).
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from ..config.flags import Flag, flags_of
from .common import ArgumentParser, hyphenated
from .config_file import CONFIG_FLAG, CONFIG_HELP, config_words

Config = TypeVar("Config")
CLOSING = "quiet"  # -q closes the list of flags it sits in, on every command


@dataclass(frozen=True)
class Parsed:
    """One parse: every flag's value, and the flags typed or given in ``--config`` with their values."""

    values: dict[str, Any]
    typed: dict[str, Any]

    def config(self, cls: type[Config]) -> Config:
        """``cls`` made of the parsed values of its fields (the others keep the dataclass's defaults)."""
        return cls(**{f.name: self.values[f.name] for f in fields(cls) if f.name in self.values})


class CommandParser(ArgumentParser):
    """A command's parser, made by ``command_parser``.

    ``flags`` are the flags it made, in -h order (``--config`` before them), ``hidden`` the names of
    those its -h leaves out, ``configs`` the dataclasses they came from.
    """

    def __init__(self, flags: Sequence[Flag], configs: Sequence[type], hidden: Collection[str], **kwargs: Any) -> None:
        super().__init__(argument_default=argparse.SUPPRESS, **kwargs)
        self.flags = tuple(flags)
        self.configs = tuple(configs)
        self.hidden = frozenset(hidden)

    def parse(self, args: Sequence[str] | None = None) -> Parsed:
        """The one parse of ``args`` (the command line by default), ``--config`` read first."""
        words = hyphenated(args)
        typed = vars(super().parse_args(config_words(self, self.flags, words) + words))
        typed.pop("config", None)
        return Parsed({**{f.name: f.default for f in self.flags}, **typed}, typed)

    def parse_config(self, args: Sequence[str] | None = None) -> Any:
        """The command's config (its last dataclass) from ``args``."""
        return self.parse(args).config(self.configs[-1])

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """Every flag's value, as argparse gives them (``config`` among them, None unless given)."""
        return argparse.Namespace(config=None, **self.parse(args).values)


def command_parser(prog: str, *configs: type, description: str, epilog: str, groups: Sequence[str] = (),
                   leave_out: Collection[str] = (), hidden: Collection[str] = (),
                   usage: str | None = None) -> CommandParser:
    """The parser of a command whose flags are the fields of ``configs`` (later ones refine earlier ones).

    Args:
        groups: the -h headings shown, in order; a flag of another group is listed under "options".
        leave_out: fields that are not flags of this command.
        hidden: flags the command takes without listing them in -h.
    """
    flags = [f for f in flags_of(*configs) if f.name not in leave_out]
    sections: dict[str | None, list[Flag]] = {None: [], **{g: [] for g in groups}}
    for item in flags:
        sections[item.group if item.group in groups else None].append(item)
    ordered = [f for section in sections.values() for f in sorted(section, key=lambda f: f.name == CLOSING)]
    parser = CommandParser(ordered, configs, hidden, prog=prog, description=description, epilog=epilog, usage=usage)
    parser.add_argument(CONFIG_FLAG, metavar="FILE.yaml", help=CONFIG_HELP)
    containers = {None: parser, **{g: parser.add_argument_group(g) for g in groups}}
    for item in ordered:
        shown = item if item.name not in hidden else replace(item, help=argparse.SUPPRESS)
        _add(containers[item.group if item.group in groups else None], shown)
    return parser


def _add(container: Any, flag: Flag) -> None:
    """One flag as an argparse argument; its default stays the parser's SUPPRESS."""
    text = flag.help if flag.help == argparse.SUPPRESS else flag.text
    if flag.positional:
        container.add_argument(flag.name, metavar=flag.metavar, help=text)
    elif flag.switch:
        container.add_argument(*flag.options, dest=flag.name, action="store_true", help=text)
    else:
        container.add_argument(*flag.options, dest=flag.name, type=flag.type, choices=flag.choices, nargs=flag.nargs,
                               const=flag.const, metavar=flag.metavar, required=bool(flag.required), help=text)
