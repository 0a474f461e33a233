"""Shared command-line pieces: the parser, common flags, logging and exit codes.

Exit codes everywhere: 0 success, 1 nothing could be done, 2 usage or data error (one line on
stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import PRECISIONS, DeviceConfig, PredictConfig
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
        args = [_hyphenate(a) for a in (sys.argv[1:] if args is None else args)]
        if CONFIG_FLAG in self._option_string_actions:
            args = self._config_arguments(_flag_value(args, CONFIG_FLAG)) + args
        return super().parse_args(args, namespace)

    def _config_arguments(self, path: str | None) -> list[str]:
        """The flags a ``--config`` YAML file stands for, to be read before the command line's own.

        Keys are the long flag names with underscores (``max_epochs: 30``). The values go through
        the same parsing and checks as typed flags, and a flag also typed on the command line comes
        later and wins.
        """
        if path is None:
            return []
        import yaml

        try:
            with open(path, encoding="utf-8") as file:
                values = yaml.safe_load(file)
        except OSError as exc:
            self.error(f"--config {path}: {exc.strerror or exc}")
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            self.error(f"--config {path}: not valid YAML ({' '.join(str(exc).split())})")
        if values is None:
            return []
        if not isinstance(values, dict):
            self.error(f"--config {path}: expected a mapping of flag names to values (max_epochs: 30)")
        actions: dict[str, argparse.Action] = {}
        for action in self._actions:
            if action.dest in ("help", "config") or not action.option_strings:
                continue
            actions.setdefault(action.dest, action)
            for option in action.option_strings:
                if option.startswith("--"):
                    actions.setdefault(option[2:].replace("-", "_"), action)
        words: list[str] = []
        for key, value in values.items():
            action = actions.get(str(key))
            if action is None:
                self.error(f"--config {path}: unknown key {key!r}; keys are the long flag names with underscores")
            flag = next(o for o in action.option_strings if o.startswith("--"))
            if action.nargs == 0:  # a switch: true turns it on
                if not isinstance(value, bool) and value is not None:
                    self.error(f"--config {path}: {key} must be true or false, not {value!r}")
                words += [flag] if value else []
            elif value is None:
                continue
            elif isinstance(value, list):
                many = action.nargs in ("+", "*")
                words += [flag, *map(str, value)] if many else [f"{flag}={','.join(map(str, value))}"]
            else:
                words.append(f"{flag}={value}")  # one word, so a value starting with "-" stays a value
        return words

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


CONFIG_FLAG = "--config"


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value of the last ``flag VALUE`` or ``flag=VALUE`` in ``args``."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(CONFIG_FLAG, metavar="FILE.yaml", default=None,
                        help="flags as YAML (max_epochs: 30); typed ones win")


def _hyphenate(arg: str) -> str:
    if not arg.startswith("--"):
        return arg
    flag, eq, value = arg.partition("=")
    return flag.replace("_", "-") + eq + value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def fraction(text: str) -> float:
    """A share in [0, 1): dropout, label smoothing, a split fraction."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def probability(text: str) -> float:
    """A chance in [0, 1]: 1 is a sure event (a view always blurred), unlike a share of a whole."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (a chance), got {text}")
    return value


def coverage_level(text: str) -> float:
    """``--interval``: a coverage strictly between 0 and 1."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (a coverage such as 0.9), got {text}")
    return value


def lightning_devices(text: str) -> int | str:
    """``--devices``: a count (``2``) or what Lightning reads as a string (``auto``, ``0,1``, ``-1``)."""
    return int(text) if text.isdigit() else text


