"""The command-line layer: one module per command (``train``, ``infer``, ``evaluate``, ``serve``,
``search``, ``export``, ``download``, ``synth``), each with ``get_args_parser(prog)`` and
``main(argv, prog)``; ``common`` holds the shared flags, argument types, one-line errors and exit
codes; ``__main__`` is the ``perspective`` command. The library never imports this package.
"""

from .common import (
    ArgumentParser,
    add_checkpoint_flag,
    add_prediction_flags,
    add_runtime_flags,
    existing_file,
    existing_path,
    fraction,
    lightning_devices,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run,
    setup_logging,
)

__all__ = [
    "ArgumentParser", "add_checkpoint_flag", "add_prediction_flags", "add_runtime_flags", "existing_file",
    "existing_path", "fraction", "lightning_devices", "non_negative_float", "non_negative_int", "positive_float",
    "positive_int", "run", "setup_logging",
]
