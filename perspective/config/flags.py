"""How a config field becomes a command-line flag: the ``Flag`` it carries in its metadata.

A field of a command's config dataclass is a flag when it is declared with ``flag(default, help,
short, ...)``: its long flag is the field's name with hyphens, its default the field's default, and
its ``Flag`` says the rest once (the help line, a short flag, the choices, the value check, the -h
group). A subclass, or a later config of a command that composes several, may declare a field again
with only what differs there (another default, another help line, one more alias): ``flags_of``
merges the declarations, the later one winning. ``perspective.cli.parser`` builds every command's
parser from what ``flags_of`` returns, and nothing else.

This module imports neither argparse nor the value checks: a ``Flag`` is data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any

FLAG = "flag"  # the metadata key of a field's Flag

# The -h headings a flag may sit under; a command lists the ones it shows (the rest go under "options").
MODEL, DATA, OPTIMISATION, HARDWARE, OUTPUT = "model", "data", "optimisation", "hardware", "output"


@dataclass(frozen=True)
class Flag:
    """One flag of a config field; an attribute left None is said by another declaration, or not at all.

    ``name`` and ``default`` are the field's, filled in by ``flags_of``. ``help`` may name the default
    as ``{default}`` (with a format such as ``{default:g}``), so the default is written only in the field.
    """

    help: str | None = None
    short: str | None = None  # "-e"
    long: str | None = None  # the flag's spelling when it is not the field's name ("--checkpoint-dir")
    aliases: tuple[str, ...] | None = None  # older spellings accepted too ("--outdir")
    type: Callable[[str], Any] | None = None  # reads and checks the typed text (perspective.config.values)
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    nargs: str | None = None
    const: Any = None
    required: bool | None = None
    positional: bool | None = None
    group: str | None = None  # a -h heading (MODEL, DATA, ...)
    name: str = ""
    default: Any = None

    @property
    def options(self) -> tuple[str, ...]:
        """The spellings of the flag: the short one, the long one, the aliases; none for a positional."""
        if self.positional:
            return ()
        long = self.long or "--" + self.name.replace("_", "-")
        return (*([self.short] if self.short else []), long, *(self.aliases or ()))

    @property
    def switch(self) -> bool:
        """A flag that takes no value: typing it turns a setting on."""
        return isinstance(self.default, bool)

    @property
    def text(self) -> str:
        """The help line with the default written in."""
        return (self.help or "").format(default=self.default)


def flag(default: Any = MISSING, help: str | None = None, short: str | None = None, *,
         default_factory: Callable[[], Any] | Any = MISSING, **attributes: Any) -> Any:
    """A dataclass field that is a flag: ``max_epochs: int = flag(20, "maximum epochs (default {default})", "-e")``."""
    declared = Flag(help=help, short=short, **attributes)
    return field(default=default, default_factory=default_factory, metadata={FLAG: declared})


def flags_of(*configs: type) -> list[Flag]:
    """Every flag of ``configs``, in field order, each field's declarations merged (later ones win).

    A field's declarations are those of each class that declares it, base classes first, then those
    of the later configs; its default is the last declaration's.
    """
    merged: dict[str, Flag] = {}
    for config in configs:
        for item in fields(config):
            for declared in _declarations(config, item.name):
                base = merged.get(item.name, Flag())
                merged[item.name] = replace(base, **{k: v for k, v in vars(declared).items()
                                                     if v is not None and k not in ("name", "default")})
            if item.name in merged:
                merged[item.name] = replace(merged[item.name], name=item.name, default=_default(item))
    return list(merged.values())


def _declarations(config: type, name: str) -> list[Flag]:
    """The Flags that ``config`` and its bases attach to field ``name``, base classes first."""
    found = []
    for klass in reversed(config.__mro__):
        own = vars(klass).get("__dataclass_fields__", {}).get(name)
        if own is not None and name in vars(klass).get("__annotations__", {}) and FLAG in own.metadata:
            found.append(own.metadata[FLAG])
    return found


def _default(item: Field) -> Any:
    return item.default_factory() if item.default is MISSING else item.default


def name_list(names: Sequence[str]) -> str:
    """Names in a help line, a family on one slash: ``resnet18/34/50, efficientnet_b0/b3``."""
    parts: list[tuple[str, list[str]]] = []
    for name in names:
        stem, sep, tail = name.rpartition("_")
        if not sep:
            tail = name[len(name.rstrip("0123456789")):] or name
            stem = name[:len(name) - len(tail)]
        else:
            stem += sep
        if parts and parts[-1][0] == stem:
            parts[-1][1].append(tail)
        else:
            parts.append((stem, [tail]))
    return ", ".join(stem + "/".join(tails) for stem, tails in parts)
