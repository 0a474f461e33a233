"""The command-line layer: one module per command (``train``, ``pretrain``, ``infer``, ``evaluate``,
``serve``, ``search``, ``export``, ``download``, ``synth``, ``audit``, ``select``, ``labels``), each with
``get_args_parser(prog)`` and ``main(argv, prog)``: parse the flags into the command's config
(``perspective.config``), make one library call, print. ``parser.command_parser`` builds every
command's parser from its config dataclasses (``config_file`` reads ``--config``); ``common`` holds
the compact ``-h`` layout, one-line errors, logging and exit codes; ``__main__`` is the
``perspective`` command and its ``COMMANDS`` the list of commands. Nothing in the library imports
this package.
"""

from ..config.values import (
    existing_file,
    existing_path,
    fraction,
    lightning_devices,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from .common import ArgumentParser, run, setup_logging
from .parser import CommandParser, command_parser

__all__ = [
    "ArgumentParser", "CommandParser", "command_parser", "existing_file", "existing_path", "fraction",
    "lightning_devices", "non_negative_float", "non_negative_int", "positive_float", "positive_int", "probability",
    "run", "setup_logging",
]