def port(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number, 0 to 65535, got {value}")
    return value


# --- the flag vocabulary: one spelling, one meaning, one default per concept on every command ----------
# (tests/test_vocabulary.py walks every parser and holds them to it)


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


def add_batch_flags(parser: argparse.ArgumentParser, cfg: Any, workers_help: str | None = None) -> None:
    """``-s/--batch-size`` and ``-w/--workers``, their defaults from the command's config ``cfg``."""
    parser.add_argument("-s", "--batch-size", type=positive_int, default=cfg.batch_size,
                        help=f"images per batch (default {cfg.batch_size})")
    parser.add_argument("-w", "--workers", type=non_negative_int, default=cfg.workers,
                        help=workers_help or "decoding threads, or DataLoader processes with a GPU (default: "
                                             "min(CPU count, 8))")


def add_device_flags(parser: argparse.ArgumentParser, cfg: DeviceConfig, processes: bool = True,
                     device: bool = True) -> None:
    """Where a command computes: ``-g``, ``--device`` (prediction), and Lightning's flags.

    ``processes``: also ``--devices``, ``--num-nodes`` and ``--strategy``, for the commands that can
    run in several processes (train, and infer and evaluate, which then predict a part each).
    """
    parser.add_argument("-g", "--gpus", type=non_negative_int, default=cfg.gpus,
                        help="CUDA GPUs; 0 = the CPU (default: what torch finds)")
    if device:
        parser.add_argument("--device", default=PredictConfig.device,
                            help=f"the device: auto, cpu or cuda[:N] (default {PredictConfig.device})")
    parser.add_argument("--accelerator", default=cfg.accelerator, metavar="KIND",
                        help=f"cpu, gpu, cuda, mps or auto (default {cfg.accelerator})")
    if not processes:
        return
    parser.add_argument("--devices", type=lightning_devices, default=cfg.devices,
                        help="devices per machine: 2, 0,1, -1 or auto; a process each (default: auto to train, one "
                             "to predict)")
    parser.add_argument("--num-nodes", type=positive_int, default=cfg.num_nodes,
                        help=f"machines taking part (default {cfg.num_nodes})")
    parser.add_argument("--strategy", default=cfg.strategy,
                        help="ddp, ddp_spawn, ... (default auto)")


def add_precision_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default=PredictConfig.precision,
                        help="auto = bf16 where native, else 32; bf16 and 16 autocast fp32 weights (default auto)")


def add_quiet_flag(parser: argparse.ArgumentParser, what: str = "no progress bars or info logs") -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=what)


def add_output_flag(parser: argparse.ArgumentParser, default: str | None, what: str, *aliases: str) -> None:
    """``-o/--output`` (and a command's older spellings as ``aliases``), dest ``output``."""
    shown = f" (default ./{default})" if default else ""
    parser.add_argument("-o", "--output", *aliases, dest="output", type=output_path, default=default,
                        required=default is None, help=what + shown)


def config_of(cls: type, args: argparse.Namespace, *drop: str):
    """The command's config dataclass from parsed flags (``--config`` and the names in ``drop`` left out)."""
    return cls(**{k: v for k, v in vars(args).items() if k != "config" and k not in drop})


def add_checkpoint_flag(parser: argparse.ArgumentParser, exported: bool = False) -> None:
    """``-c/--checkpoint`` of every command that loads a model; None means the shipped one.

    ``exported``: the command also runs models from export (ONNX ``.onnx``, OpenVINO ``.xml``).
    """
    what = "a checkpoint of train, or an exported .onnx or OpenVINO .xml" if exported else "a checkpoint of train"
    parser.add_argument("-c", "--checkpoint", type=existing_file, default=None,
                        help=f"{what} (default: the shipped model)")


def output_path(text: str) -> str:
    """Where results go: refused while parsing when a file stands where a folder of the path must be."""
    for parent in Path(text).parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
            break
    return text


def existing_path(text: str) -> str:
    """A file or folder that must exist (data, images): checked while parsing."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file or folder: {text}")
    return text


def existing_folder(text: str) -> str:
    """A folder that must exist (images to predict): checked while parsing."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a folder: {text}")
    return text


def existing_file(text: str) -> str:
    """A path that must name a file: checked while parsing, before any model library loads."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}" if not os.path.exists(text) else f"not a file: {text}")
    return text


def add_prediction_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of every command that predicts (infer, evaluate, serve): precision, torch.compile, TTA, intervals."""
    add_precision_flag(parser)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile: a slow first batch, then faster")
    parser.add_argument("--tta", action="store_true",
                        help="average with the mirror image's prediction")
    parser.add_argument("--interval", type=coverage_level, default=None, metavar="LEVEL",
                        help="conformal intervals or class sets at this coverage, such as 0.9 (default off)")


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
