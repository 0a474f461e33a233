"""The command-line layer: one module per command (``train``, ``pretrain``, ``infer``, ``evaluate``,
``serve``, ``search``, ``export``, ``download``, ``synth``, ``audit``, ``select``), each with
``get_args_parser(prog)`` and ``main(argv, prog)``: parse the flags into the command's config
(``perspective.config``), make one library call, print. ``common`` holds the shared flags, argument
types, the compact ``-h`` layout, one-line errors and exit codes; ``__main__`` is the ``perspective``
command and its ``COMMANDS`` the list of commands. Nothing in the library imports this package.
"""

from .common import (
    ArgumentParser,
    add_batch_flags,
    add_checkpoint_flag,
    add_device_flags,
    add_prediction_flags,
    existing_file,
    existing_path,
    fraction,
    lightning_devices,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    run,
    setup_logging,
)

__all__ = [
    "ArgumentParser", "add_batch_flags", "add_checkpoint_flag", "add_device_flags", "add_prediction_flags",
    "existing_file", "existing_path", "fraction", "lightning_devices", "non_negative_float", "non_negative_int",
    "positive_float", "positive_int", "probability", "run", "setup_logging",
]
