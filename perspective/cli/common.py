"""Shared command-line pieces: argparse with the compact ``-h`` and one-line errors, logging, exit codes.

Exit codes everywhere: 0 success, 1 nothing could be done, 2 usage or data error (one line on
stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ..errors import NothingDone, UserError
from ..progress import quiet_lightning, without_lightning_chatter


class HelpFormatter(argparse.HelpFormatter):
    """``-h`` that fits two screens: a one-line usage and a line per flag where the help allows.

    The usage names only what must be typed (required flags, positionals), as git and pip do; every
    flag's spellings are shown once, with one value name, the last word of the flag
    (``-s, --batch-size SIZE``) unless the flag names its own.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 28,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, width)

    def _format_usage(self, usage, actions, groups, prefix):
        if usage is None:
            needed = [self._usage_word(a) for a in actions if a.required or not a.option_strings]
            usage = " ".join(["%(prog)s [-h] [options]", *needed])
        return super()._format_usage(usage, actions, groups, prefix)

    def _usage_word(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return self._format_args(action, self._get_default_metavar_for_positional(action))
        return f"{action.option_strings[0]} {self._format_args(action, self._get_default_metavar_for_optional(action))}"

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        value = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {value}"

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        return action.dest.rsplit("_", 1)[-1].upper()


class ArgumentParser(argparse.ArgumentParser):
    """argparse with two habits of the original scripts' users kept, and a compact ``-h``.

    - ``--batch_size`` is read as ``--batch-size`` (long flags are spelled with hyphens, and the
      underscore spelling still works);
    - a usage error is one line on stderr and exit code 2, not the usage block;
    - ``-h`` is laid out by ``HelpFormatter``: a one-line usage, a line per flag where it fits.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Sequence[str] | None = None, namespace=None):  # type: ignore[override]
        return super().parse_args(hyphenated(args), namespace)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def hyphenated(args: Sequence[str] | None) -> list[str]:
    """``args`` (the command line by default) with every long flag spelled with hyphens."""
    return [_hyphenate(a) for a in (sys.argv[1:] if args is None else args)]


def _hyphenate(arg: str) -> str:
    if not arg.startswith("--"):
        return arg
    flag, eq, value = arg.partition("=")
    return flag.replace("_", "-") + eq + value


def setup_logging(quiet: bool = False) -> None:
    """Log lines to stderr: INFO and up, or only warnings with ``quiet``, whatever level a logger is set to
    later (importing Lightning sets its own to INFO); Lightning's INFO lines and two warnings nobody can
    act on are left out."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.WARNING if quiet else logging.NOTSET)
        handler.addFilter(without_lightning_chatter)  # every Lightning logger's INFO, not only rank_zero's
        root.addHandler(handler)
        root.setLevel(logging.WARNING if quiet else logging.INFO)
    if quiet:  # for handlers that were there before (a caller's own logging), once Lightning is imported
        for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    quiet_lightning()


def run(main: Callable[[], int | None], prog: str) -> None:
    """Run ``main`` and exit with its code; user errors become one line on stderr."""
    try:
        code = main() or 0
    except (UserError, NothingDone) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
