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
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import PREDICTION_PRECISIONS, default_workers
from ..errors import NothingDone, UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse with two habits of the original scripts' users kept.

    - ``--batch_size`` is read as ``--batch-size`` (long flags are spelled with hyphens, and the
      underscore spelling still works);
    - a usage error is one line on stderr and exit code 2, not the usage block.
    """

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


def add_config_flag(parser: argparse.ArgumentParser, command: str) -> None:
    repeat = " A training run writes its own config.yaml, which repeats it." if command == "train" else ""
    parser.add_argument(CONFIG_FLAG, metavar="FILE.yaml", default=None,
                        help="read flags from a YAML file: keys are the long flag names with underscores "
                             f"(max_epochs: 30); flags on the command line win.{repeat}")


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


def lightning_devices(text: str) -> int | str:
    """``--devices``: a count (``2``) or what Lightning reads as a string (``auto``, ``0,1``, ``-1``)."""
    return int(text) if text.isdigit() else text


def port(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number, 0 to 65535, got {value}")
    return value


def add_runtime_flags(parser: argparse.ArgumentParser, default_batch_size: int, training: bool = False,
                      processes: bool = False) -> None:
    """Flags shared by the commands that run a model: batch size, workers, the device, quiet.

    Training takes Lightning's ``-g/--gpus`` and ``--accelerator`` (with ``--devices`` and the
    rest in train's own parser); prediction runs on one device, chosen with ``--device``
    (``add_device_flag``), ``-g`` staying as the original scripts' spelling, or with
    ``processes`` (infer, evaluate) in several processes through Lightning's flags.
    """
    parser.add_argument("-s", "--batch-size", type=positive_int, default=default_batch_size,
                        help=f"batch size (default {default_batch_size})")
    parser.add_argument("-w", "--workers", type=non_negative_int, default=None if training else default_workers(),
                        help="image decoding workers: DataLoader processes when training or feeding a GPU, "
                             "threads that take turns with the model when predicting on the CPU (default: min(CPU "
                             "count, 8)" + ("; for training on the CPU one per 8 cores, the main process decoding "
                                            "between steps)" if training else ")"))
    if training:
        parser.add_argument("-g", "--gpus", type=non_negative_int, default=None,
                            help="number of GPUs; 0 forces the CPU (default: what torch finds)")
        parser.add_argument("--accelerator", default="auto", help="cpu, gpu, cuda, mps or auto (default auto)")
    else:
        add_device_flag(parser, processes=processes)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")


PREDICTION_DEVICE_HELP = "auto (CUDA when present), cpu, or cuda[:N] (default auto)"


def add_device_flag(parser: argparse.ArgumentParser, processes: bool = False) -> None:
    """``--device`` of the commands that predict on one device; ``-g 0`` / ``-g N`` mean cpu / cuda.

    ``processes``: also Lightning's ``--accelerator``, ``--devices``, ``--num-nodes`` and
    ``--strategy``, as train.py spells them, to predict in several processes (``process_plan``).
    """
    parser.add_argument("--device", default="auto", help=PREDICTION_DEVICE_HELP)
    parser.add_argument("-g", "--gpus", type=non_negative_int, default=None,
                        help="the original scripts' spelling: -g 0 = --device cpu, -g N = --device cuda (one GPU)")
    if not processes:
        parser.add_argument("--accelerator", default=None, help=argparse.SUPPRESS)  # older spelling: cpu, gpu, cuda
        return
    parser.add_argument("--accelerator", default=None,
                        help="with --devices: cpu, gpu, cuda or auto, as Lightning reads it; alone: the device "
                             "(default: from --device)")
    parser.add_argument("--devices", type=lightning_devices, default=None,
                        help="predict in this many processes per machine (or on these GPUs: 0,1), one part of "
                             "the images each, merged into one result (default: one process)")
    parser.add_argument("--num-nodes", type=positive_int, default=1, help="machines taking part (default 1)")
    parser.add_argument("--strategy", default=None,
                        help="Lightning strategy for several processes: ddp, ... (default: ddp when --devices or "
                             "--num-nodes asks for more than one process)")


def process_plan(args: argparse.Namespace) -> dict | None:
    """Lightning's accelerator, devices, nodes and strategy when the flags ask for several processes, else None.

    One process unless ``--devices`` asks for more than one (a count above 1, a list of GPUs, -1
    or auto), ``--num-nodes`` is above 1, or a ``--strategy`` is named.
    """
    devices, nodes, strategy = getattr(args, "devices", None), getattr(args, "num_nodes", 1), getattr(args, "strategy", None)
    if devices in (None, 1, "1") and nodes == 1 and strategy is None:
        return None
    accelerator = args.accelerator
    if accelerator is None:
        device = prediction_device(args)
        accelerator = "cpu" if device == "cpu" else "gpu" if device.startswith("cuda") else "auto"
    return {"accelerator": accelerator, "devices": "auto" if devices is None else devices, "num_nodes": nodes,
            "strategy": strategy or "ddp"}


def prediction_device(args: argparse.Namespace) -> str:
    """The one device of ``--device``, ``-g`` or the older ``--accelerator``, as ``Predictor`` takes it."""
    if args.gpus is not None:
        return "cpu" if args.gpus == 0 else "cuda"
    if args.accelerator not in (None, "auto"):
        return {"gpu": "cuda"}.get(args.accelerator, args.accelerator)
    return args.device


def add_checkpoint_flag(parser: argparse.ArgumentParser, exported: bool = False) -> None:
    """``-c/--checkpoint`` of every command that loads a model; None means the shipped one.

    ``exported``: the command also runs models from export.py (ONNX ``.onnx``, OpenVINO ``.xml``).
    """
    what = ("checkpoint from train.py, or a model from export.py (.onnx, OpenVINO .xml, fp32 or int8)" if exported
            else "checkpoint from train.py")
    parser.add_argument("-c", "--checkpoint", type=existing_file, default=None,
                        help=f"{what} (default: the shipped model, perspective/trained_models/)")


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


def existing_file(text: str) -> str:
    """A path that must name a file: checked while parsing, before any model library loads."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}" if not os.path.exists(text) else f"not a file: {text}")
    return text


def add_prediction_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of every command that predicts (infer.py, evaluate.py, serve.py): precision, torch.compile, TTA."""
    parser.add_argument("--precision", choices=PREDICTION_PRECISIONS, default="auto",
                        help="auto = bf16 where the hardware computes it natively, else 32; 16 needs CUDA (default auto)")
    parser.add_argument("--compile", action="store_true",
                        help="run the model through torch.compile: a slow first batch, then faster on large runs")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average each image's prediction with its mirror's, the "
                             "mirror's left and right targets or classes swapped back (twice the compute; default off)")


def setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if quiet:
        for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    # A deprecation inside Lightning itself, not actionable by users of this toolkit.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


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
